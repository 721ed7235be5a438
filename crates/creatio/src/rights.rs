//! Asking Creatio what the integration's user may do, without writing
//! anything: `RightsService` (reference/creatio-evidence.md §1). Its methods
//! are WCF `POST`s with wrapped JSON (INSTALL `RightsService.CrtNUI.cs`):
//! the request keyed by parameter name, the answer `{"<Method>Result": …}`.

use reqwest::Method;
use serde_json::{json, Value};

use crate::client::Client;
use crate::error::{Error, Result};

/// An object's operation rights, `SchemaOperationRightLevels`
/// (`RightUtilities.js`: CanRead 1, CanAppend 2, CanEdit 4, CanDelete 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectRights(pub u32);

impl ObjectRights {
    pub fn can_read(self) -> bool {
        self.0 & 1 != 0
    }
    pub fn can_append(self) -> bool {
        self.0 & 2 != 0
    }
    pub fn can_edit(self) -> bool {
        self.0 & 4 != 0
    }
    pub fn can_delete(self) -> bool {
        self.0 & 8 != 0
    }
}

impl Client {
    /// Which of the system `operations` (`CanSelectEverything`, …) the user
    /// may execute, in order; an operation Creatio does not know is `false`.
    pub async fn can_execute_operations(&self, operations: &[&str]) -> Result<Vec<bool>> {
        let answer = self
            .rights_call("GetCanExecuteOperations", json!({"operations": operations}))
            .await?;
        let pairs = answer["GetCanExecuteOperationsResult"]
            .as_array()
            .ok_or_else(|| unexpected("GetCanExecuteOperationsResult is not a list"))?;
        Ok(operations
            .iter()
            .map(|op| {
                pairs
                    .iter()
                    .find(|p| p["Key"].as_str() == Some(op))
                    .and_then(|p| p["Value"].as_bool())
                    .unwrap_or(false)
            })
            .collect())
    }

    /// The user's operation rights on the object `schema` (`Case`, …).
    pub async fn object_rights(&self, schema: &str) -> Result<ObjectRights> {
        let answer = self
            .rights_call(
                "GetSchemaOperationRightLevel",
                json!({"schemaName": schema}),
            )
            .await?;
        answer["GetSchemaOperationRightLevelResult"]
            .as_u64()
            .map(|bits| ObjectRights(bits as u32))
            .ok_or_else(|| unexpected("GetSchemaOperationRightLevelResult is not a number"))
    }

    async fn rights_call(&self, method: &str, body: Value) -> Result<Value> {
        let url = format!("{}/0/rest/RightsService/{method}", self.instance().as_str());
        let answer = self.send(Method::POST, &url, Some(&body)).await?;
        serde_json::from_slice(&answer.body).map_err(|e| Error::UnexpectedResponse {
            status: answer.status,
            detail: format!("a RightsService answer this client cannot read ({e})"),
        })
    }
}

fn unexpected(detail: &str) -> Error {
    Error::UnexpectedResponse {
        status: 200,
        detail: detail.to_string(),
    }
}
