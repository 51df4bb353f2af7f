//! The HTTP surface: the API port's routes, built from the route table (`openapi::Route`)
//! one filter each (`filters`), the handlers' adapters (`handlers`: bounded bodies, metrics),
//! request size limits, rate limits (per tenant, per task, per client address: `rate_limit`),
//! refusals and rejections turned into `{"detail": ...}` bodies in one recover, and the API's
//! own description (`/openapi.json`, `/docs`, `/redoc`). Every request is counted by the
//! route template it matched.
//!
//! Callers are authenticated from the headers before any body is read: an unauthenticated
//! request never makes the webhook buffer its body. `/metrics` and the probes are served by
//! `ops_routes`, on the metrics port only, never on the API port.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use warp::http::StatusCode;
use warp::reply::{Reply, Response};
use warp::{Filter, Rejection};

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::openapi::{DocsAssets, Route};
use crate::rate_limit::{ClientAddress, KeyedLimiter, address_key};
use crate::state::App;

mod filters;
mod handlers;

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

/// Every route of the API port, one filter per [`Route`] (`filters`): Esup-Pod's side, the
/// runners' callbacks, the API's description. Not `/metrics` (`ops_routes`).
pub fn routes(
    app: Arc<App>,
    limits: Arc<Limits>,
    surface: Arc<Surface>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let context = filters::Context {
        app,
        limits,
        surface: surface.clone(),
    };
    // Each route is boxed before they are chained: the nested filter types of an unboxed
    // chain this long take rustc many minutes to check.
    let none = warp::any()
        .and_then(|| async { Err::<Response, _>(warp::reject::not_found()) })
        .boxed();
    let api = Route::ALL
        .into_iter()
        .filter_map(|route| filters::route(route, &context))
        .fold(none, |api, next| api.or(next).unify().boxed());
    observed(api.recover(rejection).unify(), surface.metrics.clone())
}

/// Counts every answer by the route template its request matched (`Route::classify`).
fn observed(
    served: impl Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static,
    metrics: Arc<Metrics>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
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

/// Rejections in Esup-Pod's error shape, so that no request gets an HTML or empty answer.
/// A filter's refusal (authentication, rate limit) is answered as its handler would have.
async fn rejection(r: Rejection) -> Result<Response, Infallible> {
    let response = if let Some(e) = r.find::<ApiError>() {
        respond(Err(e.clone()))
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
    use std::net::SocketAddr;

    fn offline_app(results: &std::path::Path, tenants: &[(&str, &str)]) -> Arc<App> {
        Arc::new(crate::state::offline_app(
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
            r#"esup_runner_webhook_http_requests_total{route="/task/status/{task_id}",method="GET",status="4xx"} 1"#
        ));
        assert!(text.contains(r#"esup_runner_webhook_rejections_total{reason="auth"}"#));
        assert!(
            text.contains(
                r#"esup_runner_webhook_http_requests_total{route="unmatched",method="GET",status="4xx"} 1"#
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
        assert!(
            text.contains("esup_runner_webhook_http_requests_total"),
            "{text}"
        );
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
            text.contains(r#"esup_runner_webhook_rejections_total{reason="rate_limit"} 1"#),
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
            text.contains(r#"esup_runner_webhook_errors_total{category="TenantRateLimited"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"esup_runner_webhook_rejections_total{reason="rate_limit"} 1"#),
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
