//! The API of esup-runner-operator: the custom resources that Esup-Pod's requests become
//! (`EncodingTask`, `TranscriptionTask`) and the pools that run them (`RunnerPool`).
//!
//! Pure data: serde, schemas and small pure helpers. No client, no I/O. The CRD YAML under
//! `crds/` is generated from these types by `crdgen` (operator crate); doc comments become the
//! schema descriptions that `kubectl explain` shows, so they are written for cluster users.

pub mod common;
pub mod conditions;
pub mod encoding;
pub mod params;
pub mod pool;
pub mod runner;
pub mod status;
pub mod timecode;
pub mod transcription;
pub mod url_policy;
pub mod wire;

pub use common::{
    MediaSource, NotifySpec, Requester, RetryPolicy, SecretKeyRef, TaskCommon, TaskPriority,
    TaskType, Timeouts, VideoMetadata,
};
pub use encoding::{EncodingTask, EncodingTaskSpec, Rendition};
pub use params::{
    ParamError, SpecContext, Submission, TaskSpecFromRequest, fingerprint, to_spec, to_submission,
};
pub use pool::{GpuSpec, Placement, PoolTenant, RunnerPool, RunnerPoolSpec, RunnerPoolStatus};
pub use status::{NotificationState, TaskOutcome, TaskPhase, TaskStatus};
pub use timecode::Timecode;
pub use transcription::{TranscriptionTask, TranscriptionTaskSpec};
pub use wire::{
    ExecuteResponse, ManagerStatus, ManagerTask, Manifest, ManifestEntry, NotifyBody, TaskRequest,
    TerminalStatus,
};

/// API group of every kind of this project.
pub const GROUP: &str = "runner.esup-portail.org";
/// The one served version.
pub const VERSION: &str = "v1alpha1";

/// Annotation that asks for a task to be cancelled (Esup-Pod's `/task/stop`): the operator
/// stops its Job and ends it `Failed` with reason `Cancelled`.
pub const STOP_ANNOTATION: &str = "runner.esup-portail.org/stop-requested";

/// Annotation the webhook sets on a task it accepted with invalid parameters (the reference
/// manager accepts them and its runner fails the task): the message the task fails with. The
/// operator ends such a task `Failed`, reason `InvalidParameters`, before it is ever admitted.
pub const INVALID_PARAMETERS_ANNOTATION: &str = "runner.esup-portail.org/invalid-parameters";

/// Lowercase hexadecimal, as sha256 digests are written in manifests and statuses.
pub fn lower_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Go `time.ParseDuration` syntax, as `metav1.Duration` accepts it: "90s", "1h30m", "1440h".
pub(crate) const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$";
/// Kubernetes object names (DNS-1123 subdomain), used for references to pools and Secrets.
pub(crate) const NAME_PATTERN: &str = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$";
/// An absolute http(s) URL with a host; the webhook applies the full URL policy (SSRF guard).
pub(crate) const HTTP_URL_PATTERN: &str = r"^https?://[^/?#@\s]+([/?#]\S*)?$";
/// A bitrate as Esup-Pod writes it: "750k", "3M", "128000".
pub(crate) const BITRATE_PATTERN: &str = r"^[0-9]+(\.[0-9]+)?[kKmM]?$";
