//! What the listener tests share: an offline App (its Kubernetes client points at a closed
//! loopback port, so the routes answer from empty caches), the real listeners on 127.0.0.1,
//! and a raw HTTP/1.1 client that can stall where a real one would not.

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)] // test harness: fail loudly

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use esup_webhook::metrics::Metrics;
use esup_webhook::openapi::DocsAssets;
use esup_webhook::rate_limit::ClientAddress;
use esup_webhook::serve::{BodyTimeouts, ServeConfig};
use esup_webhook::server::{self, Limits, Surface};
use esup_webhook::state::App;
use esup_webhook::tenants::{TenantSecret, TokenTable};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub const TOKEN: &str = "tok-univ-x";

pub fn offline_app(results: &std::path::Path) -> Arc<App> {
    let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    let (pools, _writer) = kube::runtime::reflector::store();
    let store =
        esup_webhook::store::ResultStore::new(&esup_webhook::store::StoreConfig::Filesystem {
            root: results.to_owned(),
        })
        .unwrap();
    let secret = TenantSecret {
        name: "tenant-univ-x".into(),
        namespace: "esup-system".into(),
        tenant: "univ-x".into(),
        data: [("token".to_owned(), TOKEN.to_owned())].into(),
    };
    let (table, errors) = TokenTable::build(&[secret]);
    assert!(errors.is_empty(), "{errors:?}");
    Arc::new(App {
        tasks: esup_webhook::tasks::Tasks::start(client),
        tokens: Arc::new(RwLock::new(table)),
        policy: esup_webhook::url_policy::UrlPolicy::default(),
        dedup: esup_webhook::dedup::Dedup::new(),
        pools,
        store,
        callback_tokens: Default::default(),
    })
}

/// Short timeouts, so that a test sees them act.
pub fn quick(max_connections: usize) -> ServeConfig {
    ServeConfig {
        header_read_timeout: Duration::from_secs(1),
        body: BodyTimeouts {
            idle: Duration::from_secs(1),
            min_bytes_per_second: 0,
        },
        max_connections,
    }
}

/// Both listeners of a webhook, served as the binary serves them.
pub struct Webhook {
    pub api: SocketAddr,
    pub ops: SocketAddr,
    pub metrics: Arc<Metrics>,
    pub ready: Arc<AtomicBool>,
    stop: watch::Sender<bool>,
    pub api_task: tokio::task::JoinHandle<()>,
    pub ops_task: tokio::task::JoinHandle<()>,
    _results: tempfile::TempDir,
}

impl Webhook {
    pub async fn start(config: ServeConfig) -> Self {
        let results = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::new(Arc::default()));
        let surface = Arc::new(Surface {
            metrics: metrics.clone(),
            docs: DocsAssets::default(),
            console_url: None,
        });
        let limits = Arc::new(Limits::per_minute(0, 0, 0, ClientAddress::default()));
        let ready = Arc::new(AtomicBool::new(false));
        let (stop, stopping) = watch::channel(false);
        let shutdown = move || {
            let mut stopping = stopping.clone();
            async move {
                let _ = stopping.wait_for(|s| *s).await;
            }
        };
        let api_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ops_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (api, ops) = (
            api_listener.local_addr().unwrap(),
            ops_listener.local_addr().unwrap(),
        );
        let api_task = tokio::spawn(esup_webhook::serve::serve(
            api_listener,
            server::routes(offline_app(results.path()), limits, surface),
            config,
            Some(metrics.clone()),
            shutdown(),
        ));
        let ops_task = tokio::spawn(esup_webhook::serve::serve(
            ops_listener,
            server::ops_routes(metrics.clone(), ready.clone()),
            quick(8),
            None,
            shutdown(),
        ));
        Self {
            api,
            ops,
            metrics,
            ready,
            stop,
            api_task,
            ops_task,
            _results: results,
        }
    }

    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
    }
}

/// One request on a fresh connection (`Connection: close`): status and the raw answer.
pub async fn request(addr: SocketAddr, head: &str, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

pub fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: webhook\r\nConnection: close\r\n{extra}\r\n")
}

/// Resident memory of this process, in bytes.
pub fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap()
        * 1024
}
