//! What the scheduler reads and what it answers: its settings, the snapshot of the
//! cluster, and the plan of changes. Plain values.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use esup_api::task::TaskKey;
use esup_api::{RunnerPoolStatus, TaskOutcome, TaskPhase, TaskStatus};

use crate::model::{JobInfo, NodeInfo, PodInfo, Pool, Task};

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
    /// Namespaces that have a runner NetworkPolicy ([`esup_api::labels::RUNNER_POLICY`]).
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
    Started {
        pool: String,
        task_type: String,
        waited: f64,
    },
    /// An attempt failed (retried or not).
    AttemptFailed { pool: String, reason: String },
    /// The task ended.
    Finished(FinishedTask),
}

/// A task that reached a terminal phase, as the metrics count it.
#[derive(Clone, Debug, PartialEq)]
pub struct FinishedTask {
    /// The pool of its last attempt; empty when it never ran.
    pub pool: String,
    pub task_type: String,
    pub tenant: String,
    pub phase: TaskPhase,
    /// The reason of the terminal condition (tells a cancellation from a failure).
    pub reason: String,
    pub outcome: TaskOutcome,
    /// From its runner's start to its end; None when it never started.
    pub execution_seconds: Option<f64>,
    /// From its creation to its end.
    pub end_to_end_seconds: f64,
    /// Seconds of media, best known (the runner's probe, else the request).
    pub media_seconds: Option<f64>,
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
    /// Age of the oldest task in its queue; 0 when none waits.
    pub oldest_queued_seconds: f64,
    /// Its Ready condition: it admits tasks.
    pub ready: bool,
    /// `spec.suspend`.
    pub suspended: bool,
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
    /// Tasks still waiting after the pass, by (the pool whose queue holds them, empty when
    /// none does; the reason of their Queued condition).
    pub pending: BTreeMap<(String, String), u32>,
}
