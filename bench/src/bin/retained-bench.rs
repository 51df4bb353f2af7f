//! `retained-bench`: the webhook's memory with many finished tasks retained
//! (`docs/benchmarks.md`, "Retained tasks"). One run, on a fresh throwaway control plane
//! (`bench/operator/control-plane`):
//!
//! 1. CRDs and a namespace;
//! 2. `--tasks` finished TranscriptionTasks, each created then given a `Succeeded` status whose
//!    result holds the runner's output the way `--shape` says: `inline` (the text in
//!    `status.result.scriptOutput`, as before it moved to the result store) or `store` (only
//!    `scriptOutputRef`, as now); `--script-bytes` of text either way;
//! 3. the webhook as a child process; once it answers (its caches have listed every task), its
//!    resident memory (VmRSS, VmHWM from `/proc`) after `--settle-s`.
//!
//! Run one shape per fresh control plane, with the binary of the commit it belongs to:
//! `bench/webhook/retained` does both.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use esup_api::TranscriptionTask;
use esup_bench::procfs;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;

const FIELD_MANAGER: &str = "esup-bench";
const NS: &str = "bench-retained";
const WEBHOOK_NS: &str = "esup-system";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Shape {
    /// `status.result.scriptOutput` holds the text (before).
    Inline,
    /// `status.result.scriptOutputRef` points into the result store (after).
    Store,
}

#[derive(Parser, Debug)]
#[command(
    name = "retained-bench",
    about = "Webhook memory with many finished tasks"
)]
struct Args {
    #[arg(long)]
    webhook_bin: PathBuf,
    #[arg(long)]
    kubeconfig: PathBuf,
    #[arg(long, default_value_t = 10_000)]
    tasks: usize,
    #[arg(long, default_value_t = 65_536)]
    script_bytes: usize,
    #[arg(long, value_enum)]
    shape: Shape,
    /// Writes in flight while creating the tasks.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Wait after the webhook answers, before reading its memory.
    #[arg(long, default_value_t = 10)]
    settle_s: u64,
    #[arg(long, default_value_t = 18081)]
    port: u16,
    /// What is measured, for the report (e.g. the commit).
    #[arg(long, default_value = "esup-webhook")]
    label: String,
    /// More arguments for the webhook (repeat), e.g. `--webhook-arg=--metrics-listen=127.0.0.1:18091`.
    #[arg(long, allow_hyphen_values = true)]
    webhook_arg: Vec<String>,
}

type Res<T> = Result<T, String>;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("retained-bench: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

fn log(message: &str) {
    eprintln!("[retained-bench] {message}");
}

async fn run(args: &Args) -> Res<()> {
    let kc = Kubeconfig::read_from(&args.kubeconfig).map_err(|e| e.to_string())?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    let client = Client::try_from(config).map_err(|e| e.to_string())?;
    esup_bench::cluster::install_crds(&client, FIELD_MANAGER).await?;
    for ns in [NS, WEBHOOK_NS] {
        let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        Api::<Namespace>::all(client.clone())
            .patch(
                ns,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await
            .map_err(|e| format!("namespace {ns}: {e}"))?;
    }
    let started = Instant::now();
    let script = "x".repeat(args.script_bytes);
    let created = futures::stream::iter(0..args.tasks)
        .map(|i| create_finished(&client, i, args.shape, &script))
        .buffer_unordered(args.concurrency.max(1))
        .fold(Ok(0usize), |acc, r| async move {
            acc.and_then(|n| r.map(|()| n + 1))
        })
        .await?;
    log(&format!(
        "{created} finished tasks ({:?}) in {:.0} s",
        args.shape,
        started.elapsed().as_secs_f64()
    ));
    let object_bytes = {
        let one = Api::<TranscriptionTask>::namespaced(client.clone(), NS)
            .get("t-0")
            .await
            .map_err(|e| format!("get t-0: {e}"))?;
        serde_json::to_vec(&one).map_err(|e| e.to_string())?.len()
    };

    let results = std::env::temp_dir().join(format!("esup-retained-{}", std::process::id()));
    std::fs::create_dir_all(&results).map_err(|e| e.to_string())?;
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let mut child = tokio::process::Command::new(&args.webhook_bin)
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--namespace")
        .arg(WEBHOOK_NS)
        .arg("--results-dir")
        .arg(&results)
        .args(&args.webhook_arg)
        .env("KUBECONFIG", &args.kubeconfig)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", args.webhook_bin.display()))?;
    let pid = child.id().ok_or("the webhook exited at once")?;
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(300);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("the webhook exited: {status}"));
        }
        if health(addr).await {
            break;
        }
        if Instant::now() >= deadline {
            return Err("the webhook did not answer within 300 s".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ready_s = t0.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(args.settle_s)).await;
    let rss = procfs::memory_mib(pid, "VmRSS")?;
    let hwm = procfs::memory_mib(pid, "VmHWM")?;
    let load = procfs::loadavg().unwrap_or(0.0);
    let _ = child.kill().await;
    let _ = std::fs::remove_dir_all(&results);
    let report = json!({
        "label": args.label, "shape": format!("{:?}", args.shape).to_lowercase(),
        "tasks": args.tasks, "script_bytes": args.script_bytes,
        "object_bytes": object_bytes, "ready_s": (ready_s * 10.0).round() / 10.0,
        "rss_mib": (rss * 10.0).round() / 10.0, "hwm_mib": (hwm * 10.0).round() / 10.0,
        "load1": load,
    });
    println!("{report}");
    Ok(())
}

/// One task, created then finished, as the webhook and the operator would have left it.
async fn create_finished(client: &Client, i: usize, shape: Shape, script: &str) -> Res<()> {
    let name = format!("t-{i}");
    let api: Api<TranscriptionTask> = Api::namespaced(client.clone(), NS);
    let task: TranscriptionTask = serde_json::from_value(json!({
        "apiVersion": "runner.esup-portail.org/v1alpha1", "kind": "TranscriptionTask",
        "metadata": {"name": name, "namespace": NS,
            "labels": {"runner.esup-portail.org/tenant": "bench"},
            "annotations": {"runner.esup-portail.org/request": json!({
                "etab_name": "Université", "app_name": "Esup-Pod", "app_version": "4.2.1",
                "task_type": "transcription", "source_url": "https://pod.example/a.mp3",
                "notify_url": "https://pod.example/notify", "parameters": {"language": "fr"}
            }).to_string()}},
        "spec": {"source": {"url": "https://pod.example/a.mp3"}, "language": "fr",
            "requester": {"tenant": "bench", "etabName": "Université", "appName": "Esup-Pod"}},
    }))
    .map_err(|e| format!("task fixture: {e}"))?;
    let params = PostParams {
        field_manager: Some("esup-webhook".into()),
        ..PostParams::default()
    };
    api.create(&params, &task)
        .await
        .map_err(|e| format!("create {name}: {e}"))?;
    let mut result = json!({
        "outcome": "Completed", "reportTime": "2026-01-01T00:00:00Z", "launch": 1,
        "files": [{"path": "a.vtt", "sha256": "0".repeat(64), "sizeBytes": 1}],
    });
    match shape {
        Shape::Inline => result["scriptOutput"] = script.into(),
        Shape::Store => {
            result["scriptOutputRef"] =
                json!({"key": format!("uid-{i}/1/script_output"), "sizeBytes": script.len()})
        }
    }
    let body = json!({
        "apiVersion": "runner.esup-portail.org/v1alpha1", "kind": "TranscriptionTask",
        "metadata": {"name": name, "namespace": NS},
        "status": {"phase": "Succeeded", "launches": 1, "attempts": 1,
            "completionTime": "2026-01-01T00:00:00Z", "result": result},
    });
    api.patch_status(
        &name,
        &PatchParams::apply("esup-webhook-result").force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(|e| format!("status of {name}: {e}"))?;
    Ok(())
}

/// `GET /api/version` gets an answer (401 without a token): the webhook serves, which it does
/// only once its task caches have listed.
async fn health(addr: SocketAddr) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let request = "GET /api/version HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await.is_ok() && head.starts_with(b"HTTP/1.1 ")
}
