//! The data a fresh emulated tenant starts with: Creatio's out-of-the-box
//! lookup rows with their shipped GUIDs (reference §3), the Supervisor, the
//! well-known roles, and a few demo agents, groups and customers.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::schema;
use crate::store::{Actor, Store};

/// Ids of the demo records, for tests and the demo script.
pub mod demo {
    /// The Supervisor contact of demo databases (reference §3.5).
    pub const SUPERVISOR_CONTACT: &str = "410006e1-ca4e-4502-a9ec-e54d922d2c00";
    pub const SUPERVISOR_USER: &str = "7f3b869f-34f3-4f20-ab4d-7480a5fdf647";
    /// "Our company" account.
    pub const OUR_COMPANY: &str = "e308b781-3c5b-4ecb-89ef-5c1ed4da488e";
    /// Demo support agents (contacts) and their users.
    pub const AGENT_SARAH: &str = "c4ed336c-3e9b-40fe-8b82-5632476472b4";
    pub const AGENT_SARAH_USER: &str = "0c1a2b3c-4d5e-4f60-8a71-92b3c4d5e6f7";
    pub const AGENT_MARCO: &str = "5a1d6f2e-9b3c-4e7a-8d2f-1c3b5a7d9e0f";
    pub const AGENT_MARCO_USER: &str = "6b2e7a3f-0c4d-4f8b-9e3a-2d4c6b8e0a1b";
    /// Roles: the default case group (`CaseGroupDef`) and a second line.
    pub const GROUP_FIRST_LINE: &str = "b5d51a2d-c0dd-477b-b2aa-58034367ba26";
    pub const GROUP_SECOND_LINE: &str = "3f9a1c7e-5b2d-4e8f-a6c3-9d1e7b5a3c2f";
    pub const ALL_EMPLOYEES: &str = "a29a3ba5-4b0d-de11-9a51-005056c00008";
    pub const SYSTEM_ADMINISTRATORS: &str = "83a43ebc-f36b-1410-298d-001e8c82bcad";
    pub const ALL_PORTAL_USERS: &str = "720b771c-e7a7-4f31-9cfb-52cd21c3739f";
    /// A customer who already exists in the CRM.
    pub const CUSTOMER_GRACE: &str = "8d3f5b7a-1e2c-4a6b-9c8d-7e6f5a4b3c2d";
}

/// The seed records, one literal per row. Long because it is data: each
/// row stands where a reader looks for it, with its source beside it, and
/// a table split across functions would only scatter it.
fn rows() -> Vec<(&'static str, Value)> {
    use demo::*;
    let mut out: Vec<(&'static str, Value)> = vec![
        (
            "Contact",
            json!({"Id": SUPERVISOR_CONTACT, "Name": "Supervisor", "OwnerId": SUPERVISOR_CONTACT}),
        ),
        (
            "Account",
            json!({"Id": OUR_COMPANY, "Name": "Our company", "OwnerId": SUPERVISOR_CONTACT}),
        ),
        (
            "Contact",
            json!({"Id": AGENT_SARAH, "Name": "Sarah Lee", "JobTitle": "Support agent",
            "Email": "sarah.lee@ourcompany.example", "AccountId": OUR_COMPANY}),
        ),
        (
            "Contact",
            json!({"Id": AGENT_MARCO, "Name": "Marco Rossi", "JobTitle": "Support engineer",
            "Email": "marco.rossi@ourcompany.example", "AccountId": OUR_COMPANY}),
        ),
        (
            "Contact",
            // Phones as people type them (reference/creatio-evidence.md
            // §5: "+1 617 440 2498" in a seed, "+1 213 566 34 22" captured).
            json!({"Id": CUSTOMER_GRACE, "Name": "Grace Hopper", "Email": "grace@example.com",
            "MobilePhone": "+1 617 440 2498"}),
        ),
    ];
    for (id, name, ty, conn, parent) in [
        (ALL_EMPLOYEES, "All employees", 0, 0, None),
        (SYSTEM_ADMINISTRATORS, "System administrators", 6, 0, None),
        (ALL_PORTAL_USERS, "All external users", 0, 1, None),
        (GROUP_FIRST_LINE, "1st-line support", 6, 0, None),
        (GROUP_SECOND_LINE, "2nd-line support", 6, 0, None),
    ] {
        let parent: Option<&str> = parent;
        out.push((
            "SysAdminUnit",
            json!({"Id": id, "Name": name, "SysAdminUnitTypeValue": ty,
            "ConnectionType": conn, "ParentRoleId": parent}),
        ));
    }
    for (id, name, contact) in [
        (SUPERVISOR_USER, "Supervisor", SUPERVISOR_CONTACT),
        (AGENT_SARAH_USER, "Sarah Lee", AGENT_SARAH),
        (AGENT_MARCO_USER, "Marco Rossi", AGENT_MARCO),
    ] {
        out.push((
            "SysAdminUnit",
            json!({"Id": id, "Name": name, "SysAdminUnitTypeValue": 4,
            "ContactId": contact, "AccountId": OUR_COMPANY}),
        ));
    }
    for (id, name) in [
        ("ffbf3234-f46b-1410-8d9a-00155d054c04", "No fault found"),
        (
            "b69f315c-f36b-1410-159b-0050ba5d6c38",
            "Resolved successfully",
        ),
        (
            "7f9e3154-f36b-1410-149b-0050ba5d6c38",
            "Resolved with workaround",
        ),
        (
            "3e5f2f44-f36b-1410-149b-0050ba5d6c38",
            "Rejected: not reproducible",
        ),
        (
            "dad53523-afdb-4189-9c6a-83fc950aad48",
            "Rejected: no user response",
        ),
        ("2b74ea83-21f8-4f5d-8b92-fa2b8d823cba", "Marked as spam"),
        (
            "5f0d0a0a-bfb2-4ca9-a6ee-438ce12aa05c",
            "Received from blacklisted email",
        ),
        (
            "521cdf30-5adb-4d47-8445-ff2e143bae3f",
            "Received from support address",
        ),
        (
            "298b5a1a-18d7-4e8a-9f42-00c7c1ae1fbf",
            "Automatic email reply",
        ),
    ] {
        out.push(("ClosureCode", json!({"Id": id, "Name": name})));
    }
    let resolved_code = "b69f315c-f36b-1410-159b-0050ba5d6c38";
    let no_fault = "ffbf3234-f46b-1410-8d9a-00155d054c04";
    for (id, name, fin, res, paused, stage, code) in [
        (
            "ae5f2f10-f46b-1410-fd9a-0050ba5d6c38",
            "New",
            false,
            false,
            false,
            0,
            None,
        ),
        (
            "7e9f1204-f46b-1410-fb9a-0050ba5d6c38",
            "In progress",
            false,
            false,
            false,
            1,
            None,
        ),
        (
            "3859c6e7-cbcb-486b-ba53-77808fe6e593",
            "Waiting for response",
            false,
            false,
            true,
            2,
            None,
        ),
        (
            "ae7f411e-f46b-1410-009b-0050ba5d6c38",
            "Resolved",
            false,
            true,
            false,
            4,
            Some(resolved_code),
        ),
        (
            "3e7f420c-f46b-1410-fc9a-0050ba5d6c38",
            "Closed",
            true,
            false,
            false,
            5,
            None,
        ),
        (
            "6e5f4218-f46b-1410-fe9a-0050ba5d6c38",
            "Canceled",
            true,
            false,
            false,
            5,
            Some(no_fault),
        ),
        (
            "f063ebbe-fdc6-4982-8431-d8cfa52fedcf",
            "Reopened",
            false,
            false,
            false,
            0,
            None,
        ),
    ] {
        out.push((
            "CaseStatus",
            json!({"Id": id, "Name": name, "IsFinal": fin, "IsResolved": res,
            "IsPaused": paused, "StageNumber": stage, "ClosureCodeId": code}),
        ));
    }
    for (id, name, p) in [
        ("afb33208-f46b-1410-ec8c-0050ba5d6c38", "Critical", 1),
        ("8b700f24-f46b-1410-ee8c-0050ba5d6c38", "High", 2),
        ("d9bd322c-f46b-1410-ee8c-0050ba5d6c38", "Medium", 3),
        ("cbb93036-f46b-1410-ef8c-0050ba5d6c38", "Low", 4),
    ] {
        out.push((
            "CasePriority",
            json!({"Id": id, "Name": name, "Priority": p}),
        ));
    }
    for (id, name) in [
        ("5e5e202a-f46b-1410-3692-0050ba5d6c38", "Call"),
        ("7f9e1f1e-f46b-1410-3492-0050ba5d6c38", "Email"),
        ("debf4124-f46b-1410-3592-0050ba5d6c38", "Portal"),
        ("019259af-ec9c-4c87-9565-3c00700c7875", "Chat"),
        ("d38a1692-5a83-4253-a592-7d19fe00593c", "Site"),
        ("673de246-f464-4ad1-883c-8a21508bdf33", "Social networks"),
        ("406ac5a1-a924-4af6-9f64-f4fedc66be8c", "Forum"),
        ("43090402-deef-4155-8aaf-d4b72721f2be", "Personal visit"),
        ("40349262-bb11-4f90-8215-931ece6abe22", "Internal"),
    ] {
        out.push(("CaseOrigin", json!({"Id": id, "Name": name})));
    }
    out.push((
        "CaseCategory",
        json!({"Id": "1b0bc159-150a-e111-a31b-00155d04c01d", "Name": "Incident"}),
    ));
    out.push((
        "CaseCategory",
        json!({"Id": "1c0bc159-150a-e111-a31b-00155d04c01d", "Name": "Service request"}),
    ));
    let (task, email, call, visit) = (
        "fbe0acdc-cfc0-df11-b00f-001d60e938c6",
        "e2831dec-cfc0-df11-b00f-001d60e938c6",
        "e1831dec-cfc0-df11-b00f-001d60e938c6",
        "e3831dec-cfc0-df11-b00f-001d60e938c6",
    );
    for (id, name) in [
        (task, "Task"),
        (email, "Email"),
        (call, "Call"),
        (visit, "Visit"),
    ] {
        out.push(("ActivityType", json!({"Id": id, "Name": name})));
    }
    for (id, name, ty) in [
        ("f51c4643-58e6-df11-971b-001d60e938c6", "To do", task),
        ("8038a396-7825-e011-8165-00155d043204", "Email", email),
        ("e52bd583-7825-e011-8165-00155d043204", "Call", call),
        ("03df85bf-6b19-4dea-8463-d5d49b80bb28", "Call", task),
        ("42c74c49-58e6-df11-971b-001d60e938c6", "Meeting", task),
        ("2365ae4f-58e6-df11-971b-001d60e938c6", "Paperwork", task),
    ] {
        out.push((
            "ActivityCategory",
            json!({"Id": id, "Name": name, "ActivityTypeId": ty}),
        ));
    }
    for (id, name) in [
        ("7f9d1f86-f36b-1410-068c-20cf30b39373", "Incoming"),
        ("7f6d3f94-f36b-1410-068c-20cf30b39373", "Outgoing"),
    ] {
        out.push(("EmailType", json!({"Id": id, "Name": name})));
    }
    for (id, name, finish) in [
        ("384d4b84-58e6-df11-971b-001d60e938c6", "Not started", false),
        ("394d4b84-58e6-df11-971b-001d60e938c6", "In progress", false),
        ("4bdbb88f-58e6-df11-971b-001d60e938c6", "Completed", true),
        ("201cfba8-58e6-df11-971b-001d60e938c6", "Canceled", true),
    ] {
        out.push((
            "ActivityStatus",
            json!({"Id": id, "Name": name, "Finish": finish}),
        ));
    }
    for (id, name) in [
        ("d625a9fc-7ee6-df11-971b-001d60e938c6", "High"),
        ("ab96fa02-7fe6-df11-971b-001d60e938c6", "Medium"),
        ("ac96fa02-7fe6-df11-971b-001d60e938c6", "Low"),
    ] {
        out.push(("ActivityPriority", json!({"Id": id, "Name": name})));
    }
    out
}

/// When the seeded rows were "created" (a fixed instant, so responses are stable).
fn seeded_on() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2019-08-19T13:46:11Z")
        .expect("constant")
        .with_timezone(&Utc)
}

/// Fills an empty store with the out-of-the-box and demo rows.
pub fn seed(store: &mut Store) {
    let actor = Actor {
        contact_id: Uuid::parse_str(demo::SUPERVISOR_CONTACT).expect("constant"),
    };
    for (entity, body) in rows() {
        let schema = schema::find(entity).expect("seeded entities exist");
        if let Err(e) = store.insert(schema, &body, actor, seeded_on()) {
            panic!("seed row for {entity} is invalid: {}", e.message);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn seed_rows_are_valid() {
        let mut store = crate::store::Store::default();
        super::seed(&mut store);
        assert_eq!(store.count("CaseStatus"), 7);
        assert_eq!(store.count("CaseOrigin"), 9);
    }
}
