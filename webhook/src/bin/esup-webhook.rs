//! `esup-webhook`: Esup-Pod's runner-manager API on top of the task resources. Every flag has
//! an environment variable, for the Helm chart.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use clap::Parser;
use esup_kube_common::cli;
use esup_webhook::callback_tokens::CallbackTokens;
use esup_webhook::dedup::Dedup;
use esup_webhook::notifier::NotifierConfig;
use esup_webhook::rate_limit::ClientAddress;
use esup_webhook::serve::{BodyTimeouts, ServeConfig};
use esup_webhook::server::{self, Limits};
use esup_webhook::state::App;
use esup_webhook::store::{ResultStore, StoreConfig};
use esup_webhook::tasks::Tasks;
use esup_webhook::tenants::TokenTable;
use esup_webhook::url_policy::UrlPolicy;
use kube::runtime::reflector;
use kube::runtime::{WatchStreamExt, watcher};

#[derive(Parser, Debug)]
#[command(
    name = "esup-webhook",
    version,
    about = "Esup-Pod's runner-manager API for esup-runner-operator",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Without a subcommand: serve the API.
    #[command(flatten)]
    serve: Args,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Checks a running webhook: `GET <url>/manager/health` with a tenant's token, as
    /// Esup-Pod's "Test connection" does (the chart's `helm test`). Exits 0 when healthy.
    HealthCheck {
        /// The webhook's base URL, e.g. `http://esup-runner-webhook.esup-system:8080`.
        #[arg(long)]
        url: String,
        /// A tenant's token.
        #[arg(long, env = "ESUP_HEALTH_TOKEN", hide_env_values = true)]
        token: String,
        /// Longest wait for one answer.
        #[arg(long, default_value = "10s", value_parser = cli::parse_duration)]
        timeout: Duration,
        /// How long to keep retrying while nothing answers (a Service just installed may
        /// refuse connections for a few seconds); an answer that is not healthy fails at once.
        #[arg(long, default_value = "30s", value_parser = cli::parse_duration)]
        retry_for: Duration,
    },
}

#[derive(clap::Args, Debug)]
struct Args {
    /// Address of the API Esup-Pod and the runners call.
    #[arg(long, env = "ESUP_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Address of `/metrics`, `/healthz` and `/readyz`; never the API's port, never routed by
    /// the chart's Ingress.
    #[arg(long, env = "ESUP_METRICS_LISTEN", default_value = "0.0.0.0:9090")]
    metrics_listen: SocketAddr,
    /// Most connections open at once on the API port; beyond, new ones wait unaccepted.
    #[arg(long, env = "ESUP_MAX_CONNECTIONS", default_value_t = 1024)]
    max_connections: usize,
    /// Time for a request's head to arrive, from the connection's opening or the end of the
    /// previous request (so it also closes idle keep-alive connections).
    #[arg(long, env = "ESUP_HEADER_READ_TIMEOUT", default_value = "20s", value_parser = cli::parse_duration)]
    header_read_timeout: Duration,
    /// Longest wait for the next bytes of a request body.
    #[arg(long, env = "ESUP_BODY_IDLE_TIMEOUT", default_value = "30s", value_parser = cli::parse_duration)]
    body_idle_timeout: Duration,
    /// Slowest average rate of a request body in bytes per second of waiting for it, after the
    /// first --body-idle-timeout; 0: none. Uploads of results are long but not that slow.
    #[arg(long, env = "ESUP_BODY_MIN_RATE", default_value_t = 1024)]
    body_min_rate: u64,
    /// The webhook's own namespace (the notifier's Lease).
    #[arg(long, env = "POD_NAMESPACE", default_value = "esup-system")]
    namespace: String,
    /// Namespace of the tenant token Secrets, the only one notify tokens are read from;
    /// unset: the webhook's own namespace.
    #[arg(long, env = "ESUP_TENANT_SECRETS_NAMESPACE")]
    tenant_secrets_namespace: Option<String>,
    /// Hosts (and their subdomains) that source, notify and dressing URLs may use; empty: any
    /// public host. Comma-separated.
    #[arg(long, env = "ESUP_ALLOWED_HOSTS", value_delimiter = ',')]
    allowed_hosts: Vec<String>,
    /// Hosts (and subdomains) allowed to resolve to private addresses, e.g. an in-cluster
    /// Esup-Pod `pod.pod.svc.cluster.local`. Comma-separated.
    #[arg(long, env = "ESUP_PRIVATE_HOSTS", value_delimiter = ',')]
    private_hosts: Vec<String>,
    /// Private networks allowed as URL targets, e.g. 10.96.0.0/12. Comma-separated CIDRs.
    #[arg(long, env = "ESUP_PRIVATE_NETWORKS", value_delimiter = ',')]
    private_networks: Vec<ipnet::IpNet>,
    /// Requests per tenant per minute, once its token authenticated (the reference manager's
    /// default is 120); 0: no limit.
    #[arg(long, env = "ESUP_RATE_LIMIT_PER_MINUTE", default_value_t = 120)]
    rate_limit_per_minute: u32,
    /// Runner callbacks per task per minute, once the callback token matched; 0: no limit.
    #[arg(
        long,
        env = "ESUP_CALLBACK_RATE_LIMIT_PER_MINUTE",
        default_value_t = 600
    )]
    callback_rate_limit_per_minute: u32,
    /// Requests per client address per minute without valid credentials: public pages and
    /// failed authentications (they also stop a runner callback's token check); 0: no limit.
    #[arg(
        long,
        env = "ESUP_ANONYMOUS_RATE_LIMIT_PER_MINUTE",
        default_value_t = 60
    )]
    anonymous_rate_limit_per_minute: u32,
    /// Proxies (e.g. the Ingress controller's pods) whose --client-ip-header is believed.
    /// Comma-separated CIDRs; empty: the client is always the TCP peer.
    #[arg(long, env = "ESUP_TRUSTED_PROXIES", value_delimiter = ',')]
    trusted_proxies: Vec<ipnet::IpNet>,
    /// Header naming the client behind a trusted proxy, comma-separated hops, nearest last
    /// (the rightmost address that is not a trusted proxy is the client).
    #[arg(long, env = "ESUP_CLIENT_IP_HEADER", default_value = "X-Forwarded-For", value_parser = parse_header_name)]
    client_ip_header: String,
    /// Directory of the result files (a PVC in the chart). Ignored with --s3-bucket.
    #[arg(
        long,
        env = "ESUP_RESULTS_DIR",
        default_value = "/var/lib/esup-webhook/results"
    )]
    results_dir: std::path::PathBuf,
    /// Keep result files in this S3-compatible bucket instead of a directory.
    #[arg(long, env = "ESUP_S3_BUCKET")]
    s3_bucket: Option<String>,
    /// S3 endpoint, e.g. http://minio.storage.svc:9000; unset: AWS.
    #[arg(long, env = "ESUP_S3_ENDPOINT")]
    s3_endpoint: Option<String>,
    #[arg(long, env = "ESUP_S3_REGION", default_value = "us-east-1")]
    s3_region: String,
    /// Key prefix inside the bucket.
    #[arg(long, env = "ESUP_S3_PREFIX")]
    s3_prefix: Option<String>,
    #[arg(
        long,
        env = "AWS_ACCESS_KEY_ID",
        default_value = "",
        hide_env_values = true
    )]
    s3_access_key_id: String,
    #[arg(
        long,
        env = "AWS_SECRET_ACCESS_KEY",
        default_value = "",
        hide_env_values = true
    )]
    s3_secret_access_key: String,
    /// How long Esup-Pod may take to answer a notify before it counts as delivered (it imports
    /// the results while the request is open).
    #[arg(long, env = "ESUP_NOTIFY_READ_TIMEOUT", default_value = "15s", value_parser = cli::parse_duration)]
    notify_read_timeout: Duration,
    /// First retry delay of a failed notify; later ones grow ×1.5, five retries in all
    /// (the protocol's 60 s). Shorter only for tests.
    #[arg(long, env = "ESUP_NOTIFY_RETRY_BASE", default_value = "60s", value_parser = cli::parse_duration)]
    notify_retry_base: Duration,
    /// How often the result files of deleted tasks are removed.
    #[arg(long, env = "ESUP_RESULTS_SWEEP", default_value = "10m", value_parser = cli::parse_duration)]
    results_sweep: Duration,
    /// Base URL of the Swagger UI and ReDoc files for `/docs` and `/redoc`: the npm packages
    /// laid out as on jsdelivr (`<base>/swagger-ui-dist@5/`, `<base>/redoc@2/`), to self-host
    /// them; by default jsdelivr's CDN, as FastAPI.
    #[arg(long, env = "ESUP_DOCS_ASSETS_URL", default_value = esup_webhook::openapi::pages::DEFAULT_ASSETS_URL)]
    docs_assets_url: String,
    /// Where `GET /admin` redirects: the admin console's URL. Unset: `/admin` is a small page
    /// pointing to the documentation and `/docs`.
    #[arg(long, env = "ESUP_CONSOLE_URL")]
    console_url: Option<String>,
    /// Log format: text or json.
    #[arg(long, env = "ESUP_LOG_FORMAT", default_value = "text")]
    log_format: String,
}

fn parse_header_name(s: &str) -> Result<String, String> {
    warp::http::HeaderName::from_bytes(s.trim().as_bytes())
        .map(|name| name.as_str().to_owned())
        .map_err(|e| format!("not a header name: {e}"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::HealthCheck {
        url,
        token,
        timeout,
        retry_for,
    }) = cli.command
    {
        return health_check(&url, &token, timeout, retry_for).await;
    }
    let args = cli.serve;
    cli::init_logging(&args.log_format);
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            ExitCode::FAILURE
        }
    }
}

async fn health_check(url: &str, token: &str, timeout: Duration, retry_for: Duration) -> ExitCode {
    let deadline = tokio::time::Instant::now() + retry_for;
    let mut result = esup_webhook::health_check::check(url, token, timeout).await;
    while matches!(
        result,
        Err(esup_webhook::health_check::HealthCheckError::Unreachable { .. })
    ) && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_secs(2)).await;
        result = esup_webhook::health_check::check(url, token, timeout).await;
    }
    match result {
        Ok(health) => {
            println!(
                "healthy: {url} answers for this tenant ({} runner slots, {} tasks)",
                health.runners, health.tasks
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: {e}", e.category());
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let shutdown = shutdown_signal();
    let client = kube::Client::try_default()
        .await
        .map_err(|e| format!("cannot configure the Kubernetes client: {e}"))?;
    let tenant_secrets = args
        .tenant_secrets_namespace
        .clone()
        .unwrap_or_else(|| args.namespace.clone());
    // Undecodable objects are counted from the first watch on; the metrics registry that
    // exposes the count is made later.
    let undecodable = esup_webhook::watch::Undecodable::default();
    let skip = esup_webhook::watch::SkipReport::new(
        client.clone(),
        &cli::identity(None, "esup-webhook"),
        undecodable.clone(),
    );
    let tokens = Arc::new(RwLock::new(TokenTable::default()));
    esup_webhook::tenant_watch::spawn(client.clone(), &tenant_secrets, tokens.clone(), &skip);
    // One watch per task kind serves the handlers' caches and the notifier's index.
    let feed = esup_webhook::notifier::TaskFeed::default();
    let tasks = Tasks::start_observed(client.clone(), Some(&skip), feed.observers());
    let pools = watch_pools(&client, &skip);
    let policy = UrlPolicy {
        allowed_hosts: args.allowed_hosts.clone(),
        private_hosts: args.private_hosts.clone(),
        private_networks: args.private_networks.clone(),
    };
    let store_config = store_config(&args);
    let store = ResultStore::new(&store_config)
        .map_err(|e| format!("result store {store_config:?}: {e}"))?;
    let mut notifier = notifier_config(&args, tenant_secrets, policy.clone());
    let mut metrics = esup_webhook::metrics::Metrics::new(notifier.stats.clone());
    metrics.register_undecodable(&undecodable);
    metrics.register_backlogs(tasks.clone(), tokens.clone());
    let metrics = Arc::new(metrics);
    // The metrics port opens first: liveness holds while the caches list, readiness follows
    // them.
    let ready = Arc::new(AtomicBool::new(false));
    let serve_config = serve_config(&args);
    let ops = serve_ops(&args, serve_config, &metrics, &ready, shutdown()).await?;
    notifier.results = Some(store.clone());
    // One Lease elects the replica that notifies and sweeps results.
    let leadership = esup_webhook::notifier::elect(client.clone(), &notifier);
    tokio::spawn(esup_webhook::notifier::run(
        client.clone(),
        notifier,
        leadership.clone(),
        feed,
    ));
    let app = Arc::new(App {
        tasks: tasks.clone(),
        tokens,
        policy,
        dedup: Dedup::new(),
        pools,
        store,
        callback_tokens: CallbackTokens::default(),
    });
    if !tasks.ready().await {
        return Err("the task caches could not start".to_owned());
    }
    // Submissions are refused when no pool takes them: the pools must be known first.
    if app.pools.wait_until_ready().await.is_err() {
        return Err("the RunnerPool cache could not start".to_owned());
    }
    tokio::spawn(esup_webhook::retention::run(
        tasks.clone(),
        app.store.clone(),
        args.results_sweep,
        leadership,
    ));
    serve_api(args, serve_config, app, metrics, ready, shutdown()).await?;
    let _ = ops.await;
    Ok(())
}

/// One shutdown signal for both listeners: each call gives a future that ends with it.
fn shutdown_signal() -> impl Fn() -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
    let (stop, stopping) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        cli::shutdown_signal().await;
        let _ = stop.send(true);
    });
    move || {
        let mut stopping = stopping.clone();
        Box::pin(async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        })
    }
}

/// The RunnerPools, kept by a reflector.
fn watch_pools(
    client: &kube::Client,
    skip: &esup_webhook::watch::SkipReport,
) -> reflector::Store<esup_api::RunnerPool> {
    let (pools, writer) = reflector::store();
    let pool_stream = reflector::reflector(
        writer,
        esup_kube_common::watch::guarded_watcher(
            kube::Api::<kube::core::DeserializeGuard<esup_api::RunnerPool>>::all(client.clone()),
            watcher::Config::default(),
            skip.for_kind::<esup_api::RunnerPool>(),
        ),
    )
    .default_backoff()
    .applied_objects();
    tokio::spawn(async move {
        use futures::StreamExt;
        futures::pin_mut!(pool_stream);
        while pool_stream.next().await.is_some() {}
    });
    pools
}

fn store_config(args: &Args) -> StoreConfig {
    match &args.s3_bucket {
        Some(bucket) => StoreConfig::S3 {
            allow_http: args
                .s3_endpoint
                .as_deref()
                .is_some_and(|e| e.starts_with("http://")),
            endpoint: args.s3_endpoint.clone(),
            bucket: bucket.clone(),
            region: args.s3_region.clone(),
            access_key_id: args.s3_access_key_id.clone(),
            secret_access_key: args.s3_secret_access_key.clone(),
            prefix: args.s3_prefix.clone(),
        },
        None => StoreConfig::Filesystem {
            root: args.results_dir.clone(),
        },
    }
}

fn notifier_config(args: &Args, tenant_secrets: String, policy: UrlPolicy) -> NotifierConfig {
    let identity = cli::identity(None, "esup-webhook");
    let mut notifier = NotifierConfig::new(&args.namespace, identity, policy);
    notifier.tenant_secrets_namespace = tenant_secrets;
    notifier.read_timeout = args.notify_read_timeout;
    notifier.retry_delays = esup_webhook::notifier::backoff_delays(args.notify_retry_base, 1.5, 5);
    notifier
}

/// The listeners' timeouts; the metrics port's connection cap (Prometheus and the kubelet: a
/// few at a time).
fn serve_config(args: &Args) -> ServeConfig {
    ServeConfig {
        header_read_timeout: args.header_read_timeout,
        body: BodyTimeouts {
            idle: args.body_idle_timeout,
            min_bytes_per_second: args.body_min_rate,
        },
        max_connections: 64,
    }
}

/// Opens the metrics port (`/metrics`, `/healthz`, `/readyz`) and serves it until `shutdown`.
async fn serve_ops(
    args: &Args,
    config: ServeConfig,
    metrics: &Arc<esup_webhook::metrics::Metrics>,
    ready: &Arc<AtomicBool>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let listener = tokio::net::TcpListener::bind(args.metrics_listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.metrics_listen))?;
    let ops = tokio::spawn(esup_webhook::serve::serve(
        listener,
        server::ops_routes(metrics.clone(), ready.clone()),
        config,
        None,
        shutdown,
    ));
    tracing::info!(listen = %args.metrics_listen, "metrics and probes serving");
    Ok(ops)
}

/// Opens the API port and serves it until `shutdown`, ready from now on.
async fn serve_api(
    args: Args,
    config: ServeConfig,
    app: Arc<App>,
    metrics: Arc<esup_webhook::metrics::Metrics>,
    ready: Arc<AtomicBool>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let client_address = ClientAddress {
        header: (!args.trusted_proxies.is_empty()).then_some(args.client_ip_header),
        trusted_proxies: args.trusted_proxies,
    };
    let limits = Arc::new(Limits::per_minute(
        args.rate_limit_per_minute,
        args.callback_rate_limit_per_minute,
        args.anonymous_rate_limit_per_minute,
        client_address,
    ));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    tracing::info!(listen = %args.listen, max_connections = args.max_connections, "esup-webhook serving");
    let surface = Arc::new(server::Surface {
        metrics: metrics.clone(),
        docs: esup_webhook::openapi::DocsAssets::new(&args.docs_assets_url),
        console_url: args.console_url.clone().filter(|u| !u.is_empty()),
    });
    ready.store(true, Ordering::Relaxed);
    let api_config = ServeConfig {
        max_connections: args.max_connections,
        ..config
    };
    esup_webhook::serve::serve(
        listener,
        server::routes(app, limits, surface),
        api_config,
        Some(metrics),
        async move {
            shutdown.await;
            // Out of the Service's endpoints while open requests finish.
            ready.store(false, Ordering::Relaxed);
        },
    )
    .await;
    Ok(())
}
