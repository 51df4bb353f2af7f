//! Esup-Pod's runner-manager wire format: the JSON bodies our webhook receives and answers,
//! shaped exactly as esup-runner's manager 1.7.1 shapes them (see `esup-pod-protocol.md` §1),
//! so that Esup-Pod cannot tell the two apart. Pure data, no I/O.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use k8s_openapi::jiff::tz::TimeZone;
use schemars::JsonSchema;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::status::{NotificationState, NotificationStatus, TaskOutcome, TaskPhase, TaskStatus};

/// Body of `POST /task/execute` (the manager's `TaskRequest`). Unknown fields are ignored, as
/// Pydantic ignores them, so a newer Esup-Pod sending more keys is still accepted.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct TaskRequest {
    /// "University name / Pod".
    pub etab_name: String,
    /// "Esup-Pod".
    pub app_name: String,
    /// Esup-Pod's `settings.VERSION`; may be null or absent.
    #[serde(default)]
    pub app_version: Option<String>,
    /// `encoding`, `studio` or `transcription`; kept a string so that a wrong value gets our
    /// own error message instead of a deserialisation error.
    pub task_type: String,
    /// The media (or studio mediapackage XML) to process.
    pub source_url: String,
    /// Stored, never sent by current Esup-Pod.
    #[serde(default)]
    pub affiliation: Option<String>,
    /// Task parameters: scalars, nested structures as JSON-encoded strings (§3).
    #[serde(default)]
    pub parameters: Map<String, Value>,
    /// Where to POST the end of the task; `""` means "do not notify" (Esup-Pod then polls).
    pub notify_url: String,
}

/// Answer of `POST /task/execute`. Esup-Pod needs HTTP 200 with exactly these two keys.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct ExecuteResponse {
    pub task_id: String,
    /// Always `running` for an accepted task, queued or not: a `pending` answer would make
    /// Esup-Pod resubmit the task on every cron run (§0.1 item 4).
    pub status: ManagerStatus,
}

/// FastAPI's error shape, `{"detail": "..."}`. Esup-Pod never parses it, people do.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct ErrorBody {
    pub detail: String,
}

impl ErrorBody {
    pub fn new(detail: impl Into<String>) -> Self {
        Self {
            detail: detail.into(),
        }
    }
}

/// A task's status as the manager reports it (`/task/status`, `/task/list`, dedup answers).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ManagerStatus {
    /// Accepted and not finished: queued, admitted or running. We never answer `pending`.
    Running,
    Completed,
    Failed,
    Timeout,
    /// Completed, but the notification to Esup-Pod has not been delivered yet. Esup-Pod's
    /// stall check treats it like `completed` and imports the result.
    Warning,
}

impl ManagerStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Timeout => "timeout",
            Self::Warning => "warning",
        }
    }

    /// Whether `/task/result` may serve the result (the manager serves `completed` and
    /// `warning`; it answers 400 for `failed` and 425 otherwise).
    pub const fn has_result(self) -> bool {
        matches!(self, Self::Completed | Self::Warning)
    }
}

impl TaskStatus {
    /// The reference manager's status string for this task ([`manager_status`]).
    pub fn manager_status(&self) -> ManagerStatus {
        manager_status(
            self.phase,
            self.notification.as_ref(),
            self.result_fetch_time.as_ref(),
        )
    }
}

impl std::fmt::Display for ManagerStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Maps our phase and notification state to the manager's status string.
///
/// `warning` follows the real manager (§1.7, §4.2): it marks a *completed* task whose notify
/// failed, while retries go on (`Retrying`) and after they are spent (`Exhausted`). A failed or
/// timed-out task keeps its status when its notify fails, as the manager keeps it. Every
/// non-terminal phase is `running`, so that a queued task never looks `pending` to Esup-Pod.
/// The manager also turns `warning` into `completed` when the result is fetched
/// (`mark_warning_as_completed`) while its retries go on, and a later failed retry makes it
/// `warning` again: a fetch at or after the last failed send reads `completed`.
pub fn manager_status(
    phase: TaskPhase,
    notification: Option<&NotificationStatus>,
    result_fetch_time: Option<&Time>,
) -> ManagerStatus {
    match phase {
        TaskPhase::Pending | TaskPhase::Queued | TaskPhase::Admitted | TaskPhase::Running => {
            ManagerStatus::Running
        }
        TaskPhase::Succeeded => match notification {
            Some(n)
                if matches!(
                    n.state,
                    NotificationState::Retrying | NotificationState::Exhausted
                ) =>
            {
                let fetched_since = result_fetch_time.is_some_and(|fetched| {
                    n.last_attempt_time
                        .as_ref()
                        .is_none_or(|sent| fetched.0 >= sent.0)
                });
                if fetched_since {
                    ManagerStatus::Completed
                } else {
                    ManagerStatus::Warning
                }
            }
            _ => ManagerStatus::Completed,
        },
        TaskPhase::Failed => ManagerStatus::Failed,
        TaskPhase::TimedOut => ManagerStatus::Timeout,
    }
}

/// The terminal statuses of the protocol: what runners report on completion and what the
/// notify callback carries (`completed|failed|timeout`; the manager answers 422 to others).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TerminalStatus {
    Completed,
    Failed,
    Timeout,
}

impl TerminalStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Timeout => "timeout",
        }
    }
}

impl From<TaskOutcome> for TerminalStatus {
    fn from(outcome: TaskOutcome) -> Self {
        match outcome {
            TaskOutcome::Completed => Self::Completed,
            TaskOutcome::Failed => Self::Failed,
            TaskOutcome::Timeout => Self::Timeout,
        }
    }
}

impl From<TerminalStatus> for TaskOutcome {
    fn from(status: TerminalStatus) -> Self {
        match status {
            TerminalStatus::Completed => Self::Completed,
            TerminalStatus::Failed => Self::Failed,
            TerminalStatus::Timeout => Self::Timeout,
        }
    }
}

impl From<TerminalStatus> for ManagerStatus {
    fn from(status: TerminalStatus) -> Self {
        match status {
            TerminalStatus::Completed => Self::Completed,
            TerminalStatus::Failed => Self::Failed,
            TerminalStatus::Timeout => Self::Timeout,
        }
    }
}

/// Body of `GET /task/status/{id}` and of each `/task/list` entry: the manager's `Task` model
/// minus `client_token` (the key is absent, not null), fields in the manager's order.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct ManagerTask {
    pub task_id: String,
    /// The manager's runner id; ours names where the task runs (empty while queued). A string,
    /// never null, because the manager's model declares it required.
    pub runner_id: String,
    pub status: ManagerStatus,
    pub etab_name: String,
    pub app_name: String,
    pub app_version: Option<String>,
    pub task_type: String,
    pub source_url: String,
    pub affiliation: Option<String>,
    pub parameters: Map<String, Value>,
    pub notify_url: String,
    pub completion_callback: Option<String>,
    pub run_id: Option<String>,
    /// Naive ISO timestamp, see [`manager_timestamp`].
    pub created_at: String,
    /// Naive ISO timestamp, see [`manager_timestamp`].
    pub updated_at: String,
    pub error: Option<String>,
    pub script_output: Option<String>,
}

/// Body of `GET /task/list`: task id → task.
pub type TaskList = BTreeMap<String, ManagerTask>;

/// Formats a time as the manager does (`datetime.now().isoformat()`), always with
/// microseconds: `2026-08-21T10:15:30.123456`.
///
/// The manager writes naive *local* time; we write naive UTC, since a cluster has no single
/// local zone. Esup-Pod never reads these timestamps.
pub fn manager_timestamp(time: Timestamp) -> String {
    let dt = TimeZone::UTC.to_datetime(time);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.subsec_nanosecond() / 1000
    )
}

/// Body of `GET /task/result/{id}`. Esup-Pod needs a non-empty `files` list.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct Manifest {
    /// The manager adds it when the runner's manifest lacks it.
    #[serde(default)]
    pub task_id: String,
    pub files: Vec<ManifestEntry>,
}

/// One result file of a manifest. We write `{"path": ..., "sha256": ...}` so that Esup-Pod
/// verifies each download; reading accepts every shape Esup-Pod accepts (a bare path string,
/// or an object with `file_path` or `path` and an optional `sha256`).
#[derive(Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct ManifestEntry {
    /// Relative to the task's result directory.
    pub path: String,
    /// Lowercase hex SHA-256 of the content.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl ManifestEntry {
    pub fn new(path: impl Into<String>, sha256: Option<String>) -> Self {
        Self {
            path: path.into(),
            sha256,
        }
    }

    /// Reads one entry the way Esup-Pod's `_parse_manifest_member_entry` does: `file_path`
    /// wins over `path`, a checksum is trimmed and lowercased, and an invalid or non-string
    /// checksum is dropped rather than failing the entry. `None`: Esup-Pod would skip it.
    pub fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::String(path) => Some(Self::new(path.clone(), None)),
            Value::Object(object) => {
                let non_empty = |key: &str| {
                    object
                        .get(key)
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                };
                let path = non_empty("file_path").or_else(|| non_empty("path"))?;
                let sha256 = object
                    .get("sha256")
                    .and_then(Value::as_str)
                    .map(|s| s.trim().to_ascii_lowercase())
                    .filter(|s| is_sha256_hex(s));
                Some(Self::new(path, sha256))
            }
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for ManifestEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Self::from_value(&value).ok_or_else(|| {
            de::Error::custom("manifest entry must be a path or an object with file_path or path")
        })
    }
}

/// Why a manifest is unusable to Esup-Pod ("Invalid manifest JSON": it retries the import later).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is not a JSON object")]
    NotAnObject,
    #[error("manifest files must be a non-empty list")]
    NoFiles,
}

/// Parses a manifest as leniently as Esup-Pod does: `files` must be a non-empty list; entries
/// of unsupported shape and unsafe paths (absolute, escaping with `..`) are skipped, not fatal.
/// The result may therefore list no file even though the manifest was accepted.
pub fn parse_manifest(value: &Value) -> Result<Manifest, ManifestError> {
    let object = value.as_object().ok_or(ManifestError::NotAnObject)?;
    let files = object
        .get("files")
        .and_then(Value::as_array)
        .filter(|files| !files.is_empty())
        .ok_or(ManifestError::NoFiles)?;
    let task_id = object
        .get("task_id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let files = files
        .iter()
        .filter_map(ManifestEntry::from_value)
        .filter(|entry| pod_considers_safe(&entry.path))
        .collect();
    Ok(Manifest { task_id, files })
}

/// Esup-Pod's `_is_safe_path`: `os.path.normpath` must not start with `..`, be absolute, or
/// name the destination directory itself.
fn pod_considers_safe(path: &str) -> bool {
    if path.is_empty() || path.starts_with('/') {
        return false;
    }
    let mut kept: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                if kept.pop().is_none() {
                    return false;
                }
            }
            other => kept.push(other),
        }
    }
    kept.first().is_some_and(|first| !first.starts_with(".."))
}

/// Whether `s` is a SHA-256 digest as Esup-Pod checks it: 64 lowercase hex digits.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Body of the notify callback `POST <notify_url>`. Serialize it with `serde_json::to_vec`
/// (compact, UTF-8 as the manager's `ensure_ascii=False`); `null`s are kept because Esup-Pod
/// reads the keys.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct NotifyBody {
    pub task_id: String,
    pub status: TerminalStatus,
    /// Null on success; Esup-Pod appends it to the task's log.
    pub error_message: Option<String>,
    pub script_output: Option<String>,
}

/// Body of `GET /manager/health` and `GET /api/health` (§1.6).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct HealthBody {
    /// `healthy`: what both Esup-Pod's admin and the reference runner check.
    pub status: String,
    /// See [`manager_timestamp`].
    pub timestamp: String,
    /// Runners known; for us, runner slots (pool concurrency) available to the caller.
    pub runners: u64,
    /// Tasks known.
    pub tasks: u64,
}

impl HealthBody {
    pub fn healthy(timestamp: String, runners: u64, tasks: u64) -> Self {
        Self {
            status: "healthy".to_owned(),
            timestamp,
            runners,
            tasks,
        }
    }
}

/// Body of `GET /api/version` (§1.8).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct VersionBody {
    pub version: String,
    pub version_info: VersionInfo,
    pub description: String,
    pub author: String,
    pub email: String,
    pub license: String,
}

/// `{"major","minor","patch"}` of [`VersionBody`].
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct VersionInfo {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
}

impl VersionInfo {
    /// Reads `MAJOR.MINOR.PATCH`, ignoring a pre-release or build suffix (`0.1.0-rc.1`).
    pub fn parse(version: &str) -> Option<Self> {
        let core = version.split(['-', '+']).next().unwrap_or_default().trim();
        let mut parts = core.split('.').map(str::parse::<u64>);
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(Ok(major)), Some(Ok(minor)), Some(Ok(patch)), None) => Some(Self {
                major,
                minor,
                patch,
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn task_request_reads_esup_pod_bodies_and_ignores_unknown_fields() {
        let request: TaskRequest = serde_json::from_value(json!({
            "etab_name": "Université X / Pod", "app_name": "Esup-Pod", "app_version": null,
            "task_type": "encoding", "source_url": "https://pod.example/media/a.mp4",
            "notify_url": "", "something_new": 1
        }))
        .expect("valid request");
        assert_eq!(request.app_version, None);
        assert_eq!(request.affiliation, None);
        assert!(request.parameters.is_empty());
        assert_eq!(request.notify_url, "");

        let missing_notify = serde_json::from_value::<TaskRequest>(json!({
            "etab_name": "X", "app_name": "Esup-Pod", "task_type": "encoding", "source_url": ""
        }));
        assert!(
            missing_notify.is_err(),
            "notify_url is required, as in the manager"
        );
    }

    #[test]
    fn status_strings_and_mapping() {
        use TaskPhase::*;
        for phase in [Pending, Queued, Admitted, Running] {
            assert_eq!(manager_status(phase, None, None), ManagerStatus::Running);
        }
        let notification = |state| NotificationStatus {
            state,
            outcome: TaskOutcome::Completed,
            attempts: 1,
            last_attempt_time: None,
            next_attempt_time: None,
            delivered_time: None,
            last_error: None,
        };
        let cases = [
            (Succeeded, None, ManagerStatus::Completed),
            (
                Succeeded,
                Some(NotificationState::Pending),
                ManagerStatus::Completed,
            ),
            (
                Succeeded,
                Some(NotificationState::Delivered),
                ManagerStatus::Completed,
            ),
            (
                Succeeded,
                Some(NotificationState::NotRequested),
                ManagerStatus::Completed,
            ),
            (
                Succeeded,
                Some(NotificationState::Retrying),
                ManagerStatus::Warning,
            ),
            (
                Succeeded,
                Some(NotificationState::Exhausted),
                ManagerStatus::Warning,
            ),
            (
                Failed,
                Some(NotificationState::Retrying),
                ManagerStatus::Failed,
            ),
            (
                TimedOut,
                Some(NotificationState::Exhausted),
                ManagerStatus::Timeout,
            ),
        ];
        for (phase, state, expected) in cases {
            let n = state.map(notification);
            assert_eq!(
                manager_status(phase, n.as_ref(), None),
                expected,
                "{phase:?} {state:?}"
            );
        }
        // A result fetched at or after the last failed send reads `completed`; a send that
        // fails after the fetch reads `warning` again; a failed task stays failed.
        let at = |s: i64| Time(Timestamp::from_second(1_800_000_000 + s).expect("time"));
        let failed_send = NotificationStatus {
            last_attempt_time: Some(at(10)),
            ..notification(NotificationState::Retrying)
        };
        for (fetched, expected) in [
            (None, ManagerStatus::Warning),
            (Some(at(9)), ManagerStatus::Warning),
            (Some(at(10)), ManagerStatus::Completed),
            (Some(at(60)), ManagerStatus::Completed),
        ] {
            assert_eq!(
                manager_status(Succeeded, Some(&failed_send), fetched.as_ref()),
                expected,
                "{fetched:?}"
            );
        }
        let exhausted = NotificationStatus {
            last_attempt_time: Some(at(10)),
            ..notification(NotificationState::Exhausted)
        };
        assert_eq!(
            manager_status(Succeeded, Some(&exhausted), Some(&at(11))),
            ManagerStatus::Completed
        );
        assert_eq!(
            manager_status(Failed, Some(&failed_send), Some(&at(11))),
            ManagerStatus::Failed
        );
        assert_eq!(
            TaskStatus::default().manager_status(),
            ManagerStatus::Running
        );
        assert_eq!(
            serde_json::to_value(ManagerStatus::Warning).expect("ser"),
            json!("warning")
        );
        for s in [
            ManagerStatus::Running,
            ManagerStatus::Completed,
            ManagerStatus::Failed,
            ManagerStatus::Timeout,
            ManagerStatus::Warning,
        ] {
            assert_eq!(serde_json::to_value(s).expect("ser"), json!(s.as_str()));
        }
        assert!(ManagerStatus::Warning.has_result() && !ManagerStatus::Timeout.has_result());
    }

    #[test]
    fn execute_response_and_error_body_shapes() {
        let body = ExecuteResponse {
            task_id: "t-1".into(),
            status: ManagerStatus::Running,
        };
        assert_eq!(
            serde_json::to_string(&body).expect("ser"),
            r#"{"task_id":"t-1","status":"running"}"#
        );
        assert_eq!(
            serde_json::to_string(&ErrorBody::new("No runners available")).expect("ser"),
            r#"{"detail":"No runners available"}"#
        );
    }

    #[test]
    fn manager_task_has_every_key_but_client_token() {
        let task = ManagerTask {
            task_id: "t".into(),
            runner_id: String::new(),
            status: ManagerStatus::Completed,
            etab_name: "X".into(),
            app_name: "Esup-Pod".into(),
            app_version: Some("4.2.0".into()),
            task_type: "encoding".into(),
            source_url: "https://pod.example/a.mp4".into(),
            affiliation: None,
            parameters: Map::new(),
            notify_url: String::new(),
            completion_callback: None,
            run_id: None,
            created_at: "2026-08-21T10:15:30.123456".into(),
            updated_at: "2026-08-21T10:15:30.123456".into(),
            error: None,
            script_output: None,
        };
        let value = serde_json::to_value(&task).expect("ser");
        let keys: Vec<&str> = value
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected = vec![
            "task_id",
            "runner_id",
            "status",
            "etab_name",
            "app_name",
            "app_version",
            "task_type",
            "source_url",
            "affiliation",
            "parameters",
            "notify_url",
            "completion_callback",
            "run_id",
            "created_at",
            "updated_at",
            "error",
            "script_output",
        ];
        expected.sort_unstable();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(keys, expected);
        assert!(value["affiliation"].is_null() && value["error"].is_null());
        let back: ManagerTask = serde_json::from_value(value).expect("round trip");
        assert_eq!(back, task);
    }

    #[test]
    fn manager_timestamps_are_naive_iso_with_microseconds() {
        let t: Timestamp = "2026-08-21T10:15:30.123456789Z".parse().expect("ts");
        assert_eq!(manager_timestamp(t), "2026-08-21T10:15:30.123456");
        let t: Timestamp = "2026-01-02T03:04:05Z".parse().expect("ts");
        assert_eq!(manager_timestamp(t), "2026-01-02T03:04:05.000000");
    }

    #[test]
    fn manifest_is_written_with_checksums_and_read_like_esup_pod() {
        let sha = "a".repeat(64);
        let manifest = Manifest {
            task_id: "t".into(),
            files: vec![ManifestEntry::new("info_video.json", Some(sha.clone()))],
        };
        assert_eq!(
            serde_json::to_value(&manifest).expect("ser"),
            json!({"task_id": "t", "files": [{"path": "info_video.json", "sha256": sha}]})
        );

        let upper = "A".repeat(64);
        let parsed = parse_manifest(&json!({"files": [
            "encoding.log",
            {"file_path": "a.vtt", "path": "ignored.vtt", "sha256": format!(" {upper} ")},
            {"file_path": "", "path": "b.json", "sha256": "not-a-checksum"},
            {"path": "c.png", "sha256": 12},
            {"sha256": sha},
            42,
            "/etc/passwd",
            "../escape.mp4",
            "a/../../escape.mp4",
            "..hidden",
            "dir/../kept.mp4",
        ]}))
        .expect("accepted");
        assert_eq!(parsed.task_id, "");
        assert_eq!(
            parsed.files,
            vec![
                ManifestEntry::new("encoding.log", None),
                ManifestEntry::new("a.vtt", Some("a".repeat(64))),
                ManifestEntry::new("b.json", None),
                ManifestEntry::new("c.png", None),
                ManifestEntry::new("dir/../kept.mp4", None),
            ]
        );
        assert_eq!(
            parse_manifest(&json!({"files": []})),
            Err(ManifestError::NoFiles)
        );
        assert_eq!(
            parse_manifest(&json!({"task_id": "t"})),
            Err(ManifestError::NoFiles)
        );
        assert_eq!(parse_manifest(&json!([])), Err(ManifestError::NotAnObject));

        let typed: Manifest =
            serde_json::from_value(json!({"task_id": "t", "files": ["x.mp4", {"path": "y.ts"}]}))
                .expect("typed read");
        assert_eq!(typed.files[1], ManifestEntry::new("y.ts", None));
    }

    #[test]
    fn notify_body_is_compact_utf8_and_keeps_nulls() {
        let body = NotifyBody {
            task_id: "2f53".into(),
            status: TaskOutcome::Completed.into(),
            error_message: None,
            script_output: Some("[info_script.log]\nété".into()),
        };
        assert_eq!(
            String::from_utf8(serde_json::to_vec(&body).expect("ser")).expect("utf8"),
            "{\"task_id\":\"2f53\",\"status\":\"completed\",\"error_message\":null,\"script_output\":\"[info_script.log]\\nété\"}"
        );
    }

    #[test]
    fn health_and_version_bodies() {
        assert_eq!(
            serde_json::to_value(HealthBody::healthy(
                "2026-08-21T10:00:00.000000".into(),
                2,
                57
            ))
            .expect("ser"),
            json!({"status": "healthy", "timestamp": "2026-08-21T10:00:00.000000", "runners": 2, "tasks": 57})
        );
        assert_eq!(
            VersionInfo::parse("1.7.1"),
            Some(VersionInfo {
                major: 1,
                minor: 7,
                patch: 1
            })
        );
        assert_eq!(VersionInfo::parse("0.1.0-rc.1").map(|v| v.patch), Some(0));
        assert_eq!(VersionInfo::parse("1.7"), None);
        assert_eq!(VersionInfo::parse("1.7.1.2"), None);
    }

    #[test]
    fn terminal_status_converts_both_ways() {
        for outcome in [
            TaskOutcome::Completed,
            TaskOutcome::Failed,
            TaskOutcome::Timeout,
        ] {
            let status = TerminalStatus::from(outcome);
            assert_eq!(status.as_str(), outcome.protocol_name());
            assert_eq!(TaskOutcome::from(status), outcome);
            assert_eq!(ManagerStatus::from(status).as_str(), status.as_str());
        }
        assert!(serde_json::from_value::<TerminalStatus>(json!("warning")).is_err());
    }
}
