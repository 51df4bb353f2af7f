//! The scheduling core: from a snapshot of tasks, pools, nodes, Jobs and pods, compute what
//! should change — each task's status, the Jobs to launch or stop, the pools' status. Pure:
//! the runtime feeds it what its watchers saw and carries out the plan, so every decision is
//! unit-tested on values, and a restarted operator reaches the same decisions from the API.

pub mod capacity;
pub mod fair_share;
pub mod queue;
pub mod retention;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use esup_api::conditions::{reason, task as cond};
use esup_api::pool::TenantUsage;
use esup_api::status::{AttemptRecord, QueueStatus};
use esup_api::{RunnerPoolStatus, TaskOutcome, TaskPhase, TaskPriority, TaskStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::failure::{self, AttemptEnd, FREE_DISRUPTIONS, Failure, FailureClass};
use crate::model::{JobInfo, NodeInfo, PodInfo, Pool, Task, TaskKey};
use crate::status::{enter_phase, owned_equal, queued_since};
use capacity::{Holder, PoolCapacity};
use fair_share::seconds_between;
use queue::{Entry, Share};

/// Attempt records kept in a task's status.
const HISTORY_LIMIT: usize = 10;

/// Knobs of the scheduler that are not in the API objects.
#[derive(Clone, Debug)]
pub struct Settings {
    /// A pod that cannot pull its image for this long ends its attempt.
    pub image_pull_grace: Duration,
    /// Retention of finished tasks that set none.
    pub default_retention: Duration,
    /// An admitted task whose Job is not seen after this long gets it created again (the
    /// operator may have stopped between writing the status and creating the Job).
    pub relaunch_grace: Duration,
    /// Finished tasks kept per tenant (and namespace); the oldest past it are deleted before
    /// their retention ends.
    pub max_finished_per_tenant: usize,
    /// Launch runner pods only in namespaces that have a runner NetworkPolicy: a namespace
    /// added outside the chart would otherwise run them with open egress.
    pub require_runner_network_policy: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            image_pull_grace: Duration::from_secs(120),
            default_retention: Duration::from_secs(60 * 24 * 3600),
            relaunch_grace: Duration::from_secs(10),
            max_finished_per_tenant: 10_000,
            require_runner_network_policy: false,
        }
    }
}

/// What the watchers saw. Jobs are keyed by (namespace, name), pods by (namespace, Job name).
pub struct Snapshot<'a> {
    pub tasks: Vec<&'a Task>,
    pub pools: Vec<&'a Pool>,
    pub nodes: Vec<NodeInfo>,
    pub jobs: &'a HashMap<(String, String), JobInfo>,
    pub pods: &'a HashMap<(String, String), PodInfo>,
    /// Job creations the API server refused at the last try, by task uid.
    pub launch_errors: &'a HashMap<String, String>,
    /// Namespaces that have a runner NetworkPolicy ([`crate::model::labels::RUNNER_POLICY`]).
    pub policed_namespaces: HashSet<&'a str>,
}

/// Something for the cluster's operator to see as an Event on the task.
#[derive(Clone, Debug, PartialEq)]
pub struct Note {
    pub warning: bool,
    pub reason: String,
    pub message: String,
}

/// What to do besides writing the status.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    None,
    /// Create the Job of this launch (after the status is written).
    Launch {
        pool: String,
        launch: u32,
        avoid_nodes: Vec<String>,
    },
    /// Delete this Job (after the status is written).
    Stop {
        job: String,
    },
}

/// Facts for the metrics.
#[derive(Clone, Debug, PartialEq)]
pub enum Observation {
    /// The runner pod of an attempt started, `waited` seconds after the task was queued.
    Started { pool: String, waited: f64 },
    /// An attempt failed (retried or not).
    AttemptFailed { pool: String, reason: String },
    /// The task ended.
    Finished {
        pool: String,
        task_type: String,
        outcome: TaskOutcome,
        seconds: f64,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct TaskChange {
    pub key: TaskKey,
    pub uid: String,
    /// The task's new status; the runtime writes its operator-owned part.
    pub status: TaskStatus,
    pub action: Action,
    pub note: Option<Note>,
    pub observations: Vec<Observation>,
    /// Only the queue position or ETA moved: such writes may be deferred.
    pub informational: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PoolReport {
    pub name: String,
    pub uid: Option<String>,
    pub status: RunnerPoolStatus,
    pub queued: u32,
    pub free: u32,
    /// Set when the pool starts or stops admitting: an Event for the cluster's operator.
    pub note: Option<Note>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub tasks: Vec<TaskChange>,
    pub pools: Vec<PoolReport>,
    /// Active Jobs that no task claims any more (e.g. the operator stopped between a status
    /// write and a Job deletion): (namespace, name).
    pub orphans: Vec<(String, String)>,
    /// Finished tasks past their retention.
    pub expired: Vec<TaskKey>,
}

/// Per-task working state during one pass.
struct Work<'a> {
    task: &'a Task,
    status: TaskStatus,
    action: Action,
    note: Option<Note>,
    observations: Vec<Observation>,
    /// Waiting and allowed to be admitted now.
    admissible: bool,
}

pub fn plan(snapshot: &Snapshot<'_>, now: Timestamp, settings: &Settings) -> Plan {
    let mut pools = snapshot.pools.clone();
    pools.sort_by(|a, b| (a.spec.priority, &a.name).cmp(&(b.spec.priority, &b.name)));
    let pool_by_name: HashMap<&str, &Pool> = pools.iter().map(|p| (p.name.as_str(), *p)).collect();
    let mut plan = Plan::default();

    // 1. Each task on its own: attempts that ended, started or got stuck; timeouts; retention.
    let mut work: Vec<Work<'_>> = Vec::with_capacity(snapshot.tasks.len());
    let mut kept: Vec<&Task> = Vec::new();
    for task in snapshot.tasks.iter().copied() {
        if task.deleting {
            continue;
        }
        if task.status.phase.is_terminal() {
            if expired(task, now, settings) {
                plan.expired.push(task.key.clone());
            } else {
                kept.push(task);
            }
            continue;
        }
        let mut w = Work {
            task,
            status: task.status.clone(),
            action: Action::None,
            note: None,
            observations: Vec::new(),
            admissible: false,
        };
        advance(&mut w, snapshot, &pools, now, settings);
        work.push(w);
    }

    plan.expired.extend(retention::over_bound(
        kept,
        settings.max_finished_per_tenant,
    ));

    // 2. Capacity, from the attempts that hold slots after step 1.
    let holders: Vec<Holder<'_>> = work
        .iter()
        .filter(|w| holds_slot(&w.status))
        .filter_map(|w| {
            Some(Holder {
                pool: w.status.pool.as_deref()?,
                tenant: w.task.tenant(),
                node: w.status.node_name.as_deref(),
            })
        })
        .collect();
    let owned_pools: Vec<Pool> = pools.iter().map(|p| (*p).clone()).collect();
    let mut caps = capacity::compute(&owned_pools, &snapshot.nodes, &holders);
    let usage = usage_by_pool_and_tenant(snapshot.tasks.iter().copied(), &pool_by_name, now);

    // 3. Admission, pool by pool in priority order.
    let unpoliced: Vec<bool> = work
        .iter()
        .map(|w| {
            settings.require_runner_network_policy
                && !snapshot
                    .policed_namespaces
                    .contains(w.task.key.namespace.as_str())
        })
        .collect();
    let candidate_lists: Vec<Vec<&Pool>> = work
        .iter()
        .enumerate()
        .map(|(i, w)| {
            if w.admissible && !unpoliced[i] {
                queue::candidates(w.task, &pools)
            } else {
                Vec::new()
            }
        })
        .collect();
    let reachable: Vec<usize> = work
        .iter()
        .zip(&candidate_lists)
        .map(|(w, c)| {
            let waited = queued_since(&w.status).map_or(0.0, |s| seconds_between(s, now));
            queue::reachable(c, waited)
        })
        .collect();
    let mut admitted = vec![false; work.len()];
    let mut capped: BTreeSet<usize> = BTreeSet::new();
    let mut orders: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for pool in &pools {
        let entries: Vec<Entry<'_>> = work
            .iter()
            .enumerate()
            .filter(|(i, w)| {
                w.admissible
                    && candidate_lists[*i][..reachable[*i]]
                        .iter()
                        .any(|p| p.name == pool.name)
            })
            .map(|(i, w)| Entry {
                index: i,
                away: home_pool(&w.status) != Some(pool.name.as_str()),
                priority: w.task.common().priority,
                tenant: w.task.tenant(),
                since: queued_since(&w.status).unwrap_or(w.task.created),
                created: w.task.created,
                name: &w.task.key.name,
            })
            .collect();
        let shares = shares_for(pool, &caps[&pool.name], &usage);
        let ordered = queue::order(entries, &shares);
        for entry in &ordered {
            let i = entry.index;
            let Some(cap) = caps.get(&pool.name) else {
                continue;
            };
            if admitted[i] || cap.blocked.is_some() {
                continue;
            }
            // Before the free slots: a task its tenant's cap holds back says so, full pool or not.
            if at_tenant_cap(pool, cap, entry.tenant) {
                capped.insert(i);
                continue;
            }
            if cap.free == 0 {
                continue;
            }
            admit(&mut work[i], pool, now);
            admitted[i] = true;
            capacity::take(&mut caps, &pools, pool, entry.tenant);
        }
        orders.insert(
            pool.name.clone(),
            ordered
                .iter()
                .map(|e| e.index)
                .filter(|i| !admitted[*i])
                .collect(),
        );
    }

    // 4. Preemption: overflowed tasks give their slot back to the pool's own waiting tasks.
    for pool in &pools {
        let cap = &caps[&pool.name];
        // Home tasks that a freed slot would admit: not those their tenant's cap holds back.
        let mut running = cap.running_by_tenant.clone();
        let waiting_home = orders.get(&pool.name).map_or(0, |o| {
            o.iter()
                .filter(|i| home_pool(&work[**i].status) == Some(pool.name.as_str()))
                .filter(|i| {
                    let tenant = work[**i].task.tenant();
                    let n = running.entry(tenant.to_owned()).or_default();
                    let room = tenant_cap(pool, tenant).is_none_or(|c| *n < c);
                    *n += 1;
                    room
                })
                .count()
        });
        if waiting_home == 0
            || cap.free > 0
            || cap.blocked.is_some()
            || !pool.spec.preemption.reclaim
        {
            continue;
        }
        let min_runtime = secs(&pool.spec.preemption.min_runtime);
        let victims = preemption_victims(&work, &pool.name, now, min_runtime, waiting_home);
        for i in victims {
            let home = home_pool(&work[i].status)
                .unwrap_or("another pool")
                .to_owned();
            let failure = Failure {
                class: FailureClass::Preempted,
                message: format!(
                    "preempted: pool {} reclaimed its slot for its own tasks; the task goes back to {home}'s queue",
                    pool.name
                ),
            };
            end_attempt(&mut work[i], failure, now, true);
        }
    }

    // 5. Where the still-waiting tasks stand.
    let positions = positions(&work, &orders, &caps, &pool_by_name, now);
    for (i, w) in work.iter_mut().enumerate() {
        if !w.admissible || admitted[i] {
            continue;
        }
        let (why, message) = if unpoliced[i] {
            (
                reason::NO_RUNNER_NETWORK_POLICY,
                format!(
                    "namespace {} has no runner NetworkPolicy (label {}=true): its runner pods would have open egress; add the namespace to the chart's tenants or rbac.extraTenantNamespaces",
                    w.task.key.namespace,
                    crate::model::labels::RUNNER_POLICY
                ),
            )
        } else {
            waiting_reason(
                w,
                &candidate_lists[i],
                reachable[i],
                &caps,
                capped.contains(&i),
            )
        };
        enter_phase(
            &mut w.status,
            TaskPhase::Queued,
            why,
            &message,
            now,
            w.task.generation,
        );
        // Positions deep in a queue move with every admission; rewriting them each time would
        // flood the API server. A written position is kept until it is materially wrong.
        w.status.queue = match (&w.task.status.queue, positions.get(&i)) {
            (Some(old), Some(new)) if !materially_moved(old, new, now) => Some(old.clone()),
            (_, new) => new.cloned(),
        };
    }

    // 6. What changed.
    for w in work {
        let unchanged = owned_equal(&w.task.status, &w.status, false);
        if unchanged && w.action == Action::None && w.note.is_none() && w.observations.is_empty() {
            continue;
        }
        let informational = w.action == Action::None
            && w.note.is_none()
            && owned_equal(&w.task.status, &w.status, true);
        plan.tasks.push(TaskChange {
            key: w.task.key.clone(),
            uid: w.task.uid.clone(),
            status: w.status,
            action: w.action,
            note: w.note,
            observations: w.observations,
            informational,
        });
    }

    // 7. Orphaned Jobs: active, yet not the current Job of a task that runs.
    let changed: HashMap<&str, &TaskStatus> = plan
        .tasks
        .iter()
        .map(|c| (c.uid.as_str(), &c.status))
        .collect();
    let claimed: BTreeSet<(&str, &str)> = snapshot
        .tasks
        .iter()
        .filter(|t| !t.deleting)
        .filter_map(|t| {
            let status = changed.get(t.uid.as_str()).copied().unwrap_or(&t.status);
            holds_slot(status).then_some((t.key.namespace.as_str(), status.job_name.as_deref()?))
        })
        .collect();
    let known_uids: BTreeSet<&str> = snapshot.tasks.iter().map(|t| t.uid.as_str()).collect();
    for job in snapshot.jobs.values() {
        let active = job.finished().is_none() && !job.deleting;
        // Jobs of tasks this operator does not see (yet) are left to owner garbage collection.
        if active
            && known_uids.contains(job.task_uid.as_str())
            && !claimed.contains(&(job.namespace.as_str(), job.name.as_str()))
        {
            plan.orphans.push((job.namespace.clone(), job.name.clone()));
        }
    }
    plan.orphans.sort();

    // 8. Pools.
    plan.pools = pools
        .iter()
        .map(|pool| pool_report(pool, &caps[&pool.name], &orders, &usage, snapshot, now))
        .collect();
    plan
}

/// The tenant's `maxConcurrency` on the pool, if it has one.
fn tenant_cap(pool: &Pool, tenant: &str) -> Option<u32> {
    pool.spec
        .tenants
        .iter()
        .find(|t| t.name == tenant)
        .and_then(|t| t.max_concurrency)
}

fn at_tenant_cap(pool: &Pool, cap: &PoolCapacity, tenant: &str) -> bool {
    let running = cap.running_by_tenant.get(tenant).copied().unwrap_or(0);
    tenant_cap(pool, tenant).is_some_and(|c| running >= c)
}

fn secs(d: &kube::core::Duration) -> f64 {
    Duration::from(*d).as_secs_f64()
}

fn time_after(t: Timestamp, seconds: f64) -> Timestamp {
    t.checked_add(SignedDuration::from_secs_f64(seconds.clamp(0.0, 1e10)))
        .unwrap_or(t)
}

fn home_pool(status: &TaskStatus) -> Option<&str> {
    status.home_pool.as_deref()
}

fn holds_slot(status: &TaskStatus) -> bool {
    matches!(status.phase, TaskPhase::Admitted | TaskPhase::Running)
}

/// Shortest retention honoured, whatever a task or tenant asks: Esup-Pod fetches the results
/// after the notify (retried for minutes), and task ids never come back only while finished
/// tasks outlive the UTC day their de-duplication chain started on (webhook `dedup.rs`).
pub const MIN_RETENTION: Duration = Duration::from_secs(24 * 3600);

fn expired(task: &Task, now: Timestamp, settings: &Settings) -> bool {
    let Some(done) = &task.status.completion_time else {
        return false;
    };
    let retention = task
        .common()
        .retention
        .as_ref()
        .map_or(settings.default_retention, |d| Duration::from(*d))
        .max(MIN_RETENTION);
    seconds_between(done.0, now) >= retention.as_secs_f64()
}

/// Moves one task forward on its own: new tasks enter the queue; an attempt's Job and pod
/// are read for start, end, stuck or silent runners; queue timeouts fire.
fn advance(
    w: &mut Work<'_>,
    snapshot: &Snapshot<'_>,
    pools: &[&Pool],
    now: Timestamp,
    settings: &Settings,
) {
    if w.task.cancel_requested {
        if holds_slot(&w.status)
            && let Some(job) = w.status.job_name.clone()
        {
            w.action = Action::Stop { job };
        }
        close_record(
            w,
            Some(reason::CANCELLED),
            Some("Cancelled by user.".to_owned()),
            false,
            now,
        );
        finish(
            w,
            TaskPhase::Failed,
            reason::CANCELLED,
            "Cancelled by user.",
            now,
        );
        return;
    }
    // Accepted only to fail as the reference runner fails it: never admitted. Set at
    // creation, so it finds the task waiting; an attempt already running is left to end.
    if let Some(message) = w.task.invalid_parameters.clone()
        && matches!(w.status.phase, TaskPhase::Pending | TaskPhase::Queued)
    {
        finish(
            w,
            TaskPhase::Failed,
            reason::INVALID_PARAMETERS,
            &message,
            now,
        );
        return;
    }
    let generation = w.task.generation;
    match w.status.phase {
        TaskPhase::Pending => {
            let home = queue::candidates(w.task, pools)
                .first()
                .map(|p| p.name.clone());
            w.status.home_pool = home;
            w.status.queued_time = Some(Time(now));
            enter_phase(
                &mut w.status,
                TaskPhase::Queued,
                reason::WAITING_FOR_CAPACITY,
                "",
                now,
                generation,
            );
            w.admissible = true;
            check_queue_wait(w, now);
        }
        TaskPhase::Queued => {
            if w.status.home_pool.is_none() {
                w.status.home_pool = queue::candidates(w.task, pools)
                    .first()
                    .map(|p| p.name.clone());
            }
            let backing_off = w.status.next_retry_time.as_ref().is_some_and(|t| t.0 > now);
            if backing_off {
                // The attempt's end already said why the task waits: keep its message, so
                // that nothing is rewritten while it waits.
                let said = crate::status::condition(&w.status, cond::QUEUED)
                    .is_some_and(|c| c.status == "True" && c.reason == reason::BACKING_OFF);
                if !said {
                    let message = format!(
                        "attempt {} failed; retrying after {}",
                        w.status.attempts,
                        w.status
                            .next_retry_time
                            .as_ref()
                            .map_or(String::new(), |t| t.0.to_string())
                    );
                    enter_phase(
                        &mut w.status,
                        TaskPhase::Queued,
                        reason::BACKING_OFF,
                        &message,
                        now,
                        generation,
                    );
                }
                w.status.queue = None;
            } else {
                w.admissible = true;
            }
            check_queue_wait(w, now);
        }
        TaskPhase::Admitted | TaskPhase::Running => follow_attempt(w, snapshot, now, settings),
        TaskPhase::Succeeded | TaskPhase::Failed | TaskPhase::TimedOut => {}
    }
}

fn check_queue_wait(w: &mut Work<'_>, now: Timestamp) {
    let limit = secs(&w.task.common().timeouts.queue_wait);
    let Some(since) = queued_since(&w.status) else {
        return;
    };
    if seconds_between(since, now) < limit {
        return;
    }
    let message = format!(
        "waited in the queue longer than its queueWait ({})",
        w.task.common().timeouts.queue_wait
    );
    finish(
        w,
        TaskPhase::TimedOut,
        reason::QUEUE_WAIT_EXCEEDED,
        &message,
        now,
    );
    w.admissible = false;
}

fn follow_attempt(w: &mut Work<'_>, snapshot: &Snapshot<'_>, now: Timestamp, settings: &Settings) {
    let Some(job_name) = w.status.job_name.clone() else {
        // Admitted without a Job name cannot happen through this operator; start over.
        enter_phase(
            &mut w.status,
            TaskPhase::Queued,
            reason::WAITING_FOR_CAPACITY,
            "",
            now,
            w.task.generation,
        );
        w.admissible = true;
        return;
    };
    let ns = w.task.key.namespace.clone();
    let job = snapshot.jobs.get(&(ns.clone(), job_name.clone()));
    let pod = snapshot.pods.get(&(ns, job_name.clone()));
    let pool = w.status.pool.clone().unwrap_or_default();

    let Some(job) = job else {
        if result_delivered(w) {
            // The runner delivered, and its Job is gone already (its TTL ran out while the
            // operator was away): the task is done, not lost nor to be launched again.
            succeed(w, now);
            return;
        }
        let seen_running = w.status.phase == TaskPhase::Running;
        let admitted_for = w
            .status
            .admitted_time
            .as_ref()
            .map_or(f64::MAX, |t| seconds_between(t.0, now));
        if let Some(refused) = snapshot.launch_errors.get(&w.task.uid) {
            let failure = Failure {
                class: FailureClass::Transient,
                message: format!("the API server refused Job {job_name}: {refused}"),
            };
            end_attempt(w, failure, now, false);
        } else if !seen_running && admitted_for >= settings.relaunch_grace.as_secs_f64() {
            // Status was written but the Job never appeared: create it (same name, idempotent).
            w.action = Action::Launch {
                pool,
                launch: w.status.launches,
                avoid_nodes: avoid_nodes(&w.status),
            };
        } else if seen_running {
            let failure = Failure {
                class: FailureClass::Lost,
                message: format!("Job {job_name} disappeared while its runner was running"),
            };
            end_attempt(w, failure, now, false);
        }
        return;
    };

    // The node first: an attempt that ended before a pass saw it running must still name
    // its node, so that retries avoid it.
    if let Some(pod) = pod
        && pod.node_name.is_some()
        && w.status.node_name != pod.node_name
    {
        w.status.node_name = pod.node_name.clone();
        if let Some(record) = w.status.attempt_history.last_mut() {
            record.node_name = pod.node_name.clone();
        }
    }
    if job.finished().is_some() {
        match failure::classify_finished(job, pod) {
            AttemptEnd::Succeeded => succeed(w, now),
            AttemptEnd::Failed(_) if result_delivered(w) => succeed(w, now),
            AttemptEnd::Failed(failure) => end_attempt(w, failure, now, false),
        }
        return;
    }
    if job.deleting {
        return;
    }
    if w.status.phase == TaskPhase::Running {
        check_progress(w, now);
        return;
    }
    let Some(pod) = pod else { return };
    if pod.container.running {
        let started = pod.started.unwrap_or(now);
        w.status.start_time = Some(Time(started));
        let message = format!(
            "runner pod {} runs on {}",
            pod.name,
            pod.node_name.as_deref().unwrap_or("a node")
        );
        enter_phase(
            &mut w.status,
            TaskPhase::Running,
            reason::POD_RUNNING,
            &message,
            now,
            w.task.generation,
        );
        let waited =
            queue_episode_start(&w.status).map_or(0.0, |q| seconds_between(q, started).max(0.0));
        w.observations.push(Observation::Started {
            pool: pool.clone(),
            waited,
        });
    }
    if w.status.phase == TaskPhase::Admitted {
        let pending_for = w
            .status
            .admitted_time
            .as_ref()
            .map_or(0.0, |t| seconds_between(t.0, now).max(0.0));
        if let Some(failure) = failure::stuck(
            pod,
            Duration::from_secs_f64(pending_for),
            settings.image_pull_grace,
        ) {
            end_attempt(w, failure, now, true);
        }
    }
}

/// When the current attempt's wait began: the end of the previous attempt, else the first
/// queueing. Schedule-to-start latency is measured from there.
fn queue_episode_start(status: &TaskStatus) -> Option<Timestamp> {
    let history = &status.attempt_history;
    history
        .len()
        .checked_sub(2)
        .and_then(|i| history[i].finish_time.as_ref())
        .or(status.queued_time.as_ref())
        .map(|t| t.0)
}

/// A running runner that stops reporting progress is stuck, whether or not its pod is still
/// visible.
fn check_progress(w: &mut Work<'_>, now: Timestamp) {
    let limit = secs(&w.task.common().timeouts.progress);
    let last_sign = [
        w.status.start_time.as_ref().map(|t| t.0),
        w.status.progress.as_ref().map(|p| p.update_time.0),
    ]
    .into_iter()
    .flatten()
    .max();
    if let Some(last) = last_sign
        && seconds_between(last, now) > limit
    {
        let failure = Failure {
            class: FailureClass::NoProgress,
            message: format!(
                "no progress reported for longer than the progress timeout ({})",
                w.task.common().timeouts.progress
            ),
        };
        end_attempt(w, failure, now, true);
    }
}

/// The webhook recorded a completed result for the current attempt: the outputs are
/// delivered, whatever the pod did afterwards.
fn result_delivered(w: &Work<'_>) -> bool {
    let admitted = w.status.admitted_time.as_ref().map(|t| t.0);
    w.status.result.as_ref().is_some_and(|r| {
        r.outcome == TaskOutcome::Completed && admitted.is_none_or(|a| r.report_time.0 >= a)
    })
}

fn admit(w: &mut Work<'_>, pool: &Pool, now: Timestamp) {
    let launch = w.status.launches + 1;
    let job_name = crate::job::job_name(w.task, launch);
    let away = home_pool(&w.status).is_some_and(|h| h != pool.name);
    let (why, message) = if away {
        let home = home_pool(&w.status).unwrap_or_default();
        (
            reason::OVERFLOWED,
            format!(
                "admitted by pool {} after waiting for {home}; Job {job_name}",
                pool.name
            ),
        )
    } else {
        (
            reason::JOB_CREATED,
            format!("admitted by pool {}; Job {job_name}", pool.name),
        )
    };
    let avoid = avoid_nodes(&w.status);
    w.status.launches = launch;
    w.status.pool = Some(pool.name.clone());
    w.status.job_name = Some(job_name.clone());
    w.status.node_name = None;
    w.status.admitted_time = Some(Time(now));
    w.status.start_time = None;
    w.status.next_retry_time = None;
    w.status.queue = None;
    w.status.attempt_history.push(AttemptRecord {
        pool: pool.name.clone(),
        job_name,
        node_name: None,
        start_time: Time(now),
        finish_time: None,
        reason: None,
        message: None,
        charged: false,
    });
    trim_history(&mut w.status);
    enter_phase(
        &mut w.status,
        TaskPhase::Admitted,
        why,
        &message,
        now,
        w.task.generation,
    );
    w.action = Action::Launch {
        pool: pool.name.clone(),
        launch,
        avoid_nodes: avoid,
    };
    w.note = Some(Note {
        warning: false,
        reason: why.to_owned(),
        message,
    });
    w.admissible = false;
}

fn trim_history(status: &mut TaskStatus) {
    let excess = status.attempt_history.len().saturating_sub(HISTORY_LIMIT);
    status.attempt_history.drain(..excess);
}

/// Nodes where charged attempts failed: retries prefer other nodes.
fn avoid_nodes(status: &TaskStatus) -> Vec<String> {
    let nodes: BTreeSet<String> = status
        .attempt_history
        .iter()
        .filter(|a| a.charged)
        .filter_map(|a| a.node_name.clone())
        .collect();
    nodes.into_iter().collect()
}

fn succeed(w: &mut Work<'_>, now: Timestamp) {
    close_record(w, None, None, false, now);
    finish(
        w,
        TaskPhase::Succeeded,
        reason::COMPLETED,
        "the runner delivered every output",
        now,
    );
}

/// Ends the current attempt: retry, requeue or give up according to the failure's class and
/// the task's retry policy. `stop` deletes the attempt's Job (it is still running).
fn end_attempt(w: &mut Work<'_>, failure: Failure, now: Timestamp, stop: bool) {
    let class = failure.class;
    let pool = w.status.pool.clone().unwrap_or_default();
    let charged = class.charged()
        || (class.free_disruption() && w.status.free_disruptions >= FREE_DISRUPTIONS);
    if !charged && class.free_disruption() {
        w.status.free_disruptions += 1;
    }
    let failure = if charged && !class.charged() {
        Failure::new(
            class,
            format!(
                "{} (charged: more than {FREE_DISRUPTIONS} free retries after evictions or node losses)",
                failure.message
            ),
        )
    } else {
        failure
    };
    close_record(
        w,
        Some(class.reason()),
        Some(failure.message.clone()),
        charged,
        now,
    );
    if stop && let Some(job) = w.status.job_name.clone() {
        w.action = Action::Stop { job };
    }
    w.observations.push(Observation::AttemptFailed {
        pool,
        reason: class.reason().to_owned(),
    });
    if charged {
        w.status.attempts += 1;
    }
    let retry = &w.task.common().retry;
    let generation = w.task.generation;
    if !class.retryable() {
        let phase = if class == FailureClass::ExecutionDeadline {
            TaskPhase::TimedOut
        } else {
            TaskPhase::Failed
        };
        finish(w, phase, class.reason(), &failure.message, now);
    } else if charged && w.status.attempts >= retry.max_attempts {
        let message = format!(
            "{} of {} attempts failed; last: {}",
            w.status.attempts, retry.max_attempts, failure.message
        );
        finish(
            w,
            TaskPhase::Failed,
            reason::RETRIES_EXHAUSTED,
            &message,
            now,
        );
    } else {
        let (why, next) = if charged {
            let wait = backoff(&w.status, retry);
            (reason::BACKING_OFF, Some(Time(time_after(now, wait))))
        } else {
            (class.reason(), None)
        };
        w.status.next_retry_time = next;
        w.status.node_name = None;
        let message = format!("attempt ended ({}): {}", class.reason(), failure.message);
        enter_phase(
            &mut w.status,
            TaskPhase::Queued,
            why,
            &message,
            now,
            generation,
        );
        w.note = Some(Note {
            warning: true,
            reason: class.reason().to_owned(),
            message,
        });
        w.admissible = false;
    }
}

fn backoff(status: &TaskStatus, retry: &esup_api::RetryPolicy) -> f64 {
    let initial = secs(&retry.initial_backoff);
    let max = secs(&retry.max_backoff);
    let doublings = status.attempts.saturating_sub(1).min(30);
    (initial * f64::from(1u32 << doublings)).min(max)
}

fn close_record(
    w: &mut Work<'_>,
    why: Option<&str>,
    message: Option<String>,
    charged: bool,
    now: Timestamp,
) {
    if let Some(record) = w.status.attempt_history.last_mut()
        && record.finish_time.is_none()
    {
        record.finish_time = Some(Time(now));
        record.reason = why.map(str::to_owned);
        record.message = message.map(|m| m.chars().take(1024).collect());
        record.charged = charged;
        if record.node_name.is_none() {
            record.node_name = w.status.node_name.clone();
        }
    }
}

/// Moves the task to a terminal phase.
fn finish(w: &mut Work<'_>, phase: TaskPhase, why: &str, message: &str, now: Timestamp) {
    w.status.completion_time = Some(Time(now));
    w.status.next_retry_time = None;
    w.status.queue = None;
    enter_phase(&mut w.status, phase, why, message, now, w.task.generation);
    let outcome = match phase {
        TaskPhase::Succeeded => TaskOutcome::Completed,
        TaskPhase::TimedOut => TaskOutcome::Timeout,
        _ => TaskOutcome::Failed,
    };
    let seconds = w
        .status
        .start_time
        .as_ref()
        .map_or(0.0, |s| seconds_between(s.0, now).max(0.0));
    w.observations.push(Observation::Finished {
        pool: w.status.pool.clone().unwrap_or_default(),
        task_type: w.task.task_type().protocol_name().to_owned(),
        outcome,
        seconds,
    });
    w.note = Some(Note {
        warning: phase != TaskPhase::Succeeded,
        reason: why.to_owned(),
        message: message.to_owned(),
    });
    w.admissible = false;
}

/// Overflowed tasks running on `pool` long enough to be preempted, least valuable first:
/// lowest priority, then the most recently started (it loses the least work).
fn preemption_victims(
    work: &[Work<'_>],
    pool: &str,
    now: Timestamp,
    min_runtime: f64,
    wanted: usize,
) -> Vec<usize> {
    let mut victims: Vec<(TaskPriority, std::cmp::Reverse<Timestamp>, usize)> = work
        .iter()
        .enumerate()
        .filter(|(_, w)| holds_slot(&w.status) && w.status.pool.as_deref() == Some(pool))
        .filter(|(_, w)| home_pool(&w.status).is_some_and(|h| h != pool))
        .filter_map(|(i, w)| {
            let started = w
                .status
                .start_time
                .as_ref()
                .or(w.status.admitted_time.as_ref())?
                .0;
            (seconds_between(started, now) >= min_runtime).then_some((
                w.task.common().priority,
                std::cmp::Reverse(started),
                i,
            ))
        })
        .collect();
    // TaskPriority orders High < Normal < Low: the largest is the least urgent.
    victims.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    victims
        .into_iter()
        .take(wanted)
        .map(|(_, _, i)| i)
        .collect()
}

/// Decayed slot-seconds per (pool, tenant), from every task's attempts.
fn usage_by_pool_and_tenant<'a>(
    tasks: impl Iterator<Item = &'a Task>,
    pools: &HashMap<&str, &Pool>,
    now: Timestamp,
) -> HashMap<(String, String), f64> {
    let mut usage: HashMap<(String, String), f64> = HashMap::new();
    for task in tasks {
        for attempt in &task.status.attempt_history {
            let Some(pool) = pools.get(attempt.pool.as_str()) else {
                continue;
            };
            let half_life = secs(&pool.spec.fair_share.half_life);
            let used = fair_share::decayed_slot_seconds(
                attempt.start_time.0,
                attempt.finish_time.as_ref().map(|t| t.0),
                now,
                half_life,
            );
            *usage
                .entry((attempt.pool.clone(), task.tenant().to_owned()))
                .or_default() += used;
        }
    }
    usage
}

fn shares_for(
    pool: &Pool,
    cap: &PoolCapacity,
    usage: &HashMap<(String, String), f64>,
) -> BTreeMap<String, Share> {
    let half_life = secs(&pool.spec.fair_share.half_life);
    let mut tenants: BTreeSet<&str> = pool.spec.tenants.iter().map(|t| t.name.as_str()).collect();
    tenants.extend(
        usage
            .keys()
            .filter(|(p, _)| *p == pool.name)
            .map(|(_, t)| t.as_str()),
    );
    tenants.extend(cap.running_by_tenant.keys().map(String::as_str));
    tenants
        .into_iter()
        .map(|tenant| {
            // Tenants the pool does not list (it lists none: everyone is welcome) weigh 1.
            let weight = pool
                .spec
                .tenants
                .iter()
                .find(|t| t.name == tenant)
                .map_or(1, |t| t.weight);
            let running = f64::from(cap.running_by_tenant.get(tenant).copied().unwrap_or(0));
            let used = usage
                .get(&(pool.name.clone(), tenant.to_owned()))
                .copied()
                .unwrap_or(0.0);
            let share = Share {
                score: fair_share::score(running, used, half_life, weight),
                step: 1.0 / f64::from(weight.max(1)),
            };
            (tenant.to_owned(), share)
        })
        .collect()
}

/// Each waiting task's place in its home pool's queue, overall, and its estimated start.
fn positions(
    work: &[Work<'_>],
    orders: &BTreeMap<String, Vec<usize>>,
    caps: &BTreeMap<String, PoolCapacity>,
    pools: &HashMap<&str, &Pool>,
    now: Timestamp,
) -> HashMap<usize, QueueStatus> {
    let mut found: HashMap<usize, QueueStatus> = HashMap::new();
    // (rounds of the pool's slots ahead, priority, since, created, name) orders the
    // cluster-wide queue.
    let mut overall: Vec<(u64, TaskPriority, Timestamp, Timestamp, &str, usize)> = Vec::new();
    for (pool_name, order) in orders {
        let Some(pool) = pools.get(pool_name.as_str()) else {
            continue;
        };
        let slots = caps.get(pool_name).map_or(0, |c| c.slots);
        let throughput = pool.status.media_seconds_per_second.filter(|t| *t > 0.0);
        let running_left: f64 = throughput.map_or(0.0, |tp| {
            work.iter()
                .filter(|w| {
                    holds_slot(&w.status) && w.status.pool.as_deref() == Some(pool_name.as_str())
                })
                .map(|w| {
                    let ran = w
                        .status
                        .start_time
                        .as_ref()
                        .map_or(0.0, |s| seconds_between(s.0, now).max(0.0));
                    (w.task.media_seconds().unwrap_or(0.0) - ran * tp).max(0.0)
                })
                .sum()
        });
        let mut ahead = running_left;
        let mut position = 0u32;
        for &i in order {
            let w = &work[i];
            let mine = home_pool(&w.status).is_none_or(|h| h == pool_name);
            position += 1;
            if mine {
                let eta = throughput
                    .filter(|_| slots > 0)
                    .map(|tp| Time(time_after(now, ahead / (tp * f64::from(slots)))));
                found.insert(
                    i,
                    QueueStatus {
                        position_in_pool: position,
                        position_overall: 0,
                        pool: pool_name.clone(),
                        estimated_start_time: eta,
                    },
                );
                let rounds = u64::from(position - 1) / u64::from(slots.max(1));
                let since = queued_since(&w.status).unwrap_or(w.task.created);
                overall.push((
                    rounds,
                    w.task.common().priority,
                    since,
                    w.task.created,
                    w.task.key.name.as_str(),
                    i,
                ));
            }
            ahead += w.task.media_seconds().unwrap_or(0.0);
        }
    }
    overall.sort();
    for (rank, (_, _, _, _, _, i)) in overall.into_iter().enumerate() {
        if let Some(q) = found.get_mut(&i) {
            q.position_overall = u32::try_from(rank + 1).unwrap_or(u32::MAX);
        }
    }
    found
}

/// Whether a queue position changed enough to be worth a write: near the head every step
/// counts; deeper, a move of a tenth of the position; an ETA that moved by a tenth of the
/// wait, and at least a minute.
fn materially_moved(old: &QueueStatus, new: &QueueStatus, now: Timestamp) -> bool {
    let moved =
        |old: u32, new: u32| old != new && (new <= 10 || old.abs_diff(new) >= (old / 10).max(1));
    let eta_moved = match (&old.estimated_start_time, &new.estimated_start_time) {
        (None, None) => false,
        (Some(a), Some(b)) => {
            let wait = seconds_between(now, b.0).abs();
            seconds_between(a.0, b.0).abs() >= (wait / 10.0).max(60.0)
        }
        _ => true,
    };
    old.pool != new.pool
        || moved(old.position_in_pool, new.position_in_pool)
        || moved(old.position_overall, new.position_overall)
        || eta_moved
}

fn waiting_reason(
    w: &Work<'_>,
    candidates: &[&Pool],
    reachable: usize,
    caps: &BTreeMap<String, PoolCapacity>,
    capped: bool,
) -> (&'static str, String) {
    let Some(home) = candidates.first() else {
        let message = format!(
            "no RunnerPool runs {} tasks for tenant {}",
            w.task.task_type().protocol_name(),
            w.task.tenant()
        );
        return (reason::NO_ELIGIBLE_POOL, message);
    };
    if capped {
        return (
            reason::TENANT_CAP_REACHED,
            format!(
                "tenant {} runs as many tasks as its cap allows",
                w.task.tenant()
            ),
        );
    }
    let names: Vec<&str> = candidates[..reachable.max(1)]
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    if reachable <= 1
        && let Some((why, _)) = caps.get(&home.name).and_then(|c| c.blocked.as_ref())
        && *why == reason::POOL_SUSPENDED
    {
        return (
            reason::POOL_SUSPENDED,
            format!("pool {} is suspended", home.name),
        );
    }
    (
        reason::WAITING_FOR_CAPACITY,
        format!("waiting for a free slot in {}", names.join(", ")),
    )
}

fn pool_report(
    pool: &Pool,
    cap: &PoolCapacity,
    orders: &BTreeMap<String, Vec<usize>>,
    usage: &HashMap<(String, String), f64>,
    snapshot: &Snapshot<'_>,
    now: Timestamp,
) -> PoolReport {
    let queued_ids: &[usize] = orders.get(&pool.name).map_or(&[], Vec::as_slice);
    let mut status = RunnerPoolStatus {
        observed_generation: pool.generation,
        conditions: pool.status.conditions.clone(),
        nodes: u32::try_from(cap.nodes.len()).unwrap_or(u32::MAX),
        gpus_allocatable: pool
            .gpu_request()
            .map(|_| u32::try_from(cap.gpus_allocatable).unwrap_or(u32::MAX)),
        slots: cap.slots,
        running: cap.running,
        queued: u32::try_from(queued_ids.len()).unwrap_or(u32::MAX),
        tenants: Vec::new(),
        media_seconds_per_second: throughput(pool, snapshot),
    };
    let half_life = secs(&pool.spec.fair_share.half_life);
    let mut tenants: BTreeMap<String, TenantUsage> = BTreeMap::new();
    for ((p, tenant), used) in usage.iter().filter(|((p, _), _)| *p == pool.name) {
        let weight = pool
            .spec
            .tenants
            .iter()
            .find(|t| t.name == *tenant)
            .map_or(1, |t| t.weight);
        let entry = tenants
            .entry(tenant.clone())
            .or_insert_with(|| TenantUsage {
                name: tenant.clone(),
                running: 0,
                queued: 0,
                weighted_usage: 0.0,
            });
        debug_assert_eq!(p, &pool.name);
        // Rounded so that the status does not change on every pass as usage decays.
        entry.weighted_usage =
            (used / half_life.max(1.0) / f64::from(weight) * 100.0).round() / 100.0;
    }
    for (tenant, running) in &cap.running_by_tenant {
        if let Some(t) = tenants.get_mut(tenant) {
            t.running = *running;
        }
    }
    status.tenants = tenants.into_values().collect();
    let (ready, why, message) = match &cap.blocked {
        Some((why, message)) => (false, *why, message.clone()),
        None => (
            true,
            "Admitting",
            format!("{} node(s), {} slot(s)", cap.nodes.len(), cap.slots),
        ),
    };
    set_pool_condition(
        &mut status.conditions,
        esup_api::conditions::pool::READY,
        ready,
        why,
        &message,
        now,
        pool.generation,
    );
    let (suspended_why, suspended_msg) = if pool.spec.suspend {
        (
            "SuspendedBySpec",
            "spec.suspend is set: queued tasks wait or overflow, running ones finish",
        )
    } else {
        ("NotSuspended", "")
    };
    set_pool_condition(
        &mut status.conditions,
        esup_api::conditions::pool::SUSPENDED,
        pool.spec.suspend,
        suspended_why,
        suspended_msg,
        now,
        pool.generation,
    );
    let was_ready = pool
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == esup_api::conditions::pool::READY)
        .map(|c| c.status == "True");
    let note = (was_ready != Some(ready)).then(|| Note {
        warning: !ready,
        reason: why.to_owned(),
        message: message.clone(),
    });
    PoolReport {
        name: pool.name.clone(),
        uid: pool.uid.clone(),
        status,
        queued: u32::try_from(queued_ids.len()).unwrap_or(u32::MAX),
        free: cap.free,
        note,
    }
}

fn set_pool_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    on: bool,
    why: &str,
    message: &str,
    now: Timestamp,
    generation: Option<i64>,
) {
    crate::status::set_condition(conditions, type_, on, why, message, now, generation);
}

/// Media seconds processed per second of runtime by the pool's latest successful tasks.
fn throughput(pool: &Pool, snapshot: &Snapshot<'_>) -> Option<f64> {
    let mut done: Vec<(Timestamp, f64, f64)> = snapshot
        .tasks
        .iter()
        .filter(|t| {
            t.status.phase == TaskPhase::Succeeded
                && t.status.pool.as_deref() == Some(pool.name.as_str())
        })
        .filter_map(|t| {
            let start = t.status.start_time.as_ref()?.0;
            let end = t.status.completion_time.as_ref()?.0;
            let ran = seconds_between(start, end);
            (ran > 0.0).then_some((end, t.media_seconds()?, ran))
        })
        .collect();
    done.sort_by_key(|d| std::cmp::Reverse(d.0));
    let (media, ran) = done
        .iter()
        .take(20)
        .fold((0.0, 0.0), |(m, r), (_, media, ran)| (m + media, r + ran));
    (ran > 0.0).then(|| (media / ran * 100.0).round() / 100.0)
}

#[cfg(test)]
mod tests;
