//! The notifier: tells Esup-Pod that a task ended (`POST <notify_url>`, protocol §1.7), for
//! every terminal phase — including the failures and timeouts the reference manager never
//! reports (§6 gap 1).
//!
//! State lives in each task's `status.notification` and `Notified` condition, written with
//! server-side apply under the notifier's own field manager, so a restarted or new leader
//! resumes where the last one stopped:
//!
//! 1. before a send, the attempt is recorded (attempts + 1, `nextAttemptTime` = when the next
//!    one would be due), conditional on the resourceVersion just read: a 409 means someone
//!    else moved the task, and the send is skipped;
//! 2. the send;
//! 3. the result: `Delivered`, or the failure with its retry time, or `Exhausted`.
//!
//! If the process dies during step 2, the recorded `nextAttemptTime` makes the next leader
//! send again later: in that narrow case Esup-Pod may hear of a task twice. That is the safer
//! side: a lost notify leaves an Esup-Pod video `running` until its 2-hour stall check (for
//! ever, for failures), while a repeated one is absorbed by Esup-Pod, whose import holds a
//! per-task file lock and whose failure path only sets a status. The reverse risk, repeating
//! an import that is still running, is what the read-timeout rule avoids: a read timeout
//! counts as delivered.
//!
//! Only the replica holding the Lease `esup-webhook-notifier` sends; the others keep their
//! index warm and idle.

mod http;
mod logic;
mod slots;
mod token;

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use esup_api::status::{NotificationStatus, TaskOutcome};
use esup_api::task::{TaskKey, TaskKind, TaskResource};
use esup_api::wire::NotifyBody;
use esup_api::{EncodingTask, NotifySpec, SecretKeyRef, TranscriptionTask};
use esup_kube_common::error::KubeError;
use esup_kube_common::leader::{self, LeaderConfig, Leadership};
use esup_kube_common::watch::newer;
use k8s_openapi::api::core::v1::{ObjectReference, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use tokio::sync::Notify;

pub use http::{Sender, Target, classify_refusal, classify_status};
pub use logic::{
    SendOutcome, Step, TaskView, after_send, backoff_delays, before_send, default_retry_delays,
    interrupted, max_sends, next_step, not_requested, notified_condition, notify_body,
    status_patch,
};
pub use slots::{Full, Slot, Slots, start_due};
pub use token::{NOTIFY_TOKEN_REFUSED, TokenRefusal, check_ref, token_for};

/// Lease that elects the one sending replica.
pub const LEASE_NAME: &str = "esup-webhook-notifier";

/// Recommended field manager. It must differ from any manager that *applies* other status
/// fields (result, progress): an apply removes the fields its manager applied before and
/// left out this time, and the notifier only ever applies `notification` and `Notified`.
pub const NOTIFIER_FIELD_MANAGER: &str = "esup-webhook-notifier";

/// A Secret is read again after this long, so a rotated token is used within a minute.
const SECRET_TTL: Duration = Duration::from_secs(30);
/// Longest sleep of the loop; due times are also re-read from the index after it.
const IDLE: Duration = Duration::from_secs(60);
/// Watch events arriving together are handled in one pass.
const DEBOUNCE: Duration = Duration::from_millis(200);
/// How long a task rests after its job met a conflict (the watch brings the new version).
const CONFLICT_REST: Duration = Duration::from_secs(1);
/// How long a task rests after its job met an API error.
const ERROR_REST: Duration = Duration::from_secs(10);
/// Tries of the write that records a send's result: losing it means sending again.
const RESULT_WRITE_TRIES: u32 = 5;

#[derive(Clone, Debug)]
pub struct NotifierConfig {
    /// Server-side-apply field manager of the notification writes; see
    /// [`NOTIFIER_FIELD_MANAGER`].
    pub field_manager: String,
    /// The webhook's namespace: holds the Lease.
    pub lease_namespace: String,
    /// The only namespace notify tokens are read from: that of the tenant Secrets (by default
    /// the webhook's). A reference naming another namespace is refused.
    pub tenant_secrets_namespace: String,
    /// This replica in the election (the pod name).
    pub identity: String,
    /// TCP and TLS; the manager uses 5 s.
    pub connect_timeout: Duration,
    /// Wait for Esup-Pod's answer once the request is sent; the manager uses 15 s. Past it the
    /// notification counts as delivered.
    pub read_timeout: Duration,
    /// Delay before each retry; their number is the number of retries.
    pub retry_delays: Vec<Duration>,
    /// Sends (and notification writes) in flight at once.
    pub concurrency: usize,
    /// Of those, the most for one tenant: a tenant whose Esup-Pod stalls holds no more.
    pub per_tenant_concurrency: usize,
    /// Applied to the notify URL at each send.
    pub url_policy: crate::url_policy::UrlPolicy,
    /// Counters for /metrics.
    pub stats: Arc<NotifierStats>,
    /// Where `script_output` is read from when a result keeps it in the result store
    /// (`status.result.scriptOutputRef`); `None` sends what the status holds inline.
    pub results: Option<crate::store::ResultStore>,
}

impl NotifierConfig {
    /// The reference manager's timings and retries, 16 sends at once, 4 per tenant; tenant
    /// Secrets in the webhook's namespace.
    pub fn new(
        lease_namespace: impl Into<String>,
        identity: impl Into<String>,
        url_policy: crate::url_policy::UrlPolicy,
    ) -> Self {
        let lease_namespace = lease_namespace.into();
        Self {
            field_manager: NOTIFIER_FIELD_MANAGER.to_owned(),
            tenant_secrets_namespace: lease_namespace.clone(),
            lease_namespace,
            identity: identity.into(),
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(15),
            retry_delays: default_retry_delays(),
            concurrency: 16,
            per_tenant_concurrency: 4,
            url_policy,
            stats: Arc::default(),
            results: None,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.field_manager.is_empty() {
            return Err("notifier field manager is empty".into());
        }
        if self.lease_namespace.is_empty() || self.tenant_secrets_namespace.is_empty() {
            return Err("notifier namespace is empty".into());
        }
        if self.connect_timeout.is_zero() || self.read_timeout.is_zero() {
            return Err("notify timeouts must be positive".into());
        }
        if self.concurrency == 0 || self.per_tenant_concurrency == 0 {
            return Err("notifier concurrency must be at least 1".into());
        }
        self.leader_config()
            .validate()
            .map_err(|e| format!("notifier election: {e}"))
    }

    fn leader_config(&self) -> LeaderConfig {
        LeaderConfig::new(&self.lease_namespace, LEASE_NAME, &self.identity)
    }

    /// How long one send can take; a recorded send is not retried before it is over.
    fn in_flight_bound(&self) -> Duration {
        self.connect_timeout + self.read_timeout + Duration::from_secs(5)
    }
}

/// Counters a /metrics endpoint reads.
#[derive(Debug)]
pub struct NotifierStats {
    /// Notifications Esup-Pod acknowledged, read timeouts included.
    pub delivered: AtomicU64,
    /// Of those, the ones counted as delivered on a read timeout.
    pub read_timeouts: AtomicU64,
    /// Sends that failed (each failed attempt once).
    pub failed: AtomicU64,
    /// Notifications given up: retries exhausted, or URL refused by the policy.
    pub exhausted: AtomicU64,
    /// Tasks marked NotRequested.
    pub not_requested: AtomicU64,
    /// Seconds from a task's end to Esup-Pod's acknowledgement of its notification.
    pub delay: prometheus_client::metrics::histogram::Histogram,
}

/// From a send right after the end (sub-second) to the last retry of the reference
/// schedule (hours).
const DELAY_BUCKETS: [f64; 14] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 14400.0,
];

impl Default for NotifierStats {
    fn default() -> Self {
        Self {
            delivered: AtomicU64::default(),
            read_timeouts: AtomicU64::default(),
            failed: AtomicU64::default(),
            exhausted: AtomicU64::default(),
            not_requested: AtomicU64::default(),
            delay: prometheus_client::metrics::histogram::Histogram::new(DELAY_BUCKETS),
        }
    }
}

impl NotifierStats {
    fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// (delivered, read_timeouts, failed, exhausted, not_requested)
    pub fn snapshot(&self) -> (u64, u64, u64, u64, u64) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        (
            get(&self.delivered),
            get(&self.read_timeouts),
            get(&self.failed),
            get(&self.exhausted),
            get(&self.not_requested),
        )
    }

    fn record(&self, outcome: &SendOutcome, result: &NotificationStatus) {
        match outcome {
            SendOutcome::Accepted(_) => Self::count(&self.delivered),
            SendOutcome::ReadTimeout => {
                Self::count(&self.delivered);
                Self::count(&self.read_timeouts);
            }
            SendOutcome::Failed(_) => Self::count(&self.failed),
            SendOutcome::Refused(_) | SendOutcome::TokenRefused(_) => {}
        }
        if result.state == esup_api::NotificationState::Exhausted {
            Self::count(&self.exhausted);
        }
    }
}

/// Starts the election on the notifier's Lease. The webhook's other single-replica work (the
/// result sweep) follows the same leadership, so one Lease elects one replica for all of it.
pub fn elect(client: Client, config: &NotifierConfig) -> Leadership {
    // The election runs until the process ends; its handle is only needed to abort it.
    let (leadership, _election) = leader::spawn(client, config.leader_config());
    leadership
}

/// Runs the notifier: sends while this replica leads, under a leadership elected with
/// [`elect`], from the index `feed` keeps (fed by the webhook's task caches, so both task
/// kinds are watched once per process). Returns only if the configuration is invalid
/// (logged) or the election task dies.
pub async fn run(client: Client, config: NotifierConfig, leadership: Leadership, feed: TaskFeed) {
    if let Err(e) = config.validate() {
        tracing::error!(error = %e, "notifier not started");
        return;
    }
    let notifier = Arc::new(Notifier::new(client, config, leadership.clone(), feed));
    notifier.drive(leadership).await;
}

fn view_of<K: TaskResource>(task: &K) -> Option<TaskView> {
    let meta = task.meta();
    let status = task.task_status();
    Some(TaskView {
        key: TaskKey {
            kind: K::KIND,
            namespace: meta.namespace.clone()?,
            name: meta.name.clone()?,
        },
        uid: meta.uid.clone()?,
        resource_version: meta.resource_version.clone(),
        generation: meta.generation,
        phase: status.map(|s| s.phase).unwrap_or_default(),
        tenant: task.common().requester.tenant.clone(),
        has_notify: task.common().notify.is_some(),
        notification: status.and_then(|s| s.notification.clone()),
    })
}

/// A task as read just before acting on it: the view plus what a send needs.
struct Fresh {
    view: TaskView,
    notify: Option<NotifySpec>,
    body: Option<NotifyBody>,
    /// The launch whose `script_output` the result store keeps, read at send time.
    stored_script_output: Option<u32>,
    notified: Option<Condition>,
    /// When the task reached its terminal phase.
    completion_time: Option<Timestamp>,
}

impl Fresh {
    fn of<K: TaskResource>(task: &K) -> Option<Self> {
        let view = view_of(task)?;
        let status = task.task_status();
        Some(Self {
            body: notify_body(&view.key.name, view.phase, status),
            stored_script_output: status
                .and_then(|s| s.result.as_ref())
                .and_then(|r| r.stored_script_output_launch()),
            notify: task.common().notify.clone(),
            completion_time: status.and_then(|s| s.completion_time.as_ref()).map(|t| t.0),
            notified: status.and_then(|s| {
                s.conditions
                    .iter()
                    .find(|c| c.type_ == esup_api::conditions::task::NOTIFIED)
                    .cloned()
            }),
            view,
        })
    }
}

/// One change from a watcher.
#[derive(Debug)]
enum Change {
    Put(Box<TaskView>),
    Gone(String),
    /// A relist started: what the following `Listed` does not mention is gone.
    Relist(TaskKind),
    Listed(TaskKind),
}

/// Compact views of every task, by uid; never moved back to an older resourceVersion, so the
/// notifier's own writes count before their watch events arrive.
#[derive(Default)]
struct Index {
    tasks: HashMap<String, TaskView>,
    relisting: HashMap<TaskKind, HashSet<String>>,
}

impl Index {
    fn put(&mut self, view: TaskView) {
        let current = self.tasks.get(&view.uid);
        if current.is_none_or(|c| {
            newer(
                view.resource_version.as_deref(),
                c.resource_version.as_deref(),
            )
        }) {
            self.tasks.insert(view.uid.clone(), view);
        }
    }

    fn apply(&mut self, change: Change) {
        match change {
            Change::Put(view) => {
                if let Some(seen) = self.relisting.get_mut(&view.key.kind) {
                    seen.insert(view.uid.clone());
                }
                self.put(*view);
            }
            Change::Gone(uid) => {
                self.tasks.remove(&uid);
            }
            Change::Relist(kind) => {
                self.relisting.insert(kind, HashSet::new());
            }
            Change::Listed(kind) => {
                if let Some(seen) = self.relisting.remove(&kind) {
                    self.tasks
                        .retain(|uid, v| v.key.kind != kind || seen.contains(uid));
                }
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug, thiserror::Error)]
enum JobError {
    #[error(transparent)]
    Kube(#[from] KubeError),
    #[error("{0}: incomplete object from the API server")]
    Incomplete(String),
}

impl JobError {
    fn api(verb: &'static str, what: &TaskKey, source: kube::Error) -> Self {
        KubeError::new(verb, what.to_string(), source).into()
    }
}

/// Tokens by (tenant, namespace, Secret, key), with when they were read; only tokens that
/// passed [`token_for`] for that tenant.
type TokenCache = HashMap<(String, String, String, String), (Instant, String)>;

/// Why no token is available for a send.
#[derive(Debug, thiserror::Error)]
enum TokenError {
    /// The reference is not one this task may use: final.
    #[error(transparent)]
    Refused(#[from] TokenRefusal),
    /// The Secret cannot be read now: the send fails and is retried.
    #[error("{0}")]
    Unavailable(String),
}

struct Notifier {
    client: Client,
    config: NotifierConfig,
    sender: Sender,
    max_sends: u32,
    leadership: Leadership,
    feed: TaskFeed,
    /// Tasks a job is working on.
    in_flight: Mutex<HashSet<String>>,
    /// Tasks resting after a failed job, until then.
    resting: Mutex<HashMap<String, Instant>>,
    tokens: Mutex<TokenCache>,
    slots: Slots,
    recorder: Recorder,
}

impl Notifier {
    fn new(client: Client, config: NotifierConfig, leadership: Leadership, feed: TaskFeed) -> Self {
        Self {
            sender: Sender::new(config.connect_timeout, config.read_timeout),
            max_sends: max_sends(&config.retry_delays),
            slots: Slots::new(config.concurrency, config.per_tenant_concurrency),
            recorder: Recorder::new(
                client.clone(),
                Reporter {
                    controller: NOTIFIER_FIELD_MANAGER.to_owned(),
                    instance: Some(config.identity.clone()),
                },
            ),
            client,
            config,
            leadership,
            feed,
            in_flight: Mutex::default(),
            resting: Mutex::default(),
            tokens: Mutex::default(),
        }
    }

    async fn drive(self: &Arc<Self>, mut leadership: Leadership) {
        loop {
            if !leadership.is_leader() {
                match leadership.changed().await {
                    Some(_) => continue,
                    None => {
                        tracing::error!("notifier election ended; no more notifications");
                        return;
                    }
                }
            }
            let wait = self.pass().unwrap_or(IDLE).min(IDLE);
            tokio::select! {
                () = self.feed.dirty.notified() => tokio::time::sleep(DEBOUNCE).await,
                () = tokio::time::sleep(wait) => {}
                _ = leadership.changed() => {}
            }
        }
    }

    /// Starts a job for every task that needs one, as slots allow (a finishing job wakes
    /// the loop for the rest; a tenant at its cap waits while others start). Returns how
    /// long until the next task is due.
    fn pass(self: &Arc<Self>) -> Option<Duration> {
        let now = Timestamp::now();
        let clock = Instant::now();
        let mut wake: Option<Duration> = None;
        let mut soonest = |d: Duration| wake = Some(wake.map_or(d, |w| w.min(d)));
        let mut due = Vec::new();
        {
            let index = lock(&self.feed.index);
            let in_flight = lock(&self.in_flight);
            let mut resting = lock(&self.resting);
            resting.retain(|_, until| *until > clock);
            for view in index.tasks.values() {
                if in_flight.contains(&view.uid) {
                    continue;
                }
                if let Some(until) = resting.get(&view.uid) {
                    soonest(until.saturating_duration_since(clock));
                    continue;
                }
                match next_step(view, self.max_sends, now) {
                    Step::Skip => {}
                    Step::WaitUntil(t) => {
                        soonest(Duration::try_from(now.duration_until(t)).unwrap_or_default());
                    }
                    Step::MarkNotRequested { .. } | Step::Send { .. } | Step::GiveUp => {
                        due.push((view.uid.clone(), view.key.clone(), view.tenant.clone()));
                    }
                }
            }
        }
        start_due(
            due,
            |d| d.2.as_str(),
            &self.slots,
            |(uid, key, _), slot| {
                lock(&self.in_flight).insert(uid.clone());
                let this = self.clone();
                tokio::spawn(async move {
                    let result = match key.kind {
                        TaskKind::Encoding => this.job::<EncodingTask>(&uid, &key).await,
                        TaskKind::Transcription => this.job::<TranscriptionTask>(&uid, &key).await,
                    };
                    let rest = match result {
                        Ok(()) => None,
                        Err(e @ JobError::Kube(KubeError::Conflict { .. })) => {
                            tracing::debug!(task = %key, error = %e, "notification skipped");
                            Some(CONFLICT_REST)
                        }
                        Err(e) => {
                            tracing::warn!(task = %key, error = %e, "notification step failed");
                            Some(ERROR_REST)
                        }
                    };
                    if let Some(rest) = rest {
                        lock(&this.resting).insert(uid.clone(), Instant::now() + rest);
                    }
                    lock(&this.in_flight).remove(&uid);
                    drop(slot);
                    this.feed.dirty.notify_one();
                });
            },
        );
        wake
    }

    fn api<K: TaskResource>(&self, namespace: &str) -> Api<K> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// Reads the task again and does what it needs now: the index may be behind.
    async fn job<K: TaskResource>(
        self: &Arc<Self>,
        uid: &str,
        key: &TaskKey,
    ) -> Result<(), JobError> {
        let task = self
            .api::<K>(&key.namespace)
            .get_opt(&key.name)
            .await
            .map_err(|e| JobError::api("get", key, e))?;
        let Some(fresh) = task.as_ref().and_then(Fresh::of) else {
            lock(&self.feed.index).apply(Change::Gone(uid.to_owned()));
            return Ok(());
        };
        if fresh.view.uid != uid {
            // Deleted and recreated under the same name: the watcher brings the new one.
            lock(&self.feed.index).apply(Change::Gone(uid.to_owned()));
            return Ok(());
        }
        lock(&self.feed.index).put(fresh.view.clone());
        if !self.leadership.is_leader() {
            return Ok(());
        }
        let now = Timestamp::now();
        let pinned = fresh.view.resource_version.as_deref();
        match next_step(&fresh.view, self.max_sends, now) {
            Step::Skip | Step::WaitUntil(_) => Ok(()),
            Step::MarkNotRequested { outcome } => {
                self.write::<K>(key, pinned, &not_requested(outcome), None)
                    .await?;
                NotifierStats::count(&self.config.stats.not_requested);
                Ok(())
            }
            Step::GiveUp => {
                let Some(recorded) = &fresh.view.notification else {
                    return Ok(());
                };
                let result = interrupted(recorded);
                let condition = self.condition(&fresh, &result, None, now);
                self.write::<K>(key, pinned, &result, condition.as_ref())
                    .await?;
                NotifierStats::count(&self.config.stats.exhausted);
                tracing::warn!(task = %key, attempts = result.attempts, "notification given up: last send interrupted");
                Ok(())
            }
            Step::Send { attempt, outcome } => self.send::<K>(&fresh, attempt, outcome, now).await,
        }
    }

    fn condition(
        &self,
        fresh: &Fresh,
        n: &NotificationStatus,
        how: Option<&SendOutcome>,
        now: Timestamp,
    ) -> Option<Condition> {
        notified_condition(n, how, fresh.notified.as_ref(), fresh.view.generation, now)
    }

    async fn send<K: TaskResource>(
        &self,
        fresh: &Fresh,
        attempt: u32,
        outcome: TaskOutcome,
        now: Timestamp,
    ) -> Result<(), JobError> {
        let (Some(notify), Some(body)) = (&fresh.notify, &fresh.body) else {
            return Ok(());
        };
        let key = &fresh.view.key;
        let pinned = fresh.view.resource_version.as_deref();
        let previous = fresh
            .view
            .notification
            .as_ref()
            .filter(|n| n.outcome == outcome);
        let delays = &self.config.retry_delays;
        let recorded = before_send(
            previous,
            outcome,
            attempt,
            delays,
            self.config.in_flight_bound(),
            now,
        );

        // Before anything else: a task names its token Secret itself, and only its own
        // tenant's token may ever leave (token.rs).
        let token = match self
            .token(&fresh.view.tenant, &notify.token_secret_ref)
            .await
        {
            Ok(token) => token,
            Err(TokenError::Refused(refusal)) => {
                self.refuse_token(fresh, &refusal).await;
                // Nothing was sent: the attempt count stays, the refusal is final.
                let base = previous.cloned().unwrap_or_else(|| logic::fresh(outcome));
                let refused = SendOutcome::TokenRefused(refusal.to_string());
                return self.record_unsent::<K>(fresh, &base, refused, pinned).await;
            }
            Err(TokenError::Unavailable(why)) => {
                return self
                    .record_unsent::<K>(fresh, &recorded, SendOutcome::Failed(why), pinned)
                    .await;
            }
        };
        // Checked at each send, since DNS can change; connecting only to what was checked.
        let target = match self
            .sender
            .resolve(&self.config.url_policy, &notify.url)
            .await
        {
            Ok(target) => target,
            Err(refused @ SendOutcome::Refused(_)) => {
                // Nothing was sent: the attempt count stays, the refusal is final.
                let base = previous.cloned().unwrap_or_else(|| logic::fresh(outcome));
                return self.record_unsent::<K>(fresh, &base, refused, pinned).await;
            }
            Err(failed) => {
                return self
                    .record_unsent::<K>(fresh, &recorded, failed, pinned)
                    .await;
            }
        };
        let mut body = body.clone();
        if let (Some(launch), Some(results)) = (fresh.stored_script_output, &self.config.results) {
            match results.script_output(&fresh.view.uid, launch).await {
                Ok(text) => body.script_output = text,
                Err(e) => {
                    let failed = SendOutcome::Failed(format!("cannot read the script output: {e}"));
                    return self
                        .record_unsent::<K>(fresh, &recorded, failed, pinned)
                        .await;
                }
            }
        }
        let body = match serde_json::to_vec(&body) {
            Ok(bytes) => Bytes::from(bytes),
            Err(e) => {
                let failed = SendOutcome::Failed(format!("cannot serialize the body: {e}"));
                return self
                    .record_unsent::<K>(fresh, &recorded, failed, pinned)
                    .await;
            }
        };
        if !self.leadership.is_leader() {
            return Ok(());
        }

        let condition = self.condition(fresh, &recorded, None, now);
        let written = self
            .write::<K>(key, pinned, &recorded, condition.as_ref())
            .await?;
        let sent = self.sender.post(&target, &token, body).await;
        let end = Timestamp::now();
        let result = after_send(&recorded, &sent, delays, end);
        self.config.stats.record(&sent, &result);
        if let (SendOutcome::Accepted(_) | SendOutcome::ReadTimeout, Some(ended)) =
            (&sent, fresh.completion_time)
        {
            let delay = end.duration_since(ended).as_secs_f64().max(0.0);
            self.config.stats.delay.observe(delay);
        }
        match &sent {
            SendOutcome::Accepted(_) | SendOutcome::ReadTimeout => {
                tracing::info!(task = %key, attempt, outcome = ?sent, "Esup-Pod notified");
            }
            _ => tracing::warn!(
                task = %key, attempt, state = ?result.state, error = result.last_error.as_deref().unwrap_or(""),
                "notification failed"
            ),
        }
        let condition = self.condition(&written, &result, Some(&sent), end);
        self.record_result::<K>(key, written.view, &result, condition.as_ref())
            .await
    }

    /// Tells the task's readers (`kubectl describe`) why it will not be notified.
    async fn refuse_token(&self, fresh: &Fresh, refusal: &TokenRefusal) {
        let key = &fresh.view.key;
        tracing::warn!(task = %key, category = refusal.category(), "{refusal}; notification not sent");
        let reference = ObjectReference {
            api_version: Some(format!("{}/{}", esup_api::GROUP, esup_api::VERSION)),
            kind: Some(key.kind.kind_name().to_owned()),
            namespace: Some(key.namespace.clone()),
            name: Some(key.name.clone()),
            uid: Some(fresh.view.uid.clone()),
            ..ObjectReference::default()
        };
        let event = Event {
            type_: EventType::Warning,
            reason: NOTIFY_TOKEN_REFUSED.to_owned(),
            note: Some(esup_api::truncate_chars(&refusal.to_string(), 1024)),
            action: "Notify".to_owned(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &reference).await {
            tracing::debug!(task = %key, error = %e, "cannot publish Event");
        }
    }

    /// Records the end of an attempt that sent nothing (refused URL or token, unreadable
    /// token) in one write.
    async fn record_unsent<K: TaskResource>(
        &self,
        fresh: &Fresh,
        recorded: &NotificationStatus,
        outcome: SendOutcome,
        pinned: Option<&str>,
    ) -> Result<(), JobError> {
        let now = Timestamp::now();
        let result = after_send(recorded, &outcome, &self.config.retry_delays, now);
        self.config.stats.record(&outcome, &result);
        tracing::warn!(
            task = %fresh.view.key, state = ?result.state, error = result.last_error.as_deref().unwrap_or(""),
            "notification not sent"
        );
        let condition = self.condition(fresh, &result, Some(&outcome), now);
        self.write::<K>(&fresh.view.key, pinned, &result, condition.as_ref())
            .await
            .map(drop)
    }

    /// Records a send's result, conditional on the version our pre-send record produced.
    /// Losing this write would mean sending again, so a conflict or an API error is retried
    /// for as long as the task still shows our attempt; if it shows anything else, someone
    /// else moved it (a result fetch marking it delivered, a newer leader) and they win.
    async fn record_result<K: TaskResource>(
        &self,
        key: &TaskKey,
        mut seen: TaskView,
        result: &NotificationStatus,
        condition: Option<&Condition>,
    ) -> Result<(), JobError> {
        let ours = seen.notification.clone();
        let mut pause = Duration::from_millis(500);
        for attempt in 1..=RESULT_WRITE_TRIES {
            let err = match self
                .write::<K>(key, seen.resource_version.as_deref(), result, condition)
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if attempt == RESULT_WRITE_TRIES => return Err(e),
                Err(e) => e,
            };
            tracing::debug!(task = %key, error = %err, "recording the notification result again");
            if matches!(err, JobError::Kube(KubeError::Api { .. })) {
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            let current = self
                .api::<K>(&key.namespace)
                .get_opt(&key.name)
                .await
                .map_err(|e| JobError::api("get", key, e));
            match current {
                Ok(Some(task)) => match view_of(&task) {
                    Some(view) if view.uid == seen.uid && view.notification == ours => seen = view,
                    _ => return Ok(()),
                },
                Ok(None) => return Ok(()),
                Err(e) => tracing::debug!(task = %key, error = %e, "re-reading the task"),
            }
        }
        Ok(())
    }

    /// Applies the notifier's fields, and indexes the answer.
    async fn write<K: TaskResource>(
        &self,
        key: &TaskKey,
        resource_version: Option<&str>,
        n: &NotificationStatus,
        condition: Option<&Condition>,
    ) -> Result<Fresh, JobError> {
        let patch = status_patch(key, resource_version, n, condition);
        let params = PatchParams::apply(&self.config.field_manager).force();
        let task = self
            .api::<K>(&key.namespace)
            .patch_status(&key.name, &params, &Patch::Apply(&patch))
            .await
            .map_err(|e| JobError::api("apply status", key, e))?;
        let fresh = Fresh::of(&task).ok_or_else(|| JobError::Incomplete(key.to_string()))?;
        lock(&self.feed.index).put(fresh.view.clone());
        Ok(fresh)
    }

    /// The token of the task's tenant its reference names, cached briefly. Refused unless
    /// [`token_for`] accepts it; a Secret that cannot be read now is a failed attempt (it may
    /// come back, and the retries bound the wait).
    async fn token(&self, tenant: &str, r: &SecretKeyRef) -> Result<String, TokenError> {
        let allowed = &self.config.tenant_secrets_namespace;
        // Refused before any read: no other namespace's Secret is ever fetched.
        let namespace = check_ref(r, allowed)?;
        let cache_key = (
            tenant.to_owned(),
            namespace.clone(),
            r.name.clone(),
            r.key.clone(),
        );
        if let Some((read, token)) = lock(&self.tokens).get(&cache_key)
            && read.elapsed() < SECRET_TTL
        {
            return Ok(token.clone());
        }
        let what = format!("token Secret {namespace}/{}", r.name);
        let secret = Api::<Secret>::namespaced(self.client.clone(), &namespace)
            .get_opt(&r.name)
            .await
            .map_err(|e| TokenError::Unavailable(format!("cannot read {what}: {e}")))?
            .ok_or_else(|| TokenError::Unavailable(format!("{what} not found")))?;
        let token = token_for(&secret, tenant, r, allowed)?;
        let mut tokens = lock(&self.tokens);
        tokens.retain(|_, (read, _)| read.elapsed() < SECRET_TTL);
        tokens.insert(cache_key, (Instant::now(), token.clone()));
        Ok(token)
    }
}

/// The notifier's index of tasks and the signal that it changed, fed by the webhook's task
/// watches ([`crate::tasks::Observers`]) from before this replica leads, so that a new leader
/// starts from a warm index. Events carry tasks as the caches keep them (stripped of what
/// the notifier never reads); a send reads its task again first.
#[derive(Clone, Default)]
pub struct TaskFeed {
    index: Arc<Mutex<Index>>,
    dirty: Arc<Notify>,
}

impl TaskFeed {
    /// Observers to hand to [`crate::tasks::Tasks::start_observed`].
    pub fn observers(&self) -> crate::tasks::Observers {
        let encoding = self.clone();
        let transcription = self.clone();
        crate::tasks::Observers {
            encoding: Some(Arc::new(move |e| encoding.observe::<EncodingTask>(e))),
            transcription: Some(Arc::new(move |e| {
                transcription.observe::<TranscriptionTask>(e)
            })),
        }
    }

    fn observe<K: TaskResource>(&self, event: &watcher::Event<K>) {
        let change = match event {
            watcher::Event::Apply(task) | watcher::Event::InitApply(task) => {
                view_of(task).map(|v| Change::Put(Box::new(v)))
            }
            watcher::Event::Delete(task) => task.uid().map(Change::Gone),
            watcher::Event::Init => Some(Change::Relist(K::KIND)),
            watcher::Event::InitDone => Some(Change::Listed(K::KIND)),
        };
        let Some(change) = change else { return };
        // Only a terminal task, or the end of a list, can need a send.
        let wake = match &change {
            Change::Put(view) => view.phase.outcome().is_some(),
            Change::Listed(_) => true,
            Change::Gone(_) | Change::Relist(_) => false,
        };
        lock(&self.index).apply(change);
        if wake {
            self.dirty.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use esup_api::TaskPhase;

    fn view(kind: TaskKind, uid: &str, rv: &str) -> TaskView {
        TaskView {
            key: TaskKey {
                kind,
                namespace: "ns".into(),
                name: uid.into(),
            },
            uid: uid.into(),
            resource_version: Some(rv.into()),
            generation: Some(1),
            phase: TaskPhase::Succeeded,
            tenant: "univ-x".into(),
            has_notify: true,
            notification: None,
        }
    }

    #[test]
    fn index_relists_per_kind_and_never_goes_back() {
        let mut index = Index::default();
        index.apply(Change::Put(Box::new(view(TaskKind::Encoding, "a", "10"))));
        index.apply(Change::Put(Box::new(view(TaskKind::Encoding, "b", "10"))));
        index.apply(Change::Put(Box::new(view(
            TaskKind::Transcription,
            "t",
            "10",
        ))));
        index.put(view(TaskKind::Encoding, "a", "9"));
        assert_eq!(
            index.tasks["a"].resource_version.as_deref(),
            Some("10"),
            "an older version does not replace a newer one"
        );
        index.apply(Change::Relist(TaskKind::Encoding));
        index.apply(Change::Put(Box::new(view(TaskKind::Encoding, "a", "12"))));
        index.apply(Change::Listed(TaskKind::Encoding));
        let mut uids: Vec<&str> = index.tasks.keys().map(String::as_str).collect();
        uids.sort_unstable();
        assert_eq!(
            uids,
            ["a", "t"],
            "b vanished during the relist; t is another kind"
        );
        index.apply(Change::Gone("t".into()));
        assert!(!index.tasks.contains_key("t"));
    }

    #[test]
    fn views_keep_what_decisions_need() {
        let task: TranscriptionTask = serde_json::from_value(serde_json::json!({
            "apiVersion": "runner.esup-portail.org/v1alpha1",
            "kind": "TranscriptionTask",
            "metadata": {"name": "2f53", "namespace": "univ-x", "uid": "u-1", "resourceVersion": "7", "generation": 1},
            "spec": {
                "source": {"url": "https://pod.univ.fr/media/a.mp3"},
                "language": "fr",
                "requester": {"tenant": "univ-x", "etabName": "X", "appName": "Esup-Pod"},
                "notify": {"url": "https://pod.univ.fr/runner/notify_task_end/",
                           "tokenSecretRef": {"name": "tenant-univ-x", "key": "token"}}
            },
            "status": {
                "phase": "Failed",
                "conditions": [{"type": "Failed", "status": "True", "reason": "RetriesExhausted",
                                "message": "OOMKilled 3 times", "lastTransitionTime": "2026-08-21T10:00:00Z"}],
                "result": {"outcome": "Failed", "scriptOutput": "[error_script.log]\nKilled",
                           "reportTime": "2026-08-21T10:00:00Z"}
            }
        }))
        .expect("valid task");
        let fresh = Fresh::of(&task).expect("complete");
        assert_eq!(fresh.view.key.kind, TaskKind::Transcription);
        assert_eq!(fresh.view.phase, TaskPhase::Failed);
        assert!(fresh.view.has_notify);
        assert_eq!(fresh.view.tenant, "univ-x");
        assert_eq!(
            next_step(&fresh.view, 6, Timestamp::now()),
            Step::Send {
                attempt: 1,
                outcome: TaskOutcome::Failed
            }
        );
        let body = fresh.body.expect("terminal");
        assert_eq!(body.task_id, "2f53");
        assert_eq!(body.error_message.as_deref(), Some("OOMKilled 3 times"));
        assert_eq!(
            body.script_output.as_deref(),
            Some("[error_script.log]\nKilled")
        );
        assert_eq!(
            fresh.notify.map(|n| n.token_secret_ref.namespace),
            Some(None)
        );
    }

    #[test]
    fn config_defaults_and_validation() {
        let config = NotifierConfig::new("esup-system", "webhook-0", Default::default());
        assert!(config.validate().is_ok());
        assert_eq!(config.field_manager, NOTIFIER_FIELD_MANAGER);
        assert_eq!(config.tenant_secrets_namespace, "esup-system");
        assert_eq!((config.concurrency, config.per_tenant_concurrency), (16, 4));
        assert_eq!(config.in_flight_bound(), Duration::from_secs(25));
        assert_eq!(max_sends(&config.retry_delays), 6);
        for broken in [
            NotifierConfig {
                identity: String::new(),
                ..config.clone()
            },
            NotifierConfig {
                concurrency: 0,
                ..config.clone()
            },
            NotifierConfig {
                per_tenant_concurrency: 0,
                ..config.clone()
            },
            NotifierConfig {
                tenant_secrets_namespace: String::new(),
                ..config.clone()
            },
            NotifierConfig {
                read_timeout: Duration::ZERO,
                ..config.clone()
            },
            NotifierConfig {
                lease_namespace: String::new(),
                ..config.clone()
            },
        ] {
            assert!(broken.validate().is_err(), "{broken:?}");
        }
    }

    #[test]
    fn stats_count_each_outcome() {
        let stats = NotifierStats::default();
        let n = |state| NotificationStatus {
            state,
            ..logic::fresh(TaskOutcome::Completed)
        };
        use esup_api::NotificationState::*;
        stats.record(&SendOutcome::Accepted("200 OK".into()), &n(Delivered));
        stats.record(&SendOutcome::ReadTimeout, &n(Delivered));
        stats.record(&SendOutcome::Failed("503".into()), &n(Retrying));
        stats.record(&SendOutcome::Failed("503".into()), &n(Exhausted));
        stats.record(&SendOutcome::Refused("policy".into()), &n(Exhausted));
        assert_eq!(stats.snapshot(), (2, 1, 2, 2, 0));
    }
}
