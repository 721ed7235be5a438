//! The client's well-known GUIDs and the emulator's seed data were each
//! written from the reference; this checks them against each other over
//! OData, so a typo in either shows up.

use creatio::ids::*;
use creatio::query::Query;
use uuid::Uuid;

use crate::helpers::Env;

#[tokio::test]
async fn every_well_known_id_names_the_expected_seeded_row() {
    let env = Env::start().await;
    let expected: &[(&str, Uuid, &str)] = &[
        ("CaseStatus", case_status::NEW, "New"),
        ("CaseStatus", case_status::IN_PROGRESS, "In progress"),
        (
            "CaseStatus",
            case_status::WAITING_FOR_RESPONSE,
            "Waiting for response",
        ),
        ("CaseStatus", case_status::RESOLVED, "Resolved"),
        ("CaseStatus", case_status::CLOSED, "Closed"),
        ("CaseStatus", case_status::CANCELED, "Canceled"),
        ("CaseStatus", case_status::REOPENED, "Reopened"),
        ("CasePriority", case_priority::CRITICAL, "Critical"),
        ("CasePriority", case_priority::HIGH, "High"),
        ("CasePriority", case_priority::MEDIUM, "Medium"),
        ("CasePriority", case_priority::LOW, "Low"),
        ("CaseOrigin", case_origin::CALL, "Call"),
        ("CaseOrigin", case_origin::EMAIL, "Email"),
        ("CaseOrigin", case_origin::PORTAL, "Portal"),
        ("CaseOrigin", case_origin::CHAT, "Chat"),
        ("CaseOrigin", case_origin::SITE, "Site"),
        (
            "CaseOrigin",
            case_origin::SOCIAL_NETWORKS,
            "Social networks",
        ),
        ("CaseOrigin", case_origin::FORUM, "Forum"),
        ("CaseOrigin", case_origin::PERSONAL_VISIT, "Personal visit"),
        ("CaseOrigin", case_origin::INTERNAL, "Internal"),
        ("CaseCategory", case_category::INCIDENT, "Incident"),
        (
            "CaseCategory",
            case_category::SERVICE_REQUEST,
            "Service request",
        ),
        ("ActivityType", activity_type::TASK, "Task"),
        ("ActivityType", activity_type::EMAIL, "Email"),
        ("ActivityType", activity_type::CALL, "Call"),
        ("ActivityType", activity_type::VISIT, "Visit"),
        ("ActivityCategory", activity_category::TODO, "To do"),
        ("ActivityCategory", activity_category::EMAIL, "Email"),
        ("ActivityCategory", activity_category::CALL, "Call"),
        ("ActivityCategory", activity_category::MEETING, "Meeting"),
        (
            "ActivityCategory",
            activity_category::PAPERWORK,
            "Paperwork",
        ),
        (
            "ActivityStatus",
            activity_status::NOT_STARTED,
            "Not started",
        ),
        (
            "ActivityStatus",
            activity_status::IN_PROGRESS,
            "In progress",
        ),
        ("ActivityStatus", activity_status::COMPLETED, "Completed"),
        ("ActivityStatus", activity_status::CANCELED, "Canceled"),
        (
            "SysAdminUnit",
            sys_admin_unit::ALL_EMPLOYEES,
            "All employees",
        ),
        (
            "SysAdminUnit",
            sys_admin_unit::SYSTEM_ADMINISTRATORS,
            "System administrators",
        ),
        (
            "SysAdminUnit",
            sys_admin_unit::ALL_EXTERNAL_USERS,
            "All external users",
        ),
        (
            "SysAdminUnit",
            sys_admin_unit::CASE_GROUP_DEFAULT,
            "1st-line support",
        ),
    ];
    let name_only = Query::new().select(["Name"]);
    for (entity, id, name) in expected {
        let row = env
            .client
            .get_value(entity, *id, &name_only)
            .await
            .unwrap_or_else(|e| panic!("{entity}({id}): {e}"));
        assert_eq!(row["Name"], *name, "{entity}({id})");
    }
    env.shutdown().await;
}
