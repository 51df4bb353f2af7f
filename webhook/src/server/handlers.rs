//! What the filters call once a request is let in: read a bounded body, call the API's
//! handler (`manager_api`, `runner_api`), count what the metrics want (task submissions, bytes
//! served and stored), and turn the outcome into the answer. The public pages are built once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use warp::http::StatusCode;
use warp::reply::{Reply, Response};

use super::{MAX_REQUEST_BYTES, Surface, respond};
use crate::error::ApiError;
use crate::manager_api;
use crate::metrics::Metrics;
use crate::openapi::Route;
use crate::runner_api::{self, Authorized};
use crate::serve::BodyTimeout;
use crate::state::App;
use crate::tenants::Caller;

/// The parameters of a route's template, by name, as the path gave them (not decoded).
#[derive(Clone, Debug, Default)]
pub(super) struct PathArgs(Vec<(&'static str, String)>);

impl PathArgs {
    /// The value of `{name}`; empty if the template has none.
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, v)| v.as_str())
    }

    pub fn push(&mut self, name: &'static str, value: String) {
        self.0.push((name, value));
    }

    /// A runner route's task: (plural, namespace, name).
    pub fn task(&self) -> (String, String, String) {
        let get = |name| self.get(name).to_owned();
        (get("plural"), get("namespace"), get("name"))
    }
}

/// Reads a body of at most `limit` bytes; a stalled body is a 408.
async fn read_body<S, B>(body: S, limit: u64) -> Result<Bytes, ApiError>
where
    S: futures::Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    use futures::StreamExt;
    let mut body = std::pin::pin!(body);
    let mut out = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| body_error(&e))?;
        if (out.len() + chunk.remaining()) as u64 > limit {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PayloadTooLarge",
                "Request body too large",
            ));
        }
        out.put(chunk);
    }
    Ok(out.freeze())
}

fn body_error(e: &warp::Error) -> ApiError {
    if BodyTimeout::is_cause_of(e) {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            BodyTimeout::CATEGORY,
            "Request body not received in time",
        )
    } else {
        ApiError::bad_request("BodyReadError", format!("cannot read the body: {e}"))
    }
}

/// `POST /task/execute`, counted by tenant and task type once accepted.
pub(super) async fn execute<S, B>(
    app: Arc<App>,
    caller: Caller,
    body: S,
    metrics: Arc<Metrics>,
) -> Response
where
    S: futures::Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let body = match read_body(body, MAX_REQUEST_BYTES).await {
        Ok(body) => body,
        Err(e) => return respond(Err(e)),
    };
    let tenant = caller.tenant.name.clone();
    let result = manager_api::execute(&app, caller, &body).await;
    respond(result.map(|accepted| {
        // Accepted means its task type passed validation: the label values are bounded.
        metrics.task_submitted(&tenant, &accepted.task_type);
        accepted.response
    }))
}

/// The Esup-Pod routes that take nothing but the caller and the path's task id.
pub(super) async fn tenant_call(
    route: Route,
    app: Arc<App>,
    caller: Caller,
    args: PathArgs,
) -> Response {
    let (app, caller, id) = (&app, &caller, args.get("task_id"));
    respond(match route {
        Route::Status => manager_api::status(app, caller, id).await,
        Route::Result => manager_api::result(app, caller, id).await,
        Route::Stop => manager_api::stop(app, caller, id).await,
        Route::TaskList => Ok(manager_api::list(app, caller)),
        Route::ManagerHealth | Route::ApiHealth => Ok(manager_api::health(app)),
        Route::ApiVersion => Ok(manager_api::version()),
        Route::ApiTasks => Ok(manager_api::api_tasks(app, caller)),
        Route::ApiRunners => Ok(manager_api::api_runners(app)),
        // Every other route has a filter of its own (`filters::route`).
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            "Not Found",
        )),
    })
}

/// `GET /task/result/{id}/file/{path}`, counting the bytes served.
pub(super) async fn download(
    app: Arc<App>,
    caller: Caller,
    args: PathArgs,
    range: Option<String>,
    metrics: Arc<Metrics>,
) -> Response {
    let id = args.get("task_id");
    let result = manager_api::download(&app, &caller, id, args.get("path"), range.as_deref());
    let response = respond(result.await);
    // The bytes served, as announced; a client that hangs up early is counted whole.
    if matches!(
        response.status(),
        StatusCode::OK | StatusCode::PARTIAL_CONTENT
    ) && let Some(length) = response
        .headers()
        .get(warp::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        metrics.bytes_downloaded(length);
    }
    response
}

/// A callback whose body is a small JSON document: progress or completion.
pub(super) async fn report<S, B>(
    route: Route,
    app: Arc<App>,
    task: Authorized,
    body: S,
    limit: u64,
) -> Response
where
    S: futures::Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let body = match read_body(body, limit).await {
        Ok(body) => body,
        Err(e) => return respond(Err(e)),
    };
    respond(if route == Route::RunnerProgress {
        runner_api::progress(&app, &task, &body).await
    } else {
        runner_api::completion(&app, &task, &body).await
    })
}

/// `PUT …/files/<path>`: streamed into the store, its bytes counted once it is stored.
pub(super) async fn upload<S, B>(
    app: Arc<App>,
    task: Authorized,
    args: PathArgs,
    body: S,
    metrics: Arc<Metrics>,
) -> Response
where
    S: futures::Stream<Item = Result<B, warp::Error>> + Send + 'static,
    B: Buf + Send,
{
    use futures::TryStreamExt;
    let path = percent_encoding::percent_decode_str(args.get("path"))
        .decode_utf8_lossy()
        .into_owned();
    // Counted as they stream in, and recorded only once the file is stored.
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let body = body.map_ok(move |mut buf| {
        let chunk = buf.copy_to_bytes(buf.remaining());
        counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        chunk
    });
    let result = runner_api::upload(&app, &task, &path, Box::pin(body)).await;
    if result.is_ok() {
        metrics.bytes_uploaded(received.load(Ordering::Relaxed));
    }
    respond(result)
}

/// A public page, built once.
pub(super) enum Page {
    /// `/`: service information.
    Root,
    /// `/openapi.json`.
    Document(String),
    /// `/docs`, `/redoc`, and `/admin` without a console.
    Html(String),
    /// `/admin` with a console: where it is.
    Redirect(warp::http::HeaderValue),
}

impl Page {
    pub fn of(route: Route, surface: &Surface) -> Page {
        match route {
            Route::OpenApi => Page::Document(crate::openapi::document().to_string()),
            Route::SwaggerUi => Page::Html(surface.docs.swagger_ui("/openapi.json")),
            Route::Redoc => Page::Html(surface.docs.redoc("/openapi.json")),
            // Esup-Pod's runner-manager list links each manager to `{manager}/admin`, and
            // upstream's check_runtime.py wants 200, 30x or 401 there.
            Route::Admin | Route::AdminIndex => surface
                .console_url
                .as_deref()
                .and_then(|url| warp::http::HeaderValue::from_str(url).ok())
                .map_or_else(
                    || Page::Html(crate::openapi::pages::admin_page()),
                    Page::Redirect,
                ),
            _ => Page::Root,
        }
    }

    pub fn answer(&self) -> Response {
        match self {
            Page::Root => warp::reply::json(&serde_json::json!({
                "message": "Runner Manager",
                "version": env!("CARGO_PKG_VERSION"),
                "health_check": "/api/health",
                "api_docs_visibility": "public",
            }))
            .into_response(),
            Page::Document(text) => warp::reply::with_header(
                text.clone(),
                warp::http::header::CONTENT_TYPE,
                "application/json",
            )
            .into_response(),
            Page::Html(html) => warp::reply::html(html.clone()).into_response(),
            Page::Redirect(location) => {
                let mut response = StatusCode::FOUND.into_response();
                response
                    .headers_mut()
                    .insert(warp::http::header::LOCATION, location.clone());
                response
            }
        }
    }
}
