//! The HTTP surface: warp filters binding paths to handlers, request size limits, rate
//! limits (per tenant, per task, per client address: `rate_limit`), rejections turned into
//! `{"detail": ...}` bodies and the API's own description (`/openapi.json`, `/docs`,
//! `/redoc`). Every request is counted by the route template it matched (`openapi::Route`).
//!
//! Callers are authenticated from the headers before any body is read: an unauthenticated
//! request never makes the webhook buffer its body. `/metrics` and the probes are served by
//! `ops_routes`, on the metrics port only, never on the API port.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use warp::http::{HeaderMap, StatusCode};
use warp::reply::{Reply, Response};
use warp::{Filter, Rejection};

use crate::error::ApiError;
use crate::manager_api::{self, App};
use crate::metrics::Metrics;
use crate::openapi::{DocsAssets, Route};
use crate::rate_limit::{ClientAddress, KeyedLimiter, address_key};
use crate::runner_api;
use crate::serve::{BodyTimeout, PeerAddr};
use crate::tenants::Caller;

/// Largest `/task/execute` and completion body: Esup-Pod's requests are a few KiB.
pub const MAX_REQUEST_BYTES: u64 = 1024 * 1024;
/// Largest progress report.
pub const MAX_PROGRESS_BYTES: u64 = 64 * 1024;

/// The rate limits (`rate_limit` explains the three keys), and how the client address is
/// found.
pub struct Limits {
    /// Per authenticated tenant.
    pub tenant: KeyedLimiter<String>,
    /// Per task, for runner callbacks whose token matched: (plural, namespace, name).
    pub task: KeyedLimiter<(String, String, String)>,
    /// Per client address, for requests without valid credentials.
    pub address: KeyedLimiter<IpAddr>,
    pub client: ClientAddress,
}

impl Limits {
    /// Limits per minute; 0 turns one off.
    pub fn per_minute(tenant: u32, task: u32, address: u32, client: ClientAddress) -> Self {
        Self {
            tenant: KeyedLimiter::per_minute(tenant),
            task: KeyedLimiter::per_minute(task),
            address: KeyedLimiter::per_minute(address),
            client,
        }
    }

    /// A request without valid credentials from `client`: counted against its address.
    fn anonymous(&self, client: Option<IpAddr>, now: Instant) -> Result<(), ApiError> {
        match client {
            Some(ip) if !self.address.allow(&address_key(ip), now) => {
                Err(rate_limited("RateLimited"))
            }
            _ => Ok(()),
        }
    }
}

fn rate_limited(category: &'static str) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        category,
        "Rate limit exceeded",
    )
}

/// The error category of an error answer, carried to the metrics wrapper in the response's
/// extensions.
#[derive(Clone, Copy, Debug)]
struct ErrorCategory(&'static str);

fn error_response(e: ApiError) -> Response {
    let category = e.category;
    let mut response = if e.status == StatusCode::TOO_MANY_REQUESTS {
        // The reference manager's rate-limit answer (slowapi's), its only one without `detail`.
        let body = warp::reply::json(&serde_json::json!({"error": e.detail}));
        warp::reply::with_status(body, e.status).into_response()
    } else {
        e.into_response()
    };
    response.extensions_mut().insert(ErrorCategory(category));
    response
}

fn respond(result: Result<Response, ApiError>) -> Response {
    match result {
        Ok(response) => response,
        Err(e) => {
            if e.status.is_server_error() {
                tracing::warn!(category = e.category, detail = %e.detail, "request failed");
            }
            error_response(e)
        }
    }
}

/// What the routes need beside the handlers' state: the metrics and the docs pages' assets.
pub struct Surface {
    pub metrics: Arc<Metrics>,
    pub docs: DocsAssets,
    /// Where `/admin` redirects (the admin console); unset: `/admin` is a page that points to
    /// the documentation and `/docs`.
    pub console_url: Option<String>,
}

const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

fn metrics_reply(metrics: &Metrics) -> Response {
    match metrics.encode() {
        Ok(text) => warp::reply::with_header(
            text,
            warp::http::header::CONTENT_TYPE,
            OPENMETRICS_CONTENT_TYPE,
        )
        .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot encode metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// The metrics port: `/metrics` for Prometheus, `/healthz` (liveness: the process serves) and
/// `/readyz` (readiness: the task caches have listed, and no shutdown has begun). Nothing
/// else, and nothing of the API.
pub fn ops_routes(
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let scrape = warp::get()
        .and(warp::path!("metrics"))
        .map(move || metrics_reply(&metrics));
    let live = warp::get()
        .and(warp::path!("healthz"))
        .map(|| warp::reply::json(&serde_json::json!({"status": "ok"})).into_response());
    let readiness = warp::get().and(warp::path!("readyz")).map(move || {
        if ready.load(Ordering::Relaxed) {
            warp::reply::json(&serde_json::json!({"status": "ready"})).into_response()
        } else {
            let body = serde_json::json!({"status": "not ready: the task caches are listing"});
            warp::reply::with_status(warp::reply::json(&body), StatusCode::SERVICE_UNAVAILABLE)
                .into_response()
        }
    });
    scrape
        .or(live)
        .unify()
        .or(readiness)
        .unify()
        .recover(|_: Rejection| async {
            Ok::<_, Infallible>(StatusCode::NOT_FOUND.into_response())
        })
        .unify()
}

/// The client's address: the TCP peer (ours, or warp's in tests), or the forwarded one when the
/// peer is a trusted proxy.
fn client(
    limits: Arc<Limits>,
) -> impl Filter<Extract = (Option<IpAddr>,), Error = Infallible> + Clone {
    warp::ext::optional::<PeerAddr>()
        .and(warp::addr::remote())
        .and(warp::header::headers_cloned())
        .map(
            move |peer: Option<PeerAddr>, remote: Option<SocketAddr>, headers: HeaderMap| {
                let peer = peer.map(|p| p.0).or(remote).map(|a| a.ip());
                let values = limits
                    .client
                    .header
                    .as_deref()
                    .map(|name| {
                        headers
                            .get_all(name)
                            .iter()
                            .filter_map(|v| v.to_str().ok())
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default();
                limits.client.resolve(peer, values)
            },
        )
}

/// Extracts the caller, or the answer to give instead: its authentication error, or 429 when
/// the tenant is over its limit, or when a request without a valid token comes from an
/// address over the anonymous limit. Headers only: the body is read after this.
fn caller(
    app: Arc<App>,
    limits: Arc<Limits>,
) -> impl Filter<Extract = (Result<Caller, ApiError>,), Error = Rejection> + Clone {
    client(limits.clone())
        .and(warp::header::optional::<String>("x-api-token"))
        .and(warp::header::optional::<String>("authorization"))
        .map(
            move |client: Option<IpAddr>, x: Option<String>, auth: Option<String>| {
                let now = Instant::now();
                match manager_api::authenticate(&app.tokens, x.as_deref(), auth.as_deref()) {
                    Ok(caller) if limits.tenant.allow(&caller.tenant.name, now) => Ok(caller),
                    Ok(_) => Err(rate_limited("TenantRateLimited")),
                    Err(e) => limits.anonymous(client, now).and(Err(e)),
                }
            },
        )
}

/// Public routes: counted against the client's address.
fn public(
    limits: Arc<Limits>,
) -> impl Filter<Extract = (Result<(), ApiError>,), Error = Infallible> + Clone {
    client(limits.clone()).map(move |client| limits.anonymous(client, Instant::now()))
}

/// A runner callback's task, once its callback token matched. An address that has spent its
/// anonymous allowance on failures is refused before the check (which reads a Secret from the
/// API server); only failures spend it, so a flood of bad tokens does not limit the runners
/// that authenticate, and each task has its own limit.
async fn authorize_callback(
    app: &App,
    limits: &Limits,
    client: Option<IpAddr>,
    task: (String, String, String),
    authorization: Option<&str>,
) -> Result<runner_api::Authorized, ApiError> {
    let now = Instant::now();
    let address = client.map(address_key);
    if let Some(address) = &address
        && !limits.address.has_allowance(address, now)
    {
        return Err(rate_limited("RateLimited"));
    }
    let (plural, namespace, name) = &task;
    match runner_api::authorize(app, plural, namespace, name, authorization).await {
        Ok(found) if limits.task.allow(&task, now) => Ok(found),
        Ok(_) => Err(rate_limited("TaskRateLimited")),
        Err(e) => {
            // The caller's failures, not the API server's.
            if e.status.is_client_error()
                && let Some(address) = &address
            {
                limits.address.allow(address, now);
            }
            Err(e)
        }
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

async fn execute<S, B>(
    app: Arc<App>,
    caller: Result<Caller, ApiError>,
    body: S,
    metrics: Arc<Metrics>,
) -> Response
where
    S: futures::Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let caller = match caller {
        Ok(caller) => caller,
        // Answered without reading the body: hyper then closes the connection.
        Err(e) => return respond(Err(e)),
    };
    let body = match read_body(body, MAX_REQUEST_BYTES).await {
        Ok(body) => body,
        Err(e) => return respond(Err(e)),
    };
    let tenant = caller.tenant.name.clone();
    let result = manager_api::execute(&app, caller, &body).await;
    // Accepted means the body parsed and its task type passed validation, so the label values
    // are bounded.
    if let Ok(response) = &result
        && response.status() == StatusCode::OK
        && let Ok(request) = serde_json::from_slice::<esup_api::wire::TaskRequest>(&body)
    {
        metrics.task_submitted(&tenant, &request.task_type);
    }
    respond(result)
}

/// A callback whose body is a small JSON document (progress, completion).
async fn callback_json<S, B, F, Fut>(
    task: Result<runner_api::Authorized, ApiError>,
    body: S,
    limit: u64,
    handle: F,
) -> Response
where
    S: futures::Stream<Item = Result<B, warp::Error>>,
    B: Buf,
    F: FnOnce(runner_api::Authorized, Bytes) -> Fut,
    Fut: std::future::Future<Output = Result<Response, ApiError>>,
{
    let result = match task {
        Ok(task) => match read_body(body, limit).await {
            Ok(body) => handle(task, body).await,
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    respond(result)
}

/// Every route of the API port: Esup-Pod's side, the runners' callbacks, the API's
/// description. Not `/metrics` (`ops_routes`).
pub fn routes(
    app: Arc<App>,
    limits: Arc<Limits>,
    surface: Arc<Surface>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let with_app = {
        let app = app.clone();
        warp::any().map(move || app.clone())
    };
    let with_metrics = {
        let metrics = surface.metrics.clone();
        warp::any().map(move || metrics.clone())
    };
    let auth = caller(app.clone(), limits.clone());
    let public = public(limits.clone());

    let execute = warp::post()
        .and(warp::path!("task" / "execute"))
        .and(warp::body::content_length_limit(MAX_REQUEST_BYTES))
        .and(with_app.clone())
        .and(auth.clone())
        .and(warp::body::stream())
        .and(with_metrics.clone())
        .then(execute);
    let status = warp::get()
        .and(warp::path!("task" / "status" / String))
        .and(with_app.clone())
        .and(auth.clone())
        .then(
            |id: String, app: Arc<App>, caller: Result<Caller, ApiError>| async move {
                respond(match caller {
                    Ok(c) => manager_api::status(&app, &c, &id).await,
                    Err(e) => Err(e),
                })
            },
        );
    let result = warp::get()
        .and(warp::path!("task" / "result" / String))
        .and(with_app.clone())
        .and(auth.clone())
        .then(
            |id: String, app: Arc<App>, caller: Result<Caller, ApiError>| async move {
                respond(match caller {
                    Ok(c) => manager_api::result(&app, &c, &id).await,
                    Err(e) => Err(e),
                })
            },
        );
    let health = warp::get()
        .and(
            warp::path!("manager" / "health")
                .or(warp::path!("api" / "health"))
                .unify(),
        )
        .and(with_app.clone())
        .and(auth.clone())
        .map(|app: Arc<App>, caller: Result<Caller, ApiError>| {
            respond(caller.map(|_| manager_api::health(&app)))
        });
    let version = warp::get()
        .and(warp::path!("api" / "version"))
        .and(auth.clone())
        .map(|caller: Result<Caller, ApiError>| respond(caller.map(|_| manager_api::version())));
    let list = warp::get()
        .and(warp::path!("task" / "list"))
        .and(with_app.clone())
        .and(auth.clone())
        .map(|app: Arc<App>, caller: Result<Caller, ApiError>| {
            respond(caller.map(|c| manager_api::list(&app, &c)))
        });
    let api_tasks = warp::get()
        .and(warp::path!("api" / "tasks"))
        .and(with_app.clone())
        .and(auth.clone())
        .map(|app: Arc<App>, caller: Result<Caller, ApiError>| {
            respond(caller.map(|c| manager_api::api_tasks(&app, &c)))
        });
    let api_runners = warp::get()
        .and(warp::path!("api" / "runners"))
        .and(with_app.clone())
        .and(auth.clone())
        .map(|app: Arc<App>, caller: Result<Caller, ApiError>| {
            respond(caller.map(|_| manager_api::api_runners(&app)))
        });
    let stop = warp::post()
        .and(warp::path!("task" / "stop" / String))
        .and(with_app.clone())
        .and(auth.clone())
        .then(
            |id: String, app: Arc<App>, caller: Result<Caller, ApiError>| async move {
                respond(match caller {
                    Ok(c) => manager_api::stop(&app, &c, &id).await,
                    Err(e) => Err(e),
                })
            },
        );
    let download = warp::get()
        .and(warp::path("task"))
        .and(warp::path("result"))
        .and(warp::path::param::<String>())
        .and(warp::path("file"))
        .and(warp::path::tail())
        .and(warp::header::optional::<String>("range"))
        .and(with_app.clone())
        .and(auth.clone())
        .and(with_metrics.clone())
        .then(
            |id: String,
             tail: warp::path::Tail,
             range: Option<String>,
             app: Arc<App>,
             caller: Result<Caller, ApiError>,
             metrics: Arc<Metrics>| async move {
                let response = respond(match caller {
                    Ok(c) => {
                        runner_api::download(&app, &c, &id, tail.as_str(), range.as_deref()).await
                    }
                    Err(e) => Err(e),
                });
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
            },
        );
    // The runner routes: the task from the path, the method and the call's own path checked
    // before the callback token (one Secret read per request), the body read after it.
    let runner_task = warp::path("runner")
        .and(warp::path("v1"))
        .and(warp::path::param::<String>())
        .and(warp::path::param::<String>())
        .and(warp::path::param::<String>())
        .map(|plural, namespace, name| (plural, namespace, name));
    let callback_auth = {
        let app = app.clone();
        client(limits.clone())
            .and(warp::header::optional::<String>("authorization"))
            .map(move |client, auth| (app.clone(), limits.clone(), client, auth))
    };
    let authorized = |key: (String, String, String),
                      (app, limits, client, auth): (
        Arc<App>,
        Arc<Limits>,
        Option<IpAddr>,
        Option<String>,
    )| async move {
        let task = authorize_callback(&app, &limits, client, key, auth.as_deref()).await;
        Ok::<_, Rejection>((app, task))
    };
    let runner_progress = runner_task
        .and(warp::post())
        .and(warp::path!("progress"))
        .and(warp::body::content_length_limit(MAX_PROGRESS_BYTES))
        .and(callback_auth.clone())
        .and_then(authorized)
        .untuple_one()
        .and(warp::body::stream())
        .then(|app: Arc<App>, task, body| async move {
            callback_json(task, body, MAX_PROGRESS_BYTES, |task, body| async move {
                runner_api::progress(&app, &task, &body).await
            })
            .await
        });
    let runner_completion = runner_task
        .and(warp::post())
        .and(warp::path!("completion"))
        .and(warp::body::content_length_limit(MAX_REQUEST_BYTES))
        .and(callback_auth.clone())
        .and_then(authorized)
        .untuple_one()
        .and(warp::body::stream())
        .then(|app: Arc<App>, task, body| async move {
            callback_json(task, body, MAX_REQUEST_BYTES, |task, body| async move {
                runner_api::completion(&app, &task, &body).await
            })
            .await
        });
    let runner_upload = runner_task
        .and(warp::put())
        .and(warp::path("files"))
        .and(warp::path::tail())
        .and(callback_auth)
        .and_then(move |key, tail: warp::path::Tail, auth| async move {
            let (app, task) = authorized(key, auth).await?;
            Ok::<_, Rejection>((app, task, tail))
        })
        .untuple_one()
        .and(warp::body::stream())
        .and(with_metrics.clone())
        .then(upload);
    let document = Arc::new(crate::openapi::document().to_string());
    let openapi = warp::get()
        .and(warp::path!("openapi.json"))
        .and(public.clone())
        .map(move |allowed: Result<(), ApiError>| {
            respond(allowed.map(|()| {
                warp::reply::with_header(
                    document.as_str().to_owned(),
                    warp::http::header::CONTENT_TYPE,
                    "application/json",
                )
                .into_response()
            }))
        });
    let swagger_page = surface.docs.swagger_ui("/openapi.json");
    let docs = warp::get()
        .and(warp::path!("docs"))
        .and(public.clone())
        .map(move |allowed: Result<(), ApiError>| {
            respond(allowed.map(|()| warp::reply::html(swagger_page.clone()).into_response()))
        });
    let redoc_page = surface.docs.redoc("/openapi.json");
    let redoc = warp::get()
        .and(warp::path!("redoc"))
        .and(public.clone())
        .map(move |allowed: Result<(), ApiError>| {
            respond(allowed.map(|()| warp::reply::html(redoc_page.clone()).into_response()))
        });
    // Esup-Pod's runner-manager list links each manager to `{manager}/admin`, and upstream's
    // check_runtime.py wants 200, 30x or 401 there.
    let console = surface.console_url.clone();
    let admin = warp::get()
        .and(warp::path!("admin"))
        .and(public.clone())
        .map(move |allowed: Result<(), ApiError>| {
            respond(allowed.map(|()| match &console {
                Some(url) => match warp::http::HeaderValue::from_str(url) {
                    Ok(location) => {
                        let mut response = StatusCode::FOUND.into_response();
                        response
                            .headers_mut()
                            .insert(warp::http::header::LOCATION, location);
                        response
                    }
                    Err(_) => {
                        warp::reply::html(crate::openapi::pages::admin_page()).into_response()
                    }
                },
                None => warp::reply::html(crate::openapi::pages::admin_page()).into_response(),
            }))
        });
    let root =
        warp::get()
            .and(warp::path::end())
            .and(public)
            .map(|allowed: Result<(), ApiError>| {
                respond(allowed.map(|()| {
                    warp::reply::json(&serde_json::json!({
                        "message": "Runner Manager",
                        "version": env!("CARGO_PKG_VERSION"),
                        "health_check": "/api/health",
                        "api_docs_visibility": "public",
                    }))
                    .into_response()
                }))
            });

    // Each route is boxed before they are chained: the nested filter types of an unboxed
    // chain this long take rustc many minutes to check.
    let mut api = execute.boxed();
    for next in [
        status.boxed(),
        result.boxed(),
        health.boxed(),
        version.boxed(),
        list.boxed(),
        api_tasks.boxed(),
        api_runners.boxed(),
        stop.boxed(),
        download.boxed(),
        runner_progress.boxed(),
        runner_completion.boxed(),
        runner_upload.boxed(),
        root.boxed(),
        admin.boxed(),
        openapi.boxed(),
        docs.boxed(),
        redoc.boxed(),
    ] {
        api = api.or(next).unify().boxed();
    }
    let served = api.recover(rejection).unify();

    let metrics = surface.metrics.clone();
    warp::any()
        .map(Instant::now)
        .and(warp::method())
        .and(warp::path::full())
        .and(served)
        .map(
            move |start: Instant,
                  method: warp::http::Method,
                  path: warp::path::FullPath,
                  response: Response| {
                let route = Route::classify(method.as_str(), path.as_str());
                // warp reports 405 when a method-first route rejected a path no route has.
                let response = if response.status() == StatusCode::METHOD_NOT_ALLOWED
                    && Route::any_for_path(path.as_str()).is_none()
                {
                    error_response(ApiError::new(
                        StatusCode::NOT_FOUND,
                        "NotFound",
                        "Not Found",
                    ))
                } else {
                    response
                };
                let category = response.extensions().get::<ErrorCategory>().map(|c| c.0);
                metrics.observe_request(
                    route,
                    method.as_str(),
                    response.status().as_u16(),
                    category,
                    start.elapsed().as_secs_f64(),
                );
                response
            },
        )
}

async fn upload<S, B>(
    app: Arc<App>,
    task: Result<runner_api::Authorized, ApiError>,
    tail: warp::path::Tail,
    body: S,
    metrics: Arc<Metrics>,
) -> Response
where
    S: futures::Stream<Item = Result<B, warp::Error>> + Send + 'static,
    B: bytes::Buf + Send,
{
    use futures::TryStreamExt;
    let path = percent_encoding::percent_decode_str(tail.as_str())
        .decode_utf8_lossy()
        .into_owned();
    // Counted as they stream in, and recorded only once the file is stored.
    let received = Arc::new(AtomicU64::new(0));
    let result = match task {
        Ok(task) => {
            let counter = received.clone();
            let body = body.map_ok(move |mut buf| {
                let chunk = buf.copy_to_bytes(buf.remaining());
                counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                chunk
            });
            runner_api::upload(&app, &task, &path, Box::pin(body)).await
        }
        // Refused before a byte of the body is read.
        Err(e) => Err(e),
    };
    if result.is_ok() {
        metrics.bytes_uploaded(received.load(Ordering::Relaxed));
    }
    respond(result)
}

/// Rejections in Esup-Pod's error shape, so that no request gets an HTML or empty answer.
async fn rejection(r: Rejection) -> Result<Response, Infallible> {
    let response = if r.is_not_found() {
        error_response(ApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            "Not Found",
        ))
    } else if r.find::<warp::reject::PayloadTooLarge>().is_some() {
        error_response(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
            "Request body too large",
        ))
    } else if r.find::<warp::reject::MethodNotAllowed>().is_some() {
        error_response(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "Method Not Allowed",
        ))
    } else if r.find::<warp::reject::LengthRequired>().is_some() {
        error_response(ApiError::new(
            StatusCode::LENGTH_REQUIRED,
            "LengthRequired",
            "Content-Length required",
        ))
    } else {
        error_response(ApiError::bad_request("BadRequest", format!("{r:?}")))
    };
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offline_app(results: &std::path::Path, tenants: &[(&str, &str)]) -> Arc<App> {
        Arc::new(crate::manager_api::offline_app(
            results,
            tenants,
            crate::url_policy::UrlPolicy::default(),
        ))
    }

    fn surface() -> Arc<Surface> {
        Arc::new(Surface {
            metrics: Arc::new(Metrics::new(Arc::default())),
            docs: DocsAssets::default(),
            console_url: None,
        })
    }

    fn unlimited() -> Arc<Limits> {
        Arc::new(Limits::per_minute(0, 0, 0, ClientAddress::default()))
    }

    /// A concrete path for a template.
    fn example_path(template: &str) -> String {
        template
            .replace("{plural}", "encodingtasks")
            .replace("{path}", "dir/a%20b.mp4")
            .replace('{', "x-")
            .replace('}', "")
    }

    #[tokio::test]
    async fn every_route_is_served_documented_and_labelled() {
        let results = tempfile::tempdir().unwrap();
        let surface = surface();
        let metrics = surface.metrics.clone();
        let filter = routes(offline_app(results.path(), &[]), unlimited(), surface);
        let document = crate::openapi::document();
        for route in Route::ALL {
            let path = example_path(route.template());
            let response = warp::test::request()
                .method(route.method())
                .path(&path)
                .body("{}")
                .reply(&filter)
                .await;
            let body: serde_json::Value =
                serde_json::from_slice(response.body()).unwrap_or_default();
            // Unauthenticated: a served route answers 401, 404 "Task not found" (runner
            // routes look the task up first) or, if public, 200; never the router's own 404.
            let expected: &[u16] = match route.access() {
                crate::openapi::Access::Public => &[200],
                crate::openapi::Access::Tenant => &[401],
                crate::openapi::Access::Callback => &[404],
            };
            assert!(
                expected.contains(&response.status().as_u16()) && body["detail"] != "Not Found",
                "{route:?} {path}: {} {body}",
                response.status()
            );
            let operation = &document["paths"][route.template()][route.method().to_lowercase()];
            assert_eq!(
                operation.is_object(),
                route.documented(),
                "{route:?} in the document"
            );
        }
        let unknown = warp::test::request().path("/nope").reply(&filter).await;
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);

        let text = metrics.encode().unwrap();
        assert!(text.contains(
            r#"esup_webhook_http_requests_total{route="/task/status/{task_id}",method="GET",status="4xx"} 1"#
        ));
        assert!(text.contains(r#"esup_webhook_rejections_total{reason="auth"}"#));
        assert!(
            text.contains(
                r#"esup_webhook_http_requests_total{route="unmatched",method="GET",status="4xx"} 1"#
            ),
            "only /nope is unmatched:\n{text}"
        );
    }

    #[tokio::test]
    async fn metrics_and_probes_are_not_on_the_api_port() {
        let results = tempfile::tempdir().unwrap();
        let surface = surface();
        let api = routes(
            offline_app(results.path(), &[]),
            unlimited(),
            surface.clone(),
        );
        for path in ["/metrics", "/healthz", "/readyz"] {
            let response = warp::test::request().path(path).reply(&api).await;
            assert_eq!(
                response.status(),
                StatusCode::NOT_FOUND,
                "{path} on the API"
            );
        }
        let ready = Arc::new(AtomicBool::new(false));
        let ops = ops_routes(surface.metrics.clone(), ready.clone());
        let get = |path: &'static str| warp::test::request().path(path).reply(&ops);
        let scrape = get("/metrics").await;
        assert_eq!(scrape.status(), StatusCode::OK);
        assert!(
            scrape.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/openmetrics-text")
        );
        let text = String::from_utf8(scrape.body().to_vec()).unwrap();
        assert!(text.contains("esup_webhook_http_requests_total"), "{text}");
        assert_eq!(get("/healthz").await.status(), StatusCode::OK);
        assert_eq!(
            get("/readyz").await.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        ready.store(true, Ordering::Relaxed);
        assert_eq!(get("/readyz").await.status(), StatusCode::OK);
        // Nothing of the API on the metrics port.
        for path in ["/", "/docs", "/openapi.json", "/api/version"] {
            assert_eq!(get(path).await.status(), StatusCode::NOT_FOUND, "{path}");
        }
    }

    #[tokio::test]
    async fn admin_redirects_to_the_console_or_says_where_to_look() {
        let results = tempfile::tempdir().unwrap();
        let page = routes(offline_app(results.path(), &[]), unlimited(), surface());
        for path in ["/admin", "/admin/"] {
            let r = warp::test::request().path(path).reply(&page).await;
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            let html = String::from_utf8(r.body().to_vec()).unwrap();
            assert!(html.contains(r#"href="../docs""#), "{html}");
        }
        let console = Arc::new(Surface {
            metrics: Arc::new(Metrics::new(Arc::default())),
            docs: DocsAssets::default(),
            console_url: Some("https://console.univ.example/esup/".to_owned()),
        });
        let redirect = routes(offline_app(results.path(), &[]), unlimited(), console);
        for path in ["/admin", "/admin/"] {
            let r = warp::test::request().path(path).reply(&redirect).await;
            assert_eq!(r.status(), StatusCode::FOUND, "{path}");
            assert_eq!(
                r.headers()["location"],
                "https://console.univ.example/esup/"
            );
        }
    }

    #[tokio::test]
    async fn public_pages_are_limited_per_address() {
        let results = tempfile::tempdir().unwrap();
        let surface = Arc::new(Surface {
            metrics: Arc::new(Metrics::new(Arc::default())),
            docs: DocsAssets::new("http://127.0.0.1:8000/assets"),
            console_url: Some("https://console.univ.example/esup/".to_owned()),
        });
        // One anonymous request per address.
        let limits = Arc::new(Limits::per_minute(0, 0, 1, ClientAddress::default()));
        let filter = routes(offline_app(results.path(), &[]), limits, surface.clone());
        let addr: SocketAddr = "192.0.2.7:5000".parse().unwrap();
        let get = |path: &'static str| warp::test::request().path(path).remote_addr(addr);
        let doc = get("/openapi.json").reply(&filter).await;
        assert_eq!(doc.status(), StatusCode::OK);
        assert_eq!(doc.headers()["content-type"], "application/json");
        let value: serde_json::Value = serde_json::from_slice(doc.body()).unwrap();
        assert_eq!(value["openapi"], "3.1.0");
        let limited = get("/docs").reply(&filter).await;
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
        let body: serde_json::Value = serde_json::from_slice(limited.body()).unwrap();
        assert_eq!(body, serde_json::json!({"error": "Rate limit exceeded"}));
        let text = surface.metrics.encode().unwrap();
        assert!(
            text.contains(r#"esup_webhook_rejections_total{reason="rate_limit"} 1"#),
            "{text}"
        );

        let page = warp::test::request()
            .path("/docs")
            .remote_addr("192.0.2.8:5000".parse().unwrap())
            .reply(&filter)
            .await;
        assert_eq!(page.status(), StatusCode::OK);
        let html = String::from_utf8(page.body().to_vec()).unwrap();
        assert!(
            html.contains("http://127.0.0.1:8000/assets/swagger-ui-dist@5/swagger-ui-bundle.js")
        );
        let page = warp::test::request()
            .path("/redoc")
            .remote_addr("192.0.2.9:5000".parse().unwrap())
            .reply(&filter)
            .await;
        assert!(
            String::from_utf8(page.body().to_vec())
                .unwrap()
                .contains("<redoc spec-url=\"/openapi.json\">")
        );
    }

    /// The chart's Ingress controller, at 10.0.0.5, in front of every caller.
    const PROXY: &str = "10.0.0.5:40000";

    fn behind_proxy() -> ClientAddress {
        ClientAddress {
            trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
            header: Some("x-forwarded-for".into()),
        }
    }

    async fn version_as(
        filter: &(impl Filter<Extract = (Response,), Error = Infallible> + Clone + 'static),
        token: &str,
    ) -> StatusCode {
        warp::test::request()
            .path("/api/version")
            .remote_addr(PROXY.parse().unwrap())
            .header("authorization", format!("Bearer {token}"))
            .reply(filter)
            .await
            .status()
    }

    #[tokio::test]
    async fn a_tenant_at_its_limit_does_not_limit_another_behind_the_same_proxy() {
        let results = tempfile::tempdir().unwrap();
        let app = offline_app(results.path(), &[("univ-a", "tok-a"), ("univ-b", "tok-b")]);
        let surface = surface();
        let limits = Arc::new(Limits::per_minute(3, 0, 100, behind_proxy()));
        let filter = routes(app, limits, surface.clone());
        for _ in 0..3 {
            assert_eq!(version_as(&filter, "tok-a").await, StatusCode::OK);
        }
        assert_eq!(
            version_as(&filter, "tok-a").await,
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(
            version_as(&filter, "tok-b").await,
            StatusCode::OK,
            "univ-b is not limited by univ-a"
        );
        let text = surface.metrics.encode().unwrap();
        assert!(
            text.contains(r#"esup_webhook_errors_total{category="TenantRateLimited"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"esup_webhook_rejections_total{reason="rate_limit"} 1"#),
            "{text}"
        );
    }

    #[tokio::test]
    async fn an_anonymous_flood_does_not_limit_a_tenant_behind_the_same_proxy() {
        let results = tempfile::tempdir().unwrap();
        let app = offline_app(results.path(), &[("univ-a", "tok-a")]);
        let limits = Arc::new(Limits::per_minute(100, 100, 5, behind_proxy()));
        let filter = routes(app, limits, surface());
        // The attacker's requests come through the same Ingress, from one client.
        let anonymous = |path: &'static str, method: &'static str| {
            warp::test::request()
                .method(method)
                .path(path)
                .remote_addr(PROXY.parse().unwrap())
                .header("x-forwarded-for", "203.0.113.66")
        };
        let mut statuses = Vec::new();
        for _ in 0..10 {
            statuses.push(
                anonymous("/api/version", "GET")
                    .reply(&filter)
                    .await
                    .status(),
            );
            statuses.push(
                anonymous("/runner/v1/encodingtasks/ns/t/progress", "POST")
                    .header("authorization", "Bearer wrong")
                    .body("{}")
                    .reply(&filter)
                    .await
                    .status(),
            );
        }
        assert_eq!(
            statuses
                .iter()
                .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
                .count(),
            15,
            "the flooding client is limited: {statuses:?}"
        );
        // The tenant, behind the same proxy without a forwarded address, and another client
        // behind it, are not.
        assert_eq!(version_as(&filter, "tok-a").await, StatusCode::OK);
        let other = warp::test::request()
            .path("/")
            .remote_addr(PROXY.parse().unwrap())
            .header("x-forwarded-for", "198.51.100.7")
            .reply(&filter)
            .await;
        assert_eq!(other.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn the_forwarded_header_is_ignored_from_an_untrusted_peer() {
        let results = tempfile::tempdir().unwrap();
        let limits = Arc::new(Limits::per_minute(0, 0, 2, behind_proxy()));
        let filter = routes(offline_app(results.path(), &[]), limits, surface());
        let root = |peer: &str, forwarded: String| {
            warp::test::request()
                .path("/")
                .remote_addr(peer.parse().unwrap())
                .header("x-forwarded-for", forwarded)
        };
        // A direct client cannot pose as many by writing the header.
        let mut statuses = Vec::new();
        for i in 0..4 {
            let response = root("192.0.2.7:5000", format!("198.51.100.{i}"))
                .reply(&filter)
                .await;
            statuses.push(response.status().as_u16());
        }
        assert_eq!(statuses, [200, 200, 429, 429]);
        // Through the trusted proxy, each forwarded client has its own allowance.
        for i in 0..4 {
            let response = root(PROXY, format!("198.51.100.{i}")).reply(&filter).await;
            assert_eq!(
                response.status(),
                StatusCode::OK,
                "client {i} behind the proxy"
            );
        }
    }
}
