//! An HTTP/1.1 load generator: each client owns one keep-alive connection and has at most one
//! request in flight on it, as a real client without pipelining.
//!
//! - **Open loop** ([`open_loop`]): each client sends on its own fixed schedule
//!   ([`super::schedule`]), and a request's latency runs from its *scheduled* time. A slow
//!   answer delays that client's next send, and the delay is counted in the next latency, so
//!   coordinated omission is not hidden.
//! - **Closed loop** ([`closed_loop`]): each client sends its next request as soon as the last
//!   answer arrives: the maximum throughput at that concurrency.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::schedule;

/// Builds the request numbered `seq` (a sequence over the whole phase).
pub type MakeRequest = Arc<dyn Fn(u64) -> Request<Full<Bytes>> + Send + Sync>;

/// One client's connection.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> Result<Self, String> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        stream
            .set_nodelay(true)
            .map_err(|e| format!("nodelay: {e}"))?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake with {addr}: {e}"))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Self { sender })
    }

    /// Sends one request and reads its whole answer.
    pub async fn send(
        &mut self,
        request: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, Bytes), String> {
        self.sender
            .ready()
            .await
            .map_err(|e| format!("connection closed: {e}"))?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        Ok((status, body))
    }
}

/// Opens `n` connections, at most 64 handshakes at a time (the listener's accept queue is
/// finite).
pub async fn open_many(addr: SocketAddr, n: usize) -> Result<Vec<Conn>, String> {
    use futures::{StreamExt, TryStreamExt};
    futures::stream::iter(0..n)
        .map(|_| Conn::open(addr))
        .buffered(64)
        .try_collect()
        .await
}

/// What a phase measured.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Latency of every answered request, whatever its status.
    pub latencies: Vec<Duration>,
    /// Answers by HTTP status.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests without an answer (connection errors).
    pub errors: u64,
    /// From the phase's start to its last answer.
    pub elapsed: Duration,
}

impl Outcome {
    pub fn answered(&self) -> u64 {
        self.statuses.values().sum()
    }

    /// Answers per second over the phase.
    pub fn throughput(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.answered() as f64 / secs
        } else {
            0.0
        }
    }

    /// Answers with a status other than `expected`.
    pub fn unexpected(&self, expected: u16) -> u64 {
        self.statuses
            .iter()
            .filter(|(s, _)| **s != expected)
            .map(|(_, n)| n)
            .sum()
    }

    fn merge(&mut self, other: ClientOutcome) {
        self.latencies.extend(other.latencies);
        for (s, n) in other.statuses {
            *self.statuses.entry(s).or_default() += n;
        }
        self.errors += other.errors;
    }
}

#[derive(Default)]
struct ClientOutcome {
    latencies: Vec<Duration>,
    statuses: BTreeMap<u16, u64>,
    errors: u64,
}

impl ClientOutcome {
    fn record(&mut self, result: Result<(StatusCode, Bytes), String>, latency: Duration) {
        match result {
            Ok((status, _)) => {
                self.latencies.push(latency);
                *self.statuses.entry(status.as_u16()).or_default() += 1;
            }
            Err(_) => self.errors += 1,
        }
    }
}

/// Collects the clients' outcomes and gives their connections back (a broken one is left out).
async fn gather(
    handles: Vec<tokio::task::JoinHandle<(Option<Conn>, ClientOutcome)>>,
    start: Instant,
) -> Result<(Vec<Conn>, Outcome), String> {
    let mut conns = Vec::with_capacity(handles.len());
    let mut outcome = Outcome::default();
    for h in handles {
        let (conn, client) = h.await.map_err(|e| format!("client task: {e}"))?;
        conns.extend(conn);
        outcome.merge(client);
    }
    outcome.elapsed = start.elapsed();
    Ok((conns, outcome))
}

/// Open loop at an aggregate `rate` per second over `duration`, one schedule per connection.
pub async fn open_loop(
    conns: Vec<Conn>,
    make: MakeRequest,
    rate: f64,
    duration: Duration,
) -> Result<(Vec<Conn>, Outcome), String> {
    let clients = conns.len();
    // Every client starts from the same instant, a little ahead so that spawning is done.
    let start = Instant::now() + Duration::from_millis(50);
    let handles = conns
        .into_iter()
        .enumerate()
        .map(|(i, mut conn)| {
            let make = make.clone();
            tokio::spawn(async move {
                let mut out = ClientOutcome::default();
                let sends = schedule::sends_in(i, clients, rate, duration);
                for k in 0..sends {
                    let due = start + schedule::send_offset(i, clients, rate, k);
                    tokio::time::sleep_until(due).await;
                    let seq = i as u64 + k * clients as u64;
                    let result = conn.send(make(seq)).await;
                    let broken = result.is_err();
                    out.record(result, due.elapsed());
                    if broken {
                        return (None, out);
                    }
                }
                (Some(conn), out)
            })
        })
        .collect();
    gather(handles, start).await
}

/// When a closed loop stops.
#[derive(Clone, Copy, Debug)]
pub enum Limit {
    /// No new request after this long.
    For(Duration),
    /// This many requests in all, shared by the clients.
    Count(u64),
}

/// Closed loop: every client sends back to back until `limit`.
pub async fn closed_loop(
    conns: Vec<Conn>,
    make: MakeRequest,
    limit: Limit,
) -> Result<(Vec<Conn>, Outcome), String> {
    let start = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let handles = conns
        .into_iter()
        .map(|mut conn| {
            let make = make.clone();
            let next = next.clone();
            tokio::spawn(async move {
                let mut out = ClientOutcome::default();
                loop {
                    let seq = next.fetch_add(1, Ordering::Relaxed);
                    let more = match limit {
                        Limit::For(d) => start.elapsed() < d,
                        Limit::Count(n) => seq < n,
                    };
                    if !more {
                        return (Some(conn), out);
                    }
                    let sent = Instant::now();
                    let result = conn.send(make(seq)).await;
                    let broken = result.is_err();
                    out.record(result, sent.elapsed());
                    if broken {
                        return (None, out);
                    }
                }
            })
        })
        .collect();
    gather(handles, start).await
}
