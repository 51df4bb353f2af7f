//! Condition types and reasons of tasks and pools. Stable strings: users write alerts and
//! `kubectl wait --for=condition=...` against them, and they double as Event reasons.

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

/// Condition types of a pool.
pub mod pool {
    /// The pool admits tasks (not suspended, at least one matching node).
    pub const READY: &str = "Ready";
    /// `spec.suspend` is set: queued tasks stay queued, running ones finish.
    pub const SUSPENDED: &str = "Suspended";
}

/// Reasons, in Kueue's and Kubernetes' vocabulary.
pub mod reason {
    pub const WAITING_FOR_CAPACITY: &str = "WaitingForCapacity";
    pub const NO_ELIGIBLE_POOL: &str = "NoEligiblePool";
    /// The task's namespace has no runner NetworkPolicy and the operator requires one.
    pub const NO_RUNNER_NETWORK_POLICY: &str = "NoRunnerNetworkPolicy";
    pub const POOL_SUSPENDED: &str = "PoolSuspended";
    pub const TENANT_CAP_REACHED: &str = "TenantCapReached";
    pub const OVERFLOWED: &str = "Overflowed";
    pub const BACKING_OFF: &str = "BackingOff";
    pub const JOB_CREATED: &str = "JobCreated";
    pub const POD_RUNNING: &str = "PodRunning";
    pub const COMPLETED: &str = "Completed";
    pub const INVALID_INPUT: &str = "InvalidInput";
    /// The request's parameters are invalid: the task fails without running.
    pub const INVALID_PARAMETERS: &str = "InvalidParameters";
    pub const RETRIES_EXHAUSTED: &str = "RetriesExhausted";
    pub const QUEUE_WAIT_EXCEEDED: &str = "QueueWaitExceeded";
    pub const EXECUTION_DEADLINE_EXCEEDED: &str = "ExecutionDeadlineExceeded";
    pub const NO_PROGRESS: &str = "NoProgress";
    pub const CANCELLED: &str = "Cancelled";
    pub const EVICTED: &str = "Evicted";
    pub const PREEMPTED: &str = "Preempted";
    pub const OOM_KILLED: &str = "OOMKilled";
    pub const IMAGE_PULL_FAILED: &str = "ImagePullFailed";
    pub const NODE_LOST: &str = "NodeLost";
    pub const DELIVERED: &str = "Delivered";
    pub const DELIVERY_FAILED: &str = "DeliveryFailed";
}
