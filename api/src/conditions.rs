//! Condition types and reasons of tasks and pools. Stable strings: users write alerts and
//! `kubectl wait --for=condition=...` against them, and they double as Event reasons.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// Condition types of a task. At most one of `Succeeded`, `Failed`, `TimedOut` is ever True.
pub mod task {
    /// The task waits in a pool's queue.
    pub const QUEUED: &str = "Queued";
    /// A pool admitted the task and its Job exists.
    pub const ADMITTED: &str = "Admitted";
    /// The runner pod runs.
    pub const RUNNING: &str = "Running";
    /// The runner delivered every output.
    pub const SUCCEEDED: &str = "Succeeded";
    /// The task ended without its outputs.
    pub const FAILED: &str = "Failed";
    /// The task waited or ran longer than its timeouts allow.
    pub const TIMED_OUT: &str = "TimedOut";
    /// Esup-Pod acknowledged the notification of the terminal state.
    pub const NOTIFIED: &str = "Notified";
}

/// How a task's conditions are listed: in the order of its lifecycle, then any other type.
const TASK_ORDER: [&str; 7] = [
    task::QUEUED,
    task::ADMITTED,
    task::RUNNING,
    task::SUCCEEDED,
    task::FAILED,
    task::TIMED_OUT,
    task::NOTIFIED,
];

/// Sets a condition, keeping its `lastTransitionTime` unless its status flips, so that
/// `kubectl wait` and alerts see real transitions only. Conditions stay in lifecycle order.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    now: Timestamp,
    generation: Option<i64>,
) {
    let status = if status { "True" } else { "False" };
    let transition = conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map_or(Time(now), |c| c.last_transition_time.clone());
    conditions.retain(|c| c.type_ != type_);
    conditions.push(Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        last_transition_time: transition,
        observed_generation: generation,
    });
    conditions.sort_by_key(|c| {
        TASK_ORDER
            .iter()
            .position(|t| *t == c.type_)
            .unwrap_or(TASK_ORDER.len())
    });
}

/// Condition types of a pool.
pub mod pool {
    /// The pool admits tasks (not suspended, at least one matching node).
    pub const READY: &str = "Ready";
    /// `spec.suspend` is set: queued tasks stay queued, running ones finish.
    pub const SUSPENDED: &str = "Suspended";
}

/// Reasons, in Kueue's and Kubernetes' vocabulary, grouped by the condition that carries
/// them. Each is also the reason of the Event that reports the change and, for an attempt's
/// end, the `reason` label of the metrics.
pub mod reason {
    // A task's `Queued` and `Admitted`: why it waits, and how it was admitted.
    pub const WAITING_FOR_CAPACITY: &str = "WaitingForCapacity";
    pub const NO_ELIGIBLE_POOL: &str = "NoEligiblePool";
    /// The task's namespace has no runner NetworkPolicy and the operator requires one.
    pub const NO_RUNNER_NETWORK_POLICY: &str = "NoRunnerNetworkPolicy";
    pub const POOL_SUSPENDED: &str = "PoolSuspended";
    pub const TENANT_CAP_REACHED: &str = "TenantCapReached";
    pub const OVERFLOWED: &str = "Overflowed";
    pub const BACKING_OFF: &str = "BackingOff";
    pub const JOB_CREATED: &str = "JobCreated";

    // A task's `Running` and `Succeeded`.
    pub const POD_RUNNING: &str = "PodRunning";
    pub const COMPLETED: &str = "Completed";

    // A task's `Failed` or `TimedOut`, and the end of one attempt (`status.attempts[].reason`).
    pub const INVALID_INPUT: &str = "InvalidInput";
    /// The request's parameters are invalid: the task fails without running.
    pub const INVALID_PARAMETERS: &str = "InvalidParameters";
    pub const RETRIES_EXHAUSTED: &str = "RetriesExhausted";
    pub const QUEUE_WAIT_EXCEEDED: &str = "QueueWaitExceeded";
    pub const EXECUTION_DEADLINE_EXCEEDED: &str = "ExecutionDeadlineExceeded";
    pub const NO_PROGRESS: &str = "NoProgress";
    pub const CANCELLED: &str = "Cancelled";
    /// The runner exited with an error that another attempt may not meet.
    pub const RUNNER_FAILED: &str = "RunnerFailed";
    /// The attempt's Job or pod went away without a verdict.
    pub const POD_LOST: &str = "PodLost";
    pub const EVICTED: &str = "Evicted";
    pub const PREEMPTED: &str = "Preempted";
    pub const OOM_KILLED: &str = "OOMKilled";
    pub const IMAGE_PULL_FAILED: &str = "ImagePullFailed";
    pub const NODE_LOST: &str = "NodeLost";

    // A task's `Notified`.
    pub const DELIVERED: &str = "Delivered";
    pub const DELIVERY_FAILED: &str = "DeliveryFailed";

    // A pool's `Ready`: admitting, or why not (with `POOL_SUSPENDED`).
    pub const ADMITTING: &str = "Admitting";
    pub const NO_MATCHING_NODES: &str = "NoMatchingNodes";
    pub const NO_GPUS: &str = "NoGPUs";

    // A pool's `Suspended`.
    pub const SUSPENDED_BY_SPEC: &str = "SuspendedBySpec";
    pub const NOT_SUSPENDED: &str = "NotSuspended";
}
