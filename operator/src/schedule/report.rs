//! Each pool's status at the end of a pass: capacity, queue length, tenants' usage, and
//! the Ready and Suspended conditions. Pure.

use std::collections::{BTreeMap, HashMap};

use esup_api::conditions::reason;
use esup_api::pool::TenantUsage;
use esup_api::{RunnerPoolStatus, TaskPhase};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;

use super::capacity::PoolCapacity;
use super::fair_share::seconds_between;
use super::values::{Note, PoolReport, Snapshot};
use super::work::secs;
use crate::model::Pool;

pub(super) fn pool_report(
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
            reason::ADMITTING,
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
            reason::SUSPENDED_BY_SPEC,
            "spec.suspend is set: queued tasks wait or overflow, running ones finish",
        )
    } else {
        (reason::NOT_SUSPENDED, "")
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
        oldest_queued_seconds: 0.0,
        ready,
        suspended: pool.spec.suspend,
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
    esup_api::conditions::set_condition(conditions, type_, on, why, message, now, generation);
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
