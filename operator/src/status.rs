//! Task status as the operator owns it: phase, conditions with stable transition times, and
//! the split between the fields it writes and those the webhook writes.

use esup_api::conditions::{reason, set_condition, task as cond};
use esup_api::{TaskPhase, TaskStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;

/// Condition types the operator owns; `Notified` belongs to the webhook.
pub const OWNED_CONDITIONS: [&str; 6] = [
    cond::QUEUED,
    cond::ADMITTED,
    cond::RUNNING,
    cond::SUCCEEDED,
    cond::FAILED,
    cond::TIMED_OUT,
];

/// Puts the task in `phase`, with the conditions that phase implies. `reason` and `message`
/// describe the phase's own condition (Queued, Admitted, Running or the terminal one).
pub fn enter_phase(
    status: &mut TaskStatus,
    phase: TaskPhase,
    why: &str,
    message: &str,
    now: Timestamp,
    generation: Option<i64>,
) {
    status.phase = phase;
    status.observed_generation = generation;
    let c = &mut status.conditions;
    let mut set =
        |t: &str, on: bool, r: &str, m: &str| set_condition(c, t, on, r, m, now, generation);
    match phase {
        TaskPhase::Pending | TaskPhase::Queued => {
            set(cond::QUEUED, true, why, message);
            set(cond::ADMITTED, false, why, "");
            set(cond::RUNNING, false, why, "");
        }
        TaskPhase::Admitted => {
            set(cond::QUEUED, false, reason::JOB_CREATED, "");
            set(cond::ADMITTED, true, why, message);
            set(
                cond::RUNNING,
                false,
                why,
                "the runner pod has not started yet",
            );
        }
        TaskPhase::Running => {
            set(cond::QUEUED, false, reason::JOB_CREATED, "");
            set(cond::ADMITTED, true, reason::JOB_CREATED, "");
            set(cond::RUNNING, true, why, message);
        }
        TaskPhase::Succeeded => {
            set(cond::QUEUED, false, why, "");
            set(cond::RUNNING, false, why, "");
            set(cond::SUCCEEDED, true, why, message);
        }
        TaskPhase::Failed => {
            set(cond::QUEUED, false, why, "");
            set(cond::RUNNING, false, why, "");
            set(cond::FAILED, true, why, message);
        }
        TaskPhase::TimedOut => {
            set(cond::QUEUED, false, why, "");
            set(cond::RUNNING, false, why, "");
            set(cond::TIMED_OUT, true, why, message);
        }
    }
}

/// The part of a status the operator writes with server-side apply. Fields it leaves out
/// (progress, result, notification, the Notified condition) belong to the webhook.
pub fn operator_owned(status: &TaskStatus) -> TaskStatus {
    TaskStatus {
        conditions: status
            .conditions
            .iter()
            .filter(|c| OWNED_CONDITIONS.contains(&c.type_.as_str()))
            .cloned()
            .collect(),
        progress: None,
        result: None,
        notification: None,
        result_fetch_time: None,
        ..status.clone()
    }
}

/// Whether two statuses agree on every field the operator owns (optionally leaving the queue
/// position out), without building the owned parts: this runs for every task on every pass.
pub fn owned_equal(a: &TaskStatus, b: &TaskStatus, ignore_queue: bool) -> bool {
    // Destructured so that a new status field cannot be forgotten here.
    let TaskStatus {
        observed_generation,
        phase,
        conditions,
        home_pool,
        pool,
        job_name,
        node_name,
        attempts,
        free_disruptions,
        launches,
        attempt_history,
        queue,
        queued_time,
        admitted_time,
        start_time,
        completion_time,
        next_retry_time,
        progress: _,
        result: _,
        notification: _,
        result_fetch_time: _,
    } = a;
    let owned = |c: &&Condition| OWNED_CONDITIONS.contains(&c.type_.as_str());
    *observed_generation == b.observed_generation
        && *phase == b.phase
        && conditions
            .iter()
            .filter(owned)
            .eq(b.conditions.iter().filter(owned))
        && *home_pool == b.home_pool
        && *pool == b.pool
        && *job_name == b.job_name
        && *node_name == b.node_name
        && *attempts == b.attempts
        && *free_disruptions == b.free_disruptions
        && *launches == b.launches
        && *attempt_history == b.attempt_history
        && (ignore_queue || *queue == b.queue)
        && *queued_time == b.queued_time
        && *admitted_time == b.admitted_time
        && *start_time == b.start_time
        && *completion_time == b.completion_time
        && *next_retry_time == b.next_retry_time
}

/// When the current queueing episode began: the Queued condition's last transition to True
/// (a retry starts a new episode), else the first time the task was queued.
pub fn queued_since(status: &TaskStatus) -> Option<Timestamp> {
    status
        .condition(cond::QUEUED)
        .filter(|c| c.status == "True")
        .map(|c| c.last_transition_time.0)
        .or_else(|| status.queued_time.as_ref().map(|t| t.0))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    /// The tasks' `Reason` printer column reads the Running condition's reason: every phase
    /// change must leave the reason of that change there.
    #[test]
    fn the_running_condition_carries_the_reason_of_every_phase_change() {
        let mut status = TaskStatus::default();
        for (i, (phase, why)) in [
            (TaskPhase::Queued, reason::WAITING_FOR_CAPACITY),
            (TaskPhase::Queued, reason::TENANT_CAP_REACHED),
            (TaskPhase::Admitted, reason::JOB_CREATED),
            (TaskPhase::Running, reason::POD_RUNNING),
            (TaskPhase::Queued, reason::BACKING_OFF),
            (TaskPhase::Running, reason::POD_RUNNING),
            (TaskPhase::Succeeded, reason::COMPLETED),
            (TaskPhase::Failed, reason::OOM_KILLED),
            (TaskPhase::TimedOut, reason::QUEUE_WAIT_EXCEEDED),
        ]
        .into_iter()
        .enumerate()
        {
            enter_phase(&mut status, phase, why, "", ts(10 + i as i64), Some(1));
            assert_eq!(
                status.condition(cond::RUNNING).map(|c| c.reason.as_str()),
                Some(why),
                "{phase:?}"
            );
        }
    }

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let mut status = TaskStatus::default();
        enter_phase(
            &mut status,
            TaskPhase::Queued,
            "WaitingForCapacity",
            "",
            ts(10),
            Some(1),
        );
        enter_phase(
            &mut status,
            TaskPhase::Queued,
            "TenantCapReached",
            "",
            ts(20),
            Some(1),
        );
        let queued = status.condition(cond::QUEUED).unwrap();
        assert_eq!(queued.last_transition_time.0, ts(10));
        assert_eq!(queued.reason, "TenantCapReached");
        enter_phase(
            &mut status,
            TaskPhase::Admitted,
            "JobCreated",
            "",
            ts(30),
            Some(1),
        );
        assert_eq!(
            status
                .condition(cond::QUEUED)
                .unwrap()
                .last_transition_time
                .0,
            ts(30)
        );
        assert_eq!(
            queued_since(&status),
            status.queued_time.as_ref().map(|t| t.0)
        );
        enter_phase(
            &mut status,
            TaskPhase::Queued,
            "BackingOff",
            "",
            ts(40),
            Some(1),
        );
        assert_eq!(queued_since(&status), Some(ts(40)));
    }

    #[test]
    fn terminal_phases_set_exactly_one_terminal_condition() {
        for (phase, type_) in [
            (TaskPhase::Succeeded, cond::SUCCEEDED),
            (TaskPhase::Failed, cond::FAILED),
            (TaskPhase::TimedOut, cond::TIMED_OUT),
        ] {
            let mut status = TaskStatus::default();
            enter_phase(
                &mut status,
                TaskPhase::Running,
                "PodRunning",
                "",
                ts(1),
                None,
            );
            enter_phase(&mut status, phase, "Why", "msg", ts(2), None);
            let terminal: Vec<_> = status
                .conditions
                .iter()
                .filter(|c| c.status == "True")
                .map(|c| c.type_.as_str())
                .filter(|t| [cond::SUCCEEDED, cond::FAILED, cond::TIMED_OUT].contains(t))
                .collect();
            assert_eq!(terminal, [type_]);
            assert!(!status.is_true(cond::RUNNING));
        }
    }

    #[test]
    fn owned_equality_ignores_the_webhooks_fields_and_optionally_the_queue() {
        let mut a = TaskStatus::default();
        enter_phase(
            &mut a,
            TaskPhase::Queued,
            "WaitingForCapacity",
            "",
            ts(1),
            None,
        );
        let mut b = a.clone();
        set_condition(
            &mut b.conditions,
            cond::NOTIFIED,
            true,
            "Delivered",
            "",
            ts(2),
            None,
        );
        b.progress = Some(esup_api::status::Progress {
            stage: "encode".into(),
            percent: Some(5.0),
            media_duration_seconds: None,
            update_time: Time(ts(2)),
        });
        assert!(owned_equal(&a, &b, false));
        assert_eq!(operator_owned(&a), operator_owned(&b));
        b.queue = Some(esup_api::status::QueueStatus::default());
        assert!(!owned_equal(&a, &b, false));
        assert!(owned_equal(&a, &b, true));
        b.attempts = 1;
        assert!(!owned_equal(&a, &b, true));
    }

    #[test]
    fn owned_part_leaves_the_webhooks_fields_out() {
        let mut status = TaskStatus::default();
        enter_phase(
            &mut status,
            TaskPhase::Succeeded,
            "Completed",
            "",
            ts(1),
            None,
        );
        set_condition(
            &mut status.conditions,
            cond::NOTIFIED,
            true,
            "Delivered",
            "",
            ts(2),
            None,
        );
        status.result = Some(esup_api::status::TaskResult {
            outcome: esup_api::TaskOutcome::Completed,
            error_message: None,
            files: vec![],
            hardware: None,
            launch: None,
            script_output_ref: None,
            script_output: None,
            report_time: Time(ts(1)),
        });
        let owned = operator_owned(&status);
        assert!(owned.result.is_none());
        assert!(owned.condition(cond::NOTIFIED).is_none());
        assert!(owned.is_true(cond::SUCCEEDED));
    }
}
