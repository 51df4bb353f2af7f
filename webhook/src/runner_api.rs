//! The runners' side of the API, under `/runner/v1/<encodingtasks|transcriptiontasks>/<ns>/<name>/`:
//! progress reports, result uploads and the completion. Each call carries the task's own
//! callback token (a Secret the operator created for it), so a runner can only write to its
//! task, and runners in another cluster can deliver over plain HTTP.

use bytes::Bytes;
use esup_api::runner::{Completion, ProgressReport};
use esup_api::status::TaskResult;
use esup_api::{EncodingTask, TranscriptionTask};
use futures::Stream;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use warp::http::StatusCode;
use warp::reply::{Reply, Response};

use crate::error::ApiError;
use crate::manager_api::App;
use crate::tasks::AnyTask;

/// Field managers of the status parts the webhook writes. Each part has its own, because a
/// server-side apply removes the fields its manager applied before and leaves out now.
pub const PROGRESS_MANAGER: &str = "esup-webhook-progress";
pub const RESULT_MANAGER: &str = "esup-webhook-result";

/// Largest output file accepted (a long 1080p MP4 is a few GiB).
pub const MAX_UPLOAD_BYTES: u64 = 64 * 1024 * 1024 * 1024;
/// Part of the runner's output kept for Esup-Pod (the status field's bound).
pub const SCRIPT_OUTPUT_TAIL: usize = 65_536;

/// Finds the task and checks the caller's bearer against its callback token.
pub async fn authorize(
    app: &App,
    plural: &str,
    namespace: &str,
    name: &str,
    authorization: Option<&str>,
) -> Result<AnyTask, ApiError> {
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
    let model = match &task {
        AnyTask::Encoding(t) => esup_operator::model::Task::from_encoding(t),
        AnyTask::Transcription(t) => esup_operator::model::Task::from_transcription(t),
    }
    .ok_or_else(ApiError::not_found)?;
    let secret_name = esup_operator::job::callback_secret_name(&model);
    let secrets: Api<Secret> = Api::namespaced(app.tasks.client().clone(), namespace);
    let secret = secrets
        .get_opt(&secret_name)
        .await
        .map_err(|e| {
            ApiError::unavailable(
                "ApiServerUnavailable",
                format!("cannot read the task's callback token: {e}"),
            )
        })?
        .ok_or_else(ApiError::invalid_token)?;
    let expected = secret
        .data
        .as_ref()
        .and_then(|d| d.get(esup_operator::job::CALLBACK_TOKEN_KEY))
        .map(|v| v.0.clone())
        .ok_or_else(ApiError::invalid_token)?;
    if !crate::tenants::tokens_match(&expected, presented.as_bytes()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "WrongCallbackToken",
            "Token not authorized for this task",
        ));
    }
    Ok(task)
}

async fn apply_status(
    app: &App,
    task: &AnyTask,
    manager: &str,
    status: serde_json::Value,
) -> Result<(), ApiError> {
    let (kind, client) = (
        match task {
            AnyTask::Encoding(_) => "EncodingTask",
            AnyTask::Transcription(_) => "TranscriptionTask",
        },
        app.tasks.client().clone(),
    );
    let body = serde_json::json!({
        "apiVersion": format!("{}/{}", esup_api::GROUP, esup_api::VERSION),
        "kind": kind,
        "metadata": {"name": task.name(), "namespace": task.namespace()},
        "status": status,
    });
    let params = PatchParams::apply(manager).force();
    let result = match task {
        AnyTask::Encoding(_) => Api::<EncodingTask>::namespaced(client, task.namespace())
            .patch_status(task.name(), &params, &Patch::Apply(&body))
            .await
            .map(|_| ()),
        AnyTask::Transcription(_) => Api::<TranscriptionTask>::namespaced(client, task.namespace())
            .patch_status(task.name(), &params, &Patch::Apply(&body))
            .await
            .map(|_| ()),
    };
    result.map_err(|e| match e {
        kube::Error::Api(s) if s.code == 422 => ApiError::bad_request("InvalidReport", s.message),
        other => ApiError::unavailable(
            "ApiServerUnavailable",
            format!("cannot record it on the task: {other}"),
        ),
    })
}

/// `POST …/progress`.
pub async fn progress(app: &App, task: &AnyTask, body: &[u8]) -> Result<Response, ApiError> {
    let report: ProgressReport = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request("InvalidReport", format!("not a progress report: {e}"))
    })?;
    let progress = report.to_progress(Time(Timestamp::now()));
    apply_status(
        app,
        task,
        PROGRESS_MANAGER,
        serde_json::json!({"progress": progress}),
    )
    .await?;
    Ok(warp::reply::json(&serde_json::json!({"status": "ok"})).into_response())
}

/// `PUT …/files/<path>`: one output file, streamed into the result store.
pub async fn upload<S, E>(
    app: &App,
    task: &AnyTask,
    path: &str,
    body: S,
) -> Result<Response, ApiError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if task.phase().is_terminal() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "TaskEnded",
            "the task has ended; its results are final",
        ));
    }
    let stored = app
        .store
        .put(task.uid(), path, body, MAX_UPLOAD_BYTES)
        .await
        .map_err(store_error)?;
    Ok(warp::reply::json(&stored.clone().entry(path)).into_response())
}

/// `POST …/completion`: the outcome and the manifest. Every file it names must have been
/// uploaded with that size; the sha256 is the runner's, which Esup-Pod checks on download.
pub async fn completion(app: &App, task: &AnyTask, body: &[u8]) -> Result<Response, ApiError> {
    let completion: Completion = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("InvalidReport", format!("not a completion: {e}")))?;
    for file in &completion.files {
        file.validate()
            .map_err(|e| ApiError::bad_request("InvalidManifest", e.to_string()))?;
        match app
            .store
            .head(task.uid(), &file.path)
            .await
            .map_err(store_error)?
        {
            Some(size) if size == file.size_bytes => {}
            Some(size) => {
                return Err(ApiError::bad_request(
                    "InvalidManifest",
                    format!(
                        "{}: {size} bytes stored, {} declared",
                        file.path, file.size_bytes
                    ),
                ));
            }
            None => {
                return Err(ApiError::bad_request(
                    "InvalidManifest",
                    format!("{} was not uploaded", file.path),
                ));
            }
        }
    }
    let script_output = completion
        .script_output
        .map(|s| tail(&s, SCRIPT_OUTPUT_TAIL).to_owned());
    let result = TaskResult {
        outcome: completion.status.into(),
        error_message: completion.error_message.map(|m| tail(&m, 4096).to_owned()),
        files: completion.files.into_iter().map(Into::into).collect(),
        hardware: completion.hardware,
        script_output,
        report_time: Time(Timestamp::now()),
    };
    apply_status(
        app,
        task,
        RESULT_MANAGER,
        serde_json::json!({"result": result}),
    )
    .await?;
    tracing::info!(task = %task.name(), outcome = ?result.outcome, files = result.files.len(), "runner completed");
    Ok(warp::reply::json(&serde_json::json!({"status": "acknowledged"})).into_response())
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

fn store_error(e: crate::store::StoreError) -> ApiError {
    let category = e.category();
    match e {
        crate::store::StoreError::InvalidPath(_) | crate::store::StoreError::InvalidTaskId(_) => {
            ApiError::bad_request(category, "Invalid result file path")
        }
        crate::store::StoreError::TooLarge { .. } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, category, e.to_string())
        }
        other => ApiError::unavailable(category, other.to_string()),
    }
}

/// `GET /task/result/{id}/file/{path}` for Esup-Pod (§1.5): streamed, with ranges.
pub async fn download(
    app: &App,
    caller: &crate::tenants::Caller,
    task_id: &str,
    raw_path: &str,
    range: Option<&str>,
) -> Result<Response, ApiError> {
    let path = percent_encoding::percent_decode_str(raw_path)
        .decode_utf8()
        .map_err(|_| ApiError::bad_request("InvalidPath", "Invalid result file path"))?;
    esup_api::runner::safe_result_path(&path)
        .map_err(|_| ApiError::bad_request("InvalidPath", "Invalid result file path"))?;
    let task = crate::manager_api::finished_task(app, caller, task_id)?;
    let missing = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "FileNotFound",
            "Result file not found",
        )
    };
    let size = app
        .store
        .head(task.uid(), &path)
        .await
        .map_err(store_error)?
        .ok_or_else(missing)?;
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
        .get(task.uid(), &path, wanted)
        .await
        .map_err(store_error)?
        .ok_or_else(missing)?;
    Ok(crate::range::file_response(
        task_id, &path, total, &request, body,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_cut_on_character_boundaries() {
        assert_eq!(tail("abc", 5), "abc");
        assert_eq!(tail("abcdef", 3), "def");
        assert_eq!(tail("ééé", 3), "é");
    }
}
