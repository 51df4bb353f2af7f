//! Serving a warp filter on TCP with the defences warp's own server lacks: a header read
//! timeout (which also closes idle keep-alive connections), a body read timeout that only
//! runs while the server waits for the client (idle, then a minimum average rate, so that long
//! uploads pass and stalled ones do not hold a slot), a bounded read buffer, and a cap on
//! open connections (beyond it, new connections wait in the listen backlog, not in memory).
//! Shutdown is graceful: the listener closes, open connections finish their request, bounded.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Buf;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::time::{Instant, Sleep};
use warp::Filter;
use warp::reply::Response;

use crate::metrics::Metrics;

/// Largest read buffer of a connection, request head included: Esup-Pod's and the runners'
/// heads are well under 8 KiB; larger heads get 431.
pub const MAX_BUF_BYTES: usize = 64 * 1024;

/// How long open connections may take to finish after the shutdown signal (the chart gives
/// the pod 30 s).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(25);

/// How the body of a request may be read.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BodyTimeouts {
    /// Longest wait for the next bytes of a body.
    pub idle: Duration,
    /// Slowest average rate, in bytes per second of waiting, once the first `idle` period is
    /// spent; 0: no minimum.
    pub min_bytes_per_second: u64,
}

impl BodyTimeouts {
    /// How much longer the server may wait for the client, having received `received` bytes
    /// after waiting `waited` in all: the idle timeout, shortened when the average rate would
    /// fall below the minimum. Pure, for tests.
    pub fn wait_budget(&self, received: u64, waited: Duration) -> Duration {
        if self.min_bytes_per_second == 0 {
            return self.idle;
        }
        // Waiting time the bytes so far have earned, beyond the first idle period.
        let earned =
            self.idle + Duration::from_secs_f64(received as f64 / self.min_bytes_per_second as f64);
        earned.saturating_sub(waited).min(self.idle)
    }
}

/// The settings of one listener.
#[derive(Clone, Copy, Debug)]
pub struct ServeConfig {
    /// Time for a request head to arrive, counted from the connection's opening or the end of
    /// the previous request.
    pub header_read_timeout: Duration,
    pub body: BodyTimeouts,
    /// Most connections open at once.
    pub max_connections: usize,
}

/// The TCP peer of a request, in its extensions (warp's own marker is private to warp).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// A request body read too slowly.
#[derive(Debug, thiserror::Error)]
#[error("request body read timed out: no data for {0:?} or slower than the minimum rate")]
pub struct BodyTimeout(pub Duration);

impl BodyTimeout {
    pub const CATEGORY: &'static str = "BodyTimeout";

    /// Whether an error chain (as a body stream reports it) comes from this timeout.
    pub fn is_cause_of(error: &(dyn std::error::Error + 'static)) -> bool {
        let mut current = Some(error);
        while let Some(e) = current {
            if e.is::<BodyTimeout>() {
                return true;
            }
            current = e.source();
        }
        false
    }
}

/// A request body with the body timeouts: the timer runs only while the handler waits for
/// the client, never while the handler is busy elsewhere.
pub struct TimedBody<B> {
    inner: B,
    timeouts: BodyTimeouts,
    received: u64,
    waited: Duration,
    waiting_since: Option<Instant>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<B> TimedBody<B> {
    pub fn new(inner: B, timeouts: BodyTimeouts) -> Self {
        Self {
            inner,
            timeouts,
            received: 0,
            waited: Duration::ZERO,
            waiting_since: None,
            sleep: None,
        }
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body + Unpin,
    B::Data: Buf,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = B::Data;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                if let Some(since) = this.waiting_since.take() {
                    this.waited += since.elapsed();
                }
                if let Some(Ok(frame)) = &frame
                    && let Some(data) = frame.data_ref()
                {
                    this.received += data.remaining() as u64;
                }
                Poll::Ready(frame.map(|r| r.map_err(Into::into)))
            }
            Poll::Pending => {
                let now = Instant::now();
                let since = *this.waiting_since.get_or_insert(now);
                let deadline = since + this.timeouts.wait_budget(this.received, this.waited);
                let idle = this.timeouts.idle;
                let timed_out = || Poll::Ready(Some(Err(BodyTimeout(idle).into())));
                if now >= deadline {
                    return timed_out();
                }
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if sleep.deadline() != deadline {
                    sleep.as_mut().reset(deadline);
                }
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => timed_out(),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `filter` on `listener` until `shutdown` completes, then lets open connections finish
/// for up to [`SHUTDOWN_GRACE`]. `metrics`, when given, counts open connections and header
/// timeouts (the API listener's, not the metrics listener's).
pub async fn serve<F>(
    listener: TcpListener,
    filter: F,
    config: ServeConfig,
    metrics: Option<Arc<Metrics>>,
    shutdown: impl Future<Output = ()>,
) where
    F: Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static,
{
    let service = hyper_util::service::TowerToHyperService::new(warp::service(filter));
    let max = config.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(max));
    let (stop, stopping) = watch::channel(false);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_buf_size(MAX_BUF_BYTES);
    tokio::pin!(shutdown);
    loop {
        // A slot first: past the cap, connections wait in the kernel's backlog, unaccepted.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: wait a little
                    // rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        let body = config.body;
        let connection_service =
            hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                let mut request = request.map(|b| TimedBody::new(b, body));
                request.extensions_mut().insert(PeerAddr(peer));
                hyper::service::Service::call(&service, request)
            });
        let connection = builder.serve_connection(TokioIo::new(stream), connection_service);
        let mut stopping = stopping.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _open = metrics.as_ref().map(|m| m.connection_opened());
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = async { let _ = stopping.wait_for(|stop| *stop).await; } => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                if e.is_timeout() {
                    tracing::debug!(%peer, "request head not received in time");
                    if let Some(metrics) = &metrics {
                        metrics.header_timeout();
                    }
                } else {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            }
        });
    }
    drop(listener);
    let _ = stop.send(true);
    // Every slot back means every connection ended.
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    if tokio::time::timeout(SHUTDOWN_GRACE, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown grace period");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_budget_is_idle_then_minimum_rate() {
        let t = BodyTimeouts {
            idle: Duration::from_secs(30),
            min_bytes_per_second: 1000,
        };
        let s = Duration::from_secs;
        assert_eq!(t.wait_budget(0, s(0)), s(30));
        assert_eq!(t.wait_budget(0, s(10)), s(20), "no bytes: 30 s in all");
        // 1 MB earns 1000 s of waiting: the idle timeout rules.
        assert_eq!(t.wait_budget(1_000_000, s(100)), s(30));
        // 40 kB after 65 s of waiting: 30 + 40 - 65 = 5 s left.
        assert_eq!(t.wait_budget(40_000, s(65)), s(5));
        assert_eq!(t.wait_budget(40_000, s(80)), s(0));
        let no_rate = BodyTimeouts {
            min_bytes_per_second: 0,
            ..t
        };
        assert_eq!(no_rate.wait_budget(0, s(1000)), s(30));
    }

    #[tokio::test]
    async fn a_stalled_body_times_out_and_a_slow_consumer_does_not() {
        use http_body_util::BodyExt;
        let timeouts = BodyTimeouts {
            idle: Duration::from_millis(200),
            min_bytes_per_second: 0,
        };
        // A body whose sender sends one chunk, then stalls.
        let (mut tx, rx) =
            futures::channel::mpsc::channel::<Result<Frame<bytes::Bytes>, Infallible>>(4);
        let mut body = TimedBody::new(http_body_util::StreamBody::new(rx), timeouts);
        tx.try_send(Ok(Frame::data(bytes::Bytes::from_static(b"abc"))))
            .unwrap();
        // The consumer is busy for longer than the idle timeout: not the client's fault, the
        // data was there.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap().as_ref(), b"abc");
        let started = Instant::now();
        let error = body.frame().await.unwrap().unwrap_err();
        assert!(BodyTimeout::is_cause_of(error.as_ref()), "{error}");
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(200) && waited < Duration::from_secs(2),
            "{waited:?}"
        );
        drop(tx);
    }
}
