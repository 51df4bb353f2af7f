//! The runners' side of the API, under `/runner/v1/<encodingtasks|transcriptiontasks>/<ns>/<name>/`:
//! progress reports, result uploads and the completion. Each call carries the callback token
//! of one launch of the task (`<launch>.<secret>`, a Secret the operator created for that
//! launch), so a runner can only write to its task, and runners in another cluster can
//! deliver over plain HTTP. Only the task's latest launch may write, and only until the task
//! ends ([`esup_api::runner::fence`]); files are stored per launch, and the manifest gives the
//! hashes the webhook computed while storing them.

use bytes::Bytes;
use esup_api::runner::{Completion, Fenced, ProgressReport, ResultFileEntry};
use esup_api::status::{ResultFile, ScriptOutputRef, TaskOutcome, TaskResult};
use futures::Stream;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};

use crate::error::ApiError;
use crate::state::App;
use crate::store::{Attempt, StoredFile};
use crate::tasks::AnyTask;

/// Field managers of the status parts the webhook writes. Each part has its own, because a
/// server-side apply removes the fields its manager applied before and leaves out now.
pub const PROGRESS_MANAGER: &str = "esup-webhook-progress";
pub const RESULT_MANAGER: &str = "esup-webhook-result";

/// Largest output file accepted (a long 1080p MP4 is a few GiB).
pub const MAX_UPLOAD_BYTES: u64 = 64 * 1024 * 1024 * 1024;
/// Part of the runner's output kept for Esup-Pod.
pub const SCRIPT_OUTPUT_TAIL: usize = 65_536;

/// A runner call whose token was checked: the task (as cached) and the launch the token is of.
#[derive(Clone, Debug)]
pub struct Authorized {
    pub task: AnyTask,
    pub launch: u32,
}

impl Authorized {
    fn attempt(&self) -> Attempt<'_> {
        Attempt::launch(self.task.uid(), self.launch)
    }
}

/// Finds the task and checks the caller's bearer against the callback token of the launch it
/// names. Each handler then fences the launch (409 for a launch older than the task's latest,
/// or once the task has ended): progress and uploads on the cached task, the completion on
/// the task read fresh, so that the repeat of the completion that ended it can be told apart.
pub async fn authorize(
    app: &App,
    plural: &str,
    namespace: &str,
    name: &str,
    authorization: Option<&str>,
) -> Result<Authorized, ApiError> {
    let task = app
        .tasks
        .find(namespace, name)
        .filter(|t| t.kind_plural() == plural)
        .ok_or_else(ApiError::not_found)?;
    let presented = authorization
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(ApiError::missing_token)?;
    let identity = task.identity().ok_or_else(ApiError::not_found)?;
    // A token names its launch. One that names none is either no callback token or the one
    // per-task token of a runner started before per-launch tokens: that runner runs the
    // task's current launch (the operator creates no legacy Secret any more), so its token is
    // checked against the legacy Secret and fenced as that launch.
    let (launch, secret_name) = match esup_api::runner::callback_token_launch(presented) {
        Some(launch) => (launch, identity.callback_secret_name(launch)),
        None => (
            task.status().map_or(0, |s| s.launches),
            identity.legacy_callback_secret_name(),
        ),
    };
    app.callback_tokens
        .check(
            app.tasks.client(),
            namespace,
            &secret_name,
            presented.as_bytes(),
        )
        .await?;
    Ok(Authorized { task, launch })
}

/// [`esup_api::runner::fence`] on the task as `task` shows it.
fn fence(task: &AnyTask, launch: u32) -> Result<(), ApiError> {
    let current = task.status().map_or(0, |s| s.launches);
    esup_api::runner::fence(launch, current, task.phase()).map_err(fenced)
}

fn fenced(refusal: Fenced) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        refusal.category(),
        refusal.to_string(),
    )
}

/// `POST …/progress`.
pub async fn progress(app: &App, auth: &Authorized, body: &[u8]) -> Result<Response, ApiError> {
    fence(&auth.task, auth.launch)?;
    let report: ProgressReport = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request("InvalidReport", format!("not a progress report: {e}"))
    })?;
    let progress = report.to_progress(Time(Timestamp::now()));
    app.tasks
        .apply_status(
            &auth.task,
            PROGRESS_MANAGER,
            None,
            serde_json::json!({"progress": progress}),
        )
        .await?;
    Ok(warp::reply::json(&serde_json::json!({"status": "ok"})).into_response())
}

/// `PUT …/files/<path>`: one output file, streamed into the result store under the caller's
/// launch, so that a leftover runner can never replace the files of another launch.
pub async fn upload<S, E>(
    app: &App,
    auth: &Authorized,
    path: &str,
    body: S,
) -> Result<Response, ApiError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // On the cache: a launch it shows as current may have been superseded a moment ago, but
    // its files land under its own launch, never under the one that completes.
    fence(&auth.task, auth.launch)?;
    let stored = app
        .store
        .put(auth.attempt(), path, body, MAX_UPLOAD_BYTES)
        .await
        .map_err(ApiError::from)?;
    Ok(warp::reply::json(&stored.clone().entry(path)).into_response())
}

/// What the manifest of a completion becomes, given what the store holds for each file.
#[derive(Debug, PartialEq)]
pub enum Checked {
    /// Every file is stored as declared: the manifest, with the hashes the webhook computed.
    Files(Vec<ResultFile>),
    /// Files whose stored bytes do not hash as the runner claimed: the result is recorded
    /// as a failure naming them, never served.
    Mismatch(String),
}

/// Checks a completion's manifest against what the store computed while storing each file
/// (`stored[i]` for `claimed[i]`, `None` when not uploaded). The hashes recorded are always
/// the store's: the runner's claim is only compared. A missing file or a wrong size is the
/// runner's mistake (400, it may upload again); a different hash of the right size means the
/// bytes changed between the runner and the store, which retrying cannot be trusted to fix.
pub fn check_manifest(
    claimed: &[ResultFileEntry],
    stored: &[Option<StoredFile>],
) -> Result<Checked, ApiError> {
    let mut files = Vec::with_capacity(claimed.len());
    let mut mismatched = Vec::new();
    for (entry, stored) in claimed.iter().zip(stored) {
        let Some(stored) = stored else {
            return Err(ApiError::bad_request(
                "InvalidManifest",
                format!("{} was not uploaded", entry.path),
            ));
        };
        if stored.size_bytes != entry.size_bytes {
            return Err(ApiError::bad_request(
                "InvalidManifest",
                format!(
                    "{}: {} bytes stored, {} declared",
                    entry.path, stored.size_bytes, entry.size_bytes
                ),
            ));
        }
        if !stored.sha256.eq_ignore_ascii_case(&entry.sha256) {
            mismatched.push(format!(
                "{} (runner: {}, stored: {})",
                entry.path, entry.sha256, stored.sha256
            ));
        }
        files.push(ResultFile {
            path: entry.path.clone(),
            sha256: stored.sha256.clone(),
            size_bytes: stored.size_bytes,
        });
    }
    if mismatched.is_empty() {
        Ok(Checked::Files(files))
    } else {
        Ok(Checked::Mismatch(
            tail(
                &format!(
                    "Result files differ from what the runner hashed: {}",
                    mismatched.join("; ")
                ),
                4096,
            )
            .to_owned(),
        ))
    }
}

/// `POST …/completion`: the outcome and the manifest. Decided on the task as the API server
/// has it (fenced again), recorded with that version as a precondition. Every file it names
/// must have been uploaded by this launch with that size; the sha256 recorded is the one the
/// webhook computed while storing the file.
pub async fn completion(app: &App, auth: &Authorized, body: &[u8]) -> Result<Response, ApiError> {
    let completion: Completion = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("InvalidReport", format!("not a completion: {e}")))?;
    let acknowledged =
        || Ok(warp::reply::json(&serde_json::json!({"status": "acknowledged"})).into_response());
    let task = app.tasks.fresh(&auth.task).await?;
    let recorded_launch = task
        .status()
        .and_then(|s| s.result.as_ref())
        .and_then(|r| r.launch);
    if task.phase().is_terminal() && recorded_launch == Some(auth.launch) {
        // A repeat of the completion that ended the task (its answer was lost).
        return acknowledged();
    }
    fence(&task, auth.launch)?;
    let at = auth.attempt();
    let mut stored = Vec::with_capacity(completion.files.len());
    for file in &completion.files {
        file.validate()
            .map_err(|e| ApiError::bad_request("InvalidManifest", e.to_string()))?;
        stored.push(
            app.store
                .stored_sha256(at, &file.path)
                .await
                .map_err(ApiError::from)?,
        );
    }
    let (outcome, error_message, files) = match check_manifest(&completion.files, &stored)? {
        Checked::Files(files) => (
            completion.status.into(),
            completion.error_message.map(|m| tail(&m, 4096).to_owned()),
            files,
        ),
        Checked::Mismatch(why) => {
            tracing::warn!(task = %task.name(), launch = auth.launch, %why, "checksum mismatch; recorded as a failure");
            (TaskOutcome::Failed, Some(why), Vec::new())
        }
    };
    let script_output_ref = match completion.script_output {
        Some(text) => {
            let text = tail(&text, SCRIPT_OUTPUT_TAIL);
            let key = app
                .store
                .put_script_output(task.uid(), auth.launch, text)
                .await
                .map_err(ApiError::from)?;
            Some(ScriptOutputRef {
                key,
                size_bytes: text.len() as u64,
            })
        }
        None => None,
    };
    let result = TaskResult {
        outcome,
        error_message,
        files,
        hardware: completion.hardware,
        launch: Some(auth.launch),
        script_output: None,
        script_output_ref,
        report_time: Time(Timestamp::now()),
    };
    app.tasks
        .apply_status(
            &task,
            RESULT_MANAGER,
            task.meta().resource_version.as_deref(),
            serde_json::json!({"result": result}),
        )
        .await?;
    tracing::info!(task = %task.name(), launch = auth.launch, outcome = ?result.outcome, files = result.files.len(), "runner completed");
    acknowledged()
}

/// The last `max` bytes of `s`, cut on a character boundary.
fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use esup_api::TranscriptionTask;
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::sync::Mutex;

    #[test]
    fn tails_cut_on_character_boundaries() {
        assert_eq!(tail("abc", 5), "abc");
        assert_eq!(tail("abcdef", 3), "def");
        assert_eq!(tail("ééé", 3), "é");
    }

    fn sha(bytes: &[u8]) -> String {
        use sha2::Digest;
        esup_api::lower_hex(&sha2::Sha256::digest(bytes))
    }

    fn entry(path: &str, content: &[u8]) -> ResultFileEntry {
        ResultFileEntry {
            path: path.into(),
            sha256: sha(content),
            size_bytes: content.len() as u64,
        }
    }

    fn stored(content: &[u8]) -> Option<StoredFile> {
        Some(StoredFile {
            sha256: sha(content),
            size_bytes: content.len() as u64,
        })
    }

    #[test]
    fn the_manifest_carries_the_stored_hash_never_the_runners_claim() {
        let honest = [entry("a.vtt", b"stored"), entry("b.json", b"{}")];
        let Checked::Files(files) =
            check_manifest(&honest, &[stored(b"stored"), stored(b"{}")]).unwrap()
        else {
            panic!("an honest manifest is accepted");
        };
        assert_eq!(files[0].sha256, sha(b"stored"));
        assert_eq!(files[1].size_bytes, 2);
        // The runner claims the hash of other bytes of the same size: the result is a
        // failure that names the file, with no file to serve.
        let lying = [entry("a.vtt", b"forged"), entry("b.json", b"{}")];
        let Checked::Mismatch(why) =
            check_manifest(&lying, &[stored(b"stored"), stored(b"{}")]).unwrap()
        else {
            panic!("a wrong hash is not recorded as a success");
        };
        assert!(
            why.contains("a.vtt") && why.contains(&sha(b"stored")),
            "{why}"
        );
        assert!(!why.contains("b.json"), "{why}");
        // Not uploaded, or another size: the runner's mistake, 400.
        let missing = check_manifest(&honest, &[stored(b"stored"), None]).unwrap_err();
        assert_eq!(missing.status, StatusCode::BAD_REQUEST);
        let resized = check_manifest(&honest, &[stored(b"stored!"), stored(b"{}")]).unwrap_err();
        assert_eq!(resized.status, StatusCode::BAD_REQUEST);
    }

    /// A loopback stand-in for the API server's few calls the runner routes make: GETs of the
    /// objects it holds, status patches (recorded), 404 for the rest (the caches' watches).
    #[derive(Default)]
    struct ApiServer {
        objects: Mutex<HashMap<String, serde_json::Value>>,
        patches: Mutex<Vec<serde_json::Value>>,
        /// Secret reads.
        secret_reads: std::sync::atomic::AtomicUsize,
    }

    async fn serve(api: Arc<ApiServer>) -> String {
        use warp::Filter;
        let route = warp::method()
            .and(warp::path::full())
            .and(warp::body::bytes())
            .map(
                move |method: warp::http::Method, path: warp::path::FullPath, body: Bytes| {
                    let path = path.as_str().to_owned();
                    let found = |key: &str| api.objects.lock().unwrap().get(key).cloned();
                    if path.contains("/secrets/") {
                        api.secret_reads
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    let reply = match method.as_str() {
                        "GET" => found(&path),
                        "PATCH" if path.ends_with("/status") => {
                            api.patches
                                .lock()
                                .unwrap()
                                .push(serde_json::from_slice(&body).unwrap());
                            found(path.trim_end_matches("/status"))
                        }
                        _ => None,
                    };
                    match reply {
                        Some(object) => {
                            warp::reply::with_status(warp::reply::json(&object), StatusCode::OK)
                        }
                        None => warp::reply::with_status(
                            warp::reply::json(&serde_json::json!({
                            "kind": "Status", "apiVersion": "v1", "metadata": {},
                            "status": "Failure", "reason": "NotFound", "code": 404,
                            "message": "not found"})),
                            StatusCode::NOT_FOUND,
                        ),
                    }
                },
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(warp::serve(route).incoming(listener).run());
        format!("http://{address}")
    }

    const NS: &str = "pod-univ-y";
    const UID: &str = "9a1c5e2e-0d7b-4f0e-9d43-0f6f7b2a1c11";

    fn task(name: &str, phase: &str, launches: u32) -> TranscriptionTask {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "runner.esup-portail.org/v1alpha1",
            "kind": "TranscriptionTask",
            "metadata": {"name": name, "namespace": NS, "uid": UID, "resourceVersion": "42"},
            "spec": {
                "source": {"url": "https://pod.univ.example/a.mp3"},
                "language": "en",
                "requester": {"tenant": "univ-y", "etabName": "Université Y", "appName": "Esup-Pod"}
            },
            "status": {"phase": phase, "launches": launches}
        }))
        .unwrap()
    }

    /// An App on the loopback API server, knowing `tasks`, with a callback Secret for each of
    /// their launches (token `<launch>.secret<launch>`).
    async fn app(results: &std::path::Path, tasks: &[TranscriptionTask]) -> (App, Arc<ApiServer>) {
        let api = Arc::new(ApiServer::default());
        for t in tasks {
            let model = AnyTask::Transcription(Arc::new(t.clone()));
            let identity = model.identity().unwrap();
            let launches = t.status.as_ref().unwrap().launches;
            let mut objects = api.objects.lock().unwrap();
            for launch in 1..=launches {
                let name = identity.callback_secret_name(launch);
                let token = esup_api::runner::callback_token(launch, &format!("secret{launch}"));
                objects.insert(
                    format!("/api/v1/namespaces/{NS}/secrets/{name}"),
                    serde_json::json!({"apiVersion": "v1", "kind": "Secret",
                        "metadata": {"name": name, "namespace": NS},
                        "data": {"token": base64_of(&token)}}),
                );
            }
            let name = t.metadata.name.clone().unwrap();
            objects.insert(
                format!("/apis/runner.esup-portail.org/v1alpha1/namespaces/{NS}/transcriptiontasks/{name}"),
                serde_json::to_value(t).unwrap(),
            );
        }
        let base = serve(api.clone()).await;
        let client = kube::Client::try_from(kube::Config::new(base.parse().unwrap())).unwrap();
        let (pools, _writer) = kube::runtime::reflector::store();
        let tasks_cache = crate::tasks::Tasks::start(client);
        for t in tasks {
            tasks_cache.remember(AnyTask::Transcription(Arc::new(t.clone())));
        }
        let app = App {
            tasks: tasks_cache,
            tokens: Arc::default(),
            policy: crate::url_policy::UrlPolicy::default(),
            dedup: crate::dedup::Dedup::new(),
            pools,
            store: crate::store::ResultStore::new(&crate::store::StoreConfig::Filesystem {
                root: results.to_owned(),
            })
            .unwrap(),
            callback_tokens: crate::callback_tokens::CallbackTokens::default(),
        };
        (app, api)
    }

    fn base64_of(s: &str) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in s.as_bytes().chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    fn body(
        content: &'static [u8],
    ) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Unpin + Send {
        futures::stream::iter([Ok(Bytes::from_static(content))])
    }

    async fn read(app: &App, at: Attempt<'_>, path: &str) -> Vec<u8> {
        use futures::TryStreamExt;
        let (_, s) = app.store.get(at, path, None).await.unwrap().unwrap();
        let chunks: Vec<Bytes> = s.try_collect().await.unwrap();
        chunks.concat()
    }

    async fn call(app: &App, name: &str, token: &str) -> Result<Authorized, ApiError> {
        authorize(
            app,
            "transcriptiontasks",
            NS,
            name,
            Some(&format!("Bearer {token}")),
        )
        .await
    }

    #[tokio::test]
    async fn a_runner_from_before_per_launch_tokens_delivers_as_the_current_launch() {
        // Upgraded while it ran: its token is the task's one legacy token, with no launch.
        let results = tempfile::tempdir().unwrap();
        let running = task("t-legacy", "Running", 2);
        let (app, api) = app(results.path(), std::slice::from_ref(&running)).await;
        let model = AnyTask::Transcription(Arc::new(running.clone()));
        let identity = model.identity().unwrap();
        let legacy = identity.legacy_callback_secret_name();
        assert!(
            !legacy.ends_with("cb1") && !legacy.ends_with("cb2"),
            "{legacy}"
        );
        let unknown = call(&app, "t-legacy", "0123abcd").await.err().unwrap();
        assert_eq!(unknown.status, StatusCode::UNAUTHORIZED, "no legacy Secret");
        api.objects.lock().unwrap().insert(
            format!("/api/v1/namespaces/{NS}/secrets/{legacy}"),
            serde_json::json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": legacy, "namespace": NS},
                "data": {"token": base64_of("0123abcd")}}),
        );
        let authorized = call(&app, "t-legacy", "0123abcd").await.unwrap();
        assert_eq!(authorized.launch, 2, "fenced as the current launch");
        let wrong = call(&app, "t-legacy", "wrong").await.err().unwrap();
        assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn an_older_launch_gets_409_and_never_replaces_the_current_files() {
        let results = tempfile::tempdir().unwrap();
        let (app, _api) = app(
            results.path(),
            &[
                task("t-running", "Running", 2),
                task("t-done", "Succeeded", 2),
            ],
        )
        .await;
        let current = call(&app, "t-running", "2.secret2").await.unwrap();
        assert_eq!(current.launch, 2);
        upload(&app, &current, "a.vtt", body(b"launch 2"))
            .await
            .unwrap();

        // Launch 1's runner is still around, with its own (valid) token.
        let old = call(&app, "t-running", "1.secret1").await.unwrap();
        let stale = upload(&app, &old, "a.vtt", body(b"launch 1, late"))
            .await
            .unwrap_err();
        assert_eq!(stale.status, StatusCode::CONFLICT);
        assert_eq!(stale.category, "LaunchSuperseded");
        assert!(
            stale.detail.contains("superseded by launch 2"),
            "{}",
            stale.detail
        );
        assert_eq!(
            read(&app, Attempt::launch(UID, 2), "a.vtt").await,
            b"launch 2"
        );
        assert!(
            app.store
                .head(Attempt::launch(UID, 1), "a.vtt")
                .await
                .unwrap()
                .is_none()
        );

        // A launch cannot be claimed with another launch's secret, nor without a launch.
        for forged in ["2.secret1", "1.secret2", "secret2"] {
            let refused = call(&app, "t-running", forged).await.unwrap_err();
            assert!(
                matches!(
                    refused.status,
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
                ),
                "{forged}: {}",
                refused.status
            );
        }
        let progress = br#"{"stage": "encode", "percent": 50}"#;
        let stale = super::progress(&app, &old, progress).await.unwrap_err();
        assert_eq!(stale.status, StatusCode::CONFLICT);
        // Once the task has ended, even its latest launch is refused.
        let last = call(&app, "t-done", "2.secret2").await.unwrap();
        let ended = upload(&app, &last, "a.vtt", body(b"after the end"))
            .await
            .unwrap_err();
        assert_eq!(ended.status, StatusCode::CONFLICT);
        assert_eq!(ended.category, "TaskEnded");
    }

    #[tokio::test]
    async fn completion_records_the_stored_hashes_and_keeps_the_log_out_of_the_status() {
        let results = tempfile::tempdir().unwrap();
        let (app, api) = app(results.path(), &[task("t-running", "Running", 2)]).await;
        let auth = call(&app, "t-running", "2.secret2").await.unwrap();
        upload(&app, &auth, "a.vtt", body(b"WEBVTT stored"))
            .await
            .unwrap();

        // The runner claims another file's hash (same size).
        let lying = serde_json::json!({"status": "completed", "error_message": null,
            "script_output": "[info_script.log]\nété",
            "files": [{"path": "a.vtt", "sha256": sha(b"WEBVTT forged"), "size_bytes": 13}]});
        completion(&app, &auth, lying.to_string().as_bytes())
            .await
            .unwrap();
        let patch = api.patches.lock().unwrap().pop().unwrap();
        let result = &patch["status"]["result"];
        assert_eq!(result["outcome"], "Failed", "{patch}");
        assert!(
            result["errorMessage"]
                .as_str()
                .unwrap()
                .contains(&sha(b"WEBVTT stored"))
        );
        assert!(result.get("files").is_none(), "{patch}");
        assert_eq!(patch["metadata"]["resourceVersion"], "42");

        // Honest: the manifest's hash is the stored bytes'; the log lives in the store.
        let honest = serde_json::json!({"status": "completed", "error_message": null,
            "script_output": "[info_script.log]\nété",
            "files": [{"path": "a.vtt", "sha256": sha(b"WEBVTT stored"), "size_bytes": 13}]});
        completion(&app, &auth, honest.to_string().as_bytes())
            .await
            .unwrap();
        let patch = api.patches.lock().unwrap().pop().unwrap();
        let result = &patch["status"]["result"];
        assert_eq!(result["outcome"], "Completed", "{patch}");
        assert_eq!(result["files"][0]["sha256"], sha(b"WEBVTT stored"));
        assert_eq!(result["launch"], 2);
        assert!(result.get("scriptOutput").is_none(), "{patch}");
        assert_eq!(
            result["scriptOutputRef"]["key"],
            format!("{UID}/2/script_output")
        );
        assert_eq!(
            app.store.script_output(UID, 2).await.unwrap().as_deref(),
            Some("[info_script.log]\nété")
        );

        // Launch 1's completion is fenced on the task as the API server has it.
        let old = call(&app, "t-running", "1.secret1").await.unwrap();
        let stale = completion(&app, &old, honest.to_string().as_bytes())
            .await
            .unwrap_err();
        assert_eq!(stale.status, StatusCode::CONFLICT);
        // Once the task ended on launch 2's result, its repeat is acknowledged and writes
        // nothing; launch 1 still gets a 409.
        let path = format!(
            "/apis/runner.esup-portail.org/v1alpha1/namespaces/{NS}/transcriptiontasks/t-running"
        );
        {
            let mut objects = api.objects.lock().unwrap();
            let object = objects.get_mut(&path).unwrap();
            object["status"]["phase"] = "Succeeded".into();
            object["status"]["result"] = result.clone();
        }
        completion(&app, &auth, honest.to_string().as_bytes())
            .await
            .unwrap();
        assert!(api.patches.lock().unwrap().is_empty());
        let ended = completion(&app, &old, honest.to_string().as_bytes())
            .await
            .unwrap_err();
        assert_eq!(ended.category, "TaskEnded");
    }

    #[tokio::test]
    async fn callback_tokens_are_read_once_per_ttl_and_again_when_they_differ() {
        use std::sync::atomic::Ordering;
        let results = tempfile::tempdir().unwrap();
        let running = task("t-cached", "Running", 1);
        let (app, api) = app(results.path(), std::slice::from_ref(&running)).await;
        for _ in 0..5 {
            call(&app, "t-cached", "1.secret1").await.unwrap();
        }
        assert_eq!(
            api.secret_reads.load(Ordering::Relaxed),
            1,
            "one read per TTL"
        );
        // A token that differs from the cached one is checked against the Secret read again:
        // a replaced Secret's new token is accepted at once, the old one refused from then on.
        let model = AnyTask::Transcription(Arc::new(running));
        let name = model.identity().unwrap().callback_secret_name(1);
        let replaced = esup_api::runner::callback_token(1, "rotated");
        api.objects.lock().unwrap().insert(
            format!("/api/v1/namespaces/{NS}/secrets/{name}"),
            serde_json::json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": name, "namespace": NS},
                "data": {"token": base64_of(&replaced)}}),
        );
        call(&app, "t-cached", &replaced).await.unwrap();
        assert_eq!(api.secret_reads.load(Ordering::Relaxed), 2);
        let old = call(&app, "t-cached", "1.secret1").await.unwrap_err();
        assert_eq!(old.status, StatusCode::FORBIDDEN);
        // Deleted: refused once the cached copy is read again (at the latest after the TTL).
        api.objects.lock().unwrap().clear();
        let deleted = call(&app, "t-cached", "1.wrong").await.unwrap_err();
        assert_eq!(deleted.status, StatusCode::UNAUTHORIZED);
        let gone = call(&app, "t-cached", &replaced).await.unwrap_err();
        assert_eq!(
            gone.status,
            StatusCode::UNAUTHORIZED,
            "not kept once missing"
        );
    }
}
