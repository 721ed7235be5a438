//! Fault injection, for testing how clients survive a misbehaving Creatio:
//! a rate of HTTP 500s, 429s with `Retry-After`, added latency, a full outage
//! (503 from the web server for every Creatio endpoint) and an outage of the
//! token endpoint alone. Each fault may last for a duration; the operator API
//! is never faulted.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// A kind of fault.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// This fraction (0–1) of OData requests fail with 500.
    ServerErrors { rate: f64 },
    /// OData requests are refused with 429 and `Retry-After` (a fraction, default all).
    RateLimit {
        retry_after_secs: u64,
        #[serde(default = "all")]
        rate: f64,
    },
    /// Every Creatio request is delayed.
    Latency { ms: u64 },
    /// Every Creatio endpoint answers 503.
    Outage,
    /// The token endpoint answers 503.
    TokenOutage,
}

fn all() -> f64 {
    1.0
}

/// A fault request as the operator API takes it.
#[derive(Debug, Clone, Deserialize)]
pub struct FaultRequest {
    #[serde(flatten)]
    pub kind: FaultKind,
    /// How long the fault lasts; forever when absent.
    #[serde(default)]
    pub duration_secs: Option<f64>,
}

#[derive(Debug, Clone)]
struct ActiveFault {
    kind: FaultKind,
    until: Option<Instant>,
}

/// Which endpoint a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Token,
    Odata,
}

/// What a request should suffer.
#[derive(Debug, Default, PartialEq)]
pub struct Verdict {
    pub delay: Option<Duration>,
    pub unavailable: bool,
    pub server_error: bool,
    pub rate_limited: Option<u64>,
}

#[derive(Debug, Default)]
pub struct Faults {
    active: Vec<ActiveFault>,
}

impl Faults {
    pub fn add(&mut self, request: FaultRequest) -> Result<(), String> {
        match &request.kind {
            FaultKind::ServerErrors { rate } | FaultKind::RateLimit { rate, .. }
                if !(0.0..=1.0).contains(rate) =>
            {
                return Err(format!("rate must be between 0 and 1, got {rate}"));
            }
            _ => {}
        }
        let until = match request.duration_secs {
            None => None,
            Some(d) if !(d.is_finite() && d > 0.0) => {
                return Err(format!(
                    "duration_secs must be a positive number of seconds, got {d}"
                ));
            }
            // A span too long to represent is as good as "forever".
            Some(d) => Duration::try_from_secs_f64(d)
                .ok()
                .and_then(|span| Instant::now().checked_add(span)),
        };
        self.active.push(ActiveFault {
            kind: request.kind,
            until,
        });
        Ok(())
    }

    pub fn clear(&mut self) {
        self.active.clear();
    }

    /// The faults in force, for display.
    pub fn list(&mut self) -> Vec<FaultKind> {
        self.expire();
        self.active.iter().map(|f| f.kind.clone()).collect()
    }

    fn expire(&mut self) {
        let now = Instant::now();
        self.active.retain(|f| f.until.is_none_or(|u| u > now));
    }

    /// Decides what happens to one request.
    pub fn judge(&mut self, endpoint: Endpoint) -> Verdict {
        self.expire();
        let mut v = Verdict::default();
        for f in &self.active {
            match (&f.kind, endpoint) {
                (FaultKind::Latency { ms }, _) => {
                    v.delay = Some(v.delay.unwrap_or_default() + Duration::from_millis(*ms))
                }
                (FaultKind::Outage, _) | (FaultKind::TokenOutage, Endpoint::Token) => {
                    v.unavailable = true
                }
                (FaultKind::ServerErrors { rate }, Endpoint::Odata) if fastrand::f64() < *rate => {
                    v.server_error = true
                }
                (
                    FaultKind::RateLimit {
                        retry_after_secs,
                        rate,
                    },
                    Endpoint::Odata,
                ) if fastrand::f64() < *rate => v.rate_limited = Some(*retry_after_secs),
                _ => {}
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_expire_and_apply_to_their_endpoint() {
        let mut f = Faults::default();
        f.add(FaultRequest {
            kind: FaultKind::TokenOutage,
            duration_secs: Some(0.05),
        })
        .unwrap();
        f.add(FaultRequest {
            kind: FaultKind::RateLimit {
                retry_after_secs: 2,
                rate: 1.0,
            },
            duration_secs: None,
        })
        .unwrap();
        assert!(f.judge(Endpoint::Token).unavailable);
        assert!(!f.judge(Endpoint::Odata).unavailable);
        assert_eq!(f.judge(Endpoint::Odata).rate_limited, Some(2));
        std::thread::sleep(Duration::from_millis(80));
        assert!(!f.judge(Endpoint::Token).unavailable);
        assert!(f
            .add(FaultRequest {
                kind: FaultKind::ServerErrors { rate: 2.0 },
                duration_secs: None
            })
            .is_err());
    }
}
