//! The browser tests' harness: chromedriver on a free loopback port, a
//! headless Chromium session through it (fantoccini), the service with a
//! fresh database and emulator ([`TestApp`]), and a runner that saves a
//! screenshot under `target/browser-screenshots/` when a test fails.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use fantoccini::elements::Element;
use fantoccini::Locator;
use serde_json::{json, Value};

use crate::helpers::{Backend, Org, TestApp};

const INSTALL_HINT: &str = "The browser tests drive headless Chromium through chromedriver. \
    Install both (Debian: `apt-get install chromium chromium-driver`; .ci/run does this), \
    or point CASEBRIDGE_CHROMEDRIVER and CASEBRIDGE_CHROMIUM at them.";

/// How long a page gets to show what a test waits for. The page polls
/// every 5 s and the service syncs in well under a second, so this is
/// generous; it only matters when something is broken.
const WAIT: Duration = Duration::from_secs(20);

/// Where failing tests leave their screenshot: `<target>/browser-screenshots`.
pub fn failure_screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is inside the target directory")
        .join("browser-screenshots")
}

/// A program from an environment variable, or the first of `names` on PATH.
fn program(variable: &str, names: &[&str]) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(variable).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(p);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(anyhow!(
                "{variable}={} does not exist. {INSTALL_HINT}",
                path.display()
            ))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in names {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    bail!("{} not found on PATH. {INSTALL_HINT}", names.join(" or "))
}

/// chromedriver, stopped when dropped (also when a test panics).
pub struct Chromedriver {
    child: Child,
    pub url: String,
}

impl Chromedriver {
    pub async fn start() -> Result<Chromedriver> {
        let path = program("CASEBRIDGE_CHROMEDRIVER", &["chromedriver"])?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(&path)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("could not start {}. {INSTALL_HINT}", path.display()))?;
        let driver = Chromedriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = reqwest::get(format!("{}/status", driver.url))
                .await
                .ok()
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if ready {
                return Ok(driver);
            }
            if Instant::now() > deadline {
                bail!("chromedriver did not answer on {} within 20 s", driver.url);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Chromium window on a casebridge service, with helpers that wait for
/// what a person would wait for.
pub struct Page {
    pub browser: fantoccini::Client,
    pub base: String,
}

impl Page {
    pub async fn open(&self, path: &str) -> Result<()> {
        self.browser
            .goto(&format!("{}{path}", self.base))
            .await
            .with_context(|| format!("opening {path}"))
    }

    pub async fn find(&self, css: &str) -> Result<Element> {
        self.browser
            .find(Locator::Css(css))
            .await
            .with_context(|| format!("no element {css}"))
    }

    /// Waits until `css` is on the page and displayed.
    pub async fn visible(&self, css: &str) -> Result<Element> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(e) = self.browser.find(Locator::Css(css)).await {
                if e.is_displayed().await.unwrap_or(false) {
                    return Ok(e);
                }
            }
            if Instant::now() > deadline {
                bail!("{css} did not show within {WAIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Types into a field, replacing what it held.
    pub async fn fill(&self, css: &str, text: &str) -> Result<()> {
        let field = self.visible(css).await?;
        field.clear().await?;
        field.send_keys(text).await?;
        Ok(())
    }

    pub async fn click(&self, css: &str) -> Result<()> {
        self.visible(css)
            .await?
            .click()
            .await
            .with_context(|| format!("clicking {css}"))
    }

    /// Waits until the text of `css` contains `wanted`; returns the text.
    pub async fn wait_text(&self, css: &str, wanted: &str) -> Result<String> {
        let deadline = Instant::now() + WAIT;
        let mut last = String::from("(no such element)");
        loop {
            if let Ok(e) = self.browser.find(Locator::Css(css)).await {
                if let Ok(text) = e.text().await {
                    if text.contains(wanted) {
                        return Ok(text);
                    }
                    last = text;
                }
            }
            if Instant::now() > deadline {
                bail!("{css} never showed {wanted:?} within {WAIT:?}; it shows {last:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until an attribute of `css` has the value `wanted`.
    pub async fn wait_attr(&self, css: &str, attr: &str, wanted: &str) -> Result<()> {
        let deadline = Instant::now() + WAIT;
        let mut last = None;
        loop {
            if let Ok(e) = self.browser.find(Locator::Css(css)).await {
                last = e.attr(attr).await.ok().flatten();
                if last.as_deref() == Some(wanted) {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("{css} never had {attr}={wanted:?} within {WAIT:?}; it has {last:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Evaluates a JavaScript expression on the page.
    pub async fn eval(&self, expression: &str) -> Result<Value> {
        Ok(self
            .browser
            .execute(&format!("return {expression};"), vec![])
            .await?)
    }

    /// Waits until a JavaScript expression evaluates to `wanted`.
    pub async fn wait_eval(&self, expression: &str, wanted: Value) -> Result<()> {
        let deadline = Instant::now() + WAIT;
        loop {
            let last = self.eval(expression).await?;
            if last == wanted {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{expression} never was {wanted} within {WAIT:?}; it is {last}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The value property of a form field.
    pub async fn value(&self, css: &str) -> Result<String> {
        Ok(self
            .find(css)
            .await?
            .prop("value")
            .await?
            .unwrap_or_default())
    }

    /// Chooses the option of a select whose visible text is `label`, waiting
    /// for it to be there (options read from Creatio arrive after a moment).
    pub async fn choose(&self, select_css: &str, label: &str) -> Result<()> {
        let option = format!("{select_css} option");
        let deadline = Instant::now() + WAIT;
        loop {
            let options = self.browser.find_all(Locator::Css(&option)).await?;
            let mut seen = Vec::new();
            for o in options {
                let text = o.text().await.unwrap_or_default();
                if text == label {
                    return self
                        .find(select_css)
                        .await?
                        .select_by_label(label)
                        .await
                        .map(|_| ())
                        .with_context(|| format!("choosing {label:?} in {select_css}"));
                }
                seen.push(text);
            }
            if Instant::now() > deadline {
                bail!("{select_css} never offered {label:?}; it offers {seen:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Signs in with `key` on the sign-in form and waits for the settings.
    pub async fn sign_in(&self, key: &str) -> Result<()> {
        self.open("/").await?;
        self.fill("#api-key", key).await?;
        self.click("#sign-in-button").await?;
        self.visible("#connection-title").await?;
        Ok(())
    }

    /// Makes the window as tall as the page and scrolls to its top, so a
    /// screenshot shows all of it.
    pub async fn fit_to_content(&self, width: u32) -> Result<()> {
        self.browser.set_window_size(width, 900).await?;
        let measure = "return [document.documentElement.scrollHeight, \
                       window.outerHeight - window.innerHeight];";
        let sizes = self.browser.execute(measure, vec![]).await?;
        let page = sizes[0].as_u64().unwrap_or(900) as u32;
        // The window's own frame takes part of its height from the page.
        let frame = sizes[1].as_u64().unwrap_or(0) as u32;
        self.browser
            .set_window_size(width, page.clamp(600, 6000) + frame)
            .await?;
        self.browser
            .execute("window.scrollTo(0, 0);", vec![])
            .await?;
        Ok(())
    }

    /// Form controls and buttons on the page that a screen reader could
    /// not name: no `<label for>`, no text, no aria-label. Hidden ones too,
    /// so every panel is checked from wherever the test is.
    pub async fn unnamed_controls(&self) -> Result<Vec<String>> {
        let found = self
            .browser
            .execute(
                "return [...document.querySelectorAll('input, select, textarea, button')]
                   .filter(e => e.type !== 'hidden')
                   .filter(e => e.tagName === 'BUTTON'
                       ? !(e.textContent.trim() || e.getAttribute('aria-label'))
                       : !((e.labels && e.labels.length) || e.getAttribute('aria-label')))
                   .map(e => e.id || e.outerHTML.slice(0, 120));",
                vec![],
            )
            .await?;
        Ok(serde_json::from_value(found)?)
    }

    pub async fn save_screenshot(&self, path: &Path) -> Result<()> {
        let png = self.browser.screenshot().await?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))
    }
}

/// One test's world: the service and emulator, an org with its admin key,
/// and a browser on the admin page.
pub struct Session {
    pub app: TestApp,
    pub org: Org,
    pub page: Page,
    _driver: Chromedriver,
    _profile: tempfile::TempDir,
}

impl Session {
    /// A session against a service whose configuration `tweak` changed.
    pub async fn start(tweak: impl FnOnce(&mut casebridge::config::Config)) -> Result<Session> {
        let driver = Chromedriver::start().await?;
        let chromium = program(
            "CASEBRIDGE_CHROMIUM",
            &["chromium", "chromium-browser", "google-chrome"],
        )?;
        // A fresh profile per session; the flags keep Chromium from calling
        // home (this machine's network is closed, and nothing should leave
        // loopback), and let it run as root in a container.
        let profile = tempfile::tempdir()?;
        let args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-extensions".into(),
            "--window-size=1280,900".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({"binary": chromium, "args": args}),
        );
        let browser = fantoccini::ClientBuilder::new(
            hyper_util::client::legacy::connect::HttpConnector::new(),
        )
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .with_context(|| format!("chromedriver could not start {}", chromium.display()))?;
        let app = TestApp::spawn_with(Backend::Sqlite, tweak).await;
        let org = app.create_org("Browser Co").await;
        let page = Page {
            browser,
            base: app.url.clone(),
        };
        Ok(Session {
            app,
            org,
            page,
            _driver: driver,
            _profile: profile,
        })
    }
}

fn panic_text(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic without a message".into()),
        Err(e) => format!("the test task was cancelled: {e}"),
    }
}

/// Runs a browser test body; when it returns an error or panics, saves a
/// screenshot of the page as `<target>/browser-screenshots/<name>.png` and
/// returns what went wrong (with the screenshot's path).
pub async fn run_checked<F, Fut>(name: &str, body: F) -> Result<(), String>
where
    F: FnOnce(Arc<Session>) -> Fut,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    run_checked_with(name, |_| {}, body).await
}

/// [`run_checked`] against a service whose configuration `tweak` changed.
pub async fn run_checked_with<F, Fut>(
    name: &str,
    tweak: impl FnOnce(&mut casebridge::config::Config),
    body: F,
) -> Result<(), String>
where
    F: FnOnce(Arc<Session>) -> Fut,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let session = match Session::start(tweak).await {
        Ok(s) => Arc::new(s),
        Err(e) => return Err(format!("{e:#}")),
    };
    // On its own task, so a panic in the body is caught here and the
    // browser is still there to take the screenshot.
    let failure = match tokio::spawn(body(session.clone())).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("{e:#}")),
        Err(e) => Some(panic_text(e)),
    };
    let failure = match failure {
        None => None,
        Some(why) => {
            let path = failure_screenshot_dir().join(format!("{name}.png"));
            let saved = match session.page.save_screenshot(&path).await {
                Ok(()) => format!("screenshot: {}", path.display()),
                Err(e) => format!("no screenshot: {e:#}"),
            };
            Some(format!("{why}\n{saved}"))
        }
    };
    let Ok(session) = Arc::try_unwrap(session) else {
        return Err("the test body kept the session".into());
    };
    let _ = session.page.browser.clone().close().await;
    session.app.finish().await;
    failure.map_or(Ok(()), Err)
}

/// Runs a browser test body and fails the test, screenshot saved, when it fails.
pub async fn run<F, Fut>(name: &str, body: F)
where
    F: FnOnce(Arc<Session>) -> Fut,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    run_with(name, |_| {}, body).await
}

/// [`run`] against a service whose configuration `tweak` changed.
pub async fn run_with<F, Fut>(
    name: &str,
    tweak: impl FnOnce(&mut casebridge::config::Config),
    body: F,
) where
    F: FnOnce(Arc<Session>) -> Fut,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    if let Err(why) = run_checked_with(name, tweak, body).await {
        panic!("browser test {name} failed: {why}");
    }
}

/// The connection as the API shows it.
pub async fn connection(s: &Session) -> Value {
    s.app.get("/v1/creatio/connection", &s.org.key).await.1
}
