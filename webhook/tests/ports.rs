//! Issue 15, item 14: `/metrics` and the probes on their own port, never on the API port (the
//! one the chart's Ingress routes). Real listeners on 127.0.0.1.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{TOKEN, Webhook, get, quick, request};

#[tokio::test]
async fn metrics_and_probes_are_served_on_the_metrics_port_only() {
    let webhook = Webhook::start(quick(16)).await;
    // The API port: no metrics, no probes; the protocol's own health stays there.
    for path in ["/metrics", "/healthz", "/readyz"] {
        let (status, answer) = request(webhook.api, &get(path, ""), b"").await;
        assert_eq!(status, 404, "{path} on the API port: {answer}");
        assert!(!answer.contains("esup_runner_webhook_"), "{answer}");
    }
    let auth = format!("Authorization: Bearer {TOKEN}\r\n");
    let (status, _) = request(webhook.api, &get("/manager/health", &auth), b"").await;
    assert_eq!(status, 200);

    // The metrics port.
    let (status, answer) = request(webhook.ops, &get("/metrics", ""), b"").await;
    assert_eq!(status, 200);
    assert!(answer.contains("application/openmetrics-text"), "{answer}");
    assert!(
        answer.contains(r#"esup_runner_webhook_http_requests_total{route="/manager/health",method="GET",status="2xx"} 1"#),
        "{answer}"
    );
    assert!(
        answer.contains("esup_runner_webhook_http_connections"),
        "{answer}"
    );
    let (status, _) = request(webhook.ops, &get("/healthz", ""), b"").await;
    assert_eq!(status, 200);
    let (status, _) = request(webhook.ops, &get("/readyz", ""), b"").await;
    assert_eq!(status, 503, "not ready before the caches list");
    webhook.ready.store(true, Ordering::Relaxed);
    let (status, _) = request(webhook.ops, &get("/readyz", ""), b"").await;
    assert_eq!(status, 200);
    // Nothing of the API on the metrics port.
    for path in ["/", "/docs", "/openapi.json", "/manager/health"] {
        let (status, _) = request(webhook.ops, &get(path, &auth), b"").await;
        assert_eq!(status, 404, "{path} on the metrics port");
    }

    // Shutdown: both listeners close and their servers return.
    webhook.shutdown();
    tokio::time::timeout(Duration::from_secs(5), async {
        (&mut { webhook.api_task }).await.unwrap();
        (&mut { webhook.ops_task }).await.unwrap();
    })
    .await
    .expect("servers stop on the shutdown signal");
    assert!(tokio::net::TcpStream::connect(webhook.api).await.is_err());
}
