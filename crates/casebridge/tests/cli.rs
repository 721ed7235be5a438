//! The `casebridge` binary as a person runs it: `emulator` prints working
//! credentials, `check` prints the report with the right exit code, `serve`
//! generates an operator token once and stops cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

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
fn emulator_command_refuses_a_zero_token_lifetime() {
    let out = Command::new(env!("CARGO_BIN_EXE_casebridge"))
        .args(["emulator", "--token-lifetime-secs", "0"])
        .output()
        .expect("the binary starts");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--token-lifetime-secs"), "{stderr}");
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
    let child = Command::new(env!("CARGO_BIN_EXE_casebridge"))
        .arg("serve")
        .current_dir(dir)
        .env("CASEBRIDGE_LISTEN", "127.0.0.1:0")
        .env("CASEBRIDGE_DATABASE_URL", "sqlite://casebridge.db")
        .env_remove("CASEBRIDGE_ADMIN_TOKEN")
        .env_remove("CASEBRIDGE_SECRET_KEY")
        .env_remove("CASEBRIDGE_SECRET_KEY_FILE")
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
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("casebridge.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the key file is private");
    }
    let http = reqwest::Client::new();
    let created = http
        .post(format!("http://{addr}/v1/orgs"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "Acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);

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
    let again = http
        .post(format!("http://{addr}/v1/orgs"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "Beta"}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 201);
}
