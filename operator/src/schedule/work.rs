//! A task's working state during one pass, and the small facts about a status that every
//! step reads. Pure.

use std::time::Duration;

use esup_api::{TaskPhase, TaskStatus};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::values::{Action, Note, Observation};
use crate::model::{Pool, Task};
use crate::status::enter_phase;

/// Per-task working state during one pass.
pub(super) struct Work<'a> {
    pub(super) task: &'a Task,
    pub(super) status: TaskStatus,
    pub(super) action: Action,
    pub(super) note: Option<Note>,
    pub(super) observations: Vec<Observation>,
    /// Waiting and allowed to be admitted now.
    pub(super) admissible: bool,
    /// Its namespace lacks the runner NetworkPolicy that launching requires.
    pub(super) unpoliced: bool,
    /// Pools that may run it, home first; empty unless it was admissible after step 1.
    pub(super) candidates: Vec<&'a Pool>,
    /// How many of `candidates` (from the first) it has waited long enough to overflow to.
    pub(super) reachable: usize,
    /// Admitted in this pass.
    pub(super) admitted: bool,
    /// Its tenant's cap held it back from a pool with a free slot or not.
    pub(super) capped: bool,
}

impl<'a> Work<'a> {
    pub(super) fn new(task: &'a Task) -> Self {
        Self {
            task,
            status: task.status.clone(),
            action: Action::None,
            note: None,
            observations: Vec::new(),
            admissible: false,
            unpoliced: false,
            candidates: Vec::new(),
            reachable: 0,
            admitted: false,
            capped: false,
        }
    }

    /// Back to (or still in) the queue, saying why.
    pub(super) fn enter_queued(&mut self, why: &str, message: &str, now: Timestamp) {
        let generation = self.task.generation;
        enter_phase(
            &mut self.status,
            TaskPhase::Queued,
            why,
            message,
            now,
            generation,
        );
    }

    /// Whether the task waits for `pool` in this pass: admissible, and the pool is within
    /// the candidates it may reach by now.
    pub(super) fn waits_for(&self, pool: &str) -> bool {
        self.admissible
            && self.candidates[..self.reachable]
                .iter()
                .any(|p| p.name == pool)
    }
}

pub(super) fn secs(d: &kube::core::Duration) -> f64 {
    Duration::from(*d).as_secs_f64()
}

pub(super) fn time_after(t: Timestamp, seconds: f64) -> Timestamp {
    t.checked_add(SignedDuration::from_secs_f64(seconds.clamp(0.0, 1e10)))
        .unwrap_or(t)
}

pub(super) fn home_pool(status: &TaskStatus) -> Option<&str> {
    status.home_pool.as_deref()
}

pub(super) fn holds_slot(status: &TaskStatus) -> bool {
    matches!(status.phase, TaskPhase::Admitted | TaskPhase::Running)
}
