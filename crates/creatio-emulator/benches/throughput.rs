//! Sustained throughput of the emulator over loopback, so later benchmarks
//! know it is not their bottleneck. Prints figures; asserts nothing.
//!
//! ```text
//! cargo bench -p creatio-emulator              # 5 s per phase
//! BENCH_SECS=10 BENCH_CONCURRENCY=64 cargo bench -p creatio-emulator
//! ```
//!
//! Phases: single `POST /0/odata/Activity` requests from concurrent workers,
//! then JSON `$batch` requests of 100 activity creations each. Client and
//! server share the machine, so the figures are a lower bound for the server.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use creatio_emulator::{ClientConfig, Emulator, EmulatorConfig};
use serde_json::{json, Value};

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Phase {
    name: &'static str,
    requests: u64,
    operations: u64,
    failures: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Phase {
    fn print(&mut self) {
        self.latencies.sort();
        let pick = |q: f64| {
            self.latencies
                .get(((self.latencies.len() as f64 - 1.0) * q) as usize)
                .copied()
                .unwrap_or_default()
        };
        let secs = self.elapsed.as_secs_f64();
        println!(
            "{:<28} {:>9.0} req/s {:>10.0} ops/s   p50 {:>7.2} ms   p99 {:>7.2} ms   failures {}",
            self.name,
            self.requests as f64 / secs,
            self.operations as f64 / secs,
            pick(0.50).as_secs_f64() * 1000.0,
            pick(0.99).as_secs_f64() * 1000.0,
            self.failures,
        );
    }
}

/// Runs `concurrency` workers sending `make()` requests until `duration` passes.
async fn run_phase<F>(
    name: &'static str,
    concurrency: u64,
    duration: Duration,
    operations_per_request: u64,
    make: F,
) -> Phase
where
    F: Fn() -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let stop = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (make, stop, requests, failures, latencies) = (
            Arc::clone(&make),
            Arc::clone(&stop),
            Arc::clone(&requests),
            Arc::clone(&failures),
            Arc::clone(&latencies),
        );
        workers.push(tokio::spawn(async move {
            let mut local = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let ok = match make().send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                local.push(t.elapsed());
                requests.fetch_add(1, Ordering::Relaxed);
                if !ok {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
            latencies.lock().unwrap().extend(local);
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    let elapsed = started.elapsed();
    let requests = requests.load(Ordering::Relaxed);
    let latencies = std::mem::take(&mut *latencies.lock().unwrap());
    Phase {
        name,
        requests,
        operations: requests * operations_per_request,
        failures: failures.load(Ordering::Relaxed),
        elapsed,
        latencies,
    }
}

#[tokio::main]
async fn main() {
    let secs = env_number("BENCH_SECS", 5);
    let concurrency = env_number("BENCH_CONCURRENCY", 32);
    let duration = Duration::from_secs(secs);
    let emulator = Emulator::start(EmulatorConfig {
        clients: vec![ClientConfig::new("bench", "bench")],
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts");
    let base = emulator.url().to_string();
    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!("{base}/connect/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "bench"),
            ("client_secret", "bench"),
        ])
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .expect("token")
        .json()
        .await
        .expect("token JSON");
    let token = token["access_token"]
        .as_str()
        .expect("access_token")
        .to_string();
    let case: Value = http
        .post(format!("{base}/0/odata/Case"))
        .bearer_auth(&token)
        .json(&json!({"Subject": "benchmark"}))
        .send()
        .await
        .expect("case")
        .json()
        .await
        .expect("case JSON");
    let case_id = case["Id"].as_str().expect("Id").to_string();

    println!(
        "creatio-emulator throughput over loopback: {secs} s per phase, {concurrency} concurrent clients, {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    let (h, t, b, c) = (http.clone(), token.clone(), base.clone(), case_id.clone());
    let mut single = run_phase("POST Activity (single)", concurrency, duration, 1, move || {
        h.post(format!("{b}/0/odata/Activity"))
            .bearer_auth(&t)
            .json(&json!({"Title": "Customer: hello", "CaseId": c, "Notes": "hello from the benchmark"}))
    })
    .await;
    single.print();

    let batch_body = json!({"requests": (0..100).map(|i| json!({
        "id": i.to_string(), "method": "POST", "url": "Activity",
        "body": {"Title": "AI: reply", "CaseId": case_id, "Notes": "batched"}})).collect::<Vec<_>>()});
    let batch_concurrency = (concurrency / 4).max(1);
    let (h, t, b) = (http.clone(), token.clone(), base.clone());
    let mut batched = run_phase(
        "$batch of 100 POST Activity",
        batch_concurrency,
        duration,
        100,
        move || {
            h.post(format!("{b}/0/odata/$batch"))
                .bearer_auth(&t)
                .header("Prefer", "continue-on-error")
                .json(&batch_body)
        },
    )
    .await;
    batched.print();

    let stats = emulator.stats();
    println!(
        "emulator counted {} OData requests, {} batch operations, {} token requests",
        stats.odata_requests, stats.batch_operations, stats.token_requests
    );
    emulator.shutdown().await;
}
