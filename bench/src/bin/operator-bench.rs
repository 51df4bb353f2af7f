//! `operator-bench`: the operator's scheduling overhead with a deep queue, measured side by
//! side with the API server's own create latency in the same run (`docs/benchmarks.md`).
//!
//! Runs against a throwaway control plane without scheduler, controller-manager or kubelet
//! (`bench/operator/control-plane`): Jobs never get pods, so admitted tasks hold their slots
//! and the backlog stays queued. One run:
//!
//! 1. CRDs, namespaces, 30 fake Ready nodes (two GPU pools' worth and one CPU pool's), three
//!    backlog pools with small slots and a `probe` pool with room for every probe;
//! 2. the operator as a child process;
//! 3. `--backlog` tasks over the backlog pools, until every one is Queued or Admitted;
//! 4. `--probes` probe tasks at `--rate`: task-to-Job latency (create call → the bench's Job
//!    watch sees the Job) next to each create call's own latency;
//! 5. `--releases` admitted backlog tasks deleted one by one: time until the next queued task
//!    of that pool gets its Job (release-to-admission with a deep queue);
//! 6. the operator's CPU time and peak memory, and its own metrics per phase.
//!
//! Usage: see `bench/operator/run`, which builds, starts the control plane and runs 1,000 and
//! 10,000.

use esup_bench::cluster::{Res, apply_namespace, call, client, install_crds};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use clap::Parser;
use esup_api::{EncodingTask, RunnerPool, TaskPhase, TranscriptionTask};
use esup_bench::procfs;
use esup_bench::prom::Scrape;
use esup_bench::stats::{Summary, round};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

const FIELD_MANAGER: &str = "esup-bench";
const NS: &str = "bench";
const OPERATOR_NS: &str = "esup-system";
const NODE_PREFIX: &str = "bench-node-";
const POOL_LABEL: &str = "esup.bench/pool";
const BACKLOG_PREFIX: &str = "bl-";
const PROBE_PREFIX: &str = "probe-";
const PROBE_POOL: &str = "probe";
const TENANTS: [&str; 3] = ["univ-a", "univ-b", "univ-c"];
/// How often waits look at what the watches saw (latencies use the watches' own clocks).
const POLL: Duration = Duration::from_millis(20);
/// Nodes per pool.
const NODES_PER_POOL: usize = 10;
const GPUS_PER_NODE: u32 = 8;

#[derive(Parser, Debug)]
#[command(
    name = "operator-bench",
    about = "Task-to-Job latency, CPU and memory of esup-operator with a deep queue"
)]
struct Args {
    /// Tasks queued before the probes.
    #[arg(long)]
    backlog: usize,
    /// Probe tasks measured.
    #[arg(long, default_value_t = 200)]
    probes: usize,
    /// Probes created per second (open loop: each at its own time).
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Admitted backlog tasks deleted to measure release-to-admission.
    #[arg(long, default_value_t = 50)]
    releases: usize,
    /// Deletions per second in the release phase.
    #[arg(long, default_value_t = 5.0)]
    release_rate: f64,
    /// `maxConcurrency` of each of the three backlog pools.
    #[arg(long, default_value_t = 20)]
    slots: u32,
    /// Backlog creations in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// The `esup-operator` binary (release build).
    #[arg(long)]
    operator_bin: PathBuf,
    /// Kubeconfig of the bench control plane.
    #[arg(long)]
    kubeconfig: PathBuf,
    /// Where to write the results as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Where the operator's log goes. Default: next to --json, else /tmp.
    #[arg(long)]
    operator_log: Option<PathBuf>,
    /// The control plane's state dir, to report kube-apiserver's and etcd's CPU and memory
    /// (from its run/*.pid files).
    #[arg(long)]
    control_plane_dir: Option<PathBuf>,
    /// RUST_LOG of the operator.
    #[arg(long, default_value = "info,kube=warn")]
    operator_log_filter: String,
    /// Free text recorded in the results, e.g. the operator's git commit.
    #[arg(long, default_value = "")]
    label: String,
    /// Longest wait for the operator to have queued the whole backlog. Default 120 s plus
    /// 50 ms per task.
    #[arg(long)]
    backlog_timeout_s: Option<u64>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("operator-bench: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

fn log(message: &str) {
    eprintln!(
        "[operator-bench {}] {message}",
        Timestamp::now().strftime("%H:%M:%S")
    );
}

async fn run(args: &Args) -> Res<()> {
    if args.rate <= 0.0 || args.release_rate <= 0.0 || args.concurrency == 0 || args.slots == 0 {
        return Err("--rate, --release-rate, --concurrency and --slots must be positive".into());
    }
    let run_started = Instant::now();
    let client = client(&args.kubeconfig).await?;
    refuse_foreign_cluster(&client).await?;

    log("installing CRDs, namespaces, fake nodes and pools");
    install_crds(&client, FIELD_MANAGER).await?;
    for ns in [OPERATOR_NS, NS] {
        apply_namespace(&client, ns, FIELD_MANAGER).await?;
    }
    refuse_leftover_tasks(&client).await?;
    let pools = bench_pools(args.slots);
    create_nodes(&client).await?;
    for pool in &pools {
        apply_pool(&client, pool).await?;
    }

    // The bench's own watches: Jobs for the latencies, tasks for the backlog's phases.
    let seen = Arc::new(Mutex::new(Seen::default()));
    let job_watch = watch_jobs(&client, seen.clone());
    let task_watches = [
        watch_tasks::<EncodingTask>(&client, seen.clone()),
        watch_tasks::<TranscriptionTask>(&client, seen.clone()),
    ];

    let operator = OperatorProcess::start(args)?;
    let result = measure(args, &client, &seen, &operator, &pools, task_watches).await;
    job_watch.abort();
    let stopped = operator.stop().await;
    let mut report = result?;
    stopped?;
    report["run_seconds"] = json!(round(run_started.elapsed().as_secs_f64()));
    println!("{}", table(&report));
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n")
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        log(&format!("results written to {}", path.display()));
    }
    Ok(())
}

/// Everything from the operator's start to the last release, as the JSON report.
async fn measure(
    args: &Args,
    client: &Client,
    seen: &Arc<Mutex<Seen>>,
    operator: &OperatorProcess,
    pools: &[BenchPool],
    task_watches: [JoinHandle<()>; 2],
) -> Res<Value> {
    let control_plane = ControlPlane::from_dir(args.control_plane_dir.as_deref())?;
    operator.await_ready().await?;
    await_pools(client, operator, pools).await?;
    let m_start = operator.scrape().await?;
    let cpu_start = operator.cpu()?;
    let cp_start = control_plane.cpu()?;
    let host_start = HostReading::now()?;

    // --- backlog ------------------------------------------------------------------------------
    let backlog: Vec<BenchTask> = (0..args.backlog).map(BenchTask::backlog).collect();
    // The API server builds some per-CRD machinery on the first write of each kind (about 2 s
    // here): dry-run creates take that wait out of the measured creates.
    for task in backlog.iter().take(6) {
        let took = create_task_with(client, task, true).await?;
        log(&format!(
            "  warm-up dry-run create of {}: {:.0} ms",
            task.name,
            took.as_secs_f64() * 1000.0
        ));
    }
    log(&format!(
        "creating {} backlog tasks ({} in flight)",
        backlog.len(),
        args.concurrency
    ));
    let t0 = Instant::now();
    let created = std::sync::atomic::AtomicUsize::new(0);
    let backlog_creates: Vec<Duration> = futures::stream::iter(backlog.iter())
        .map(|t| async {
            let took = create_task(client, t).await?;
            let n = created.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            if n.is_multiple_of(2000) {
                log(&format!("  {n} created"));
            }
            Ok::<_, String>(took)
        })
        .buffer_unordered(args.concurrency)
        .try_collect()
        .await?;
    let created_after = t0.elapsed();
    log(&format!(
        "backlog created in {:.1} s; waiting until every task is Queued or Admitted",
        created_after.as_secs_f64()
    ));
    let limit = Duration::from_secs(
        args.backlog_timeout_s
            .unwrap_or(120 + (args.backlog as u64) / 20),
    );
    let mut last_report = Instant::now();
    let waited = wait_until(
        "the backlog to be Queued or Admitted",
        limit,
        operator,
        || {
            let (done, admitted) = backlog_progress(seen);
            if last_report.elapsed() >= Duration::from_secs(10) {
                log(&format!(
                    "  {done}/{} processed ({admitted} admitted)",
                    args.backlog
                ));
                last_report = Instant::now();
            }
            done == args.backlog
        },
    )
    .await?;
    // From the first create until the operator had written every task's status.
    let processed_after = created_after + waited;
    let processed_secs = processed_after.as_secs_f64();

    // Admitted tasks: each backlog pool is full (or holds its whole share of the backlog).
    let per_pool = per_pool_counts(&backlog);
    let expected_admitted: usize = per_pool
        .values()
        .map(|n| (*n).min(args.slots as usize))
        .sum();
    wait_until(
        "the admitted backlog tasks' Jobs",
        Duration::from_secs(60),
        operator,
        || {
            let (_, admitted) = backlog_progress(seen);
            admitted == expected_admitted && backlog_jobs(seen) == expected_admitted
        },
    )
    .await?;
    let queued_by_pool = queued_by_pool(seen, &backlog);
    for handle in task_watches {
        handle.abort();
    }
    let m_backlog = operator.scrape().await?;
    let rss_after_backlog = operator.memory("VmRSS")?;
    log(&format!(
        "backlog processed {processed_secs:.1} s after the first create; {expected_admitted} admitted; RSS {rss_after_backlog:.1} MiB"
    ));

    // --- probes -------------------------------------------------------------------------------
    log(&format!(
        "creating {} probes at {}/s",
        args.probes, args.rate
    ));
    let cpu_probe_start = operator.cpu()?;
    let cp_probe_start = control_plane.cpu()?;
    let host_probe_start = HostReading::now()?;
    let probe_started = Instant::now();
    let probes: Vec<BenchTask> = (0..args.probes).map(BenchTask::probe).collect();
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let sent: Vec<(String, Instant, Duration)> = futures::stream::iter(probes.iter().enumerate())
        .map(|(i, t)| async move {
            let at = probe_started + interval.mul_f64(i as f64);
            tokio::time::sleep_until(at.into()).await;
            let before = Instant::now();
            let took = create_task(client, t).await?;
            Ok::<_, String>((t.name.clone(), before, took))
        })
        .buffer_unordered(args.probes.max(1))
        .try_collect()
        .await?;
    wait_until(
        "every probe's Job",
        Duration::from_secs(120),
        operator,
        || {
            let s = lock(seen);
            sent.iter().all(|(name, _, _)| s.jobs.contains_key(name))
        },
    )
    .await?;
    let probe_secs = probe_started.elapsed().as_secs_f64();
    let cpu_probe = operator.cpu()? - cpu_probe_start;
    let cp_probe = control_plane.cpu()?.since(&cp_probe_start);
    let host_probe = HostReading::now()?.since(&host_probe_start);
    let m_probes = operator.scrape().await?;
    let (task_to_job, probe_creates) = {
        let s = lock(seen);
        let mut latencies = Vec::with_capacity(sent.len());
        for (name, before, _) in &sent {
            let job = s.jobs.get(name).ok_or(format!("no Job seen for {name}"))?;
            latencies.push(job.at.saturating_duration_since(*before));
        }
        let creates: Vec<Duration> = sent.iter().map(|(_, _, took)| *took).collect();
        (Summary::of(&latencies), Summary::of(&creates))
    };
    log(&format!(
        "probes: task-to-Job p50 {:.1} ms p99 {:.1} ms; create p50 {:.1} ms p99 {:.1} ms",
        task_to_job.p50, task_to_job.p99, probe_creates.p50, probe_creates.p99
    ));

    // --- releases -----------------------------------------------------------------------------
    let release = release_phase(args, client, seen, operator, &queued_by_pool).await?;
    let m_end = operator.scrape().await?;
    log(&format!(
        "release-to-admission: p50 {:.1} ms p99 {:.1} ms over {}",
        release.latency.p50, release.latency.p99, release.latency.count
    ));

    // --- resources ----------------------------------------------------------------------------
    let cpu_total = operator.cpu()? - cpu_start;
    let cpu_all = operator.cpu()?;
    let peak = operator.memory("VmHWM")?;
    let rss_end = operator.memory("VmRSS")?;
    let cp_total = control_plane.cpu()?.since(&cp_start);
    let host_total = HostReading::now()?.since(&host_start);
    // What else kept the host's cores busy: builds or tests of other people, for instance.
    let others = |host: &HostReading, operator: f64, cp: &CpuReading| {
        host.busy - host.bench - operator - cp.seconds.values().sum::<f64>()
    };
    let others_probe = others(&host_probe, cpu_probe, &cp_probe);
    let others_total = others(&host_total, cpu_total, &cp_total);
    let ratio = if probe_creates.p99 > 0.0 {
        task_to_job.p99 / probe_creates.p99
    } else {
        0.0
    };

    Ok(json!({
        "label": args.label,
        "backlog": args.backlog,
        "backlog_pools": pools.iter().filter(|p| p.name != PROBE_POOL).map(|p| p.name.clone()).collect::<Vec<_>>(),
        "slots_per_pool": args.slots,
        "nodes": NODES_PER_POOL * 3,
        "probes": args.probes,
        "probe_rate_per_s": args.rate,
        "backlog_created_seconds": round(created_after.as_secs_f64()),
        "backlog_processed_seconds": round(processed_secs),
        "backlog_admitted": expected_admitted,
        "backlog_create": Summary::of(&backlog_creates).to_json(),
        "probe_task_to_job": task_to_job.to_json(),
        "probe_create": probe_creates.to_json(),
        "ratio_p99_task_to_job_over_create": round_ratio(ratio),
        "probe_phase_seconds": round(probe_secs),
        "release_to_admission": release.latency.to_json(),
        "release_delete": release.deletes.to_json(),
        "release_unmatched_admissions": release.unmatched,
        "operator": {
            "cpu_seconds_total": round_ratio(cpu_all),
            "cpu_seconds_since_backlog_start": round_ratio(cpu_total),
            "cpu_seconds_probe_phase": round_ratio(cpu_probe),
            "cpu_share_probe_phase": round_ratio(cpu_probe / probe_secs.max(1e-9)),
            "peak_rss_mib": round(peak),
            "rss_after_backlog_mib": round(rss_after_backlog),
            "rss_end_mib": round(rss_end),
            "log": operator.log.display().to_string(),
        },
        "operator_metrics": {
            "startup": phase_metrics(&m_start.since(&Scrape::default())),
            "backlog": phase_metrics(&m_backlog.since(&m_start)),
            "probes": phase_metrics(&m_probes.since(&m_backlog)),
            "releases": phase_metrics(&m_end.since(&m_probes)),
            "scheduler_tasks_end": m_end.get("esup_runner_operator_scheduler_tasks"),
        },
        "control_plane": {
            "whole_run": cp_total.to_json(&control_plane),
            "probe_phase": cp_probe.to_json(&control_plane),
        },
        "host": {
            "cores": std::thread::available_parallelism().map_or(0, usize::from),
            "loadavg_1m_start": host_start.loadavg,
            "loadavg_1m_end": procfs::loadavg()?,
            "whole_run": host_total.to_json(others_total),
            "probe_phase": host_probe.to_json(others_probe),
        },
        "targets": {
            "p99_task_to_job_under_1s": task_to_job.p99 < 1000.0,
            "peak_rss_under_150mib": peak < 150.0,
        },
    }))
}

fn round_ratio(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// What the operator did in a phase, from the difference of two scrapes of its metrics.
fn phase_metrics(m: &Scrape) -> Value {
    let passes = m.get("esup_runner_operator_scheduler_pass_seconds_count");
    let sum = m.get("esup_runner_operator_scheduler_pass_seconds_sum");
    let counts = |name: &str, label: &str| -> BTreeMap<String, u64> {
        m.by_label(name, label)
            .into_iter()
            .map(|(k, v)| (k, v.max(0.0).round() as u64))
            .collect()
    };
    let writes = counts("esup_runner_operator_kube_api_writes_total", "kind");
    let errors = counts("esup_runner_operator_reconcile_errors_total", "category");
    json!({
        "passes": passes.max(0.0).round() as u64,
        "pass_seconds_sum": round_ratio(sum),
        "pass_mean_ms": if passes > 0.0 { round(sum / passes * 1000.0) } else { 0.0 },
        "pass_p50_bucket_s": m.bucket_quantile("esup_runner_operator_scheduler_pass_seconds", 0.5),
        "pass_p99_bucket_s": m.bucket_quantile("esup_runner_operator_scheduler_pass_seconds", 0.99),
        "writes": writes,
        "reconcile_errors": errors,
    })
}

// --- cluster access --------------------------------------------------------------------------

/// This bench creates fake Nodes: refuse any cluster that has real ones.
async fn refuse_foreign_cluster(client: &Client) -> Res<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let list = call("list Nodes", nodes.list(&ListParams::default())).await?;
    if let Some(real) = list
        .items
        .iter()
        .find(|n| !n.name_any().starts_with(NODE_PREFIX))
    {
        return Err(format!(
            "node {} is not a bench node: run this only against bench/operator/control-plane",
            real.name_any()
        ));
    }
    Ok(())
}

async fn refuse_leftover_tasks(client: &Client) -> Res<()> {
    let enc: Api<EncodingTask> = Api::namespaced(client.clone(), NS);
    let trans: Api<TranscriptionTask> = Api::namespaced(client.clone(), NS);
    let lp = ListParams::default().limit(1);
    let e = call("list EncodingTasks", enc.list_metadata(&lp)).await?;
    let t = call("list TranscriptionTasks", trans.list_metadata(&lp)).await?;
    if !e.items.is_empty() || !t.items.is_empty() {
        return Err(format!(
            "namespace {NS} already has tasks: start from a fresh control plane \
             (bench/operator/control-plane down && bench/operator/control-plane up)"
        ));
    }
    Ok(())
}

// --- fake nodes and pools ----------------------------------------------------------------------

/// One pool of the bench and its nodes.
#[derive(Clone, Debug)]
struct BenchPool {
    name: String,
    /// `nvidia.com/gpu.product` of its nodes; `None` for CPU nodes.
    gpu_product: Option<&'static str>,
    spec: Value,
    /// `status.slots` the operator should report.
    slots: u32,
    /// Whether it has nodes of its own (the probe pool shares the CPU nodes).
    own_nodes: bool,
}

fn bench_pools(slots: u32) -> Vec<BenchPool> {
    let tenants = json!([
        {"name": TENANTS[0], "weight": 3},
        {"name": TENANTS[1], "weight": 2},
        {"name": TENANTS[2], "weight": 1},
    ]);
    let gpu_pool = |name: &str, product: &'static str, priority: i32| BenchPool {
        name: name.to_owned(),
        gpu_product: Some(product),
        spec: json!({
            "taskTypes": ["Encoding", "Studio", "Transcription"],
            "priority": priority,
            "maxConcurrency": slots,
            "gpu": {"products": [product], "nvenc": true},
            "placement": {"nodeSelector": {POOL_LABEL: name}},
            "tenants": tenants,
        }),
        slots: slots.min(GPUS_PER_NODE * NODES_PER_POOL as u32),
        own_nodes: true,
    };
    vec![
        gpu_pool("l4", "NVIDIA-L4", 10),
        gpu_pool("l40s", "NVIDIA-L40S", 20),
        BenchPool {
            name: "cpu".to_owned(),
            gpu_product: None,
            spec: json!({
                "taskTypes": ["Encoding", "Transcription"],
                "priority": 100,
                "maxConcurrency": slots,
                "resources": {"requests": {"cpu": "2", "memory": "4Gi"}},
                "placement": {"nodeSelector": {POOL_LABEL: "cpu"}},
                "tenants": tenants,
            }),
            slots,
            own_nodes: true,
        },
        // Probes only: its own tenant, and room for every probe, so that a probe is admitted
        // as soon as the operator gets to it.
        BenchPool {
            name: PROBE_POOL.to_owned(),
            gpu_product: None,
            spec: json!({
                "taskTypes": ["Transcription"],
                "priority": 0,
                "maxConcurrency": 10000,
                "placement": {"nodeSelector": {POOL_LABEL: "cpu"}},
                "tenants": [{"name": PROBE_POOL}],
            }),
            slots: 10000,
            own_nodes: false,
        },
    ]
}

/// Nodes as a kubelet would register them, then a Ready status with allocatable GPUs. Nothing
/// runs on them; the operator only reads their labels, readiness and allocatable GPUs.
async fn create_nodes(client: &Client) -> Res<()> {
    let api: Api<Node> = Api::all(client.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let now = serde_json::to_value(Time(Timestamp::now())).map_err(|e| e.to_string())?;
    for pool in bench_pools(1).iter().filter(|p| p.own_nodes) {
        for i in 0..NODES_PER_POOL {
            let name = format!("{NODE_PREFIX}{}-{i}", pool.name);
            let mut labels = json!({
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                POOL_LABEL: pool.name,
            });
            let mut resources = json!({"cpu": "32", "memory": "128Gi", "pods": "110"});
            if let Some(product) = pool.gpu_product {
                labels["nvidia.com/gpu.present"] = json!("true");
                labels["nvidia.com/gpu.product"] = json!(product);
                labels["nvidia.com/gpu.count"] = json!(GPUS_PER_NODE.to_string());
                resources["nvidia.com/gpu"] = json!(GPUS_PER_NODE.to_string());
            }
            let node = json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": labels},
                "spec": {},
            });
            call(
                &format!("apply Node {name}"),
                api.patch(&name, &params, &Patch::Apply(&node)),
            )
            .await?;
            let status = json!({"status": {
                "capacity": resources,
                "allocatable": resources,
                "conditions": [{
                    "type": "Ready", "status": "True", "reason": "KubeletReady",
                    "message": "fake node of operator-bench",
                    "lastHeartbeatTime": now, "lastTransitionTime": now,
                }],
            }});
            call(
                &format!("patch Node {name} status"),
                api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status)),
            )
            .await?;
        }
    }
    Ok(())
}

async fn apply_pool(client: &Client, pool: &BenchPool) -> Res<()> {
    let object: RunnerPool = serde_json::from_value(json!({
        "apiVersion": "runner.esup-portail.org/v1alpha1", "kind": "RunnerPool",
        "metadata": {"name": pool.name}, "spec": pool.spec,
    }))
    .map_err(|e| format!("pool {}: {e}", pool.name))?;
    let api: Api<RunnerPool> = Api::all(client.clone());
    call(
        &format!("apply RunnerPool {}", pool.name),
        api.patch(
            &pool.name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&object),
        ),
    )
    .await?;
    Ok(())
}

/// Until the operator reports every pool with its nodes and slots: it sees the fake nodes.
async fn await_pools(client: &Client, operator: &OperatorProcess, pools: &[BenchPool]) -> Res<()> {
    let api: Api<RunnerPool> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        operator.check()?;
        let list = call("list RunnerPools", api.list(&ListParams::default())).await?;
        let ready = pools.iter().all(|p| {
            list.items.iter().any(|o| {
                o.name_any() == p.name
                    && o.status
                        .as_ref()
                        .is_some_and(|s| s.slots == p.slots && s.nodes == NODES_PER_POOL as u32)
            })
        });
        if ready {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let got: Vec<String> = list
                .items
                .iter()
                .map(|o| format!("{}: {:?}", o.name_any(), o.status))
                .collect();
            return Err(format!(
                "the operator did not report the pools' nodes and slots within 60 s: {got:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// --- tasks --------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Encoding,
    Transcription,
}

#[derive(Clone, Debug)]
struct BenchTask {
    name: String,
    kind: Kind,
    pool: String,
    tenant: &'static str,
    priority: &'static str,
}

impl BenchTask {
    /// The i-th backlog task: pools in turn, kinds, tenants and priorities mixed.
    fn backlog(i: usize) -> Self {
        let pool = ["l4", "l40s", "cpu"][i % 3];
        let kind = if (i / 3).is_multiple_of(2) {
            Kind::Encoding
        } else {
            Kind::Transcription
        };
        let priority = match i % 10 {
            0 => "High",
            8 | 9 => "Low",
            _ => "Normal",
        };
        Self {
            name: format!("{BACKLOG_PREFIX}{i:05}"),
            kind,
            pool: pool.to_owned(),
            tenant: TENANTS[(i / 6) % 3],
            priority,
        }
    }

    fn probe(i: usize) -> Self {
        Self {
            name: format!("{PROBE_PREFIX}{i:04}"),
            kind: Kind::Transcription,
            pool: PROBE_POOL.to_owned(),
            tenant: PROBE_POOL,
            priority: "Normal",
        }
    }

    fn spec(&self) -> Value {
        let common = json!({
            "requester": {"tenant": self.tenant, "etabName": "Bench University", "appName": "Esup-Pod"},
            "priority": self.priority,
            "pools": [self.pool],
            "video": {"slug": format!("{}-bench", self.name)},
        });
        let mut spec = match self.kind {
            Kind::Encoding => json!({
                "source": {"url": format!("https://media.bench.test/{}.mp4", self.name)},
            }),
            Kind::Transcription => json!({
                "source": {"url": format!("https://media.bench.test/{}.mp3", self.name)},
                "language": "fr",
                "durationSeconds": 600.0,
            }),
        };
        if let (Some(spec), Some(common)) = (spec.as_object_mut(), common.as_object()) {
            spec.extend(common.clone());
        }
        spec
    }
}

/// Creates one task; returns how long the create call took.
async fn create_task(client: &Client, task: &BenchTask) -> Res<Duration> {
    create_task_with(client, task, false).await
}

async fn create_task_with(client: &Client, task: &BenchTask, dry_run: bool) -> Res<Duration> {
    let meta = json!({"name": task.name, "namespace": NS});
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        dry_run,
    };
    let what = format!("create {}", task.name);
    match task.kind {
        Kind::Encoding => {
            let object: EncodingTask = serde_json::from_value(json!({
                "apiVersion": "runner.esup-portail.org/v1alpha1", "kind": "EncodingTask",
                "metadata": meta, "spec": task.spec(),
            }))
            .map_err(|e| format!("{what}: {e}"))?;
            let api: Api<EncodingTask> = Api::namespaced(client.clone(), NS);
            let before = Instant::now();
            call(&what, api.create(&params, &object)).await?;
            Ok(before.elapsed())
        }
        Kind::Transcription => {
            let object: TranscriptionTask = serde_json::from_value(json!({
                "apiVersion": "runner.esup-portail.org/v1alpha1", "kind": "TranscriptionTask",
                "metadata": meta, "spec": task.spec(),
            }))
            .map_err(|e| format!("{what}: {e}"))?;
            let api: Api<TranscriptionTask> = Api::namespaced(client.clone(), NS);
            let before = Instant::now();
            call(&what, api.create(&params, &object)).await?;
            Ok(before.elapsed())
        }
    }
}

fn per_pool_counts(tasks: &[BenchTask]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for t in tasks {
        *out.entry(t.pool.clone()).or_insert(0) += 1;
    }
    out
}

// --- the bench's watches -------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct JobSeen {
    at: Instant,
    pool: String,
    kind: String,
}

#[derive(Default)]
struct Seen {
    /// Phase of each task, by name (names are unique across both kinds here).
    phases: HashMap<String, TaskPhase>,
    /// First sighting of each task's Job, by task name.
    jobs: HashMap<String, JobSeen>,
    /// Task names in the order their Jobs were first seen.
    job_order: Vec<String>,
}

fn lock(seen: &Mutex<Seen>) -> std::sync::MutexGuard<'_, Seen> {
    seen.lock().unwrap_or_else(PoisonError::into_inner)
}

fn watch_jobs(client: &Client, seen: Arc<Mutex<Seen>>) -> JoinHandle<()> {
    let api: Api<Job> = Api::namespaced(client.clone(), NS);
    let config = watcher::Config::default().labels(esup_api::labels::MANAGED_SELECTOR);
    tokio::spawn(async move {
        let mut stream = watcher(api, config).default_backoff().boxed();
        loop {
            match stream.try_next().await {
                Ok(Some(watcher::Event::Apply(job) | watcher::Event::InitApply(job))) => {
                    let at = Instant::now();
                    let labels = job.labels();
                    let Some(task) = labels.get(esup_api::labels::TASK_NAME) else {
                        continue;
                    };
                    let mut s = lock(&seen);
                    if !s.jobs.contains_key(task) {
                        let entry = JobSeen {
                            at,
                            pool: labels
                                .get(esup_api::labels::POOL)
                                .cloned()
                                .unwrap_or_default(),
                            kind: labels
                                .get(esup_api::labels::TASK_KIND)
                                .cloned()
                                .unwrap_or_default(),
                        };
                        s.jobs.insert(task.clone(), entry);
                        s.job_order.push(task.clone());
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => log(&format!("Job watch: {e} (retrying)")),
            }
        }
    })
}

fn watch_tasks<K: esup_api::task::TaskResource>(
    client: &Client,
    seen: Arc<Mutex<Seen>>,
) -> JoinHandle<()> {
    let api: Api<K> = Api::namespaced(client.clone(), NS);
    tokio::spawn(async move {
        let mut stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        loop {
            match stream.try_next().await {
                Ok(Some(watcher::Event::Apply(t) | watcher::Event::InitApply(t))) => {
                    lock(&seen).phases.insert(t.name_any(), t.phase());
                }
                Ok(Some(watcher::Event::Delete(t))) => {
                    lock(&seen).phases.remove(&t.name_any());
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => log(&format!("task watch: {e} (retrying)")),
            }
        }
    })
}

/// (backlog tasks Queued or Admitted, of which Admitted).
fn backlog_progress(seen: &Mutex<Seen>) -> (usize, usize) {
    let s = lock(seen);
    let mut done = 0;
    let mut admitted = 0;
    for (name, phase) in &s.phases {
        if !name.starts_with(BACKLOG_PREFIX) {
            continue;
        }
        match phase {
            TaskPhase::Queued => done += 1,
            TaskPhase::Admitted => {
                done += 1;
                admitted += 1;
            }
            _ => {}
        }
    }
    (done, admitted)
}

fn backlog_jobs(seen: &Mutex<Seen>) -> usize {
    lock(seen)
        .jobs
        .keys()
        .filter(|k| k.starts_with(BACKLOG_PREFIX))
        .count()
}

fn queued_by_pool(seen: &Mutex<Seen>, backlog: &[BenchTask]) -> BTreeMap<String, usize> {
    let s = lock(seen);
    let mut out = BTreeMap::new();
    for t in backlog {
        if s.phases.get(&t.name) == Some(&TaskPhase::Queued) {
            *out.entry(t.pool.clone()).or_insert(0) += 1;
        }
    }
    out
}

/// Polls `done` until it holds, the operator dies, or `limit` passes. Returns the time waited.
async fn wait_until(
    what: &str,
    limit: Duration,
    operator: &OperatorProcess,
    mut done: impl FnMut() -> bool,
) -> Res<Duration> {
    let start = Instant::now();
    loop {
        if done() {
            return Ok(start.elapsed());
        }
        operator.check()?;
        if start.elapsed() >= limit {
            return Err(format!(
                "timed out after {limit:?} waiting for {what} (operator log: {})",
                operator.log.display()
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

// --- releases -------------------------------------------------------------------------------------

struct Release {
    latency: Summary,
    deletes: Summary,
    unmatched: usize,
}

/// Deletes admitted backlog tasks, pools in turn, and pairs each with the next backlog Job
/// that appears in its pool (first deleted, first refilled).
async fn release_phase(
    args: &Args,
    client: &Client,
    seen: &Mutex<Seen>,
    operator: &OperatorProcess,
    queued_by_pool: &BTreeMap<String, usize>,
) -> Res<Release> {
    // Admitted backlog tasks by pool, as many as that pool has queued tasks to refill them.
    let mut by_pool: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let cursor = {
        let s = lock(seen);
        for name in &s.job_order {
            if let (true, Some(job)) = (name.starts_with(BACKLOG_PREFIX), s.jobs.get(name)) {
                by_pool
                    .entry(job.pool.clone())
                    .or_default()
                    .push((name.clone(), job.kind.clone()));
            }
        }
        s.job_order.len()
    };
    for (pool, tasks) in &mut by_pool {
        tasks.truncate(queued_by_pool.get(pool).copied().unwrap_or(0));
    }
    let mut chosen: Vec<(String, String, String)> = Vec::new();
    let mut round = 0;
    while chosen.len() < args.releases && by_pool.values().any(|t| t.len() > round) {
        for (pool, tasks) in &by_pool {
            if let Some((name, kind)) = tasks.get(round)
                && chosen.len() < args.releases
            {
                chosen.push((pool.clone(), name.clone(), kind.clone()));
            }
        }
        round += 1;
    }
    log(&format!(
        "releasing {} admitted backlog tasks at {}/s",
        chosen.len(),
        args.release_rate
    ));

    let mut pending: HashMap<String, VecDeque<Instant>> = HashMap::new();
    let mut latencies = Vec::new();
    let mut deletes = Vec::new();
    let mut unmatched = 0;
    let mut cursor = cursor;
    let mut match_new = |pending: &mut HashMap<String, VecDeque<Instant>>,
                         latencies: &mut Vec<Duration>,
                         unmatched: &mut usize| {
        let s = lock(seen);
        for name in &s.job_order[cursor..] {
            let Some(job) = s.jobs.get(name) else {
                continue;
            };
            if !name.starts_with(BACKLOG_PREFIX) {
                continue;
            }
            match pending.get_mut(&job.pool).and_then(VecDeque::pop_front) {
                Some(deleted_at) => latencies.push(job.at.saturating_duration_since(deleted_at)),
                None => *unmatched += 1,
            }
        }
        cursor = s.job_order.len();
    };
    let interval = Duration::from_secs_f64(1.0 / args.release_rate);
    let started = Instant::now();
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    for (i, (pool, name, kind)) in chosen.iter().enumerate() {
        tokio::time::sleep_until((started + interval.mul_f64(i as f64)).into()).await;
        operator.check()?;
        let before = Instant::now();
        let what = format!("delete {kind} {name}");
        if kind == "EncodingTask" {
            let api: Api<EncodingTask> = Api::namespaced(client.clone(), NS);
            call(&what, api.delete(name, &params)).await?;
        } else {
            let api: Api<TranscriptionTask> = Api::namespaced(client.clone(), NS);
            call(&what, api.delete(name, &params)).await?;
        }
        deletes.push(before.elapsed());
        pending.entry(pool.clone()).or_default().push_back(before);
        match_new(&mut pending, &mut latencies, &mut unmatched);
    }
    wait_until(
        "every released slot to be refilled",
        Duration::from_secs(60),
        operator,
        || {
            match_new(&mut pending, &mut latencies, &mut unmatched);
            pending.values().all(VecDeque::is_empty)
        },
    )
    .await?;
    Ok(Release {
        latency: Summary::of(&latencies),
        deletes: Summary::of(&deletes),
        unmatched,
    })
}

// --- the operator and the control plane as processes -----------------------------------------------

struct OperatorProcess {
    /// `None` once stopped.
    child: Mutex<Option<tokio::process::Child>>,
    pid: u32,
    port: u16,
    log: PathBuf,
}

impl OperatorProcess {
    fn start(args: &Args) -> Res<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("cannot find a free port: {e}"))?
            .port();
        let log_path = args.operator_log.clone().unwrap_or_else(|| {
            let dir = args
                .json
                .as_deref()
                .and_then(Path::parent)
                .filter(|d| !d.as_os_str().is_empty())
                .map_or_else(std::env::temp_dir, Path::to_path_buf);
            dir.join(format!("operator-bench-{}.log", args.backlog))
        });
        let file = std::fs::File::create(&log_path)
            .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
        let err_file = file
            .try_clone()
            .map_err(|e| format!("cannot reopen {}: {e}", log_path.display()))?;
        let child = tokio::process::Command::new(&args.operator_bin)
            .args([
                "--namespace",
                OPERATOR_NS,
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--runner-image",
                "bench.local/runner:none",
                "--identity",
                "esup-operator-bench",
            ])
            .env("KUBECONFIG", &args.kubeconfig)
            .env("RUST_LOG", &args.operator_log_filter)
            .stdin(std::process::Stdio::null())
            .stdout(file)
            .stderr(err_file)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", args.operator_bin.display()))?;
        let pid = child.id().ok_or("the operator exited at once".to_owned())?;
        log(&format!(
            "operator started: pid {pid}, metrics on 127.0.0.1:{port}, log {}",
            log_path.display()
        ));
        Ok(Self {
            child: Mutex::new(Some(child)),
            pid,
            port,
            log: log_path,
        })
    }

    /// Fails when the operator has exited.
    fn check(&self) -> Res<()> {
        let mut guard = self.child.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(child) = guard.as_mut() else {
            return Err("the operator was stopped".into());
        };
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!(
                "the operator exited ({status}); its log: {}",
                self.log.display()
            )),
            Err(e) => Err(format!("cannot check the operator: {e}")),
        }
    }

    async fn await_ready(&self) -> Res<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            self.check()?;
            if let Ok((200, _)) = http_get(self.port, "/readyz").await
                && let Ok((200, body)) = http_get(self.port, "/metrics").await
                && Scrape::parse(&body).get("esup_runner_operator_leader") == 1.0
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the operator was not ready and leading within 60 s; its log: {}",
                    self.log.display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn scrape(&self) -> Res<Scrape> {
        match http_get(self.port, "/metrics").await? {
            (200, body) => Ok(Scrape::parse(&body)),
            (code, _) => Err(format!("/metrics answered {code}")),
        }
    }

    fn cpu(&self) -> Res<f64> {
        procfs::cpu_seconds(self.pid)
    }

    fn memory(&self, key: &str) -> Res<f64> {
        procfs::memory_mib(self.pid, key)
    }

    /// Kills the operator (SIGKILL: the control plane is thrown away after the run). Fails
    /// when it had already exited on its own.
    async fn stop(&self) -> Res<()> {
        let taken = self
            .child
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(mut child) = taken else {
            return Ok(());
        };
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "the operator had exited ({status}); its log: {}",
                self.log.display()
            ));
        }
        child
            .start_kill()
            .map_err(|e| format!("cannot stop the operator: {e}"))?;
        match tokio::time::timeout(Duration::from_secs(10), child.wait()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("waiting for the operator: {e}")),
            Err(_) => Err("the operator did not exit within 10 s of SIGKILL".into()),
        }
    }
}

/// A GET over plain HTTP/1.0 (the operator's metrics server), bounded by a timeout.
async fn http_get(port: u16, path: &str) -> Res<(u16, String)> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
            .await?;
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let buf = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| format!("GET {path}: no answer within 10 s"))?
        .map_err(|e| format!("GET {path}: {e}"))?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or(format!("GET {path}: malformed response"))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or(format!("GET {path}: no status code"))?;
    Ok((code, body.to_owned()))
}

/// kube-apiserver and etcd of the bench control plane, when its dir is given.
struct ControlPlane {
    pids: Vec<(&'static str, u32)>,
}

#[derive(Clone, Debug, Default)]
struct CpuReading {
    seconds: BTreeMap<&'static str, f64>,
}

impl CpuReading {
    fn since(&self, earlier: &Self) -> Self {
        Self {
            seconds: self
                .seconds
                .iter()
                .map(|(k, v)| (*k, v - earlier.seconds.get(k).copied().unwrap_or(0.0)))
                .collect(),
        }
    }

    fn to_json(&self, cp: &ControlPlane) -> Value {
        let mut out = serde_json::Map::new();
        for (name, pid) in &cp.pids {
            out.insert(
                (*name).to_owned(),
                json!({
                    "cpu_seconds": round_ratio(self.seconds.get(name).copied().unwrap_or(0.0)),
                    "peak_rss_mib": procfs::memory_mib(*pid, "VmHWM").map(round).ok(),
                }),
            );
        }
        Value::Object(out)
    }
}

impl ControlPlane {
    fn from_dir(dir: Option<&Path>) -> Res<Self> {
        let Some(dir) = dir else {
            return Ok(Self { pids: Vec::new() });
        };
        let mut pids = Vec::new();
        for name in ["kube-apiserver", "etcd"] {
            let path = dir.join("run").join(format!("{name}.pid"));
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let pid = text
                .trim()
                .parse()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            pids.push((name, pid));
        }
        Ok(Self { pids })
    }

    fn cpu(&self) -> Res<CpuReading> {
        let mut seconds = BTreeMap::new();
        for (name, pid) in &self.pids {
            seconds.insert(*name, procfs::cpu_seconds(*pid)?);
        }
        Ok(CpuReading { seconds })
    }
}

/// The host's CPU time (all processes) and this bench's own, at one moment or over a phase.
#[derive(Clone, Debug)]
struct HostReading {
    wall: Instant,
    seconds: f64,
    busy: f64,
    bench: f64,
    loadavg: f64,
}

impl HostReading {
    fn now() -> Res<Self> {
        let (busy, _) = procfs::host_cpu_seconds()?;
        Ok(Self {
            wall: Instant::now(),
            seconds: 0.0,
            busy,
            bench: procfs::cpu_seconds(std::process::id())?,
            loadavg: procfs::loadavg()?,
        })
    }

    fn since(&self, earlier: &Self) -> Self {
        Self {
            wall: self.wall,
            seconds: self.wall.duration_since(earlier.wall).as_secs_f64(),
            busy: self.busy - earlier.busy,
            bench: self.bench - earlier.bench,
            loadavg: self.loadavg,
        }
    }

    /// `others`: busy CPU seconds of everything but the bench, the operator and the control
    /// plane.
    fn to_json(&self, others: f64) -> Value {
        let per_s = |x: f64| round_ratio(x / self.seconds.max(1e-9));
        json!({
            "seconds": round(self.seconds),
            "busy_cpu_seconds": round_ratio(self.busy),
            "busy_cores": per_s(self.busy),
            "bench_cpu_seconds": round_ratio(self.bench),
            "other_processes_cpu_seconds": round_ratio(others.max(0.0)),
            "other_processes_cores": per_s(others.max(0.0)),
        })
    }
}

// --- the report --------------------------------------------------------------------------------------

fn table(r: &Value) -> String {
    let ms = |v: &Value, k: &str| v[k].as_f64().map_or("-".to_owned(), |x| format!("{x:.1}"));
    let row = |label: &str, v: &Value| {
        format!(
            "{label:<44}{:>9}{:>9}{:>9}{:>9}{:>8}\n",
            ms(v, "p50_ms"),
            ms(v, "p95_ms"),
            ms(v, "p99_ms"),
            ms(v, "max_ms"),
            v["count"].to_string()
        )
    };
    let op = &r["operator"];
    let probes = &r["operator_metrics"]["probes"];
    let mut out = format!(
        "\n== operator-bench {}: backlog {} over 3 pools x {} slots, {} fake nodes; {} probes at {}/s ==\n",
        r["label"].as_str().unwrap_or_default(),
        r["backlog"],
        r["slots_per_pool"],
        r["nodes"],
        r["probes"],
        r["probe_rate_per_s"]
    );
    out += &format!(
        "{:<44}{:>9}{:>9}{:>9}{:>9}{:>8}\n",
        "latency (ms)", "p50", "p95", "p99", "max", "n"
    );
    out += &row("probe task-to-Job (operator)", &r["probe_task_to_job"]);
    out += &row("probe task create (API server)", &r["probe_create"]);
    out += &row(
        "release-to-admission (deep queue)",
        &r["release_to_admission"],
    );
    out += &row("backlog task create (32 in flight)", &r["backlog_create"]);
    out += &format!(
        "ratio p99 task-to-Job / p99 create: {}\n",
        r["ratio_p99_task_to_job_over_create"]
    );
    out += &format!(
        "backlog: created in {} s, all Queued/Admitted {} s after the first create ({} admitted)\n",
        r["backlog_created_seconds"], r["backlog_processed_seconds"], r["backlog_admitted"]
    );
    out += &format!(
        "operator: CPU {} s over the run ({} s in the {} s probe phase = {} core), peak RSS {} MiB, RSS at end {} MiB\n",
        op["cpu_seconds_total"],
        op["cpu_seconds_probe_phase"],
        r["probe_phase_seconds"],
        op["cpu_share_probe_phase"],
        op["peak_rss_mib"],
        op["rss_end_mib"]
    );
    out += &format!(
        "operator in the probe phase: {} passes, mean plan {} ms (p99 bucket <= {} s), writes {}\n",
        probes["passes"], probes["pass_mean_ms"], probes["pass_p99_bucket_s"], probes["writes"]
    );
    let hp = &r["host"]["probe_phase"];
    out += &format!(
        "host in the probe phase: {} of {} cores busy (bench {} s CPU, other processes {} cores); load avg {} -> {}\n",
        hp["busy_cores"],
        r["host"]["cores"],
        hp["bench_cpu_seconds"],
        hp["other_processes_cores"],
        r["host"]["loadavg_1m_start"],
        r["host"]["loadavg_1m_end"]
    );
    if let Some(cp) = r["control_plane"]["probe_phase"].as_object()
        && !cp.is_empty()
    {
        out += &format!(
            "control plane in the probe phase: {}\n",
            serde_json::to_string(cp).unwrap_or_default()
        );
    }
    let verdict = |b: &Value| {
        if b.as_bool() == Some(true) {
            "met"
        } else {
            "MISSED"
        }
    };
    out += &format!(
        "targets (stated for 10,000 queued): p99 task-to-Job < 1 s: {}; peak RSS < 150 MiB: {}\n",
        verdict(&r["targets"]["p99_task_to_job_under_1s"]),
        verdict(&r["targets"]["peak_rss_under_150mib"])
    );
    out += &format!("run took {} s\n", r["run_seconds"]);
    out
}
