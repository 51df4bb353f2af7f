//! Harness of the integration tests: access to the local cluster (`e2e/cluster/up`), the
//! operator binary run as a child process (so that tests can SIGKILL it), and a stand-in for
//! the webhook's runner callbacks that counts how often each task really ran.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test harness: fail loudly

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use warp::Filter;

pub mod browser;

pub const FIELD_MANAGER: &str = "esup-e2e";

/// The repository's root, read when the test runs (cargo sets `CARGO_MANIFEST_DIR` for the
/// processes it runs), not when it was built: a build cache shared with a checkout elsewhere
/// (CI's) would otherwise point at that checkout.
pub fn repo_root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("..")
}

/// Server-side applies `value` (a whole object, as JSON) as [`FIELD_MANAGER`].
pub async fn apply<K>(api: &Api<K>, name: &str, value: serde_json::Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let object: K = serde_json::from_value(value).expect("the object decodes");
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&object),
    )
    .await
    .expect("applied");
}

/// A tenant as the webhook reads it: a Secret labelled with the tenant's name in
/// `esup-system`, holding its token, its task namespace, its backlog bound and its admission
/// mode (docs/webhook.md, "Tenants").
#[derive(Clone, Copy, Debug)]
pub struct TenantSecret<'a> {
    /// The Secret's name.
    pub secret: &'a str,
    pub tenant: &'a str,
    pub token: &'a str,
    /// Where its tasks are created.
    pub namespace: &'a str,
    pub max_backlog: u32,
    /// `queue` or `immediate`; unset: the webhook's default (`queue`).
    pub admission: Option<&'a str>,
}

impl TenantSecret<'_> {
    pub async fn apply(&self, client: &Client) {
        let mut data = serde_json::json!({
            "token": self.token,
            "namespace": self.namespace,
            "maxBacklog": self.max_backlog.to_string(),
        });
        if let Some(mode) = self.admission {
            data["admission"] = mode.into();
        }
        let secrets =
            Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), "esup-system");
        let secret = serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": self.secret, "namespace": "esup-system",
                         "labels": {"runner.esup-portail.org/tenant": self.tenant}},
            "stringData": data,
        });
        apply(&secrets, self.secret, secret).await;
    }
}

/// The stand-in runner image (`e2e/images/build-runner-standin`).
pub const STANDIN_IMAGE: &str = "esup.local/esup-runner-standin:dev";

pub async fn client() -> Client {
    Client::try_default()
        .await
        .expect("KUBECONFIG points at the local cluster (make integration sets it)")
}

pub async fn install_crds(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in esup_api::custom_resource_definitions() {
        let name = crd.name_any();
        crds.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await
        .expect("CRD applies");
        let established = kube::runtime::wait::await_condition(
            crds.clone(),
            &name,
            kube::runtime::wait::conditions::is_crd_established(),
        );
        tokio::time::timeout(Duration::from_secs(30), established)
            .await
            .expect("CRD established in time")
            .expect("watch CRD");
    }
}

pub async fn fresh_namespace(client: &Client, name: &str) -> String {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).expect("namespace");
    namespaces
        .patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&ns),
        )
        .await
        .expect("namespace applies");
    name.to_owned()
}

/// Polls `check` every 250 ms until it returns Some, or panics after `timeout` with `what`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Cargo's target directory: `$CARGO_TARGET_DIR`, else the workspace's `target/`.
pub fn target_dir() -> PathBuf {
    std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join("target"))
}

/// A free loopback port, bound then released for a process started right after.
pub fn free_loopback_port() -> std::io::Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|probe| probe.local_addr())
        .map(|addr| addr.port())
}

/// The `esup-operator` binary: `$ESUP_OPERATOR_BIN`, else the workspace's target directory.
pub fn operator_binary() -> PathBuf {
    if let Ok(path) = std::env::var("ESUP_OPERATOR_BIN") {
        return PathBuf::from(path);
    }
    let path = target_dir().join("debug/esup-operator");
    assert!(
        path.exists(),
        "{} missing: run `cargo build -p esup-operator --bin esup-operator` (make integration does)",
        path.display()
    );
    path
}

/// A running operator process, killed (SIGKILL) when dropped.
pub struct OperatorProcess {
    child: tokio::process::Child,
    pub identity: String,
    pub metrics_url: String,
}

impl OperatorProcess {
    /// Starts the operator with its own Lease, the stand-in runner image and `callback_base`;
    /// its `/metrics` is at [`Self::metrics_url`].
    pub fn start(lease: &str, identity: &str, callback_base: &str) -> Self {
        let port = free_loopback_port().expect("a free loopback port");
        let listen = format!("127.0.0.1:{port}");
        let log_dir = std::env::temp_dir().join("esup-e2e-logs");
        std::fs::create_dir_all(&log_dir).expect("log dir");
        let log = std::fs::File::create(log_dir.join(format!("{identity}.log"))).expect("log file");
        let child = tokio::process::Command::new(operator_binary())
            .args([
                "--runner-image",
                STANDIN_IMAGE,
                "--namespace",
                "esup-system",
            ])
            .args(["--lease-name", lease, "--identity", identity])
            .args(["--callback-base-url", callback_base, "--listen", &listen])
            .args(["--job-ttl-seconds", "600"])
            .env("RUST_LOG", "info,esup_operator=debug,kube=warn")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("operator starts");
        Self {
            child,
            identity: identity.to_owned(),
            metrics_url: format!("http://{listen}/metrics"),
        }
    }

    /// The `/metrics` text, once the operator answers.
    pub async fn metrics(&self) -> Option<String> {
        reqwest::get(&self.metrics_url)
            .await
            .ok()?
            .text()
            .await
            .ok()
    }

    /// SIGKILL: no shutdown hook runs, the Lease is not released.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("kill operator");
    }
}

/// The `esup-webhook` binary: `$ESUP_WEBHOOK_BIN`, else next to the operator's.
pub fn webhook_binary() -> PathBuf {
    if let Ok(path) = std::env::var("ESUP_WEBHOOK_BIN") {
        return PathBuf::from(path);
    }
    let path = operator_binary().with_file_name("esup-webhook");
    assert!(
        path.exists(),
        "{} missing: run `cargo build -p esup-webhook --bin esup-webhook` (make integration does)",
        path.display()
    );
    path
}

/// A running webhook on the pod network's gateway (runner pods and the test reach it),
/// killed (SIGKILL) when dropped.
pub struct WebhookProcess {
    child: tokio::process::Child,
    pub base_url: String,
    /// Base URL of its metrics port (`/metrics`, `/healthz`, `/readyz`), on loopback.
    pub metrics_url: String,
    pub results_dir: PathBuf,
}

/// How to start a webhook beyond the defaults.
#[derive(Clone, Debug, Default)]
pub struct WebhookOptions {
    /// Listen on this port of the pod gateway (a restart keeps its address); None: a free one.
    pub port: Option<u16>,
    /// Keep the result directory of an earlier run of the same name (a restart).
    pub keep_results: bool,
    /// Further command-line flags.
    pub extra_args: Vec<String>,
}

/// A free port on the pod network's gateway, for a server started later.
pub fn free_gateway_port() -> u16 {
    let gateway = std::env::var("ESUP_POD_GATEWAY").unwrap_or_else(|_| "10.244.0.1".to_owned());
    let probe = std::net::TcpListener::bind(format!("{gateway}:0"))
        .expect("a free port on the pod gateway");
    probe.local_addr().expect("address").port()
}

impl WebhookProcess {
    pub async fn start(name: &str) -> Self {
        Self::start_with(name, WebhookOptions::default()).await
    }

    pub async fn start_with(name: &str, options: WebhookOptions) -> Self {
        let gateway = std::env::var("ESUP_POD_GATEWAY").unwrap_or_else(|_| "10.244.0.1".to_owned());
        let port = options.port.unwrap_or_else(free_gateway_port);
        let metrics_port = free_loopback_port().expect("a free loopback port");
        let results_dir = std::env::temp_dir().join(format!("esup-e2e-results-{name}"));
        if !options.keep_results {
            let _ = std::fs::remove_dir_all(&results_dir);
        }
        let log_dir = std::env::temp_dir().join("esup-e2e-logs");
        std::fs::create_dir_all(&log_dir).expect("log dir");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_dir.join(format!("webhook-{name}.log")))
            .expect("log file");
        let child = tokio::process::Command::new(webhook_binary())
            .args([
                "--listen",
                &format!("{gateway}:{port}"),
                "--namespace",
                "esup-system",
            ])
            .arg("--results-dir")
            .arg(&results_dir)
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
            .args([
                "--private-networks",
                "10.244.0.0/24",
                "--rate-limit-per-minute",
                "100000",
                // The tests' anonymous and failing calls (the fuzz run) and their runners.
                "--anonymous-rate-limit-per-minute",
                "100000",
                "--callback-rate-limit-per-minute",
                "100000",
            ])
            .args(["--results-sweep", "2s"])
            .args(&options.extra_args)
            .env("RUST_LOG", "info,esup_webhook=debug,kube=warn")
            .env("POD_NAME", format!("webhook-{name}"))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("webhook starts");
        let base_url = format!("http://{gateway}:{port}");
        let root = format!("{base_url}/");
        wait_for(Duration::from_secs(30), "the webhook to listen", || {
            let root = root.clone();
            async move {
                tokio::net::TcpStream::connect(
                    root.trim_start_matches("http://").trim_end_matches('/'),
                )
                .await
                .ok()
            }
        })
        .await;
        Self {
            child,
            base_url,
            metrics_url: format!("http://127.0.0.1:{metrics_port}"),
            results_dir,
        }
    }

    /// Waits until the webhook answers `token` (its tenant table fills from a watch).
    pub async fn wait_for_token(&self, token: &str) {
        let http = reqwest::Client::new();
        let url = format!("{}/manager/health", self.base_url);
        wait_for(
            Duration::from_secs(20),
            "the webhook to know the tenant token",
            || {
                let (http, url) = (http.clone(), url.clone());
                async move {
                    let r = http.get(url).bearer_auth(token).send().await.ok()?;
                    (r.status() == 200).then_some(())
                }
            },
        )
        .await;
    }

    pub async fn kill(mut self) {
        self.child.kill().await.expect("kill webhook");
    }
}

/// One POST the stand-in runner made when it started.
#[derive(Clone, Debug, PartialEq)]
pub struct RunnerStart {
    pub launch: String,
    pub pool: String,
    pub token: String,
}

/// Stands in for the webhook's runner callbacks: records each runner start, by task name.
#[derive(Clone)]
pub struct CallbackRecorder {
    pub base_url: String,
    starts: Arc<Mutex<BTreeMap<String, Vec<RunnerStart>>>>,
}

impl CallbackRecorder {
    /// Listens on the pod network's gateway (the host side of the cluster bridge), which
    /// runner pods reach directly.
    pub async fn start() -> Self {
        let gateway = std::env::var("ESUP_POD_GATEWAY").unwrap_or_else(|_| "10.244.0.1".to_owned());
        let starts: Arc<Mutex<BTreeMap<String, Vec<RunnerStart>>>> = Arc::default();
        let recorded = starts.clone();
        let route = warp::post()
            .and(warp::path!(
                "runner" / "v1" / String / String / String / "started"
            ))
            .and(warp::header::optional::<String>("authorization"))
            .and(warp::body::form::<BTreeMap<String, String>>())
            .map(
                move |_plural: String,
                      _ns: String,
                      name: String,
                      auth: Option<String>,
                      form: BTreeMap<String, String>| {
                    let start = RunnerStart {
                        launch: form.get("launch").cloned().unwrap_or_default(),
                        pool: form.get("pool").cloned().unwrap_or_default(),
                        token: auth
                            .unwrap_or_default()
                            .trim_start_matches("Bearer ")
                            .to_owned(),
                    };
                    recorded
                        .lock()
                        .unwrap()
                        .entry(name)
                        .or_default()
                        .push(start);
                    "ok"
                },
            );
        let addr: SocketAddr = format!("{gateway}:0").parse().expect("gateway address");
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind on the pod network gateway (is the local cluster up?)");
        let bound = listener.local_addr().expect("bound address");
        tokio::spawn(warp::serve(route).incoming(listener).run());
        Self {
            base_url: format!("http://{bound}"),
            starts,
        }
    }

    pub fn starts(&self, task: &str) -> Vec<RunnerStart> {
        self.starts
            .lock()
            .unwrap()
            .get(task)
            .cloned()
            .unwrap_or_default()
    }

    pub fn all(&self) -> BTreeMap<String, Vec<RunnerStart>> {
        self.starts.lock().unwrap().clone()
    }
}

/// One notify Esup-Pod received, and what its import found.
#[derive(Clone, Debug, PartialEq)]
pub struct Notified {
    pub task_id: String,
    pub status: String,
    pub error_message: Option<String>,
    /// Files downloaded (and sha256-verified) while the notify was open, for `completed`.
    pub imported: Vec<String>,
    /// Problems the import met (a bad checksum, a failed download).
    pub import_errors: Vec<String>,
}

/// Stands in for Esup-Pod's `/runner/notify_task_end/` as Esup-Pod behaves: it refuses a
/// notify without the manager's token (403), and for `completed` downloads the manifest and
/// every file from the manager, checking their sha256, before it answers.
#[derive(Clone)]
pub struct EsupPodStandIn {
    pub notify_url: String,
    received: Arc<Mutex<Vec<Notified>>>,
}

impl EsupPodStandIn {
    pub async fn start(token: &str, manager_base: &str) -> Self {
        Self::start_on(0, token, manager_base).await
    }

    /// Listens on `port` of the pod gateway (0: any free port), e.g. the port of a notify URL
    /// that was unreachable until now.
    pub async fn start_on(port: u16, token: &str, manager_base: &str) -> Self {
        Self::start_with(port, token, manager_base, None).await
    }

    /// Like [`Self::start_on`], and with a media directory as Esup-Pod's MEDIA_ROOT: `GET
    /// /media/<path>` serves its files (sources for runners), and each completed task's
    /// imported files are kept in `<media>/tasks/<task_id>/`, as Esup-Pod stores them.
    pub async fn start_with(
        port: u16,
        token: &str,
        manager_base: &str,
        media: Option<PathBuf>,
    ) -> Self {
        let gateway = std::env::var("ESUP_POD_GATEWAY").unwrap_or_else(|_| "10.244.0.1".to_owned());
        let received: Arc<Mutex<Vec<Notified>>> = Arc::default();
        let (record, token, base) = (received.clone(), token.to_owned(), manager_base.to_owned());
        let keep = media.clone();
        let route = warp::post()
            .and(warp::path!("runner" / "notify_task_end"))
            .and(warp::header::optional::<String>("authorization"))
            .and(warp::body::json::<serde_json::Value>())
            .then(move |auth: Option<String>, body: serde_json::Value| {
                let (record, token, base, keep) =
                    (record.clone(), token.clone(), base.clone(), keep.clone());
                async move {
                    if auth.as_deref() != Some(format!("Bearer {token}").as_str()) {
                        let reply = warp::reply::json(
                            &serde_json::json!({"error": "Invalid Bearer token."}),
                        );
                        return warp::reply::with_status(reply, warp::http::StatusCode::FORBIDDEN);
                    }
                    let mut notified = Notified {
                        task_id: body["task_id"].as_str().unwrap_or_default().to_owned(),
                        status: body["status"].as_str().unwrap_or_default().to_owned(),
                        error_message: body["error_message"].as_str().map(str::to_owned),
                        imported: Vec::new(),
                        import_errors: Vec::new(),
                    };
                    if notified.status == "completed" {
                        let into = keep.map(|m| m.join("tasks").join(&notified.task_id));
                        import(&base, &token, &mut notified, into.as_deref()).await;
                    }
                    record.lock().unwrap().push(notified);
                    warp::reply::with_status(
                        warp::reply::json(&serde_json::json!({"status": "OK"})),
                        warp::http::StatusCode::OK,
                    )
                }
            });
        let listener = tokio::net::TcpListener::bind(format!("{gateway}:{port}"))
            .await
            .expect("bind the Esup-Pod stand-in");
        let addr = listener.local_addr().expect("address");
        match media {
            Some(dir) => {
                let files = warp::get().and(warp::path("media")).and(warp::fs::dir(dir));
                tokio::spawn(warp::serve(route.or(files)).incoming(listener).run());
            }
            None => {
                tokio::spawn(warp::serve(route).incoming(listener).run());
            }
        }
        Self {
            notify_url: format!("http://{addr}/runner/notify_task_end/"),
            received,
        }
    }

    /// Base URL of the media directory (`start_with`), e.g. `http://10.244.0.1:PORT/media`.
    pub fn media_url(&self) -> String {
        self.notify_url
            .trim_end_matches("/runner/notify_task_end/")
            .to_owned()
            + "/media"
    }

    pub fn received(&self) -> Vec<Notified> {
        self.received.lock().unwrap().clone()
    }
}

/// Esup-Pod's import: the manifest, then every file, each checked against its sha256.
async fn import(base: &str, token: &str, notified: &mut Notified, keep: Option<&std::path::Path>) {
    use sha2::Digest;
    let http = reqwest::Client::new();
    let manifest: serde_json::Value = match http
        .get(format!("{base}/task/result/{}", notified.task_id))
        .bearer_auth(token)
        .send()
        .await
    {
        Ok(r) => r.json().await.unwrap_or_default(),
        Err(e) => {
            notified.import_errors.push(format!("manifest: {e}"));
            return;
        }
    };
    for entry in manifest["files"].as_array().cloned().unwrap_or_default() {
        let path = entry["path"].as_str().unwrap_or_default().to_owned();
        let encoded: String = path
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"._-".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let url = format!("{base}/task/result/{}/file/{encoded}", notified.task_id);
        match http.get(url).bearer_auth(token).send().await {
            Ok(r) if r.status() == 200 => {
                let bytes = r.bytes().await.unwrap_or_default();
                let sha = format!("{:x}", sha2::Sha256::digest(&bytes));
                if entry["sha256"].as_str() == Some(sha.as_str()) {
                    if let Some(dir) = keep {
                        let file = dir.join(&path);
                        std::fs::create_dir_all(file.parent().unwrap_or(dir)).unwrap();
                        std::fs::write(&file, &bytes).unwrap();
                    }
                    notified.imported.push(path);
                } else {
                    notified
                        .import_errors
                        .push(format!("{path}: checksum mismatch"));
                }
            }
            Ok(r) => notified
                .import_errors
                .push(format!("{path}: {}", r.status())),
            Err(e) => notified.import_errors.push(format!("{path}: {e}")),
        }
    }
}

fn run_tool(program: &str, args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(format!(
        "{program} failed: {}",
        stderr.lines().last().unwrap_or("")
    ))
}

/// A lecture-like clip `<dir>/<name>.mp4` of `seconds`: a test pattern of `size` (e.g.
/// "1280x720") and speech of `text` by espeak-ng's `voice` (e.g. "fr"), padded with silence;
/// H.264 and AAC 48 kHz, faststart. Written under a temporary name, then renamed.
pub fn speaking_clip(
    dir: &std::path::Path,
    name: &str,
    seconds: u32,
    size: &str,
    (voice, text): (&str, &str),
) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let speech = dir.join(format!("{name}.wav"));
    let partial = dir.join(format!("{name}.partial.mp4"));
    let clip = dir.join(format!("{name}.mp4"));
    let (speech_arg, partial_arg) = (speech.to_string_lossy(), partial.to_string_lossy());
    run_tool(
        "espeak-ng",
        &["-v", voice, "-s", "150", "-w", &speech_arg, text],
    )?;
    let pattern = format!("testsrc2=size={size}:rate=25");
    let seconds = seconds.to_string();
    run_tool(
        "ffmpeg",
        &[
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            &pattern,
            "-i",
            &speech_arg,
            "-filter_complex",
            "[1:a]aresample=48000,apad[a]",
            "-map",
            "0:v",
            "-map",
            "[a]",
            "-t",
            &seconds,
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            "-movflags",
            "+faststart",
            &partial_arg,
        ],
    )?;
    let _ = std::fs::remove_file(&speech);
    std::fs::rename(&partial, &clip).map_err(|e| format!("{}: {e}", clip.display()))?;
    Ok(clip)
}
