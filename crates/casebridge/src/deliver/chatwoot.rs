//! Deliveries to an org whose chat platform is Chatwoot: instead of a
//! signed POST to a receiver, each delivery becomes the Chatwoot API call
//! that does its work (docs/reference/chatwoot.md §3), under the same
//! attempt log, retry schedule, dead-letter and replay rules.
//!
//! - `agent.reply` → `POST /api/v1/accounts/{a}/conversations/{n}/messages`,
//!   an outgoing message marked `content_attributes.casebridge` and
//!   `source_id: casebridge:<delivery id>`, so the `message_created` webhook
//!   it causes is recognised and not sent back to Creatio; the message's id
//!   goes into the echo guard's memory too.
//! - `conversation.resolved` → `POST …/toggle_status {"status": "resolved"}`,
//!   marked first as casebridge's own (the status webhooks that follow may
//!   arrive before the answer does).
//! - `case.linked` has no place in Chatwoot: nothing is sent.

use secrecy::ExposeSecret;
use serde_json::{json, Value};

use super::http::{call, Answer, Services};
use super::{Schedule, AGENT_REPLY, CASE_LINKED, CONVERSATION_RESOLVED};
use crate::chatwoot::{self, SOURCE_ID_PREFIX};
use crate::storage::deliveries::Delivery;
use crate::storage::{chatwoot as store, written};

/// What a delivery to Chatwoot is: the URL called (for the attempt log)
/// and the answer.
pub(super) async fn send(
    services: &Services,
    schedule: &Schedule,
    d: &Delivery,
) -> (String, Answer) {
    let connector = match store::get(&services.db, &d.org_id).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return (
                String::new(),
                Answer::unsendable(
                    "the org's Chatwoot connector is gone; connect Chatwoot again (PUT /v1/connectors/chatwoot) or set a delivery URL, then replay".into(),
                ),
            )
        }
        Err(e) => {
            return (
                String::new(),
                Answer::failed(format!("could not read the Chatwoot connector: {e}")),
            )
        }
    };
    let base = connector.base_url.trim_end_matches('/');
    let Some(number) = chatwoot::chatwoot_number(d.conversation_id.as_str()) else {
        return (
            base.to_string(),
            Answer::unsendable(format!(
                "conversation {} did not come from Chatwoot (its ids are cw-<number>), so Chatwoot has no conversation to send it to",
                d.conversation_id
            )),
        );
    };
    let conversation_url = format!(
        "{base}/api/v1/accounts/{}/conversations/{number}",
        connector.account_id
    );
    let token = match services.secrets.open(
        &connector.api_token_sealed,
        &chatwoot::api_token_context(&d.org_id),
    ) {
        Ok(t) => t,
        Err(_) => {
            return (
                conversation_url,
                Answer::unsendable(
                    "the Chatwoot API token cannot be decrypted with this server's secret key; save the connector again with the token (PUT /v1/connectors/chatwoot)".into(),
                ),
            )
        }
    };
    let data = serde_json::from_str::<Value>(&d.payload)
        .map(|p| p["data"].clone())
        .unwrap_or(Value::Null);
    let (url, body) = match d.event_type.as_str() {
        AGENT_REPLY => (
            format!("{conversation_url}/messages"),
            json!({
                "content": data["text"],
                "message_type": "outgoing",
                "private": false,
                "content_type": "text",
                "source_id": format!("{SOURCE_ID_PREFIX}{}", d.id),
                "content_attributes": {
                    "casebridge": true,
                    "casebridge_delivery_id": d.id,
                    "creatio_activity_id": data["activity_id"],
                },
            }),
        ),
        CONVERSATION_RESOLVED => {
            // Marked before the call: Chatwoot's status webhooks are sent
            // from a background job and may come before its answer.
            if let Err(e) =
                store::set_by_casebridge(&services.db, &d.org_id, &d.conversation_id, "resolved")
                    .await
            {
                return (
                    conversation_url,
                    Answer::failed(format!("could not record the resolution: {e}")),
                );
            }
            (
                format!("{conversation_url}/toggle_status"),
                json!({"status": "resolved"}),
            )
        }
        CASE_LINKED => {
            return (
                conversation_url,
                Answer::nothing_to_send("case.linked has no place in Chatwoot; nothing was sent"),
            )
        }
        other => {
            return (
                conversation_url,
                Answer::unsendable(format!("{other} is not something Chatwoot takes")),
            )
        }
    };
    let request = services
        .http
        .post(&url)
        .timeout(schedule.timeout)
        .header("api_access_token", token.expose_secret())
        .json(&body);
    let (answer, response) = call(request, schedule).await;
    if answer.status.is_some_and(|s| (200..300).contains(&s)) && d.event_type == AGENT_REPLY {
        // The echo guard's memory, beside the marks on the message.
        if let Some(id) = response.as_ref().and_then(|r| r["id"].as_i64()) {
            let record = format!("cw-message-{id}");
            if let Err(e) = written::remember_written(
                &services.db,
                &d.org_id,
                &record,
                "chatwoot_message",
                Some(&d.conversation_id),
            )
            .await
            {
                tracing::warn!(delivery_id = %d.id, error = %e, "Could not remember the Chatwoot message casebridge wrote; its marks still tell it.");
            }
        }
    }
    (url, answer)
}
