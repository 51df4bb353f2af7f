//! `EncodingTask`: an Esup-Pod `encoding` or `studio` request.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{TaskCommon, TaskType};
use crate::status::TaskStatus;
use crate::timecode::Timecode;

/// Encode one video for Esup-Pod: HLS and MP4 renditions, MP3, thumbnails and overview, named
/// as Esup-Pod imports them. A studio task first mixes an Opencast Studio recording
/// (presenter and presentation tracks) into `studio_base.mp4`, then encodes that.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "runner.esup-portail.org",
    version = "v1alpha1",
    kind = "EncodingTask",
    namespaced,
    status = "TaskStatus",
    shortname = "etask",
    shortname = "enc",
    category = "esup",
    derive = "PartialEq",
    doc = "An Esup-Pod encoding or studio job: source, renditions, cut, dressing, and the scheduling policy.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Mode", type_ = "string", json_path = ".spec.source.kind"),
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
#[x_kube(validation = kube::core::Rule::new("!has(self.studio) || self.source.kind == 'StudioMediapackage'").message("studio options need a StudioMediapackage source"))]
pub struct EncodingTaskSpec {
    /// What to encode.
    pub source: EncodingSource,
    /// The whole rendition ladder: Esup-Pod's `rendition` already merged over the default
    /// ladder (360p, 720p, 1080p) by the webhook, so a rung Esup-Pod removed stays removed.
    /// The runner keeps the renditions the source can fill. Empty: the default ladder.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["height".into()]))]
    pub renditions: Vec<Rendition>,
    /// Esup-Pod's `cut`: keep only this window of the source (also applied to the audio files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut: Option<Cut>,
    /// Esup-Pod's `dressing`: watermark and opening/ending credits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dressing: Option<Dressing>,
    /// Options of the studio mix; only with a `StudioMediapackage` source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub studio: Option<StudioOptions>,
    /// Requester, notification and scheduling policy.
    #[serde(flatten)]
    pub common: TaskCommon,
}

impl EncodingTaskSpec {
    pub fn task_type(&self) -> TaskType {
        match self.source.kind {
            SourceKind::Media => TaskType::Encoding,
            SourceKind::StudioMediapackage => TaskType::Studio,
        }
    }
}

/// What the source URL points at.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum SourceKind {
    /// A media file (Esup-Pod `encoding`).
    #[default]
    Media,
    /// An Opencast mediapackage XML naming presenter and presentation tracks (Esup-Pod `studio`).
    StudioMediapackage,
}

/// The source of an encoding.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct EncodingSource {
    /// Esup-Pod's `source_url`: the media file, or the mediapackage XML of a studio recording.
    /// Downloaded by the runner under the URL policy, size-bounded and retried.
    #[schemars(length(max = 4096), regex(pattern = crate::HTTP_URL_PATTERN))]
    pub url: String,
    /// Whether the URL is a media file or a studio mediapackage. Default Media.
    #[serde(default)]
    pub kind: SourceKind,
}

/// One rung of the ladder (Esup-Pod's `VideoRendition`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("self.width % 2 == 0 && self.height % 2 == 0").message("width and height must be even (4:2:0 video)"))]
pub struct Rendition {
    /// Output height in pixels; the key of Esup-Pod's ladder and the `{h}p_` file prefix.
    #[schemars(range(min = 16, max = 4320))]
    pub height: u32,
    /// Output width in pixels; with `height`, Esup-Pod's `resolution` ("1280x720"), which must
    /// match one of its renditions exactly.
    #[schemars(range(min = 16, max = 7680))]
    pub width: u32,
    /// Target video bitrate, e.g. "2000k". Unset: inferred from the height.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16), regex(pattern = crate::BITRATE_PATTERN))]
    pub video_bitrate: Option<String>,
    /// Audio bitrate of this rendition, e.g. "128k". Unset: inferred from the height.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16), regex(pattern = crate::BITRATE_PATTERN))]
    pub audio_bitrate: Option<String>,
    /// Also write an MP4 of this rendition (Esup-Pod's `encode_mp4`); HLS is always written.
    #[serde(default)]
    pub encode_mp4: bool,
}

/// A window of the source to keep.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Cut {
    /// Start of the kept window.
    pub start: Timecode,
    /// End of the kept window; clamped to `initialDuration`.
    pub end: Timecode,
    /// Duration of the uncut source as Esup-Pod knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_duration: Option<Timecode>,
}

/// Esup-Pod's dressing: branding added around and over the video.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dressing {
    /// An image overlaid on the video.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<Watermark>,
    /// A video played before the main one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opening_credits: Option<Credits>,
    /// A video played after the main one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ending_credits: Option<Credits>,
}

impl Dressing {
    /// The dressing's URLs, named by their `dressing` keys: what the webhook and the runner
    /// check with the URL policy and name in their refusals.
    pub fn urls(&self) -> Vec<(&'static str, &str)> {
        let mut urls = Vec::new();
        if let Some(w) = &self.watermark {
            urls.push(("dressing.watermark", w.url.as_str()));
        }
        if let Some(c) = &self.opening_credits {
            urls.push(("dressing.opening_credits_video", c.url.as_str()));
        }
        if let Some(c) = &self.ending_credits {
            urls.push(("dressing.ending_credits_video", c.url.as_str()));
        }
        urls
    }
}

/// Corner of the frame where the watermark sits.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum WatermarkPosition {
    TopLeft,
    #[default]
    TopRight,
    BottomLeft,
    BottomRight,
}

/// An image overlaid on the video, a tenth of its height, 54 px from the corner.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Watermark {
    /// Where to download the image (PNG with transparency works best).
    #[schemars(length(max = 4096), regex(pattern = crate::HTTP_URL_PATTERN))]
    pub url: String,
    /// Corner of the frame. Default TopRight.
    #[serde(default)]
    pub position: WatermarkPosition,
    /// Opacity in percent, 0 (invisible) to 100. Default 100.
    #[serde(default = "full_opacity")]
    #[schemars(range(min = 0, max = 100))]
    pub opacity: u8,
}

fn full_opacity() -> u8 {
    100
}

/// A credits video joined to the main one.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Credits {
    /// Where to download the credits video.
    #[schemars(length(max = 4096), regex(pattern = crate::HTTP_URL_PATTERN))]
    pub url: String,
    /// Its duration as Esup-Pod knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Timecode>,
    /// Esup-Pod's slug of the credits (informative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub slug: Option<String>,
}

/// How the presenter (camera) and presentation (screen) tracks are laid out.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum StudioLayout {
    /// Side by side at the smaller of the two heights (Opencast `mid`).
    SideBySide,
    /// Presentation full frame, presenter a quarter high at the top right (Opencast `piph`).
    PresenterTopRight,
    /// Presentation full frame, presenter a quarter high at the bottom right (Opencast `pipb`).
    PresenterBottomRight,
}

/// Options of the studio mix (Esup-Pod's `presenter`, `force_cpu` and `studio_*` parameters).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct StudioOptions {
    /// Layout; unset: the mediapackage's `presenter` attribute, else SideBySide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<StudioLayout>,
    /// Mix on the CPU even when a GPU is available.
    #[serde(default)]
    pub force_cpu: bool,
    /// Constant rate factor of the mix (0 lossless to 51). Unset: 23, or 20 for a single track.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 51))]
    pub crf: Option<u8>,
    /// x264 preset of the mix. Unset: medium, or slow for a single track.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 16),
        regex(
            pattern = r"^(ultrafast|superfast|veryfast|faster|fast|medium|slow|slower|veryslow)$"
        )
    )]
    pub preset: Option<String>,
    /// Audio bitrate of the mix. Unset: 192k.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16), regex(pattern = crate::BITRATE_PATTERN))]
    pub audio_bitrate: Option<String>,
    /// Allow NVENC for the mix (off by default, as in the reference runner).
    #[serde(default)]
    pub allow_nvenc: bool,
}
