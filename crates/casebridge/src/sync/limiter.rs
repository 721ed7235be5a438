//! How much of each org's Creatio casebridge uses at once: an adaptive
//! concurrency limit per org (DESIGN §8; issue "Fast against a Creatio
//! that is slow").
//!
//! A request to Creatio here is one `$batch` request of a round or one job
//! run alone. Each org has a lane with a limit on how many of those are in
//! flight; each starts only with a permit of its org's lane, so a slow or
//! sick Creatio holds at most its own limit of work, and an org claims only
//! as much as its lane has room for (none when it is full: its jobs stay
//! pending, costing the others nothing).
//!
//! The limit adapts as TCP's congestion window does, and as Vector's
//! Adaptive Request Concurrency: additive increase (+1 per limit's worth
//! of good answers, and only while the lane was full: an org that uses
//! two requests at once shows nothing about a third) while Creatio
//! answers well; multiplicative decrease (halved) when it says it is
//! overloaded (429, 503, a timeout), and by a tenth when its latency
//! rises above the lowest seen for requests of that size (each operation
//! of a `$batch` costs Creatio time, so a full request is no slower for
//! being full). After a decrease, the answers to requests sent before it
//! cannot decrease it again: the next decrease waits for a limit's worth
//! of answers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::domain::OrgId;

/// What one answer from Creatio says about its load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Signal {
    /// It answered (an error or not, but not for load), in this time
    /// when measured.
    Answered(Option<Timing>),
    /// 429, 503 or a timeout: it is overloaded.
    Overloaded,
}

/// How long one request of `ops` operations took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub latency: Duration,
    pub ops: usize,
}

impl Timing {
    /// Requests whose sizes are within 5 % of each other share a class:
    /// their costs are compared with each other only.
    fn class(&self) -> u16 {
        ((self.ops.max(1) as f64).ln() / 1.05f64.ln()) as u16
    }
}

/// What an answer did to the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Increased,
    Decreased,
    Held,
}

/// The floor, ceiling and starting point of every org's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub floor: usize,
    pub ceiling: usize,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            floor: 1,
            ceiling: 8,
        }
    }
}

/// Latency this much above the lowest seen for requests of the same size
/// (and at least [`SLACK`] more) counts as Creatio slowing down under
/// load. Jitter of ±10 % puts two answers at most 1.22 apart; a Creatio
/// past its knee by one request is 1.5 times slower in the emulator's
/// model (README, "Benchmark against a slow Creatio").
const SLOWER: f64 = 1.35;
/// Latency differences below this are noise (a loopback Creatio answers
/// in a millisecond, a busy machine varies by more).
const SLACK: Duration = Duration::from_millis(20);

/// One org's limit: additive increase, multiplicative decrease.
#[derive(Debug, Clone)]
pub struct Aimd {
    limit: f64,
    bounds: Bounds,
    /// The lowest latency seen per request size ([`Timing::class`]),
    /// drifting up slowly so that a Creatio that became slower for good
    /// is the new normal.
    baselines: HashMap<u16, Duration>,
    /// Answers since the last decrease; another waits for `limit` of them.
    since_decrease: usize,
}

impl Aimd {
    pub fn new(bounds: Bounds) -> Aimd {
        Aimd {
            // Start where a round and a job alone can run side by side.
            limit: 2f64.clamp(bounds.floor as f64, bounds.ceiling as f64),
            bounds,
            baselines: HashMap::new(),
            since_decrease: usize::MAX,
        }
    }

    /// The number of requests that may be in flight.
    pub fn limit(&self) -> usize {
        self.limit as usize
    }

    /// What an answer says; `full` when the lane had all its limit in
    /// flight as it came (only then can an increase be earned).
    pub fn observe(&mut self, signal: Signal, full: bool) -> Step {
        self.since_decrease = self.since_decrease.saturating_add(1);
        let slower = match signal {
            Signal::Overloaded => return self.decrease(0.5),
            Signal::Answered(None) => false,
            Signal::Answered(Some(timing)) => {
                let latency = timing.latency;
                let baseline = self.baselines.entry(timing.class()).or_insert(latency);
                let slower = latency.as_secs_f64() > baseline.as_secs_f64() * SLOWER
                    && latency > *baseline + SLACK;
                *baseline = if latency < *baseline {
                    latency
                } else {
                    // A hundredth of the way up per answer.
                    *baseline + (latency - *baseline) / 100
                };
                slower
            }
        };
        if slower {
            return self.decrease(0.9);
        }
        if !full {
            return Step::Held;
        }
        let before = self.limit();
        self.limit = (self.limit + 1.0 / self.limit).min(self.bounds.ceiling as f64);
        if self.limit() > before {
            Step::Increased
        } else {
            Step::Held
        }
    }

    fn decrease(&mut self, factor: f64) -> Step {
        if self.since_decrease < self.limit() {
            return Step::Held;
        }
        let before = self.limit();
        self.limit = (self.limit * factor).max(self.bounds.floor as f64);
        // A decrease always takes at least one off, down to the floor.
        if self.limit() == before && before > self.bounds.floor {
            self.limit = (before - 1) as f64;
        }
        self.since_decrease = 0;
        if self.limit() < before {
            Step::Decreased
        } else {
            Step::Held
        }
    }
}

#[derive(Debug)]
struct Lane {
    aimd: Aimd,
    in_flight: usize,
}

impl Lane {
    fn room(&self) -> usize {
        self.aimd.limit().saturating_sub(self.in_flight)
    }
}

/// Every org's lane, shared by a process's workers.
#[derive(Debug)]
pub struct Lanes {
    bounds: Bounds,
    lanes: Mutex<HashMap<OrgId, Lane>>,
}

impl Lanes {
    pub fn new(bounds: Bounds) -> Arc<Lanes> {
        Arc::new(Lanes {
            bounds,
            lanes: Mutex::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<OrgId, Lane>> {
        self.lanes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A permit to send to `org`'s Creatio, unless its lane is full.
    pub fn try_acquire(self: &Arc<Self>, org: &OrgId) -> Option<Permit> {
        let mut lanes = self.lock();
        let lane = lanes.entry(org.clone()).or_insert_with(|| Lane {
            aimd: Aimd::new(self.bounds),
            in_flight: 0,
        });
        if lane.room() == 0 {
            return None;
        }
        lane.in_flight += 1;
        report(org, lane);
        Some(Permit {
            lanes: self.clone(),
            org: org.clone(),
        })
    }

    /// How many more requests `org`'s Creatio may take now.
    pub fn room(&self, org: &OrgId) -> usize {
        self.lock()
            .get(org)
            .map_or_else(|| Aimd::new(self.bounds).limit(), Lane::room)
    }

    /// `org`'s current limit.
    pub fn limit_of(&self, org: &OrgId) -> usize {
        self.view(org).limit
    }

    /// `org`'s lane as an admin sees it.
    pub fn view(&self, org: &OrgId) -> LaneView {
        let (limit, in_flight) = self.lock().get(org).map_or_else(
            || (Aimd::new(self.bounds).limit(), 0),
            |l| (l.aimd.limit(), l.in_flight),
        );
        LaneView {
            limit,
            in_flight,
            floor: self.bounds.floor,
            ceiling: self.bounds.ceiling,
        }
    }
}

/// One org's lane now: its limit, what it has in flight, and the bounds
/// the limit adapts between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaneView {
    pub limit: usize,
    pub in_flight: usize,
    pub floor: usize,
    pub ceiling: usize,
}

/// Room for one request (a round's `$batch` or a job) toward an org's
/// Creatio, given back when dropped.
#[derive(Debug)]
pub struct Permit {
    lanes: Arc<Lanes>,
    org: OrgId,
}

impl Permit {
    /// Another permit for the same org, if its lane has room.
    pub fn another(&self) -> Option<Permit> {
        self.lanes.try_acquire(&self.org)
    }

    /// What an answer said about the org's Creatio.
    pub fn observe(&self, signal: Signal) -> Step {
        let mut lanes = self.lanes.lock();
        let Some(lane) = lanes.get_mut(&self.org) else {
            return Step::Held;
        };
        let step = lane.aimd.observe(signal, lane.room() == 0);
        if step != Step::Held {
            tracing::debug!(org_id = %self.org, limit = lane.aimd.limit(), ?signal, "Concurrency toward Creatio changed.");
        }
        report(&self.org, lane);
        step
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut lanes = self.lanes.lock();
        if let Some(lane) = lanes.get_mut(&self.org) {
            lane.in_flight = lane.in_flight.saturating_sub(1);
            report(&self.org, lane);
        }
    }
}

fn report(org: &OrgId, lane: &Lane) {
    let org = org.to_string();
    metrics::gauge!(crate::metrics::CREATIO_CONCURRENCY_LIMIT, "org_id" => org.clone())
        .set(lane.aimd.limit() as f64);
    metrics::gauge!(crate::metrics::CREATIO_IN_FLIGHT, "org_id" => org).set(lane.in_flight as f64);
}

/// What a Creatio error says about its load.
pub fn signal_of(error: &creatio::Error) -> Signal {
    match error {
        creatio::Error::Unavailable {
            status: 429 | 503, ..
        } => Signal::Overloaded,
        creatio::Error::Unreachable {
            timed_out: true, ..
        } => Signal::Overloaded,
        _ => Signal::Answered(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Signal {
        sized(n, 10)
    }

    fn sized(n: u64, ops: usize) -> Signal {
        Signal::Answered(Some(Timing {
            latency: Duration::from_millis(n),
            ops,
        }))
    }

    #[test]
    fn good_answers_raise_the_limit_by_one_per_limits_worth_up_to_the_ceiling() {
        let mut a = Aimd::new(Bounds {
            floor: 1,
            ceiling: 4,
        });
        assert_eq!(a.limit(), 2);
        // +1/limit per answer: about a limit's worth of answers per step
        // (2 → 2.5 → 2.9 → 3.24, then 3.55 → 3.83 → 4.09).
        assert_eq!(a.observe(ms(10), true), Step::Held);
        assert_eq!(a.observe(ms(10), true), Step::Held);
        assert_eq!(a.observe(ms(10), true), Step::Increased);
        assert_eq!(a.limit(), 3);
        for _ in 0..2 {
            assert_eq!(a.observe(Signal::Answered(None), true), Step::Held);
        }
        assert_eq!(a.observe(Signal::Answered(None), true), Step::Increased);
        assert_eq!(a.limit(), 4);
        for _ in 0..50 {
            a.observe(ms(10), true);
        }
        assert_eq!(a.limit(), 4, "the ceiling holds");
    }

    #[test]
    fn overload_halves_the_limit_once_per_limits_worth_of_answers() {
        let mut a = Aimd::new(Bounds {
            floor: 1,
            ceiling: 16,
        });
        for _ in 0..200 {
            a.observe(ms(10), true);
        }
        assert_eq!(a.limit(), 16);
        assert_eq!(a.observe(Signal::Overloaded, true), Step::Decreased);
        assert_eq!(a.limit(), 8);
        // Answers to requests sent before the decrease: no second cut.
        for _ in 0..7 {
            assert_eq!(a.observe(Signal::Overloaded, true), Step::Held);
        }
        assert_eq!(a.limit(), 8);
        assert_eq!(a.observe(Signal::Overloaded, true), Step::Decreased);
        assert_eq!(a.limit(), 4);
        for _ in 0..10 {
            a.observe(Signal::Overloaded, true);
        }
        assert_eq!(a.limit(), 1, "down to the floor and no further");
    }

    #[test]
    fn latency_well_above_the_lowest_seen_lowers_the_limit() {
        let mut a = Aimd::new(Bounds {
            floor: 1,
            ceiling: 8,
        });
        for _ in 0..100 {
            a.observe(ms(5), true);
        }
        assert_eq!(a.limit(), 8);
        // Noise on a fast Creatio is not a slowdown.
        assert_ne!(a.observe(ms(15), true), Step::Decreased);
        assert_eq!(a.observe(ms(200), true), Step::Decreased);
        assert_eq!(a.limit(), 7);
        // Slow for good: the baseline follows, and the limit grows again.
        for _ in 0..2_000 {
            a.observe(ms(200), true);
        }
        assert_eq!(a.limit(), 8);
    }

    #[test]
    fn a_bigger_request_is_compared_with_requests_of_its_size() {
        let mut a = Aimd::new(Bounds {
            floor: 1,
            ceiling: 8,
        });
        for _ in 0..50 {
            a.observe(sized(102, 1), true);
        }
        assert_eq!(a.limit(), 8);
        // 100 ms a request and 2 ms an operation: a full one takes 300 ms
        // and says nothing about load.
        assert_ne!(a.observe(sized(300, 100), true), Step::Decreased);
        assert_eq!(a.observe(sized(310, 100), true), Step::Held);
        assert_eq!(a.limit(), 8);
        // One past the knee: half again as long, for its size.
        assert_eq!(a.observe(sized(450, 100), true), Step::Decreased);
        assert_eq!(a.limit(), 7);
    }

    #[test]
    fn the_limit_grows_only_while_the_lane_is_full() {
        let mut a = Aimd::new(Bounds {
            floor: 1,
            ceiling: 8,
        });
        for _ in 0..50 {
            assert_eq!(a.observe(ms(10), false), Step::Held);
        }
        assert_eq!(a.limit(), 2, "two at a time say nothing about a third");
        for _ in 0..3 {
            a.observe(ms(10), true);
        }
        assert_eq!(a.limit(), 3);
    }

    #[test]
    fn a_full_lane_gives_no_permit_and_has_no_room_until_one_is_dropped() {
        let lanes = Lanes::new(Bounds {
            floor: 1,
            ceiling: 8,
        });
        let a = OrgId::from("org_a");
        let b = OrgId::from("org_b");
        let first = lanes.try_acquire(&a).unwrap();
        let second = lanes.try_acquire(&a).unwrap();
        assert!(lanes.try_acquire(&a).is_none(), "a starts at 2");
        assert_eq!(lanes.room(&a), 0, "a's lane is full");
        let other = lanes.try_acquire(&b);
        assert!(other.is_some(), "another org's lane is its own");
        drop(first);
        assert_eq!(lanes.room(&a), 1);
        second.observe(Signal::Overloaded);
        assert_eq!(lanes.limit_of(&a), 1);
        assert!(lanes.try_acquire(&a).is_none(), "limit 1, one in flight");
    }

    #[test]
    fn errors_that_mean_overload() {
        let unavailable = |status| creatio::Error::Unavailable {
            status,
            message: String::new(),
            retry_after: None,
        };
        assert_eq!(signal_of(&unavailable(429)), Signal::Overloaded);
        assert_eq!(signal_of(&unavailable(503)), Signal::Overloaded);
        assert_eq!(signal_of(&unavailable(500)), Signal::Answered(None));
        let timeout = creatio::Error::Unreachable {
            url: String::new(),
            reason: String::new(),
            timed_out: true,
        };
        assert_eq!(signal_of(&timeout), Signal::Overloaded);
    }
}
