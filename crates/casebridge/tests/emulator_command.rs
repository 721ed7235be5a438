//! `casebridge emulator` as a person runs it: it starts, prints where it
//! listens and which credentials to use, and those credentials work.

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
