//! Schema-driven fuzzing of the webhook: schemathesis (e2e/fuzz/run) generates requests from
//! the webhook's own `/openapi.json` and fails on any server error or any answer the document
//! does not describe. The webhook runs as a child process against the local cluster, with a
//! tenant of its own; `--allowed-hosts 127.0.0.1` makes every generated `source_url` or
//! `notify_url` either refused before any DNS lookup or aimed at this machine, and no operator
//! runs, so nothing is ever fetched. Bounded to a couple of minutes on 2 cores.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests fail loudly by design

use std::time::{Duration, Instant};

use esup_api::{EncodingTask, TranscriptionTask};
use esup_e2e::{
    FIELD_MANAGER, TenantSecret, WebhookOptions, WebhookProcess, client, fresh_namespace,
    install_crds,
};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};

const TOKEN: &str = "e2e-token-univ-fuzz";
const NS: &str = "esup-e2e-fuzz";

async fn clear_tasks(client: &kube::Client) {
    let _ = Api::<EncodingTask>::namespaced(client.clone(), NS)
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await;
    let _ = Api::<TranscriptionTask>::namespaced(client.clone(), NS)
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await;
}

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_undocumented_answer() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = client().await;
    install_crds(&client).await;
    fresh_namespace(&client, "esup-system").await;
    fresh_namespace(&client, NS).await;
    clear_tasks(&client).await;
    // A backlog bound out of reach: a 503 would be the documented "No runners available",
    // but schemathesis counts every 5xx as a failure.
    TenantSecret {
        secret: "e2e-fuzz-tenant",
        tenant: "univ-fuzz",
        token: TOKEN,
        namespace: NS,
        max_backlog: 1_000_000,
        admission: None,
    }
    .apply(&client)
    .await;

    // A pool for the tenant: without one every valid submission is a documented 503 too.
    let pool: esup_api::RunnerPool = serde_json::from_value(serde_json::json!({
        "apiVersion": "runner.esup-portail.org/v1alpha1", "kind": "RunnerPool",
        "metadata": {"name": "e2e-fuzz"},
        "spec": {"taskTypes": ["Encoding", "Studio", "Transcription"], "priority": 1,
                 "maxConcurrency": 1, "suspend": true, "tenants": [{"name": "univ-fuzz"}]},
    }))
    .unwrap();
    Api::<esup_api::RunnerPool>::all(client.clone())
        .patch(
            "e2e-fuzz",
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&pool),
        )
        .await
        .unwrap();
    let webhook = WebhookProcess::start_with(
        "e2e-fuzz",
        WebhookOptions {
            extra_args: vec!["--allowed-hosts".into(), "127.0.0.1".into()],
            ..WebhookOptions::default()
        },
    )
    .await;
    let base = webhook.base_url.clone();
    let http = reqwest::Client::new();
    webhook.wait_for_token(TOKEN).await;

    let script = esup_e2e::repo_root().join("e2e/fuzz/run");
    let started = Instant::now();
    let run = tokio::process::Command::new(&script)
        .args([&base, TOKEN])
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(170), run)
        .await
        .expect("the fuzz run ends within its bound")
        .expect("e2e/fuzz/run starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    println!("fuzz run took {:?}", started.elapsed());

    // The webhook's own account of the run: many requests, none answered 5xx.
    // On the metrics port: the API port serves no /metrics.
    let metrics = http
        .get(format!("{}/metrics", webhook.metrics_url))
        .send()
        .await
        .expect("the webhook still answers after the run")
        .text()
        .await
        .unwrap();
    let count = |class: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| l.starts_with("esup_runner_webhook_http_requests_total{"))
            .filter(|l| l.contains(&format!("status=\"{class}\"")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let (ok, client_errors, server_errors) = (count("2xx"), count("4xx"), count("5xx") + 0.0);
    println!("webhook counted: {ok} 2xx, {client_errors} 4xx, {server_errors} 5xx");

    clear_tasks(&client).await;
    let _ = Api::<esup_api::RunnerPool>::all(client.clone())
        .delete("e2e-fuzz", &DeleteParams::default())
        .await;
    webhook.kill().await;

    assert!(
        output.status.success(),
        "schemathesis found failures (see its report above)"
    );
    assert!(
        ok + client_errors > 500.0,
        "too few requests for a fuzz run: {ok} 2xx, {client_errors} 4xx"
    );
    assert!(ok > 0.0, "no request succeeded: authentication is broken");
    assert_eq!(server_errors, 0.0, "the webhook answered 5xx");
}
