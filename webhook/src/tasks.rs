//! The task resources as the webhook sees them: cached by reflectors for lookups, created from
//! Esup-Pod's requests, and shown back to Esup-Pod in the reference manager's shapes.

use std::sync::Arc;

use esup_api::task::{TaskIdentity, TaskKind, TaskResource, TaskSpec};
use esup_api::wire::{ManagerStatus, ManagerTask, TaskRequest, manager_timestamp};
use esup_api::{EncodingTask, TaskCommon, TaskPhase, TaskStatus, TranscriptionTask};
use esup_kube_common::watch::guarded_watcher;
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use warp::http::StatusCode;

use crate::error::ApiError;
use crate::watch::SkipReport;

/// A task of either kind.
#[derive(Clone, Debug)]
pub enum AnyTask {
    Encoding(Arc<EncodingTask>),
    Transcription(Arc<TranscriptionTask>),
}

/// `$body` on the task `$task` holds, whichever its kind: the one place [`AnyTask`] branches;
/// everything else goes through [`TaskResource`].
macro_rules! on_task {
    ($task:expr, $t:ident => $body:expr) => {
        match $task {
            AnyTask::Encoding($t) => $body,
            AnyTask::Transcription($t) => $body,
        }
    };
}

/// The kind of a task resource type.
fn kind_of<K: TaskResource>(_: &K) -> TaskKind {
    K::KIND
}

impl AnyTask {
    pub fn meta(&self) -> &ObjectMeta {
        on_task!(self, t => t.meta())
    }

    fn common(&self) -> &TaskCommon {
        on_task!(self, t => t.common())
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
        on_task!(self, t => t.task_status())
    }

    pub fn phase(&self) -> TaskPhase {
        self.status().map(|s| s.phase).unwrap_or_default()
    }

    pub fn kind(&self) -> TaskKind {
        on_task!(self, t => kind_of(&**t))
    }

    pub fn kind_plural(&self) -> &'static str {
        self.kind().plural()
    }

    /// What the names of its Jobs and callback Secrets derive from (None without a uid).
    pub fn identity(&self) -> Option<TaskIdentity<'_>> {
        Some(TaskIdentity {
            kind: self.kind(),
            name: self.meta().name.as_deref()?,
            uid: self.meta().uid.as_deref()?,
        })
    }

    pub fn tenant(&self) -> &str {
        &self.common().requester.tenant
    }

    /// Esup-Pod's request, from the annotation the webhook wrote.
    pub fn request(&self) -> Option<TaskRequest> {
        let raw = self
            .meta()
            .annotations
            .as_ref()?
            .get(esup_api::labels::REQUEST_ANNOTATION)?;
        serde_json::from_str(raw).ok()
    }

    pub fn manager_status(&self) -> ManagerStatus {
        // A task without status yet is `running`.
        self.status()
            .map_or(ManagerStatus::Running, TaskStatus::manager_status)
    }
}

/// What a create under a chain's name gave.
pub enum Created {
    /// This request's task.
    New(AnyTask),
    /// The name was taken: the task under it, if it still exists.
    Taken(Option<AnyTask>),
}

/// A tenant's tasks as a submission sees them ([`Tasks::submission_view`]).
#[derive(Debug, Default)]
pub struct SubmissionView {
    /// Its unfinished tasks.
    pub backlog: usize,
    /// Those the operator has not seen yet (phase Pending).
    pub unseen: usize,
    /// Those holding a slot (Admitted or Running), by pool. The operator writes a pass's task
    /// statuses before its pools' statuses, so for a moment the caches can show a task
    /// admitted that its pool's status does not count yet.
    pub holding: std::collections::BTreeMap<String, u32>,
    /// The tasks of the submission's fingerprint: its de-duplication chain.
    pub chain: Vec<AnyTask>,
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
    let error = status.and_then(TaskStatus::error_message);
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
        // Only results recorded before the script output moved to the result store hold it
        // inline, and the caches drop it: `/task/status` fills it (`manager_api::script_output`).
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
    /// Tasks created here that the caches may not show yet, counted in the backlog until
    /// they do: a burst of submissions must not overrun the bound.
    created: Arc<std::sync::Mutex<Vec<(AnyTask, std::time::Instant)>>>,
}

/// How long a task created here is counted before the cache shows it.
const CREATED_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

/// Another consumer of the task watches (the notifier's index): each event reaches it after
/// the cache has applied it, so the process watches each kind once for all its readers.
pub type Observer<K> = Arc<dyn Fn(&watcher::Event<K>) + Send + Sync>;

/// The observers of both kinds' watches, if any.
#[derive(Clone, Default)]
pub struct Observers {
    pub encoding: Option<Observer<EncodingTask>>,
    pub transcription: Option<Observer<TranscriptionTask>>,
}

/// A cache of one kind. Objects that do not decode are skipped ([`esup_kube_common::watch`]),
/// reported through `skip` (else only logged); `observer` sees every event, stripped as cached.
fn reflect<K>(client: &Client, skip: Option<&SkipReport>, observer: Option<Observer<K>>) -> Store<K>
where
    K: CachedTask
        + Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let api: Api<DeserializeGuard<K>> = Api::all(client.clone());
    let on_invalid = SkipReport::or_log::<K>(skip);
    // Stripped before they enter the cache, which holds every task for its whole retention.
    let events =
        guarded_watcher(api, watcher::Config::default(), on_invalid).modify(strip_for_cache);
    let stream = reflector::reflector(writer, events)
        .inspect(move |event| {
            if let (Some(observe), Ok(event)) = (&observer, event) {
                observe(event);
            }
        })
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

/// Annotation `kubectl apply` leaves: a copy of the whole object as applied.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops what no lookup of the webhook reads from a cached task: its managed fields (often
/// as large as the task itself), `kubectl apply`'s copy of it, and the inline runner output
/// of older results.
pub fn strip_for_cache<K: CachedTask + Resource>(task: &mut K) {
    if let Some(status) = task.status_mut() {
        status.drop_inline_script_output();
    }
    strip_metadata(task);
}

/// The metadata part of [`strip_for_cache`], the same for any object.
fn strip_metadata<K: Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

/// The two task kinds, as the caches store them: without the inline runner output of older
/// results (`/task/status` reads it with a fresh GET instead, `manager_api::status`).
pub trait CachedTask {
    fn status_mut(&mut self) -> Option<&mut TaskStatus>;
}

impl CachedTask for EncodingTask {
    fn status_mut(&mut self) -> Option<&mut TaskStatus> {
        self.status.as_mut()
    }
}

impl CachedTask for TranscriptionTask {
    fn status_mut(&mut self) -> Option<&mut TaskStatus> {
        self.status.as_mut()
    }
}

impl Tasks {
    pub fn start(client: Client) -> Self {
        Self::start_observed(client, None, Observers::default())
    }

    /// As [`Tasks::start`], reporting objects that do not decode through `skip`, and passing
    /// every watch event on to `observers`.
    pub fn start_observed(client: Client, skip: Option<&SkipReport>, observers: Observers) -> Self {
        Self {
            encoding: reflect(&client, skip, observers.encoding),
            transcription: reflect(&client, skip, observers.transcription),
            client,
            created: Arc::default(),
        }
    }

    /// The task as the API server has it now (the caches may lag, and drop big fields); 404
    /// when it is gone or was replaced by another task of the same name.
    pub async fn fresh(&self, task: &AnyTask) -> Result<AnyTask, ApiError> {
        let client = self.client.clone();
        let found = match task {
            AnyTask::Encoding(_) => Api::<EncodingTask>::namespaced(client, task.namespace())
                .get_opt(task.name())
                .await
                .map(|t| t.map(|t| AnyTask::Encoding(Arc::new(t)))),
            AnyTask::Transcription(_) => {
                Api::<TranscriptionTask>::namespaced(client, task.namespace())
                    .get_opt(task.name())
                    .await
                    .map(|t| t.map(|t| AnyTask::Transcription(Arc::new(t))))
            }
        };
        found
            .map_err(|e| {
                ApiError::unavailable("ApiServerUnavailable", format!("cannot read the task: {e}"))
            })?
            .filter(|t| t.uid() == task.uid())
            .ok_or_else(ApiError::not_found)
    }

    /// Waits until both caches have listed (readiness).
    pub async fn ready(&self) -> bool {
        self.encoding.wait_until_ready().await.is_ok()
            && self.transcription.wait_until_ready().await.is_ok()
    }

    /// A task by name: from the caches, else one created here that they do not show yet
    /// (Esup-Pod may poll right after its submission).
    pub fn find(&self, namespace: &str, name: &str) -> Option<AnyTask> {
        self.find_cached(namespace, name).or_else(|| {
            self.created
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .iter()
                .find(|(t, at)| {
                    t.namespace() == namespace && t.name() == name && at.elapsed() < CREATED_GRACE
                })
                .map(|(t, _)| t.clone())
        })
    }

    fn find_cached(&self, namespace: &str, name: &str) -> Option<AnyTask> {
        if let Some(t) = self.encoding.get(&ObjectRef::new(name).within(namespace)) {
            return Some(AnyTask::Encoding(t));
        }
        self.transcription
            .get(&ObjectRef::new(name).within(namespace))
            .map(AnyTask::Transcription)
    }

    /// Every task of either kind in `namespace`, in no particular order.
    fn namespace_tasks<'a>(&self, namespace: &'a str) -> impl Iterator<Item = AnyTask> + 'a {
        let encoding = self
            .encoding
            .state()
            .into_iter()
            .filter(move |t| t.metadata.namespace.as_deref() == Some(namespace))
            .map(AnyTask::Encoding);
        let transcription = self
            .transcription
            .state()
            .into_iter()
            .filter(move |t| t.metadata.namespace.as_deref() == Some(namespace))
            .map(AnyTask::Transcription);
        encoding.chain(transcription)
    }

    /// Every task in `namespace`, oldest first.
    pub fn in_namespace(&self, namespace: &str) -> Vec<AnyTask> {
        let mut all: Vec<AnyTask> = self.namespace_tasks(namespace).collect();
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
        self.submission_view(namespace, tenant, "").backlog
    }

    /// What `/task/execute` needs from the cache, in one pass without sorting (it runs on
    /// every submission): the tenant's backlog, and the tasks whose fingerprint label is
    /// `fingerprint_label` (their de-duplication chain; none for an empty label).
    pub fn submission_view(
        &self,
        namespace: &str,
        tenant: &str,
        fingerprint_label: &str,
    ) -> SubmissionView {
        let mut view = SubmissionView::default();
        let all = self.namespace_tasks(namespace);
        let mut pending = self
            .created
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        pending.retain(|(t, at)| {
            at.elapsed() < CREATED_GRACE && self.find_cached(t.namespace(), t.name()).is_none()
        });
        let not_cached: Vec<AnyTask> = pending
            .iter()
            .filter(|(t, _)| t.namespace() == namespace)
            .map(|(t, _)| t.clone())
            .collect();
        drop(pending);
        for task in all.chain(not_cached) {
            if task.tenant() == tenant && !task.phase().is_terminal() {
                view.backlog += 1;
                match task.phase() {
                    TaskPhase::Pending => view.unseen += 1,
                    TaskPhase::Admitted | TaskPhase::Running => {
                        if let Some(pool) = task.status().and_then(|s| s.pool.clone()) {
                            *view.holding.entry(pool).or_default() += 1;
                        }
                    }
                    _ => {}
                }
            }
            let same = !fingerprint_label.is_empty()
                && task
                    .meta()
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(esup_api::labels::FINGERPRINT))
                    .is_some_and(|f| f == fingerprint_label);
            if same {
                view.chain.push(task);
            }
        }
        view
    }

    /// Creates the task resource under `name`. The API server validates the spec once more.
    /// A name already taken (409) gives the task under it, from the cache or else from the
    /// API server (the cache may lag behind another replica's create).
    pub async fn create(
        &self,
        namespace: &str,
        name: &str,
        spec: TaskSpec,
        metadata: ObjectMeta,
    ) -> Result<Created, ApiError> {
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
            TaskSpec::Encoding(spec) => {
                let object = EncodingTask {
                    metadata,
                    spec,
                    status: None,
                };
                let api: Api<EncodingTask> = Api::namespaced(self.client.clone(), namespace);
                match api.create(&params, &object).await {
                    Ok(created) => Ok(self.created(AnyTask::Encoding(Arc::new(created)))),
                    Err(kube::Error::Api(s)) if s.code == 409 => {
                        self.taken(&api, namespace, name, AnyTask::Encoding).await
                    }
                    Err(e) => Err(refused(e)),
                }
            }
            TaskSpec::Transcription(spec) => {
                let object = TranscriptionTask {
                    metadata,
                    spec,
                    status: None,
                };
                let api: Api<TranscriptionTask> = Api::namespaced(self.client.clone(), namespace);
                match api.create(&params, &object).await {
                    Ok(created) => Ok(self.created(AnyTask::Transcription(Arc::new(created)))),
                    Err(kube::Error::Api(s)) if s.code == 409 => {
                        self.taken(&api, namespace, name, AnyTask::Transcription)
                            .await
                    }
                    Err(e) => Err(refused(e)),
                }
            }
        }
    }

    /// Shows `task` to lookups as if this replica had just created it (tests of the routes,
    /// which run without a cluster).
    #[cfg(test)]
    pub(crate) fn remember(&self, task: AnyTask) {
        let _ = self.created(task);
    }

    fn created(&self, task: AnyTask) -> Created {
        self.created
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((task.clone(), std::time::Instant::now()));
        Created::New(task)
    }

    /// The task under a name that was taken.
    async fn taken<K>(
        &self,
        api: &Api<K>,
        namespace: &str,
        name: &str,
        wrap: fn(Arc<K>) -> AnyTask,
    ) -> Result<Created, ApiError>
    where
        K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    {
        if let Some(task) = self.find(namespace, name) {
            return Ok(Created::Taken(Some(task)));
        }
        let found = api.get_opt(name).await.map_err(|e| {
            ApiError::unavailable(
                "ApiServerUnavailable",
                format!("cannot read the task in flight: {e}"),
            )
        })?;
        Ok(Created::Taken(found.map(|t| wrap(Arc::new(t)))))
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Applies `status` to the task's status with `manager`'s field manager, conditionally on
    /// `resource_version` when given.
    pub async fn apply_status(
        &self,
        task: &AnyTask,
        manager: &str,
        resource_version: Option<&str>,
        status: serde_json::Value,
    ) -> Result<(), ApiError> {
        let mut metadata = serde_json::json!({"name": task.name(), "namespace": task.namespace()});
        if let Some(rv) = resource_version {
            // Makes the write conditional: a status changed since it was read (a new launch, an
            // end) turns it into a 409 instead of a result recorded against stale state.
            metadata["resourceVersion"] = rv.into();
        }
        let body = serde_json::json!({
            "apiVersion": format!("{}/{}", esup_api::GROUP, esup_api::VERSION),
            "kind": task.kind().kind_name(),
            "metadata": metadata,
            "status": status,
        });
        let params = PatchParams::apply(manager).force();
        let result =
            esup_kube_common::tasks::api(self.client.clone(), task.kind(), task.namespace())
                .patch_status(task.name(), &params, &Patch::Apply(&body))
                .await
                .map(|_| ());
        result.map_err(|e| match e {
            kube::Error::Api(s) if s.code == 422 => {
                ApiError::bad_request("InvalidReport", s.message)
            }
            kube::Error::Api(s) if s.code == 409 => ApiError::unavailable(
                "TaskChanged",
                "the task changed while its result was recorded; retry",
            ),
            other => ApiError::unavailable(
                "ApiServerUnavailable",
                format!("cannot record it on the task: {other}"),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;

    #[test]
    fn cached_objects_lose_managed_fields_and_the_applied_copy() {
        // Any object: the function is the same for both task kinds.
        let mut object = k8s_openapi::api::core::v1::ConfigMap {
            metadata: ObjectMeta {
                name: Some("t".into()),
                managed_fields: Some(vec![ManagedFieldsEntry {
                    manager: Some("esup-operator".into()),
                    ..ManagedFieldsEntry::default()
                }]),
                annotations: Some(
                    [
                        (LAST_APPLIED.to_owned(), "{\"big\": true}".to_owned()),
                        (
                            esup_api::labels::REQUEST_ANNOTATION.to_owned(),
                            "{}".to_owned(),
                        ),
                    ]
                    .into(),
                ),
                ..ObjectMeta::default()
            },
            ..Default::default()
        };
        strip_metadata(&mut object);
        assert_eq!(object.metadata.managed_fields, None);
        let mut task: TranscriptionTask = serde_json::from_value(serde_json::json!({
            "apiVersion": "runner.esup-portail.org/v1alpha1", "kind": "TranscriptionTask",
            "metadata": {"name": "t"},
            "spec": {"source": {"url": "https://pod.example/a.mp3"}, "language": "fr",
                "requester": {"tenant": "u", "etabName": "U", "appName": "Esup-Pod"}},
            "status": {"phase": "Succeeded", "result": {"outcome": "Completed",
                "reportTime": "2026-01-01T00:00:00Z", "scriptOutput": "64 KiB of log",
                "errorMessage": "kept"}}
        }))
        .unwrap();
        strip_for_cache(&mut task);
        let result = task.status.unwrap().result.unwrap();
        assert_eq!(result.script_output, None);
        assert_eq!(result.error_message.as_deref(), Some("kept"));
        let annotations = object.metadata.annotations.unwrap();
        // What lookups read stays.
        assert_eq!(annotations.len(), 1);
        assert!(annotations.contains_key(esup_api::labels::REQUEST_ANNOTATION));
    }
}
