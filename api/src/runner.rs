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
    /// Bearer token of those callbacks: a per-task secret.
    pub const CALLBACK_TOKEN: &str = "ESUP_CALLBACK_TOKEN";
}
