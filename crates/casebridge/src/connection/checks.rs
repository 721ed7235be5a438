//! The connection checks behind Test & Save, `connection/test` and
//! `casebridge check`: one line per check with pass, warn, fail or skip, a
//! message, and a hint a person can act on.
//!
//! The write check writes one named check Case per instance and OAuth app
//! ([`check_case_id`]: created by the first check, reused after, left
//! cancelled, because Creatio does not let a saved Case be deleted) and an
//! Activity on it that it deletes again; the Case's `CreatedById` tells
//! which Contact the OAuth app's technical user is, which the echo guard
//! needs later.

use std::fmt;

use creatio::models::{Activity, Case, CaseStatus, Contact, SysAdminUnit};
use creatio::query::Query;
use creatio::{Client, Error, TokenSource};
use serde::Serialize;
use uuid::Uuid;

use super::Settings;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Pass,
    Warn,
    Fail,
    Skip,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Check {
    pub name: &'static str,
    pub status: CheckStatus,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// The checks in the order they ran.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Report {
    /// Whether every required check passed (warnings allowed).
    pub ok: bool,
    pub checks: Vec<Check>,
}

impl Report {
    /// The first failed check, for a one-line summary.
    pub fn first_failure(&self) -> Option<&Check> {
        self.checks.iter().find(|c| c.status == CheckStatus::Fail)
    }
}

impl fmt::Display for Report {
    /// The report as the terminal shows it (`casebridge check`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.checks {
            let mark = match c.status {
                CheckStatus::Pass => "ok  ",
                CheckStatus::Warn => "warn",
                CheckStatus::Fail => "FAIL",
                CheckStatus::Skip => "skip",
            };
            writeln!(f, "[{mark}] {:<22} {}", c.name, c.message)?;
            if let Some(h) = &c.hint {
                writeln!(f, "       {:<22} → {h}", "")?;
            }
        }
        Ok(())
    }
}

/// Which checks to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everything: credentials, OData, rights, and the configured GUIDs.
    Full,
    /// Only the configured GUIDs (a PATCH that changed nothing else).
    LookupsOnly,
}

/// What the checks found out besides the report.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub report: Report,
    /// The Contact behind the OAuth app's technical user.
    pub technical_user_id: Option<Uuid>,
}

struct Recorder {
    checks: Vec<Check>,
}

impl Recorder {
    fn push(
        &mut self,
        name: &'static str,
        status: CheckStatus,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        self.checks.push(Check {
            name,
            status,
            message: message.into(),
            hint,
        });
    }

    fn pass(&mut self, name: &'static str, message: impl Into<String>) {
        self.push(name, CheckStatus::Pass, message, None);
    }

    fn fail(&mut self, name: &'static str, message: impl Into<String>, hint: impl Into<String>) {
        self.push(name, CheckStatus::Fail, message, Some(hint.into()));
    }

    fn skip(&mut self, names: &[&'static str], because: &str) {
        for name in names {
            self.push(name, CheckStatus::Skip, format!("skipped: {because}"), None);
        }
    }

    fn finish(self, technical_user_id: Option<Uuid>) -> Outcome {
        let ok = !self.checks.iter().any(|c| c.status == CheckStatus::Fail);
        Outcome {
            report: Report {
                ok,
                checks: self.checks,
            },
            technical_user_id,
        }
    }
}

const AFTER_TOKEN: [&str; 4] = ["odata", "read_case", "write_case", "write_activity"];

/// Runs the checks against Creatio with `settings`, through `http`.
pub async fn run(http: &reqwest::Client, settings: &Settings, scope: Scope) -> Outcome {
    let tokens = TokenSource::new(http.clone(), settings.credentials());
    let client = Client::new(http.clone(), settings.instance.clone(), tokens.clone());
    let mut r = Recorder { checks: Vec::new() };
    let mut technical_user_id = None;

    if scope == Scope::Full {
        let adjusted: Vec<String> = settings
            .instance
            .adjustments()
            .iter()
            .map(|a| a.to_string())
            .collect();
        if adjusted.is_empty() {
            r.pass("instance_url", format!("Using {}", settings.instance));
        } else {
            r.push(
                "instance_url",
                CheckStatus::Pass,
                format!("Using {} ({})", settings.instance, adjusted.join("; ")),
                Some("The address was normalised; nothing to do.".into()),
            );
        }
        match tokens.token().await {
            Ok(_) => r.pass(
                "token",
                format!("Obtained an access token from {}", settings.token_url),
            ),
            Err(e) => {
                r.fail(
                    "token",
                    format!("No access token from {}: {e}", settings.token_url),
                    e.diagnosis(),
                );
                r.skip(&AFTER_TOKEN, "needs an access token");
                skip_lookups(&mut r, settings, "needs an access token");
                return r.finish(None);
            }
        }
        let probe = Query::new().select(["Id"]).top(1);
        match client.list_page("CaseStatus", &probe).await {
            Ok(_) => r.pass(
                "odata",
                format!("OData 4 answers at {}", settings.instance.odata_root()),
            ),
            Err(e) => {
                r.fail("odata", format!("OData request failed: {e}"), e.diagnosis());
                r.skip(&AFTER_TOKEN[1..], "needs OData");
                skip_lookups(&mut r, settings, "needs OData");
                return r.finish(None);
            }
        }
        rights_checks(&client, settings, &mut r).await;
        match client.list_page("Case", &probe).await {
            Ok(_) => r.pass("read_case", "May read Case"),
            Err(e) => r.fail(
                "read_case",
                format!("Reading Case failed: {e}"),
                e.diagnosis(),
            ),
        }
        technical_user_id = write_checks(&client, settings, &mut r).await;
    }
    lookup_checks(&client, settings, &mut r).await;
    r.finish(technical_user_id)
}

fn skip_lookups(r: &mut Recorder, s: &Settings, because: &str) {
    for (name, set) in [
        ("default_owner", s.default_owner_id.is_some()),
        ("default_group", s.default_group_id.is_some()),
        ("resolved_status", s.resolved_status_id.is_some()),
    ] {
        if set {
            r.skip(&[name], because);
        }
    }
}

/// Asks Creatio's RightsService, without writing anything, for every right
/// the sync needs; each missing one is its own failed check with the exact
/// thing to grant. A new technical user starts with none, and records of
/// Case, Activity and Contact are administrated by records
/// (reference/creatio-evidence.md §1): without "View any data" the
/// integration cannot see agents' replies, and no reply is ever delivered,
/// with no error anywhere. When RightsService does not answer, the write
/// checks below still test creating and editing, and the report says what
/// could not be checked.
async fn rights_checks(client: &Client, settings: &Settings, r: &mut Recorder) {
    const OPS: [&str; 3] = [
        "CanSelectEverything",
        "CanInsertEverything",
        "CanUpdateEverything",
    ];
    let ops = match client.can_execute_operations(&OPS).await {
        Ok(ops) => ops,
        Err(e) => {
            r.push(
                "rights",
                CheckStatus::Warn,
                format!("Creatio's RightsService did not answer ({e}), so the rights were not asked; the write checks below test creating and editing instead, and \"View any data\" could not be checked"),
                Some(VIEW_ANY_DATA_HINT.into()),
            );
            return;
        }
    };
    let (view_any, add_any, edit_any) = (ops[0], ops[1], ops[2]);
    if view_any {
        r.pass(
            "view_any_data",
            "The technical user may view any data (CanSelectEverything): agents' replies are visible to it",
        );
    } else {
        r.fail(
            "view_any_data",
            "The technical user lacks the system operation \"View any data\" (CanSelectEverything): Creatio shows it only records it created or was granted, so agents' replies and other people's contacts stay invisible and no agent reply would ever be delivered",
            VIEW_ANY_DATA_HINT,
        );
    }
    // Per object: its check, and whether the sync adds and edits records.
    let needs: [(&str, &str, bool, bool); 3] = [
        ("rights_case", "Case", true, true),
        ("rights_activity", "Activity", true, true),
        (
            "rights_contact",
            "Contact",
            settings.create_missing_contacts,
            false,
        ),
    ];
    for (check, object, must_add, must_edit) in needs {
        let rights = match client.object_rights(object).await {
            Ok(rights) => rights,
            Err(e) => {
                r.push(
                    check,
                    CheckStatus::Warn,
                    format!("Could not ask Creatio for the rights on {object}: {e}"),
                    Some(e.diagnosis()),
                );
                continue;
            }
        };
        // (right, held) for each right the sync needs on the object; a
        // system operation overrides the object right.
        let needed: Vec<(&str, bool)> = [
            Some(("Read", rights.can_read() || view_any)),
            must_add.then_some(("Add", rights.can_append() || add_any)),
            must_edit.then_some(("Edit", rights.can_edit() || edit_any)),
        ]
        .into_iter()
        .flatten()
        .collect();
        report_rights(r, check, object, &needed);
    }
}

/// The check's line for one object: the rights held, or those missing and
/// where to grant them.
fn report_rights(r: &mut Recorder, check: &'static str, object: &str, needed: &[(&str, bool)]) {
    let missing: Vec<&str> = needed
        .iter()
        .filter(|(_, held)| !held)
        .map(|(name, _)| *name)
        .collect();
    if missing.is_empty() {
        let names: Vec<String> = needed.iter().map(|(n, _)| n.to_lowercase()).collect();
        r.pass(check, format!("May {} {object}", spoken_list(&names)));
    } else {
        r.fail(
            check,
            format!(
                "The technical user may not {} {object} records",
                missing.join(" / ").to_lowercase()
            ),
            format!(
                "In Creatio, System Designer → Object permissions → {object}: give the OAuth app's technical user the {} operation permission{} (or the system operations \"Add any data\" / \"Edit any data\"), then Test & Save again.",
                missing.join(", "),
                if missing.len() > 1 { "s" } else { "" }
            ),
        );
    }
}

/// `read`, `read and add`, `read, add and edit`.
fn spoken_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

const VIEW_ANY_DATA_HINT: &str = "In Creatio, System Designer → Operation permissions → \"View any data\" (CanSelectEverything): add the OAuth app's technical user, then Test & Save again.";

/// The subject of the Case the write check writes on.
pub const CHECK_CASE_SUBJECT: &str = "casebridge connection check — safe to delete";

/// The write check's Case: one per instance and OAuth app, made by the
/// first check and reused by every later one. Creatio does not let a saved
/// Case be deleted (SLM writes a `CaseLifecycle` row that references it:
/// reference/creatio-evidence.md §4), so a fresh case per check would leave
/// one more junk case in the customer's CRM — and fire their case processes
/// — at every Test & Save.
pub fn check_case_id(settings: &Settings) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_URL,
        format!(
            "casebridge:connection-check:{}:{}",
            settings.instance, settings.client_id
        )
        .as_bytes(),
    )
}

/// Creates (or, after the first check, reuses) the check Case and updates
/// it, then creates, updates and deletes an Activity on it; the case is
/// left cancelled, named as what it is. Returns the technical user's
/// Contact id when the Case could be written.
async fn write_checks(client: &Client, settings: &Settings, r: &mut Recorder) -> Option<Uuid> {
    let case_id = check_case_id(settings);
    let case = Case {
        id: Some(case_id),
        subject: Some(CHECK_CASE_SUBJECT.into()),
        symptoms: Some(
            "casebridge's Test & Save writes here to check that the integration may create and \
             edit cases and activities. Nothing reads this case; delete it any time."
                .into(),
        ),
        ..Default::default()
    };
    let (created, reused) = match client.create(&case).await {
        Ok(c) => (Ok(c), false),
        Err(Error::AlreadyExists { .. }) => (client.get::<Case>(case_id).await, true),
        Err(e) => (Err(e), false),
    };
    let created = match created {
        Ok(c) => c,
        Err(e) => {
            r.fail(
                "write_case",
                format!("Creating a Case failed: {e}"),
                e.diagnosis(),
            );
            r.skip(&["write_activity"], "needs a Case");
            return None;
        }
    };
    // A technical user without a Contact writes the empty GUID there
    // (reference/creatio-evidence.md §6): then the echo guard has only its
    // memory of what casebridge wrote, which is enough.
    let technical_user = created.created_by_id.filter(|u| !u.is_nil());
    let patch = Case {
        subject: Some(CHECK_CASE_SUBJECT.into()),
        ..Default::default()
    };
    let case_updated = client.update(case_id, &patch).await;
    // Clean up before reporting, whatever happened: the activity is
    // deleted, the case closed (cancelled) so it is in nobody's queue.
    let mut leftovers = Vec::new();
    let activity_result = activity_check(client, case_id, &mut leftovers).await;
    if created.status_id != Some(creatio::ids::case_status::CANCELED) {
        let close = Case {
            status_id: Some(creatio::ids::case_status::CANCELED),
            ..Default::default()
        };
        if let Err(e) = client.update(case_id, &close).await {
            leftovers.push((format!("open Case {case_id}"), e));
        }
    }

    report_writes(
        r,
        case_id,
        reused,
        case_updated,
        activity_result,
        &leftovers,
    );
    technical_user
}

/// The write checks' lines: Case, Activity, and any record the cleanup
/// left behind.
fn report_writes(
    r: &mut Recorder,
    case_id: Uuid,
    reused: bool,
    case_updated: creatio::Result<()>,
    activity_result: creatio::Result<()>,
    leftovers: &[(String, Error)],
) {
    let kept = format!(
        "the check case \"{CHECK_CASE_SUBJECT}\" ({case_id}) stays cancelled and is reused by \
         every later check, because Creatio does not let a saved case be deleted"
    );
    match case_updated {
        Ok(()) if reused => r.pass(
            "write_case",
            format!("May update Case; {kept} (it was created by an earlier check, which checked creating)"),
        ),
        Ok(()) => r.pass("write_case", format!("May create and update Case; {kept}")),
        Err(e) => r.fail(
            "write_case",
            format!("Updating a Case failed: {e}"),
            e.diagnosis(),
        ),
    }
    match activity_result {
        Ok(_) => r.pass("write_activity", "May create and update Activity"),
        Err(e) => r.fail(
            "write_activity",
            format!("Creating or updating an Activity failed: {e}"),
            e.diagnosis(),
        ),
    }
    if !leftovers.is_empty() {
        let names: Vec<_> = leftovers.iter().map(|(n, _)| n.as_str()).collect();
        r.push(
            "cleanup",
            CheckStatus::Warn,
            format!("Could not clean up the check records {}: {}", names.join(", "), leftovers[0].1),
            Some("Delete the activity and close the case by hand in Creatio, or give the technical user the delete right on Activity and the edit right on Case.".into()),
        );
    }
}

/// Creates, updates and deletes an Activity on the check case; the
/// activity left behind when the delete failed joins `leftovers`.
async fn activity_check(
    client: &Client,
    case_id: Uuid,
    leftovers: &mut Vec<(String, Error)>,
) -> creatio::Result<()> {
    let activity_id = Uuid::new_v4();
    let activity = Activity {
        id: Some(activity_id),
        title: Some("casebridge connection check".into()),
        case_id: Some(case_id),
        ..Default::default()
    };
    client.create(&activity).await?;
    let patch = Activity {
        title: Some("casebridge connection check (updated)".into()),
        ..Default::default()
    };
    let updated = client.update(activity_id, &patch).await;
    if let Err(e) = client.delete::<Activity>(activity_id).await {
        leftovers.push((format!("Activity {activity_id}"), e));
    }
    updated
}

async fn lookup_checks(client: &Client, s: &Settings, r: &mut Recorder) {
    if let Some(id) = s.default_owner_id {
        match client.get::<Contact>(id).await {
            Ok(c) => r.pass(
                "default_owner",
                format!("Default owner is the Contact {}", name_of(c.name, id)),
            ),
            Err(Error::NotFound { .. }) => {
                let other = other_kind(client, id, &["SysAdminUnit", "CaseStatus"]).await;
                r.fail(
                    "default_owner",
                    format!("No Contact has the Id {id}{other}"),
                    "Case owners are Contacts (the agent's contact record). Pick one by name with GET /v1/creatio/lookups/contacts?search=<name>.",
                );
            }
            Err(e) => r.fail(
                "default_owner",
                format!("Could not read Contact {id}: {e}"),
                e.diagnosis(),
            ),
        }
    }
    if let Some(id) = s.default_group_id {
        match client.get::<SysAdminUnit>(id).await {
            Ok(u) if matches!(u.sys_admin_unit_type_value, Some(4 | 5)) => r.fail(
                "default_group",
                format!("{} is a user, not a role", name_of(u.name, id)),
                "The case group is a role (organisational or functional), e.g. \"1st-line support\". Pick one with GET /v1/creatio/lookups/groups.",
            ),
            Ok(u) => r.pass("default_group", format!("Default group is the role {}", name_of(u.name, id))),
            Err(Error::NotFound { .. }) => {
                let other = other_kind(client, id, &["Contact", "CaseStatus"]).await;
                r.fail(
                    "default_group",
                    format!("No SysAdminUnit role has the Id {id}{other}"),
                    "Pick the group by name with GET /v1/creatio/lookups/groups.",
                );
            }
            Err(e) => r.fail("default_group", format!("Could not read SysAdminUnit {id}: {e}"), e.diagnosis()),
        }
    }
    if let Some(id) = s.resolved_status_id {
        match client.get::<CaseStatus>(id).await {
            Ok(st) if st.is_resolved == Some(true) || st.is_final == Some(true) => {
                r.pass("resolved_status", format!("Resolved status is {}", name_of(st.name, id)))
            }
            Ok(st) => r.push(
                "resolved_status",
                CheckStatus::Warn,
                format!("{} is neither a final nor a resolved status", name_of(st.name, id)),
                Some("Resolving a conversation would leave the case open in Creatio's terms. Pick a status such as \"Resolved\" or \"Closed\" (GET /v1/creatio/lookups/case-statuses).".into()),
            ),
            Err(Error::NotFound { .. }) => {
                let other = other_kind(client, id, &["Contact", "SysAdminUnit"]).await;
                r.fail(
                    "resolved_status",
                    format!("No CaseStatus has the Id {id}{other}"),
                    "Pick the status by name with GET /v1/creatio/lookups/case-statuses.",
                );
            }
            Err(e) => r.fail("resolved_status", format!("Could not read CaseStatus {id}: {e}"), e.diagnosis()),
        }
    }
}

fn name_of(name: Option<String>, id: Uuid) -> String {
    match name {
        Some(n) => format!("\"{n}\" ({id})"),
        None => id.to_string(),
    }
}

/// When a GUID belongs to another kind of record, say which: the usual
/// mistake is pasting a user's SysAdminUnit id where a Contact is wanted.
async fn other_kind(client: &Client, id: Uuid, sets: &[&str]) -> String {
    for set in sets {
        if let Ok(true) = client.exists(set, id).await {
            return format!("; that GUID is a {set} record");
        }
    }
    String::new()
}
