//! The per-org rate limit on Creatio's process calls: a token bucket per
//! org, so a process calling in a loop cannot flood the queue.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A token bucket per org: `rate` calls per second, bursts of `burst`.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Default for RateLimiter {
    /// 50 calls/s with bursts of 500: far above what agents do by hand,
    /// enough for a bulk status change, and a stop to a process in a loop.
    fn default() -> Self {
        RateLimiter::new(50.0, 500.0)
    }
}

impl RateLimiter {
    pub fn new(rate: f64, burst: f64) -> Self {
        RateLimiter {
            rate,
            burst,
            buckets: Mutex::default(),
        }
    }

    /// Takes one call's token, or says how long until one is free.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, at) = buckets.entry(key.to_string()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_limiter_allows_bursts_then_refills() {
        let limiter = RateLimiter::new(10.0, 3.0);
        for _ in 0..3 {
            limiter.check("org").unwrap();
        }
        let wait = limiter.check("org").unwrap_err();
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        limiter.check("other org").unwrap();
    }
}
