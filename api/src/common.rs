//! Fields shared by both task kinds: who asked, whom to notify, and how to schedule.

use kube::KubeSchema;
use kube::core::Duration;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The kind of work, as Esup-Pod names it in `task_type` (`encoding`, `studio`, `transcription`).
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
pub enum TaskType {
    /// Esup-Pod `encoding`: HLS and MP4 renditions, MP3, thumbnails, overview.
    Encoding,
    /// Esup-Pod `studio`: mix an Opencast Studio recording, then encode it.
    Studio,
    /// Esup-Pod `transcription`: Whisper subtitles (WebVTT).
    Transcription,
}

impl TaskType {
    /// The `task_type` string of the Esup-Pod protocol.
    pub const fn protocol_name(self) -> &'static str {
        match self {
            Self::Encoding => "encoding",
            Self::Studio => "studio",
            Self::Transcription => "transcription",
        }
    }

    /// Whether a GPU must have an NVENC engine to run this type on the GPU.
    pub const fn needs_nvenc(self) -> bool {
        matches!(self, Self::Encoding | Self::Studio)
    }
}

/// Esup-Pod's queue priorities (`task_queue.py`): its absolute-priority users, everyone else,
/// students. Higher priority is admitted first within a pool.
#[derive(
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    JsonSchema,
)]
pub enum TaskPriority {
    /// Esup-Pod `HIGH_PRIORITY` (0): users in its PriorityUser table.
    High,
    /// Esup-Pod `NORMAL_PRIORITY` (1).
    #[default]
    Normal,
    /// Esup-Pod `LOW_PRIORITY` (2): owners whose affiliation is `student`.
    Low,
}

/// Who submitted the task.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Requester {
    /// The tenant (institution) whose token submitted the task. Quotas, fair share and
    /// retention are per tenant; a tenant's token only sees its own tasks.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub tenant: String,
    /// Esup-Pod's `etab_name`, e.g. "Université X / Pod".
    #[schemars(length(max = 512))]
    pub etab_name: String,
    /// Esup-Pod's `app_name`, e.g. "Esup-Pod".
    #[schemars(length(max = 128))]
    pub app_name: String,
    /// Esup-Pod's `app_version`, e.g. "4.2.0".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub app_version: Option<String>,
    /// Esup-Pod's optional `affiliation` (current Esup-Pod does not send it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub affiliation: Option<String>,
}

/// A key of a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253), regex(pattern = crate::NAME_PATTERN))]
    pub name: String,
    /// Key within the Secret's data.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
    /// Namespace of the Secret; unset: the webhook's tenant-Secret namespace. The notifier
    /// only uses a tenant Secret of that namespace labelled with the task's
    /// `spec.requester.tenant`, under a `token` or `token-*` key; any other reference ends the
    /// notification unsent (`NotifyTokenRefused`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub namespace: Option<String>,
}

/// Where and how Esup-Pod wants to hear that the task ended.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotifySpec {
    /// Esup-Pod's `notify_url` (`https://<site>/runner/notify_task_end/`), POSTed for every
    /// terminal state: completed, failed and timeout.
    #[schemars(length(max = 2048), regex(pattern = crate::HTTP_URL_PATTERN))]
    pub url: String,
    /// The Secret key holding the token the task was submitted with. Esup-Pod only accepts a
    /// notify that carries that token as its bearer, and the token never appears in the task.
    pub token_secret_ref: SecretKeyRef,
}

/// Identification of the Esup-Pod video, carried into `info_video.json` and shown to users.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct VideoMetadata {
    /// Esup-Pod's `video_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub id: Option<i64>,
    /// Esup-Pod's `video_slug`, e.g. "1234-my-lecture".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub slug: Option<String>,
    /// Esup-Pod's `video_title`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub title: Option<String>,
}

/// How long a task may wait and run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Timeouts {
    /// Longest time in the queue before the task ends as `TimedOut` (reason
    /// `QueueWaitExceeded`), and Esup-Pod is notified `timeout`. Overflow to other pools happens
    /// earlier, after each pool's `overflowAfter`. Default 24h, as the reference manager's watchdog.
    #[schemars(regex(pattern = crate::DURATION_PATTERN))]
    pub queue_wait: Duration,
    /// Longest run of one attempt: the Job's `activeDeadlineSeconds`. Default 5h, the reference
    /// runner's script timeout.
    #[schemars(regex(pattern = crate::DURATION_PATTERN))]
    pub execution: Duration,
    /// Longest time a running attempt may go without reporting progress before it is
    /// considered stuck and ended (reason `NoProgress`). Default 15m.
    #[schemars(regex(pattern = crate::DURATION_PATTERN))]
    pub progress: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            queue_wait: hours(24),
            execution: hours(5),
            progress: minutes(15),
        }
    }
}

/// How failed attempts are retried. The operator owns retries (Jobs run with
/// `backoffLimit: 0`) so that it can classify failures and avoid the node that failed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("duration(self.maxBackoff) >= duration(self.initialBackoff)").message("maxBackoff must not be shorter than initialBackoff"))]
pub struct RetryPolicy {
    /// Attempts charged to the task, the first one included. Invalid input is never retried;
    /// evictions and preemptions are retried without being charged. Default 3.
    #[schemars(range(min = 1, max = 10))]
    pub max_attempts: u32,
    /// Wait before the second attempt; it doubles with each further attempt. Default 30s.
    #[schemars(regex(pattern = crate::DURATION_PATTERN))]
    pub initial_backoff: Duration,
    /// Longest wait between two attempts. Default 10m.
    #[schemars(regex(pattern = crate::DURATION_PATTERN))]
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff: seconds(30),
            max_backoff: minutes(10),
        }
    }
}

/// The part of a task that does not depend on its kind: who asked, whom to tell, and the
/// scheduling policy. Flattened into each task's spec.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskCommon {
    /// Who submitted the task.
    pub requester: Requester,
    /// Where to notify Esup-Pod when the task ends; unset when Esup-Pod sent an empty
    /// `notify_url` (it then polls `/task/status`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<NotifySpec>,
    /// The Esup-Pod video this task belongs to.
    #[serde(default)]
    pub video: VideoMetadata,
    /// Queue priority within a pool. Default Normal.
    #[serde(default)]
    pub priority: TaskPriority,
    /// Restricts the task to these RunnerPools, in order of preference. Empty: any pool that
    /// runs this task type for this tenant, in pool priority order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(merge_strategy = kube::core::ListMerge::Set)]
    pub pools: Vec<String>,
    /// Queue, execution and progress timeouts.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// Retry policy for failed attempts.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// How long the finished task and its result files are kept. Unset: the tenant's
    /// retention (default 1440h, 60 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = crate::DURATION_PATTERN))]
    pub retention: Option<Duration>,
}

/// An http(s) location of media to process.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MediaSource {
    /// Esup-Pod's `source_url`. Downloaded by the runner under the URL policy (no private or
    /// link-local targets unless allowed), size-bounded and retried.
    #[schemars(length(max = 4096), regex(pattern = crate::HTTP_URL_PATTERN))]
    pub url: String,
}

pub(crate) fn seconds(s: u64) -> Duration {
    Duration::from(std::time::Duration::from_secs(s))
}

pub(crate) fn minutes(m: u64) -> Duration {
    seconds(m * 60)
}

pub(crate) fn hours(h: u64) -> Duration {
    seconds(h * 3600)
}
