//! `esup-operator`: schedules EncodingTask and TranscriptionTask onto RunnerPools as Jobs.
//! Every flag has an environment variable, for the Helm chart.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use esup_kube_common::cli;
use esup_kube_common::leader::{self, LeaderConfig};
use esup_operator::http::{self, Health};
use esup_operator::job::RunnerConfig;
use esup_operator::metrics::Metrics;
use esup_operator::runtime::{Config, Operator};
use esup_operator::schedule::Settings;

#[derive(Parser, Debug)]
#[command(
    name = "esup-operator",
    version,
    about = "Schedules Esup-Pod tasks onto RunnerPools as Kubernetes Jobs"
)]
struct Args {
    /// Runner image of pools that set none.
    #[arg(
        long,
        env = "ESUP_RUNNER_IMAGE",
        default_value = "esup.local/esup-runner:dev"
    )]
    runner_image: String,
    /// imagePullPolicy of runner containers.
    #[arg(
        long,
        env = "ESUP_RUNNER_IMAGE_PULL_POLICY",
        default_value = "IfNotPresent"
    )]
    runner_image_pull_policy: String,
    /// Base URL of the webhook as runners reach it (completion, progress and upload callbacks).
    #[arg(
        long,
        env = "ESUP_CALLBACK_BASE_URL",
        default_value = "http://esup-webhook.esup-system.svc:8080"
    )]
    callback_base_url: String,
    /// ServiceAccount of runner pods, in each task's namespace (the chart creates one with no
    /// API access); unset: the namespace's `default`. Runner pods never mount its token.
    #[arg(long, env = "ESUP_RUNNER_SERVICE_ACCOUNT")]
    runner_service_account: Option<String>,
    /// PersistentVolumeClaim, in each task's namespace, with the models (`whisper/`,
    /// `translation/`): mounted read-only at /models in transcription pods. Unset: the runner
    /// image must hold the models itself.
    #[arg(long, env = "ESUP_RUNNER_MODELS_CLAIM")]
    runner_models_claim: Option<String>,
    /// Seconds a finished Job (and its pod's logs) is kept.
    #[arg(long, env = "ESUP_JOB_TTL_SECONDS", default_value_t = 3600)]
    job_ttl_seconds: i32,
    /// Retention of finished tasks that set none, e.g. 1440h (60 days).
    #[arg(long, env = "ESUP_DEFAULT_RETENTION", default_value = "1440h", value_parser = cli::parse_duration)]
    default_retention: Duration,
    /// Finished tasks kept per tenant and namespace; past it the oldest are deleted before
    /// their retention ends, which bounds etcd and every watch cache.
    #[arg(
        long,
        env = "ESUP_MAX_FINISHED_TASKS_PER_TENANT",
        default_value_t = 10_000
    )]
    max_finished_tasks_per_tenant: usize,
    /// Launch runner pods only in namespaces that hold a runner NetworkPolicy (label
    /// runner.esup-portail.org/runner-policy=true); tasks elsewhere wait with the reason
    /// NoRunnerNetworkPolicy. The chart sets it with networkPolicy.enabled.
    #[arg(
        long,
        env = "ESUP_REQUIRE_RUNNER_NETWORK_POLICY",
        default_value_t = false
    )]
    require_runner_network_policy: bool,
    /// How long a runner pod may fail to pull its image before its attempt ends.
    #[arg(long, env = "ESUP_IMAGE_PULL_GRACE", default_value = "2m", value_parser = cli::parse_duration)]
    image_pull_grace: Duration,
    /// Namespace of the leader-election Lease (the operator's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "esup-system")]
    namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, env = "ESUP_LEASE_NAME", default_value = "esup-operator")]
    lease_name: String,
    /// This replica's identity in the Lease and in Events (the pod name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "ESUP_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// API writes in flight at once.
    #[arg(long, env = "ESUP_WRITE_CONCURRENCY", default_value_t = 32)]
    write_concurrency: usize,
    /// Queue-position updates written per second at most (positions are informational).
    #[arg(long, env = "ESUP_POSITION_WRITES_PER_SECOND", default_value_t = 20.0)]
    position_writes_per_second: f64,
    /// URL policy that runners apply to every fetch (source, dressing, mediapackage tracks
    /// and SMIL, each redirect): the webhook's settings, given to runner containers. Hosts
    /// (and subdomains) that URLs may use; empty: any public host. Comma-separated.
    #[arg(long, env = "ESUP_ALLOWED_HOSTS", value_delimiter = ',')]
    allowed_hosts: Vec<String>,
    /// Hosts (and subdomains) that runners may reach at private addresses. Comma-separated.
    #[arg(long, env = "ESUP_PRIVATE_HOSTS", value_delimiter = ',')]
    private_hosts: Vec<String>,
    /// Private networks runners may fetch from, e.g. 10.96.0.0/12. Comma-separated CIDRs.
    #[arg(long, env = "ESUP_PRIVATE_NETWORKS", value_delimiter = ',')]
    private_networks: Vec<esup_api::url_policy::IpNet>,
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
    let identity = cli::identity(args.identity.clone(), "esup-operator");
    let lease = LeaderConfig::new(&args.namespace, &args.lease_name, &identity);
    lease.validate().map_err(|e| e.to_string())?;

    let metrics = Arc::new(Metrics::new());
    let health = Health::new(Duration::from_secs(60));
    let (leadership, election) = leader::spawn(client.clone(), lease.clone());

    let config = Config {
        runner: RunnerConfig {
            default_image: args.runner_image,
            image_pull_policy: args.runner_image_pull_policy,
            callback_base_url: args.callback_base_url,
            job_ttl_seconds: args.job_ttl_seconds,
            service_account: args.runner_service_account.filter(|s| !s.is_empty()),
            models_claim: args.runner_models_claim.filter(|s| !s.is_empty()),
            url_policy: esup_api::url_policy::UrlPolicy {
                allowed_hosts: args.allowed_hosts,
                private_hosts: args.private_hosts,
                private_networks: args.private_networks,
            },
        },
        settings: Settings {
            image_pull_grace: args.image_pull_grace,
            default_retention: args.default_retention,
            max_finished_per_tenant: args.max_finished_tasks_per_tenant.max(1),
            require_runner_network_policy: args.require_runner_network_policy,
            ..Settings::default()
        },
        min_pass_interval: Duration::from_millis(100),
        max_pass_interval: Duration::from_secs(2),
        write_concurrency: args.write_concurrency.max(1),
        position_refresh: Duration::from_secs(15),
        position_writes_per_second: args.position_writes_per_second,
        instance: identity.clone(),
    };
    let operator = Operator::new(client.clone(), config, metrics.clone(), health.clone());

    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(http::serve(args.listen, metrics, health, async {
        let _ = http_stopped.await;
    }));
    tracing::info!(%identity, listen = %args.listen, "esup-operator starting");

    tokio::select! {
        () = operator.run(leadership) => tracing::warn!("scheduling loop ended"),
        served = server => return Err(format!("metrics and health server stopped: {served:?}")),
        () = cli::shutdown_signal() => tracing::info!("shutting down"),
    }
    // Hand the Lease over at once instead of letting the other replica wait for it to expire.
    election.abort();
    if let Err(e) = leader::release(client, &lease).await {
        tracing::warn!(error = %e, "cannot release the Lease; it expires on its own");
    }
    let _ = stop_http.send(());
    Ok(())
}
