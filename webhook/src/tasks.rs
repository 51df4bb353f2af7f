//! The task resources as the webhook sees them: cached by reflectors for lookups, created from
//! Esup-Pod's requests, and shown back to Esup-Pod in the reference manager's shapes.

use std::sync::Arc;

use esup_api::params::TaskSpecFromRequest;
use esup_api::wire::{ManagerStatus, ManagerTask, TaskRequest, manager_timestamp};
use esup_api::{EncodingTask, TaskPhase, TaskStatus, TranscriptionTask};
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use warp::http::StatusCode;

use crate::error::ApiError;

/// Annotation holding Esup-Pod's request as received (it holds no token): `/task/status`
/// answers with the parameters exactly as they were sent.
pub const REQUEST_ANNOTATION: &str = "runner.esup-portail.org/request";
/// Label with the first 40 hex digits of the request's fingerprint (de-duplication).
pub const FINGERPRINT_LABEL: &str = "runner.esup-portail.org/fingerprint";
pub use esup_api::STOP_ANNOTATION;

/// A task of either kind.
#[derive(Clone, Debug)]
pub enum AnyTask {
    Encoding(Arc<EncodingTask>),
    Transcription(Arc<TranscriptionTask>),
}

impl AnyTask {
    pub fn meta(&self) -> &ObjectMeta {
        match self {
            Self::Encoding(t) => &t.metadata,
            Self::Transcription(t) => &t.metadata,
        }
    }

    pub fn name(&self) -> &str {
        self.meta().name.as_deref().unwrap_or_default()
    }

    pub fn namespace(&self) -> &str {
        self.meta().namespace.as_deref().unwrap_or_default()
    }

    pub fn uid(&self) -> &str {
        self.meta().uid.as_deref().unwrap_or_default()
    }

    pub fn status(&self) -> Option<&TaskStatus> {
        match self {
            Self::Encoding(t) => t.status.as_ref(),
            Self::Transcription(t) => t.status.as_ref(),
        }
    }

    pub fn phase(&self) -> TaskPhase {
        self.status().map(|s| s.phase).unwrap_or_default()
    }

    pub fn kind_plural(&self) -> &'static str {
        match self {
            Self::Encoding(_) => "encodingtasks",
            Self::Transcription(_) => "transcriptiontasks",
        }
    }

    pub fn tenant(&self) -> &str {
        match self {
            Self::Encoding(t) => &t.spec.common.requester.tenant,
            Self::Transcription(t) => &t.spec.common.requester.tenant,
        }
    }

    /// Esup-Pod's request, from the annotation the webhook wrote.
    pub fn request(&self) -> Option<TaskRequest> {
        let raw = self.meta().annotations.as_ref()?.get(REQUEST_ANNOTATION)?;
        serde_json::from_str(raw).ok()
    }

    pub fn manager_status(&self) -> ManagerStatus {
        ManagerStatus::of_task(self.status())
    }
}

/// The reference manager's view of a task (`/task/status`, `/task/list`).
pub fn to_manager_task(task: &AnyTask) -> ManagerTask {
    let request = task.request();
    let status = task.status();
    let created = task
        .meta()
        .creation_timestamp
        .as_ref()
        .map_or(Timestamp::UNIX_EPOCH, |t| t.0);
    let updated = status
        .into_iter()
        .flat_map(|s| {
            s.conditions
                .iter()
                .map(|c| c.last_transition_time.0)
                .chain(s.progress.as_ref().map(|p| p.update_time.0))
                .chain(s.result.as_ref().map(|r| r.report_time.0))
        })
        .max()
        .unwrap_or(created)
        .max(created);
    let error = status.and_then(|s| {
        s.result
            .as_ref()
            .and_then(|r| r.error_message.clone())
            .or_else(|| {
                s.conditions
                    .iter()
                    .find(|c| (c.type_ == "Failed" || c.type_ == "TimedOut") && c.status == "True")
                    .map(|c| c.message.clone())
            })
    });
    let (spec_source, spec_type) = match task {
        AnyTask::Encoding(t) => (
            t.spec.source.url.clone(),
            t.spec.task_type().protocol_name(),
        ),
        AnyTask::Transcription(t) => (t.spec.source.url.clone(), "transcription"),
    };
    ManagerTask {
        task_id: task.name().to_owned(),
        runner_id: status.and_then(|s| s.pool.clone()).unwrap_or_default(),
        status: task.manager_status(),
        etab_name: request
            .as_ref()
            .map(|r| r.etab_name.clone())
            .unwrap_or_default(),
        app_name: request
            .as_ref()
            .map(|r| r.app_name.clone())
            .unwrap_or_default(),
        app_version: request.as_ref().and_then(|r| r.app_version.clone()),
        task_type: request
            .as_ref()
            .map_or_else(|| spec_type.to_owned(), |r| r.task_type.clone()),
        source_url: request
            .as_ref()
            .map_or(spec_source, |r| r.source_url.clone()),
        affiliation: request.as_ref().and_then(|r| r.affiliation.clone()),
        parameters: request
            .as_ref()
            .map(|r| r.parameters.clone())
            .unwrap_or_default(),
        notify_url: request
            .as_ref()
            .map(|r| r.notify_url.clone())
            .unwrap_or_default(),
        completion_callback: None,
        run_id: status.and_then(|s| s.job_name.clone()),
        created_at: manager_timestamp(created),
        updated_at: manager_timestamp(updated),
        error,
        script_output: status
            .and_then(|s| s.result.as_ref())
            .and_then(|r| r.script_output.clone()),
    }
}

/// Cached tasks of both kinds, plus the client to create them.
#[derive(Clone)]
pub struct Tasks {
    client: Client,
    encoding: Store<EncodingTask>,
    transcription: Store<TranscriptionTask>,
}

fn reflect<K>(client: &Client) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (reader, writer) = reflector::store();
    let api: Api<K> = Api::all(client.clone());
    let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .applied_objects();
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            if let Err(e) = event {
                tracing::warn!(error = %e, "task watch failed; retrying");
            }
        }
    });
    reader
}

impl Tasks {
    pub fn start(client: Client) -> Self {
        Self {
            encoding: reflect(&client),
            transcription: reflect(&client),
            client,
        }
    }

    /// Waits until both caches have listed (readiness).
    pub async fn ready(&self) -> bool {
        self.encoding.wait_until_ready().await.is_ok()
            && self.transcription.wait_until_ready().await.is_ok()
    }

    pub fn find(&self, namespace: &str, name: &str) -> Option<AnyTask> {
        if let Some(t) = self.encoding.get(&ObjectRef::new(name).within(namespace)) {
            return Some(AnyTask::Encoding(t));
        }
        self.transcription
            .get(&ObjectRef::new(name).within(namespace))
            .map(AnyTask::Transcription)
    }

    /// Every task in `namespace`, oldest first.
    pub fn in_namespace(&self, namespace: &str) -> Vec<AnyTask> {
        let mut all: Vec<AnyTask> = self
            .encoding
            .state()
            .into_iter()
            .filter(|t| t.metadata.namespace.as_deref() == Some(namespace))
            .map(AnyTask::Encoding)
            .chain(
                self.transcription
                    .state()
                    .into_iter()
                    .filter(|t| t.metadata.namespace.as_deref() == Some(namespace))
                    .map(AnyTask::Transcription),
            )
            .collect();
        all.sort_by(|a, b| {
            (a.meta().creation_timestamp.as_ref().map(|t| t.0), a.name())
                .cmp(&(b.meta().creation_timestamp.as_ref().map(|t| t.0), b.name()))
        });
        all
    }

    /// The uid of every task of either kind.
    pub fn uids(&self) -> std::collections::BTreeSet<String> {
        let encoding = self
            .encoding
            .state()
            .into_iter()
            .filter_map(|t| t.metadata.uid.clone());
        let transcription = self
            .transcription
            .state()
            .into_iter()
            .filter_map(|t| t.metadata.uid.clone());
        encoding.chain(transcription).collect()
    }

    pub fn count(&self) -> usize {
        self.encoding.state().len() + self.transcription.state().len()
    }

    /// A tenant's tasks that have not ended: its backlog.
    pub fn unfinished(&self, namespace: &str, tenant: &str) -> usize {
        self.in_namespace(namespace)
            .iter()
            .filter(|t| t.tenant() == tenant && !t.phase().is_terminal())
            .count()
    }

    /// Creates the task resource. The API server validates the spec once more.
    pub async fn create(
        &self,
        namespace: &str,
        name: &str,
        spec: TaskSpecFromRequest,
        metadata: ObjectMeta,
    ) -> Result<AnyTask, ApiError> {
        let metadata = ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            ..metadata
        };
        let params = PostParams {
            field_manager: Some(crate::FIELD_MANAGER.to_owned()),
            ..PostParams::default()
        };
        let refused = |e: kube::Error| match e {
            kube::Error::Api(status) if status.code == 422 => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "InvalidTask",
                status.message,
            ),
            other => ApiError::unavailable(
                "ApiServerUnavailable",
                format!("cannot create the task: {other}"),
            ),
        };
        match spec {
            TaskSpecFromRequest::Encoding(spec) => {
                let object = EncodingTask {
                    metadata,
                    spec,
                    status: None,
                };
                let api: Api<EncodingTask> = Api::namespaced(self.client.clone(), namespace);
                let created = api.create(&params, &object).await.map_err(refused)?;
                Ok(AnyTask::Encoding(Arc::new(created)))
            }
            TaskSpecFromRequest::Transcription(spec) => {
                let object = TranscriptionTask {
                    metadata,
                    spec,
                    status: None,
                };
                let api: Api<TranscriptionTask> = Api::namespaced(self.client.clone(), namespace);
                let created = api.create(&params, &object).await.map_err(refused)?;
                Ok(AnyTask::Transcription(Arc::new(created)))
            }
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }
}
