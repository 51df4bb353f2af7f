//! One task on its own, in step 1 of a pass: a new task enters the queue; an attempt's Job
//! and pod say it started, ended, got stuck or went silent; timeouts fire. Also the
//! transitions later steps apply: admission, and the end of a preempted attempt. Pure.

use std::collections::BTreeSet;
use std::time::Duration;

use esup_api::conditions::{reason, task as cond};
use esup_api::status::AttemptRecord;
use esup_api::{TaskOutcome, TaskPhase, TaskStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::fair_share::seconds_between;
use super::queue;
use super::values::{Action, FinishedTask, Note, Observation, Settings, Snapshot};
use super::work::{Work, holds_slot, home_pool, secs, time_after};
use crate::failure::{self, AttemptEnd, FREE_DISRUPTIONS, Failure, FailureClass};
use crate::model::{PodInfo, Pool};
use crate::status::{enter_phase, queued_since};

/// Attempt records kept in a task's status.
const HISTORY_LIMIT: usize = 10;

/// Moves one task forward on its own: new tasks enter the queue; an attempt's Job and pod
/// are read for start, end, stuck or silent runners; queue timeouts fire.
pub(super) fn advance(
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
    match w.status.phase {
        TaskPhase::Pending => {
            let home = queue::candidates(w.task, pools)
                .first()
                .map(|p| p.name.clone());
            w.status.home_pool = home;
            w.status.queued_time = Some(Time(now));
            w.enter_queued(reason::WAITING_FOR_CAPACITY, "", now);
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
                let said = w
                    .status
                    .condition(cond::QUEUED)
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
                    w.enter_queued(reason::BACKING_OFF, &message, now);
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

/// Reads the current attempt's Job and pod: the attempt succeeded, failed, started, got
/// stuck or went silent.
fn follow_attempt(w: &mut Work<'_>, snapshot: &Snapshot<'_>, now: Timestamp, settings: &Settings) {
    let Some(job_name) = w.status.job_name.clone() else {
        // Admitted without a Job name cannot happen through this operator; start over.
        w.enter_queued(reason::WAITING_FOR_CAPACITY, "", now);
        w.admissible = true;
        return;
    };
    let ns = w.task.key.namespace.clone();
    let job = snapshot.jobs.get(&(ns.clone(), job_name.clone()));
    let pod = snapshot.pods.get(&(ns, job_name.clone()));

    let Some(job) = job else {
        job_missing(w, &job_name, snapshot, now, settings);
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
        // An attempt that ended between two passes never showed Running: its runner's start
        // still counts, for the schedule-to-start latency and the execution time.
        if w.status.phase == TaskPhase::Admitted
            && let Some(started) = pod.and_then(|p| p.started)
        {
            record_start(w, started);
        }
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
        pod_started(w, pod, now);
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

/// The attempt's Job is not (or no longer) there: delivered, refused by the API server, not
/// created yet, or lost with its runner.
fn job_missing(
    w: &mut Work<'_>,
    job_name: &str,
    snapshot: &Snapshot<'_>,
    now: Timestamp,
    settings: &Settings,
) {
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
            pool: w.status.pool.clone().unwrap_or_default(),
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
}

/// The runner container runs: the attempt is Running.
fn pod_started(w: &mut Work<'_>, pod: &PodInfo, now: Timestamp) {
    record_start(w, pod.started.unwrap_or(now));
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
}

/// When the attempt's runner started, and how long it waited for it.
fn record_start(w: &mut Work<'_>, started: Timestamp) {
    w.status.start_time = Some(Time(started));
    let waited =
        queue_episode_start(&w.status).map_or(0.0, |q| seconds_between(q, started).max(0.0));
    w.observations.push(Observation::Started {
        pool: w.status.pool.clone().unwrap_or_default(),
        task_type: w.task.task_type().protocol_name().to_owned(),
        waited,
    });
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

pub(super) fn admit(w: &mut Work<'_>, pool: &Pool, now: Timestamp) {
    let launch = w.status.launches + 1;
    let job_name = w.task.identity().job_name(launch);
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
pub(super) fn end_attempt(w: &mut Work<'_>, failure: Failure, now: Timestamp, stop: bool) {
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
        w.enter_queued(why, &message, now);
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
    // `finish` is only called with a terminal phase.
    w.observations.push(Observation::Finished(FinishedTask {
        pool: w.status.pool.clone().unwrap_or_default(),
        task_type: w.task.task_type().protocol_name().to_owned(),
        tenant: w.task.tenant().to_owned(),
        phase,
        reason: why.to_owned(),
        outcome: phase.outcome().unwrap_or(TaskOutcome::Failed),
        execution_seconds: w
            .status
            .start_time
            .as_ref()
            .map(|s| seconds_between(s.0, now).max(0.0)),
        end_to_end_seconds: seconds_between(w.task.created, now).max(0.0),
        media_seconds: w.task.media_seconds(),
    }));
    w.note = Some(Note {
        warning: phase != TaskPhase::Succeeded,
        reason: why.to_owned(),
        message: message.to_owned(),
    });
    w.admissible = false;
}
