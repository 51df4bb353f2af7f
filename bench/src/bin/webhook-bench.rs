//! `webhook-bench`: Esup-Pod's read path under 1,000 concurrent clients, and the cost of
//! `/task/execute` next to the API server's own create of the same resource, measured side by
//! side in one run (`docs/benchmarks.md`, "Webhook").
//!
//! Runs against the throwaway control plane of `bench/operator/control-plane` (etcd and
//! kube-apiserver only: no operator, nothing ever runs a task). One run:
//!
//! 1. CRDs, namespaces, a tenant Secret with an unbounded backlog;
//! 2. the webhook as a child process (pinned with `taskset` when `--webhook-cpus` is set),
//!    with the URL policy opened to 127.0.0.0/8 so that loopback source URLs pass (nothing is
//!    ever fetched);
//! 3. execute vs raw create, `--execute-rounds` rounds alternating their order: in each,
//!    `--execute-per-round` `POST /task/execute` over `--execute-concurrency` keep-alive
//!    connections, and as many creates of the same resource (same spec, labels and
//!    annotation, built by the same `esup_api::params::to_spec`) straight to the API server at
//!    the same concurrency, into a second namespace;
//! 4. the executed tasks are marked Succeeded with a three-file result, as a runner's
//!    completion would, and the bench waits until the webhook serves every result;
//! 5. `--clients` keep-alive connections, each its own client: open loop at each of `--rates`
//!    (aggregate requests per second, latency from the scheduled send time) on
//!    `/task/status/{id}` then `/task/result/{id}`, then a closed loop on each;
//! 6. CPU of the webhook and of the bench itself per phase (`/proc`).
//!
//! Usage: see `bench/webhook/run`.

use esup_api::labels::{
    FINGERPRINT as FINGERPRINT_LABEL, REQUEST_ANNOTATION, TENANT as TENANT_LABEL,
};
use esup_bench::cluster::{Res, apply_namespace, call, client, install_crds};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use esup_api::params::{self, SpecContext};
use esup_api::task::TaskSpec;
use esup_api::wire::TaskRequest;
use esup_api::{EncodingTask, SecretKeyRef, TaskPriority, TranscriptionTask};
use esup_bench::procfs;
use esup_bench::stats::{Summary, round};
use esup_bench::webhook::load::{self, Conn, Limit, MakeRequest, Outcome};
use futures::StreamExt;
use http_body_util::Full;
use hyper::Request;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

const FIELD_MANAGER: &str = "esup-bench";
const WEBHOOK_NS: &str = "esup-system";
/// The tenant's namespace: every task in it came through `/task/execute`.
const NS: &str = "bench-wh";
/// Raw creates go here, so that the two populations never mix.
const RAW_NS: &str = "bench-raw";
const TENANT: &str = "bench";
const SECRET: &str = "tenant-bench";
/// A suspended pool that makes the bench's tenant eligible for transcriptions.
const BENCH_POOL: &str = "bench-webhook";
const TOKEN: &str = "bench-token-0123456789";

#[derive(Parser, Debug)]
#[command(
    name = "webhook-bench",
    about = "Webhook read latency at 1,000 clients; execute vs raw create"
)]
struct Args {
    /// The esup-webhook binary to run (a private copy: see bench/webhook/run).
    #[arg(long)]
    webhook_bin: PathBuf,
    #[arg(long)]
    kubeconfig: PathBuf,
    /// CPUs the webhook is pinned to (taskset list, e.g. "1"); empty: not pinned.
    #[arg(long, default_value = "")]
    webhook_cpus: String,
    #[arg(long, default_value_t = 18080)]
    port: u16,
    /// Concurrent clients of the read phases, one keep-alive connection each.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Open-loop aggregate rates (requests per second), comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [2000.0, 5000.0])]
    rates: Vec<f64>,
    /// Length of each open-loop phase.
    #[arg(long, default_value_t = 20)]
    open_s: u64,
    /// Length of each closed-loop phase.
    #[arg(long, default_value_t = 10)]
    closed_s: u64,
    /// Requests in flight in the execute and raw-create phases.
    #[arg(long, default_value_t = 32)]
    execute_concurrency: usize,
    /// Alternating rounds of execute and raw create (round order flips each time).
    #[arg(long, default_value_t = 4)]
    execute_rounds: u64,
    /// Requests per side per round; rounds × this many tasks are then read.
    #[arg(long, default_value_t = 250)]
    execute_per_round: u64,
    #[arg(long)]
    json: Option<PathBuf>,
    /// Where the webhook's own log goes.
    #[arg(long)]
    webhook_log: Option<PathBuf>,
    /// What is measured, for the report (e.g. the commit).
    #[arg(long, default_value = "esup-webhook")]
    label: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("webhook-bench: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

fn log(message: &str) {
    eprintln!(
        "[webhook-bench {}] {message}",
        Timestamp::now().strftime("%H:%M:%S")
    );
}

async fn run(args: &Args) -> Res<()> {
    if args.clients == 0 || args.execute_concurrency == 0 || args.execute_per_round == 0 {
        return Err(
            "--clients, --execute-concurrency and --execute-per-round must be positive".into(),
        );
    }
    if args.rates.iter().any(|r| *r <= 0.0) {
        return Err("--rates must be positive".into());
    }
    let started = Instant::now();
    let client = client(&args.kubeconfig).await?;
    install_crds(&client, FIELD_MANAGER).await?;
    for ns in [WEBHOOK_NS, NS, RAW_NS] {
        apply_namespace(&client, ns, FIELD_MANAGER).await?;
    }
    refuse_leftover_tasks(&client).await?;
    apply_tenant(&client).await?;

    let webhook = WebhookProcess::start(args).await?;
    let addr = webhook.addr;
    let mut report = Report {
        label: args.label.clone(),
        clients: args.clients,
        ..Report::default()
    };

    // Warm-up, not counted: the first writes of a CRD and the first connections are slow.
    log("warm-up: 16 executes and 16 raw creates");
    let nonce = run_nonce();
    let mut exec_conns = load::open_many(addr, args.execute_concurrency).await?;
    let warm = execute_phase(exec_conns, nonce, 1_000_000_000, 16).await?;
    exec_conns = warm.0;
    raw_phase(&client, nonce, 1_000_000_000, 16, args.execute_concurrency).await?;

    // Execute vs raw create, alternating so that drift in the host's load hits both.
    let mut seq = 0u64;
    for r in 0..args.execute_rounds {
        let n = args.execute_per_round;
        let raw_first = r % 2 == 0;
        for side in if raw_first {
            [true, false]
        } else {
            [false, true]
        } {
            if side {
                let cpu = Cpu::start(webhook.pid);
                let outcome = raw_phase(&client, nonce, seq, n, args.execute_concurrency).await?;
                log(&format!("round {r} raw: {:.0}/s", outcome.throughput()));
                report.raw.push(Segment::of(&outcome, cpu.stop()));
            } else {
                let cpu = Cpu::start(webhook.pid);
                let (conns, outcome) = execute_phase(exec_conns, nonce, seq, n).await?;
                exec_conns = conns;
                log(&format!(
                    "round {r} execute: {:.0}/s ({} not 200)",
                    outcome.throughput(),
                    outcome.unexpected(200)
                ));
                if outcome.unexpected(200) > 0 || outcome.errors > 0 {
                    return Err(format!(
                        "execute answered {:?} and {} errors: see the webhook log",
                        outcome.statuses, outcome.errors
                    ));
                }
                report.execute.push(Segment::of(&outcome, cpu.stop()));
            }
        }
        seq += n;
    }
    drop(exec_conns);
    report.claims_left = call(
        "list ConfigMaps",
        Api::<ConfigMap>::namespaced(client.clone(), NS).list_metadata(&ListParams::default()),
    )
    .await?
    .items
    .iter()
    .filter(|c| c.name_any().starts_with("esup-inflight-"))
    .count();

    // The tasks Esup-Pod reads: every executed one, completed with a result.
    let ids = executed_ids(&client).await?;
    log(&format!("completing {} executed tasks", ids.len()));
    complete_tasks(&client, &ids, &webhook.results).await?;
    let mut conns = load::open_many(addr, args.clients).await?;
    wait_results_served(&mut conns[0], &ids).await?;
    let ids = Arc::new(ids);
    // The completions start the webhook's own work (the notifier looks at every ended task):
    // let it finish, then warm the connections up, so that the phases measure serving only.
    wait_quiet(webhook.pid).await;
    if let Some(&rate) = args.rates.first() {
        let make = read_request(Endpoint::Status, ids.clone());
        let (back, _) = load::open_loop(conns, make, rate, Duration::from_secs(3)).await?;
        conns = back;
    }

    for &rate in &args.rates {
        for endpoint in [Endpoint::Status, Endpoint::Result] {
            let cpu = Cpu::start(webhook.pid);
            let make = read_request(endpoint, ids.clone());
            let (back, outcome) =
                load::open_loop(conns, make, rate, Duration::from_secs(args.open_s)).await?;
            conns = back;
            let phase = ReadPhase::of(endpoint, Some(rate), &outcome, cpu.stop());
            log(&phase.line());
            report.reads.push(phase);
            if conns.len() < args.clients {
                return Err(format!("{} connections broke", args.clients - conns.len()));
            }
        }
    }
    for endpoint in [Endpoint::Status, Endpoint::Result] {
        let cpu = Cpu::start(webhook.pid);
        let make = read_request(endpoint, ids.clone());
        let (back, outcome) =
            load::closed_loop(conns, make, Limit::For(Duration::from_secs(args.closed_s))).await?;
        conns = back;
        let phase = ReadPhase::of(endpoint, None, &outcome, cpu.stop());
        log(&phase.line());
        report.reads.push(phase);
    }
    drop(conns);

    report.webhook_peak_mib = procfs::memory_mib(webhook.pid, "VmHWM").unwrap_or(0.0);
    report.duration_s = started.elapsed().as_secs_f64();
    webhook.stop().await;

    let table = report.markdown();
    println!("{table}");
    if let Some(path) = &args.json {
        let text =
            serde_json::to_string_pretty(&report.to_json()).map_err(|e| format!("json: {e}"))?;
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Cluster setup

/// Counts and ids depend on a fresh start: refuse leftovers of an earlier run.
async fn refuse_leftover_tasks(client: &Client) -> Res<()> {
    for ns in [NS, RAW_NS] {
        let lp = ListParams::default().limit(1);
        let e = call(
            "list EncodingTasks",
            Api::<EncodingTask>::namespaced(client.clone(), ns).list_metadata(&lp),
        )
        .await?;
        let t = call(
            "list TranscriptionTasks",
            Api::<TranscriptionTask>::namespaced(client.clone(), ns).list_metadata(&lp),
        )
        .await?;
        if !e.items.is_empty() || !t.items.is_empty() {
            return Err(format!(
                "namespace {ns} already has tasks: start from a fresh control plane \
                 (bench/operator/control-plane down, then up)"
            ));
        }
    }
    Ok(())
}

/// The bench's tenant: its backlog bound never answers 503 during the run.
async fn apply_tenant(client: &Client) -> Res<()> {
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": SECRET, "namespace": WEBHOOK_NS, "labels": {TENANT_LABEL: TENANT}},
        "stringData": {"token": TOKEN, "namespace": NS, "maxBacklog": "1000000"},
    }))
    .map_err(|e| format!("tenant Secret: {e}"))?;
    call(
        "apply the tenant Secret",
        Api::<Secret>::namespaced(client.clone(), WEBHOOK_NS).patch(
            SECRET,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&secret),
        ),
    )
    .await?;
    // The webhook refuses a task type no RunnerPool takes for the tenant (503, as the
    // reference manager does when no runner can take it). No operator runs here: a suspended
    // pool makes the tenant eligible and never runs anything.
    let pool: esup_api::RunnerPool = serde_json::from_value(json!({
        "apiVersion": "runner.esup-portail.org/v1alpha1", "kind": "RunnerPool",
        "metadata": {"name": BENCH_POOL},
        "spec": {"taskTypes": ["Transcription"], "priority": 1, "maxConcurrency": 1,
                 "suspend": true, "tenants": [{"name": TENANT}]},
    }))
    .map_err(|e| format!("RunnerPool: {e}"))?;
    call(
        "apply the bench's RunnerPool",
        Api::<esup_api::RunnerPool>::all(client.clone()).patch(
            BENCH_POOL,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&pool),
        ),
    )
    .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The webhook process

struct WebhookProcess {
    child: tokio::process::Child,
    pid: u32,
    addr: SocketAddr,
    results: PathBuf,
}

impl WebhookProcess {
    async fn start(args: &Args) -> Res<Self> {
        let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
        let results =
            std::env::temp_dir().join(format!("esup-webhook-bench-{}", std::process::id()));
        std::fs::create_dir_all(&results).map_err(|e| format!("{}: {e}", results.display()))?;
        let mut command = if args.webhook_cpus.is_empty() {
            tokio::process::Command::new(&args.webhook_bin)
        } else {
            let mut c = tokio::process::Command::new("taskset");
            c.arg("-c").arg(&args.webhook_cpus).arg(&args.webhook_bin);
            c
        };
        command
            .arg("--listen")
            .arg(addr.to_string())
            // Its metrics port (not scraped here): any free loopback port, so that runs side
            // by side do not collide on the default 9090.
            .arg("--metrics-listen")
            .arg("127.0.0.1:0")
            // The read phases' keep-alive connections wait idle between phases (while the
            // webhook settles) longer than the default 20 s the webhook gives a request head.
            .arg("--header-read-timeout")
            .arg("10m")
            .arg("--namespace")
            .arg(WEBHOOK_NS)
            .arg("--results-dir")
            .arg(&results)
            // The bench's 1,000 clients share one address.
            .arg("--rate-limit-per-minute")
            .arg("4000000000")
            // Loopback source URLs pass the URL policy; nothing is ever fetched.
            .arg("--allowed-hosts")
            .arg("127.0.0.1")
            .arg("--private-networks")
            .arg("127.0.0.0/8")
            .env("KUBECONFIG", &args.kubeconfig)
            .env("RUST_LOG", "warn")
            .kill_on_drop(true);
        match &args.webhook_log {
            Some(path) => {
                let file = std::fs::File::create(path)
                    .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
                let err = file.try_clone().map_err(|e| format!("log file: {e}"))?;
                command.stdout(file).stderr(err);
            }
            None => {
                command
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::inherit());
            }
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", args.webhook_bin.display()))?;
        let pid = child.id().ok_or("the webhook exited at once")?;
        log(&format!(
            "webhook pid {pid} on {addr}, cpus {:?}",
            args.webhook_cpus
        ));
        // Ready once it answers the tenant's token (the Secret watch has filled its table).
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("the webhook exited: {status}"));
            }
            if let Ok(mut conn) = Conn::open(addr).await
                && let Ok((status, _)) = conn.send(get("/manager/health")).await
                && status == 200
            {
                break;
            }
            if Instant::now() >= deadline {
                return Err("the webhook did not answer the tenant's token within 60 s".into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(Self {
            child,
            pid,
            addr,
            results,
        })
    }

    async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        let _ = std::fs::remove_dir_all(&self.results);
    }
}

// ---------------------------------------------------------------------------------------------
// Requests

fn get(path: &str) -> Request<Full<Bytes>> {
    request("GET", path, Bytes::new())
}

fn request(method: &str, path: &str, body: Bytes) -> Request<Full<Bytes>> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .header("authorization", format!("Bearer {TOKEN}"));
    if !body.is_empty() {
        builder = builder.header("content-type", "application/json");
    }
    // A fixed method, path and headers: the builder cannot fail on them.
    builder
        .body(Full::new(body.clone()))
        .unwrap_or_else(|_| Request::new(Full::new(body)))
}

/// Esup-Pod's transcription request number `seq` of this run (distinct source URL, so no
/// de-duplication between them).
fn pod_request(nonce: u64, seq: u64) -> TaskRequest {
    let body = json!({
        "etab_name": "Université Bench / Pod", "app_name": "Esup-Pod", "app_version": "4.2.0",
        "task_type": "transcription",
        "source_url": format!("http://127.0.0.1:9/media/{nonce:x}/{seq}/audio_192k_lecture.mp3"),
        "notify_url": "",
        "parameters": {"language": "fr", "source_language": "fr", "duration": 612.5, "normalize": false,
                       "video_id": seq, "video_slug": format!("{seq}-lecture"), "video_title": "Lecture"},
    });
    // The literal above is a valid request.
    serde_json::from_value(body).unwrap_or_else(|_| TaskRequest {
        etab_name: String::new(),
        app_name: String::new(),
        app_version: None,
        task_type: "transcription".into(),
        source_url: String::new(),
        affiliation: None,
        parameters: serde_json::Map::new(),
        notify_url: String::new(),
    })
}

fn run_nonce() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

async fn execute_phase(
    conns: Vec<Conn>,
    nonce: u64,
    first: u64,
    n: u64,
) -> Res<(Vec<Conn>, Outcome)> {
    let make: MakeRequest = Arc::new(move |i| {
        let body = serde_json::to_vec(&pod_request(nonce, first + i)).unwrap_or_default();
        request("POST", "/task/execute", Bytes::from(body))
    });
    load::closed_loop(conns, make, Limit::Count(n)).await
}

/// The object `/task/execute` would create for the same request, created straight through the
/// API server.
fn raw_task(nonce: u64, seq: u64) -> Res<TranscriptionTask> {
    let request = pod_request(nonce, seq);
    let context = SpecContext {
        tenant: TENANT.into(),
        notify_token: SecretKeyRef {
            name: SECRET.into(),
            key: "token".into(),
            namespace: Some(WEBHOOK_NS.into()),
        },
        retention: None,
        priority: TaskPriority::Normal,
    };
    let TaskSpec::Transcription(spec) =
        params::to_spec(&request, &context).map_err(|e| format!("to_spec: {e}"))?
    else {
        return Err("a transcription request became another kind".into());
    };
    let fingerprint = params::fingerprint(&request);
    let raw = serde_json::to_string(&request).map_err(|e| e.to_string())?;
    Ok(TranscriptionTask {
        metadata: ObjectMeta {
            // The shape of a UUID, as the webhook's task names.
            name: Some(format!("{:08x}-0000-4000-8000-{seq:012x}", nonce as u32)),
            namespace: Some(RAW_NS.into()),
            labels: Some(
                [
                    (TENANT_LABEL.to_owned(), TENANT.to_owned()),
                    (FINGERPRINT_LABEL.to_owned(), fingerprint[..40].to_owned()),
                ]
                .into(),
            ),
            annotations: Some([(REQUEST_ANNOTATION.to_owned(), raw)].into()),
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    })
}

async fn raw_phase(
    client: &Client,
    nonce: u64,
    first: u64,
    n: u64,
    concurrency: usize,
) -> Res<Outcome> {
    let objects: Vec<TranscriptionTask> = (first..first + n)
        .map(|s| raw_task(nonce, s))
        .collect::<Res<_>>()?;
    let api: Api<TranscriptionTask> = Api::namespaced(client.clone(), RAW_NS);
    let params = PostParams {
        field_manager: Some("esup-webhook".into()),
        ..PostParams::default()
    };
    let start = tokio::time::Instant::now();
    let results: Vec<(Res<()>, Duration)> = futures::stream::iter(objects)
        .map(|object| {
            let api = api.clone();
            let params = params.clone();
            async move {
                let t = Instant::now();
                let r = call("create", api.create(&params, &object))
                    .await
                    .map(|_| ());
                (r, t.elapsed())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut outcome = Outcome {
        elapsed: start.elapsed(),
        ..Outcome::default()
    };
    for (r, latency) in results {
        r?;
        outcome.latencies.push(latency);
        *outcome.statuses.entry(201).or_default() += 1;
    }
    Ok(outcome)
}

async fn executed_ids(client: &Client) -> Res<Vec<String>> {
    let list = call(
        "list executed tasks",
        Api::<TranscriptionTask>::namespaced(client.clone(), NS)
            .list_metadata(&ListParams::default()),
    )
    .await?;
    let mut ids: Vec<String> = list.items.iter().map(ResourceExt::name_any).collect();
    ids.sort();
    Ok(ids)
}

/// Marks each task Succeeded with a result, as the runner's completion does through the
/// webhook, so that `/task/result` answers 200 with a manifest: launch 1, its script output
/// in the result store (`<uid>/1/script_output` under the webhook's `--results-dir`), as the
/// webhook records results since the output moved out of the task.
async fn complete_tasks(client: &Client, ids: &[String], results_dir: &Path) -> Res<()> {
    let api: Api<TranscriptionTask> = Api::namespaced(client.clone(), NS);
    let now = Timestamp::now().to_string();
    let script = "[info_script.log]\nok\n";
    let results: Vec<Res<()>> = futures::stream::iter(ids.iter().cloned())
        .map(|id| {
            let api = api.clone();
            let now = now.clone();
            async move {
                let task = call(&format!("get {id}"), api.get(&id)).await?;
                let uid = task.metadata.uid.unwrap_or_default();
                let key = format!("{uid}/1/script_output");
                let path = results_dir.join(&key);
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                }
                std::fs::write(&path, script).map_err(|e| format!("{}: {e}", path.display()))?;
                let files: Vec<Value> = ["audio_192k_lecture.vtt", "audio_192k_lecture.srt", "info_script.log"]
                    .iter()
                    .map(|p| json!({"path": p, "sha256": format!("{:064x}", id.len() * 7919 + p.len()), "sizeBytes": 4096}))
                    .collect();
                let patch = json!({"status": {"phase": "Succeeded", "result": {
                    "outcome": "Completed", "files": files, "launch": 1,
                    "scriptOutputRef": {"key": key, "sizeBytes": script.len()},
                    "reportTime": now}}});
                call(
                    &format!("complete {id}"),
                    api.patch_status(&id, &PatchParams::default(), &Patch::Merge(&patch)),
                )
                .await
                .map(|_| ())
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Waits until the webhook's cache shows every task completed.
async fn wait_results_served(conn: &mut Conn, ids: &[String]) -> Res<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    for id in ids {
        loop {
            let (status, body) = conn.send(get(&format!("/task/result/{id}"))).await?;
            if status == 200 {
                break;
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "/task/result/{id} still answers {status} {}",
                    String::from_utf8_lossy(&body)
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// Waits (30 s at most) until the webhook uses less than 5 % of a core over a second.
async fn wait_quiet(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let before = procfs::cpu_seconds(pid).unwrap_or(0.0);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let used = procfs::cpu_seconds(pid).unwrap_or(before) - before;
        if used < 0.05 {
            return;
        }
    }
    log("the webhook was still busy after 30 s; measuring anyway");
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Endpoint {
    Status,
    Result,
}

impl Endpoint {
    fn path(self) -> &'static str {
        match self {
            Self::Status => "/task/status/",
            Self::Result => "/task/result/",
        }
    }
}

fn read_request(endpoint: Endpoint, ids: Arc<Vec<String>>) -> MakeRequest {
    Arc::new(move |seq| {
        let id = &ids[(seq % ids.len() as u64) as usize];
        get(&format!("{}{id}", endpoint.path()))
    })
}

// ---------------------------------------------------------------------------------------------
// Measures and report

/// CPU seconds of the webhook and of this process over a phase.
struct Cpu {
    webhook_pid: u32,
    webhook0: f64,
    bench0: f64,
    host0: (f64, f64),
    t0: Instant,
}

#[derive(Clone, Copy, Debug, Default)]
struct CpuUse {
    wall_s: f64,
    webhook_s: f64,
    bench_s: f64,
    host_busy_s: f64,
}

impl CpuUse {
    fn cores(seconds: f64, wall: f64) -> f64 {
        if wall > 0.0 { seconds / wall } else { 0.0 }
    }
}

impl Cpu {
    fn start(webhook_pid: u32) -> Self {
        Self {
            webhook_pid,
            webhook0: procfs::cpu_seconds(webhook_pid).unwrap_or(0.0),
            bench0: procfs::cpu_seconds(std::process::id()).unwrap_or(0.0),
            host0: procfs::host_cpu_seconds().unwrap_or((0.0, 0.0)),
            t0: Instant::now(),
        }
    }

    fn stop(self) -> CpuUse {
        let host = procfs::host_cpu_seconds().unwrap_or(self.host0);
        CpuUse {
            wall_s: self.t0.elapsed().as_secs_f64(),
            webhook_s: procfs::cpu_seconds(self.webhook_pid).unwrap_or(self.webhook0)
                - self.webhook0,
            bench_s: procfs::cpu_seconds(std::process::id()).unwrap_or(self.bench0) - self.bench0,
            host_busy_s: host.0 - self.host0.0,
        }
    }
}

struct Segment {
    count: u64,
    elapsed_s: f64,
    latencies: Vec<Duration>,
    cpu: CpuUse,
}

impl Segment {
    fn of(outcome: &Outcome, cpu: CpuUse) -> Self {
        Self {
            count: outcome.answered(),
            elapsed_s: outcome.elapsed.as_secs_f64(),
            latencies: outcome.latencies.clone(),
            cpu,
        }
    }
}

/// Requests per second over segments, and their pooled latencies.
fn pooled(segments: &[Segment]) -> (f64, Summary, CpuUse) {
    let count: u64 = segments.iter().map(|s| s.count).sum();
    let secs: f64 = segments.iter().map(|s| s.elapsed_s).sum();
    let all: Vec<Duration> = segments
        .iter()
        .flat_map(|s| s.latencies.iter().copied())
        .collect();
    let cpu = segments.iter().fold(CpuUse::default(), |a, s| CpuUse {
        wall_s: a.wall_s + s.cpu.wall_s,
        webhook_s: a.webhook_s + s.cpu.webhook_s,
        bench_s: a.bench_s + s.cpu.bench_s,
        host_busy_s: a.host_busy_s + s.cpu.host_busy_s,
    });
    (
        if secs > 0.0 { count as f64 / secs } else { 0.0 },
        Summary::of(&all),
        cpu,
    )
}

struct ReadPhase {
    endpoint: Endpoint,
    /// None: closed loop.
    offered: Option<f64>,
    achieved: f64,
    latency: Summary,
    statuses: BTreeMap<u16, u64>,
    errors: u64,
    cpu: CpuUse,
}

impl ReadPhase {
    fn of(endpoint: Endpoint, offered: Option<f64>, outcome: &Outcome, cpu: CpuUse) -> Self {
        Self {
            endpoint,
            offered,
            achieved: outcome.throughput(),
            latency: Summary::of(&outcome.latencies),
            statuses: outcome.statuses.clone(),
            errors: outcome.errors,
            cpu,
        }
    }

    fn non_200(&self) -> u64 {
        self.statuses
            .iter()
            .filter(|(s, _)| **s != 200)
            .map(|(_, n)| n)
            .sum::<u64>()
            + self.errors
    }

    fn mode(&self) -> String {
        match self.offered {
            Some(r) => format!("open loop, {r:.0}/s"),
            None => "closed loop".into(),
        }
    }

    fn line(&self) -> String {
        format!(
            "{:?} {}: {:.0}/s, p50 {:.2} p99 {:.2} max {:.2} ms, {} not 200, webhook {:.2} cores, bench {:.2} cores",
            self.endpoint,
            self.mode(),
            self.achieved,
            self.latency.p50,
            self.latency.p99,
            self.latency.max,
            self.non_200(),
            CpuUse::cores(self.cpu.webhook_s, self.cpu.wall_s),
            CpuUse::cores(self.cpu.bench_s, self.cpu.wall_s),
        )
    }
}

#[derive(Default)]
struct Report {
    label: String,
    clients: usize,
    raw: Vec<Segment>,
    execute: Vec<Segment>,
    claims_left: usize,
    reads: Vec<ReadPhase>,
    webhook_peak_mib: f64,
    duration_s: f64,
}

fn r2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

impl Report {
    fn ratio(&self) -> f64 {
        let (raw, _, _) = pooled(&self.raw);
        let (exec, _, _) = pooled(&self.execute);
        if raw > 0.0 { exec / raw } else { 0.0 }
    }

    fn markdown(&self) -> String {
        let mut out = format!("\n### webhook-bench: {}\n\n", self.label);
        let (raw, raw_lat, raw_cpu) = pooled(&self.raw);
        let (exec, exec_lat, exec_cpu) = pooled(&self.execute);
        let n = self.execute.first().map_or(0, |s| s.count);
        out += &format!(
            "| execute vs raw create ({} rounds × {n}) | raw create (API server) | `/task/execute` | ratio |\n| --- | ---: | ---: | ---: |\n",
            self.execute.len()
        );
        out += &format!(
            "| **throughput** (per s) | {raw:.0} | {exec:.0} | **{:.2}** |\n",
            self.ratio()
        );
        let rounds = |s: &[Segment]| {
            s.iter()
                .map(|s| format!("{:.0}", s.count as f64 / s.elapsed_s.max(1e-9)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out += &format!(
            "| per round (per s) | {} | {} | |\n",
            rounds(&self.raw),
            rounds(&self.execute)
        );
        out += &format!(
            "| latency p50 / p99 (ms) | {:.1} / {:.1} | {:.1} / {:.1} | |\n",
            raw_lat.p50, raw_lat.p99, exec_lat.p50, exec_lat.p99
        );
        out += &format!(
            "| webhook CPU (s) / host busy cores | {:.2} / {:.2} | {:.2} / {:.2} | |\n",
            raw_cpu.webhook_s,
            CpuUse::cores(raw_cpu.host_busy_s, raw_cpu.wall_s),
            exec_cpu.webhook_s,
            CpuUse::cores(exec_cpu.host_busy_s, exec_cpu.wall_s),
        );
        out += &format!(
            "| de-duplication ConfigMaps left | | {} | |\n\n",
            self.claims_left
        );
        out += &format!(
            "| read, {} clients | mode | achieved (per s) | p50 / p95 / p99 / max (ms) | not 200 | webhook / bench / host busy cores |\n| --- | --- | ---: | ---: | ---: | ---: |\n",
            self.clients
        );
        for p in &self.reads {
            out += &format!(
                "| `{}{{id}}` | {} | {:.0} | {:.2} / {:.2} / **{:.2}** / {:.2} | {} | {:.2} / {:.2} / {:.2} |\n",
                p.endpoint.path(),
                p.mode(),
                p.achieved,
                p.latency.p50,
                p.latency.p95,
                p.latency.p99,
                p.latency.max,
                p.non_200(),
                CpuUse::cores(p.cpu.webhook_s, p.cpu.wall_s),
                CpuUse::cores(p.cpu.bench_s, p.cpu.wall_s),
                CpuUse::cores(p.cpu.host_busy_s, p.cpu.wall_s),
            );
        }
        out += &format!(
            "\nwebhook peak RSS {:.1} MiB; run {:.0} s\n",
            self.webhook_peak_mib, self.duration_s
        );
        out
    }

    fn to_json(&self) -> Value {
        let side = |s: &[Segment]| {
            let (rate, lat, cpu) = pooled(s);
            json!({
                "throughput_per_s": r2(rate),
                "rounds_per_s": s.iter().map(|s| r2(s.count as f64 / s.elapsed_s.max(1e-9))).collect::<Vec<_>>(),
                "latency": lat.to_json(),
                "webhook_cpu_s": r2(cpu.webhook_s),
                "host_busy_cores": r2(CpuUse::cores(cpu.host_busy_s, cpu.wall_s)),
            })
        };
        json!({
            "label": self.label,
            "clients": self.clients,
            "raw_create": side(&self.raw),
            "execute": side(&self.execute),
            "execute_over_raw": r2(self.ratio()),
            "dedup_configmaps_left": self.claims_left,
            "reads": self.reads.iter().map(|p| json!({
                "endpoint": p.endpoint.path(),
                "offered_per_s": p.offered,
                "achieved_per_s": round(p.achieved),
                "latency": p.latency.to_json(),
                "p99_ms_exact": p.latency.p99,
                "statuses": p.statuses,
                "errors": p.errors,
                "webhook_cores": r2(CpuUse::cores(p.cpu.webhook_s, p.cpu.wall_s)),
                "bench_cores": r2(CpuUse::cores(p.cpu.bench_s, p.cpu.wall_s)),
                "host_busy_cores": r2(CpuUse::cores(p.cpu.host_busy_s, p.cpu.wall_s)),
            })).collect::<Vec<_>>(),
            "webhook_peak_mib": round(self.webhook_peak_mib),
            "duration_s": round(self.duration_s),
        })
    }
}
