//! The operator's HTTP endpoints: `/metrics` (OpenMetrics), `/healthz` (liveness) and
//! `/readyz` (readiness).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use warp::Filter;
use warp::http::StatusCode;
use warp::http::header::CONTENT_TYPE;
use warp::reply::{Reply, Response};

use crate::metrics::Metrics;

const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Readiness and liveness of the operator, shared between the scheduling loop and the probes.
#[derive(Debug)]
pub struct Health {
    ready: AtomicBool,
    /// Origin of `last_beat_ms`; an offset in an atomic avoids a lock on every pass.
    started: Instant,
    last_beat_ms: AtomicU64,
    stall_after: Duration,
}

impl Health {
    /// Alive until `stall_after` passes without a `beat()`. Creation counts as the first
    /// beat, so a slow start (initial watcher lists) does not fail the liveness probe.
    pub fn new(stall_after: Duration) -> Arc<Self> {
        Arc::new(Self {
            ready: AtomicBool::new(false),
            started: Instant::now(),
            last_beat_ms: AtomicU64::new(0),
            stall_after,
        })
    }

    /// Ready once the watchers have synced; followers are ready too, so that a failover
    /// finds a warm replica behind the Service.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Records a completed scheduling pass (followers beat too: their loop must not hang).
    pub fn beat(&self) {
        self.last_beat_ms
            .store(self.millis_since_start(Instant::now()), Ordering::Relaxed);
    }

    pub fn is_alive(&self) -> bool {
        self.stalled_for(Instant::now()).is_none()
    }

    fn millis_since_start(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.started).as_millis()).unwrap_or(u64::MAX)
    }

    /// How long since the last beat, when that is longer than `stall_after`.
    fn stalled_for(&self, now: Instant) -> Option<Duration> {
        let since_beat = Duration::from_millis(
            self.millis_since_start(now)
                .saturating_sub(self.last_beat_ms.load(Ordering::Relaxed)),
        );
        (since_beat > self.stall_after).then_some(since_beat)
    }

    fn liveness_at(&self, now: Instant) -> Response {
        match self.stalled_for(now) {
            None => "ok".into_response(),
            Some(since) => warp::reply::with_status(
                format!(
                    "stalled: no scheduling pass completed for {}s (limit {}s)",
                    since.as_secs(),
                    self.stall_after.as_secs()
                ),
                StatusCode::SERVICE_UNAVAILABLE,
            )
            .into_response(),
        }
    }

    fn readiness(&self) -> Response {
        if self.is_ready() {
            "ready".into_response()
        } else {
            warp::reply::with_status(
                "not ready: watchers have not synced yet",
                StatusCode::SERVICE_UNAVAILABLE,
            )
            .into_response()
        }
    }
}

fn metrics_reply(metrics: &Metrics) -> Response {
    match metrics.encode() {
        Ok(text) => {
            warp::reply::with_header(text, CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot encode metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// `GET /metrics`, `GET /healthz`, `GET /readyz`; anything else is rejected (404/405).
pub fn routes(
    metrics: Arc<Metrics>,
    health: Arc<Health>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + Send + Sync + 'static {
    let metrics_route = warp::path!("metrics")
        .and(warp::get())
        .map(move || metrics_reply(&metrics));
    let live = Arc::clone(&health);
    let healthz = warp::path!("healthz")
        .and(warp::get())
        .map(move || live.liveness_at(Instant::now()));
    let readyz = warp::path!("readyz")
        .and(warp::get())
        .map(move || health.readiness());
    metrics_route.or(healthz).unify().or(readyz).unify()
}

/// Serves `routes` on `addr` until `shutdown` resolves. Fails only if `addr` cannot be bound.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Bind here rather than in warp, whose `bind` panics on failure.
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    warp::serve(routes(metrics, health))
        .incoming(listener)
        .graceful(shutdown)
        .run()
        .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(
        path: &str,
        health: &Arc<Health>,
    ) -> warp::http::Response<warp::hyper::body::Bytes> {
        let metrics = Arc::new(Metrics::new());
        metrics.inc_writes("status");
        warp::test::request()
            .method("GET")
            .path(path)
            .reply(&routes(metrics, Arc::clone(health)))
            .await
    }

    fn body(res: &warp::http::Response<warp::hyper::body::Bytes>) -> String {
        String::from_utf8_lossy(res.body()).into_owned()
    }

    #[tokio::test]
    async fn metrics_are_openmetrics_text() {
        let health = Health::new(Duration::from_secs(60));
        let res = get("/metrics", &health).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            res.headers().get(CONTENT_TYPE).map(|v| v.as_bytes()),
            Some(OPENMETRICS_CONTENT_TYPE.as_bytes())
        );
        let text = body(&res);
        assert!(
            text.contains(r#"esup_runner_operator_kube_api_writes_total{kind="status"} 1"#),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }

    #[tokio::test]
    async fn healthz_is_ok_after_a_recent_beat() {
        let health = Health::new(Duration::from_secs(60));
        health.beat();
        let res = get("/healthz", &health).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(body(&res), "ok");
    }

    #[tokio::test]
    async fn healthz_reports_a_stall() {
        let health = Health::new(Duration::ZERO);
        // Wait out the millisecond resolution so the zero limit is exceeded.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let res = get("/healthz", &health).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(body(&res).starts_with("stalled: "), "{}", body(&res));
    }

    #[test]
    fn liveness_follows_the_last_beat() {
        let health = Health::new(Duration::from_secs(60));
        let now = Instant::now();
        assert!(health.stalled_for(now).is_none());
        assert_eq!(
            health
                .stalled_for(now + Duration::from_secs(3600))
                .map(|d| d.as_secs()),
            Some(3600)
        );
        health.beat();
        assert!(
            health
                .stalled_for(Instant::now() + Duration::from_secs(59))
                .is_none()
        );
        assert!(
            health
                .stalled_for(Instant::now() + Duration::from_secs(61))
                .is_some()
        );
        assert!(health.is_alive());
    }

    #[tokio::test]
    async fn readyz_follows_the_ready_flag() {
        let health = Health::new(Duration::from_secs(60));
        let res = get("/readyz", &health).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(body(&res).starts_with("not ready: "));

        health.set_ready(true);
        let res = get("/readyz", &health).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(body(&res), "ready");
    }

    #[tokio::test]
    async fn unknown_paths_and_methods_are_rejected() {
        let health = Health::new(Duration::from_secs(60));
        assert_eq!(get("/", &health).await.status(), StatusCode::NOT_FOUND);
        let res = warp::test::request()
            .method("POST")
            .path("/metrics")
            .reply(&routes(Arc::new(Metrics::new()), health))
            .await;
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
}
