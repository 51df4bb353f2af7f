//! End to end through the Helm chart (issue 8): the operator, the webhook and the real runner
//! image built here, installed by `e2e/chart/up` with `e2e/chart/values.yaml` on the local
//! cluster. Esup-Pod is the stand-in on the pod gateway: it serves the media, receives the
//! notifies and imports every result file against the manifest's sha256. Real pods do real
//! media work (libav, whisper.cpp with the base model from the read-only models volume).
//!
//! Each test submits its own tasks with its own Esup-Pod (its own notify URL), so they do not
//! see each other's notifies; the release stays installed at the end of every test.
//!
//! The tests are `#[ignore]`d so that `cargo test -p esup-e2e` runs without them: the release's
//! operator sees every task and pool of the cluster and must not run beside the other tests'
//! operators. `make e2e` runs them (`-- --ignored`) and removes the release afterwards.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests fail loudly by design

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use esup_api::{EncodingTask, TaskPhase, TranscriptionTask};
use esup_e2e::{EsupPodStandIn, Notified, client, wait_for};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams};

const RELEASE: &str = "esup-e2e";
const NS: &str = "esup-e2e";
const TENANT_NS: &str = "esup-e2e-pods";
const TOKEN: &str = "esup-e2e-token-0123456789abcdef";
const RENDITION_360: &str = r#"{"360": {"resolution": "640x360", "video_bitrate": "750k", "audio_bitrate": "96k", "encode_mp4": true}}"#;

fn repo() -> PathBuf {
    esup_e2e::repo_root()
}

fn chart_up() -> String {
    let out = Command::new(repo().join("e2e/chart/up"))
        .args([RELEASE, NS, TENANT_NS])
        .arg(repo().join("e2e/chart/values.yaml"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("run e2e/chart/up");
    assert!(out.status.success(), "e2e/chart/up failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_owned()
}

/// The release, installed once per test binary.
fn webhook_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(chart_up)
}

fn helm(args: &[&str]) {
    let helm = std::env::var("ESUP_HELM").unwrap_or_else(|_| {
        format!(
            "{}/.cache/esup-runner/helm-v3.19.5/bin/helm",
            std::env::var("HOME").unwrap()
        )
    });
    let status = Command::new(helm).args(args).status().expect("run helm");
    assert!(status.success(), "helm {args:?}");
}

/// A clip of `seconds` with a test pattern and English speech (espeak-ng), padded.
fn make_clip(dir: &Path, name: &str, seconds: u32, size: &str) -> String {
    let english = (
        "en",
        "The quick brown fox jumps over the lazy dog. Welcome to the lecture.",
    );
    make_clip_speaking(dir, name, seconds, size, english)
}

fn make_clip_speaking(
    dir: &Path,
    name: &str,
    seconds: u32,
    size: &str,
    speech: (&str, &str),
) -> String {
    esup_e2e::speaking_clip(dir, name, seconds, size, speech).unwrap();
    format!("{name}.mp4")
}

/// One test's Esup-Pod: its media directory, its notify URL, and its manager connection.
struct EsupPod {
    pod: EsupPodStandIn,
    media: PathBuf,
    http: reqwest::Client,
    base: String,
    client: kube::Client,
}

impl EsupPod {
    async fn start(test: &str) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let base = tokio::task::spawn_blocking(webhook_url)
            .await
            .unwrap()
            .to_owned();
        let media = std::env::temp_dir().join(format!("esup-e2e-chart-{test}"));
        let _ = std::fs::remove_dir_all(&media);
        std::fs::create_dir_all(&media).unwrap();
        let pod = EsupPodStandIn::start_with(0, TOKEN, &base, Some(media.clone())).await;
        Self {
            pod,
            media,
            http: reqwest::Client::new(),
            base,
            client: client().await,
        }
    }

    async fn execute(&self, body: serde_json::Value) -> String {
        let response = self
            .http
            .post(format!("{}/task/execute", self.base))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let answer: serde_json::Value = response.json().await.unwrap();
        assert_eq!(status, 200, "{answer}");
        answer["task_id"].as_str().unwrap().to_owned()
    }

    /// A request body as Esup-Pod sends it, with this Esup-Pod's notify URL; `source` is a
    /// path under its media directory.
    fn request(
        &self,
        task_type: &str,
        source: &str,
        parameters: serde_json::Value,
    ) -> serde_json::Value {
        serde_json::json!({
            "etab_name": "E2E / Pod", "app_name": "Esup-Pod", "app_version": "4.2.0",
            "task_type": task_type,
            "source_url": format!("{}/{source}", self.pod.media_url()),
            "notify_url": self.pod.notify_url,
            "parameters": parameters,
        })
    }

    async fn encode(&self, file: &str, title: &str) -> String {
        let parameters = serde_json::json!({"rendition": RENDITION_360, "video_id": 7, "video_slug": title, "video_title": title});
        self.execute(self.request("encoding", file, parameters))
            .await
    }

    /// Transcribes the MP3 an encoding task imported, as Esup-Pod does next.
    async fn transcribe_imported(
        &self,
        encoding: &str,
        mp3: &str,
        language: &str,
        duration: f64,
    ) -> String {
        let parameters = serde_json::json!({"language": language, "source_language": language,
            "duration": duration, "normalize": false, "video_id": 7});
        self.execute(self.request(
            "transcription",
            &format!("tasks/{encoding}/{mp3}"),
            parameters,
        ))
        .await
    }

    /// Waits for the transcription's single notify; returns its only `.vtt` name and text.
    async fn subtitles(&self, task: &str) -> (String, String) {
        let notified = self.notified_once(task, Duration::from_secs(600)).await;
        let vtts: Vec<_> = notified
            .imported
            .iter()
            .filter(|f| f.ends_with(".vtt"))
            .collect();
        assert_eq!(vtts.len(), 1, "exactly one .vtt: {:?}", notified.imported);
        let text = std::fs::read_to_string(self.imported(task, vtts[0])).unwrap();
        assert!(text.starts_with("WEBVTT"), "{text}");
        (vtts[0].clone(), text)
    }

    async fn notified(&self, task: &str, timeout: Duration) -> Notified {
        let start = Instant::now();
        loop {
            if let Some(n) = self.pod.received().into_iter().find(|n| n.task_id == task) {
                return n;
            }
            assert!(
                start.elapsed() < timeout,
                "no notify for {task} within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Waits for the notify, then a little more so that a second one would have come.
    async fn notified_once(&self, task: &str, timeout: Duration) -> Notified {
        let first = self.notified(task, timeout).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let all: Vec<_> = self
            .pod
            .received()
            .into_iter()
            .filter(|n| n.task_id == task)
            .collect();
        assert_eq!(
            all.len(),
            1,
            "Esup-Pod was notified {} times: {all:?}",
            all.len()
        );
        assert_eq!(first.status, "completed", "{first:?}");
        assert!(first.import_errors.is_empty(), "{first:?}");
        first
    }

    fn imported(&self, task: &str, file: &str) -> PathBuf {
        self.media.join("tasks").join(task).join(file)
    }

    async fn encoding(&self, task: &str) -> EncodingTask {
        Api::<EncodingTask>::namespaced(self.client.clone(), TENANT_NS)
            .get(task)
            .await
            .unwrap()
    }

    /// Waits until the task's runner pod is Running and has worked for `after`.
    async fn running_pod(&self, task: &str, after: Duration) -> Pod {
        let pods = Api::<Pod>::namespaced(self.client.clone(), TENANT_NS);
        let selector = format!("runner.esup-portail.org/task-name={task}");
        let pod = wait_for(Duration::from_secs(120), "a Running runner pod", || {
            let (pods, selector) = (pods.clone(), selector.clone());
            async move {
                let list = pods
                    .list(&ListParams::default().labels(&selector))
                    .await
                    .ok()?;
                list.items
                    .into_iter()
                    .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            }
        })
        .await;
        tokio::time::sleep(after).await;
        pod
    }
}

const ENCODED: [&str; 9] = [
    "360p_{b}.m3u8",
    "360p_{b}.ts",
    "360p_{b}.mp4",
    "audio_192k_{b}.mp3",
    "{b}_0.png",
    "{b}_1.png",
    "{b}_2.png",
    "overview.png",
    "info_video.json",
];

/// The runner build this host's CPU gets: the pods run on this machine's kubelet.
fn host_cpu_level() -> &'static str {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap();
    let flags: Vec<&str> = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("flags"))
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let v4 = ["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"]
        .iter()
        .all(|f| flags.contains(f));
    if v4 { "x86-64-v4" } else { "x86-64-v3" }
}

fn assert_encoded(notified: &Notified, base: &str) {
    for pattern in ENCODED {
        let file = pattern.replace("{b}", base);
        assert!(
            notified.imported.contains(&file),
            "{file} not imported: {:?}",
            notified.imported
        );
    }
}

#[tokio::test]
#[ignore = "end to end through the chart: `make e2e` runs it, after the other integration tests"]
async fn encoding_then_transcription_on_the_gpu_pool_with_real_media() {
    let esup = EsupPod::start("flow").await;
    let clip = make_clip(&esup.media, "lecture", 8, "1280x720");
    let task = esup.encode(&clip, "lecture").await;
    let notified = esup.notified_once(&task, Duration::from_secs(300)).await;
    assert_encoded(&notified, "lecture");
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(esup.imported(&task, "info_video.json")).unwrap())
            .unwrap();
    for key in esup_api::runner::INFO_VIDEO_REQUIRED_KEYS {
        assert!(
            info.get(key).is_some(),
            "info_video.json lacks {key}: {info}"
        );
    }
    assert_eq!(info["duration"], 8);

    // GPU pinning: the first pool by priority is the simulated-GPU one, and its pod asked
    // for a GPU on a GPU node.
    let status = esup.encoding(&task).await.status.unwrap();
    assert_eq!(status.pool.as_deref(), Some("e2e-gpu"));
    let jobs = Api::<Job>::namespaced(esup.client.clone(), TENANT_NS)
        .list(&ListParams::default().labels(&format!("runner.esup-portail.org/task-name={task}")))
        .await
        .unwrap();
    let pod = jobs.items[0]
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .clone()
        .unwrap();
    let limits = pod.containers[0]
        .resources
        .as_ref()
        .unwrap()
        .limits
        .clone()
        .unwrap();
    assert_eq!(limits["nvidia.com/gpu"].0, "1");
    assert_eq!(pod.node_selector.unwrap()["nvidia.com/gpu.present"], "true");

    // Esup-Pod then transcribes the MP3 it imported.
    let transcription = esup
        .transcribe_imported(&task, "audio_192k_lecture.mp3", "en", 8.0)
        .await;
    let (_, vtt) = esup.subtitles(&transcription).await;
    let text = vtt
        .to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(text.contains("fox") && text.contains("lazy dog"), "{vtt}");
    // The image's AVX-512 build took the transcription on a CPU that has AVX-512.
    let info: serde_json::Value = serde_json::from_slice(
        &std::fs::read(esup.imported(&transcription, "info_video.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        info["transcription"]["whisper_cpu_build"],
        host_cpu_level(),
        "{info}"
    );
    let task = Api::<TranscriptionTask>::namespaced(esup.client.clone(), TENANT_NS)
        .get(&transcription)
        .await
        .unwrap();
    assert_eq!(task.status.unwrap().phase, TaskPhase::Succeeded);
}

#[tokio::test]
#[ignore = "end to end through the chart: `make e2e` runs it, after the other integration tests"]
async fn a_second_task_overflows_from_the_full_gpu_pool() {
    let esup = EsupPod::start("overflow").await;
    let clip = make_clip(&esup.media, "long", 40, "1280x720");
    let first = esup.encode(&clip, "first").await;
    esup.running_pod(&first, Duration::ZERO).await;
    let second = esup.encode(&clip, "second").await;
    let a = esup.notified_once(&first, Duration::from_secs(600)).await;
    let b = esup.notified_once(&second, Duration::from_secs(600)).await;
    assert_encoded(&a, "long");
    assert_encoded(&b, "long");
    let pool = |t: EncodingTask| t.status.unwrap().pool.unwrap();
    assert_eq!(pool(esup.encoding(&first).await), "e2e-gpu");
    assert_eq!(
        pool(esup.encoding(&second).await),
        "e2e-cpu",
        "overflow after 5 s"
    );
}

/// A task whose pod, operator or webhook is killed mid-task still ends once, completed.
async fn survives(test: &str, kill: impl AsyncFnOnce(&EsupPod, &Pod)) {
    let esup = EsupPod::start(test).await;
    let clip = make_clip(&esup.media, test, 30, "1280x720");
    let task = esup.encode(&clip, test).await;
    let pod = esup.running_pod(&task, Duration::from_secs(3)).await;
    kill(&esup, &pod).await;
    let notified = esup.notified_once(&task, Duration::from_secs(600)).await;
    assert_encoded(&notified, test);
}

async fn delete_now(client: &kube::Client, namespace: &str, name: &str) {
    Api::<Pod>::namespaced(client.clone(), namespace)
        .delete(
            name,
            &DeleteParams {
                grace_period_seconds: Some(0),
                ..DeleteParams::default()
            },
        )
        .await
        .unwrap();
}

#[tokio::test]
#[ignore = "end to end through the chart: `make e2e` runs it, after the other integration tests"]
async fn a_runner_pod_killed_mid_task_is_run_again() {
    survives("runnerkill", async |esup, pod| {
        delete_now(&esup.client, TENANT_NS, &pod.metadata.name.clone().unwrap()).await;
    })
    .await;
}

#[tokio::test]
#[ignore = "end to end through the chart: `make e2e` runs it, after the other integration tests"]
async fn the_leading_operator_killed_mid_task() {
    survives("operatorkill", async |esup, _| {
        let lease = Api::<Lease>::namespaced(esup.client.clone(), NS)
            .get("esup-operator")
            .await
            .unwrap();
        let holder = lease.spec.unwrap().holder_identity.unwrap();
        delete_now(&esup.client, NS, &holder).await;
    })
    .await;
}

#[tokio::test]
#[ignore = "end to end through the chart: `make e2e` runs it, after the other integration tests"]
async fn the_webhook_killed_mid_task() {
    survives("webhookkill", async |esup, _| {
        let pods = Api::<Pod>::namespaced(esup.client.clone(), NS)
            .list(&ListParams::default().labels("app.kubernetes.io/component=webhook"))
            .await
            .unwrap();
        for p in pods.items {
            delete_now(&esup.client, NS, &p.metadata.name.unwrap()).await;
        }
    })
    .await;
}

#[tokio::test]
#[ignore = "end to end through the chart: `make e2e` runs it, after the other integration tests"]
async fn helm_upgrade_with_a_task_in_flight() {
    survives("upgrade", async |esup, _| {
        let deployments = Api::<Deployment>::namespaced(esup.client.clone(), NS);
        let before = deployments
            .get(&format!("{RELEASE}-esup-runner-operator"))
            .await
            .unwrap();
        // A changed pod template: both Deployments roll while the task runs.
        let values = repo().join("e2e/chart/values.yaml");
        let chart = repo().join("helm/esup-runner");
        let stamp = format!("operator.podAnnotations.e2e-upgrade={}", std::process::id());
        tokio::task::spawn_blocking(move || {
            helm(&[
                "upgrade",
                RELEASE,
                chart.to_str().unwrap(),
                "-n",
                NS,
                "-f",
                values.to_str().unwrap(),
                "--set-string",
                &stamp,
                "--wait",
                "--timeout",
                "300s",
            ])
        })
        .await
        .unwrap();
        let after = deployments
            .get(&format!("{RELEASE}-esup-runner-operator"))
            .await
            .unwrap();
        assert_ne!(
            before.metadata.generation, after.metadata.generation,
            "the upgrade rolled the operator"
        );
    })
    .await;
}

#[tokio::test]
#[ignore = "end to end through the chart: `make e2e` runs it, after the other integration tests"]
async fn uninstall_and_reinstall_keep_tasks_and_results() {
    let esup = EsupPod::start("reinstall").await;
    let clip = make_clip(&esup.media, "kept", 4, "640x360");
    let task = esup.encode(&clip, "kept").await;
    let notified = esup.notified_once(&task, Duration::from_secs(300)).await;

    tokio::task::spawn_blocking(|| {
        helm(&[
            "uninstall",
            RELEASE,
            "-n",
            NS,
            "--wait",
            "--timeout",
            "180s",
        ])
    })
    .await
    .unwrap();
    // CRDs and tasks stay (the chart keeps CRDs; the tenant namespace is not the release's).
    assert_eq!(
        esup.encoding(&task).await.status.unwrap().phase,
        TaskPhase::Succeeded
    );

    let base = tokio::task::spawn_blocking(chart_up).await.unwrap();
    let http = reqwest::Client::new();
    let manifest: serde_json::Value = wait_for(
        Duration::from_secs(60),
        "the manifest after reinstall",
        || {
            let (http, url) = (http.clone(), format!("{base}/task/result/{task}"));
            async move {
                let r = http.get(url).bearer_auth(TOKEN).send().await.ok()?;
                (r.status() == 200).then_some(())?;
                r.json().await.ok()
            }
        },
    )
    .await;
    let files: Vec<_> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_owned())
        .collect();
    let mut before = notified.imported.clone();
    before.sort();
    let mut after = files.clone();
    after.sort();
    assert_eq!(before, after);
    let mp4 = http
        .get(format!("{base}/task/result/{task}/file/360p_kept.mp4"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(
        mp4,
        std::fs::read(esup.imported(&task, "360p_kept.mp4")).unwrap()
    );
}

const RENDITION_DEFAULT: &str = r#"{"360": {"resolution": "640x360", "video_bitrate": "750k", "audio_bitrate": "96k", "encode_mp4": true}, "720": {"resolution": "1280x720", "video_bitrate": "2000k", "audio_bitrate": "128k", "encode_mp4": true}, "1080": {"resolution": "1920x1080", "video_bitrate": "3000k", "audio_bitrate": "192k", "encode_mp4": false}}"#;

/// The protocol's compatibility cases C0 to C12 (§7) against the chart's webhook, with real
/// runner pods doing the media work.
#[tokio::test]
#[ignore = "end to end through the chart: `make e2e` runs it, after the other integration tests"]
async fn protocol_cases_c0_to_c12_with_real_runners() {
    let esup = EsupPod::start("protocol").await;
    let (http, base) = (esup.http.clone(), esup.base.clone());
    let get = |path: &str, token: Option<&str>| {
        let mut request = http.get(format!("{base}{path}"));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        request.send()
    };

    // C0 health, C1 auth.
    let health: serde_json::Value = get("/manager/health", Some(TOKEN))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "healthy");
    assert_eq!(get("/api/health", Some(TOKEN)).await.unwrap().status(), 200);
    assert_eq!(
        get("/manager/health", Some("wrong-token"))
            .await
            .unwrap()
            .status(),
        401
    );
    let clip = make_clip_speaking(
        &esup.media,
        "sample",
        6,
        "1920x1080",
        (
            "fr",
            "Bonjour à tous. Aujourd'hui nous parlons de la lumière du soleil.",
        ),
    );
    let encoding = esup.request(
        "encoding",
        &clip,
        serde_json::json!({"rendition": RENDITION_DEFAULT, "video_id": 12,
                           "video_slug": "12-sample", "video_title": "Sample"}),
    );
    let unauthenticated = http
        .post(format!("{base}/task/execute"))
        .json(&encoding)
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);

    // C2 submit (X-API-Token works as Bearer), same id when resubmitted in flight.
    let submitted = http
        .post(format!("{base}/task/execute"))
        .header("X-API-Token", TOKEN)
        .json(&encoding)
        .send()
        .await
        .unwrap();
    assert_eq!(submitted.status(), 200);
    assert!(
        submitted.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let answer: serde_json::Value = submitted.json().await.unwrap();
    let task = answer["task_id"].as_str().unwrap().to_owned();
    assert!(answer["status"].is_string());
    assert_eq!(
        esup.execute(encoding.clone()).await,
        task,
        "dedup while in flight"
    );

    // C3 status; C5 before completion → 425.
    let status: serde_json::Value = get(&format!("/task/status/{task}"), Some(TOKEN))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["task_id"], task.as_str());
    assert!(status.get("client_token").is_none());
    assert_eq!(
        get("/task/status/no-such-task", Some(TOKEN))
            .await
            .unwrap()
            .status(),
        404
    );
    let early = get(&format!("/task/result/{task}"), Some(TOKEN))
        .await
        .unwrap()
        .status();
    assert!(early == 425 || early == 200, "{early}");

    // C4 notify with the submit token (C12: the stand-in refuses any other), C5 manifest,
    // C6 files with their sha256 (checked by the stand-in's import).
    let notified = esup.notified_once(&task, Duration::from_secs(600)).await;
    let mut expected: Vec<String> = [
        "info_video.json",
        "overview.png",
        "overview.vtt",
        "audio_192k_sample.mp3",
        "360p_sample.mp4",
        "720p_sample.mp4",
        "sample_0.png",
        "sample_1.png",
        "sample_2.png",
    ]
    .map(str::to_owned)
    .to_vec();
    for h in ["360", "720", "1080"] {
        expected.push(format!("{h}p_sample.m3u8"));
        expected.push(format!("{h}p_sample.ts"));
    }
    for file in &expected {
        assert!(
            notified.imported.contains(file),
            "{file}: {:?}",
            notified.imported
        );
    }
    assert!(!notified.imported.iter().any(|f| f == "1080p_sample.mp4"));
    for h in ["360", "720", "1080"] {
        let playlist =
            std::fs::read_to_string(esup.imported(&task, &format!("{h}p_sample.m3u8"))).unwrap();
        assert!(
            playlist.contains(&format!("{h}p_sample.ts")) && playlist.contains("#EXT-X-ENDLIST"),
            "{playlist}"
        );
    }
    let traversal = get(
        &format!("/task/result/{task}/file/..%2F..%2Fetc%2Fpasswd"),
        Some(TOKEN),
    )
    .await
    .unwrap()
    .status();
    assert_eq!(traversal, 400);
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(esup.imported(&task, "info_video.json")).unwrap())
            .unwrap();
    assert_eq!(info["duration"], 6);
    assert_eq!(
        (
            info["has_stream_video"].clone(),
            info["has_stream_audio"].clone(),
            info["has_stream_thumbnail"].clone()
        ),
        (true.into(), true.into(), true.into())
    );

    // C7, C8: the transcription of the imported MP3; exactly one .vtt.
    let transcription = esup
        .transcribe_imported(&task, "audio_192k_sample.mp3", "fr", 6.0)
        .await;
    let (name, vtt) = esup.subtitles(&transcription).await;
    assert_eq!(name, "audio_192k_sample.vtt");
    assert!(vtt.starts_with("WEBVTT") && vtt.contains("-->"), "{vtt}");
    assert!(vtt.to_lowercase().contains("bonjour"), "{vtt}");

    // C9: a PDF named .mp4 fails, notified `failed` with a message; result 400, status failed.
    std::fs::write(
        esup.media.join("notes.mp4"),
        b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n",
    )
    .unwrap();
    let broken = esup.encode("notes.mp4", "notes").await;
    let failed = esup.notified(&broken, Duration::from_secs(300)).await;
    assert_eq!(failed.status, "failed", "{failed:?}");
    assert!(!failed.error_message.clone().unwrap_or_default().is_empty());
    assert_eq!(
        get(&format!("/task/result/{broken}"), Some(TOKEN))
            .await
            .unwrap()
            .status(),
        400
    );
    let status: serde_json::Value = get(&format!("/task/status/{broken}"), Some(TOKEN))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["status"], "failed");

    // C10: Esup-Pod unreachable at completion; status says so, results still served.
    let mut unreachable = encoding.clone();
    unreachable["notify_url"] = format!(
        "http://10.244.0.1:{}/runner/notify_task_end/",
        esup_e2e::free_gateway_port()
    )
    .into();
    unreachable["parameters"]["rendition"] = RENDITION_360.into();
    let stalled = esup.execute(unreachable).await;
    let done: serde_json::Value = wait_for(
        Duration::from_secs(600),
        "C10: completed while Esup-Pod is away",
        || {
            let request = get(&format!("/task/status/{stalled}"), Some(TOKEN));
            async move {
                let status: serde_json::Value = request.await.ok()?.json().await.ok()?;
                matches!(status["status"].as_str(), Some("completed" | "warning")).then_some(status)
            }
        },
    )
    .await;
    assert!(matches!(
        done["status"].as_str(),
        Some("completed" | "warning")
    ));
    let manifest: serde_json::Value = get(&format!("/task/result/{stalled}"), Some(TOKEN))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        manifest["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["path"] == "360p_sample.mp4")
    );

    // C11: a studio mediapackage (presenter in picture at the top right).
    let presenter = make_clip(&esup.media, "presenter", 4, "320x240");
    let presentation = make_clip(&esup.media, "presentation", 4, "1280x720");
    std::fs::write(
        esup.media.join("package.xml"),
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<mediapackage xmlns=\"http://mediapackage.opencastproject.org\" id=\"rec\" presenter=\"piph\">\n<media>\n\
             <track id=\"presenter\" type=\"presenter/source\"><mimetype>video/mp4</mimetype><url>{presenter}</url></track>\n\
             <track id=\"presentation\" type=\"presentation/source\"><mimetype>video/mp4</mimetype><url>{presentation}</url></track>\n\
             </media>\n</mediapackage>\n"
        ),
    )
    .unwrap();
    let studio = esup
        .execute(esup.request(
            "studio",
            "package.xml",
            serde_json::json!({"rendition": RENDITION_360}),
        ))
        .await;
    let notified = esup.notified_once(&studio, Duration::from_secs(600)).await;
    for file in [
        "studio_base.mp4",
        "360p_studio_base.m3u8",
        "360p_studio_base.ts",
        "360p_studio_base.mp4",
        "studio_base_0.png",
        "audio_192k_studio_base.mp3",
        "overview.vtt",
        "info_video.json",
    ] {
        assert!(
            notified.imported.iter().any(|f| f == file),
            "{file}: {:?}",
            notified.imported
        );
    }
}
