//! The HTTP surface: warp filters binding paths to handlers, request size limits, rate
//! limiting per client, and rejections turned into `{"detail": ...}` bodies.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};
use warp::{Filter, Rejection};

use crate::error::ApiError;
use crate::manager_api::{self, App};
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

fn respond(result: Result<Response, ApiError>) -> Response {
    match result {
        Ok(response) => response,
        Err(e) => {
            if e.status.is_server_error() {
                tracing::warn!(category = e.category, detail = %e.detail, "request failed");
            }
            e.into_response()
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
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let with_app = {
        let app = app.clone();
        warp::any().map(move || app.clone())
    };
    let auth = caller(app.clone());

    let execute = warp::post()
        .and(warp::path!("task" / "execute"))
        .and(with_app.clone())
        .and(auth.clone())
        .and(warp::body::content_length_limit(MAX_REQUEST_BYTES))
        .and(warp::body::bytes())
        .then(
            |app: Arc<App>, caller: Result<Caller, ApiError>, body: Bytes| async move {
                respond(match caller {
                    Ok(caller) => manager_api::execute(&app, caller, &body).await,
                    Err(e) => Err(e),
                })
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
        .then(
            |id: String,
             tail: warp::path::Tail,
             range: Option<String>,
             app: Arc<App>,
             caller: Result<Caller, ApiError>| async move {
                respond(match caller {
                    Ok(c) => {
                        runner_api::download(&app, &c, &id, tail.as_str(), range.as_deref()).await
                    }
                    Err(e) => Err(e),
                })
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
        .then(upload);
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

    limited
        .untuple_one()
        .and(
            execute
                .or(status)
                .unify()
                .or(result)
                .unify()
                .or(health)
                .unify()
                .or(version)
                .unify()
                .or(list)
                .unify()
                .or(api_tasks)
                .unify()
                .or(api_runners)
                .unify()
                .or(stop)
                .unify()
                .or(download)
                .unify()
                .or(runner_progress)
                .unify()
                .or(runner_completion)
                .unify()
                .or(runner_upload)
                .unify()
                .or(root)
                .unify(),
        )
        .recover(rejection)
        .unify()
}

async fn upload<S, B>(
    app: Arc<App>,
    task: Result<AnyTask, ApiError>,
    tail: warp::path::Tail,
    body: S,
) -> Response
where
    S: futures::Stream<Item = Result<B, warp::Error>> + Send + 'static,
    B: bytes::Buf + Send,
{
    use futures::TryStreamExt;
    let path = percent_encoding::percent_decode_str(tail.as_str())
        .decode_utf8_lossy()
        .into_owned();
    respond(match task {
        Ok(task) => {
            let body = body.map_ok(|mut buf| buf.copy_to_bytes(buf.remaining()));
            runner_api::upload(&app, &task, &path, Box::pin(body)).await
        }
        Err(e) => Err(e),
    })
}

#[derive(Debug)]
struct RateLimited;
impl warp::reject::Reject for RateLimited {}

/// Rejections in Esup-Pod's error shape, so that no request gets an HTML or empty answer.
async fn rejection(r: Rejection) -> Result<Response, Infallible> {
    let response = if r.find::<RateLimited>().is_some() {
        let body = warp::reply::json(&serde_json::json!({"error": "Rate limit exceeded"}));
        warp::reply::with_status(body, StatusCode::TOO_MANY_REQUESTS).into_response()
    } else if r.is_not_found() {
        ApiError::new(StatusCode::NOT_FOUND, "NotFound", "Not Found").into_response()
    } else if r.find::<warp::reject::PayloadTooLarge>().is_some() {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
            "Request body too large",
        )
        .into_response()
    } else if r.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "Method Not Allowed",
        )
        .into_response()
    } else if r.find::<warp::reject::LengthRequired>().is_some() {
        ApiError::new(
            StatusCode::LENGTH_REQUIRED,
            "LengthRequired",
            "Content-Length required",
        )
        .into_response()
    } else {
        ApiError::bad_request("BadRequest", format!("{r:?}")).into_response()
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
}
