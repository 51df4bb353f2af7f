//! `esup-webhook`: Esup-Pod's runner-manager API on top of the task resources. Every flag has
//! an environment variable, for the Helm chart.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use clap::Parser;
use esup_operator::cli;
use esup_webhook::dedup::Dedup;
use esup_webhook::manager_api::App;
use esup_webhook::notifier::NotifierConfig;
use esup_webhook::server::{self, RateLimiter};
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
    about = "Esup-Pod's runner-manager API for esup-runner-operator"
)]
struct Args {
    /// Address of the API Esup-Pod and the runners call.
    #[arg(long, env = "ESUP_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Namespace of the tenant Secrets (the webhook's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "esup-system")]
    namespace: String,
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
    /// Requests per client address per minute (the reference manager's default is 120).
    #[arg(long, env = "ESUP_RATE_LIMIT_PER_MINUTE", default_value_t = 120)]
    rate_limit_per_minute: u32,
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
    /// Log format: text or json.
    #[arg(long, env = "ESUP_LOG_FORMAT", default_value = "text")]
    log_format: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    cli::init_logging(&args.log_format);
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let client = kube::Client::try_default()
        .await
        .map_err(|e| format!("cannot configure the Kubernetes client: {e}"))?;
    let tokens = Arc::new(RwLock::new(TokenTable::default()));
    esup_webhook::tenant_watch::spawn(client.clone(), &args.namespace, tokens.clone());
    let tasks = Tasks::start(client.clone());
    let (pools, writer) = reflector::store();
    let pool_stream = reflector::reflector(
        writer,
        watcher(
            kube::Api::<esup_api::RunnerPool>::all(client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .applied_objects();
    tokio::spawn(async move {
        use futures::StreamExt;
        futures::pin_mut!(pool_stream);
        while pool_stream.next().await.is_some() {}
    });
    let policy = UrlPolicy {
        allowed_hosts: args.allowed_hosts,
        private_hosts: args.private_hosts,
        private_networks: args.private_networks,
    };
    let store_config = match args.s3_bucket {
        Some(bucket) => StoreConfig::S3 {
            allow_http: args
                .s3_endpoint
                .as_deref()
                .is_some_and(|e| e.starts_with("http://")),
            endpoint: args.s3_endpoint,
            bucket,
            region: args.s3_region,
            access_key_id: args.s3_access_key_id,
            secret_access_key: args.s3_secret_access_key,
            prefix: args.s3_prefix,
        },
        None => StoreConfig::Filesystem {
            root: args.results_dir,
        },
    };
    let store = ResultStore::new(&store_config)
        .map_err(|e| format!("result store {store_config:?}: {e}"))?;
    let identity = cli::identity(None, "esup-webhook");
    let mut notifier = NotifierConfig::new(&args.namespace, identity, policy.clone());
    notifier.read_timeout = args.notify_read_timeout;
    notifier.retry_delays = esup_webhook::notifier::backoff_delays(args.notify_retry_base, 1.5, 5);
    let metrics = Arc::new(esup_webhook::metrics::Metrics::new(notifier.stats.clone()));
    tokio::spawn(esup_webhook::notifier::run(client.clone(), notifier));
    let app = Arc::new(App {
        tasks: tasks.clone(),
        tokens,
        policy,
        dedup: Dedup::new(),
        pools,
        store,
    });
    if !tasks.ready().await {
        return Err("the task caches could not start".to_owned());
    }
    tokio::spawn(esup_webhook::retention::run(
        tasks.clone(),
        app.store.clone(),
        args.results_sweep,
    ));
    let limiter = Arc::new(RateLimiter::new(
        args.rate_limit_per_minute,
        Duration::from_secs(60),
    ));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    tracing::info!(listen = %args.listen, "esup-webhook serving");
    let surface = Arc::new(server::Surface {
        metrics,
        docs: esup_webhook::openapi::DocsAssets::new(&args.docs_assets_url),
    });
    warp::serve(server::routes(app, limiter, surface))
        .incoming(listener)
        .graceful(cli::shutdown_signal())
        .run()
        .await;
    Ok(())
}
