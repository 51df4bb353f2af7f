//! One warp filter per [`Route`], built from the route table: the method and the path come
//! from the route's template, what else it takes (a tenant's token, a callback token, a body
//! limit, headers) from its kind. Authentication and rate limits are rejecting filters
//! (`ApiError` as a custom rejection, answered by the one recover in `server::rejection`), so
//! a handler only ever receives a `Caller` or an `Authorized` task. Headers only before the
//! authentication: an unauthenticated request never makes the webhook read its body.
//! No I/O of its own beyond the callback token check.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use futures::future;
use warp::filters::BoxedFilter;
use warp::http::HeaderMap;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::handlers::{self, Page, PathArgs};
use super::{Limits, MAX_PROGRESS_BYTES, MAX_REQUEST_BYTES, Surface, rate_limited};
use crate::error::ApiError;
use crate::manager_api;
use crate::openapi::{Access, Route};
use crate::rate_limit::address_key;
use crate::runner_api::{self, Authorized};
use crate::serve::PeerAddr;
use crate::state::App;
use crate::tenants::Caller;

/// What the filters are built from.
pub(super) struct Context {
    pub app: Arc<App>,
    pub limits: Arc<Limits>,
    pub surface: Arc<Surface>,
}

/// The filter that serves `route`; `None` for `/admin/`, which `Admin`'s filter already
/// serves (warp's path end takes a trailing slash), so that no request is limited twice.
pub(super) fn route(route: Route, context: &Context) -> Option<BoxedFilter<(Response,)>> {
    let at = method(route.method()).and(path(route.template())).boxed();
    Some(match route.access() {
        Access::Public if route == Route::AdminIndex => return None,
        Access::Public => public_route(route, at, context),
        Access::Tenant => tenant_route(route, at, context),
        Access::Callback => callback_route(route, at, context),
    })
}

fn method(method: &'static str) -> BoxedFilter<()> {
    match method {
        "POST" => warp::post().boxed(),
        "PUT" => warp::put().boxed(),
        _ => warp::get().boxed(),
    }
}

/// The path filter of a template: literal segments, `{x}` one segment, a final `{path}` the
/// rest (slashes included), then the end of the path.
fn path(template: &'static str) -> BoxedFilter<(PathArgs,)> {
    let mut filter = warp::any().map(PathArgs::default).boxed();
    let mut segments = template.split('/').skip(1).peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        filter = if segment.is_empty() {
            // `/` and `/admin/`: the end, below.
            filter
        } else if segment == "{path}" && last {
            return filter
                .and(warp::path::tail())
                .map(|mut args: PathArgs, tail: warp::path::Tail| {
                    args.push("path", tail.as_str().to_owned());
                    args
                })
                .boxed();
        } else if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            filter
                .and(warp::path::param::<String>())
                .map(move |mut args: PathArgs, value: String| {
                    args.push(name, value);
                    args
                })
                .boxed()
        } else {
            filter.and(warp::path(segment)).boxed()
        };
    }
    filter.and(warp::path::end()).boxed()
}

/// The root, the API's description and the admin page: no token, the client address's limit.
fn public_route(
    route: Route,
    at: BoxedFilter<(PathArgs,)>,
    context: &Context,
) -> BoxedFilter<(Response,)> {
    let page = Arc::new(Page::of(route, &context.surface));
    at.and(public(context.limits.clone()))
        .map(move |_: PathArgs| page.answer())
        .boxed()
}

/// Esup-Pod's routes: a tenant's token.
fn tenant_route(
    route: Route,
    at: BoxedFilter<(PathArgs,)>,
    context: &Context,
) -> BoxedFilter<(Response,)> {
    let app = context.app.clone();
    let metrics = context.surface.metrics.clone();
    let caller = caller(context.app.clone(), context.limits.clone());
    match route {
        Route::Execute => at
            .and(warp::body::content_length_limit(MAX_REQUEST_BYTES))
            .and(caller)
            .and(warp::body::stream())
            .then(move |_: PathArgs, caller: Caller, body| {
                handlers::execute(app.clone(), caller, body, metrics.clone())
            })
            .boxed(),
        Route::ResultFile => at
            .and(warp::header::optional::<String>("range"))
            .and(caller)
            .then(
                move |args: PathArgs, range: Option<String>, caller: Caller| {
                    handlers::download(app.clone(), caller, args, range, metrics.clone())
                },
            )
            .boxed(),
        _ => at
            .and(caller)
            .then(move |args: PathArgs, caller: Caller| {
                handlers::tenant_call(route, app.clone(), caller, args)
            })
            .boxed(),
    }
}

/// The runners' callbacks: the task's callback token, checked after the method and the
/// call's own path (one Secret read at most per request), the body read after it.
fn callback_route(
    route: Route,
    at: BoxedFilter<(PathArgs,)>,
    context: &Context,
) -> BoxedFilter<(Response,)> {
    let app = context.app.clone();
    let (limits, client_app) = (context.limits.clone(), context.app.clone());
    let task = move |at: BoxedFilter<(PathArgs,)>| {
        authorized(at, client_app.clone(), limits.clone()).and(warp::body::stream())
    };
    match route {
        Route::RunnerUpload => {
            let metrics = context.surface.metrics.clone();
            task(at)
                .then(move |args: PathArgs, task: Authorized, body| {
                    handlers::upload(app.clone(), task, args, body, metrics.clone())
                })
                .boxed()
        }
        _ => {
            let limit = if route == Route::RunnerProgress {
                MAX_PROGRESS_BYTES
            } else {
                MAX_REQUEST_BYTES
            };
            task(at.and(warp::body::content_length_limit(limit)).boxed())
                .then(move |_: PathArgs, task: Authorized, body| {
                    handlers::report(route, app.clone(), task, body, limit)
                })
                .boxed()
        }
    }
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

/// The caller; refused with its authentication error, or 429 when the tenant is over its
/// limit, or when a request without a valid token comes from an address over the anonymous
/// limit. Headers only: the body is read after this.
fn caller(
    app: Arc<App>,
    limits: Arc<Limits>,
) -> impl Filter<Extract = (Caller,), Error = Rejection> + Clone {
    client(limits.clone())
        .and(warp::header::optional::<String>("x-api-token"))
        .and(warp::header::optional::<String>("authorization"))
        .and_then(
            move |client: Option<IpAddr>, x: Option<String>, auth: Option<String>| {
                let now = Instant::now();
                let caller =
                    match manager_api::authenticate(&app.tokens, x.as_deref(), auth.as_deref()) {
                        Ok(caller) if limits.tenant.allow(&caller.tenant.name, now) => Ok(caller),
                        Ok(_) => Err(rate_limited("TenantRateLimited")),
                        Err(e) => limits.anonymous(client, now).and(Err(e)),
                    };
                future::ready(caller.map_err(warp::reject::custom))
            },
        )
}

/// Public routes: counted against the client's address.
fn public(limits: Arc<Limits>) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    client(limits.clone())
        .and_then(move |client| {
            let allowed = limits.anonymous(client, Instant::now());
            future::ready(allowed.map_err(warp::reject::custom))
        })
        .untuple_one()
}

/// A runner callback's task, once its callback token matched, with the path's arguments.
fn authorized(
    at: BoxedFilter<(PathArgs,)>,
    app: Arc<App>,
    limits: Arc<Limits>,
) -> impl Filter<Extract = (PathArgs, Authorized), Error = Rejection> + Clone {
    at.and(client(limits.clone()))
        .and(warp::header::optional::<String>("authorization"))
        .and_then(
            move |args: PathArgs, client: Option<IpAddr>, auth: Option<String>| {
                let (app, limits) = (app.clone(), limits.clone());
                async move {
                    let task = args.task();
                    match authorize_callback(&app, &limits, client, task, auth.as_deref()).await {
                        Ok(task) => Ok((args, task)),
                        Err(e) => Err(warp::reject::custom(e)),
                    }
                }
            },
        )
        .untuple_one()
}

/// Checks a runner callback's token. An address that has spent its anonymous allowance on
/// failures is refused before the check (which may read a Secret from the API server); only
/// failures spend it, so a flood of bad tokens does not limit the runners that authenticate,
/// and each task has its own limit.
async fn authorize_callback(
    app: &App,
    limits: &Limits,
    client: Option<IpAddr>,
    task: (String, String, String),
    authorization: Option<&str>,
) -> Result<Authorized, ApiError> {
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
