//! Esup-Pod's side of the API: the reference manager's endpoints, status codes and bodies
//! (protocol §1), the result files included (`download`). Every handler receives the caller
//! its tenant token authenticated (`authenticate`, applied by the routes' filters), and a
//! tenant sees only the tasks in its own namespace. I/O: the task cache, the API server, the
//! result store; `execute` (its own module) submits tasks.

use std::sync::RwLock;

use esup_api::TaskPhase;
use esup_api::labels;
use esup_api::wire::{
    HealthBody, ManagerStatus, Manifest, ManifestEntry, VersionBody, VersionInfo, manager_timestamp,
};
use k8s_openapi::jiff::Timestamp;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};

use crate::error::ApiError;
use crate::state::App;
use crate::store::Attempt;
use crate::tasks::{self, AnyTask};
use crate::tenants::{Caller, TokenTable};

mod execute;
pub use execute::{Accepted, execute};

/// Authenticates a request: `X-API-Token` wins over `Authorization: Bearer` (§1.1).
pub fn authenticate(
    tokens: &RwLock<TokenTable>,
    x_api_token: Option<&str>,
    authorization: Option<&str>,
) -> Result<Caller, ApiError> {
    let presented = x_api_token
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .or_else(|| {
            authorization
                .and_then(|h| {
                    h.strip_prefix("Bearer ")
                        .or_else(|| h.strip_prefix("bearer "))
                })
                .map(str::trim)
                .filter(|t| !t.is_empty())
        })
        .ok_or_else(ApiError::missing_token)?;
    let table = tokens
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    table
        .authenticate(presented)
        .cloned()
        .ok_or_else(ApiError::invalid_token)
}

pub(crate) fn json<T: serde::Serialize>(status: StatusCode, body: &T) -> Response {
    warp::reply::with_status(warp::reply::json(body), status).into_response()
}

fn own_task(app: &App, caller: &Caller, task_id: &str) -> Result<AnyTask, ApiError> {
    app.tasks
        .find(&caller.tenant.namespace, task_id)
        .filter(|t| t.tenant() == caller.tenant.name)
        .ok_or_else(ApiError::not_found)
}

/// `GET /task/status/{id}` (§1.3).
pub async fn status(app: &App, caller: &Caller, task_id: &str) -> Result<Response, ApiError> {
    let task = own_task(app, caller, task_id)?;
    let mut body = tasks::to_manager_task(&task);
    // Kept in the result store, not in the task (see `status.result.scriptOutputRef`).
    body.script_output = script_output(app, &task).await?;
    Ok(json(StatusCode::OK, &body))
}

/// A task whose results may be served, or the reference manager's refusal (§1.4).
pub fn finished_task(app: &App, caller: &Caller, task_id: &str) -> Result<AnyTask, ApiError> {
    let task = own_task(app, caller, task_id)?;
    let status = task.manager_status();
    if status == ManagerStatus::Failed {
        let error = tasks::to_manager_task(&task).error.unwrap_or_default();
        return Err(ApiError::bad_request(
            "TaskFailed",
            format!("Task failed: {error}"),
        ));
    }
    if !status.has_result() {
        return Err(ApiError::new(
            StatusCode::TOO_EARLY,
            "TaskNotCompleted",
            format!("Task not completed. Status: {}", status.as_str()),
        ));
    }
    Ok(task)
}

/// Field manager of `status.resultFetchTime`.
pub const FETCH_MANAGER: &str = "esup-webhook-fetch";

/// Records that the result (manifest or a file) was fetched while the task showed `warning`:
/// the reference manager then shows it `completed` (`mark_warning_as_completed`), while its
/// notify retries go on. Best effort: the fetch is served whatever happens here.
pub async fn record_result_fetch(app: &App, task: &AnyTask) {
    if task.manager_status() != ManagerStatus::Warning {
        return;
    }
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now());
    let status = serde_json::json!({ "resultFetchTime": now });
    if let Err(e) = app
        .tasks
        .apply_status(task, FETCH_MANAGER, None, status)
        .await
    {
        tracing::warn!(task = %task.name(), error = %e.detail, "cannot record the result fetch; the task still shows warning");
    }
}

/// `GET /task/result/{id}`: the manifest, with each file's sha256 (§1.4).
pub async fn result(app: &App, caller: &Caller, task_id: &str) -> Result<Response, ApiError> {
    let task = finished_task(app, caller, task_id)?;
    record_result_fetch(app, &task).await;
    let files: Vec<ManifestEntry> = task
        .status()
        .and_then(|s| s.result.as_ref())
        .map(|r| {
            r.files
                .iter()
                .map(|f| ManifestEntry::new(f.path.clone(), Some(f.sha256.clone())))
                .collect()
        })
        .unwrap_or_default();
    let manifest = Manifest {
        task_id: task_id.to_owned(),
        files,
    };
    let mut response = json(StatusCode::OK, &manifest);
    if let Ok(value) = warp::http::HeaderValue::from_str(task_id) {
        response.headers_mut().insert("x-task-id", value);
    }
    Ok(response)
}

/// `GET /task/result/{id}/file/{path}` for Esup-Pod (§1.5): streamed, with ranges.
pub async fn download(
    app: &App,
    caller: &Caller,
    task_id: &str,
    raw_path: &str,
    range: Option<&str>,
) -> Result<Response, ApiError> {
    let path = percent_encoding::percent_decode_str(raw_path)
        .decode_utf8()
        .map_err(|_| ApiError::bad_request("InvalidPath", "Invalid result file path"))?;
    esup_api::runner::safe_result_path(&path)
        .map_err(|_| ApiError::bad_request("InvalidPath", "Invalid result file path"))?;
    let task = finished_task(app, caller, task_id)?;
    let at = served_attempt(&task);
    let missing = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "FileNotFound",
            "Result file not found",
        )
    };
    let size = app
        .store
        .head(at, &path)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(missing)?;
    record_result_fetch(app, &task).await;
    let request = crate::range::parse_range(range, size);
    let wanted = match &request {
        crate::range::RangeRequest::Partial(r) => Some(r.clone()),
        _ => None,
    };
    if matches!(request, crate::range::RangeRequest::Unsatisfiable) {
        return Ok(crate::range::file_response(
            task_id,
            &path,
            size,
            &request,
            Box::pin(futures::stream::empty()),
        ));
    }
    let (total, body) = app
        .store
        .get(at, &path, wanted)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(missing)?;
    Ok(crate::range::file_response(
        task_id, &path, total, &request, body,
    ))
}

/// Which files of a finished task are served: those of the launch that reported the result.
pub fn served_attempt(task: &AnyTask) -> Attempt<'_> {
    match task
        .status()
        .and_then(|s| s.result.as_ref())
        .and_then(|r| r.launch)
    {
        Some(launch) => Attempt::launch(task.uid(), launch),
        None => Attempt::legacy(task.uid()),
    }
}

/// `GET /manager/health` and `GET /api/health` (§1.6).
pub fn health(app: &App) -> Response {
    let body = HealthBody::healthy(
        manager_timestamp(Timestamp::now()),
        app.pools.state().len() as u64,
        app.tasks.count() as u64,
    );
    json(StatusCode::OK, &body)
}

/// `GET /api/version` (§1.8).
pub fn version() -> Response {
    let version = env!("CARGO_PKG_VERSION");
    let body = VersionBody {
        version: version.to_owned(),
        version_info: VersionInfo::parse(version).unwrap_or(VersionInfo {
            major: 0,
            minor: 0,
            patch: 0,
        }),
        description: "esup-runner-operator: Esup-Pod's runner manager on Kubernetes".to_owned(),
        author: "esup-runner-operator contributors".to_owned(),
        email: String::new(),
        license: "Apache-2.0".to_owned(),
    };
    json(StatusCode::OK, &body)
}

/// `GET /task/list`: the caller's tasks by id (§1.8), without their script output (read
/// it per task from `/task/result/{id}`). The body is written one task at a time from the
/// cache's shared objects, so a tenant with thousands of retained tasks costs one task's
/// JSON of memory, not the whole answer.
pub fn list(app: &App, caller: &Caller) -> Response {
    let mut own = app.tasks.in_namespace(&caller.tenant.namespace);
    own.retain(|t| t.tenant() == caller.tenant.name);
    own.sort_by(|a, b| a.name().cmp(b.name()));
    let mut response = warp::reply::stream(list_body(own)).into_response();
    response.headers_mut().insert(
        warp::http::header::CONTENT_TYPE,
        warp::http::HeaderValue::from_static("application/json"),
    );
    response
}

/// The `/task/list` JSON object, as one chunk per task (`{`, `"id": {...}`, `,"id": {...}`,
/// ..., `}`), serialised as the stream is read.
pub fn list_body(
    tasks: Vec<AnyTask>,
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::convert::Infallible>> + Send + Sync {
    let mut first = true;
    let entries = tasks.into_iter().filter_map(move |task| {
        let mut entry = tasks::to_manager_task(&task);
        entry.script_output = None;
        // A task id and a ManagerTask always serialise; an error would only drop the entry.
        let key = serde_json::to_string(task.name()).ok()?;
        let value = serde_json::to_string(&entry).ok()?;
        let separator = if std::mem::take(&mut first) { "" } else { "," };
        Some(Ok(bytes::Bytes::from(format!("{separator}{key}:{value}"))))
    });
    let open = std::iter::once(Ok(bytes::Bytes::from_static(b"{")));
    let close = std::iter::once(Ok(bytes::Bytes::from_static(b"}")));
    futures::stream::iter(open.chain(entries).chain(close))
}

/// `GET /api/tasks` (§1.8).
pub fn api_tasks(app: &App, caller: &Caller) -> Response {
    let tasks: Vec<serde_json::Value> = app
        .tasks
        .in_namespace(&caller.tenant.namespace)
        .iter()
        .filter(|t| t.tenant() == caller.tenant.name)
        .map(|t| {
            serde_json::json!({
                "id": t.name(),
                "runner_id": t.status().and_then(|s| s.pool.clone()),
                "status": t.manager_status(),
            })
        })
        .collect();
    json(StatusCode::OK, &serde_json::json!({"tasks": tasks}))
}

/// `GET /api/runners`: our RunnerPools stand for the reference manager's runners (§1.8).
pub fn api_runners(app: &App) -> Response {
    let now = Timestamp::now();
    let runners: Vec<serde_json::Value> = app
        .pools
        .state()
        .iter()
        .map(|pool| {
            let ready = pool
                .status
                .as_ref()
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == esup_api::conditions::pool::READY))
                .is_some_and(|c| c.status == "True");
            serde_json::json!({
                "id": pool.metadata.name,
                "url": "",
                "status": if ready { "online" } else { "offline" },
                "last_heartbeat": now.strftime("%Y-%m-%d %H:%M:%S").to_string(),
                "age_seconds": 0,
                "task_types": pool.spec.task_types.iter().map(|t| t.protocol_name()).collect::<Vec<_>>(),
                "slots": pool.status.as_ref().map_or(0, |s| s.slots),
                "running": pool.status.as_ref().map_or(0, |s| s.running),
                "queued": pool.status.as_ref().map_or(0, |s| s.queued),
            })
        })
        .collect();
    json(StatusCode::OK, &serde_json::json!({"runners": runners}))
}

/// `POST /task/stop/{id}`: asks the operator to cancel the task (§1.8). The answer comes
/// before the runner stops; the task then ends `failed` with "Cancelled by user." and Esup-Pod
/// is notified.
pub async fn stop(app: &App, caller: &Caller, task_id: &str) -> Result<Response, ApiError> {
    let task = own_task(app, caller, task_id)?;
    if task.phase().is_terminal() {
        return Ok(json(
            StatusCode::OK,
            &serde_json::json!({"task_id": task_id, "status": "already_terminal"}),
        ));
    }
    let patch = serde_json::json!({"metadata": {"annotations": {labels::STOP_ANNOTATION: manager_timestamp(Timestamp::now())}}});
    let params = kube::api::PatchParams::default();
    let namespace = task.namespace();
    let result = esup_kube_common::tasks::api(app.tasks.client().clone(), task.kind(), namespace)
        .patch(task_id, &params, &kube::api::Patch::Merge(&patch))
        .await
        .map(|_| ());
    result.map_err(|e| {
        ApiError::unavailable(
            "ApiServerUnavailable",
            format!("cannot request the stop: {e}"),
        )
    })?;
    let runner = task.status().and_then(|s| s.pool.clone());
    let running = matches!(task.phase(), TaskPhase::Admitted | TaskPhase::Running);
    Ok(json(
        StatusCode::ACCEPTED,
        &serde_json::json!({"task_id": task_id, "status": "stop_requested", "runner_id": runner, "runner_status_code": if running { 202 } else { 200 }}),
    ))
}

/// Esup-Pod's `script_output` of a task: from the result store; for results recorded before it
/// moved there, inline in the task as the API server has it (the caches drop it).
async fn script_output(app: &App, task: &AnyTask) -> Result<Option<String>, ApiError> {
    let Some(result) = task.status().and_then(|s| s.result.as_ref()) else {
        return Ok(None);
    };
    if let Some(launch) = result.stored_script_output_launch() {
        return app
            .store
            .script_output(task.uid(), launch)
            .await
            .map_err(ApiError::from);
    }
    // A result of this version without a reference: the runner sent no output.
    if result.script_output_ref.is_some() || result.launch.is_some() {
        return Ok(None);
    }
    if result.script_output.is_some() {
        return Ok(result.script_output.clone());
    }
    // A result recorded before the change may hold the text inline, which the cache dropped.
    // Rare: tasks finished before the upgrade, within their retention.
    Ok(app
        .tasks
        .fresh(task)
        .await?
        .status()
        .and_then(|s| s.result.as_ref())
        .and_then(|r| r.script_output.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenants::TenantSecret;

    /// A retained, completed task whose result carries 64 KiB of script output inline, as
    /// results recorded before the output moved to the result store do.
    fn retained_task(i: usize) -> AnyTask {
        let task: esup_api::EncodingTask = serde_json::from_value(serde_json::json!({
            "apiVersion": "runner.esup-portail.org/v1alpha1", "kind": "EncodingTask",
            "metadata": {"name": format!("00000000-0000-4000-8000-{i:012}"), "namespace": "ns",
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"source": {"url": "https://pod.example/v.mp4"},
                     "requester": {"tenant": "univ-x", "etabName": "Univ", "appName": "Esup-Pod"}},
            "status": {"phase": "Succeeded", "result": {
                "outcome": "Completed", "reportTime": "2026-01-01T01:00:00Z",
                "scriptOutput": "x".repeat(65_536)}},
        }))
        .unwrap();
        AnyTask::Encoding(std::sync::Arc::new(task))
    }

    #[tokio::test]
    async fn the_task_list_is_streamed_per_task_without_script_output() {
        use futures::StreamExt;
        const TASKS: usize = 3_000;
        let chunks: Vec<bytes::Bytes> = list_body((0..TASKS).map(retained_task).collect())
            .map(|c| c.unwrap())
            .collect()
            .await;
        let largest = chunks.iter().map(bytes::Bytes::len).max().unwrap();
        let total: usize = chunks.iter().map(bytes::Bytes::len).sum();
        // Built whole with the output, this answer was over 3,000 × 64 KiB = 196 MB.
        assert!(largest < 4096, "one chunk per task: {largest} bytes");
        assert!(total < TASKS * 2048, "{total} bytes for {TASKS} tasks");
        let body: Vec<u8> = chunks.concat();
        let listed: std::collections::BTreeMap<String, serde_json::Value> =
            serde_json::from_slice(&body).unwrap();
        assert_eq!(listed.len(), TASKS);
        let first = &listed["00000000-0000-4000-8000-000000000000"];
        assert_eq!(first["status"], "completed");
        assert!(first["script_output"].is_null());
        assert!(first.get("client_token").is_none());
        let empty: Vec<u8> = list_body(Vec::new())
            .map(|c| c.unwrap())
            .collect::<Vec<_>>()
            .await
            .concat();
        assert_eq!(empty, b"{}");
    }

    fn table() -> RwLock<TokenTable> {
        let secret = TenantSecret {
            name: "t".into(),
            namespace: "esup-system".into(),
            tenant: "univ-x".into(),
            data: [("token".to_owned(), "T0K".to_owned())].into(),
        };
        RwLock::new(TokenTable::build(&[secret]).0)
    }

    #[tokio::test]
    async fn dressing_urls_pass_the_url_policy() {
        let results = tempfile::tempdir().unwrap();
        let app = crate::state::offline_app(
            results.path(),
            &[("univ-x", "T0K")],
            crate::url_policy::UrlPolicy::default(),
        );
        let caller = authenticate(&app.tokens, Some("T0K"), None).unwrap();
        let request = |dressing: serde_json::Value| {
            serde_json::json!({
                "etab_name": "Univ X / Pod",
                "app_name": "Esup-Pod",
                "task_type": "encoding",
                "source_url": "https://93.184.216.34/media/cours.mp4",
                "notify_url": "",
                "parameters": {"dressing": dressing.to_string()},
            })
            .to_string()
        };
        let cases = [
            (
                serde_json::json!({"watermark": "http://169.254.169.254/latest/meta-data/logo.png"}),
                "dressing.watermark resolves to a private/loopback/link-local address",
            ),
            (
                serde_json::json!({"opening_credits_video": "http://[64:ff9b::a9fe:a9fe]/intro.mp4"}),
                "dressing.opening_credits_video resolves to a private/loopback/link-local address",
            ),
            (
                serde_json::json!({"ending_credits_video": "http://localhost:8080/outro.mp4"}),
                "dressing.ending_credits_video host not allowed",
            ),
        ];
        for (dressing, detail) in cases {
            let response = match execute(&app, caller.clone(), request(dressing).as_bytes()).await {
                Ok(accepted) => accepted.response,
                Err(e) => e.into_response(),
            };
            assert_eq!(
                response.status(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "{detail}"
            );
            use http_body_util::BodyExt;
            let body = response.into_body().collect().await.unwrap().to_bytes();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body, serde_json::json!({"detail": detail}));
        }
    }

    #[test]
    fn x_api_token_wins_over_bearer() {
        let tokens = table();
        let table = [
            (None, None, Err("MissingToken")),
            (None, Some("Bearer T0K"), Ok("univ-x")),
            (None, Some("bearer T0K"), Ok("univ-x")),
            (None, Some("Basic T0K"), Err("MissingToken")),
            (Some("T0K"), Some("Bearer wrong"), Ok("univ-x")),
            (Some("wrong"), Some("Bearer T0K"), Err("InvalidToken")),
            (None, Some("Bearer wrong"), Err("InvalidToken")),
            (Some(""), Some("Bearer T0K"), Ok("univ-x")),
        ];
        for (x, auth, expected) in table {
            let got = authenticate(&tokens, x, auth)
                .map(|c| c.tenant.name)
                .map_err(|e| e.category);
            assert_eq!(
                got.as_ref().map(String::as_str).map_err(|e| *e),
                expected,
                "{x:?} {auth:?}"
            );
        }
    }
}
