//! casebridge as users run it: `casebridge serve` and `casebridge emulator`
//! as separate processes on loopback, the load from this one, against a
//! Creatio that is fast, slow, shared and sick (the emulator's cost model
//! and faults). Prints each scenario's figures; asserts nothing about time.
//!
//! - (a) zero latency: a backlog's end-to-end rate and requests per
//!   message, and the lag (202 → activity) at an offered 1,000 messages/s,
//!   on SQLite and on PostgreSQL; peak RSS of `serve`;
//! - (b) 100 ms a request + 2 ms an operation, at most 8 requests at once
//!   per client: the rate as a fraction of that model's ceiling;
//! - (c) noisy neighbour: org B's lag alone and while org A's Creatio
//!   answers in 2 s with 10 % 500s and A has a backlog;
//! - (d) overload: past 4 requests in flight the emulator gets slower;
//!   how many casebridge keeps in flight, over time;
//! - (e) a 100,000-message backlog behind the slow Creatio of (b): drain
//!   rate and peak RSS of `serve`.
//!
//! ```sh
//! cargo bench -p casebridge --bench processes                 # every scenario
//! SCENARIOS=c,d cargo bench -p casebridge --bench processes   # some
//! ```
//! PostgreSQL for (a) is `BENCH_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432`), in a database made for the run
//! and dropped after it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use casebridge::client::ApiClient;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// A child process, killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Process {
    /// The most memory the process has held (VmHWM), in MB.
    fn peak_rss_mb(&self) -> f64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.0.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }
}

/// Starts `casebridge ARGS` and reads its stdout until a line contains
/// `until`; every line up to it.
fn start(args: &[&str], env: &[(&str, String)], until: &str) -> (Process, Vec<String>) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_casebridge"));
    command
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("the casebridge binary starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut lines = Vec::new();
    let mut reader = BufReader::new(stdout).lines();
    for line in reader.by_ref() {
        let line = line.expect("stdout is text");
        let done = line.contains(until);
        lines.push(line);
        if done {
            break;
        }
    }
    // Keep draining, so that the process never blocks on a full pipe.
    std::thread::spawn(move || for _ in reader {});
    (Process(child), lines)
}

/// An emulated Creatio in its own process, and its operator API.
struct Creatio {
    _process: Process,
    url: String,
    secret: String,
    http: reqwest::Client,
}

impl Creatio {
    fn start() -> Creatio {
        let secret = uuid::Uuid::new_v4().simple().to_string();
        let (process, lines) = start(
            &[
                "emulator",
                "--listen",
                "127.0.0.1:0",
                "--client-id",
                "bench",
                "--client-secret",
                &secret,
            ],
            &[],
            "Press Ctrl-C",
        );
        let url = lines
            .iter()
            .find_map(|l| l.trim().strip_prefix("Instance URL:"))
            .expect("the emulator prints its URL")
            .trim()
            .to_string();
        Creatio {
            _process: process,
            url,
            secret,
            http: reqwest::Client::new(),
        }
    }

    async fn operator(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method, format!("{}/__emulator/{path}", self.url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request.send().await.expect("the emulator answers");
        let status = answer.status();
        let text = answer.text().await.unwrap_or_default();
        assert!(status.is_success(), "{path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn cost(&self, model: Value) {
        self.operator(reqwest::Method::PUT, "cost", Some(model))
            .await;
    }

    async fn fault(&self, fault: Value) {
        self.operator(reqwest::Method::POST, "faults", Some(fault))
            .await;
    }

    async fn stats(&self) -> Value {
        self.operator(reqwest::Method::GET, "stats", None).await
    }

    /// Activities created so far.
    async fn activities(&self) -> u64 {
        self.stats().await["by_entity"]["Activity"]["POST"]
            .as_u64()
            .unwrap_or(0)
    }

    /// Requests of the bench client in flight now (the cost model's count).
    async fn in_flight(&self) -> u64 {
        let cost = self.operator(reqwest::Method::GET, "cost", None).await;
        cost["load"]["bench"]["in_flight"].as_u64().unwrap_or(0)
    }
}

/// `casebridge serve` in its own process.
struct Serve {
    process: Process,
    api: ApiClient,
    operator: String,
}

impl Serve {
    fn start(database_url: &str) -> Serve {
        let operator = format!("operator-{}", uuid::Uuid::new_v4().simple());
        let env = [
            ("CASEBRIDGE_LISTEN", "127.0.0.1:0".to_string()),
            ("CASEBRIDGE_DATABASE_URL", database_url.to_string()),
            ("CASEBRIDGE_ADMIN_TOKEN", operator.clone()),
            ("CASEBRIDGE_ALLOW_PRIVATE_TARGETS", "127.0.0.0/8".into()),
            ("CASEBRIDGE_LOG", "error".into()),
        ];
        let (process, lines) = start(&["serve"], &env, "casebridge listening on");
        let addr = lines
            .last()
            .and_then(|l| l.strip_prefix("casebridge listening on "))
            .and_then(|l| l.split_whitespace().next())
            .expect("serve prints its address")
            .to_string();
        Serve {
            process,
            api: ApiClient::new(format!("http://{addr}")),
            operator,
        }
    }

    /// An org connected to `creatio`; its API key.
    async fn org(&self, name: &str, creatio: &Creatio) -> String {
        let created = self
            .api
            .create_org(&self.operator, name)
            .await
            .and_then(|a| a.expect(StatusCode::CREATED))
            .unwrap_or_else(|e| panic!("{e}"));
        let key = created["api_key"]["key"].as_str().unwrap().to_string();
        let settings = json!({"instance_url": creatio.url, "client_id": "bench", "client_secret": creatio.secret});
        self.api
            .test_and_save(&key, &settings)
            .await
            .and_then(|a| a.expect(StatusCode::OK))
            .unwrap_or_else(|e| panic!("{e}"));
        key
    }

    async fn send(&self, key: &str, events: Vec<Value>) {
        self.api
            .send_events(key, &Value::Array(events))
            .await
            .and_then(|a| a.expect(StatusCode::ACCEPTED))
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Sends `conversations` × `per` messages, 500 events a request.
    async fn backlog(&self, key: &str, run: &str, conversations: u64, per: u64) {
        let events: Vec<Value> = (0..conversations)
            .flat_map(|c| (0..per).map(move |i| message(&format!("{run}-{c}"), i)))
            .collect();
        for chunk in events.chunks(500) {
            self.send(key, chunk.to_vec()).await;
        }
    }

    /// Sends `rate` single-message conversations a second for `secs`
    /// seconds; their ids.
    async fn steady(&self, key: &str, run: &str, rate: u64, secs: u64) -> Vec<String> {
        let mut ids = Vec::new();
        let started = Instant::now();
        let every = Duration::from_secs_f64(1.0 / rate as f64);
        for n in 0..rate * secs {
            tokio::time::sleep_until((started + every * n as u32).into()).await;
            let conv = format!("{run}-{n}");
            self.send(key, vec![message(&conv, 0)]).await;
            ids.push(conv);
        }
        ids
    }

    /// Each conversation's lag in ms, from its event's timeline line to the
    /// line of its activity written, once every one is written; sorted.
    async fn lags(&self, key: &str, ids: &[String]) -> Vec<i64> {
        let at = |line: &Value| {
            chrono::DateTime::parse_from_rfc3339(line["at"].as_str().unwrap_or_default())
                .map(|t| t.timestamp_millis())
                .ok()
        };
        let mut lags = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(300);
        for id in ids {
            loop {
                let conv = self
                    .api
                    .conversation(key, id)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"))
                    .body;
                let lines = conv["timeline"].as_array().cloned().unwrap_or_default();
                let event = lines.iter().find(|l| l["kind"] == "event").and_then(at);
                let written = lines
                    .iter()
                    .find(|l| {
                        l["kind"] == "creatio"
                            && l["summary"].as_str().is_some_and(|s| s.contains("activit"))
                    })
                    .and_then(at);
                if let (Some(event), Some(written)) = (event, written) {
                    lags.push(written - event);
                    break;
                }
                assert!(Instant::now() < deadline, "{id} was not written: {conv}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        lags.sort_unstable();
        lags
    }
}

fn message(conv: &str, i: u64) -> Value {
    json!({
        "id": format!("{conv}-e{i}"), "type": "message.created",
        "conversation": {"id": conv, "channel": "web"},
        "message": {"id": format!("m{i}"), "role": if i.is_multiple_of(2) { "customer" } else { "ai" },
                    "text": format!("message {i} of {conv}")}
    })
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Waits until `creatio` holds `want` activities; the seconds since
/// `since`.
async fn drained(creatio: &Creatio, want: u64, since: Instant) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(900);
    while creatio.activities().await < want {
        assert!(Instant::now() < deadline, "the backlog did not drain");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    since.elapsed().as_secs_f64()
}

/// An emulator, `serve` on `database_url`, and one org connected to the
/// emulator; its API key.
async fn one_org(database_url: &str) -> (Creatio, Serve, String) {
    let creatio = Creatio::start();
    let serve = Serve::start(database_url);
    let key = serve.org("A", &creatio).await;
    (creatio, serve, key)
}

fn sqlite(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("cb.db").display())
}

/// (a) on one backend.
async fn zero_latency(backend: &str, database_url: &str) {
    let (creatio, serve, key) = one_org(database_url).await;
    creatio
        .operator(reqwest::Method::DELETE, "stats", None)
        .await;
    let (conversations, per) = (1_000, 20);
    let started = Instant::now();
    serve.backlog(&key, "backlog", conversations, per).await;
    let ingest = started.elapsed().as_secs_f64();
    let secs = drained(&creatio, conversations * per, started).await;
    let requests = creatio.stats().await["odata_requests"]
        .as_u64()
        .unwrap_or(0);
    let messages = (conversations * per) as f64;
    println!(
        "(a) {backend}, {} messages over {conversations} conversations: ingest {:.0}/s, end to end {:.0} messages/s, {:.4} requests/message",
        messages,
        messages / ingest,
        messages / secs,
        requests as f64 / messages
    );
    let ids = serve.steady(&key, "steady", 1_000, 5).await;
    let sample: Vec<String> = ids.iter().step_by(10).cloned().collect();
    let lags = serve.lags(&key, &sample).await;
    println!(
        "(a) {backend}, 1,000 messages/s for 5 s (each a new conversation; every 10th measured): 202 → activity p50 {} ms, p99 {} ms; peak RSS of serve {:.0} MB",
        percentile(&lags, 0.5),
        percentile(&lags, 0.99),
        serve.process.peak_rss_mb()
    );
}

async fn scenario_a() {
    let dir = tempfile::tempdir().unwrap();
    zero_latency("SQLite", &sqlite(&dir)).await;
    let server = std::env::var("BENCH_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let name = format!("cb_bench_{}", uuid::Uuid::new_v4().simple());
    let admin = match sqlx::PgPool::connect(&format!("{server}/postgres")).await {
        Ok(pool) => pool,
        Err(e) => {
            println!("(a) PostgreSQL: not measured, {server} does not answer ({e})");
            return;
        }
    };
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .unwrap();
    zero_latency("PostgreSQL", &format!("{server}/{name}")).await;
    let _ = sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&admin)
        .await;
}

/// The emulator's slow Creatio of (b) and (e).
fn slow_model() -> Value {
    json!({"base_ms": 100, "per_op_ms": 2, "jitter": 0.1, "max_concurrent": 8, "over_limit": "queue"})
}

/// What (b)'s model allows at most: 8 requests of 100 operations at once,
/// each taking 100 ms + 100 × 2 ms; in messages/s if every operation were
/// a message.
const SLOW_CEILING: f64 = 8.0 * 100.0 / (0.1 + 100.0 * 0.002);

async fn scenario_b() {
    let dir = tempfile::tempdir().unwrap();
    let (creatio, serve, key) = one_org(&sqlite(&dir)).await;
    creatio.cost(slow_model()).await;
    let (conversations, per) = (500, 40);
    let started = Instant::now();
    serve.backlog(&key, "slow", conversations, per).await;
    let secs = drained(&creatio, conversations * per, started).await;
    let rate = (conversations * per) as f64 / secs;
    let stats = creatio.stats().await;
    println!(
        "(b) 100 ms + 2 ms/op, ≤ 8 at once, {} messages: {rate:.0} messages/s = {:.0} % of the model's ceiling ({SLOW_CEILING:.0}/s); {} requests, {:.0} operations per $batch",
        conversations * per,
        100.0 * rate / SLOW_CEILING,
        stats["odata_requests"],
        stats["batch_operations"].as_f64().unwrap_or(0.0)
            / stats["batch_requests"].as_f64().unwrap_or(1.0).max(1.0)
    );
}

async fn scenario_c() {
    let dir = tempfile::tempdir().unwrap();
    let healthy = Creatio::start();
    let sick = Creatio::start();
    let serve = Serve::start(&sqlite(&dir));
    let key_a = serve.org("A", &sick).await;
    let key_b = serve.org("B", &healthy).await;
    let (rate, secs, backlog) = (20, 10, 20_000);
    let alone = serve.steady(&key_b, "alone", rate, secs).await;
    let alone = serve.lags(&key_b, &alone).await;
    println!(
        "(c) org B alone ({} conversations, {rate}/s): lag p50 {} ms, p99 {} ms",
        alone.len(),
        percentile(&alone, 0.5),
        percentile(&alone, 0.99)
    );
    sick.fault(json!({"kind": "latency", "ms": 2000})).await;
    sick.fault(json!({"kind": "server_errors", "rate": 0.1}))
        .await;
    serve.backlog(&key_a, "a", backlog / 20, 20).await;
    let with_a = serve.steady(&key_b, "with-a", rate, secs).await;
    let with_a = serve.lags(&key_b, &with_a).await;
    println!(
        "(c) org B with A sick (2 s, 10 % 500s, {backlog} waiting): lag p50 {} ms, p99 {} ms; B's p99 with A / alone: {:.2}× (target ≤ 1.5×)",
        percentile(&with_a, 0.5),
        percentile(&with_a, 0.99),
        percentile(&with_a, 0.99) as f64 / percentile(&alone, 0.99).max(1) as f64
    );
}

async fn scenario_d() {
    let dir = tempfile::tempdir().unwrap();
    let (creatio, serve, key) = one_org(&sqlite(&dir)).await;
    creatio
        .cost(json!({"base_ms": 100, "per_op_ms": 2, "jitter": 0.1, "knee": 4, "slowdown": 0.5}))
        .await;
    let (conversations, per) = (1_000, 20);
    let want = conversations * per;
    let started = Instant::now();
    serve.backlog(&key, "over", conversations, per).await;
    // The emulator's count of requests in flight, every 20 ms, until the
    // backlog is in.
    let mut samples: Vec<(f64, u64)> = Vec::new();
    while creatio.activities().await < want {
        samples.push((started.elapsed().as_secs_f64(), creatio.in_flight().await));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(started.elapsed() < Duration::from_secs(900), "no drain");
    }
    let secs = started.elapsed().as_secs_f64();
    let mean = samples.iter().map(|s| s.1 as f64).sum::<f64>() / samples.len().max(1) as f64;
    let per_second: Vec<String> = (0..secs.ceil() as usize)
        .map(|s| {
            let in_second: Vec<f64> = samples
                .iter()
                .filter(|(t, _)| *t as usize == s)
                .map(|(_, n)| *n as f64)
                .collect();
            format!(
                "{:.1}",
                in_second.iter().fold(0.0, |a, b| a + b) / in_second.len().max(1) as f64
            )
        })
        .collect();
    let stats = creatio.stats().await;
    println!(
        "(d) overload, knee 4 (each request over it adds half), {want} messages in {secs:.1} s ({:.0}/s): requests in flight averaged {mean:.2} (target 3–5); {} faults answered",
        want as f64 / secs,
        stats["faults_injected"]
    );
    println!(
        "(d) requests in flight, mean per second: {}",
        per_second.join(" ")
    );
}

async fn scenario_e() {
    let dir = tempfile::tempdir().unwrap();
    let (creatio, serve, key) = one_org(&sqlite(&dir)).await;
    creatio.cost(slow_model()).await;
    let (conversations, per) = (5_000, 20);
    let started = Instant::now();
    serve.backlog(&key, "big", conversations, per).await;
    let ingest = started.elapsed().as_secs_f64();
    let ingest_rss = serve.process.peak_rss_mb();
    let secs = drained(&creatio, conversations * per, started).await;
    println!(
        "(e) {} messages behind the slow Creatio of (b): ingested in {ingest:.1} s, all written in {secs:.1} s ({:.0} messages/s); peak RSS of serve {:.0} MB (target ≤ 64; {ingest_rss:.0} MB by the end of the ingest)",
        conversations * per,
        (conversations * per) as f64 / secs,
        serve.process.peak_rss_mb()
    );
}

#[tokio::main]
async fn main() {
    let scenarios = std::env::var("SCENARIOS").unwrap_or_else(|_| "a,b,c,d,e".into());
    println!(
        "casebridge against Creatio, as separate processes on loopback (scenarios {scenarios})"
    );
    for s in scenarios.split(',').map(str::trim) {
        match s {
            "a" => scenario_a().await,
            "b" => scenario_b().await,
            "c" => scenario_c().await,
            "d" => scenario_d().await,
            "e" => scenario_e().await,
            other => panic!("no scenario {other:?}: SCENARIOS takes a, b, c, d and e"),
        }
    }
}
