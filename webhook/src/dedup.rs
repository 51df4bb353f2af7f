//! In-flight de-duplication that holds across webhook replicas and restarts. The reference
//! manager answers an identical request (same fingerprint) with the task already in flight;
//! here the claim is a ConfigMap named after the fingerprint, in the tenant's namespace:
//! creating it is atomic in the API server, so of two replicas receiving the same request at
//! once exactly one creates the task.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};

use crate::error::ApiError;
use crate::tasks::{AnyTask, Tasks};

/// A claim whose task never appeared is abandoned after this long (its creator died).
const ABANDONED_AFTER: Duration = Duration::from_secs(30);

pub fn claim_name(fingerprint: &str) -> String {
    format!(
        "esup-inflight-{}",
        &fingerprint[..fingerprint.len().min(40)]
    )
}

/// The outcome of claiming a fingerprint.
pub enum Claim {
    /// This request owns the fingerprint: create the task under `task_name`.
    Owned { task_name: String },
    /// An identical task is in flight: answer with it.
    Existing(AnyTask),
}

pub struct Dedup {
    client: Client,
}

impl Dedup {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// Claims `fingerprint` for a new task named `task_name`, or finds the task in flight.
    pub async fn claim(
        &self,
        tasks: &Tasks,
        namespace: &str,
        fingerprint: &str,
        task_name: &str,
    ) -> Result<Claim, ApiError> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        let name = claim_name(fingerprint);
        for _ in 0..20 {
            let claim = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    ..ObjectMeta::default()
                },
                data: Some(BTreeMap::from([("task".to_owned(), task_name.to_owned())])),
                ..ConfigMap::default()
            };
            match api.create(&PostParams::default(), &claim).await {
                Ok(_) => {
                    return Ok(Claim::Owned {
                        task_name: task_name.to_owned(),
                    });
                }
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(unavailable(e)),
            }
            let Some(existing) = api.get_opt(&name).await.map_err(unavailable)? else {
                continue;
            };
            let holder = existing
                .data
                .as_ref()
                .and_then(|d| d.get("task"))
                .cloned()
                .unwrap_or_default();
            match find_fresh(tasks, &self.client, namespace, &holder).await {
                Some(task) if !task.phase().is_terminal() => return Ok(Claim::Existing(task)),
                Some(_) => {} // ended: the fingerprint is free again
                None => {
                    let age =
                        existing
                            .metadata
                            .creation_timestamp
                            .as_ref()
                            .map_or(Duration::ZERO, |t| {
                                Duration::from_secs(
                                    k8s_openapi::jiff::Timestamp::now()
                                        .duration_since(t.0)
                                        .as_secs()
                                        .max(0)
                                        .unsigned_abs(),
                                )
                            });
                    if age < ABANDONED_AFTER {
                        // Its creator is about to create the task: wait for it.
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                }
            }
            // Free or abandoned: replace it, unless someone else did first.
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    resource_version: existing.metadata.resource_version.clone(),
                    uid: None,
                }),
                ..DeleteParams::default()
            };
            match api.delete(&name, &params).await {
                Ok(_) | Err(kube::Error::Api(_)) => {}
                Err(e) => return Err(unavailable(e)),
            }
        }
        Err(ApiError::unavailable(
            "DedupContention",
            "could not settle a duplicate request; retry later",
        ))
    }

    /// Ties the claim to its task, so that deleting the task removes the claim.
    pub async fn bind(&self, namespace: &str, fingerprint: &str, task: &AnyTask) {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        let (api_version, kind) = match task {
            AnyTask::Encoding(_) => ("runner.esup-portail.org/v1alpha1", "EncodingTask"),
            AnyTask::Transcription(_) => ("runner.esup-portail.org/v1alpha1", "TranscriptionTask"),
        };
        let patch = serde_json::json!({"metadata": {"ownerReferences": [OwnerReference {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
            name: task.name().to_owned(),
            uid: task.uid().to_owned(),
            ..OwnerReference::default()
        }]}});
        if let Err(e) = api
            .patch(
                &claim_name(fingerprint),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            tracing::warn!(error = %e, "cannot bind the de-duplication claim to its task; it is freed when the task ends");
        }
    }

    /// Gives up a claim whose task could not be created.
    pub async fn release(&self, namespace: &str, fingerprint: &str) {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        let _ = api
            .delete(&claim_name(fingerprint), &DeleteParams::default())
            .await;
    }
}

/// The task named by a claim: from the cache, else from the API server (the cache may lag
/// behind another replica's creation).
async fn find_fresh(
    tasks: &Tasks,
    client: &Client,
    namespace: &str,
    name: &str,
) -> Option<AnyTask> {
    if name.is_empty() {
        return None;
    }
    if let Some(task) = tasks.find(namespace, name) {
        return Some(task);
    }
    let enc: Api<esup_api::EncodingTask> = Api::namespaced(client.clone(), namespace);
    if let Ok(Some(t)) = enc.get_opt(name).await {
        return Some(AnyTask::Encoding(std::sync::Arc::new(t)));
    }
    let trans: Api<esup_api::TranscriptionTask> = Api::namespaced(client.clone(), namespace);
    if let Ok(Some(t)) = trans.get_opt(name).await {
        return Some(AnyTask::Transcription(std::sync::Arc::new(t)));
    }
    None
}

fn unavailable(e: kube::Error) -> ApiError {
    ApiError::unavailable(
        "ApiServerUnavailable",
        format!("cannot check for a duplicate task: {e}"),
    )
}
