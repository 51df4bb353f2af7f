//! Integration test against the local cluster (`e2e/cluster/up`): the chart's
//! ValidatingAdmissionPolicy (helm/esup-runner/templates/admission-policy.yaml), rendered by
//! helm for a test release, lets only the webhook's ServiceAccount set or change a task's
//! `spec.requester.tenant` and `spec.notify`. Users are impersonated; the binding is narrowed
//! to this test's namespace so that the other tests on the cluster are not concerned.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests fail loudly by design

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use esup_api::{EncodingTask, TranscriptionTask};
use esup_e2e::{FIELD_MANAGER, client, fresh_namespace, install_crds, wait_for};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, Config, Resource};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

const RELEASE: &str = "esup-adm";
const RELEASE_NS: &str = "esup-adm-system";
const NS: &str = "esup-adm-tasks";
/// The webhook's ServiceAccount of release `esup-adm` in `esup-adm-system`.
const WEBHOOK: &str = "system:serviceaccount:esup-adm-system:esup-adm-esup-runner-webhook";
/// Anyone else allowed by RBAC to create tasks: the operator, a CI job, a tenant's user.
const OTHER: &str = "system:serviceaccount:esup-adm-tasks:someone";

fn repo() -> PathBuf {
    esup_e2e::repo_root()
}

fn helm_binary() -> String {
    std::env::var("ESUP_HELM").unwrap_or_else(|_| {
        format!(
            "{}/.cache/esup-runner/helm-v3.19.5/bin/helm",
            std::env::var("HOME").unwrap()
        )
    })
}

/// The chart's policy objects for the test release, as helm renders them.
fn rendered_policy() -> Vec<serde_json::Value> {
    let out = Command::new(helm_binary())
        .args(["template", RELEASE])
        .arg(repo().join("helm/esup-runner"))
        .args(["--namespace", RELEASE_NS])
        .args(["--show-only", "templates/admission-policy.yaml"])
        .output()
        .expect("run helm (built by e2e/cluster/build helm)");
    assert!(
        out.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let docs: Vec<serde_json::Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde_json::Value::deserialize(d).expect("YAML"))
        .filter(|d| !d.is_null())
        .collect();
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding"
        ]
    );
    docs
}

fn dynamic_api(client: &Client, kind: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("admissionregistration.k8s.io", "v1", kind);
    Api::all_with(client.clone(), &ApiResource::from_gvk(&gvk))
}

/// Applies the rendered policy, its binding narrowed to `NS`.
async fn install_policy(client: &Client) -> Vec<(String, String)> {
    let mut installed = Vec::new();
    for mut doc in rendered_policy() {
        let kind = doc["kind"].as_str().unwrap().to_owned();
        let name = doc["metadata"]["name"].as_str().unwrap().to_owned();
        if kind == "ValidatingAdmissionPolicyBinding" {
            assert!(
                doc["spec"].get("matchResources").is_none(),
                "the chart binds every namespace"
            );
            doc["spec"]["matchResources"] = serde_json::json!({
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": NS}}
            });
        }
        let object: DynamicObject = serde_json::from_value(doc).unwrap();
        dynamic_api(client, &kind)
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&object),
            )
            .await
            .unwrap_or_else(|e| panic!("apply {kind} {name}: {e}"));
        installed.push((kind, name));
    }
    installed
}

/// Lets both users create, update and write the status of tasks in `NS`, so that what
/// refuses them can only be the policy.
async fn grant_task_writes(client: &Client) {
    let role: Role = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "task-writer", "namespace": NS},
        "rules": [{
            "apiGroups": ["runner.esup-portail.org"],
            "resources": ["encodingtasks", "transcriptiontasks",
                          "encodingtasks/status", "transcriptiontasks/status"],
            "verbs": ["get", "create", "update", "patch"]
        }]
    }))
    .unwrap();
    let subjects: Vec<serde_json::Value> = [WEBHOOK, OTHER]
        .iter()
        .map(|user| {
            serde_json::json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user})
        })
        .collect();
    let binding: RoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "task-writer", "namespace": NS},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "task-writer"},
        "subjects": subjects
    }))
    .unwrap();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    Api::<Role>::namespaced(client.clone(), NS)
        .patch("task-writer", &params, &Patch::Apply(&role))
        .await
        .expect("role");
    Api::<RoleBinding>::namespaced(client.clone(), NS)
        .patch("task-writer", &params, &Patch::Apply(&binding))
        .await
        .expect("binding");
}

async fn as_user(user: &str) -> Client {
    let mut config = Config::infer().await.expect("kubeconfig");
    config.auth_info.impersonate = Some(user.to_owned());
    Client::try_from(config).expect("client")
}

fn task<K: DeserializeOwned + Resource>(fixture: &str, name: &str) -> K {
    let path = repo().join("api/tests/fixtures").join(fixture);
    let mut task: K = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    task.meta_mut().name = Some(name.to_owned());
    task.meta_mut().namespace = Some(NS.to_owned());
    task
}

/// The API server's refusal of a write, if it refused.
fn refusal<T>(result: &Result<T, kube::Error>) -> Option<String> {
    match result {
        Ok(_) => None,
        Err(kube::Error::Api(status)) => Some(format!("{} {}", status.code, status.message)),
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn assert_denied_by_policy<T>(what: &str, result: &Result<T, kube::Error>) {
    let why = refusal(result).unwrap_or_else(|| panic!("{what}: allowed"));
    assert!(
        why.starts_with("403") && why.contains("ValidatingAdmissionPolicy"),
        "{what}: refused, but not by the policy: {why}"
    );
    assert!(why.contains("may not"), "{what}: {why}");
}

async fn delete_quietly<K>(api: &Api<K>, name: &str)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let _ = api.delete(name, &DeleteParams::default()).await;
    for _ in 0..50 {
        if api.get_opt(name).await.expect("get").is_none() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn create<K>(client: &Client, object: &K) -> Result<K, kube::Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    Api::<K>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), object)
        .await
}

#[tokio::test]
async fn only_the_webhook_sets_a_tasks_tenant_and_notify() {
    let admin = client().await;
    install_crds(&admin).await;
    fresh_namespace(&admin, NS).await;
    grant_task_writes(&admin).await;
    let installed = install_policy(&admin).await;
    let (webhook, other) = (as_user(WEBHOOK).await, as_user(OTHER).await);
    let encoding: Api<EncodingTask> = Api::namespaced(admin.clone(), NS);
    let transcription: Api<TranscriptionTask> = Api::namespaced(admin.clone(), NS);
    for name in ["claimed", "by-webhook"] {
        delete_quietly(&encoding, name).await;
        delete_quietly(&transcription, name).await;
    }

    // Someone else creating a task in a tenant's name, with a notify: denied (once the API
    // server has loaded the new policy).
    let claimed: EncodingTask = task("encodingtask-full.yaml", "claimed");
    let first = wait_for(
        Duration::from_secs(30),
        "the policy to deny another user's task",
        || {
            let (other, claimed, encoding) = (other.clone(), claimed.clone(), encoding.clone());
            async move {
                let result = create(&other, &claimed).await;
                if result.is_ok() {
                    delete_quietly(&encoding, "claimed").await;
                    return None;
                }
                Some(result)
            }
        },
    )
    .await;
    assert_denied_by_policy("EncodingTask by another user", &first);
    let mut no_notify = claimed.clone();
    no_notify.spec.common.notify = None;
    assert_denied_by_policy(
        "EncodingTask naming a tenant, no notify",
        &create(&other, &no_notify).await,
    );
    let claimed_transcription: TranscriptionTask = task("transcriptiontask-full.yaml", "claimed");
    assert_denied_by_policy(
        "TranscriptionTask by another user",
        &create(&other, &claimed_transcription).await,
    );

    // The webhook's ServiceAccount: allowed, both kinds.
    let by_webhook: EncodingTask = task("encodingtask-full.yaml", "by-webhook");
    let created = create(&webhook, &by_webhook).await;
    assert_eq!(refusal(&created), None, "the webhook creates EncodingTasks");
    let transcription_by_webhook: TranscriptionTask =
        task("transcriptiontask-full.yaml", "by-webhook");
    assert_eq!(
        refusal(&create(&webhook, &transcription_by_webhook).await),
        None,
        "the webhook creates TranscriptionTasks"
    );

    // Another user updating that task: the spec is immutable (the CRD's rule refuses first,
    // 422), so neither field can change; an update that keeps both (a label) is allowed, and a
    // status write is not matched at all (the operator and the webhook write status).
    let others_view = Api::<EncodingTask>::namespaced(other.clone(), NS);
    let params = PatchParams::default();
    for (what, patch) in [
        (
            "tenant changed",
            serde_json::json!({"spec": {"requester": {"tenant": "univ-y"}}}),
        ),
        (
            "notify URL changed",
            serde_json::json!({"spec": {"notify": {"url": "https://attacker.example/"}}}),
        ),
        (
            "notify removed",
            serde_json::json!({"spec": {"notify": null}}),
        ),
    ] {
        let result = others_view
            .patch("by-webhook", &params, &Patch::Merge(&patch))
            .await;
        let why = refusal(&result).unwrap_or_else(|| panic!("{what}: allowed"));
        assert!(
            why.starts_with("422") || why.starts_with("403"),
            "{what}: {why}"
        );
    }
    let labelled = others_view
        .patch(
            "by-webhook",
            &params,
            &Patch::Merge(&serde_json::json!({"metadata": {"labels": {"seen": "yes"}}})),
        )
        .await;
    assert_eq!(refusal(&labelled), None, "an update that keeps both");
    let status = others_view
        .patch_status(
            "by-webhook",
            &params,
            &Patch::Merge(&serde_json::json!({"status": {"phase": "Queued"}})),
        )
        .await;
    assert_eq!(refusal(&status), None, "status writes are not matched");

    for name in ["claimed", "by-webhook"] {
        delete_quietly(&encoding, name).await;
        delete_quietly(&transcription, name).await;
    }
    for (kind, name) in installed.iter().rev() {
        dynamic_api(&admin, kind)
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete policy object");
    }
}
