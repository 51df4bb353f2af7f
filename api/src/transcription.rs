//! `TranscriptionTask`: an Esup-Pod `transcription` request.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{MediaSource, TaskCommon};
use crate::status::TaskStatus;

/// Language codes as Esup-Pod sends them ("fr", "en", "pt-BR"), or "auto".
const LANGUAGE_PATTERN: &str = r"^(auto|[a-z]{2,3}([-_][A-Za-z0-9]{2,8})?)$";

/// Transcribe the speech of one media file into WebVTT subtitles with Whisper, translated
/// (fr↔en) when the requested language differs from the spoken one.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "runner.esup-portail.org",
    version = "v1alpha1",
    kind = "TranscriptionTask",
    namespaced,
    status = "TaskStatus",
    shortname = "ttask",
    shortname = "trans",
    category = "esup",
    derive = "PartialEq",
    doc = "An Esup-Pod transcription job: source, languages, model, and the scheduling policy.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Language", type_ = "string", json_path = ".spec.language"),
    printcolumn(
        name = "Tenant",
        type_ = "string",
        json_path = ".spec.requester.tenant"
    ),
    printcolumn(name = "Pool", type_ = "string", json_path = ".status.pool"),
    printcolumn(
        name = "Position",
        type_ = "integer",
        json_path = ".status.queue.positionInPool",
        description = "Position in the pool's queue"
    ),
    printcolumn(name = "Attempts", type_ = "integer", json_path = ".status.attempts"),
    printcolumn(
        name = "Progress",
        type_ = "number",
        json_path = ".status.progress.percent",
        description = "Percent done, as the runner last reported"
    ),
    // The Running condition's reason is the reason of the latest phase change: every phase
    // change rewrites it (operator status::enter_phase, tested there).
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Running\")].reason",
        description = "Why the task is in its phase: why it waits, or how it ended"
    ),
    // Text, not a date: kubectl prints `<invalid>` for a date in the future.
    printcolumn(
        name = "ETA",
        type_ = "string",
        json_path = ".status.queue.estimatedStartTime",
        description = "Estimated start while queued",
        priority = 1
    ),
    printcolumn(
        name = "Notified",
        type_ = "string",
        json_path = ".status.notification.state",
        priority = 1
    ),
    printcolumn(
        name = "Video",
        type_ = "string",
        json_path = ".spec.video.slug",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("spec is immutable: submit a new task instead"))]
pub struct TranscriptionTaskSpec {
    /// The audio (Esup-Pod sends its `audio_192k_*.mp3`) or video to transcribe.
    pub source: MediaSource,
    /// Language of the subtitles to produce (Esup-Pod's `language`, or its legacy `lang`);
    /// `auto` keeps the spoken language.
    #[schemars(length(max = 16), regex(pattern = LANGUAGE_PATTERN))]
    pub language: String,
    /// The spoken language (Esup-Pod's `source_language`); `auto` detects it. Default auto.
    #[serde(default = "auto")]
    #[schemars(length(max = 16), regex(pattern = LANGUAGE_PATTERN))]
    pub source_language: String,
    /// Media duration in seconds as Esup-Pod knows it; sizes the ETA before the runner probes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub duration_seconds: Option<f64>,
    /// Normalise loudness (EBU R128, -23 LUFS) before recognition (Esup-Pod's `normalize`).
    #[serde(default)]
    pub normalize: bool,
    /// Whisper model to use, e.g. "base" or "small" (Esup-Pod's `model`). Unset: the runner's
    /// configured default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), regex(pattern = r"^[A-Za-z0-9._-]+$"))]
    pub model: Option<String>,
    /// Esup-Pod's `model_type`, e.g. "WHISPER" (informative: Whisper is the only engine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub model_type: Option<String>,
    /// Subtitle format; only WebVTT, which Esup-Pod imports.
    #[serde(default)]
    pub format: SubtitleFormat,
    /// Requester, notification and scheduling policy.
    #[serde(flatten)]
    pub common: TaskCommon,
}

fn auto() -> String {
    "auto".to_owned()
}

/// Output format of the subtitles.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum SubtitleFormat {
    /// WebVTT, at most 2 lines of 40 characters per cue.
    #[default]
    Vtt,
}
