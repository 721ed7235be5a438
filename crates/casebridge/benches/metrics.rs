//! What one anonymous `GET /metrics` costs as the jobs table grows: the
//! real service (in this process, SQLite in a temporary directory, or
//! PostgreSQL with BENCH_DATABASE_URL), scraped back to back with 0 and then
//! BENCH_JOBS (default 200,000) finished jobs in the table. Also prints what
//! the count by state (the scan each scrape used to run) costs at that size.
//! Prints figures; asserts nothing about time.
//!
//! ```sh
//! cargo bench -p casebridge --bench metrics
//! BENCH_JOBS=500000 cargo bench -p casebridge --bench metrics
//! ```

use std::time::{Duration, Instant};

use casebridge::config::{Config, SecretKeySource};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// `n` scrapes one after the other: p50, p99 and the slowest.
async fn scrapes(http: &reqwest::Client, url: &str, n: usize) -> (Duration, Duration, Duration) {
    let mut took = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let text = http.get(url).send().await.unwrap().text().await.unwrap();
        took.push(start.elapsed());
        assert!(text.contains("casebridge_jobs"), "{text}");
    }
    took.sort();
    (
        percentile(&took, 0.5),
        percentile(&took, 0.99),
        *took.last().unwrap(),
    )
}

/// `n` finished jobs for one org, in multi-row inserts.
async fn fill_jobs(db: &casebridge::storage::Db, n: u64) {
    let started = Instant::now();
    let chunk = 500u64;
    let mut seq = 0u64;
    while seq < n {
        let rows: Vec<String> = (seq..(seq + chunk).min(n))
            .map(|i| {
                format!(
                    "('{}', 'bench-org', 'c{}', {i}, 'message', '{{}}', 'done', 1, 0, 0, 0)",
                    uuid::Uuid::new_v4(),
                    i / 20
                )
            })
            .collect();
        sqlx::query(&format!(
            "INSERT INTO jobs (id, org_id, conversation_id, seq, kind, payload, state, attempts, run_after, created_at, updated_at) VALUES {}",
            rows.join(", ")
        ))
        .execute(db.pool())
        .await
        .unwrap();
        seq += chunk;
    }
    println!(
        "inserted {n} jobs in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let jobs = env_num("BENCH_JOBS", 200_000);
    let n = env_num("BENCH_SCRAPES", 500) as usize;
    let dir = tempfile::tempdir().unwrap();
    let database_url = std::env::var("BENCH_DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}", dir.path().join("bench.db").display()));
    let config = Config::loopback(
        database_url.clone(),
        SecretKeySource::File(dir.path().join("bench.key")),
        "bench-operator-token-0123456789".to_string().into(),
    );
    let running = casebridge::server::start(config).await.unwrap();
    let url = format!("http://{}/metrics", running.addr);
    let http = reqwest::Client::new();
    let db = running.db.clone();
    println!("backend: {}", database_url.split(':').next().unwrap());

    let (p50, p99, max) = scrapes(&http, &url, n).await;
    println!(
        "GET /metrics, empty jobs table: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({n} scrapes)",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
    fill_jobs(&db, jobs).await;
    // Past the gauges' refresh age, so the table is counted once in the run.
    tokio::time::sleep(casebridge::metrics::JOB_GAUGES_MAX_AGE).await;
    let (p50, p99, max) = scrapes(&http, &url, n).await;
    println!(
        "GET /metrics, {jobs} jobs: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({n} scrapes; the max includes the one count every {} s)",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3,
        casebridge::metrics::JOB_GAUGES_MAX_AGE.as_secs()
    );
    let start = Instant::now();
    let counted = casebridge::storage::jobs::job_counts_by_state(&db)
        .await
        .unwrap();
    println!(
        "the count by state itself at {jobs} jobs: {:.2} ms ({counted:?}); a scrape ran it every time before",
        start.elapsed().as_secs_f64() * 1e3
    );
    if database_url.starts_with("postgres") {
        sqlx::query("DELETE FROM jobs WHERE org_id = 'bench-org'")
            .execute(db.pool())
            .await
            .unwrap();
    }
    running.shutdown().await.unwrap();
}
