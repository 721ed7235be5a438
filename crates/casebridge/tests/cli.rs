//! The `casebridge` binary as a person runs it: `emulator` prints working
//! credentials, `check` prints the report with the right exit code, `serve`
//! generates an operator token once and stops cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use casebridge::client::ApiClient;
use reqwest::StatusCode;

/// Kills the child process when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn emulator_command_prints_working_credentials() {
    let child = Command::new(env!("CARGO_BIN_EXE_casebridge"))
        .args([
            "emulator",
            "--listen",
            "127.0.0.1:0",
            "--client-id",
            "cli-test",
            "--token-lifetime-secs",
            "60",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let mut running = Running(child);
    let stdout = running.0.stdout.take().expect("stdout is piped");
    let printed: Vec<String> = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .take_while(|l| !l.starts_with("Press Ctrl-C"))
            .collect()
    })
    .await
    .unwrap();
    let field = |name: &str| {
        printed
            .iter()
            .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| panic!("{name} is printed; got {printed:?}"))
    };
    let token_url = field("Token URL:");
    let instance = field("Instance URL:");
    assert_eq!(field("Client ID:"), "cli-test");
    let secret = field("Client secret:");
    assert!(secret.len() >= 32, "a generated secret is long: {secret}");
    assert!(instance.starts_with("http://127.0.0.1:") && !instance.ends_with(":0"));

    let http = reqwest::Client::new();
    let token: serde_json::Value = http
        .post(&token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "cli-test"),
            ("client_secret", &secret),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(token["expires_in"], 60);
    let statuses = http
        .get(format!("{instance}/0/odata/CaseStatus/$count"))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(statuses.text().await.unwrap(), "7");
}

#[test]
fn demo_verifies_every_step_and_exits_zero() {
    let out = Command::new(env!("CARGO_BIN_EXE_casebridge"))
        .arg("demo")
        .env_remove("CASEBRIDGE_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(!stdout.contains("[FAIL]"), "{stdout}");
    let steps = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("[ok]"))
        .count();
    assert!(
        stdout.contains(&format!("All {steps} steps verified.")),
        "{stdout}"
    );
    for step in [
        "test & save",
        "echo guard",
        "agent reply",
        "resolution",
        "0 duplicates",
    ] {
        assert!(stdout.contains(step), "{step}: {stdout}");
    }
    assert!(stderr.trim().is_empty(), "the demo logged errors: {stderr}");
}

#[test]
fn the_chatwoot_demo_tells_the_story_through_the_connector() {
    let out = Command::new(env!("CARGO_BIN_EXE_casebridge"))
        .args(["demo", "--platform", "chatwoot"])
        .env_remove("CASEBRIDGE_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(!stdout.contains("[FAIL]"), "{stdout}");
    for step in [
        "Chatwoot stand-in",
        "wrong token refused",
        "a repeated webhook: duplicate",
        "Hand-off",
        "was ignored (casebridge wrote this message itself",
        "Chatwoot conversation 123 resolved",
        "not echoed",
    ] {
        assert!(stdout.contains(step), "{step}: {stdout}");
    }
    assert!(stderr.trim().is_empty(), "the demo logged errors: {stderr}");
}

#[test]
fn emulator_command_refuses_a_zero_token_lifetime() {
    let out = Command::new(env!("CARGO_BIN_EXE_casebridge"))
        .args(["emulator", "--token-lifetime-secs", "0"])
        .output()
        .expect("the binary starts");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--token-lifetime-secs"), "{stderr}");
}

#[test]
fn serve_help_lists_every_setting_of_the_example_configuration() {
    let out = Command::new(env!("CARGO_BIN_EXE_casebridge"))
        .args(["serve", "--help"])
        .output()
        .expect("the binary starts");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    let example = include_str!("../../../casebridge.example.toml");
    let names = regex::Regex::new(r"CASEBRIDGE_[A-Z0-9_]+").unwrap();
    let mut seen = 0;
    for name in names.find_iter(example) {
        assert!(
            help.contains(name.as_str()),
            "serve --help omits {}:\n{help}",
            name.as_str()
        );
        seen += 1;
    }
    assert!(seen > 30, "the example names only {seen} settings");
    // A setting's meaning and an example value come with its name.
    assert!(
        help.contains("CASEBRIDGE_WORKERS: sync jobs run at a time"),
        "{help}"
    );
    assert!(
        help.contains("e.g. allow_private_targets = [\"127.0.0.0/8\"]"),
        "{help}"
    );
}

#[test]
fn config_prints_the_effective_settings_masked_and_refuses_invalid_ones() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cb.toml");
    std::fs::write(&file, "workers = 3\nai_api_key = \"sk-file-secret\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_casebridge"))
        .args(["config", "--config", file.to_str().unwrap()])
        .env("CASEBRIDGE_ADMIN_TOKEN", "env-operator-token-secret")
        .env("CASEBRIDGE_LISTEN", "127.0.0.1:9191")
        .output()
        .expect("the binary starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(!stdout.contains("secret"), "a secret is shown:\n{stdout}");
    let line = |name: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing:\n{stdout}"))
            .to_string()
    };
    assert!(
        line("CASEBRIDGE_LISTEN").contains("127.0.0.1:9191  [env]"),
        "{stdout}"
    );
    assert!(line("CASEBRIDGE_WORKERS").contains("3  [file "), "{stdout}");
    assert!(
        line("CASEBRIDGE_ADMIN_TOKEN").contains("(set, hidden)  [env]"),
        "{stdout}"
    );
    assert!(
        line("CASEBRIDGE_AI_API_KEY").contains("(set, hidden)  [file "),
        "{stdout}"
    );
    assert!(
        line("CASEBRIDGE_ROLE").contains("all  [default]"),
        "{stdout}"
    );

    std::fs::write(&file, "workers = 0\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_casebridge"))
        .args(["config", "--config", file.to_str().unwrap()])
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("the binary starts");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("CASEBRIDGE_WORKERS"), "{stderr}");
}

#[tokio::test]
async fn ready_exits_zero_only_while_the_service_is_ready() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let (running, _, addr) = tokio::task::spawn_blocking(move || start_serve(&path))
        .await
        .unwrap();
    let ready = |url: String| {
        Command::new(env!("CARGO_BIN_EXE_casebridge"))
            .args(["ready", "--url", &url])
            .output()
            .expect("the binary starts")
    };
    let url = format!("http://{addr}");
    let up = tokio::task::spawn_blocking({
        let url = url.clone();
        move || ready(url)
    })
    .await
    .unwrap();
    assert!(up.status.success(), "{up:?}");
    assert!(String::from_utf8_lossy(&up.stdout).contains("ready: "));
    drop(running);
    let down = tokio::task::spawn_blocking(move || ready(url))
        .await
        .unwrap();
    assert!(!down.status.success());
    let stderr = String::from_utf8_lossy(&down.stderr);
    assert!(stderr.contains("not ready: http://"), "{stderr}");
}

/// Runs the binary to completion off the async runtime.
async fn run(args: Vec<String>, env_remove: &[&str]) -> std::process::Output {
    let removed: Vec<String> = env_remove.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_casebridge"));
        cmd.args(args);
        for k in removed {
            cmd.env_remove(k);
        }
        cmd.output().expect("the binary starts")
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn check_command_prints_the_report_and_exits_by_outcome() {
    use creatio_emulator::{ClientConfig, Emulator, EmulatorConfig};
    let emulator = Emulator::start(EmulatorConfig {
        clients: vec![ClientConfig::new("cli", "cli-secret-value")],
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let args = |secret: &str, allow: bool| {
        let mut a = vec![
            "check".to_string(),
            "--instance-url".into(),
            format!("{}/", emulator.url()),
            "--client-id".into(),
            "cli".into(),
            "--client-secret".into(),
            secret.into(),
        ];
        if allow {
            a.extend(["--allow-private-targets".into(), "127.0.0.0/8".into()]);
        }
        a
    };
    let env = ["CASEBRIDGE_ALLOW_PRIVATE_TARGETS", "CREATIO_CLIENT_SECRET"];

    let ok = run(args("cli-secret-value", true), &env).await;
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{out}");
    assert!(out.contains("[ok  ] token"), "{out}");
    assert!(out.contains("removed the trailing slash"), "{out}");
    assert!(out.contains("All required checks passed."), "{out}");

    let bad = run(args("wrong", true), &env).await;
    let out = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{out}");
    assert!(
        out.contains("[FAIL] token") && out.contains("invalid_client"),
        "{out}"
    );
    assert!(out.contains("OAuth 2.0 integrated applications"), "{out}");
    assert!(!out.contains("wrong-"), "{out}");

    let private = run(args("cli-secret-value", false), &env).await;
    let out = String::from_utf8_lossy(&private.stdout);
    assert_eq!(private.status.code(), Some(1));
    assert!(out.contains("CASEBRIDGE_ALLOW_PRIVATE_TARGETS"), "{out}");
    emulator.shutdown().await;
}

/// Starts `casebridge serve` in `dir` and reads its banner.
fn start_serve(dir: &std::path::Path) -> (Running, Vec<String>, String) {
    start_serve_with(dir, &[])
}

/// Starts `casebridge serve` in `dir` with extra environment.
fn start_serve_with(dir: &std::path::Path, env: &[(&str, &str)]) -> (Running, Vec<String>, String) {
    start_serve_logging(dir, env, None)
}

/// [`start_serve_with`]; what it prints after its address (its log) is
/// copied to `log` when given.
fn start_serve_logging(
    dir: &std::path::Path,
    env: &[(&str, &str)],
    log: Option<std::path::PathBuf>,
) -> (Running, Vec<String>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_casebridge"));
    cmd.arg("serve")
        .current_dir(dir)
        .env("CASEBRIDGE_LISTEN", "127.0.0.1:0")
        .env("CASEBRIDGE_DATABASE_URL", "sqlite://casebridge.db")
        .env_remove("CASEBRIDGE_ADMIN_TOKEN")
        .env_remove("CASEBRIDGE_SECRET_KEY")
        .env_remove("CASEBRIDGE_SECRET_KEY_FILE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let mut running = Running(child);
    let mut lines = BufReader::new(running.0.stdout.take().unwrap()).lines();
    let mut banner = Vec::new();
    let addr = loop {
        let line = lines.next().expect("serve prints its address").unwrap();
        if let Some(rest) = line.strip_prefix("casebridge listening on ") {
            break rest.split_whitespace().next().unwrap().to_string();
        }
        banner.push(line);
    };
    if let Some(path) = log {
        std::thread::spawn(move || {
            use std::io::Write;
            let mut file = std::fs::File::create(path).unwrap();
            for line in lines.map_while(Result::ok) {
                let _ = writeln!(file, "{line}");
            }
        });
    }
    (running, banner, addr)
}

#[tokio::test]
async fn serve_generates_the_operator_token_once_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let (mut first, banner, addr) = tokio::task::spawn_blocking(move || start_serve(&path))
        .await
        .unwrap();
    let token = banner
        .iter()
        .skip_while(|l| !l.starts_with("Generated the operator admin token"))
        .nth(1)
        .unwrap_or_else(|| panic!("the token is printed: {banner:?}"))
        .trim()
        .to_string();
    assert!(token.starts_with("cba_"), "{token}");
    assert!(
        banner
            .iter()
            .any(|l| l.contains("replace a lost one: set CASEBRIDGE_ADMIN_TOKEN")),
        "the token comes with how to set or replace it: {banner:?}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("casebridge.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the key file is private");
        for file in ["casebridge.db", "casebridge.db-wal", "casebridge.db-shm"] {
            let mode = std::fs::metadata(dir.path().join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file} is private");
        }
    }
    let created = ApiClient::new(format!("http://{addr}"))
        .create_org(&token, "Acme")
        .await
        .unwrap();
    assert_eq!(created.status, 201, "{}", created.body);

    let pid = first.0.id().to_string();
    let status = tokio::task::spawn_blocking(move || {
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        first.0.wait().unwrap()
    })
    .await
    .unwrap();
    assert!(status.success(), "graceful shutdown exits 0: {status:?}");

    // A restart keeps the data and the token, and prints no new token.
    let path = dir.path().to_path_buf();
    let (_second, banner, addr) = tokio::task::spawn_blocking(move || start_serve(&path))
        .await
        .unwrap();
    assert!(
        !banner.iter().any(|l| l.contains("Generated")),
        "{banner:?}"
    );
    let again = ApiClient::new(format!("http://{addr}"))
        .create_org(&token, "Beta")
        .await
        .unwrap();
    assert_eq!(again.status, 201, "{}", again.body);
}

/// Out of file descriptors (a low `ulimit -n`, more clients than it allows):
/// the accept error is logged, the process stays up, and once the clients
/// leave it answers again.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn serve_survives_running_out_of_file_descriptors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let log_path = dir.path().join("serve.log");
    let log = Some(log_path.clone());
    let (running, _, addr) = tokio::task::spawn_blocking(move || {
        start_serve_logging(
            &path,
            &[
                ("CASEBRIDGE_MAX_CONNECTIONS", "1000"),
                ("CASEBRIDGE_HEADER_TIMEOUT_SECS", "300"),
                ("CASEBRIDGE_LOG_FORMAT", "text"),
            ],
            log,
        )
    })
    .await
    .unwrap();
    let pid = running.0.id().to_string();
    let limited = Command::new("prlimit")
        .args(["--pid", &pid, "--nofile=64:64"])
        .status()
        .expect("prlimit (util-linux) runs");
    assert!(limited.success());
    let mut clients = Vec::new();
    for _ in 0..120 {
        clients.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let logged = loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if text.contains("Could not accept a connection") || std::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(logged.contains("Could not accept a connection"), "{logged}");
    assert!(
        logged.contains("ulimit -n"),
        "the log says what to do: {logged}"
    );
    drop(clients);
    let health = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            match reqwest::get(format!("http://{addr}/healthz")).await {
                Ok(r) if r.status() == 200 => return,
                _ => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        }
    })
    .await;
    assert!(
        health.is_ok(),
        "/healthz answers again once the clients left"
    );
    drop(running);
}

/// The pieces of a multi-process run: an emulator, a database, the
/// environment every `serve` process shares.
struct Fleet {
    emulator: creatio_emulator::Emulator,
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    admin_token: String,
    http: reqwest::Client,
}

const FLEET_SECRET: &str = "fleet-client-secret";

impl Fleet {
    async fn new(database_url: String) -> Fleet {
        use base64::Engine;
        let emulator = creatio_emulator::Emulator::start(creatio_emulator::EmulatorConfig {
            clients: vec![creatio_emulator::ClientConfig::new("fleet", FLEET_SECRET)],
            ..Default::default()
        })
        .await
        .unwrap();
        let admin_token = format!("operator-{}", uuid::Uuid::new_v4().simple());
        let key = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
        let env = vec![
            ("CASEBRIDGE_DATABASE_URL".to_string(), database_url),
            ("CASEBRIDGE_ADMIN_TOKEN".to_string(), admin_token.clone()),
            ("CASEBRIDGE_SECRET_KEY".to_string(), key),
            (
                "CASEBRIDGE_ALLOW_PRIVATE_TARGETS".to_string(),
                "127.0.0.0/8".to_string(),
            ),
            ("CASEBRIDGE_WORKERS".to_string(), "4".to_string()),
            ("CASEBRIDGE_JOB_LEASE_SECS".to_string(), "3".to_string()),
            ("CASEBRIDGE_LOG".to_string(), "warn".to_string()),
        ];
        Fleet {
            emulator,
            dir: tempfile::tempdir().unwrap(),
            env,
            admin_token,
            http: reqwest::Client::new(),
        }
    }

    async fn start(&self) -> (Running, String) {
        let dir = self.dir.path().to_path_buf();
        let env = self.env.clone();
        tokio::task::spawn_blocking(move || {
            let pairs: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let (r, _, addr) = start_serve_with(&dir, &pairs);
            (r, format!("http://{addr}"))
        })
        .await
        .unwrap()
    }

    /// Creates an org and connects it; returns its admin key.
    async fn org(&self, base: &str) -> String {
        let api = ApiClient::new(base);
        let created = api
            .create_org(&self.admin_token, "Fleet")
            .await
            .and_then(|a| a.expect(StatusCode::CREATED))
            .unwrap_or_else(|e| panic!("{e}"));
        let key = created["api_key"]["key"].as_str().unwrap().to_string();
        let settings = serde_json::json!({"instance_url": self.emulator.url(), "client_id": "fleet", "client_secret": FLEET_SECRET});
        api.test_and_save(&key, &settings)
            .await
            .and_then(|a| a.expect(StatusCode::OK))
            .unwrap_or_else(|e| panic!("{e}"));
        key
    }

    async fn send(&self, base: &str, key: &str, events: serde_json::Value) {
        ApiClient::new(base)
            .send_events(key, &events)
            .await
            .and_then(|a| a.expect(StatusCode::ACCEPTED))
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Waits until no job of the conversations is left, then checks that
    /// each conversation's activities are exactly its messages, in order.
    async fn verify(&self, base: &str, key: &str, conversations: usize, per: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let http = &self.http;
        let instance = creatio::InstanceUrl::parse(self.emulator.url()).unwrap();
        let creds =
            creatio::Credentials::new(self.emulator.token_url(), "fleet", FLEET_SECRET.to_string());
        let crm = creatio::Client::new(
            http.clone(),
            instance,
            creatio::TokenSource::new(http.clone(), creds),
        );
        for c in 0..conversations {
            let conv = loop {
                let v: serde_json::Value = http
                    .get(format!("{base}/v1/conversations/fleet-{c}"))
                    .bearer_auth(key)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                if v["jobs"].get("pending").is_none() && v["jobs"].get("running").is_none() {
                    break v;
                }
                if std::time::Instant::now() > deadline {
                    let conn: serde_json::Value = http
                        .get(format!("{base}/v1/creatio/connection"))
                        .bearer_auth(key)
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    panic!(
                        "fleet-{c} never settled: jobs {} open {} connection {} {}",
                        v["jobs"], v["open_jobs"], conn["status"], conn["status_detail"]
                    );
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            };
            assert!(conv["jobs"].get("dead").is_none(), "{conv}");
            let case_id = uuid::Uuid::parse_str(conv["case"]["id"].as_str().unwrap()).unwrap();
            let list: Vec<creatio::models::Activity> = crm
                .list(
                    creatio::query::Query::new()
                        .filter(creatio::query::lookup("Case").eq(case_id))
                        .order_by_asc("CreatedOn")
                        .order_by_asc("StartDate"),
                )
                .await
                .unwrap();
            let got: Vec<String> = list
                .iter()
                .map(|a| a.title.clone().unwrap_or_default())
                .collect();
            let want: Vec<String> = (0..per)
                .map(|i| format!("Customer: fleet message {i:03}"))
                .collect();
            assert_eq!(got, want, "fleet-{c}: every message exactly once, in order");
        }
        let cases = crm
            .count(
                "Case",
                Some(creatio::query::col("Subject").eq("fleet message 000")),
            )
            .await
            .unwrap();
        assert_eq!(cases as usize, conversations, "one case per conversation");
    }
}

fn fleet_events(from: usize, to: usize, conversations: usize) -> serde_json::Value {
    let mut events = Vec::new();
    for i in from..to {
        for c in 0..conversations {
            events.push(serde_json::json!({
                "id": format!("fleet-{c}-{i}"), "type": "message.created",
                "occurred_at": format!("2026-11-22T10:{:02}:{:02}Z", i / 60, i % 60),
                "conversation": {"id": format!("fleet-{c}"), "channel": "web"},
                "message": {"id": format!("m{i}"), "role": "customer", "text": format!("fleet message {i:03}")}
            }));
        }
    }
    serde_json::Value::Array(events)
}

#[tokio::test]
async fn killed_and_restarted_again_and_again_every_message_lands_once_in_order() {
    let fleet = Fleet::new("sqlite://casebridge.db".into()).await;
    // Slow Creatio down so kills land while writes are in flight.
    fleet
        .http
        .post(format!("{}/__emulator/faults", fleet.emulator.url()))
        .json(&serde_json::json!({"kind": "latency", "ms": 15}))
        .send()
        .await
        .unwrap();
    let (mut running, mut base) = fleet.start().await;
    let key = fleet.org(&base).await;
    let (conversations, per) = (8, 40);
    for round in 0..8 {
        fleet
            .send(
                &base,
                &key,
                fleet_events(round * 5, round * 5 + 5, conversations),
            )
            .await;
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        // SIGKILL: no shutdown, jobs left running, a batch perhaps half written.
        running.0.kill().unwrap();
        running.0.wait().unwrap();
        (running, base) = fleet.start().await;
    }
    fleet.verify(&base, &key, conversations, per).await;
}

#[tokio::test]
async fn two_processes_on_one_postgres_database_share_the_work() {
    let admin = std::env::var("CASEBRIDGE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("cbtest_{}", uuid::Uuid::new_v4().simple());
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
        .await
        .expect("PostgreSQL must be running");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
    let fleet = Fleet::new(url).await;
    let (_a, base_a) = fleet.start().await;
    let (_b, base_b) = fleet.start().await;
    let key = fleet.org(&base_a).await;
    let (conversations, per) = (10, 30);
    for chunk in 0..6 {
        // Alternate the API process; both processes' workers take jobs.
        let base = if chunk % 2 == 0 { &base_a } else { &base_b };
        fleet
            .send(
                base,
                &key,
                fleet_events(chunk * 5, chunk * 5 + 5, conversations),
            )
            .await;
    }
    fleet.verify(&base_b, &key, conversations, per).await;
    drop((_a, _b));
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .unwrap();
}

/// Runs the binary to completion with `env` (and nothing of the caller's
/// CASEBRIDGE_* settings): exit success, stdout, stderr.
fn run_with_env(args: &[&str], env: &[(&str, String)]) -> (bool, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_casebridge"));
    command.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("CASEBRIDGE_") {
            command.env_remove(k);
        }
    }
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().expect("the binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn migrate_backup_and_restore_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = |name: &str| {
        (
            "CASEBRIDGE_DATABASE_URL",
            format!("sqlite://{}", dir.path().join(name).display()),
        )
    };
    // A new database: every migration, listed; a second run has nothing to do.
    let (ok, out, err) = run_with_env(&["migrate"], &[db("live.db")]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("from schema version 0 to") && out.contains("applied 0001"),
        "{out}"
    );
    let (ok, out, err) = run_with_env(&["migrate"], &[db("live.db")]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("nothing to do"), "{out}");
    // Backup: the database and its key file (serve creates one at first
    // start; migrate does not need it, so make one here).
    let key = dir.path().join("casebridge.key");
    std::fs::write(&key, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n").unwrap();
    let backup = dir.path().join("backup.db");
    let backup_arg = backup.to_string_lossy().into_owned();
    let (ok, out, err) = run_with_env(&["backup", &backup_arg], &[db("live.db")]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("Backed up 0 conversations") && out.contains("backup.db.key"),
        "{out}"
    );
    assert!(backup.exists() && dir.path().join("backup.db.key").exists());
    // Restore into a new directory.
    let fresh = tempfile::tempdir().unwrap();
    let target = (
        "CASEBRIDGE_DATABASE_URL",
        format!("sqlite://{}", fresh.path().join("restored.db").display()),
    );
    let (ok, out, err) = run_with_env(&["restore", &backup_arg], std::slice::from_ref(&target));
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("Restored") && out.contains("0 conversations"),
        "{out}"
    );
    assert!(fresh.path().join("casebridge.key").exists());
    // Again: refused, exit code non-zero, the reason on stderr.
    let (ok, out, err) = run_with_env(&["restore", &backup_arg], &[target]);
    assert!(!ok, "{out}");
    assert!(err.contains("restore writes only a new database"), "{err}");
    // PostgreSQL: pointed to pg_dump.
    let (ok, _, err) = run_with_env(
        &["backup", &backup_arg],
        &[(
            "CASEBRIDGE_DATABASE_URL",
            "postgres://postgres@127.0.0.1/none".into(),
        )],
    );
    assert!(!ok);
    assert!(err.contains("pg_dump"), "{err}");
}

/// `--version` names the package version and the git commit it was built
/// from (the checkout's HEAD when the tests built it).
#[test]
fn version_names_the_commit() {
    let out = Command::new(env!("CARGO_BIN_EXE_casebridge"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    let expected_commit = std::env::var("CASEBRIDGE_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| {
            let git = Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()?;
            git.status
                .success()
                .then(|| String::from_utf8_lossy(&git.stdout).trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    assert_eq!(
        printed.trim(),
        format!(
            "casebridge {} (commit {expected_commit})",
            env!("CARGO_PKG_VERSION")
        )
    );
}

/// With `CASEBRIDGE_LOG_FORMAT=json` every line on stdout is a JSON object,
/// the generated token and the address included; text logs to a pipe carry
/// no colour codes.
#[tokio::test]
async fn json_log_mode_prints_only_json_and_text_logs_to_a_pipe_have_no_colour() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let (running, lines) = tokio::task::spawn_blocking(move || {
        let child = Command::new(env!("CARGO_BIN_EXE_casebridge"))
            .arg("serve")
            .current_dir(&path)
            .env("CASEBRIDGE_LISTEN", "127.0.0.1:0")
            .env("CASEBRIDGE_DATABASE_URL", "sqlite://casebridge.db")
            .env("CASEBRIDGE_LOG_FORMAT", "json")
            .env("CASEBRIDGE_LOG", "info")
            .env_remove("CASEBRIDGE_ADMIN_TOKEN")
            .env_remove("CASEBRIDGE_SECRET_KEY")
            .env_remove("CASEBRIDGE_SECRET_KEY_FILE")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the binary starts");
        let mut running = Running(child);
        let stdout = running.0.stdout.take().unwrap();
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let done = line.contains("casebridge listening");
            lines.push(line);
            if done {
                break;
            }
        }
        (running, lines)
    })
    .await
    .unwrap();
    drop(running);
    let parsed: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let token = parsed
        .iter()
        .find_map(|v| v["fields"]["operator_token"].as_str())
        .unwrap_or_else(|| panic!("the token is on a line of its own: {lines:?}"));
    assert!(token.starts_with("cba_"), "{token}");
    assert!(
        parsed.iter().any(|v| v["fields"]["reset"]
            .as_str()
            .is_some_and(|h| h.contains("CASEBRIDGE_ADMIN_TOKEN"))),
        "the token comes with how to set or replace it: {lines:?}"
    );
    let listening = parsed.last().unwrap();
    assert_eq!(listening["fields"]["message"], "casebridge listening");
    assert!(listening["fields"]["addr"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert_eq!(listening["fields"]["version"], casebridge::VERSION);

    // Text logs to a pipe: no escape codes (the banner holds the log's
    // own "is listening" line at info level).
    let path = dir.path().join("text");
    std::fs::create_dir(&path).unwrap();
    let (running, banner, _) =
        tokio::task::spawn_blocking(move || start_serve_with(&path, &[("CASEBRIDGE_LOG", "info")]))
            .await
            .unwrap();
    drop(running);
    let text = banner.join("\n");
    assert!(text.contains("casebridge is listening."), "{text}");
    assert!(!text.contains('\u{1b}'), "no colour codes: {text:?}");
}

/// What an in-test OTLP/HTTP collector received, decoded.
type Spans = std::sync::Arc<std::sync::Mutex<Vec<opentelemetry_proto::tonic::trace::v1::Span>>>;

/// An OTLP/HTTP collector on loopback: decodes each protobuf export of
/// `/v1/traces` and keeps its spans.
async fn otlp_collector() -> (String, Spans) {
    use axum::body::Bytes;
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    };
    use prost::Message;
    let spans: Spans = Default::default();
    let kept = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: Bytes| {
            let kept = kept.clone();
            async move {
                let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                for resource in request.resource_spans {
                    for scope in resource.scope_spans {
                        kept.lock().unwrap().extend(scope.spans);
                    }
                }
                (
                    [("content-type", "application/x-protobuf")],
                    ExportTraceServiceResponse::default().encode_to_vec(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, spans)
}

/// The chat platform's receiver: keeps each delivery's type and headers.
async fn delivery_receiver() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<(String, axum::http::HeaderMap)>>>,
) {
    let got: std::sync::Arc<std::sync::Mutex<Vec<(String, axum::http::HeaderMap)>>> =
        Default::default();
    let kept = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::Json<serde_json::Value>| {
                let kept = kept.clone();
                async move {
                    let kind = body["type"].as_str().unwrap_or_default().to_string();
                    kept.lock().unwrap().push((kind, headers));
                    StatusCode::OK
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

/// With `CASEBRIDGE_OTLP_ENDPOINT` set, one event's work is one trace: the
/// events request's span, the round that did its work (a child, though it
/// ran later), the Creatio calls beneath the round, and the `case.linked`
/// delivery, whose span id the receiver gets in `traceparent`.
#[tokio::test]
async fn traces_follow_an_event_to_creatio_and_to_the_delivery() {
    let (collector, spans) = otlp_collector().await;
    let (hook, deliveries) = delivery_receiver().await;
    let mut fleet = Fleet::new("sqlite://casebridge.db".into()).await;
    fleet
        .env
        .push(("CASEBRIDGE_OTLP_ENDPOINT".into(), collector.clone()));
    let (running, base) = fleet.start().await;
    let key = fleet.org(&base).await;
    ApiClient::new(&base)
        .put_delivery(&key, &hook)
        .await
        .and_then(|a| a.expect(StatusCode::CREATED))
        .unwrap_or_else(|e| panic!("{e}"));
    fleet.send(&base, &key, fleet_events(0, 1, 1)).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let linked = loop {
        let found = deliveries
            .lock()
            .unwrap()
            .iter()
            .find(|(kind, _)| kind == "case.linked")
            .map(|(_, headers)| headers.clone());
        if let Some(headers) = found {
            break headers;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no case.linked delivery"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    // SIGTERM: the service exports what it still holds before it exits.
    let pid = running.0.id().to_string();
    let mut running = running;
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let exited = tokio::task::spawn_blocking(move || running.0.wait().unwrap())
        .await
        .unwrap();
    assert!(exited.success(), "{exited:?}");

    let spans = spans.lock().unwrap().clone();
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let named = |name: &str| spans.iter().filter(|s| s.name == name).collect::<Vec<_>>();
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    let request = *named("POST /v1/events")
        .first()
        .unwrap_or_else(|| panic!("no request span in {names:?}"));
    let children = |parent: &opentelemetry_proto::tonic::trace::v1::Span| {
        spans
            .iter()
            .filter(|s| s.parent_span_id == parent.span_id && s.trace_id == parent.trace_id)
            .collect::<Vec<_>>()
    };
    let round = *children(request)
        .iter()
        .find(|s| s.name == "round")
        .unwrap_or_else(|| panic!("no round under the request in {names:?}"));
    let beneath: Vec<&str> = children(round).iter().map(|s| s.name.as_str()).collect();
    assert!(
        beneath
            .iter()
            .any(|n| n.starts_with("POST /0/odata/") || n.starts_with("POST /0/")),
        "no Creatio call under the round: {beneath:?}"
    );
    let delivery = *children(round)
        .iter()
        .find(|s| s.name == "deliver case.linked")
        .unwrap_or_else(|| panic!("no delivery under the round: {beneath:?}"));
    let traceparent = linked
        .get("traceparent")
        .expect("the delivery carries a traceparent")
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        traceparent,
        format!(
            "00-{}-{}-01",
            hex(&delivery.trace_id),
            hex(&delivery.span_id)
        )
    );
}
