//! Well-known GUIDs of Creatio's out-of-the-box lookup rows
//! (`shared/reference/creatio-api.md` §3, from Creatio's own package data
//! and `ConfigurationConstants.js`).
//!
//! These rows are identical on installations that ship the Service packages,
//! but a tenant can rename or add rows: resolve by name where it matters and
//! fall back to these.

use uuid::{uuid, Uuid};

/// `CaseStatus` rows (`IsFinal`, `IsResolved` noted per row).
pub mod case_status {
    use super::*;
    pub const NEW: Uuid = uuid!("ae5f2f10-f46b-1410-fd9a-0050ba5d6c38");
    pub const IN_PROGRESS: Uuid = uuid!("7e9f1204-f46b-1410-fb9a-0050ba5d6c38");
    /// Paused.
    pub const WAITING_FOR_RESPONSE: Uuid = uuid!("3859c6e7-cbcb-486b-ba53-77808fe6e593");
    /// Resolved, not final.
    pub const RESOLVED: Uuid = uuid!("ae7f411e-f46b-1410-009b-0050ba5d6c38");
    /// Final.
    pub const CLOSED: Uuid = uuid!("3e7f420c-f46b-1410-fc9a-0050ba5d6c38");
    /// Final.
    pub const CANCELED: Uuid = uuid!("6e5f4218-f46b-1410-fe9a-0050ba5d6c38");
    pub const REOPENED: Uuid = uuid!("f063ebbe-fdc6-4982-8431-d8cfa52fedcf");
}

/// `CasePriority` rows.
pub mod case_priority {
    use super::*;
    pub const CRITICAL: Uuid = uuid!("afb33208-f46b-1410-ec8c-0050ba5d6c38");
    pub const HIGH: Uuid = uuid!("8b700f24-f46b-1410-ee8c-0050ba5d6c38");
    /// The default (`CasePriorityDef`).
    pub const MEDIUM: Uuid = uuid!("d9bd322c-f46b-1410-ee8c-0050ba5d6c38");
    pub const LOW: Uuid = uuid!("cbb93036-f46b-1410-ef8c-0050ba5d6c38");
}

/// `CaseOrigin` rows. There is no "Phone" row: phone cases use [`case_origin::CALL`].
pub mod case_origin {
    use super::*;
    /// The default (`CaseOriginDef`).
    pub const CALL: Uuid = uuid!("5e5e202a-f46b-1410-3692-0050ba5d6c38");
    pub const EMAIL: Uuid = uuid!("7f9e1f1e-f46b-1410-3492-0050ba5d6c38");
    pub const PORTAL: Uuid = uuid!("debf4124-f46b-1410-3592-0050ba5d6c38");
    pub const CHAT: Uuid = uuid!("019259af-ec9c-4c87-9565-3c00700c7875");
    pub const SITE: Uuid = uuid!("d38a1692-5a83-4253-a592-7d19fe00593c");
    pub const SOCIAL_NETWORKS: Uuid = uuid!("673de246-f464-4ad1-883c-8a21508bdf33");
    pub const FORUM: Uuid = uuid!("406ac5a1-a924-4af6-9f64-f4fedc66be8c");
    pub const PERSONAL_VISIT: Uuid = uuid!("43090402-deef-4155-8aaf-d4b72721f2be");
    pub const INTERNAL: Uuid = uuid!("40349262-bb11-4f90-8215-931ece6abe22");
}

/// `CaseCategory` rows.
pub mod case_category {
    use super::*;
    pub const INCIDENT: Uuid = uuid!("1b0bc159-150a-e111-a31b-00155d04c01d");
    /// The default.
    pub const SERVICE_REQUEST: Uuid = uuid!("1c0bc159-150a-e111-a31b-00155d04c01d");
}

/// `ActivityType` rows.
/// `EmailType`: an e-mail activity's direction (`Activity.MessageTypeId`).
pub mod email_type {
    use super::*;
    /// Received: on a case, usually the customer writing in.
    pub const INCOMING: Uuid = uuid!("7f9d1f86-f36b-1410-068c-20cf30b39373");
    pub const OUTGOING: Uuid = uuid!("7f6d3f94-f36b-1410-068c-20cf30b39373");
}

pub mod activity_type {
    use super::*;
    /// The schema default.
    pub const TASK: Uuid = uuid!("fbe0acdc-cfc0-df11-b00f-001d60e938c6");
    pub const EMAIL: Uuid = uuid!("e2831dec-cfc0-df11-b00f-001d60e938c6");
    pub const CALL: Uuid = uuid!("e1831dec-cfc0-df11-b00f-001d60e938c6");
    pub const VISIT: Uuid = uuid!("e3831dec-cfc0-df11-b00f-001d60e938c6");
}

/// `ActivityCategory` rows.
pub mod activity_category {
    use super::*;
    /// "To do", the schema default.
    pub const TODO: Uuid = uuid!("f51c4643-58e6-df11-971b-001d60e938c6");
    pub const EMAIL: Uuid = uuid!("8038a396-7825-e011-8165-00155d043204");
    pub const CALL: Uuid = uuid!("e52bd583-7825-e011-8165-00155d043204");
    pub const MEETING: Uuid = uuid!("42c74c49-58e6-df11-971b-001d60e938c6");
    pub const PAPERWORK: Uuid = uuid!("2365ae4f-58e6-df11-971b-001d60e938c6");
}

/// `ActivityStatus` rows.
pub mod activity_status {
    use super::*;
    /// The schema default.
    pub const NOT_STARTED: Uuid = uuid!("384d4b84-58e6-df11-971b-001d60e938c6");
    pub const IN_PROGRESS: Uuid = uuid!("394d4b84-58e6-df11-971b-001d60e938c6");
    pub const COMPLETED: Uuid = uuid!("4bdbb88f-58e6-df11-971b-001d60e938c6");
    pub const CANCELED: Uuid = uuid!("201cfba8-58e6-df11-971b-001d60e938c6");
}

/// `SysAdminUnit` roles every installation has.
pub mod sys_admin_unit {
    use super::*;
    pub const ALL_EMPLOYEES: Uuid = uuid!("a29a3ba5-4b0d-de11-9a51-005056c00008");
    pub const SYSTEM_ADMINISTRATORS: Uuid = uuid!("83a43ebc-f36b-1410-298d-001e8c82bcad");
    pub const ALL_EXTERNAL_USERS: Uuid = uuid!("720b771c-e7a7-4f31-9cfb-52cd21c3739f");
    /// The default case group (`CaseGroupDef`).
    pub const CASE_GROUP_DEFAULT: Uuid = uuid!("b5d51a2d-c0dd-477b-b2aa-58034367ba26");
}
