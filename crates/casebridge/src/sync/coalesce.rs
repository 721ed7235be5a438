//! Coalesces creates for one org into JSON `$batch` requests (DESIGN.md §8).
//!
//! Workers hand their creates to [`Coalescer::create`] and wait for their
//! own result. While fewer than [`MAX_IN_FLIGHT`] requests are in flight for
//! the org, a create goes out at once (no added latency when idle); beyond
//! that, creates wait and the next request carries everything waiting (up
//! to 100 operations). Batches use `continue-on-error`: the operations come
//! from different conversations, so one failure fails only its own job.
//! Order within a conversation is untouched: a job waits for its write
//! before the conversation's next job can start.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use creatio::{BatchOp, Client, Error as CreatioError};
use serde_json::Value;
use tokio::sync::oneshot;

/// Requests in flight per org before creates start to wait and coalesce.
pub const MAX_IN_FLIGHT: usize = 2;
const MAX_OPS: usize = creatio::batch::MAX_BATCH_OPERATIONS;

type Reply = oneshot::Sender<creatio::Result<Option<Value>>>;

struct Waiting {
    entity_set: String,
    body: Value,
    reply: Reply,
}

#[derive(Default)]
struct OrgQueue {
    in_flight: usize,
    waiting: Vec<Waiting>,
}

#[derive(Clone, Default)]
pub struct Coalescer {
    orgs: Arc<Mutex<HashMap<String, OrgQueue>>>,
}

impl Coalescer {
    /// Creates a record through the org's shared request stream.
    pub async fn create(
        &self,
        org_id: &str,
        client: &Client,
        entity_set: &str,
        body: Value,
    ) -> creatio::Result<Option<Value>> {
        let (reply, answer) = oneshot::channel();
        let send_now = {
            let mut orgs = self.orgs.lock().unwrap_or_else(|p| p.into_inner());
            let q = orgs.entry(org_id.to_string()).or_default();
            q.waiting.push(Waiting {
                entity_set: entity_set.into(),
                body,
                reply,
            });
            if q.in_flight < MAX_IN_FLIGHT {
                q.in_flight += 1;
                true
            } else {
                false
            }
        };
        if send_now {
            let this = self.clone();
            let org = org_id.to_string();
            let client = client.clone();
            // A separate task, so a flusher that keeps draining the queue
            // for others never delays the job that started it.
            tokio::spawn(async move { this.drain(&org, &client).await });
        }
        answer.await.unwrap_or(Err(CreatioError::NotExecuted))
    }

    /// Sends what is waiting, request after request, until nothing is.
    async fn drain(&self, org_id: &str, client: &Client) {
        loop {
            let taken: Vec<Waiting> = {
                let mut orgs = self.orgs.lock().unwrap_or_else(|p| p.into_inner());
                let q = orgs.entry(org_id.to_string()).or_default();
                if q.waiting.is_empty() {
                    q.in_flight -= 1;
                    if q.in_flight == 0 {
                        orgs.remove(org_id);
                    }
                    return;
                }
                let n = q.waiting.len().min(MAX_OPS);
                q.waiting.drain(..n).collect()
            };
            send(client, taken).await;
        }
    }
}

async fn send(client: &Client, taken: Vec<Waiting>) {
    if taken.len() == 1 {
        let w = taken.into_iter().next().expect("one");
        metrics::counter!(crate::metrics::CREATIO_REQUESTS, "kind" => "single").increment(1);
        let r = client.create_value(&w.entity_set, &w.body).await.map(Some);
        let _ = w.reply.send(r);
        return;
    }
    metrics::counter!(crate::metrics::CREATIO_REQUESTS, "kind" => "batch").increment(1);
    metrics::histogram!(crate::metrics::BATCH_SIZE).record(taken.len() as f64);
    let ops: Vec<BatchOp> = taken
        .iter()
        .map(|w| BatchOp::create_json(w.entity_set.clone(), w.body.clone()))
        .collect();
    let results = client.batch(&ops).await;
    for (w, r) in taken.into_iter().zip(results) {
        let _ = w.reply.send(r);
    }
}
