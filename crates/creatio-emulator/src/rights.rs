//! `POST /0/rest/RightsService/<method>`: the rights of the caller, asked
//! without writing anything (reference/creatio-evidence.md §1).
//!
//! The contract, from INSTALL `RightsService.CrtNUI.cs` and the client that
//! calls it (`conf/content/RightUtilities.js`, CLIO
//! `Common/CreatioRightsClient.cs`): every method is a WCF `POST` with
//! `BodyStyle = Wrapped` JSON, so the request is an object keyed by the
//! parameter names and the answer `{"<Method>Result": …}`.
//!
//! | method | request | answer |
//! |---|---|---|
//! | `GetCanExecuteOperation` | `{"operation"}` | `bool`; an unknown operation fails (500), as the core throws when it is not found |
//! | `GetCanExecuteOperations` | `{"operations": […]}` | `[{"Key", "Value"}]`, unknown ones `false` |
//! | `GetSchemaOperationRightLevel` | `{"schemaName"}` | bits `CanRead 1`, `CanAppend 2`, `CanEdit 4`, `CanDelete 8` (`RightUtilities.js`) |
//! | `GetSchemaRecordRightLevel` | `{"schemaName", "primaryColumnValue"}` | bits `CanRead 1`, `CanEdit 4`, `CanDelete 16` (`RecordOperationRightLevels`; the "change right" bits are never set here) |
//!
//! The system operations are the caller's (`CanUseODataService` is the
//! client's OData right); an object's level comes from its object rights.
//! An unknown schema answers 0 (no right): the evidence is silent, and "no
//! right" is what a client must handle anyway.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::identity::{ClientSnapshot, Operation, SYSTEM_OPERATIONS};
use crate::store::Store;

/// Answers one RightsService call for `client`.
pub fn answer(client: &ClientSnapshot, store: &Store, method: &str, body: &[u8]) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return fault(StatusCode::BAD_REQUEST, "The request body is not JSON.");
    };
    match method {
        "GetCanExecuteOperation" => match body["operation"].as_str() {
            Some(op) => match can_execute(client, op) {
                Some(can) => Json(json!({"GetCanExecuteOperationResult": can})).into_response(),
                None => fault(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("Operation \"{op}\" not found."),
                ),
            },
            None => fault(StatusCode::BAD_REQUEST, "\"operation\" is missing."),
        },
        "GetCanExecuteOperations" => match body["operations"].as_array() {
            Some(ops) => {
                let pairs: Vec<Value> = ops
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|op| json!({"Key": op, "Value": can_execute(client, op).unwrap_or(false)}))
                    .collect();
                Json(json!({"GetCanExecuteOperationsResult": pairs})).into_response()
            }
            None => fault(StatusCode::BAD_REQUEST, "\"operations\" is missing."),
        },
        "GetSchemaOperationRightLevel" => match body["schemaName"].as_str() {
            Some(schema) => {
                let level = if crate::schema::find(schema).is_some() {
                    [
                        (Operation::Read, 1),
                        (Operation::Create, 2),
                        (Operation::Update, 4),
                        (Operation::Delete, 8),
                    ]
                    .into_iter()
                    .filter(|(op, _)| client.may(schema, *op))
                    .map(|(_, bit)| bit)
                    .sum::<u32>()
                } else {
                    0
                };
                Json(json!({"GetSchemaOperationRightLevelResult": level})).into_response()
            }
            None => fault(StatusCode::BAD_REQUEST, "\"schemaName\" is missing."),
        },
        "GetSchemaRecordRightLevel" => {
            let (Some(schema), Some(id)) = (
                body["schemaName"].as_str().and_then(crate::schema::find),
                body["primaryColumnValue"]
                    .as_str()
                    .and_then(|v| uuid::Uuid::try_parse(v).ok()),
            ) else {
                return fault(
                    StatusCode::BAD_REQUEST,
                    "\"schemaName\" (a known object) and \"primaryColumnValue\" (a GUID) are required.",
                );
            };
            let level = crate::odata::record_right_level(client, schema, &id, store);
            Json(json!({"GetSchemaRecordRightLevelResult": level})).into_response()
        }
        other => fault(
            StatusCode::NOT_FOUND,
            &format!("RightsService has no method {other}."),
        ),
    }
}

/// Whether `client` may execute the system operation `op`; `None` for an
/// operation the emulator does not know.
fn can_execute(client: &ClientSnapshot, op: &str) -> Option<bool> {
    if op == "CanUseODataService" {
        return Some(client.can_use_odata);
    }
    SYSTEM_OPERATIONS
        .contains(&op)
        .then(|| client.system_operations.contains(op))
}

/// A WCF fault, as ASP.NET answers one.
fn fault(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"Message": message}))).into_response()
}
