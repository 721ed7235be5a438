//! End-to-end sync benchmark: the real service (in this process, SQLite in a
//! temporary directory, or PostgreSQL with BENCH_DATABASE_URL) against the
//! emulator on loopback. Prints figures; asserts nothing about time.
//!
//! ```sh
//! cargo bench -p casebridge --bench sync
//! BENCH_MESSAGES=20000 BENCH_CONVERSATIONS=1000 BENCH_RATE=1000 BENCH_SECS=10 cargo bench -p casebridge --bench sync
//! ```

use std::time::{Duration, Instant};

use casebridge::config::{Config, SecretKeySource};
use creatio_emulator::{ClientConfig, Emulator, EmulatorConfig};
use serde_json::{json, Value};
use sqlx::Row;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn event(run: &str, conv: u64, i: u64) -> Value {
    json!({
        "id": format!("{run}-{conv}-{i}"), "type": "message.created",
        "conversation": {"id": format!("{run}-{conv}"), "channel": "web",
                         "contact": {"name": format!("Customer {conv}"), "email": format!("c{conv}@bench.example.com")}},
        "message": {"id": format!("m{i}"), "role": if i.is_multiple_of(2) { "customer" } else { "ai" }, "text": format!("benchmark message {i}")}
    })
}

async fn unfinished(db: &casebridge::storage::Db) -> i64 {
    sqlx::query("SELECT COUNT(*) AS n FROM jobs WHERE state IN ('pending', 'running')")
        .fetch_one(db.pool())
        .await
        .unwrap()
        .get("n")
}

async fn wait_done(db: &casebridge::storage::Db) {
    while unfinished(db).await > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    casebridge::allocator::tune();
    let messages = env_num("BENCH_MESSAGES", 20_000);
    let conversations = env_num("BENCH_CONVERSATIONS", 1_000);
    let rate = env_num("BENCH_RATE", 1_000);
    let secs = env_num("BENCH_SECS", 10);
    let workers = env_num("BENCH_WORKERS", 8) as usize;
    let emulator = Emulator::start(EmulatorConfig {
        clients: vec![ClientConfig::new("bench", "bench-secret")],
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let database_url = std::env::var("BENCH_DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}", dir.path().join("bench.db").display()));
    let mut config = Config::loopback(
        database_url.clone(),
        SecretKeySource::Inline(
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
                .to_string()
                .into(),
        ),
        "bench-operator-token".to_string().into(),
    );
    config.workers = workers;
    let running = casebridge::server::start(config).await.unwrap();
    let base = format!("http://{}", running.addr);
    let http = reqwest::Client::new();
    let org: Value = http
        .post(format!("{base}/v1/orgs"))
        .bearer_auth("bench-operator-token")
        .json(&json!({"name": "bench"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = org["api_key"]["key"].as_str().unwrap().to_string();
    let saved = http.post(format!("{base}/v1/creatio/connection")).bearer_auth(&key)
        .json(&json!({"instance_url": emulator.url(), "client_id": "bench", "client_secret": "bench-secret"}))
        .send().await.unwrap();
    assert_eq!(saved.status(), 200);
    let before = emulator.stats();
    println!(
        "casebridge sync benchmark: {workers} workers, database {}",
        if database_url.starts_with("sqlite") {
            "SQLite (temp file)"
        } else {
            "PostgreSQL"
        }
    );

    // Phase 1: sustained throughput, as fast as 4 senders can push.
    let per_conv = messages.div_ceil(conversations);
    let mut all = Vec::with_capacity(messages as usize);
    for i in 0..per_conv {
        for c in 0..conversations {
            if all.len() < messages as usize {
                all.push(event("t", c, i));
            }
        }
    }
    let chunks: Vec<Value> = all.chunks(500).map(|c| Value::Array(c.to_vec())).collect();
    let started = Instant::now();
    let mut senders = Vec::new();
    for s in 0..4 {
        let mine: Vec<Value> = chunks.iter().skip(s).step_by(4).cloned().collect();
        let (http, base, key) = (http.clone(), base.clone(), key.clone());
        senders.push(tokio::spawn(async move {
            for body in mine {
                let r = http
                    .post(format!("{base}/v1/events"))
                    .bearer_auth(&key)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let status = r.status();
                assert_eq!(status, 202, "{}", r.text().await.unwrap_or_default());
            }
        }));
    }
    for s in senders {
        s.await.unwrap();
    }
    let ingested = started.elapsed();
    wait_done(&running.db).await;
    let synced = started.elapsed();
    let after = emulator.stats();
    let requests = after.odata_requests - before.odata_requests;
    println!("phase 1: {messages} messages over {conversations} conversations");
    println!(
        "  ingest (202):              {:>9.0} messages/s ({:.2} s)",
        messages as f64 / ingested.as_secs_f64(),
        ingested.as_secs_f64()
    );
    println!(
        "  end to end (in Creatio):   {:>9.0} messages/s ({:.2} s)",
        messages as f64 / synced.as_secs_f64(),
        synced.as_secs_f64()
    );
    println!("  Creatio requests/message:  {:>9.3} ({requests} requests, {} in $batch carrying {} operations)",
        requests as f64 / messages as f64, after.batch_requests - before.batch_requests, after.batch_operations - before.batch_operations);
    println!("  token requests (1 org):    {:>9}", after.token_requests);

    // Phase 2: latency at a fixed offered load.
    let phase2_start = casebridge::storage::now_ms();
    let tick = Duration::from_millis(10);
    let per_tick = (rate / 100).max(1);
    let mut n = 0u64;
    let mut next = Instant::now();
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        let batch: Vec<Value> = (0..per_tick)
            .map(|k| event("l", (n + k) % conversations, (n + k) / conversations))
            .collect();
        n += per_tick;
        let (http, base, key) = (http.clone(), base.clone(), key.clone());
        tokio::spawn(async move {
            let _ = http
                .post(format!("{base}/v1/events"))
                .bearer_auth(&key)
                .json(&Value::Array(batch))
                .send()
                .await;
        });
        next += tick;
        tokio::time::sleep_until(next.into()).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    wait_done(&running.db).await;
    let rows = sqlx::query(
        "SELECT updated_at - created_at AS lag FROM jobs WHERE state = 'done' AND created_at >= $1",
    )
    .bind(phase2_start)
    .fetch_all(running.db.pool())
    .await
    .unwrap();
    let mut lags: Vec<i64> = rows.iter().map(|r| r.get::<i64, _>("lag")).collect();
    lags.sort_unstable();
    println!(
        "phase 2: offered {rate} messages/s for {secs} s ({} messages)",
        lags.len()
    );
    println!(
        "  202 → activity in Creatio: p50 {} ms, p99 {} ms, max {} ms",
        percentile(&lags, 0.5),
        percentile(&lags, 0.99),
        lags.last().copied().unwrap_or(0)
    );
    let total = emulator.stats();
    println!(
        "  Creatio requests/message:  {:>9.3}",
        (total.odata_requests - after.odata_requests) as f64 / lags.len().max(1) as f64
    );
    if let Some(mb) = peak_rss_mb() {
        println!("peak RSS (service + emulator + load generator in one process): {mb:.0} MB");
    }
    running.shutdown().await.unwrap();
    emulator.shutdown().await;
}
