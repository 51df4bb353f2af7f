//! The scheduling core: from a snapshot of tasks, pools, nodes, Jobs and pods, compute what
//! should change — each task's status, the Jobs to launch or stop, the pools' status. Pure:
//! the runtime feeds it what its watchers saw and carries out the plan, so every decision is
//! unit-tested on values, and a restarted operator reaches the same decisions from the API.
//! This module holds the pass ([`plan`] and its steps); `values` its inputs and outputs,
//! `work` a task's state during the pass, `attempt` moves one task on its own, `waiting`
//! says where waiting tasks stand, `report` writes the pools' status.

mod attempt;
pub mod capacity;
pub mod fair_share;
pub mod queue;
mod report;
pub mod retention;
mod values;
mod waiting;
mod work;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use esup_api::conditions::reason;
use esup_api::task::TaskKey;
use esup_api::{TaskPhase, TaskPriority, TaskStatus};
use k8s_openapi::jiff::Timestamp;

use crate::failure::{Failure, FailureClass};
use crate::model::{Pool, Task};
use crate::status::{owned_equal, queued_since};
use attempt::{admit, advance, end_attempt};
use capacity::{Holder, PoolCapacity};
use fair_share::seconds_between;
use queue::{Entry, Share};
use report::pool_report;
use waiting::{materially_moved, positions, waiting_reason};
use work::{Work, holds_slot, home_pool, secs};

pub use values::{
    Action, FinishedTask, Note, Observation, Plan, PoolReport, Settings, Snapshot, TaskChange,
};

/// One scheduling pass: the snapshot, and what the steps of [`plan`] worked out so far.
struct Pass<'s, 'a> {
    snapshot: &'s Snapshot<'a>,
    now: Timestamp,
    /// Pools in admission order: priority, then name.
    pools: Vec<&'a Pool>,
    pool_by_name: HashMap<&'a str, &'a Pool>,
    /// The tasks that are not finished (nor being deleted).
    work: Vec<Work<'a>>,
    caps: BTreeMap<String, PoolCapacity>,
    /// Decayed slot-seconds per (pool, tenant).
    usage: HashMap<(String, String), f64>,
    /// Each pool's waiting tasks in its admission order (indexes into `work`), those
    /// admitted in this pass left out.
    orders: BTreeMap<String, Vec<usize>>,
}

/// Computes what should change; the steps run in this order, each on the result of the
/// ones before.
pub fn plan(snapshot: &Snapshot<'_>, now: Timestamp, settings: &Settings) -> Plan {
    let mut plan = Plan::default();
    let mut pools = snapshot.pools.clone();
    pools.sort_by(|a, b| (a.spec.priority, &a.name).cmp(&(b.spec.priority, &b.name)));

    // 1. Each task on its own: attempts that ended, started or got stuck; timeouts; retention.
    let work = advance_all(snapshot, &pools, now, settings, &mut plan.expired);
    // 2. Capacity, from the attempts that hold slots after step 1; fair-share usage.
    let mut pass = Pass::new(snapshot, pools, work, now);
    // 3. Admission, pool by pool in priority order.
    pass.admit_by_pool();
    // 4. Preemption: overflowed tasks give their slot back to the pool's own waiting tasks.
    pass.reclaim();
    // 5. Where the still-waiting tasks stand.
    pass.place_waiting();
    // 6. What still waits, then what changed.
    plan.pending = pass.pending();
    let oldest = pass.oldest_queued();
    plan.tasks = pass.diff();
    // 7. Orphaned Jobs: active, yet not the current Job of a task that runs.
    plan.orphans = orphans(snapshot, &plan.tasks);
    // 8. Pools.
    plan.pools = pass.pool_reports();
    for report in &mut plan.pools {
        report.oldest_queued_seconds = oldest.get(&report.name).copied().unwrap_or(0.0);
    }
    plan
}

/// Step 1: advances each task that is not finished, and finds the pools it may be admitted
/// to; finished tasks past their retention, or past the bound per tenant, go to `expired`.
fn advance_all<'a>(
    snapshot: &Snapshot<'a>,
    pools: &[&'a Pool],
    now: Timestamp,
    settings: &Settings,
    expired: &mut Vec<TaskKey>,
) -> Vec<Work<'a>> {
    let mut work: Vec<Work<'a>> = Vec::with_capacity(snapshot.tasks.len());
    let mut kept: Vec<&Task> = Vec::new();
    for task in snapshot.tasks.iter().copied() {
        if task.deleting {
            continue;
        }
        if task.status.phase.is_terminal() {
            if retention_over(task, now, settings) {
                expired.push(task.key.clone());
            } else {
                kept.push(task);
            }
            continue;
        }
        let mut w = Work::new(task);
        advance(&mut w, snapshot, pools, now, settings);
        w.unpoliced = settings.require_runner_network_policy
            && !snapshot
                .policed_namespaces
                .contains(task.key.namespace.as_str());
        if w.admissible && !w.unpoliced {
            w.candidates = queue::candidates(task, pools);
        }
        let waited = queued_since(&w.status).map_or(0.0, |s| seconds_between(s, now));
        w.reachable = queue::reachable(&w.candidates, waited);
        work.push(w);
    }
    expired.extend(retention::over_bound(
        kept,
        settings.max_finished_per_tenant,
    ));
    work
}

impl<'s, 'a> Pass<'s, 'a> {
    /// Step 2: the pools' capacity once step 1 ended or started attempts.
    fn new(
        snapshot: &'s Snapshot<'a>,
        pools: Vec<&'a Pool>,
        work: Vec<Work<'a>>,
        now: Timestamp,
    ) -> Self {
        let pool_by_name: HashMap<&'a str, &'a Pool> =
            pools.iter().map(|p| (p.name.as_str(), *p)).collect();
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
        let caps = capacity::compute(&owned_pools, &snapshot.nodes, &holders);
        let usage = usage_by_pool_and_tenant(snapshot.tasks.iter().copied(), &pool_by_name, now);
        Self {
            snapshot,
            now,
            pools,
            pool_by_name,
            work,
            caps,
            usage,
            orders: BTreeMap::new(),
        }
    }

    /// Step 3: each pool, in priority order, admits its waiting tasks in fair-share order
    /// while it has free slots.
    fn admit_by_pool(&mut self) {
        for pool in self.pools.clone() {
            self.admit_into(pool);
        }
    }

    fn admit_into(&mut self, pool: &'a Pool) {
        let entries: Vec<Entry<'a>> = self
            .work
            .iter()
            .enumerate()
            .filter(|(_, w)| w.waits_for(&pool.name))
            .map(|(i, w)| {
                let task: &'a Task = w.task;
                Entry {
                    index: i,
                    away: home_pool(&w.status) != Some(pool.name.as_str()),
                    priority: task.common().priority,
                    tenant: task.tenant(),
                    since: queued_since(&w.status).unwrap_or(task.created),
                    created: task.created,
                    name: &task.key.name,
                }
            })
            .collect();
        let shares = shares_for(pool, &self.caps[&pool.name], &self.usage);
        let ordered = queue::order(entries, &shares);
        for entry in &ordered {
            let w = &mut self.work[entry.index];
            let Some(cap) = self.caps.get(&pool.name) else {
                continue;
            };
            if w.admitted || cap.blocked.is_some() {
                continue;
            }
            // Before the free slots: a task its tenant's cap holds back says so, full pool or not.
            if at_tenant_cap(pool, cap, entry.tenant) {
                w.capped = true;
                continue;
            }
            if cap.free == 0 {
                continue;
            }
            admit(w, pool, self.now);
            w.admitted = true;
            capacity::take(&mut self.caps, &self.pools, pool, entry.tenant);
        }
        let waiting = ordered
            .iter()
            .map(|e| e.index)
            .filter(|i| !self.work[*i].admitted)
            .collect();
        self.orders.insert(pool.name.clone(), waiting);
    }

    /// Step 4: a full pool that lets others take its slots back takes them from overflowed
    /// tasks when its own tasks wait.
    fn reclaim(&mut self) {
        for pool in self.pools.clone() {
            let cap = &self.caps[&pool.name];
            if cap.free > 0 || cap.blocked.is_some() || !pool.spec.preemption.reclaim {
                continue;
            }
            let wanted = self.waiting_home(pool);
            if wanted == 0 {
                continue;
            }
            let min_runtime = secs(&pool.spec.preemption.min_runtime);
            let victims = preemption_victims(&self.work, &pool.name, self.now, min_runtime, wanted);
            for i in victims {
                let w = &mut self.work[i];
                let home = home_pool(&w.status).unwrap_or("another pool").to_owned();
                let failure = Failure {
                    class: FailureClass::Preempted,
                    message: format!(
                        "preempted: pool {} reclaimed its slot for its own tasks; the task goes back to {home}'s queue",
                        pool.name
                    ),
                };
                end_attempt(w, failure, self.now, true);
            }
        }
    }

    /// Home tasks waiting for `pool` that a freed slot would admit: not those their tenant's
    /// cap holds back.
    fn waiting_home(&self, pool: &Pool) -> usize {
        let mut running = self.caps[&pool.name].running_by_tenant.clone();
        self.orders.get(&pool.name).map_or(0, |order| {
            order
                .iter()
                .map(|&i| &self.work[i])
                .filter(|w| home_pool(&w.status) == Some(pool.name.as_str()))
                .filter(|w| {
                    let tenant = w.task.tenant();
                    let n = running.entry(tenant.to_owned()).or_default();
                    let room = tenant_cap(pool, tenant).is_none_or(|c| *n < c);
                    *n += 1;
                    room
                })
                .count()
        })
    }

    /// Step 5: each task still waiting gets why it waits and its place in the queue.
    fn place_waiting(&mut self) {
        let now = self.now;
        let positions = positions(
            &self.work,
            &self.orders,
            &self.caps,
            &self.pool_by_name,
            now,
        );
        for (i, w) in self.work.iter_mut().enumerate() {
            if !w.admissible || w.admitted {
                continue;
            }
            let (why, message) = if w.unpoliced {
                (
                    reason::NO_RUNNER_NETWORK_POLICY,
                    format!(
                        "namespace {} has no runner NetworkPolicy (label {}=true): its runner pods would have open egress; add the namespace to the chart's tenants or rbac.extraTenantNamespaces",
                        w.task.key.namespace,
                        esup_api::labels::RUNNER_POLICY
                    ),
                )
            } else {
                waiting_reason(w, &self.caps)
            };
            w.enter_queued(why, &message, now);
            // Positions deep in a queue move with every admission; rewriting them each time
            // would flood the API server. A written position is kept until it is materially
            // wrong.
            w.status.queue = match (&w.task.status.queue, positions.get(&i)) {
                (Some(old), Some(new)) if !materially_moved(old, new, now) => Some(old.clone()),
                (_, new) => new.cloned(),
            };
        }
    }

    /// Step 6: the tasks whose status changed or that have something to do or say.
    fn diff(&mut self) -> Vec<TaskChange> {
        let mut changes = Vec::new();
        for w in self.work.drain(..) {
            let unchanged = owned_equal(&w.task.status, &w.status, false);
            if unchanged
                && w.action == Action::None
                && w.note.is_none()
                && w.observations.is_empty()
            {
                continue;
            }
            let informational = w.action == Action::None
                && w.note.is_none()
                && owned_equal(&w.task.status, &w.status, true);
            changes.push(TaskChange {
                key: w.task.key.clone(),
                uid: w.task.uid.clone(),
                status: w.status,
                action: w.action,
                note: w.note,
                observations: w.observations,
                informational,
            });
        }
        changes
    }

    /// Step 8: each pool's status.
    fn pool_reports(&self) -> Vec<PoolReport> {
        self.pools
            .iter()
            .map(|pool| {
                pool_report(
                    pool,
                    &self.caps[&pool.name],
                    &self.orders,
                    &self.usage,
                    self.snapshot,
                    self.now,
                )
            })
            .collect()
    }

    /// Age of the oldest task in each pool's queue, before [`Self::diff`] consumes the work.
    fn oldest_queued(&self) -> BTreeMap<String, f64> {
        self.orders
            .iter()
            .map(|(pool, order)| {
                let oldest = order
                    .iter()
                    .filter_map(|&i| queued_since(&self.work[i].status))
                    .min()
                    .map_or(0.0, |since| seconds_between(since, self.now).max(0.0));
                (pool.clone(), oldest)
            })
            .collect()
    }

    /// The tasks still waiting, counted by the pool whose queue holds them (their home pool;
    /// none for a task no pool takes) and the reason of their Queued condition; before
    /// [`Self::diff`] consumes the work.
    fn pending(&self) -> BTreeMap<(String, String), u32> {
        let mut pending = BTreeMap::new();
        for w in &self.work {
            if !matches!(w.status.phase, TaskPhase::Pending | TaskPhase::Queued) {
                continue;
            }
            let why = w
                .status
                .condition(esup_api::conditions::task::QUEUED)
                .filter(|c| c.status == "True")
                .map_or(reason::WAITING_FOR_CAPACITY, |c| c.reason.as_str());
            let pool = w
                .status
                .queue
                .as_ref()
                .map(|q| q.pool.clone())
                .or_else(|| w.candidates.first().map(|p| p.name.clone()))
                .unwrap_or_default();
            *pending.entry((pool, why.to_owned())).or_default() += 1;
        }
        pending
    }
}

/// Step 7: active Jobs that are not the current Job of a task that runs, once `changes`
/// are written.
fn orphans(snapshot: &Snapshot<'_>, changes: &[TaskChange]) -> Vec<(String, String)> {
    let changed: HashMap<&str, &TaskStatus> = changes
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
    let mut orphans: Vec<(String, String)> = snapshot
        .jobs
        .values()
        .filter(|job| {
            let active = job.finished().is_none() && !job.deleting;
            // Jobs of tasks this operator does not see (yet) are left to owner garbage
            // collection.
            active
                && known_uids.contains(job.task_uid.as_str())
                && !claimed.contains(&(job.namespace.as_str(), job.name.as_str()))
        })
        .map(|job| (job.namespace.clone(), job.name.clone()))
        .collect();
    orphans.sort();
    orphans
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

/// Shortest retention honoured, whatever a task or tenant asks: Esup-Pod fetches the results
/// after the notify (retried for minutes), and task ids never come back only while finished
/// tasks outlive the UTC day their de-duplication chain started on (webhook `dedup.rs`).
pub const MIN_RETENTION: Duration = Duration::from_secs(24 * 3600);

fn retention_over(task: &Task, now: Timestamp, settings: &Settings) -> bool {
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

#[cfg(test)]
mod tests;
