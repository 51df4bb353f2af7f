//! The notifier across a webhook crash: tasks end while Esup-Pod is unreachable, the webhook is
//! SIGKILLed in the middle of its retries, Esup-Pod comes back, a new webhook process starts,
//! and every terminal task is notified exactly once. Delivery state lives in the task's status,
//! so nothing in the killed process's memory may matter.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests fail loudly by design

use std::collections::BTreeMap;
use std::time::Duration;

use esup_api::{NotificationState, RunnerPool, TranscriptionTask};
use esup_e2e::{
    EsupPodStandIn, OperatorProcess, TenantSecret, WebhookOptions, WebhookProcess, apply, client,
    free_gateway_port, fresh_namespace, install_crds, wait_for,
};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams};
use sha2::Digest;

const TOKEN: &str = "e2e-token-univ-whf";
const NS: &str = "esup-e2e-whf";
const WEBHOOK: &str = "e2e-whf";
/// The task (by submission order) whose runner reports a result file.
const RUNNER_REPORTED: usize = 3;

fn webhook_options(port: u16, keep_results: bool) -> WebhookOptions {
    WebhookOptions {
        port: Some(port),
        keep_results,
        // Retries after 5, 7, 11, 16 and 25 s: the protocol's 60 s base scaled down, so the
        // kill lands in the middle of them.
        extra_args: vec!["--notify-retry-base".into(), "5s".into()],
    }
}

#[tokio::test]
async fn webhook_killed_while_esup_pod_is_down_notifies_every_task_once() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = client().await;
    install_crds(&client).await;
    fresh_namespace(&client, "esup-system").await;
    fresh_namespace(&client, NS).await;
    let tasks = Api::<TranscriptionTask>::namespaced(client.clone(), NS);
    let _ = tasks
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await;
    TenantSecret {
        secret: "e2e-whf-tenant",
        tenant: "univ-whf",
        token: TOKEN,
        namespace: NS,
        max_backlog: 20,
        admission: None,
    }
    .apply(&client)
    .await;
    apply(
        &Api::<RunnerPool>::all(client.clone()),
        "e2e-whf",
        serde_json::json!({
            "apiVersion": "runner.esup-portail.org/v1alpha1", "kind": "RunnerPool",
            "metadata": {"name": "e2e-whf"},
            "spec": {"taskTypes": ["Transcription"], "priority": 1, "maxConcurrency": 5,
                     "tenants": [{"name": "univ-whf"}]},
        }),
    )
    .await;

    // Esup-Pod's address is known but nothing listens there yet: every send is refused.
    let pod_port = free_gateway_port();
    let webhook_port = free_gateway_port();
    let webhook = WebhookProcess::start_with(WEBHOOK, webhook_options(webhook_port, false)).await;
    let operator = OperatorProcess::start("e2e-whf", "e2e-whf-operator", &webhook.base_url);
    let base = webhook.base_url.clone();
    let notify_url = format!("http://10.244.0.1:{pod_port}/runner/notify_task_end/");
    let http = reqwest::Client::new();
    webhook.wait_for_token(TOKEN).await;

    // Three tasks succeed and two fail as invalid input (exit 65): both kinds of terminal state
    // must be notified.
    let mut expected = BTreeMap::new();
    let mut ids = Vec::new();
    for (i, code) in [0, 0, 65, 0, 65].into_iter().enumerate() {
        let body = serde_json::json!({
            "etab_name": "Université WHF", "app_name": "Esup-Pod", "app_version": "4.2.0",
            "task_type": "transcription",
            "source_url": format!("http://10.244.0.1:9/sleep/{}/exit/{code}/whf{i}/audio_192k_lecture.mp3",
                                  if i == RUNNER_REPORTED { 30 } else { 1 }),
            "notify_url": notify_url,
            "parameters": {"language": "fr", "video_id": 4000 + i, "video_slug": format!("{i}-whf"),
                           "video_title": "Faults"},
        });
        let r = http
            .post(format!("{base}/task/execute"))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let json: serde_json::Value = r.json().await.unwrap();
        let id = json["task_id"].as_str().unwrap().to_owned();
        expected.insert(id.clone(), if code == 0 { "completed" } else { "failed" });
        ids.push(id);
    }

    // One task delivers a result file through the runner API, as the real runner does, so
    // that its file can be fetched below.
    let reported = ids[RUNNER_REPORTED].clone();
    wait_for(
        Duration::from_secs(60),
        "the reporting task to run",
        || async {
            let task = tasks.get(&reported).await.ok()?;
            (task.status?.phase == esup_api::TaskPhase::Running).then_some(())
        },
    )
    .await;
    let secret = Api::<Secret>::namespaced(client.clone(), NS)
        .get(&format!("trans-{reported}-cb1"))
        .await
        .unwrap();
    let callback_token = String::from_utf8(secret.data.unwrap()["token"].0.clone()).unwrap();
    let runner = format!("{base}/runner/v1/transcriptiontasks/{NS}/{reported}");
    let vtt = "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nBonjour\n";
    let r = http
        .put(format!("{runner}/files/audio_192k_lecture.vtt"))
        .bearer_auth(&callback_token)
        .body(vtt)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let files = serde_json::json!([{"path": "audio_192k_lecture.vtt", "size_bytes": vtt.len(),
        "sha256": esup_api::lower_hex(&sha2::Sha256::digest(vtt.as_bytes()))}]);
    let r = http
        .post(format!("{runner}/completion"))
        .bearer_auth(&callback_token)
        .json(&serde_json::json!({"status": "completed", "error_message": null, "script_output": "done", "files": files}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Every task has ended and had at least one refused send, none delivered.
    wait_for(
        Duration::from_secs(120),
        "every task to end and fail a first notify",
        || async {
            let list = tasks.list(&ListParams::default()).await.ok()?;
            let failing = list
                .items
                .iter()
                .filter(|t| {
                    t.status
                        .as_ref()
                        .and_then(|s| s.notification.as_ref())
                        .is_some_and(|n| n.attempts >= 1 && n.state != NotificationState::Delivered)
                })
                .count();
            (failing == expected.len()).then_some(())
        },
    )
    .await;

    // While the notify fails, a completed task shows `warning`; as in the reference manager
    // (`mark_warning_as_completed`), fetching its result (the manifest, or a file) turns it
    // into `completed` while the retries go on. A failed task stays `failed`.
    let manager_status = |id: String| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let r = http
                .get(format!("{base}/task/status/{id}"))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap();
            r.json::<serde_json::Value>().await.unwrap()["status"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let completed: Vec<String> = expected
        .iter()
        .filter(|(_, s)| **s == "completed")
        .map(|(id, _)| id.clone())
        .collect();
    for id in &completed {
        assert_eq!(manager_status(id.clone()).await, "warning", "{id}");
    }
    let by_file = &reported;
    let by_manifest = completed.iter().find(|id| *id != by_file).unwrap();
    let untouched = completed
        .iter()
        .find(|id| *id != by_file && *id != by_manifest)
        .unwrap();
    let file = "audio_192k_lecture.vtt";
    for (id, path) in [
        (by_manifest, format!("/task/result/{by_manifest}")),
        (by_file, format!("/task/result/{by_file}/file/{file}")),
    ] {
        // Each try fetches again: a retry that fails between the fetch and the read makes
        // the task `warning` again, as in the reference.
        wait_for(
            Duration::from_secs(30),
            "a fetched result to show completed",
            || async {
                let r = http
                    .get(format!("{base}{path}"))
                    .bearer_auth(TOKEN)
                    .send()
                    .await
                    .ok()?;
                assert_eq!(r.status(), 200, "{path}");
                tokio::time::sleep(Duration::from_millis(300)).await;
                (manager_status(id.clone()).await == "completed").then_some(())
            },
        )
        .await;
    }
    for (id, status) in &expected {
        if *status == "failed" {
            assert_eq!(manager_status(id.clone()).await, "failed", "{id}");
        }
    }
    assert_eq!(
        manager_status(untouched.clone()).await,
        "warning",
        "not fetched, still warning"
    );

    // Kill the webhook mid-retries, stay down past the next retry, then bring Esup-Pod back and
    // start a new webhook process on the same address (the runners' callback URL).
    webhook.kill().await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let pod = EsupPodStandIn::start_on(pod_port, TOKEN, &base).await;
    let _webhook = WebhookProcess::start_with(WEBHOOK, webhook_options(webhook_port, true)).await;

    wait_for(
        Duration::from_secs(120),
        "Esup-Pod to hear of every task",
        || async {
            let heard: std::collections::BTreeSet<String> =
                pod.received().into_iter().map(|n| n.task_id).collect();
            (heard.len() == expected.len()).then_some(())
        },
    )
    .await;
    // Longer than the largest remaining retry delay: a duplicate would show up by then.
    tokio::time::sleep(Duration::from_secs(30)).await;

    let received = pod.received();
    let mut per_task: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for n in received {
        per_task.entry(n.task_id.clone()).or_default().push(n);
    }
    for (id, status) in &expected {
        let notified = per_task.get(id).expect("notified");
        assert_eq!(notified.len(), 1, "{id} notified once: {notified:?}");
        let n = &notified[0];
        assert_eq!(n.status, *status, "{id}");
        assert!(n.import_errors.is_empty(), "{id}: {:?}", n.import_errors);
        if *status == "failed" {
            assert!(
                n.error_message.as_deref().is_some_and(|m| !m.is_empty()),
                "a failure says why: {n:?}"
            );
        }
        let task = tasks.get(id).await.unwrap();
        let notification = task.status.unwrap().notification.unwrap();
        assert_eq!(notification.state, NotificationState::Delivered, "{id}");
        assert!(
            notification.attempts >= 2,
            "{id}: the refused sends before the crash are counted ({notification:?})"
        );
    }
    operator.kill().await;
}
