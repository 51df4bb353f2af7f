//! The API of esup-runner-operator: the custom resources that Esup-Pod's requests become
//! (`EncodingTask`, `TranscriptionTask`) and the pools that run them (`RunnerPool`).
//!
//! Pure data: serde, schemas and small pure helpers. No client, no I/O. The CRD YAML under
//! `crds/` is generated from these types by `crdgen` (operator crate); doc comments become the
//! schema descriptions that `kubectl explain` shows, so they are written for cluster users.

pub mod common;
pub mod conditions;
pub mod encoding;
pub mod labels;
pub mod params;
pub mod pool;
pub mod runner;
pub mod status;
pub mod task;
pub mod timecode;
pub mod transcription;
pub mod url_policy;
pub mod wire;

pub use common::{
    MediaSource, NotifySpec, Requester, RetryPolicy, SecretKeyRef, TaskCommon, TaskPriority,
    TaskType, Timeouts, VideoMetadata,
};
pub use encoding::{EncodingTask, EncodingTaskSpec, Rendition};
pub use params::{ParamError, SpecContext, Submission, fingerprint, to_spec, to_submission};
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

/// Every CustomResourceDefinition of the project, in a stable order (`crds/` holds them as
/// YAML; tests install them on a real API server).
pub fn custom_resource_definitions()
-> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>
{
    use kube::CustomResourceExt;
    vec![
        EncodingTask::crd(),
        TranscriptionTask::crd(),
        RunnerPool::crd(),
    ]
}

/// At most `max` characters of `s`, a cut marked with an ellipsis: for messages built from
/// input without a bound of its own (condition messages, Events, annotations).
pub fn truncate_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

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
