//! Issue 15, item 3: clients that open connections and stall must neither hold the webhook's
//! memory nor its connections. Real listeners on 127.0.0.1 (as the binary serves them) with
//! one-second timeouts; a bounded, bench-style run (about 10 s).
//!
//! 400 stalled connections: 200 with a request head that never ends; 150 `POST /task/execute`
//! without a token, announcing 1 MiB and sending all of it but one byte; 50 with a tenant's
//! token whose body stalls after 4 KiB. Each must be closed by the server within its timeout
//! (or answered at once: 401 for the unauthenticated ones, whose body is never read), and the
//! process's resident memory must stay within 32 MiB of where it started. Then, with a cap
//! of 50 connections, a 51st client waits until a slot frees.
//! It holds about 850 file descriptors at once (both ends of each connection).

#![allow(clippy::expect_used, clippy::unwrap_used)] // test harness: fail loudly

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{TOKEN, Webhook, get, quick, request, rss};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MIB: usize = 1024 * 1024;
const RSS_BOUND: u64 = 32 * MIB as u64;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Stall {
    /// A request head that never ends.
    Head,
    /// No token, 1 MiB announced, all but one byte sent.
    UnauthenticatedBody,
    /// A tenant's token, 1 MiB announced, 4 KiB sent.
    AuthenticatedBody,
}

fn head(stall: Stall) -> String {
    match stall {
        Stall::Head => "GET /api/version HTTP/1.1\r\nHost: webhook\r\nX-Slow: ".to_owned(),
        Stall::UnauthenticatedBody => format!(
            "POST /task/execute HTTP/1.1\r\nHost: webhook\r\nContent-Type: application/json\r\n\
             Content-Length: {MIB}\r\n\r\n"
        ),
        Stall::AuthenticatedBody => format!(
            "POST /task/execute HTTP/1.1\r\nHost: webhook\r\nContent-Type: application/json\r\n\
             Authorization: Bearer {TOKEN}\r\nContent-Length: {MIB}\r\n\r\n"
        ),
    }
}

/// Opens a connection, sends what `stall` sends, then waits (at most `patience`) for the
/// server to close it. Returns how long the server took, and the status it answered, if any.
async fn stalled(
    addr: std::net::SocketAddr,
    stall: Stall,
    body: &'static [u8],
    patience: Duration,
) -> (Option<Duration>, u16) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let started = Instant::now();
    // Writes on their own task: a server that stops reading must not stall the reader. The
    // write half is kept open (dropping it would send FIN) until the server closes.
    let sender = tokio::spawn(async move {
        let _ = write.write_all(head(stall).as_bytes()).await;
        let sent = match stall {
            Stall::Head => &body[..0],
            Stall::UnauthenticatedBody => &body[..MIB - 1],
            Stall::AuthenticatedBody => &body[..4096],
        };
        let _ = write.write_all(sent).await;
        std::future::pending::<()>().await;
        drop(write);
    });
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(patience, async {
        let mut buf = [0u8; 4096];
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    sender.abort();
    let status = String::from_utf8_lossy(&answer)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (closed.then(|| started.elapsed()), status)
}

/// Samples the process's RSS until dropped; the peak is kept.
fn watch_rss() -> (Arc<AtomicU64>, tokio::task::JoinHandle<()>) {
    let peak = Arc::new(AtomicU64::new(rss()));
    let sampled = peak.clone();
    let task = tokio::spawn(async move {
        loop {
            sampled.fetch_max(rss(), Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    (peak, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_connections_are_closed_and_memory_stays_flat() {
    let webhook = Webhook::start(quick(1024)).await;
    let body: &'static [u8] = Box::leak(vec![b' '; MIB].into_boxed_slice());
    // Warm-up: every code path once, so that the baseline holds what they allocate once.
    let (status, _) = request(webhook.api, &get("/api/version", ""), b"").await;
    assert_eq!(status, 401);
    for stall in [
        Stall::Head,
        Stall::UnauthenticatedBody,
        Stall::AuthenticatedBody,
    ] {
        stalled(webhook.api, stall, body, Duration::from_secs(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let baseline = rss();
    let (peak, sampler) = watch_rss();

    let mix = [
        (Stall::Head, 200),
        (Stall::UnauthenticatedBody, 150),
        (Stall::AuthenticatedBody, 50),
    ];
    let started = Instant::now();
    let mut clients = Vec::new();
    for (stall, count) in mix {
        for _ in 0..count {
            let addr = webhook.api;
            clients.push(tokio::spawn(async move {
                (
                    stall,
                    stalled(addr, stall, body, Duration::from_secs(8)).await,
                )
            }));
        }
    }
    let mut open = Vec::new();
    let mut unexpected = Vec::new();
    let mut slowest = Duration::ZERO;
    for client in clients {
        let (stall, (closed, status)) = client.await.unwrap();
        match closed {
            Some(after) => {
                slowest = slowest.max(after);
                let expected: &[u16] = match stall {
                    // Closed without an answer when the head timeout strikes.
                    Stall::Head => &[0],
                    // Refused from the headers, the body never read: the server answers 401
                    // and closes; the unread body makes that close a reset, which may reach
                    // the client before it reads the answer.
                    Stall::UnauthenticatedBody => &[401, 0],
                    // Read until it stalls for the idle timeout.
                    Stall::AuthenticatedBody => &[408],
                };
                if !expected.contains(&status) {
                    unexpected.push((stall, status));
                }
            }
            None => open.push(stall),
        }
    }
    sampler.abort();
    let growth = peak.load(Ordering::Relaxed).saturating_sub(baseline);
    println!(
        "400 stalled connections: all closed within {slowest:?} (run {:?}); RSS {} MiB, peak growth {:.1} MiB",
        started.elapsed(),
        baseline / MIB as u64,
        growth as f64 / MIB as f64
    );
    assert!(
        open.is_empty(),
        "{} connections still open after 8 s: {:?}",
        open.len(),
        &open[..open.len().min(5)]
    );
    assert!(
        slowest < Duration::from_secs(4),
        "closed only after {slowest:?}"
    );
    assert!(
        growth < RSS_BOUND,
        "RSS grew by {} MiB with 400 stalled connections",
        growth / MIB as u64
    );
    assert!(
        unexpected.is_empty(),
        "unexpected answers: {:?}",
        &unexpected[..unexpected.len().min(5)]
    );
    // The server still answers, and counted what it closed.
    let (status, _) = request(
        webhook.api,
        &get(
            "/api/version",
            &format!("Authorization: Bearer {TOKEN}\r\n"),
        ),
        b"",
    )
    .await;
    assert_eq!(status, 200);
    let text = webhook.metrics.encode().unwrap();
    let timeouts: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix(r#"esup_runner_webhook_rejections_total{reason="timeout"} "#))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(timeouts >= 250.0, "timeouts counted: {timeouts}\n{text}");
    webhook.shutdown();

    // A cap of 50: the 51st connection waits, unaccepted, until a stalled one is closed.
    let capped = Webhook::start(quick(50)).await;
    let mut holders = Vec::new();
    for _ in 0..50 {
        let addr = capped.api;
        holders.push(tokio::spawn(async move {
            stalled(addr, Stall::Head, body, Duration::from_secs(8)).await
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while capped.metrics.open_connections() < 50 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(capped.metrics.open_connections(), 50);
    let asked = Instant::now();
    let addr = capped.api;
    let late = tokio::spawn(async move { request(addr, &get("/", ""), b"").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !late.is_finished(),
        "the 51st connection was served while 50 were open"
    );
    assert!(capped.metrics.open_connections() <= 50);
    let (status, _) = tokio::time::timeout(Duration::from_secs(5), late)
        .await
        .expect("served once the stalled connections are closed")
        .unwrap();
    assert_eq!(status, 200);
    let waited = asked.elapsed();
    println!("the 51st connection was served after {waited:?}");
    assert!(waited >= Duration::from_millis(500), "{waited:?}");
    for holder in holders {
        assert!(holder.await.unwrap().0.is_some());
    }
    capped.shutdown();
}
