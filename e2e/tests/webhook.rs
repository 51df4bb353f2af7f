//! The webhook against the local cluster, over real HTTP: Esup-Pod's exchanges of the
//! protocol's compatibility cases (§7), the runner callbacks, and hostile input. The webhook
//! and the operator run as child processes; runner pods are the stand-in image, and the test
//! plays the runner's uploads and completion itself where the stand-in does no media work.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests fail loudly by design

use std::time::Duration;

use esup_api::{RunnerPool, TaskPhase, TranscriptionTask};
use esup_e2e::{
    EsupPodStandIn, FIELD_MANAGER, OperatorProcess, TenantSecret, WebhookProcess, client,
    fresh_namespace, install_crds, wait_for,
};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use sha2::{Digest, Sha256};

const TOKEN: &str = "e2e-token-univ-wh";
const OTHER_TOKEN: &str = "e2e-token-univ-other";
/// A tenant sharing `NS` with univ-wh (two institutions in one namespace).
const SHARING_TOKEN: &str = "e2e-token-univ-sharing";
/// A tenant no pool lists.
const NO_POOL_TOKEN: &str = "e2e-token-univ-nopool";
const NS: &str = "esup-e2e-wh";

struct Env {
    http: reqwest::Client,
    base: String,
    client: kube::Client,
    results_dir: std::path::PathBuf,
    webhook: WebhookProcess,
    _operator: OperatorProcess,
}

async fn tenant_secret(
    client: &kube::Client,
    name: &str,
    tenant: &str,
    token: &str,
    namespace: &str,
    backlog: u32,
) {
    TenantSecret {
        secret: name,
        tenant,
        token,
        namespace,
        max_backlog: backlog,
        admission: None,
    }
    .apply(client)
    .await;
}

async fn setup() -> Env {
    // reqwest is built without a TLS provider of its own (plain HTTP here): name ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = client().await;
    install_crds(&client).await;
    fresh_namespace(&client, "esup-system").await;
    fresh_namespace(&client, NS).await;
    fresh_namespace(&client, "esup-e2e-wh-other").await;
    let _ = Api::<TranscriptionTask>::namespaced(client.clone(), NS)
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await;
    tenant_secret(&client, "e2e-wh-tenant", "univ-wh", TOKEN, NS, 3).await;
    tenant_secret(
        &client,
        "e2e-wh-other",
        "univ-other",
        OTHER_TOKEN,
        "esup-e2e-wh-other",
        10,
    )
    .await;
    tenant_secret(
        &client,
        "e2e-wh-nopool",
        "univ-nopool",
        NO_POOL_TOKEN,
        NS,
        10,
    )
    .await;
    tenant_secret(
        &client,
        "e2e-wh-sharing",
        "univ-sharing",
        SHARING_TOKEN,
        NS,
        10,
    )
    .await;
    let pool: RunnerPool = serde_json::from_value(serde_json::json!({
        "apiVersion": "runner.esup-portail.org/v1alpha1", "kind": "RunnerPool",
        "metadata": {"name": "e2e-wh"},
        "spec": {"taskTypes": ["Encoding", "Transcription"], "priority": 1, "maxConcurrency": 2, "tenants": [{"name": "univ-wh"}, {"name": "univ-other"}, {"name": "univ-sharing"}]},
    }))
    .unwrap();
    Api::<RunnerPool>::all(client.clone())
        .patch(
            "e2e-wh",
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&pool),
        )
        .await
        .unwrap();
    let webhook = WebhookProcess::start("e2e-wh").await;
    let operator = OperatorProcess::start("e2e-wh", "e2e-wh-operator", &webhook.base_url);
    let http = reqwest::Client::new();
    webhook.wait_for_token(TOKEN).await;
    webhook.wait_for_token(SHARING_TOKEN).await;
    webhook.wait_for_token(NO_POOL_TOKEN).await;
    let base = webhook.base_url.clone();
    Env {
        http,
        base,
        client,
        results_dir: webhook.results_dir.clone(),
        webhook,
        _operator: operator,
    }
}

/// A transcription request whose stand-in runner sleeps `seconds` and exits `code`.
fn transcription(seconds: u32, code: i32, tag: &str) -> serde_json::Value {
    serde_json::json!({
        "etab_name": "Université WH / Pod", "app_name": "Esup-Pod", "app_version": "4.2.0",
        "task_type": "transcription",
        "source_url": format!("http://10.244.0.1:9/sleep/{seconds}/exit/{code}/{tag}/audio_192k_lecture.mp3"),
        "notify_url": "",
        "parameters": {"language": "fr", "source_language": "fr", "duration": 12.5, "normalize": false,
                       "video_id": 1234, "video_slug": "1234-lecture", "video_title": "Lecture"},
    })
}

impl Env {
    async fn execute(&self, body: &serde_json::Value, token: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/task/execute", self.base))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    async fn submit(&self, body: &serde_json::Value) -> String {
        let response = self.execute(body, TOKEN).await;
        assert_eq!(response.status(), 200);
        let json: serde_json::Value = response.json().await.unwrap();
        assert_eq!(json["status"], "running");
        json["task_id"].as_str().unwrap().to_owned()
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
    }

    async fn wait_status(&self, id: &str, wanted: &str) -> serde_json::Value {
        wait_for(
            Duration::from_secs(90),
            &format!("{id} to be {wanted}"),
            || async {
                let json: serde_json::Value = self
                    .get(&format!("/task/status/{id}"))
                    .await
                    .json()
                    .await
                    .ok()?;
                (json["status"] == wanted).then_some(json)
            },
        )
        .await
    }

    async fn callback_token(&self, id: &str) -> String {
        let secret = Api::<Secret>::namespaced(self.client.clone(), NS)
            .get(&format!("trans-{id}-cb1"))
            .await
            .unwrap();
        String::from_utf8(secret.data.unwrap()["token"].0.clone()).unwrap()
    }
}

#[tokio::test]
async fn esup_pod_exchanges_runner_callbacks_and_hostile_input() {
    let env = setup().await;

    // C0: health on both paths; a wrong token is refused.
    for path in ["/manager/health", "/api/health"] {
        let r = env.get(path).await;
        assert_eq!(r.status(), 200, "{path}");
        let json: serde_json::Value = r.json().await.unwrap();
        assert_eq!(json["status"], "healthy");
    }
    let r = env
        .http
        .get(format!("{}/manager/health", env.base))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Esup-Pod's manager list links to {manager}/admin; upstream's check_runtime.py wants
    // 200, 30x or 401 there. No console here: a page pointing to the documentation.
    for path in ["/admin", "/admin/"] {
        let r = env
            .http
            .get(format!("{}{path}", env.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(r.text().await.unwrap().contains("/docs"), "{path}");
    }

    // C1: no token → 401 with WWW-Authenticate; X-API-Token works as Bearer does.
    let r = env
        .http
        .post(format!("{}/task/execute", env.base))
        .json(&transcription(1, 0, "c1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let r = env
        .http
        .get(format!("{}/api/version", env.base))
        .header("X-API-Token", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // C2/C7: submit; exactly 200 with JSON; the identical request in flight → the same id.
    let body = transcription(20, 0, "c2");
    let id = env.submit(&body).await;
    assert_eq!(
        env.submit(&body).await,
        id,
        "in-flight duplicate answered with the same task"
    );

    // No pool lists univ-nopool: 503, so that Esup-Pod tries its next manager, with the
    // reason in the body; nothing is created.
    let r = env.execute(&body, NO_POOL_TOKEN).await;
    assert_eq!(r.status(), 503);
    let detail = r.json::<serde_json::Value>().await.unwrap()["detail"].clone();
    assert_eq!(
        detail,
        "No runners available: no RunnerPool runs transcription tasks for tenant univ-nopool"
    );

    // Two tenants sharing a namespace: the same request is two tasks, each tenant's own.
    let r = env.execute(&body, SHARING_TOKEN).await;
    assert_eq!(r.status(), 200);
    let json: serde_json::Value = r.json().await.unwrap();
    let sharing_id = json["task_id"].as_str().unwrap().to_owned();
    assert_ne!(sharing_id, id, "de-duplication is per tenant");
    for (token, own, other) in [(TOKEN, &id, &sharing_id), (SHARING_TOKEN, &sharing_id, &id)] {
        let status = |task: &str| {
            env.http
                .get(format!("{}/task/status/{task}", env.base))
                .bearer_auth(token)
                .send()
        };
        assert_eq!(status(own).await.unwrap().status(), 200);
        assert_eq!(status(other).await.unwrap().status(), 404);
    }
    Api::<TranscriptionTask>::namespaced(env.client.clone(), NS)
        .delete(&sharing_id, &DeleteParams::default())
        .await
        .unwrap();

    // C3: status without client_token; unknown → 404; another tenant cannot see it.
    let r = env.get(&format!("/task/status/{id}")).await;
    assert_eq!(r.status(), 200);
    let json: serde_json::Value = r.json().await.unwrap();
    assert!(json.get("client_token").is_none());
    assert_eq!(json["task_type"], "transcription");
    assert_eq!(json["parameters"]["video_id"], 1234, "parameters as sent");
    assert_eq!(
        env.get("/task/status/00000000-0000-4000-8000-000000000000")
            .await
            .status(),
        404
    );
    let r = env
        .http
        .get(format!("{}/task/status/{id}", env.base))
        .bearer_auth(OTHER_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "tenants only see their own tasks");

    // C5 before completion: 425.
    assert_eq!(env.get(&format!("/task/result/{id}")).await.status(), 425);

    // The runner's side: uploads (odd names), progress, completion; then C5/C6.
    wait_for(Duration::from_secs(60), "the task to run", || async {
        let task = Api::<TranscriptionTask>::namespaced(env.client.clone(), NS)
            .get(&id)
            .await
            .ok()?;
        (task.status?.phase == TaskPhase::Running).then_some(())
    })
    .await;
    let token = env.callback_token(&id).await;
    let runner = format!("{}/runner/v1/transcriptiontasks/{NS}/{id}", env.base);
    let vtt = "WEBVTT\n\n00:00:00.000 --> 00:00:02.000\nBonjour à tous\n".repeat(50);
    let name = "audio_192k_cours d'été (v2).vtt";
    let encoded = "audio_192k_cours%20d'%C3%A9t%C3%A9%20(v2).vtt";
    let r = env
        .http
        .put(format!("{runner}/files/{encoded}"))
        .bearer_auth("1.not-the-token")
        .body(vtt.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "another task's runner cannot write here");
    let r = env
        .http
        .put(format!("{runner}/files/{encoded}"))
        .bearer_auth(&token)
        .body(vtt.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let sha = format!("{:x}", Sha256::digest(vtt.as_bytes()));
    let stored: serde_json::Value = r.json().await.unwrap();
    assert_eq!(stored["sha256"], sha.as_str());
    let r = env
        .http
        .put(format!("{runner}/files/sub%2F..%2F..%2Fescape.vtt"))
        .bearer_auth(&token)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "path traversal refused");
    let r = env
        .http
        .post(format!("{runner}/progress"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"stage": "transcribe", "percent": 40.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let incomplete = serde_json::json!({"status": "completed", "error_message": null, "script_output": "log",
        "files": [{"path": "missing.vtt", "sha256": sha, "size_bytes": 3}]});
    let r = env
        .http
        .post(format!("{runner}/completion"))
        .bearer_auth(&token)
        .json(&incomplete)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        400,
        "a manifest naming a file never uploaded is refused"
    );
    let completion = serde_json::json!({"status": "completed", "error_message": null, "script_output": "[info_script.log]\nok",
        "files": [{"path": name, "sha256": sha, "size_bytes": vtt.len()}]});
    let r = env
        .http
        .post(format!("{runner}/completion"))
        .bearer_auth(&token)
        .json(&completion)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // C10: completed without a notify URL: status says so, then manifest and files.
    env.wait_status(&id, "completed").await;
    // Fenced once ended: the repeat of its completion is acknowledged, an upload is a 409
    // that leaves the served file as it was.
    let r = env
        .http
        .post(format!("{runner}/completion"))
        .bearer_auth(&token)
        .json(&completion)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "a repeated completion is acknowledged");
    let r = env
        .http
        .put(format!("{runner}/files/{encoded}"))
        .bearer_auth(&token)
        .body("replaced after the end")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409, "no upload once the task has ended");
    let manifest: serde_json::Value = env
        .get(&format!("/task/result/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(manifest["files"][0]["path"], name);
    assert_eq!(manifest["files"][0]["sha256"], sha.as_str());
    let file_path = format!("/task/result/{id}/file/{encoded}");
    let downloads = (0..20).map(|_| env.get(&file_path));
    for r in futures::future::join_all(downloads).await {
        assert_eq!(r.status(), 200);
        assert_eq!(
            format!("{:x}", Sha256::digest(r.bytes().await.unwrap())),
            sha,
            "concurrent downloads get the exact bytes"
        );
    }
    let r = env
        .http
        .get(format!("{}/task/result/{id}/file/{encoded}", env.base))
        .bearer_auth(TOKEN)
        .header("Range", "bytes=6-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap(), vtt.as_bytes()[6..]);
    assert_eq!(
        env.get(&format!("/task/result/{id}/file/..%2F..%2Fetc%2Fpasswd"))
            .await
            .status(),
        400
    );
    assert_eq!(
        env.get(&format!("/task/result/{id}/file/nothing.vtt"))
            .await
            .status(),
        404
    );

    // C9: a failing runner (invalid input) → failed; result → 400 with the error.
    let failing = env.submit(&transcription(1, 65, "c9")).await;
    let status = env.wait_status(&failing, "failed").await;
    assert!(
        status["error"].as_str().unwrap().contains("invalid input"),
        "{status}"
    );
    assert_eq!(
        env.get(&format!("/task/result/{failing}")).await.status(),
        400
    );

    // C4/C12 and C9: Esup-Pod is notified for every terminal state, with the token the task
    // was submitted with (the stand-in refuses any other), and imports the results while the
    // notify is open.
    let pod = EsupPodStandIn::start(TOKEN, &env.base).await;
    let mut with_notify = transcription(20, 0, "c4");
    with_notify["notify_url"] = serde_json::Value::String(pod.notify_url.clone());
    let done = env.submit(&with_notify).await;
    wait_for(
        Duration::from_secs(60),
        "the notified task to run",
        || async {
            let task = Api::<TranscriptionTask>::namespaced(env.client.clone(), NS)
                .get(&done)
                .await
                .ok()?;
            (task.status?.phase == TaskPhase::Running).then_some(())
        },
    )
    .await;
    let token = env.callback_token(&done).await;
    let runner = format!("{}/runner/v1/transcriptiontasks/{NS}/{done}", env.base);
    for (path, content) in [
        ("audio_192k_lecture.vtt", vtt.as_str()),
        ("info_video.json", "{\"transcription\": {}}"),
    ] {
        let r = env
            .http
            .put(format!("{runner}/files/{path}"))
            .bearer_auth(&token)
            .body(content.to_owned())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let files: Vec<serde_json::Value> = [("audio_192k_lecture.vtt", vtt.as_str()), ("info_video.json", "{\"transcription\": {}}")]
        .iter()
        .map(|(p, c)| serde_json::json!({"path": p, "sha256": format!("{:x}", Sha256::digest(c.as_bytes())), "size_bytes": c.len()}))
        .collect();
    let r = env.http.post(format!("{runner}/completion")).bearer_auth(&token)
        .json(&serde_json::json!({"status": "completed", "error_message": null, "script_output": "done", "files": files}))
        .send().await.unwrap();
    assert_eq!(r.status(), 200);
    let failing_notified = env
        .submit(&{
            let mut b = transcription(1, 65, "c9-notify");
            b["notify_url"] = serde_json::Value::String(pod.notify_url.clone());
            b
        })
        .await;
    let received = wait_for(Duration::from_secs(120), "both notifies", || async {
        let got = pod.received();
        (got.iter().any(|n| n.task_id == done) && got.iter().any(|n| n.task_id == failing_notified))
            .then_some(got)
    })
    .await;
    let completed = received.iter().find(|n| n.task_id == done).unwrap();
    assert_eq!(completed.status, "completed");
    assert_eq!(completed.error_message, None);
    assert!(completed.import_errors.is_empty(), "{completed:?}");
    assert_eq!(
        completed.imported,
        ["audio_192k_lecture.vtt", "info_video.json"],
        "files imported during the notify"
    );
    let failed = received
        .iter()
        .find(|n| n.task_id == failing_notified)
        .unwrap();
    assert_eq!(failed.status, "failed");
    assert!(
        failed
            .error_message
            .as_deref()
            .is_some_and(|m| !m.is_empty()),
        "{failed:?}"
    );
    let task = Api::<TranscriptionTask>::namespaced(env.client.clone(), NS)
        .get(&done)
        .await
        .unwrap();
    let notification = task.status.unwrap().notification.unwrap();
    assert_eq!(notification.state, esup_api::NotificationState::Delivered);
    assert_eq!(notification.attempts, 1);
    assert_eq!(
        received.iter().filter(|n| n.task_id == done).count(),
        1,
        "notified exactly once"
    );

    // Hostile URLs: loopback, metadata, private ranges, userinfo, non-http.
    for (field, url, code) in [
        ("source_url", "http://127.0.0.1/a.mp3", 422),
        (
            "source_url",
            "http://169.254.169.254/latest/meta-data/",
            422,
        ),
        ("source_url", "http://10.0.0.5/a.mp3", 422),
        ("source_url", "http://[::ffff:127.0.0.1]/a.mp3", 422),
        ("source_url", "ftp://pod.example/a.mp3", 422),
        (
            "notify_url",
            "http://192.168.1.10/runner/notify_task_end/",
            400,
        ),
        (
            "notify_url",
            "http://user:pw@pod.example/runner/notify_task_end/",
            400,
        ),
        (
            "notify_url",
            "http://localhost/runner/notify_task_end/",
            400,
        ),
    ] {
        let mut body = transcription(1, 0, "ssrf");
        body[field] = serde_json::Value::String(url.to_owned());
        let r = env.execute(&body, TOKEN).await;
        assert_eq!(r.status(), code, "{field} {url}");
        let json: serde_json::Value = r.json().await.unwrap();
        assert!(json["detail"].is_string(), "{json}");
    }

    // Malformed requests: clear errors, never a 5xx.
    for raw in [
        "",
        "{",
        "[]",
        "{\"task_type\": \"encoding\"}",
        "{\"etab_name\": 3}",
    ] {
        let r = env
            .http
            .post(format!("{}/task/execute", env.base))
            .bearer_auth(TOKEN)
            .body(raw)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error(), "{raw:?} → {}", r.status());
    }
    // Invalid parameters: accepted (200 running) as the reference manager does, then the task
    // fails without running, with the reference runner's message, and Esup-Pod is notified
    // `failed` once; a refusal would make Pod resubmit it on every cron run.
    let mut unknown = transcription(1, 0, "unknown");
    unknown["parameters"]["colour"] = serde_json::json!("blue");
    unknown["parameters"]["zeta"] = serde_json::json!(1);
    unknown["notify_url"] = serde_json::Value::String(pod.notify_url.clone());
    let r = env.execute(&unknown, TOKEN).await;
    assert_eq!(r.status(), 200);
    let accepted: serde_json::Value = r.json().await.unwrap();
    assert_eq!(accepted["status"], "running", "{accepted}");
    let invalid = accepted["task_id"].as_str().unwrap().to_owned();
    let expected = "Invalid parameters for task type: transcription (invalid fields: colour, zeta)";
    let status = env.wait_status(&invalid, "failed").await;
    assert_eq!(status["error"], expected, "{status}");
    let r = env.get(&format!("/task/result/{invalid}")).await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["detail"],
        format!("Task failed: {expected}")
    );
    let notified = wait_for(
        Duration::from_secs(60),
        "the invalid task's notify",
        || async { pod.received().into_iter().find(|n| n.task_id == invalid) },
    )
    .await;
    assert_eq!(notified.status, "failed");
    assert_eq!(notified.error_message.as_deref(), Some(expected));
    let task = Api::<TranscriptionTask>::namespaced(env.client.clone(), NS)
        .get(&invalid)
        .await
        .unwrap();
    let task_status = task.status.unwrap();
    assert_eq!(task_status.launches, 0, "never launched");
    assert!(
        task_status
            .conditions
            .iter()
            .any(|c| c.type_ == "Failed" && c.status == "True" && c.reason == "InvalidParameters")
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        pod.received()
            .iter()
            .filter(|n| n.task_id == invalid)
            .count(),
        1,
        "notified exactly once"
    );
    // A body that is not a task request at all is still refused.
    let mut not_a_task = transcription(1, 0, "not-a-task");
    not_a_task["task_type"] = serde_json::json!("transcript");
    assert_eq!(env.execute(&not_a_task, TOKEN).await.status(), 422);

    // Backlog bound (3 for this tenant): the next request gets 503 so Esup-Pod fails over.
    let mut ids = Vec::new();
    for i in 0..3 {
        let r = env
            .execute(&transcription(30, 0, &format!("backlog-{i}")), TOKEN)
            .await;
        if r.status() == 503 {
            break;
        }
        ids.push(r.json::<serde_json::Value>().await.unwrap()["task_id"].clone());
    }
    let r = env
        .execute(&transcription(30, 0, "backlog-over"), TOKEN)
        .await;
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["detail"],
        "No runners available"
    );
    // The metrics show the tenant at its bound, and the notifications delivered so far.
    let metrics = reqwest::get(format!("{}/metrics", env.webhook.metrics_url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |series: &str| {
        metrics.lines().find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .parse::<f64>()
                .ok()
        })
    };
    assert_eq!(
        value(r#"esup_runner_webhook_tenant_backlog{tenant="univ-wh"}"#),
        Some(3.0),
        "{metrics}"
    );
    assert_eq!(
        value(r#"esup_runner_webhook_tenant_backlog_limit{tenant="univ-wh"}"#),
        Some(3.0),
        "{metrics}"
    );
    assert!(
        value("esup_runner_webhook_notification_delay_seconds_count").is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
    assert!(
        metrics.contains("esup_runner_webhook_build_info{version="),
        "{metrics}"
    );

    // /task/stop cancels a running task; it ends failed, "Cancelled by user.".
    let stop_id = ids.last().and_then(|v| v.as_str()).unwrap().to_owned();
    let r = env
        .http
        .post(format!("{}/task/stop/{stop_id}", env.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert!(r.status() == 202 || r.status() == 200, "{}", r.status());
    let status = env.wait_status(&stop_id, "failed").await;
    assert_eq!(status["error"], "Cancelled by user.");

    // Result files follow their task: deleting the task removes them.
    let tasks: Api<TranscriptionTask> = Api::namespaced(env.client.clone(), NS);
    let uid = tasks.get(&id).await.unwrap().metadata.uid.unwrap();
    let dir = env.results_dir.join(&uid);
    assert!(dir.exists(), "{} holds the task's files", dir.display());
    tasks
        .delete(&id, &DeleteParams::background())
        .await
        .unwrap();
    wait_for(
        Duration::from_secs(30),
        "the deleted task's files to go",
        || async { (!dir.exists()).then_some(()) },
    )
    .await;

    let _ = Api::<TranscriptionTask>::namespaced(env.client.clone(), NS)
        .delete_collection(&DeleteParams::background(), &ListParams::default())
        .await;
}
