//! `esup-webhook health-check` (the chart's `helm test`) against a real HTTP server on
//! loopback: healthy only with the right token and the health document.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests fail loudly by design

use std::time::Duration;

use esup_webhook::health_check::{HealthCheckError, check};
use warp::Filter;

const TOKEN: &str = "tenant-token";

/// A server whose `/manager/health` answers as the webhook does for `TOKEN`, and `body` (200)
/// for the token `other`.
async fn server(body: &'static str) -> String {
    let health = warp::path!("manager" / "health")
        .and(warp::header::optional::<String>("authorization"))
        .map(move |auth: Option<String>| match auth.as_deref() {
            Some("Bearer tenant-token") => warp::reply::with_status(
                r#"{"status":"healthy","timestamp":"2026-12-07T13:00:00.000000","runners":3,"tasks":7}"#,
                warp::http::StatusCode::OK,
            ),
            Some("Bearer other") => warp::reply::with_status(body, warp::http::StatusCode::OK),
            _ => warp::reply::with_status(
                r#"{"detail":"Invalid API token"}"#,
                warp::http::StatusCode::UNAUTHORIZED,
            ),
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(health).incoming(listener).run());
    format!("http://{addr}")
}

#[tokio::test]
async fn healthy_only_with_the_tenants_token_and_the_health_document() {
    let base = server("<html>a proxy's page</html>").await;
    let second = Duration::from_secs(5);

    let health = check(&format!("{base}/"), TOKEN, second).await.unwrap();
    assert_eq!((health.runners, health.tasks), (3, 7));

    match check(&base, "wrong", second).await {
        Err(HealthCheckError::Refused {
            status: 401, body, ..
        }) => {
            assert!(body.contains("Invalid API token"), "{body}")
        }
        other => panic!("expected a 401 refusal, got {other:?}"),
    }
    match check(&base, "other", second).await {
        Err(e @ HealthCheckError::NotHealthy { .. }) => assert_eq!(e.category(), "NotHealthy"),
        other => panic!("expected NotHealthy, got {other:?}"),
    }
    assert!(matches!(
        check("esup-webhook:8080", TOKEN, second).await,
        Err(HealthCheckError::InvalidUrl(_))
    ));
}

#[tokio::test]
async fn a_webhook_that_does_not_answer_fails_the_check() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = check(
        &format!("http://127.0.0.1:{port}"),
        TOKEN,
        Duration::from_secs(2),
    )
    .await
    .unwrap_err();
    assert_eq!(err.category(), "Unreachable", "{err}");
}
