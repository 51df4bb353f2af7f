//! The operator's I/O: watchers feed the index; while this replica leads, a loop plans over
//! the index (pure, `crate::schedule`) and carries the plan out with server-side apply.
//!
//! Restart safety comes from the order of writes: a task's status names its next Job before
//! the Job is created, and an attempt's end is written before its Job is deleted. Whatever
//! step a SIGKILL interrupts, the next leader finds the intent in the API and completes it
//! under the same deterministic names.

pub mod index;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use esup_api::{EncodingTask, RunnerPool, TaskStatus, TranscriptionTask};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::core::DeserializeGuard;
use kube::core::error_boundary::InvalidObject;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use crate::error::{Error, Result};
use crate::http::Health;
use crate::job::{self, Launch, RunnerConfig};
use crate::metrics::Metrics;
use esup_api::labels;
use esup_api::task::{TaskKey, TaskKind};
use esup_kube_common::leader::Leadership;

use crate::model::{JobInfo, NodeInfo, PodInfo, Pool, Task};
use crate::schedule::{
    self, Action, Note, Observation, Plan, PoolReport, Settings, Snapshot, TaskChange,
};
use crate::status::operator_owned;
use index::{Change, Index, Source};

/// Field manager of every write of the operator.
pub const FIELD_MANAGER: &str = "esup-operator";

#[derive(Clone, Debug)]
pub struct Config {
    pub runner: RunnerConfig,
    pub settings: Settings,
    /// Shortest time between two passes: events arriving meanwhile are batched.
    pub min_pass_interval: Duration,
    /// Longest time between two passes: timeouts and overflow are time-driven.
    pub max_pass_interval: Duration,
    /// API writes in flight at once.
    pub write_concurrency: usize,
    /// A queued task's position is rewritten at most this often.
    pub position_refresh: Duration,
    /// Position-only writes per second, so that a deep queue cannot crowd out admissions.
    pub position_writes_per_second: f64,
    /// Reporter instance of Events (the pod name).
    pub instance: String,
}

/// What each watcher needs to read its kind and report the objects it skips.
struct Watched {
    client: Client,
    recorder: Recorder,
    metrics: Arc<Metrics>,
}

/// Shared between the watchers and the loop.
struct Shared {
    index: Mutex<Index>,
    dirty: Notify,
}

pub struct Operator {
    client: Client,
    config: Config,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shared: Arc<Shared>,
    recorder: Recorder,
    /// When each task's queue position was last written.
    position_written: HashMap<String, Instant>,
    /// Job creations the API server refused, by task uid, fed back into the next plan.
    launch_errors: HashMap<String, String>,
    /// Last pool status written, to skip identical writes.
    pool_written: HashMap<String, esup_api::RunnerPoolStatus>,
    /// Token bucket of position-only writes.
    position_tokens: f64,
    position_refilled: Instant,
}

impl Operator {
    pub fn new(client: Client, config: Config, metrics: Arc<Metrics>, health: Arc<Health>) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.to_owned(),
            instance: Some(config.instance.clone()),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            config,
            metrics,
            health,
            shared: Arc::new(Shared {
                index: Mutex::new(Index::default()),
                dirty: Notify::new(),
            }),
            position_written: HashMap::new(),
            launch_errors: HashMap::new(),
            pool_written: HashMap::new(),
            position_tokens: 0.0,
            position_refilled: Instant::now(),
        }
    }

    /// Watches, and schedules while `leadership` says this replica leads. Never returns
    /// unless a watcher task panics.
    pub async fn run(mut self, mut leadership: Leadership) {
        self.spawn_watchers();
        let mut last_pass = Instant::now() - self.config.min_pass_interval;
        loop {
            let shared = self.shared.clone();
            let woken =
                tokio::time::timeout(self.config.max_pass_interval, shared.dirty.notified());
            tokio::select! {
                _ = woken => {}
                _ = leadership.changed() => {}
            }
            let since = last_pass.elapsed();
            if since < self.config.min_pass_interval {
                tokio::time::sleep(self.config.min_pass_interval - since).await;
            }
            last_pass = Instant::now();
            let synced = self.lock().synced();
            self.health.set_ready(synced);
            self.health.beat();
            let leader = leadership.is_leader();
            self.metrics.set_leader(leader);
            if !synced || !leader {
                continue;
            }
            self.pass().await;
            self.health.beat();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.shared
            .index
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// One scheduling pass: plan over the index, then write.
    pub async fn pass(&mut self) {
        let started = Instant::now();
        let now = Timestamp::now();
        let (plan, task_count) = {
            let index = self
                .shared
                .index
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let snapshot = Snapshot {
                tasks: index.tasks.values().collect(),
                pools: index.pools.values().collect(),
                nodes: index.nodes.values().cloned().collect(),
                jobs: &index.jobs,
                pods: &index.pods,
                launch_errors: &self.launch_errors,
                policed_namespaces: index
                    .runner_policies
                    .iter()
                    .map(|(ns, _)| ns.as_str())
                    .collect(),
            };
            (
                schedule::plan(&snapshot, now, &self.config.settings),
                index.tasks.len(),
            )
        };
        self.metrics
            .observe_pass(started.elapsed().as_secs_f64(), task_count);
        self.execute(plan).await;
    }

    async fn execute(&mut self, plan: Plan) {
        let Plan {
            tasks,
            pools,
            orphans,
            expired,
            pending,
        } = plan;
        let refresh = self.config.position_refresh;
        let rate = self.config.position_writes_per_second;
        self.position_tokens = (self.position_tokens
            + rate * self.position_refilled.elapsed().as_secs_f64())
        .min(rate * 2.0);
        self.position_refilled = Instant::now();
        let mut budget = self.position_tokens.floor() as usize;
        let budget_at_start = budget;
        let position_written = &mut self.position_written;
        let changes: Vec<TaskChange> = tasks
            .into_iter()
            .filter(|c| {
                if !c.informational {
                    return true;
                }
                let due = position_written
                    .get(&c.uid)
                    .is_none_or(|t| t.elapsed() >= refresh);
                if due && budget > 0 {
                    budget -= 1;
                    return true;
                }
                false
            })
            .collect();
        self.position_tokens -= (budget_at_start - budget) as f64;
        for change in &changes {
            if change.status.queue.is_some() {
                self.position_written
                    .insert(change.uid.clone(), Instant::now());
            } else {
                self.position_written.remove(&change.uid);
            }
        }
        // Release before acquire: the writes that end attempts (and every other change) land
        // before the admissions of the same pass, so that no reader of the API, nor a replica
        // taking over in between, ever sees more tasks holding a pool's slots than it has.
        let (admissions, others): (Vec<TaskChange>, Vec<TaskChange>) = changes
            .into_iter()
            .partition(|c| matches!(c.action, Action::Launch { .. }));
        let this = &*self;
        let mut outcomes: Vec<(String, Option<String>)> = Vec::new();
        for batch in [others, admissions] {
            let written: Vec<(String, Option<String>)> = futures::stream::iter(batch)
                .map(|change| async move {
                    let uid = change.uid.clone();
                    let launch_error = this.carry_out(change).await;
                    (uid, launch_error)
                })
                .buffer_unordered(this.config.write_concurrency)
                .collect()
                .await;
            outcomes.extend(written);
        }
        for (uid, launch_error) in outcomes {
            match launch_error {
                Some(message) => {
                    self.launch_errors.insert(uid, message);
                }
                None => {
                    self.launch_errors.remove(&uid);
                }
            }
        }
        let this = &*self;
        futures::stream::iter(orphans)
            .for_each_concurrent(this.config.write_concurrency, |(ns, name)| async move {
                this.report(this.delete_job(&ns, &name).await, "delete orphaned Job");
            })
            .await;
        futures::stream::iter(expired)
            .for_each_concurrent(this.config.write_concurrency, |key| async move {
                this.report(this.delete_task(&key).await, "delete expired task");
            })
            .await;
        self.write_pools(pools, &pending).await;
    }

    /// Writes one task's status, then its action. Returns the API server's refusal of a Job
    /// creation, if any, for the next plan.
    async fn carry_out(&self, change: TaskChange) -> Option<String> {
        let TaskChange {
            key,
            uid,
            status,
            action,
            note,
            observations,
            informational,
        } = change;
        // Decisions were made on the indexed version: pin it, so a concurrent change (the
        // webhook recording a result) turns the write into a conflict, not a lost update.
        let pinned = if informational {
            None
        } else {
            self.resource_version(&uid)
        };
        match self.write_status(&key, &status, pinned).await {
            Ok(task) => self.lock().put_task(task),
            Err(e) => {
                if e.is_conflict() {
                    self.refresh_task(&key).await;
                }
                self.report(Err(e), "write task status");
                return None;
            }
        }
        for observation in observations {
            self.observe(observation);
        }
        if let Some(note) = note {
            self.publish(&note, &task_reference(&key, &uid)).await;
        }
        match action {
            Action::None => None,
            Action::Stop { job } => {
                self.report(self.delete_job(&key.namespace, &job).await, "stop Job");
                None
            }
            Action::Launch {
                pool,
                launch,
                avoid_nodes,
            } => match self.launch(&uid, &pool, launch, &avoid_nodes).await {
                Ok(()) => None,
                Err(e) => {
                    let message = e.to_string();
                    self.report(Err(e), "launch Job");
                    Some(message)
                }
            },
        }
    }

    fn resource_version(&self, uid: &str) -> Option<String> {
        self.lock()
            .tasks
            .get(uid)
            .and_then(|t| t.resource_version.clone())
    }

    async fn write_status(
        &self,
        key: &TaskKey,
        status: &TaskStatus,
        pinned: Option<String>,
    ) -> Result<Task> {
        let mut metadata = serde_json::json!({"name": key.name, "namespace": key.namespace});
        if let Some(rv) = pinned {
            metadata["resourceVersion"] = serde_json::Value::String(rv);
        }
        let body = serde_json::json!({
            "apiVersion": format!("{}/{}", esup_api::GROUP, esup_api::VERSION),
            "kind": key.kind.kind_name(),
            "metadata": metadata,
            "status": operator_owned(status),
        });
        let params = PatchParams::apply(FIELD_MANAGER).force();
        self.metrics.inc_writes("status");
        let what = key.to_string();
        let object = esup_kube_common::tasks::api(self.client.clone(), key.kind, &key.namespace)
            .patch_status(&key.name, &params, &Patch::Apply(&body))
            .await
            .map_err(|e| Error::api("apply status", what.clone(), e))?;
        task_of(key.kind, object).ok_or(Error::Config(format!(
            "{what}: incomplete object from the API server"
        )))
    }

    /// Reads a task again after a conflict, so the next pass decides on fresh state.
    async fn refresh_task(&self, key: &TaskKey) {
        let fresh = esup_kube_common::tasks::api(self.client.clone(), key.kind, &key.namespace)
            .get_opt(&key.name)
            .await
            .map(|object| object.and_then(|o| task_of(key.kind, o)));
        if let Ok(Some(task)) = fresh {
            self.lock().put_task(task);
        }
        self.shared.dirty.notify_one();
    }

    async fn launch(
        &self,
        uid: &str,
        pool_name: &str,
        launch: u32,
        avoid_nodes: &[String],
    ) -> Result<()> {
        let (task, pool) = {
            let index = self.lock();
            let task = index.tasks.get(uid).cloned();
            let pool = index.pools.get(pool_name).cloned();
            (task, pool)
        };
        let (Some(task), Some(pool)) = (task, pool) else {
            // The task or the pool went away meanwhile; the next pass sees it.
            return Ok(());
        };
        // The Secret first, then the Job that reads it: a crash in between leaves a Secret
        // that the next pass's create finds (409) and keeps.
        self.ensure_callback_secret(&task, launch).await?;
        let job = job::build_job(
            &Launch {
                task: &task,
                pool: &pool,
                launch,
                avoid_nodes,
            },
            &self.config.runner,
        );
        let name = task.identity().job_name(launch);
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), &task.key.namespace);
        self.metrics.inc_writes("job");
        jobs.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&job),
        )
        .await
        .map_err(|e| Error::api("apply", format!("Job {}/{name}", task.key.namespace), e))?;
        Ok(())
    }

    /// Creates the launch's callback token once; an existing Secret is kept, since the
    /// launch's Job may already run with its token.
    async fn ensure_callback_secret(&self, task: &Task, launch: u32) -> Result<()> {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &task.key.namespace);
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| Error::Random(e.to_string()))?;
        let token = esup_api::lower_hex(&bytes);
        let secret = job::callback_secret(task, launch, &token);
        self.metrics.inc_writes("secret");
        match secrets
            .create(
                &PostParams {
                    field_manager: Some(FIELD_MANAGER.to_owned()),
                    ..PostParams::default()
                },
                &secret,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
            Err(e) => Err(Error::api(
                "create",
                format!(
                    "Secret {}/{}",
                    task.key.namespace,
                    task.identity().callback_secret_name(launch)
                ),
                e,
            )),
        }
    }

    async fn delete_job(&self, namespace: &str, name: &str) -> Result<()> {
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), namespace);
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        self.metrics.inc_writes("delete");
        match jobs.delete(name, &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => Err(Error::api("delete", format!("Job {namespace}/{name}"), e)),
        }
    }

    async fn delete_task(&self, key: &TaskKey) -> Result<()> {
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        self.metrics.inc_writes("delete");
        let result = esup_kube_common::tasks::api(self.client.clone(), key.kind, &key.namespace)
            .delete(&key.name, &params)
            .await
            .map(|_| ());
        match result {
            Ok(()) => {
                tracing::info!(task = %key, "deleted after its retention");
                Ok(())
            }
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => Err(Error::api("delete", key.to_string(), e)),
        }
    }

    async fn write_pools(
        &mut self,
        reports: Vec<PoolReport>,
        pending: &BTreeMap<(String, String), u32>,
    ) {
        self.metrics.set_pools(&reports, pending);
        for report in reports {
            if let Some(note) = &report.note {
                let reference = ObjectReference {
                    api_version: Some(format!("{}/{}", esup_api::GROUP, esup_api::VERSION)),
                    kind: Some("RunnerPool".to_owned()),
                    name: Some(report.name.clone()),
                    uid: report.uid.clone(),
                    ..ObjectReference::default()
                };
                self.publish(note, &reference).await;
            }
            let indexed = self
                .lock()
                .pools
                .get(&report.name)
                .map(|p| p.status.clone());
            if indexed.as_ref() == Some(&report.status)
                || self.pool_written.get(&report.name) == Some(&report.status)
            {
                continue;
            }
            let body = serde_json::json!({
                "apiVersion": format!("{}/{}", esup_api::GROUP, esup_api::VERSION),
                "kind": "RunnerPool",
                "metadata": {"name": report.name},
                "status": report.status,
            });
            let api: Api<RunnerPool> = Api::all(self.client.clone());
            self.metrics.inc_writes("status");
            match api
                .patch_status(
                    &report.name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&body),
                )
                .await
            {
                Ok(_) => {
                    self.pool_written.insert(report.name.clone(), report.status);
                }
                Err(e) => self.report(
                    Err(Error::api(
                        "apply status",
                        format!("RunnerPool {}", report.name),
                        e,
                    )),
                    "write pool status",
                ),
            }
        }
        let known: Vec<String> = self.lock().pools.keys().cloned().collect();
        let gone: Vec<String> = self
            .pool_written
            .keys()
            .filter(|p| !known.contains(p))
            .cloned()
            .collect();
        for pool in gone {
            self.pool_written.remove(&pool);
        }
    }

    async fn publish(&self, note: &Note, reference: &ObjectReference) {
        let event = Event {
            type_: if note.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: note.reason.clone(),
            note: Some(note.message.clone()),
            action: "Schedule".to_owned(),
            secondary: None,
        };
        self.metrics.inc_writes("event");
        if let Err(e) = self.recorder.publish(&event, reference).await {
            tracing::debug!(object = ?reference.name, error = %e, "cannot publish Event");
        }
    }

    fn observe(&self, observation: Observation) {
        match observation {
            Observation::Started {
                pool,
                task_type,
                waited,
            } => self
                .metrics
                .observe_schedule_to_start(&pool, &task_type, waited),
            Observation::AttemptFailed { pool, reason } => {
                self.metrics.inc_attempt_failure(&pool, &reason)
            }
            Observation::Finished(task) => self.metrics.observe_finished(&task),
        }
    }

    fn report(&self, result: Result<()>, what: &str) {
        if let Err(e) = result {
            self.metrics.inc_reconcile_error(e.category());
            if e.is_conflict() {
                tracing::debug!(error = %e, "{what}");
            } else {
                tracing::warn!(error = %e, category = e.category(), "{what}");
            }
            self.shared.dirty.notify_one();
        }
    }

    fn spawn_watchers(&self) {
        let watched = || Watched {
            client: self.client.clone(),
            recorder: self.recorder.clone(),
            metrics: self.metrics.clone(),
        };
        let managed = watcher::Config::default().labels(labels::MANAGED_SELECTOR);
        spawn_watch::<EncodingTask>(
            watched(),
            watcher::Config::default(),
            Source::EncodingTasks,
            self.shared.clone(),
            |t| Task::from_resource(t).map(|t| Change::Task(Box::new(t))),
            |t| t.metadata.uid.clone().map(Change::TaskGone),
        );
        spawn_watch::<TranscriptionTask>(
            watched(),
            watcher::Config::default(),
            Source::TranscriptionTasks,
            self.shared.clone(),
            |t| Task::from_resource(t).map(|t| Change::Task(Box::new(t))),
            |t| t.metadata.uid.clone().map(Change::TaskGone),
        );
        spawn_watch::<RunnerPool>(
            watched(),
            watcher::Config::default(),
            Source::Pools,
            self.shared.clone(),
            |p| Pool::from_object(p).map(|p| Change::Pool(Box::new(p))),
            |p| p.metadata.name.clone().map(Change::PoolGone),
        );
        spawn_watch::<Node>(
            watched(),
            watcher::Config::default(),
            Source::Nodes,
            self.shared.clone(),
            |n| NodeInfo::from_object(n).map(Change::Node),
            |n| n.metadata.name.clone().map(Change::NodeGone),
        );
        spawn_watch::<Job>(
            watched(),
            managed.clone(),
            Source::Jobs,
            self.shared.clone(),
            |j| JobInfo::from_object(j).map(Change::Job),
            |j| {
                Some(Change::JobGone(
                    j.metadata.namespace.clone()?,
                    j.metadata.name.clone()?,
                ))
            },
        );
        spawn_watch::<Pod>(
            watched(),
            managed,
            Source::Pods,
            self.shared.clone(),
            |p| PodInfo::from_object(p).map(Change::Pod),
            |p| PodInfo::from_object(p).map(Change::PodGone),
        );
        spawn_watch::<NetworkPolicy>(
            watched(),
            watcher::Config::default().labels(labels::RUNNER_POLICY_SELECTOR),
            Source::RunnerPolicies,
            self.shared.clone(),
            |p| {
                Some(Change::RunnerPolicy(
                    p.metadata.namespace.clone()?,
                    p.metadata.name.clone()?,
                ))
            },
            |p| {
                Some(Change::RunnerPolicyGone(
                    p.metadata.namespace.clone()?,
                    p.metadata.name.clone()?,
                ))
            },
        );
    }
}

/// Runs one watcher for ever, converting each object as it arrives so that full objects are
/// never kept.
/// Objects that do not decode are reported and skipped ([`esup_kube_common::watch`]).
fn spawn_watch<K>(
    watched: Watched,
    config: watcher::Config,
    source: Source,
    shared: Arc<Shared>,
    applied: fn(&K) -> Option<Change>,
    deleted: fn(&K) -> Option<Change>,
) where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let Watched {
        client,
        recorder,
        metrics,
    } = watched;
    let api: Api<DeserializeGuard<K>> = Api::all(client);
    let on_invalid = move |invalid: &InvalidObject| {
        metrics.inc_undecodable(&K::kind(&()));
        esup_kube_common::watch::report::<K>(&recorder, invalid);
    };
    tokio::spawn(async move {
        let mut stream = esup_kube_common::watch::guarded_watcher(api, config, on_invalid)
            .default_backoff()
            .boxed();
        loop {
            let event = match stream.try_next().await {
                Ok(Some(event)) => event,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(?source, error = %e, "watch failed; retrying with backoff");
                    continue;
                }
            };
            let change = match &event {
                watcher::Event::Apply(object) | watcher::Event::InitApply(object) => {
                    applied(object)
                }
                watcher::Event::Delete(object) => deleted(object),
                watcher::Event::Init => Some(Change::Relist(source)),
                watcher::Event::InitDone => Some(Change::Listed(source)),
            };
            if let Some(change) = change {
                shared
                    .index
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .apply(change);
                shared.dirty.notify_one();
            }
        }
    });
}

fn task_reference(key: &TaskKey, uid: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some(format!("{}/{}", esup_api::GROUP, esup_api::VERSION)),
        kind: Some(key.kind.kind_name().to_owned()),
        name: Some(key.name.clone()),
        namespace: Some(key.namespace.clone()),
        uid: Some(uid.to_owned()),
        ..ObjectReference::default()
    }
}

/// The scheduler's view of a task the API server answered with.
fn task_of(kind: TaskKind, object: kube::api::DynamicObject) -> Option<Task> {
    match kind {
        TaskKind::Encoding => {
            Task::from_resource(&esup_kube_common::tasks::typed::<EncodingTask>(object)?)
        }
        TaskKind::Transcription => Task::from_resource(&esup_kube_common::tasks::typed::<
            TranscriptionTask,
        >(object)?),
    }
}
