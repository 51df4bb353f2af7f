//! Serves the webhook's routes without a cluster, to look at `/docs`, `/redoc` and
//! `/openapi.json` in a browser (e2e/fuzz/docs-screenshot uses it). Its Kubernetes client
//! points at a closed loopback port, so the task routes answer from empty caches and no
//! notifier runs. Usage: `cargo run -p esup-webhook --example docs_preview -- ADDR [ASSETS_URL]`.

use std::sync::Arc;
use std::time::Duration;

use esup_webhook::openapi::DocsAssets;
use esup_webhook::serve::{BodyTimeouts, ServeConfig};
use esup_webhook::server::{self, Limits, Surface};
use esup_webhook::state::App;

#[tokio::main]
async fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let listen: std::net::SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned())
        .parse()
        .map_err(|e| format!("listen address: {e}"))?;
    let assets = args
        .next()
        .map_or_else(DocsAssets::default, |base| DocsAssets::new(&base));
    let unreachable = "http://127.0.0.1:9"
        .parse()
        .map_err(|e| format!("uri: {e}"))?;
    let client = kube::Client::try_from(kube::Config::new(unreachable))
        .map_err(|e| format!("client: {e}"))?;
    let (pools, _writer) = kube::runtime::reflector::store();
    let results = std::env::temp_dir().join("esup-docs-preview");
    let store =
        esup_webhook::store::ResultStore::new(&esup_webhook::store::StoreConfig::Filesystem {
            root: results,
        })
        .map_err(|e| format!("store: {e}"))?;
    let app = Arc::new(App {
        tasks: esup_webhook::tasks::Tasks::start(client),
        tokens: Arc::default(),
        policy: esup_webhook::url_policy::UrlPolicy::default(),
        dedup: esup_webhook::dedup::Dedup::new(),
        pools,
        store,
        callback_tokens: Default::default(),
    });
    let surface = Arc::new(Surface {
        metrics: Arc::new(esup_webhook::metrics::Metrics::new(Arc::default())),
        docs: assets,
        console_url: None,
    });
    let limits = Arc::new(Limits::per_minute(0, 0, 0, Default::default()));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("listen on {listen}: {e}"))?;
    println!("docs preview on http://{listen}/docs");
    let config = ServeConfig {
        header_read_timeout: Duration::from_secs(20),
        body: BodyTimeouts {
            idle: Duration::from_secs(30),
            min_bytes_per_second: 0,
        },
        max_connections: 64,
    };
    esup_webhook::serve::serve(
        listener,
        server::routes(app, limits, surface),
        config,
        None,
        std::future::pending(),
    )
    .await;
    Ok(())
}
