//! Integration test against the local cluster (`e2e/cluster/up`): the generated CRDs install on
//! a real API server, every field of every kind survives a round trip, and the server's schema
//! and CEL rules refuse invalid objects with a clear message.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests fail loudly by design

use std::time::Duration;

use esup_api::{EncodingTask, RunnerPool, TranscriptionTask};
use esup_e2e::{fresh_namespace, install_crds};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn fixture<T: DeserializeOwned>(name: &str) -> T {
    let path = esup_e2e::repo_root().join("api/tests/fixtures").join(name);
    serde_yaml::from_str(&std::fs::read_to_string(&path).expect("fixture readable"))
        .expect("fixture parses")
}

/// Creates `object` (spec), writes its status through the status subresource when given, and
/// checks that what the server returns equals what was sent.
async fn round_trip<K>(api: &Api<K>, object: K, status: Option<serde_json::Value>)
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug + PartialEq,
    K::DynamicType: Default,
{
    let name = object.name_any();
    let _ = api.delete(&name, &DeleteParams::default()).await;
    wait_gone(api, &name).await;
    let created = api
        .create(&PostParams::default(), &object)
        .await
        .expect("create");
    let spec_sent = serde_json::to_value(&object).expect("ser")["spec"].clone();
    let spec_back = serde_json::to_value(&created).expect("ser")["spec"].clone();
    assert_eq!(
        spec_back, spec_sent,
        "{name}: the server changed or pruned spec fields"
    );
    if let Some(status) = status {
        let patch = serde_json::json!({"status": status});
        let updated = api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("status patch");
        let status_back = serde_json::to_value(&updated).expect("ser")["status"].clone();
        assert_eq!(
            status_back, status,
            "{name}: the server changed or pruned status fields"
        );
    }
    // Read back into the typed struct: the spec is still what was sent once status was written.
    let read: K = api.get(&name).await.expect("typed get");
    let spec_read = serde_json::to_value(&read).expect("ser")["spec"].clone();
    assert_eq!(
        spec_read, spec_sent,
        "{name}: spec changed after the status write"
    );
}

async fn wait_gone<K>(api: &Api<K>, name: &str)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    for _ in 0..50 {
        if api.get_opt(name).await.expect("get").is_none() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{name} was not deleted");
}

fn task_status() -> serde_json::Value {
    serde_json::json!({
        "observedGeneration": 1,
        "phase": "Succeeded",
        "conditions": [{"type": "Succeeded", "status": "True", "reason": "Completed", "message": "all outputs delivered", "lastTransitionTime": "2026-11-23T10:00:00Z", "observedGeneration": 1}],
        "homePool": "local-l4",
        "pool": "shared-l4",
        "jobName": "enc-2f53b18a-1",
        "nodeName": "esup-node-0",
        "attempts": 2,
        "launches": 3,
        "attemptHistory": [{"pool": "local-l4", "jobName": "enc-2f53b18a-0", "nodeName": "esup-node-0", "startTime": "2026-11-23T09:00:00Z", "finishTime": "2026-11-23T09:10:00Z", "reason": "OOMKilled", "message": "runner exceeded 8Gi", "charged": true}],
        "queue": {"positionInPool": 3, "positionOverall": 7, "pool": "local-l4", "estimatedStartTime": "2026-11-23T09:20:00Z"},
        "queuedTime": "2026-11-23T08:59:00Z",
        "admittedTime": "2026-11-23T09:30:00Z",
        "startTime": "2026-11-23T09:31:00Z",
        "completionTime": "2026-11-23T10:00:00Z",
        "nextRetryTime": "2026-11-23T09:29:00Z",
        "progress": {"stage": "upload", "percent": 99.5, "mediaDurationSeconds": 612.0, "updateTime": "2026-11-23T09:59:00Z"},
        "result": {"outcome": "Completed", "errorMessage": "none", "files": [{"path": "info_video.json", "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "sizeBytes": 0}], "hardware": {"gpu": "NVIDIA L4", "decode": "nvdec", "encode": "h264_nvenc", "inference": "cuda"}, "scriptOutput": "[info_script.log]\\nok", "reportTime": "2026-11-23T10:00:00Z"},
        "notification": {"state": "Delivered", "outcome": "Completed", "attempts": 2, "lastAttemptTime": "2026-11-23T10:01:00Z", "nextAttemptTime": "2026-11-23T10:02:00Z", "deliveredTime": "2026-11-23T10:01:00Z", "lastError": "503 Service Unavailable"}
    })
}

fn pool_status() -> serde_json::Value {
    serde_json::json!({
        "observedGeneration": 1,
        "conditions": [{"type": "Ready", "status": "True", "reason": "NodesAvailable", "message": "1 node", "lastTransitionTime": "2026-11-23T10:00:00Z"}],
        "nodes": 1, "gpusAllocatable": 2, "slots": 2, "running": 1, "queued": 5,
        "tenants": [{"name": "univ-x", "running": 1, "queued": 3, "weightedUsage": 1.5}],
        "mediaSecondsPerSecond": 4.25
    })
}

/// `object` under another name, so that it can be created beside the fixture itself.
fn renamed<K: Resource>(mut object: K, name: &str) -> K {
    object.meta_mut().name = Some(name.to_owned());
    object.meta_mut().namespace = None;
    object
}

/// Creates `object`, expecting the API server to refuse it; returns the server's message.
async fn refused_create<K>(api: &Api<K>, object: &K) -> String
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let err = api
        .create(&PostParams::default(), object)
        .await
        .expect_err("the API server should refuse this object");
    rejection_message(err)
}

fn rejection_message(err: kube::Error) -> String {
    match err {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 422, "expected 422 Invalid, got {status:?}");
            status.message
        }
        other => panic!("expected an API rejection, got {other}"),
    }
}

#[tokio::test]
async fn crds_round_trip_and_refuse_invalid_objects() {
    let client = Client::try_default()
        .await
        .expect("KUBECONFIG of the local cluster (run e2e/cluster/up)");
    install_crds(&client).await;
    let ns = fresh_namespace(&client, "esup-e2e-crds").await;

    let encodings: Api<EncodingTask> = Api::namespaced(client.clone(), &ns);
    let transcriptions: Api<TranscriptionTask> = Api::namespaced(client.clone(), &ns);
    let pools: Api<RunnerPool> = Api::all(client.clone());
    round_trip(
        &encodings,
        fixture("encodingtask-full.yaml"),
        Some(task_status()),
    )
    .await;
    round_trip(
        &transcriptions,
        fixture("transcriptiontask-full.yaml"),
        Some(task_status()),
    )
    .await;
    round_trip(&pools, fixture("runnerpool-full.yaml"), Some(pool_status())).await;

    // CEL: the spec of a task cannot change once submitted.
    let task: EncodingTask = fixture("encodingtask-full.yaml");
    let patch = serde_json::json!({"spec": {"priority": "Low"}});
    let err = encodings
        .patch(
            &task.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .expect_err("spec change refused");
    let message = rejection_message(err);
    assert!(message.contains("spec is immutable"), "{message}");

    // CEL: a GPU pool without NVENC cannot take encoding.
    let mut pool: RunnerPool = renamed(fixture("runnerpool-full.yaml"), "h100-encoding");
    pool.spec.gpu.as_mut().expect("gpu").nvenc = false;
    let message = refused_create(&pools, &pool).await;
    assert!(message.contains("without NVENC"), "{message}");

    // Schema: a malformed URL and an unknown enum value are named in the message.
    let mut bad: TranscriptionTask = renamed(fixture("transcriptiontask-full.yaml"), "bad-url");
    bad.spec.source.url = "ftp://10.0.0.5/x.mp3".into();
    let message = refused_create(&transcriptions, &bad).await;
    assert!(message.contains("spec.source.url"), "{message}");

    let raw = serde_json::json!({
        "apiVersion": "runner.esup-portail.org/v1alpha1", "kind": "RunnerPool",
        "metadata": {"name": "bad-type"},
        "spec": {"taskTypes": ["Mining"], "maxConcurrency": 1}
    });
    let dynamic: Api<kube::api::DynamicObject> = Api::all_with(
        client.clone(),
        &kube::api::ApiResource::erase::<RunnerPool>(&()),
    );
    let obj: kube::api::DynamicObject = serde_json::from_value(raw).expect("dynamic");
    let message = rejection_message(
        dynamic
            .create(&PostParams::default(), &obj)
            .await
            .expect_err("refused"),
    );
    assert!(
        message.contains("spec.taskTypes[0]") && message.contains("Mining"),
        "{message}"
    );

    let _ = encodings
        .delete(&task.name_any(), &DeleteParams::default())
        .await;
    let transcription: TranscriptionTask = fixture("transcriptiontask-full.yaml");
    let _ = transcriptions
        .delete(&transcription.name_any(), &DeleteParams::default())
        .await;
    let _ = pools.delete("local-l4", &DeleteParams::default()).await;
}
