//! The contract between the operator and the runner container it launches: exit codes and
//! environment variables. The runner (runner-image/) and the operator's failure
//! classification both use these names, so they cannot drift apart.

/// Exit codes of the runner, after `sysexits.h`. The operator classifies a finished pod by
/// them: invalid input is never retried, everything else follows the task's retry policy.
pub mod exit_code {
    /// Every output was delivered and the completion acknowledged.
    pub const SUCCESS: i32 = 0;
    /// Bad command line or parameters (EX_USAGE): retrying cannot help.
    pub const USAGE: i32 = 64;
    /// The media or the request is unusable (EX_DATAERR): not a media file, truncated, no
    /// usable stream, unsupported codec, too large. Never retried.
    pub const INVALID_INPUT: i32 = 65;
    /// A failure that may pass (EX_TEMPFAIL): source or webhook unreachable, disk full.
    pub const TRANSIENT: i32 = 75;

    /// Whether the runner declared the input itself at fault.
    pub const fn is_invalid_input(code: i32) -> bool {
        code == USAGE || code == INVALID_INPUT
    }
}

/// Key of the token in a launch's callback Secret
/// ([`crate::task::TaskIdentity::callback_secret_name`]).
pub const CALLBACK_TOKEN_KEY: &str = "token";

/// Environment variables the operator sets on every runner container.
pub mod env {
    /// `EncodingTask` or `TranscriptionTask`.
    pub const TASK_KIND: &str = "ESUP_TASK_KIND";
    pub const TASK_NAMESPACE: &str = "ESUP_TASK_NAMESPACE";
    pub const TASK_NAME: &str = "ESUP_TASK_NAME";
    pub const TASK_UID: &str = "ESUP_TASK_UID";
    /// 1-based number of this Job among the task's Jobs.
    pub const LAUNCH: &str = "ESUP_LAUNCH";
    /// The RunnerPool that admitted this attempt.
    pub const POOL: &str = "ESUP_POOL";
    /// Base URL of the task's runner callbacks on the webhook (completion, progress, upload).
    pub const CALLBACK_URL: &str = "ESUP_CALLBACK_URL";
    /// Bearer token of those callbacks: a per-launch secret, `<launch>.<random hex>`.
    pub const CALLBACK_TOKEN: &str = "ESUP_CALLBACK_TOKEN";
}

/// A task's base path under the webhook, OpenAPI-style; each callback appends one segment.
macro_rules! task_base_template {
    () => {
        "/runner/v1/{plural}/{namespace}/{name}"
    };
}

/// The runner callbacks' routes on the webhook, as OpenAPI path templates: the one spelling
/// that the webhook serves ([`Route::template`] there) and [`TaskCallbacks`] fills in for
/// the operator, which gives each runner its task's base, and for the runner, which appends
/// the endpoints.
pub mod callback_path {
    /// A task's base: `{plural}` is the kind's plural, `{namespace}` and `{name}` the task's.
    pub const TASK_BASE: &str = task_base_template!();
    /// `POST`: a progress report.
    pub const PROGRESS: &str = concat!(task_base_template!(), "/progress");
    /// `POST`: the completion, with the manifest.
    pub const COMPLETION: &str = concat!(task_base_template!(), "/completion");
    /// `PUT`: one output file; `{path}` is the rest of the URL, slashes included.
    pub const FILES: &str = concat!(task_base_template!(), "/files/{path}");
}

/// The callback URLs of one task, from the base the operator hands its runner
/// (`ESUP_CALLBACK_URL`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskCallbacks {
    base: String,
}

impl TaskCallbacks {
    /// The task's base under the webhook's `webhook_base` (as runners reach it).
    pub fn new(
        webhook_base: &str,
        kind: crate::task::TaskKind,
        namespace: &str,
        name: &str,
    ) -> Self {
        // The values are DNS labels, so no placeholder can appear in what a replace inserts.
        let task_base = callback_path::TASK_BASE
            .replace("{plural}", kind.plural())
            .replace("{namespace}", namespace)
            .replace("{name}", name);
        Self {
            base: format!("{}{task_base}", webhook_base.trim_end_matches('/')),
        }
    }

    /// The base a runner was given.
    pub fn from_base(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn progress(&self) -> String {
        self.endpoint(callback_path::PROGRESS)
    }

    pub fn completion(&self) -> String {
        self.endpoint(callback_path::COMPLETION)
    }

    /// The task's base followed by what `template` adds to [`callback_path::TASK_BASE`].
    fn endpoint(&self, template: &str) -> String {
        let suffix = template
            .strip_prefix(callback_path::TASK_BASE)
            .unwrap_or(template);
        format!("{}{suffix}", self.base)
    }

    /// The upload URL of the output at `path` (relative, `/`-separated), each segment
    /// percent-encoded so that any UTF-8 name travels as is.
    pub fn file(&self, path: &str) -> String {
        let files = self.endpoint(callback_path::FILES);
        let files = files.strip_suffix("{path}").unwrap_or(&files);
        format!("{files}{}", encode_path(path))
    }
}

/// Percent-encodes each segment of a result path, keeping the separators.
pub fn encode_path(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            segment
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                        char::from(b).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The runner's command line, as the operator renders it and the runner parses it
/// (`esup-runner <subcommand> --source URL --spec JSON --out DIR --work DIR`). The runner's
/// tests parse [`RunnerArgs::to_args`] with its own parser, so the two cannot drift apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunnerArgs {
    pub task_type: crate::TaskType,
    pub source: String,
    /// The task's spec as JSON (`EncodingTaskSpec` or `TranscriptionTaskSpec`).
    pub spec_json: String,
    pub out: String,
    pub work: String,
}

impl RunnerArgs {
    /// The subcommand of a task type.
    pub const fn subcommand(task_type: crate::TaskType) -> &'static str {
        match task_type {
            crate::TaskType::Encoding => "encode",
            crate::TaskType::Studio => "studio",
            crate::TaskType::Transcription => "transcribe",
        }
    }

    /// The container's arguments.
    pub fn to_args(&self) -> Vec<String> {
        vec![
            Self::subcommand(self.task_type).to_owned(),
            "--source".to_owned(),
            self.source.clone(),
            "--spec".to_owned(),
            self.spec_json.clone(),
            "--out".to_owned(),
            self.out.clone(),
            "--work".to_owned(),
            self.work.clone(),
        ]
    }
}

/// A launch's callback token: `<launch>.<secret>`. The launch travels inside the bearer, so a
/// runner needs no other header to say which attempt it is, and cannot claim another launch
/// without that launch's secret (the webhook compares the whole token).
pub fn callback_token(launch: u32, secret: &str) -> String {
    format!("{launch}.{secret}")
}

/// The launch a callback token names; `None` for a token without one (or launch 0).
pub fn callback_token_launch(token: &str) -> Option<u32> {
    let (launch, secret) = token.split_once('.')?;
    let valid = !secret.is_empty()
        && !launch.is_empty()
        && launch.len() <= 10
        && launch.bytes().all(|b| b.is_ascii_digit())
        && !launch.starts_with('0');
    valid.then(|| launch.parse().ok()).flatten()
}

/// Why a runner callback is refused although its token is right.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Fenced {
    /// A later launch of the task exists: this runner is a leftover (a Job the operator gave
    /// up on, a node that came back after a partition).
    #[error("launch {launch} was superseded by launch {current}; its reports are refused")]
    Superseded { launch: u32, current: u32 },
    /// The task reached a terminal phase: its result is final.
    #[error("the task has ended ({phase:?}); its results are final")]
    Ended { phase: crate::status::TaskPhase },
}

impl Fenced {
    /// Stable label for metrics, logs and API errors.
    pub const fn category(self) -> &'static str {
        match self {
            Self::Superseded { .. } => "LaunchSuperseded",
            Self::Ended { .. } => "TaskEnded",
        }
    }
}

/// The fence of runner callbacks: whether launch `launch` may still report on a task whose
/// latest launch is `current_launch` (`status.launches`) and whose phase is `phase`. Only the
/// latest launch of a task that has not ended may write. A launch above `current_launch` is
/// let through: its token was checked against a Secret the operator creates just before the
/// Job, so a status (or a cache of it) that does not show that launch yet is only behind.
pub fn fence(
    launch: u32,
    current_launch: u32,
    phase: crate::status::TaskPhase,
) -> Result<(), Fenced> {
    if phase.is_terminal() {
        return Err(Fenced::Ended { phase });
    }
    if launch < current_launch {
        return Err(Fenced::Superseded {
            launch,
            current: current_launch,
        });
    }
    Ok(())
}

/// What the runner posts to the webhook when it is done: the end of the task as Esup-Pod will
/// be told it, and the result files it uploaded. Field names follow the Esup-Pod protocol
/// (`error_message`, `script_output`) so they pass through to the notify body unchanged.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
pub struct Completion {
    /// `completed`, `failed` or `timeout`.
    pub status: crate::wire::TerminalStatus,
    /// Why the task failed; null on success.
    #[serde(default)]
    pub error_message: Option<String>,
    /// The processing log, forwarded to Esup-Pod (it appends it to the task's log).
    #[serde(default)]
    pub script_output: Option<String>,
    /// The uploaded result files, in manifest order.
    #[serde(default)]
    pub files: Vec<ResultFileEntry>,
    /// Which hardware did the work.
    #[serde(default)]
    pub hardware: Option<crate::status::HardwareReport>,
}

/// One uploaded result file.
#[derive(
    serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema,
)]
pub struct ResultFileEntry {
    /// Relative to the task's result directory; must pass [`safe_result_path`].
    pub path: String,
    /// Lowercase hex SHA-256 of the content.
    pub sha256: String,
    pub size_bytes: u64,
}

impl ResultFileEntry {
    /// Checks the path and the checksum, before the entry is recorded or listed to Esup-Pod.
    pub fn validate(&self) -> Result<(), PathError> {
        safe_result_path(&self.path)?;
        if crate::wire::is_sha256_hex(&self.sha256) {
            Ok(())
        } else {
            Err(PathError::BadChecksum)
        }
    }
}

impl From<ResultFileEntry> for crate::status::ResultFile {
    fn from(entry: ResultFileEntry) -> Self {
        Self {
            path: entry.path,
            sha256: entry.sha256,
            size_bytes: entry.size_bytes,
        }
    }
}

/// What the runner posts while it works; it also serves as its heartbeat.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
pub struct ProgressReport {
    /// download, probe, encode, transcribe, upload...
    pub stage: String,
    /// Share of the work done, 0 to 100.
    #[serde(default)]
    pub percent: Option<f64>,
    /// Duration of the media, once probed.
    #[serde(default)]
    pub media_duration_seconds: Option<f64>,
}

impl ProgressReport {
    /// The status form of this report, brought within the CRD's bounds (stage cut to 64
    /// characters, percent clamped to 0..=100, non-finite or negative numbers dropped), so
    /// that a sloppy runner cannot make the status write fail.
    pub fn to_progress(
        &self,
        update_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
    ) -> crate::status::Progress {
        crate::status::Progress {
            stage: self.stage.chars().take(64).collect(),
            percent: self
                .percent
                .filter(|p| p.is_finite())
                .map(|p| p.clamp(0.0, 100.0)),
            media_duration_seconds: self
                .media_duration_seconds
                .filter(|d| d.is_finite() && *d >= 0.0),
            update_time,
        }
    }
}

/// Why a result path is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("result path is empty")]
    Empty,
    #[error("result path is longer than {MAX_RESULT_PATH_BYTES} bytes")]
    TooLong,
    #[error("result path must be relative")]
    Absolute,
    #[error("result path must use '/' as separator, not '\\'")]
    Backslash,
    #[error("result path must not contain control characters")]
    ControlCharacter,
    #[error("result path must not contain empty segments")]
    EmptySegment,
    #[error("result path must not contain '.' or '..' segments")]
    DotSegment,
    #[error("result path must not contain {0:?}: Esup-Pod puts paths in URLs unescaped")]
    UrlDelimiter(char),
    #[error("sha256 must be 64 lowercase hex digits")]
    BadChecksum,
}

/// Keys of `info_video.json` that Esup-Pod's import reads and fails without (protocol §3.1).
pub const INFO_VIDEO_REQUIRED_KEYS: [&str; 7] = [
    "duration",
    "has_stream_video",
    "has_stream_audio",
    "has_stream_thumbnail",
    "encode_video",
    "encode_audio",
    "encode_thumbnail",
];

/// Longest result path, in bytes (the CRD's bound on `result.files[].path`).
pub const MAX_RESULT_PATH_BYTES: usize = 1024;

/// Accepts a result file path only if it names a file inside the task's result directory and
/// survives Esup-Pod's download URL (`…/file/` + path, unescaped): relative, `/`-separated, no
/// empty, `.` or `..` segment, no control character, no `?`, `#` or `%` (which would end or
/// re-escape the URL path), at most 1024 bytes. Spaces, accents and parentheses are fine:
/// the reference runner's `[A-Za-z0-9._ -]` rule refused them and broke imports (protocol §6
/// gap 7).
pub fn safe_result_path(path: &str) -> Result<&str, PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if path.len() > MAX_RESULT_PATH_BYTES {
        return Err(PathError::TooLong);
    }
    if path.starts_with('/') {
        return Err(PathError::Absolute);
    }
    for c in path.chars() {
        match c {
            '\\' => return Err(PathError::Backslash),
            '?' | '#' | '%' => return Err(PathError::UrlDelimiter(c)),
            c if c.is_control() => return Err(PathError::ControlCharacter),
            _ => {}
        }
    }
    for segment in path.split('/') {
        match segment {
            "" => return Err(PathError::EmptySegment),
            "." | ".." => return Err(PathError::DotSegment),
            _ => {}
        }
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_urls_of_a_task() {
        let callbacks = TaskCallbacks::new(
            "http://esup-webhook.esup-system.svc:8080/",
            crate::task::TaskKind::Transcription,
            "pod-univ-x",
            "t-1",
        );
        let base =
            "http://esup-webhook.esup-system.svc:8080/runner/v1/transcriptiontasks/pod-univ-x/t-1";
        assert_eq!(callbacks.base(), base);
        assert_eq!(TaskCallbacks::from_base(&format!("{base}/")), callbacks);
        assert_eq!(callbacks.progress(), format!("{base}/progress"));
        assert_eq!(callbacks.completion(), format!("{base}/completion"));
        assert_eq!(
            callbacks.file("sub/cours d'été.mp4"),
            format!("{base}/files/sub/cours%20d%27%C3%A9t%C3%A9.mp4")
        );
        assert_eq!(encode_path("720p_a.m3u8"), "720p_a.m3u8");
    }

    #[test]
    fn runner_args_name_the_subcommand_of_the_task_type() {
        let args = RunnerArgs {
            task_type: crate::TaskType::Studio,
            source: "https://pod/x.xml".into(),
            spec_json: "{}".into(),
            out: "/scratch/out".into(),
            work: "/scratch/work".into(),
        };
        assert_eq!(
            args.to_args(),
            [
                "studio",
                "--source",
                "https://pod/x.xml",
                "--spec",
                "{}",
                "--out",
                "/scratch/out",
                "--work",
                "/scratch/work"
            ]
        );
        assert_eq!(RunnerArgs::subcommand(crate::TaskType::Encoding), "encode");
        assert_eq!(
            RunnerArgs::subcommand(crate::TaskType::Transcription),
            "transcribe"
        );
    }

    #[test]
    fn fence_lets_only_the_latest_launch_of_a_live_task_write() {
        use crate::status::TaskPhase::*;
        assert_eq!(fence(2, 2, Running), Ok(()));
        assert_eq!(fence(1, 1, Admitted), Ok(()));
        // The status (or a cache of it) may lag behind the operator's latest launch.
        assert_eq!(fence(3, 2, Running), Ok(()));
        assert_eq!(
            fence(1, 2, Running),
            Err(Fenced::Superseded {
                launch: 1,
                current: 2
            })
        );
        assert_eq!(
            fence(1, 2, Queued),
            Err(Fenced::Superseded {
                launch: 1,
                current: 2
            })
        );
        for phase in [Succeeded, Failed, TimedOut] {
            assert_eq!(fence(2, 2, phase), Err(Fenced::Ended { phase }));
            assert_eq!(fence(1, 2, phase), Err(Fenced::Ended { phase }));
        }
        assert_eq!(
            fence(1, 2, Running).unwrap_err().category(),
            "LaunchSuperseded"
        );
        assert_eq!(fence(1, 1, Failed).unwrap_err().category(), "TaskEnded");
    }

    #[test]
    fn callback_tokens_carry_their_launch() {
        let token = callback_token(12, "ab12");
        assert_eq!(token, "12.ab12");
        assert_eq!(callback_token_launch(&token), Some(12));
        for bad in [
            "",
            "ab12",
            ".ab12",
            "3.",
            "0.ab",
            "03.ab",
            "x.ab",
            "-1.ab",
            "99999999999.ab",
        ] {
            assert_eq!(callback_token_launch(bad), None, "{bad}");
        }
    }

    #[test]
    fn safe_result_paths() {
        for ok in [
            "info_video.json",
            "720p_my_lecture.m3u8",
            "720p_cours d'été (v2).mp4",
            "sub/dir/a.vtt",
            "..hidden",
            "a..b",
            ".env",
        ] {
            assert_eq!(safe_result_path(ok), Ok(ok), "{ok}");
        }
        let long = "a".repeat(MAX_RESULT_PATH_BYTES + 1);
        let cases = [
            ("", PathError::Empty),
            (long.as_str(), PathError::TooLong),
            ("/etc/passwd", PathError::Absolute),
            ("a\\b.mp4", PathError::Backslash),
            ("C:\\x.mp4", PathError::Backslash),
            ("a\0b", PathError::ControlCharacter),
            ("a\nb", PathError::ControlCharacter),
            ("a\u{7f}b", PathError::ControlCharacter),
            ("a//b", PathError::EmptySegment),
            ("dir/", PathError::EmptySegment),
            ("../x", PathError::DotSegment),
            ("a/../b", PathError::DotSegment),
            ("./a", PathError::DotSegment),
            ("..", PathError::DotSegment),
            ("a?b", PathError::UrlDelimiter('?')),
            ("a#b", PathError::UrlDelimiter('#')),
            ("100%25.mp4", PathError::UrlDelimiter('%')),
        ];
        for (path, expected) in cases {
            assert_eq!(safe_result_path(path), Err(expected), "{path:?}");
        }
        // The bound is in bytes: 512 two-byte characters fit, 513 do not.
        assert!(safe_result_path(&"é".repeat(512)).is_ok());
        assert_eq!(safe_result_path(&"é".repeat(513)), Err(PathError::TooLong));
    }

    #[test]
    fn completion_reads_runner_bodies() {
        let body = serde_json::json!({
            "status": "failed",
            "error_message": "Encoding failed",
            "files": [{"path": "encoding.log", "sha256": "0".repeat(64), "size_bytes": 12}],
            "hardware": {"encode": "libx264"}
        });
        let completion: Completion = serde_json::from_value(body).expect("completion");
        assert_eq!(completion.status, crate::wire::TerminalStatus::Failed);
        assert_eq!(completion.script_output, None);
        assert_eq!(completion.files[0].validate(), Ok(()));
        let bad = ResultFileEntry {
            path: "a.mp4".into(),
            sha256: "A".repeat(64),
            size_bytes: 0,
        };
        assert_eq!(bad.validate(), Err(PathError::BadChecksum));
        let status: crate::status::ResultFile = completion.files[0].clone().into();
        assert_eq!(status.size_bytes, 12);
        assert!(
            serde_json::from_value::<Completion>(serde_json::json!({"status": "warning"})).is_err()
        );
        let minimal: Completion =
            serde_json::from_value(serde_json::json!({"status": "completed"})).expect("minimal");
        assert!(minimal.files.is_empty() && minimal.hardware.is_none());
    }

    #[test]
    fn progress_is_brought_within_bounds() {
        let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        );
        let report = ProgressReport {
            stage: "x".repeat(100),
            percent: Some(150.0),
            media_duration_seconds: Some(f64::NAN),
        };
        let progress = report.to_progress(now.clone());
        assert_eq!(progress.stage.len(), 64);
        assert_eq!(progress.percent, Some(100.0));
        assert_eq!(progress.media_duration_seconds, None);
        let report: ProgressReport =
            serde_json::from_value(serde_json::json!({"stage": "encode", "percent": 42.5}))
                .expect("progress");
        assert_eq!(report.to_progress(now).percent, Some(42.5));
    }
}
