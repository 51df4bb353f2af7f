//! Status of both task kinds. Written only by the operator (scheduling, attempts) and the
//! webhook (result, notification), each with its own server-side-apply field manager.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a task stands. Terminal phases: Succeeded, Failed, TimedOut.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum TaskPhase {
    /// Created, not yet seen by the operator.
    #[default]
    Pending,
    /// Waiting in a pool's queue (see `queue` and the Queued condition's reason).
    Queued,
    /// A pool admitted it; its Job is starting.
    Admitted,
    /// The runner works on it.
    Running,
    /// Every output was delivered.
    Succeeded,
    /// Ended without outputs; `result.errorMessage` says why.
    Failed,
    /// Waited or ran longer than allowed.
    TimedOut,
}

impl TaskPhase {
    pub const fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::TimedOut)
    }

    /// What Esup-Pod is told of a task that ended in this phase; `None` before the end.
    pub const fn outcome(self) -> Option<TaskOutcome> {
        match self {
            Self::Succeeded => Some(TaskOutcome::Completed),
            Self::Failed => Some(TaskOutcome::Failed),
            Self::TimedOut => Some(TaskOutcome::Timeout),
            Self::Pending | Self::Queued | Self::Admitted | Self::Running => None,
        }
    }
}

/// Observed state of an EncodingTask or TranscriptionTask.
//
// Several writers share it through server-side apply, each part under its own field
// manager, so that no writer's apply removes another's fields (an apply drops the fields
// its manager set before and leaves out now):
//
// | Fields | Field manager | Writer |
// |---|---|---|
// | everything not below: phase, conditions except `Notified`, pools, Job and node, attempts and launches, queue, times | `esup-operator` | the operator's scheduler |
// | `progress` | `esup-webhook-progress` | the webhook, from the runner's progress reports |
// | `result` | `esup-webhook-result` | the webhook, from the runner's completion (conditional on the resourceVersion read) |
// | `resultFetchTime` | `esup-webhook-fetch` | the webhook, when Esup-Pod fetches a `warning` task's result |
// | `notification`, the `Notified` condition | `esup-webhook-notifier` | the notifier (leader replica) |
//
// The operator reads `result` to end an attempt, and never writes it; the webhook never
// writes the phase.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskStatus {
    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Where the task stands.
    #[serde(default)]
    pub phase: TaskPhase,
    /// Queued, Admitted, Running, Succeeded, Failed, TimedOut, Notified; reasons in
    /// `esup_api::conditions::reason`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The pool the task chose first (its home). A task running elsewhere overflowed and is
    /// the first to be preempted when that pool's own tasks need the slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home_pool: Option<String>,
    /// The pool that admitted the current or last attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// Name of the Job of the current or last attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    /// Node of the current or last attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// Attempts charged so far (evictions and preemptions are not charged).
    #[serde(default)]
    pub attempts: u32,
    /// Evictions and node losses retried without charge so far. Past a small allowance they
    /// are charged, so that a media file that makes its nodes run out of memory or disk cannot
    /// loop for ever.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub free_disruptions: u32,
    /// Jobs launched so far, charged or not. The n-th Job of a task is named after n, so a
    /// restarted operator recreates a missing Job under the same name instead of a second one.
    #[serde(default)]
    pub launches: u32,
    /// The latest attempts, oldest first (at most 10 kept).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub attempt_history: Vec<AttemptRecord>,
    /// Place in the queue while Queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueStatus>,
    /// When the task first entered a queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_time: Option<Time>,
    /// When the current attempt was admitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admitted_time: Option<Time>,
    /// When the runner of the current attempt started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the task reached a terminal phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// When a failed attempt will be retried (phase stays Queued until then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_retry_time: Option<Time>,
    /// Latest progress reported by the runner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    /// What the runner reported at completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<TaskResult>,
    /// Delivery of the notification to Esup-Pod's `notify_url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification: Option<NotificationStatus>,
    /// When the result (manifest or a file) was last fetched while the task showed
    /// `warning`: like the reference manager, the task then shows `completed`, until a later
    /// notify attempt fails again. Written by the webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_fetch_time: Option<Time>,
}

/// Where a queued task stands.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueStatus {
    /// 1-based position in the queue of `pool`.
    pub position_in_pool: u32,
    /// 1-based position among all queued tasks of the cluster, in admission order.
    pub position_overall: u32,
    /// The pool whose queue this is.
    pub pool: String,
    /// Estimated start, from the work ahead (media durations) and the pool's measured throughput.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_start_time: Option<Time>,
}

/// One attempt at running the task.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptRecord {
    /// Pool that ran it.
    pub pool: String,
    /// Its Job.
    pub job_name: String,
    /// Node it ran on, once scheduled. Retries avoid the nodes of failed attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// When it was admitted.
    pub start_time: Time,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_time: Option<Time>,
    /// Why it ended (a reason of `esup_api::conditions::reason`, e.g. OOMKilled, Evicted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Details for humans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub message: Option<String>,
    /// Whether it counted against `retry.maxAttempts`.
    #[serde(default)]
    pub charged: bool,
}

/// Progress reported by the runner.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// Stage of the work: download, probe, encode, transcribe, upload...
    #[schemars(length(max = 64))]
    pub stage: String,
    /// Share of the work done, 0 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 100.0))]
    pub percent: Option<f64>,
    /// Duration of the media in seconds, once probed; used for ETAs and pool throughput.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub media_duration_seconds: Option<f64>,
    /// When the runner last reported.
    pub update_time: Time,
}

/// The outcome Esup-Pod is told (`completed`, `failed`, `timeout` in its protocol).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum TaskOutcome {
    Completed,
    Failed,
    Timeout,
}

impl TaskOutcome {
    /// The `status` string of the Esup-Pod protocol.
    pub const fn protocol_name(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Timeout => "timeout",
        }
    }
}

/// What the runner delivered.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskResult {
    /// Outcome told to Esup-Pod.
    pub outcome: TaskOutcome,
    /// Why the task failed; unset on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub error_message: Option<String>,
    /// The result files, in manifest order, relative to the task's result directory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["path".into()]))]
    pub files: Vec<ResultFile>,
    /// Which hardware did the work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware: Option<HardwareReport>,
    /// Launch (1-based, `launches` when it ran) whose runner reported this result: the files
    /// served are that launch's. Unset on results recorded before per-launch storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch: Option<u32>,
    /// Legacy: the end of the runner's output, inline. No longer written: results keep it in
    /// the result store (`scriptOutputRef`) so that retained tasks stay small in etcd and in
    /// every watch cache; still read from results recorded before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 65536))]
    pub script_output: Option<String>,
    /// Where the end of the runner's output (Esup-Pod's `script_output`, at most 64 KiB, sent
    /// with the notification and shown in Esup-Pod's task log) is kept in the result store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script_output_ref: Option<ScriptOutputRef>,
    /// When the runner reported the result.
    pub report_time: Time,
}

impl TaskResult {
    /// The launch whose runner output the result store keeps (`scriptOutputRef` set): the
    /// webhook reads it there for `/task/status` and the notification.
    pub fn stored_script_output_launch(&self) -> Option<u32> {
        self.script_output_ref.as_ref().and(self.launch)
    }
}

impl TaskStatus {
    /// The condition of this type, if set.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    /// Whether the condition of this type is set and True.
    pub fn is_true(&self, type_: &str) -> bool {
        self.condition(type_).is_some_and(|c| c.status == "True")
    }

    /// Why a failed or timed-out task ended, as Esup-Pod is told (the notify body's
    /// `error_message`, `/task/status`'s `error`, `/task/result`'s `Task failed: …`): the
    /// runner's own message, else the terminal condition's, else a generic one. `None` for
    /// any other phase.
    pub fn error_message(&self) -> Option<String> {
        use crate::conditions::task as cond;
        let terminal = match self.phase {
            TaskPhase::Failed => cond::FAILED,
            TaskPhase::TimedOut => cond::TIMED_OUT,
            _ => return None,
        };
        let non_empty = |s: &str| Some(s.trim()).filter(|s| !s.is_empty()).map(str::to_owned);
        let reported = self
            .result
            .as_ref()
            .and_then(|r| r.error_message.as_deref())
            .and_then(non_empty);
        let from_condition = || {
            self.condition(terminal)
                .filter(|c| c.status == "True")
                .and_then(|c| non_empty(&c.message))
        };
        Some(reported.or_else(from_condition).unwrap_or_else(|| {
            match self.phase {
                TaskPhase::TimedOut => "Task timed out.",
                _ => "Task failed.",
            }
            .to_owned()
        }))
    }

    /// Drops the runner output that results recorded before it moved to the result store
    /// hold inline (up to 64 KiB each), for caches that keep a task its whole retention.
    pub fn drop_inline_script_output(&mut self) {
        if let Some(result) = self.result.as_mut() {
            result.script_output = None;
        }
    }
}

/// The runner's output, kept in the result store beside the launch's files.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScriptOutputRef {
    /// Key in the result store, relative to its root or prefix, e.g. `<uid>/2/script_output`.
    #[schemars(length(min = 1, max = 256))]
    pub key: String,
    /// Size in bytes (UTF-8).
    pub size_bytes: u64,
}

/// One result file.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResultFile {
    /// Path relative to the task's result directory, e.g. "720p_my_lecture.m3u8".
    #[schemars(length(min = 1, max = 1024))]
    pub path: String,
    /// SHA-256 of the content, lowercase hex; Esup-Pod verifies it after download.
    #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
    pub sha256: String,
    /// Size in bytes.
    pub size_bytes: u64,
}

/// Which hardware did what, as the runner found it (NVML) and used it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HardwareReport {
    /// GPU model found by NVML, e.g. "NVIDIA L4"; unset when no GPU was usable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub gpu: Option<String>,
    /// Decoder used, e.g. "nvdec" or "cpu".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub decode: Option<String>,
    /// Encoder used, e.g. "h264_nvenc" or "libx264".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub encode: Option<String>,
    /// Inference device of transcription, e.g. "cuda" or "cpu".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub inference: Option<String>,
}

/// State of the notification to Esup-Pod.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum NotificationState {
    /// The task ended; the notification is about to be sent.
    Pending,
    /// A send failed; another is scheduled at `nextAttemptTime` (Esup-Pod's `warning`).
    Retrying,
    /// Esup-Pod answered 2xx, or the read timed out while it imported (counted as delivered,
    /// so that its import is not run twice).
    Delivered,
    /// Every retry failed; Esup-Pod's cron can still poll `/task/status`.
    Exhausted,
    /// The task has no notify URL.
    NotRequested,
}

/// Delivery of the terminal-state notification. Kept in the status so that a restarted
/// webhook neither loses nor repeats a notification.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationStatus {
    /// Where delivery stands.
    pub state: NotificationState,
    /// The outcome being notified.
    pub outcome: TaskOutcome,
    /// Sends made so far.
    #[serde(default)]
    pub attempts: u32,
    /// When the last send was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_time: Option<Time>,
    /// When the next send is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_time: Option<Time>,
    /// When Esup-Pod acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_time: Option<Time>,
    /// Why the last send failed, e.g. "503 Service Unavailable".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub last_error: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}
