//! A real headless Chromium driven over WebDriver (chromedriver, fantoccini), with axe-core
//! for accessibility checks. `e2e/browser/install` installs chromium, chromium-driver and the
//! pinned axe-core; nothing here reaches beyond 127.0.0.1.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde::Deserialize;
use serde_json::json;

/// The axe-core version `e2e/browser/install` fetches (`ESUP_AXE_VERSION` there).
pub const AXE_VERSION: &str = "4.10.3";

/// What went wrong, by category: `setup` (a tool is missing: run `e2e/browser/install`),
/// `driver` (chromedriver or the WebDriver session failed), `page` (a script in the page).
#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    #[error("setup: {0} (run e2e/browser/install)")]
    Setup(String),
    #[error("driver: {0}")]
    Driver(String),
    #[error("page: {0}")]
    Page(String),
}

impl BrowserError {
    pub fn category(&self) -> &'static str {
        match self {
            BrowserError::Setup(_) => "setup",
            BrowserError::Driver(_) => "driver",
            BrowserError::Page(_) => "page",
        }
    }
}

/// One axe-core violation, reduced to what a failing test should print.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Violation {
    /// The rule, e.g. `image-alt`.
    pub id: String,
    /// `minor`, `moderate`, `serious` or `critical`.
    pub impact: Option<String>,
    pub help: String,
    /// The CSS selector of the first offending node.
    pub target: String,
}

impl Violation {
    /// `serious` or `critical`: what the tests refuse.
    pub fn is_severe(&self) -> bool {
        matches!(self.impact.as_deref(), Some("serious" | "critical"))
    }
}

/// `$ESUP_AXE_JS`, else where `e2e/browser/install` puts axe.min.js.
pub fn axe_path() -> PathBuf {
    if let Some(path) = std::env::var_os("ESUP_AXE_JS") {
        return PathBuf::from(path);
    }
    let cache = std::env::var_os("ESUP_CACHE_DIR").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/esup-runner"),
        PathBuf::from,
    );
    cache.join(format!("axe-core-{AXE_VERSION}/axe.min.js"))
}

/// Headless Chromium behind its own chromedriver; both end when this is dropped, and the
/// profile directory is removed. chromedriver leads its own process group, which Chromium
/// joins: killing the driver alone would orphan Chromium when a test panics.
pub struct Browser {
    client: Client,
    driver: tokio::process::Child,
    profile: PathBuf,
    axe: String,
}

impl Browser {
    /// Starts chromedriver on a free loopback port and opens a session in a fresh profile.
    pub async fn start() -> Result<Browser, BrowserError> {
        let axe_file = axe_path();
        let axe = std::fs::read_to_string(&axe_file)
            .map_err(|e| BrowserError::Setup(format!("{}: {e}", axe_file.display())))?;
        let port = crate::free_loopback_port()
            .map_err(|e| BrowserError::Setup(format!("no free loopback port: {e}")))?;
        let driver = tokio::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .process_group(0)
            .spawn()
            .map_err(|e| BrowserError::Setup(format!("chromedriver: {e}")))?;
        let profile =
            std::env::temp_dir().join(format!("esup-browser-{}-{port}", std::process::id()));
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        });
        let serde_json::Value::Object(caps) = caps else {
            return Err(BrowserError::Driver(
                "capabilities are not an object".into(),
            ));
        };
        let url = format!("http://127.0.0.1:{port}");
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        // chromedriver takes a moment to listen; a session before that is refused.
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            if Instant::now() > deadline {
                return Err(BrowserError::Driver(format!(
                    "chromedriver not listening on {url}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&url)
            .await
            .map_err(|e| BrowserError::Driver(format!("new session: {e}")))?;
        Ok(Browser {
            client,
            driver,
            profile,
            axe,
        })
    }

    /// The WebDriver client, for what this harness does not wrap.
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub async fn goto(&self, url: &str) -> Result<(), BrowserError> {
        self.client
            .goto(url)
            .await
            .map_err(|e| BrowserError::Driver(format!("goto {url}: {e}")))
    }

    /// Runs `script` in the page and returns its value.
    pub async fn eval(&self, script: &str) -> Result<serde_json::Value, BrowserError> {
        self.client
            .execute(script, vec![])
            .await
            .map_err(|e| BrowserError::Page(format!("{script}: {e}")))
    }

    /// axe-core's WCAG 2 A/AA violations on the current page.
    pub async fn axe(&self) -> Result<Vec<Violation>, BrowserError> {
        self.client
            .execute(&self.axe, vec![])
            .await
            .map_err(|e| BrowserError::Page(format!("injecting axe-core: {e}")))?;
        let run = r#"
            const done = arguments[arguments.length - 1];
            axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } })
              .then(r => done({ violations: r.violations.map(v => ({
                  id: v.id, impact: v.impact, help: v.help,
                  target: v.nodes.length ? String(v.nodes[0].target) : "" })) }))
              .catch(e => done({ error: String(e) }));
        "#;
        let value = self
            .client
            .execute_async(run, vec![])
            .await
            .map_err(|e| BrowserError::Page(format!("axe.run: {e}")))?;
        #[derive(Deserialize)]
        struct Outcome {
            violations: Option<Vec<Violation>>,
            error: Option<String>,
        }
        let outcome: Outcome = serde_json::from_value(value)
            .map_err(|e| BrowserError::Page(format!("axe.run's answer: {e}")))?;
        match (outcome.violations, outcome.error) {
            (Some(violations), None) => Ok(violations),
            (_, error) => Err(BrowserError::Page(format!(
                "axe.run: {}",
                error.unwrap_or_default()
            ))),
        }
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self, path: &Path) -> Result<(), BrowserError> {
        let png = self
            .client
            .screenshot()
            .await
            .map_err(|e| BrowserError::Driver(format!("screenshot: {e}")))?;
        std::fs::write(path, png)
            .map_err(|e| BrowserError::Page(format!("{}: {e}", path.display())))
    }

    /// Ends the session cleanly (Chromium exits); dropping also works, more abruptly.
    pub async fn close(mut self) -> Result<(), BrowserError> {
        let client = self.client.clone();
        let closed = client
            .close()
            .await
            .map_err(|e| BrowserError::Driver(format!("close: {e}")));
        self.kill_group();
        let _ = self.driver.wait().await;
        closed
    }
}

impl Browser {
    /// SIGKILLs chromedriver's process group (Chromium included); `kill(1)` rather than a
    /// libc dependency.
    fn kill_group(&mut self) {
        if let Some(pid) = self.driver.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.driver.start_kill();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.kill_group();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
