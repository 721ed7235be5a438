//! Request counters, so tests and benchmarks can assert how a client talks to
//! Creatio: how many tokens it fetched, how many OData requests it sent, how
//! many operations rode inside `$batch` requests, by entity and method.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::Serialize;

#[derive(Default)]
pub struct Stats {
    token_requests: AtomicU64,
    tokens_issued: AtomicU64,
    odata_requests: AtomicU64,
    batch_requests: AtomicU64,
    batch_operations: AtomicU64,
    unauthorized: AtomicU64,
    faults_injected: AtomicU64,
    by_entity: Mutex<BTreeMap<String, BTreeMap<String, u64>>>,
}

/// A copy of the counters.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    /// Requests to the token endpoint, successful or not.
    pub token_requests: u64,
    pub tokens_issued: u64,
    /// HTTP requests to `/0/odata` (a `$batch` counts once here).
    pub odata_requests: u64,
    pub batch_requests: u64,
    /// Sub-requests carried by `$batch` requests.
    pub batch_operations: u64,
    /// Requests answered 401 for a missing, unknown or expired token.
    pub unauthorized: u64,
    pub faults_injected: u64,
    /// Entity operations (single or inside a batch) by entity, then method.
    pub by_entity: BTreeMap<String, BTreeMap<String, u64>>,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Stats {
    pub fn record_token_request(&self, issued: bool) {
        bump(&self.token_requests);
        if issued {
            bump(&self.tokens_issued);
        }
    }

    pub fn record_odata_request(&self) {
        bump(&self.odata_requests);
    }

    pub fn record_unauthorized(&self) {
        bump(&self.unauthorized);
    }

    pub fn record_fault(&self) {
        bump(&self.faults_injected);
    }

    pub fn record_batch(&self, operations: usize) {
        bump(&self.batch_requests);
        self.batch_operations
            .fetch_add(operations as u64, Ordering::Relaxed);
    }

    pub fn record_entity(&self, entity: &str, method: &str) {
        let mut map = self.by_entity.lock().expect("stats lock");
        *map.entry(entity.to_string())
            .or_default()
            .entry(method.to_string())
            .or_default() += 1;
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            token_requests: get(&self.token_requests),
            tokens_issued: get(&self.tokens_issued),
            odata_requests: get(&self.odata_requests),
            batch_requests: get(&self.batch_requests),
            batch_operations: get(&self.batch_operations),
            unauthorized: get(&self.unauthorized),
            faults_injected: get(&self.faults_injected),
            by_entity: self.by_entity.lock().expect("stats lock").clone(),
        }
    }

    pub fn reset(&self) {
        for c in [
            &self.token_requests,
            &self.tokens_issued,
            &self.odata_requests,
            &self.batch_requests,
            &self.batch_operations,
            &self.unauthorized,
            &self.faults_injected,
        ] {
            c.store(0, Ordering::Relaxed);
        }
        self.by_entity.lock().expect("stats lock").clear();
    }
}
