//! Where the tasks still waiting after admission stand: their place in their home pool's
//! queue and overall, their estimated start, and why they wait. Pure.

use std::collections::{BTreeMap, HashMap};

use esup_api::TaskPriority;
use esup_api::conditions::reason;
use esup_api::status::QueueStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::capacity::PoolCapacity;
use super::fair_share::seconds_between;
use super::work::{Work, holds_slot, home_pool, time_after};
use crate::model::Pool;
use crate::status::queued_since;

/// Each waiting task's place in its home pool's queue, overall, and its estimated start.
pub(super) fn positions(
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
pub(super) fn materially_moved(old: &QueueStatus, new: &QueueStatus, now: Timestamp) -> bool {
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

/// Why an admissible task still waits.
pub(super) fn waiting_reason(
    w: &Work<'_>,
    caps: &BTreeMap<String, PoolCapacity>,
) -> (&'static str, String) {
    let (candidates, reachable) = (&w.candidates, w.reachable);
    let Some(home) = candidates.first() else {
        let message = format!(
            "no RunnerPool runs {} tasks for tenant {}",
            w.task.task_type().protocol_name(),
            w.task.tenant()
        );
        return (reason::NO_ELIGIBLE_POOL, message);
    };
    if w.capped {
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
