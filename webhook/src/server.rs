//! The HTTP surface: warp filters binding paths to handlers, request size limits, rate
//! limiting per client, rejections turned into `{"detail": ...}` bodies, the API's own
//! description (`/openapi.json`, `/docs`, `/redoc`) and `/metrics`. Every request is counted
//! by the route template it matched (`openapi::Route`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};
use warp::{Filter, Rejection};

use crate::error::ApiError;
use crate::manager_api::{self, App};
use crate::metrics::Metrics;
use crate::openapi::{DocsAssets, Route};
use crate::runner_api;
use crate::tasks::AnyTask;
use crate::tenants::Caller;

/// Largest `/task/execute` body: Esup-Pod's requests are a few KiB.
pub const MAX_REQUEST_BYTES: u64 = 1024 * 1024;

/// Requests per client address per window; beyond, 429 as the reference manager's
/// `120/minute`.
pub struct RateLimiter {
    limit: u32,
    window: Duration,
    seen: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl RateLimiter {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one request from `client`; false when it is over the limit.
    pub fn allow(&self, client: Option<IpAddr>, now: Instant) -> bool {
        let Some(client) = client else { return true };
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.len() > 100_000 {
            let window = self.window;
            seen.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let entry = seen.entry(client).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 += 1;
        entry.1 <= self.limit
    }
}

/// The error category of an error answer, carried to the metrics wrapper in the response's
/// extensions.
#[derive(Clone, Copy, Debug)]
struct ErrorCategory(&'static str);

fn error_response(e: ApiError) -> Response {
    let category = e.category;
    let mut response = e.into_response();
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

/// Extracts the caller, or the authentication error to answer with.
fn caller(
    app: Arc<App>,
) -> impl Filter<Extract = (Result<Caller, ApiError>,), Error = Rejection> + Clone {
    warp::header::optional::<String>("x-api-token")
        .and(warp::header::optional::<String>("authorization"))
        .map(move |x: Option<String>, auth: Option<String>| {
            manager_api::authenticate(&app.tokens, x.as_deref(), auth.as_deref())
        })
}

/// Every route of Esup-Pod's side of the API.
pub fn routes(
    app: Arc<App>,
    limiter: Arc<RateLimiter>,
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
    let auth = caller(app.clone());

    let execute = warp::post()
        .and(warp::path!("task" / "execute"))
        .and(with_app.clone())
        .and(auth.clone())
        .and(warp::body::content_length_limit(MAX_REQUEST_BYTES))
        .and(warp::body::bytes())
        .and(with_metrics.clone())
        .then(
            |app: Arc<App>,
             caller: Result<Caller, ApiError>,
             body: Bytes,
             metrics: Arc<Metrics>| async move {
                let tenant = caller.as_ref().ok().map(|c| c.tenant.name.clone());
                let result = match caller {
                    Ok(caller) => manager_api::execute(&app, caller, &body).await,
                    Err(e) => Err(e),
                };
                // Accepted means the body parsed and its task type passed validation, so the
                // label values are bounded.
                if let (Ok(response), Some(tenant)) = (&result, tenant)
                    && response.status() == StatusCode::OK
                    && let Ok(request) =
                        serde_json::from_slice::<esup_api::wire::TaskRequest>(&body)
                {
                    metrics.task_submitted(&tenant, &request.task_type);
                }
                respond(result)
            },
        );
    let status = warp::get()
        .and(warp::path!("task" / "status" / String))
        .and(with_app.clone())
        .and(auth.clone())
        .map(
            |id: String, app: Arc<App>, caller: Result<Caller, ApiError>| {
                respond(caller.and_then(|c| manager_api::status(&app, &c, &id)))
            },
        );
    let result = warp::get()
        .and(warp::path!("task" / "result" / String))
        .and(with_app.clone())
        .and(auth.clone())
        .map(
            |id: String, app: Arc<App>, caller: Result<Caller, ApiError>| {
                respond(caller.and_then(|c| manager_api::result(&app, &c, &id)))
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
    let runner = warp::path("runner")
        .and(warp::path("v1"))
        .and(warp::path::param::<String>())
        .and(warp::path::param::<String>())
        .and(warp::path::param::<String>())
        .and(warp::header::optional::<String>("authorization"))
        .and(with_app.clone())
        .and_then(|plural: String, ns: String, name: String, auth: Option<String>, app: Arc<App>| async move {
            let task = runner_api::authorize(&app, &plural, &ns, &name, auth.as_deref()).await;
            Ok::<_, Rejection>((app, task))
        })
        .untuple_one();
    let runner_progress = runner
        .clone()
        .and(warp::post())
        .and(warp::path!("progress"))
        .and(warp::body::content_length_limit(64 * 1024))
        .and(warp::body::bytes())
        .then(
            |app: Arc<App>, task: Result<AnyTask, ApiError>, body: Bytes| async move {
                respond(match task {
                    Ok(task) => runner_api::progress(&app, &task, &body).await,
                    Err(e) => Err(e),
                })
            },
        );
    let runner_completion = runner
        .clone()
        .and(warp::post())
        .and(warp::path!("completion"))
        .and(warp::body::content_length_limit(MAX_REQUEST_BYTES))
        .and(warp::body::bytes())
        .then(
            |app: Arc<App>, task: Result<AnyTask, ApiError>, body: Bytes| async move {
                respond(match task {
                    Ok(task) => runner_api::completion(&app, &task, &body).await,
                    Err(e) => Err(e),
                })
            },
        );
    let runner_upload = runner
        .and(warp::put())
        .and(warp::path("files"))
        .and(warp::path::tail())
        .and(warp::body::stream())
        .and(with_metrics.clone())
        .then(upload);
    let document = Arc::new(crate::openapi::document().to_string());
    let openapi = warp::get().and(warp::path!("openapi.json")).map(move || {
        warp::reply::with_header(
            document.as_str().to_owned(),
            warp::http::header::CONTENT_TYPE,
            "application/json",
        )
        .into_response()
    });
    let swagger_page = surface.docs.swagger_ui("/openapi.json");
    let docs = warp::get()
        .and(warp::path!("docs"))
        .map(move || warp::reply::html(swagger_page.clone()).into_response());
    let redoc_page = surface.docs.redoc("/openapi.json");
    let redoc = warp::get()
        .and(warp::path!("redoc"))
        .map(move || warp::reply::html(redoc_page.clone()).into_response());
    let metrics_route = {
        let metrics = surface.metrics.clone();
        warp::get()
            .and(warp::path!("metrics"))
            .map(move || metrics_reply(&metrics))
    };
    let root = warp::get().and(warp::path::end()).map(|| {
        warp::reply::json(&serde_json::json!({
            "message": "Runner Manager",
            "version": env!("CARGO_PKG_VERSION"),
            "health_check": "/api/health",
            "api_docs_visibility": "public",
        }))
        .into_response()
    });

    let limited = warp::addr::remote().and_then(move |addr: Option<std::net::SocketAddr>| {
        let limiter = limiter.clone();
        async move {
            if limiter.allow(addr.map(|a| a.ip()), Instant::now()) {
                Ok(())
            } else {
                Err(warp::reject::custom(RateLimited))
            }
        }
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
        openapi.boxed(),
        docs.boxed(),
        redoc.boxed(),
    ] {
        api = api.or(next).unify().boxed();
    }
    let served = metrics_route
        .boxed()
        .or(limited.untuple_one().and(api).boxed())
        .unify()
        .recover(rejection)
        .unify();

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
    task: Result<AnyTask, ApiError>,
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
        Err(e) => Err(e),
    };
    if result.is_ok() {
        metrics.bytes_uploaded(received.load(Ordering::Relaxed));
    }
    respond(result)
}

#[derive(Debug)]
struct RateLimited;
impl warp::reject::Reject for RateLimited {}

/// Rejections in Esup-Pod's error shape, so that no request gets an HTML or empty answer.
async fn rejection(r: Rejection) -> Result<Response, Infallible> {
    let response = if r.find::<RateLimited>().is_some() {
        let body = warp::reply::json(&serde_json::json!({"error": "Rate limit exceeded"}));
        let mut response =
            warp::reply::with_status(body, StatusCode::TOO_MANY_REQUESTS).into_response();
        response
            .extensions_mut()
            .insert(ErrorCategory("RateLimited"));
        response
    } else if r.is_not_found() {
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

    #[test]
    fn rate_limit_per_client_and_window() {
        let limiter = RateLimiter::new(3, Duration::from_secs(60));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        assert!((0..3).all(|_| limiter.allow(Some(a), t0)));
        assert!(!limiter.allow(Some(a), t0));
        assert!(limiter.allow(Some(b), t0), "clients are counted apart");
        assert!(
            limiter.allow(Some(a), t0 + Duration::from_secs(61)),
            "a new window"
        );
        assert!(limiter.allow(None, t0));
    }

    /// An App whose Kubernetes client points at a closed loopback port: the routes answer
    /// from empty caches, which is all routing needs.
    fn offline_app(results: &std::path::Path) -> Arc<App> {
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        let (pools, _writer) = kube::runtime::reflector::store();
        let store = crate::store::ResultStore::new(&crate::store::StoreConfig::Filesystem {
            root: results.to_owned(),
        })
        .unwrap();
        Arc::new(App {
            tasks: crate::tasks::Tasks::start(client),
            tokens: Arc::default(),
            policy: crate::url_policy::UrlPolicy::default(),
            dedup: crate::dedup::Dedup::new(),
            pools,
            store,
        })
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
        let metrics = Arc::new(Metrics::new(Arc::default()));
        let surface = Arc::new(Surface {
            metrics: metrics.clone(),
            docs: DocsAssets::default(),
        });
        let limiter = Arc::new(RateLimiter::new(1000, Duration::from_secs(60)));
        let filter = routes(offline_app(results.path()), limiter, surface);
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
    async fn pages_metrics_and_document_are_served() {
        let results = tempfile::tempdir().unwrap();
        let surface = Arc::new(Surface {
            metrics: Arc::new(Metrics::new(Arc::default())),
            docs: DocsAssets::new("http://127.0.0.1:8000/assets"),
        });
        // A limit of one: /metrics must still answer once the limit is spent.
        let limiter = Arc::new(RateLimiter::new(1, Duration::from_secs(60)));
        let filter = routes(offline_app(results.path()), limiter, surface);
        let addr: std::net::SocketAddr = "192.0.2.7:5000".parse().unwrap();
        let get = |path: &'static str| warp::test::request().path(path).remote_addr(addr);
        let doc = get("/openapi.json").reply(&filter).await;
        assert_eq!(doc.status(), StatusCode::OK);
        assert_eq!(doc.headers()["content-type"], "application/json");
        let value: serde_json::Value = serde_json::from_slice(doc.body()).unwrap();
        assert_eq!(value["openapi"], "3.1.0");
        let limited = get("/docs").reply(&filter).await;
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
        for _ in 0..3 {
            let metrics = get("/metrics").reply(&filter).await;
            assert_eq!(metrics.status(), StatusCode::OK);
            assert!(
                metrics.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("application/openmetrics-text")
            );
        }
        let text = String::from_utf8(get("/metrics").reply(&filter).await.body().to_vec()).unwrap();
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
}
