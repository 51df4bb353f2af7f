//! The tenants' admission modes (docs/operations.md, "Admission modes"), end to end: one pool
//! with one slot, shared by a tenant in `queue` mode (the default: the cluster queues) and a
//! tenant in `immediate` mode (503 unless a pool can start the task now, so that the task
//! waits in Esup-Pod's own ranked queue).

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests fail loudly by design

use std::time::Duration;

use esup_api::{RunnerPool, TaskPhase, TranscriptionTask};
use esup_e2e::{
    OperatorProcess, TenantSecret, WebhookProcess, apply, client, fresh_namespace, install_crds,
    wait_for,
};
use kube::api::{Api, DeleteParams, ListParams};

const NS: &str = "esup-e2e-adm";
const POOL: &str = "e2e-adm";
const QUEUE_TOKEN: &str = "e2e-token-univ-adm-queue";
const IMMEDIATE_TOKEN: &str = "e2e-token-univ-adm-now";

fn tenant<'a>(name: &'a str, token: &'a str, admission: Option<&'a str>) -> TenantSecret<'a> {
    TenantSecret {
        secret: name,
        tenant: name,
        token,
        namespace: NS,
        max_backlog: 10,
        admission,
    }
}

/// A transcription whose stand-in runner works `seconds`.
fn transcription(seconds: u32, tag: &str) -> serde_json::Value {
    serde_json::json!({
        "etab_name": "Université ADM", "app_name": "Esup-Pod", "app_version": "4.2.0",
        "task_type": "transcription",
        "source_url": format!("http://10.244.0.1:9/sleep/{seconds}/exit/0/{tag}/audio_192k_lecture.mp3"),
        "notify_url": "",
        "parameters": {"language": "fr", "video_id": 77, "video_slug": format!("77-{tag}"),
                       "video_title": "Admission"},
    })
}

#[tokio::test]
async fn queue_mode_queues_in_the_cluster_and_immediate_mode_leaves_the_queue_to_esup_pod() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = client().await;
    install_crds(&client).await;
    fresh_namespace(&client, "esup-system").await;
    fresh_namespace(&client, NS).await;
    let tasks = Api::<TranscriptionTask>::namespaced(client.clone(), NS);
    let _ = tasks
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await;
    tenant("univ-adm-queue", QUEUE_TOKEN, None)
        .apply(&client)
        .await;
    tenant("univ-adm-now", IMMEDIATE_TOKEN, Some("immediate"))
        .apply(&client)
        .await;
    let pools = Api::<RunnerPool>::all(client.clone());
    apply(
        &pools,
        POOL,
        serde_json::json!({
            "apiVersion": "runner.esup-portail.org/v1alpha1", "kind": "RunnerPool",
            "metadata": {"name": POOL},
            "spec": {"taskTypes": ["Transcription"], "priority": 1, "maxConcurrency": 1,
                     "tenants": [{"name": "univ-adm-queue"}, {"name": "univ-adm-now"}]},
        }),
    )
    .await;
    let webhook = WebhookProcess::start("e2e-adm").await;
    let operator = OperatorProcess::start("e2e-adm", "e2e-adm-operator", &webhook.base_url);
    webhook.wait_for_token(QUEUE_TOKEN).await;
    webhook.wait_for_token(IMMEDIATE_TOKEN).await;
    let (http, base) = (reqwest::Client::new(), webhook.base_url.clone());
    let execute = |body: serde_json::Value, token: &'static str| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let r = http
                .post(format!("{base}/task/execute"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<serde_json::Value>().await.unwrap())
        }
    };
    // The webhook decides from the pool's status: wait for the operator's report of an idle
    // pool (tasks of an earlier run were deleted above).
    wait_for(
        Duration::from_secs(60),
        "the pool's first status",
        || async {
            let pool = pools.get(POOL).await.ok()?;
            let status = pool.status?;
            (status.slots == 1 && status.running == 0 && status.queued == 0).then_some(())
        },
    )
    .await;

    // immediate: taken while the pool has a free slot...
    let (code, first) = execute(transcription(60, "now-1"), IMMEDIATE_TOKEN).await;
    assert_eq!(
        (code, first["status"].as_str()),
        (200, Some("running")),
        "{first}"
    );
    let first = first["task_id"].as_str().unwrap().to_owned();
    // ... and refused with 503 once it has none, before and after the operator has seen the
    // first task, so that Esup-Pod keeps the next one in its own queue.
    let busy = "No runners available: every RunnerPool that runs transcription tasks for tenant univ-adm-now is busy (admission mode immediate)";
    let (code, body) = execute(transcription(1, "now-2"), IMMEDIATE_TOKEN).await;
    assert_eq!((code, body["detail"].as_str()), (503, Some(busy)), "{body}");
    wait_for(Duration::from_secs(60), "the first task to run", || async {
        let task = tasks.get(&first).await.ok()?;
        (task.status?.phase == TaskPhase::Running).then_some(())
    })
    .await;
    let (code, body) = execute(transcription(1, "now-3"), IMMEDIATE_TOKEN).await;
    assert_eq!((code, body["detail"].as_str()), (503, Some(busy)), "{body}");

    // queue (the default): taken although the pool is full; it waits in the cluster's queue,
    // with its position.
    let (code, queued) = execute(transcription(1, "queue-1"), QUEUE_TOKEN).await;
    assert_eq!(
        (code, queued["status"].as_str()),
        (200, Some("running")),
        "{queued}"
    );
    let queued = queued["task_id"].as_str().unwrap().to_owned();
    wait_for(
        Duration::from_secs(60),
        "the queued task's position",
        || async {
            let status = tasks.get(&queued).await.ok()?.status?;
            (status.phase == TaskPhase::Queued && status.queue.is_some()).then_some(())
        },
    )
    .await;

    // The running task ends: the queued one takes the slot before anything else; once it is
    // done and nothing waits, the immediate tenant is taken again.
    let r = http
        .post(format!("{base}/task/stop/{first}"))
        .bearer_auth(IMMEDIATE_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "the stop is asked for");
    wait_for(
        Duration::from_secs(60),
        "the queued task to start",
        || async {
            let status = tasks.get(&queued).await.ok()?.status?;
            (matches!(status.phase, TaskPhase::Running | TaskPhase::Succeeded)).then_some(())
        },
    )
    .await;
    wait_for(
        Duration::from_secs(60),
        "the slot to be free again",
        || async {
            let status = tasks.get(&queued).await.ok()?.status?;
            let pool = pools.get(POOL).await.ok()?.status?;
            (status.phase == TaskPhase::Succeeded && pool.running == 0 && pool.queued == 0)
                .then_some(())
        },
    )
    .await;
    let (code, body) = execute(transcription(1, "now-4"), IMMEDIATE_TOKEN).await;
    assert_eq!(
        (code, body["status"].as_str()),
        (200, Some("running")),
        "{body}"
    );

    let _ = tasks
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await;
    let _ = pools.delete(POOL, &DeleteParams::default()).await;
    operator.kill().await;
}
