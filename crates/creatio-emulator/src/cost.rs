//! A cost model, off by default (`PUT /__emulator/cost`): how long a busy
//! Creatio takes, for measuring a client against one that is slow, shared
//! and sometimes overloaded, not a loopback that answers in microseconds.
//!
//! Sources. A save runs entity listeners, SLM and business processes
//! (reference/creatio-evidence.md §4), so each operation of a `$batch`
//! costs server time on top of the request's own; cloud tenants answer in
//! tens to hundreds of milliseconds (the latency the issue measured). How
//! a cloud tenant throttles is unknown (reference/creatio-evidence.md §7:
//! "cloud rate limits"; Creatio documents no 429,
//! reference/creatio-api.md §2.9), so the model offers both answers a web
//! server in front of it gives, 429 with `Retry-After` or 503, and a
//! queue; and a server past its capacity gets slower the more it is
//! asked (the knee).
//!
//! - Each OData request takes `base_ms`, plus `per_op_ms` per operation
//!   of a `$batch`, ± `jitter` (a fraction) at random.
//! - At most `max_concurrent` requests per client are served at once; the
//!   next waits for room (`over_limit: "queue"`) or is refused (`"429"`,
//!   with `Retry-After: retry_after_secs`, or `"503"`).
//! - Above `knee` requests in flight per client, each request takes
//!   `slowdown` times longer per request in flight over the knee.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// What a request over `max_concurrent` gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum OverLimit {
    /// It waits for room.
    #[default]
    #[serde(rename = "queue")]
    Queue,
    #[serde(rename = "429")]
    TooManyRequests,
    #[serde(rename = "503")]
    Unavailable,
}

/// The model as the operator API takes and shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostModel {
    #[serde(default)]
    pub base_ms: u64,
    #[serde(default)]
    pub per_op_ms: u64,
    #[serde(default)]
    pub jitter: f64,
    #[serde(default)]
    pub max_concurrent: Option<usize>,
    #[serde(default)]
    pub over_limit: OverLimit,
    #[serde(default = "one")]
    pub retry_after_secs: u64,
    #[serde(default)]
    pub knee: Option<usize>,
    #[serde(default)]
    pub slowdown: f64,
}

fn one() -> u64 {
    1
}

impl CostModel {
    pub fn check(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(format!(
                "jitter must be between 0 and 1, got {}",
                self.jitter
            ));
        }
        if self.max_concurrent == Some(0) || self.knee == Some(0) {
            return Err("max_concurrent and knee must be at least 1 when given".into());
        }
        if !(self.slowdown.is_finite() && self.slowdown >= 0.0) {
            return Err(format!("slowdown must be 0 or more, got {}", self.slowdown));
        }
        if self.base_ms > 600_000 || self.per_op_ms > 60_000 {
            return Err("base_ms is at most 600000 and per_op_ms at most 60000".into());
        }
        Ok(())
    }

    /// How long a request of `ops` operations takes with `in_flight`
    /// requests of its client in flight (itself included).
    pub fn time(&self, ops: usize, in_flight: usize) -> Duration {
        let mut ms = self.base_ms as f64 + self.per_op_ms as f64 * ops as f64;
        if let Some(knee) = self.knee {
            ms *= 1.0 + self.slowdown * in_flight.saturating_sub(knee) as f64;
        }
        if self.jitter > 0.0 {
            ms *= 1.0 + self.jitter * (2.0 * fastrand::f64() - 1.0);
        }
        Duration::from_secs_f64(ms.max(0.0) / 1000.0)
    }
}

/// A request's admission.
pub enum Admission {
    /// Served: hold this while it runs (its time included).
    Go(Ticket),
    /// Refused for overload.
    Refused(OverLimit, u64),
}

/// A request being served under the model.
pub struct Ticket {
    model: CostModel,
    client: String,
    cost: Arc<Cost>,
    _room: Option<OwnedSemaphorePermit>,
}

impl Ticket {
    /// Takes the request's time: `ops` operations, at the load when it
    /// started.
    pub async fn serve(&self, ops: usize) {
        let in_flight = self.cost.in_flight(&self.client);
        let time = self.model.time(ops, in_flight);
        if !time.is_zero() {
            tokio::time::sleep(time).await;
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut state = self.cost.lock();
        if let Some(n) = state.in_flight.get_mut(&self.client) {
            *n = n.saturating_sub(1);
        }
    }
}

#[derive(Debug, Default)]
struct State {
    model: Option<CostModel>,
    in_flight: HashMap<String, usize>,
    /// The most in flight at once per client since the model was set.
    peak: HashMap<String, usize>,
    rooms: HashMap<String, Arc<Semaphore>>,
}

/// The model in force and each client's requests in flight.
#[derive(Debug, Default)]
pub struct Cost {
    state: Mutex<State>,
}

impl Cost {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set(&self, model: Option<CostModel>) {
        let mut state = self.lock();
        state.model = model;
        state.rooms.clear();
        state.peak.clear();
    }

    pub fn model(&self) -> Option<CostModel> {
        self.lock().model.clone()
    }

    fn in_flight(&self, client: &str) -> usize {
        self.lock().in_flight.get(client).copied().unwrap_or(0)
    }

    /// Requests in flight now, and the most at once, per client.
    pub fn load(&self) -> HashMap<String, (usize, usize)> {
        let state = self.lock();
        state
            .peak
            .iter()
            .map(|(c, peak)| {
                let now = state.in_flight.get(c).copied().unwrap_or(0);
                (c.clone(), (now, *peak))
            })
            .collect()
    }

    /// Admits a request of `client` under the model; `None` without one.
    pub async fn admit(self: &Arc<Self>, client: &str) -> Option<Admission> {
        let (model, room) = {
            let mut state = self.lock();
            let model = state.model.clone()?;
            let room = match (model.max_concurrent, model.over_limit) {
                (Some(max), OverLimit::Queue) => Some(
                    state
                        .rooms
                        .entry(client.to_string())
                        .or_insert_with(|| Arc::new(Semaphore::new(max)))
                        .clone(),
                ),
                (Some(max), refusal) => {
                    if state.in_flight.get(client).copied().unwrap_or(0) >= max {
                        return Some(Admission::Refused(refusal, model.retry_after_secs));
                    }
                    None
                }
                (None, _) => None,
            };
            (model, room)
        };
        let permit = match room {
            Some(room) => Some(room.acquire_owned().await.ok()?),
            None => None,
        };
        let mut state = self.lock();
        let n = state.in_flight.entry(client.to_string()).or_insert(0);
        *n += 1;
        let now = *n;
        let peak = state.peak.entry(client.to_string()).or_insert(0);
        *peak = (*peak).max(now);
        Some(Admission::Go(Ticket {
            model,
            client: client.to_string(),
            cost: self.clone(),
            _room: permit,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_costs_its_base_its_operations_and_the_load_over_the_knee() {
        let m = CostModel {
            base_ms: 100,
            per_op_ms: 2,
            knee: Some(4),
            slowdown: 0.5,
            ..Default::default()
        };
        assert_eq!(m.time(1, 1), Duration::from_millis(102));
        assert_eq!(m.time(100, 4), Duration::from_millis(300));
        // Two over the knee: twice half again.
        assert_eq!(m.time(100, 6), Duration::from_millis(600));
    }

    #[test]
    fn bad_models_are_refused() {
        let bad = |m: CostModel| m.check().is_err();
        assert!(bad(CostModel {
            jitter: 1.5,
            ..Default::default()
        }));
        assert!(bad(CostModel {
            max_concurrent: Some(0),
            ..Default::default()
        }));
        assert!(bad(CostModel {
            slowdown: -1.0,
            ..Default::default()
        }));
        assert!(CostModel::default().check().is_ok());
    }

    #[tokio::test]
    async fn over_the_limit_a_request_is_refused_or_waits() {
        let cost = Arc::new(Cost::default());
        assert!(cost.admit("c").await.is_none(), "no model, no cost");
        cost.set(Some(CostModel {
            max_concurrent: Some(1),
            over_limit: OverLimit::TooManyRequests,
            retry_after_secs: 3,
            ..Default::default()
        }));
        let Some(Admission::Go(first)) = cost.admit("c").await else {
            panic!("room for one")
        };
        assert!(matches!(
            cost.admit("c").await,
            Some(Admission::Refused(OverLimit::TooManyRequests, 3))
        ));
        assert!(
            matches!(cost.admit("other").await, Some(Admission::Go(_))),
            "the limit is per client"
        );
        drop(first);
        assert!(matches!(cost.admit("c").await, Some(Admission::Go(_))));

        cost.set(Some(CostModel {
            max_concurrent: Some(1),
            ..Default::default()
        }));
        let Some(Admission::Go(first)) = cost.admit("c").await else {
            panic!("room for one")
        };
        let waiting = {
            let cost = cost.clone();
            tokio::spawn(async move { matches!(cost.admit("c").await, Some(Admission::Go(_))) })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "queued behind the first");
        drop(first);
        assert!(waiting.await.unwrap(), "admitted once there is room");
        assert_eq!(cost.load()["c"].1, 1, "never more than one at once");
    }
}
