//! From an Esup-Pod `POST /task/execute` body to a task spec: the reference runner's strict
//! parameter whitelist and value rules (`esup-pod-protocol.md` §3.0–§3.3), checked when the
//! request arrives instead of when a runner starts, and bounded as the CRD schema bounds each
//! field, so that the API server never refuses a spec we accepted. Pure: no client, no I/O.

use std::collections::{BTreeMap, BTreeSet};

use kube::core::Duration;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::common::{
    MediaSource, NotifySpec, Requester, RetryPolicy, SecretKeyRef, TaskCommon, TaskPriority,
    TaskType, Timeouts, VideoMetadata,
};
use crate::encoding::{
    Credits, Cut, Dressing, EncodingSource, EncodingTaskSpec, Rendition, SourceKind, StudioLayout,
    StudioOptions, Watermark, WatermarkPosition,
};
use crate::task::TaskSpec;
use crate::timecode::Timecode;
use crate::transcription::{SubtitleFormat, TranscriptionTaskSpec};
use crate::wire::TaskRequest;

/// What the webhook knows about the caller, besides the request: the tenant its token maps to.
#[derive(Clone, Debug, PartialEq)]
pub struct SpecContext {
    /// Tenant (institution) name, a DNS label; the webhook's configuration guarantees its form.
    pub tenant: String,
    /// The Secret key where the webhook stored the caller's token, echoed as the notify bearer.
    pub notify_token: SecretKeyRef,
    /// The tenant's retention; `None`: the cluster default.
    pub retention: Option<Duration>,
    /// The tenant's default queue priority.
    pub priority: TaskPriority,
}

/// Why a request cannot become a task. Messages are fit for `{"detail": ...}`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamError {
    #[error("Invalid task type: {0:?} (expected encoding, studio or transcription)")]
    InvalidTaskType(String),
    /// A top-level request field (`etab_name`, `app_name`, ...) is missing or out of bounds.
    #[error("Invalid {field}: {reason}")]
    InvalidField { field: &'static str, reason: String },
    /// `source_url` or `notify_url` is not an http(s) URL with a host.
    #[error("Invalid {field}: {reason}")]
    InvalidUrl { field: &'static str, reason: String },
    /// Parameter keys outside the type's whitelist; the reference runner's exact message.
    #[error("Invalid parameters for task type: {task_type} (invalid fields: {list})", list = .fields.join(", "))]
    InvalidParameters {
        task_type: String,
        /// Sorted.
        fields: Vec<String>,
    },
    #[error("Missing parameter for task type {task_type}: {name}")]
    MissingParameter {
        task_type: &'static str,
        name: &'static str,
    },
    #[error("Invalid parameter {name}: {reason}")]
    InvalidValue { name: &'static str, reason: String },
    #[error("Invalid rendition: {0}")]
    InvalidRendition(String),
    #[error("Invalid cut: {0}")]
    InvalidCut(String),
    #[error("Invalid dressing: {0}")]
    InvalidDressing(String),
}

impl ParamError {
    /// A stable label for metrics, logs and condition reasons.
    pub const fn category(&self) -> &'static str {
        match self {
            Self::InvalidTaskType(_) => "InvalidTaskType",
            Self::InvalidField { .. } => "InvalidRequest",
            Self::InvalidUrl { .. } => "InvalidUrl",
            Self::InvalidParameters { .. } => "InvalidParameters",
            Self::MissingParameter { .. } => "MissingParameter",
            Self::InvalidValue { .. } => "InvalidParameterValue",
            Self::InvalidRendition(_) => "InvalidRendition",
            Self::InvalidCut(_) => "InvalidCut",
            Self::InvalidDressing(_) => "InvalidDressing",
        }
    }
}

impl ParamError {
    /// Whether only the request's `parameters` are wrong. The reference manager accepts such
    /// a request and its runner fails the task; anything else is not a task request (422).
    pub const fn is_in_parameters(&self) -> bool {
        matches!(
            self,
            Self::InvalidParameters { .. }
                | Self::MissingParameter { .. }
                | Self::InvalidValue { .. }
                | Self::InvalidRendition(_)
                | Self::InvalidCut(_)
                | Self::InvalidDressing(_)
        )
    }
}

/// What a task request becomes.
#[derive(Clone, Debug, PartialEq)]
pub struct Submission {
    pub spec: TaskSpec,
    /// Set when the parameters are invalid: the task is created only to fail at once with
    /// this error, as the reference runner fails it, so that Esup-Pod is told `failed` once
    /// instead of resubmitting the request on every cron run. `spec` then holds the request
    /// without its parameters (only the video identification, when it is valid).
    pub invalid_parameters: Option<ParamError>,
}

/// Turns a request into what to create: [`to_spec`], except that a request whose only fault
/// is in its parameters is still accepted, as a task that fails ([`Submission`]).
pub fn to_submission(request: &TaskRequest, ctx: &SpecContext) -> Result<Submission, ParamError> {
    let error = match to_spec(request, ctx) {
        Ok(spec) => {
            return Ok(Submission {
                spec,
                invalid_parameters: None,
            });
        }
        Err(e) if e.is_in_parameters() => e,
        Err(e) => return Err(e),
    };
    let bare = |keep_video: bool| {
        let mut bare = request.clone();
        bare.parameters = request
            .parameters
            .iter()
            .filter(|(k, _)| keep_video && VIDEO_KEYS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if request.task_type == "transcription" {
            // The one required parameter; the task never runs.
            bare.parameters
                .insert("language".to_owned(), Value::from("auto"));
        }
        to_spec(&bare, ctx)
    };
    let spec = bare(true).or_else(|_| bare(false))?;
    Ok(Submission {
        spec,
        invalid_parameters: Some(error),
    })
}

/// Keys of every video task: Esup-Pod's video identification.
const VIDEO_KEYS: [&str; 3] = ["video_id", "video_slug", "video_title"];
const ENCODING_KEYS: [&str; 3] = ["rendition", "cut", "dressing"];
const STUDIO_KEYS: [&str; 6] = [
    "presenter",
    "force_cpu",
    "studio_crf",
    "studio_preset",
    "studio_audio_bitrate",
    "studio_allow_nvenc",
];
/// The runner's transcription whitelist plus `lang`, which Esup-Pod's fallback path sends
/// (protocol §6 gap 3) and which the reference runner wrongly refuses.
const TRANSCRIPTION_KEYS: [&str; 8] = [
    "language",
    "lang",
    "source_language",
    "format",
    "model",
    "model_type",
    "duration",
    "normalize",
];

const X264_PRESETS: [&str; 9] = [
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
];

/// Turns a request into the spec of the task to create.
///
/// Checks, in order: the task type, the requester fields, the URLs (form only: the webhook
/// applies the URL policy), the parameter whitelist, then each parameter. Parameter values may
/// be JSON scalars or their string forms (Esup-Pod stringifies some); a `null` parameter is
/// treated as absent. Nested structures (`rendition`, `cut`, `dressing`) may be JSON strings,
/// as Esup-Pod sends them, or objects.
pub fn to_spec(request: &TaskRequest, ctx: &SpecContext) -> Result<TaskSpec, ParamError> {
    let task_type = match request.task_type.as_str() {
        "encoding" => TaskType::Encoding,
        "studio" => TaskType::Studio,
        "transcription" => TaskType::Transcription,
        other => return Err(ParamError::InvalidTaskType(other.to_owned())),
    };
    let requester = requester(request, ctx)?;
    let source_url =
        http_url(&request.source_url, 4096).map_err(|reason| ParamError::InvalidUrl {
            field: "source_url",
            reason,
        })?;
    let notify = if request.notify_url.is_empty() {
        None
    } else {
        let url = http_url(&request.notify_url, 2048).map_err(|reason| ParamError::InvalidUrl {
            field: "notify_url",
            reason,
        })?;
        Some(NotifySpec {
            url,
            token_secret_ref: ctx.notify_token.clone(),
        })
    };
    let params = &request.parameters;
    check_whitelist(task_type, params)?;
    let common = TaskCommon {
        requester,
        notify,
        video: video_metadata(params)?,
        priority: ctx.priority,
        pools: Vec::new(),
        timeouts: Timeouts::default(),
        retry: RetryPolicy::default(),
        retention: ctx.retention,
    };
    match task_type {
        TaskType::Encoding | TaskType::Studio => {
            let studio = if task_type == TaskType::Studio {
                studio_options(params)?
            } else {
                None
            };
            let kind = if task_type == TaskType::Studio {
                SourceKind::StudioMediapackage
            } else {
                SourceKind::Media
            };
            Ok(TaskSpec::Encoding(EncodingTaskSpec {
                source: EncodingSource {
                    url: source_url,
                    kind,
                },
                renditions: match param(params, "rendition") {
                    Some(v) => renditions(v)?,
                    None => Vec::new(),
                },
                cut: param(params, "cut").map(cut).transpose()?,
                dressing: match param(params, "dressing") {
                    Some(v) => dressing(v)?,
                    None => None,
                },
                studio,
                common,
            }))
        }
        TaskType::Transcription => Ok(TaskSpec::Transcription(transcription(
            source_url, params, common,
        )?)),
    }
}

fn requester(request: &TaskRequest, ctx: &SpecContext) -> Result<Requester, ParamError> {
    let bounded = |field: &'static str, value: &str, max: usize| {
        let count = value.chars().count();
        if count > max {
            Err(ParamError::InvalidField {
                field,
                reason: format!("at most {max} characters, got {count}"),
            })
        } else {
            Ok(())
        }
    };
    let required = |field: &'static str, value: &str, max: usize| {
        if value.trim().is_empty() {
            return Err(ParamError::InvalidField {
                field,
                reason: "must not be empty".to_owned(),
            });
        }
        bounded(field, value, max)
    };
    required("etab_name", &request.etab_name, 512)?;
    required("app_name", &request.app_name, 128)?;
    let optional = |field: &'static str, value: &Option<String>, max: usize| match value
        .as_deref()
        .filter(|v| !v.is_empty())
    {
        Some(v) => bounded(field, v, max).map(|()| Some(v.to_owned())),
        None => Ok(None),
    };
    Ok(Requester {
        tenant: ctx.tenant.clone(),
        etab_name: request.etab_name.clone(),
        app_name: request.app_name.clone(),
        app_version: optional("app_version", &request.app_version, 64)?,
        affiliation: optional("affiliation", &request.affiliation, 128)?,
    })
}

fn check_whitelist(task_type: TaskType, params: &Map<String, Value>) -> Result<(), ParamError> {
    let allowed = |key: &str| match task_type {
        TaskType::Encoding => ENCODING_KEYS.contains(&key) || VIDEO_KEYS.contains(&key),
        TaskType::Studio => {
            STUDIO_KEYS.contains(&key) || ENCODING_KEYS.contains(&key) || VIDEO_KEYS.contains(&key)
        }
        TaskType::Transcription => TRANSCRIPTION_KEYS.contains(&key) || VIDEO_KEYS.contains(&key),
    };
    let mut invalid: Vec<String> = params.keys().filter(|key| !allowed(key)).cloned().collect();
    if invalid.is_empty() {
        return Ok(());
    }
    // Python's sorted(): code point order, which is UTF-8 byte order.
    invalid.sort();
    Err(ParamError::InvalidParameters {
        task_type: task_type.protocol_name().to_owned(),
        fields: invalid,
    })
}

/// A parameter, `null` counting as absent.
fn param<'a>(params: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    params.get(key).filter(|v| !v.is_null())
}

fn invalid(name: &'static str, reason: impl Into<String>) -> ParamError {
    ParamError::InvalidValue {
        name,
        reason: reason.into(),
    }
}

/// A text parameter: a string, or a number written out. Empty means absent.
fn text(name: &'static str, value: &Value, max: usize) -> Result<Option<String>, ParamError> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Null => return Ok(None),
        _ => return Err(invalid(name, "expected a string")),
    };
    if text.trim().is_empty() {
        return Ok(None);
    }
    let count = text.chars().count();
    if count > max {
        return Err(invalid(
            name,
            format!("at most {max} characters, got {count}"),
        ));
    }
    Ok(Some(text))
}

/// A boolean: JSON `true`/`false`, 0/1, or "true"/"false"/"1"/"0" in any case (Python's
/// `str(True)` is "True").
fn boolean(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_u64() {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn bool_param(name: &'static str, value: &Value) -> Result<bool, ParamError> {
    boolean(value).ok_or_else(|| invalid(name, "expected true, false, 1 or 0"))
}

/// A finite number, or its string form. `Ok(None)` for an empty string.
fn number(value: &Value) -> Result<Option<f64>, ()> {
    let n = match value {
        Value::Number(n) => n.as_f64().ok_or(())?,
        Value::String(s) if s.trim().is_empty() => return Ok(None),
        Value::String(s) => s.trim().parse::<f64>().map_err(|_| ())?,
        _ => return Err(()),
    };
    if n.is_finite() { Ok(Some(n)) } else { Err(()) }
}

/// A non-negative integer, or its decimal string form. `Ok(None)` for an empty string.
fn unsigned(value: &Value) -> Result<Option<u64>, ()> {
    match value {
        Value::Number(n) => n.as_u64().map(Some).ok_or(()),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => {
            let s = s.trim();
            if s.bytes().all(|b| b.is_ascii_digit()) {
                s.parse().map(Some).map_err(|_| ())
            } else {
                Err(())
            }
        }
        _ => Err(()),
    }
}

fn video_metadata(params: &Map<String, Value>) -> Result<VideoMetadata, ParamError> {
    let id = match param(params, "video_id") {
        Some(v) => unsigned(v)
            .map_err(|()| invalid("video_id", "expected a non-negative integer"))?
            .map(|id| {
                i64::try_from(id).map_err(|_| invalid("video_id", "expected a 64-bit integer"))
            })
            .transpose()?,
        None => None,
    };
    let text_param = |key: &'static str, max: usize| match param(params, key) {
        Some(v) => text(key, v, max),
        None => Ok(None),
    };
    Ok(VideoMetadata {
        id,
        slug: text_param("video_slug", 512)?,
        title: text_param("video_title", 1024)?,
    })
}

/// Checks the CRD's URL pattern (`^https?://[^/?#@\s]+([/?#]\S*)?$`) and length. Spaces are
/// percent-encoded first, as Python's `requests` would before fetching, so that a file name
/// with spaces still makes a valid spec.
fn http_url(url: &str, max: usize) -> Result<String, String> {
    let url = url.replace(' ', "%20");
    let count = url.chars().count();
    if count > max {
        return Err(format!("at most {max} characters, got {count}"));
    }
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return Err("must be an http:// or https:// URL".to_owned());
    };
    if url.chars().any(char::is_whitespace) {
        return Err("must not contain whitespace".to_owned());
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() {
        return Err("is missing host".to_owned());
    }
    if host.contains('@') {
        return Err("must not include userinfo".to_owned());
    }
    Ok(url)
}

/// The CRD's bitrate pattern `^[0-9]+(\.[0-9]+)?[kKmM]?$`, at most 16 characters.
fn is_bitrate(s: &str) -> bool {
    let digits = s.strip_suffix(['k', 'K', 'm', 'M']).unwrap_or(s);
    let (whole, fraction) = match digits.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (digits, None),
    };
    let all_digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    s.len() <= 16 && all_digits(whole) && fraction.is_none_or(all_digits)
}

/// A bitrate given as "750k" or as a number of bits per second.
fn bitrate(value: &Value) -> Result<Option<String>, String> {
    let text = match value {
        Value::Null => return Ok(None),
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) if n.is_u64() => n.to_string(),
        _ => return Err(format!("bitrate {value} must be a string like \"750k\"")),
    };
    if text.is_empty() {
        Ok(None)
    } else if is_bitrate(&text) {
        Ok(Some(text))
    } else {
        Err(format!(
            "bitrate {text:?} must look like \"750k\", \"3M\" or \"128000\""
        ))
    }
}

/// A nested structure sent as a JSON string (as Esup-Pod does) or as an object.
fn nested_object(value: &Value) -> Result<Map<String, Value>, String> {
    let parsed;
    let value = match value {
        Value::String(s) => {
            parsed =
                serde_json::from_str::<Value>(s).map_err(|e| format!("not valid JSON: {e}"))?;
            &parsed
        }
        other => other,
    };
    match value {
        Value::Object(object) => Ok(object.clone()),
        _ => Err("expected a JSON object".to_owned()),
    }
}

/// The reference runner's default ladder, which is also Esup-Pod's default `VideoRendition`
/// fixture: (height, width, video bitrate, audio bitrate, MP4).
const DEFAULT_LADDER: [(u32, u32, &str, &str, bool); 3] = [
    (360, 640, "750k", "96k", true),
    (720, 1280, "2000k", "128k", true),
    (1080, 1920, "3000k", "192k", false),
];

/// Most rungs a spec may hold (the CRD's `maxItems`).
const MAX_RENDITIONS: usize = 8;

/// Esup-Pod's `rendition`: `{"<height>": {"resolution": "WxH", "video_bitrate",
/// "audio_bitrate", "encode_mp4"}}`.
///
/// Applied over the default ladder as the reference runner applies it: a rung replaces the
/// default rung's keys one by one (so `{"720": {"encode_mp4": false}}` keeps 1280x720 and
/// its bitrates), and a `null` rung removes that height. The result is the complete ladder,
/// sorted by height, so that a removed default rung stays removed; an empty object means the
/// default ladder and gives an empty list. Unlike the reference runner, which logs bad input
/// and falls back to the default ladder, invalid rungs are refused. A missing `encode_mp4`
/// on a new height means no MP4 (the CRD default); a `null` bitrate is inferred by the runner.
fn renditions(value: &Value) -> Result<Vec<Rendition>, ParamError> {
    let overrides = nested_object(value).map_err(ParamError::InvalidRendition)?;
    if overrides.is_empty() {
        return Ok(Vec::new());
    }
    let mut ladder: BTreeMap<u32, Map<String, Value>> = DEFAULT_LADDER
        .iter()
        .map(|&(height, width, video, audio, mp4)| {
            let mut rung = Map::new();
            rung.insert(
                "resolution".into(),
                Value::from(format!("{width}x{height}")),
            );
            rung.insert("video_bitrate".into(), Value::from(video));
            rung.insert("audio_bitrate".into(), Value::from(audio));
            rung.insert("encode_mp4".into(), Value::from(mp4));
            (height, rung)
        })
        .collect();
    let mut seen = BTreeSet::new();
    for (raw_key, rung) in &overrides {
        let key = raw_key.trim();
        let height = if !key.is_empty() && key.bytes().all(|b| b.is_ascii_digit()) {
            key.parse::<u32>().ok()
        } else {
            None
        }
        .ok_or_else(|| {
            ParamError::InvalidRendition(format!("key {raw_key:?} must be a height, e.g. \"720\""))
        })?;
        if !seen.insert(height) {
            return Err(ParamError::InvalidRendition(format!(
                "height {height} is given twice"
            )));
        }
        match rung {
            Value::Null => {
                ladder.remove(&height);
            }
            Value::Object(fields) => {
                let merged = ladder.entry(height).or_default();
                for (k, v) in fields {
                    merged.insert(k.clone(), v.clone());
                }
            }
            _ => {
                return Err(ParamError::InvalidRendition(format!(
                    "rendition {key} must be an object or null"
                )));
            }
        }
    }
    if ladder.is_empty() {
        return Err(ParamError::InvalidRendition(
            "every rendition was removed".to_owned(),
        ));
    }
    if ladder.len() > MAX_RENDITIONS {
        return Err(ParamError::InvalidRendition(format!(
            "at most {MAX_RENDITIONS} renditions, got {}",
            ladder.len()
        )));
    }
    ladder
        .iter()
        .map(|(&key, rung)| rendition(key, rung).map_err(ParamError::InvalidRendition))
        .collect()
}

fn rendition(key: u32, rung: &Map<String, Value>) -> Result<Rendition, String> {
    let resolution = rung
        .get("resolution")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("rendition {key} needs a \"resolution\" like \"1280x720\""))?
        .trim();
    let (width, height) = resolution
        .split_once('x')
        .and_then(|(w, h)| {
            let dimension = |t: &str| {
                if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
                    t.parse::<u32>().ok()
                } else {
                    None
                }
            };
            Some((dimension(w)?, dimension(h)?))
        })
        .ok_or_else(|| {
            format!("rendition {key}: resolution {resolution:?} must be WIDTHxHEIGHT")
        })?;
    if height != key {
        return Err(format!(
            "rendition {key} must match its resolution height ({height})"
        ));
    }
    if !(16..=4320).contains(&height) || !(16..=7680).contains(&width) {
        return Err(format!(
            "rendition {key}: {width}x{height} is outside 16x16..7680x4320"
        ));
    }
    if width % 2 != 0 || height % 2 != 0 {
        return Err(format!(
            "rendition {key}: width and height must be even, got {width}x{height}"
        ));
    }
    let field_bitrate = |name: &str| {
        rung.get(name)
            .map_or(Ok(None), bitrate)
            .map_err(|e| format!("rendition {key} {name}: {e}"))
    };
    let encode_mp4 = match rung.get("encode_mp4") {
        None | Some(Value::Null) => false,
        Some(v) => boolean(v)
            .ok_or_else(|| format!("rendition {key}: encode_mp4 must be true or false"))?,
    };
    Ok(Rendition {
        height,
        width,
        video_bitrate: field_bitrate("video_bitrate")?,
        audio_bitrate: field_bitrate("audio_bitrate")?,
        encode_mp4,
    })
}

/// A timecode as Esup-Pod may write it: "HH:MM:SS", Python's `str(time)`/`str(timedelta)`
/// with microseconds ("0:00:05.500000", truncated to milliseconds), or seconds as a number.
fn timecode(value: &Value) -> Result<Option<Timecode>, String> {
    let seconds_to_timecode = |s: f64| {
        if (0.0..3.6e9).contains(&s) {
            // In range by the check above; rounding to whole milliseconds is intended.
            Ok(Timecode::from_millis((s * 1000.0).round() as u64))
        } else {
            Err(format!("{s} is not a valid number of seconds"))
        }
    };
    let tc = match value {
        Value::Null => return Ok(None),
        Value::Number(n) => seconds_to_timecode(n.as_f64().unwrap_or(f64::NAN))?,
        Value::String(s) => {
            let s = s.trim();
            if s.is_empty() {
                return Ok(None);
            }
            if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                seconds_to_timecode(
                    s.parse::<f64>()
                        .map_err(|_| format!("{s:?} is not a timecode"))?,
                )?
            } else {
                let truncated = match s.split_once('.') {
                    Some((whole, fraction)) if fraction.len() > 3 => {
                        format!("{whole}.{}", fraction.get(..3).unwrap_or(fraction))
                    }
                    _ => s.to_owned(),
                };
                truncated
                    .parse::<Timecode>()
                    .map_err(|_| format!("{s:?} is not a timecode HH:MM:SS"))?
            }
        }
        _ => return Err(format!("{value} is not a timecode")),
    };
    // The CRD bounds timecodes to 16 characters: fewer than a million hours.
    if tc.as_millis() >= 1_000_000 * 3_600_000 {
        return Err(format!("{tc} is too long"));
    }
    Ok(Some(tc))
}

/// Esup-Pod's `cut`: `{"start", "end", "initial_duration"}`; the window must not be empty.
fn cut(value: &Value) -> Result<Cut, ParamError> {
    let object = nested_object(value).map_err(ParamError::InvalidCut)?;
    let field = |name: &str| {
        object
            .get(name)
            .map_or(Ok(None), timecode)
            .map_err(|e| ParamError::InvalidCut(format!("{name}: {e}")))
    };
    let start =
        field("start")?.ok_or_else(|| ParamError::InvalidCut("start is required".to_owned()))?;
    let end = field("end")?.ok_or_else(|| ParamError::InvalidCut("end is required".to_owned()))?;
    if start >= end {
        return Err(ParamError::InvalidCut(format!(
            "start {start} must be before end {end}"
        )));
    }
    Ok(Cut {
        start,
        end,
        initial_duration: field("initial_duration")?,
    })
}

/// Esup-Pod's `dressing`. Keys of the reference runner: `watermark` (URL),
/// `watermark_position_orig` (else `watermark_position`, which older Esup-Pod sent as a
/// French label), `watermark_opacity` ("0"–"100"), `opening_credits`/`ending_credits` (slugs)
/// and `*_credits_video` (URL) with `*_credits_video_duration`. Other keys are ignored, as the
/// runner ignores them. `None` when it asks for nothing.
fn dressing(value: &Value) -> Result<Option<Dressing>, ParamError> {
    let object = nested_object(value).map_err(ParamError::InvalidDressing)?;
    let non_empty = |key: &str| {
        object
            .get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let url = |key: &str| {
        non_empty(key)
            .map(|u| {
                http_url(u, 4096).map_err(|e| ParamError::InvalidDressing(format!("{key} {e}")))
            })
            .transpose()
    };
    let watermark = match url("watermark")? {
        Some(url) => {
            let position = match non_empty("watermark_position_orig")
                .or_else(|| non_empty("watermark_position"))
            {
                Some(label) => watermark_position(label).ok_or_else(|| {
                    ParamError::InvalidDressing(format!(
                        "unknown watermark position {label:?} (expected top_left, top_right, bottom_left or bottom_right)"
                    ))
                })?,
                None => WatermarkPosition::TopRight,
            };
            let opacity = match object.get("watermark_opacity").map(number) {
                None | Some(Ok(None)) => 100,
                Some(Ok(Some(p))) if (0.0..=100.0).contains(&p) => {
                    // In 0..=100 by the guard.
                    p.round() as u8
                }
                Some(_) => {
                    return Err(ParamError::InvalidDressing(
                        "watermark_opacity must be a percentage from 0 to 100".to_owned(),
                    ));
                }
            };
            Some(Watermark {
                url,
                position,
                opacity,
            })
        }
        None => None,
    };
    let credits = |which: &str| -> Result<Option<Credits>, ParamError> {
        let Some(url) = url(&format!("{which}_credits_video"))? else {
            return Ok(None);
        };
        let duration_key = format!("{which}_credits_video_duration");
        let duration = object
            .get(&duration_key)
            .map_or(Ok(None), timecode)
            .map_err(|e| ParamError::InvalidDressing(format!("{duration_key}: {e}")))?;
        let slug = match object.get(&format!("{which}_credits")) {
            Some(v) => text("dressing", v, 512)
                .map_err(|e| ParamError::InvalidDressing(format!("{which}_credits: {e}")))?,
            None => None,
        };
        Ok(Some(Credits {
            url,
            duration,
            slug,
        }))
    };
    let dressing = Dressing {
        watermark,
        opening_credits: credits("opening")?,
        ending_credits: credits("ending")?,
    };
    Ok((dressing != Dressing::default()).then_some(dressing))
}

/// Esup-Pod's position values (`top_right`), their English labels ("Top right") and French
/// labels with or without accent ("En haut à droite"), as the reference runner accepts them.
fn watermark_position(label: &str) -> Option<WatermarkPosition> {
    let normal: String = label
        .trim()
        .to_lowercase()
        .replace('à', "a")
        .chars()
        .map(|c| if c == ' ' || c == '-' { '_' } else { c })
        .collect();
    match normal.as_str() {
        "top_left" | "en_haut_a_gauche" => Some(WatermarkPosition::TopLeft),
        "top_right" | "en_haut_a_droite" => Some(WatermarkPosition::TopRight),
        "bottom_left" | "en_bas_a_gauche" => Some(WatermarkPosition::BottomLeft),
        "bottom_right" | "en_bas_a_droite" => Some(WatermarkPosition::BottomRight),
        _ => None,
    }
}

/// The studio keys. `None` when none is given (the mediapackage then decides the layout).
fn studio_options(params: &Map<String, Value>) -> Result<Option<StudioOptions>, ParamError> {
    if !STUDIO_KEYS.iter().any(|k| param(params, k).is_some()) {
        return Ok(None);
    }
    let layout = match param(params, "presenter") {
        Some(v) => match text("presenter", v, 16)?.map(|s| s.trim().to_ascii_lowercase()) {
            None => None,
            Some(s) => Some(match s.as_str() {
                "mid" => StudioLayout::SideBySide,
                "piph" => StudioLayout::PresenterTopRight,
                "pipb" => StudioLayout::PresenterBottomRight,
                _ => return Err(invalid("presenter", "expected mid, piph or pipb")),
            }),
        },
        None => None,
    };
    let crf = match param(params, "studio_crf") {
        Some(v) => match unsigned(v) {
            Ok(None) => None,
            Ok(Some(c)) if c <= 51 => u8::try_from(c).ok(),
            _ => return Err(invalid("studio_crf", "expected an integer from 0 to 51")),
        },
        None => None,
    };
    let preset = match param(params, "studio_preset") {
        Some(v) => match text("studio_preset", v, 16)?.map(|s| s.trim().to_ascii_lowercase()) {
            Some(p) if X264_PRESETS.contains(&p.as_str()) => Some(p),
            Some(_) => {
                return Err(invalid(
                    "studio_preset",
                    format!("expected one of {}", X264_PRESETS.join(", ")),
                ));
            }
            None => None,
        },
        None => None,
    };
    let audio_bitrate = match param(params, "studio_audio_bitrate") {
        Some(v) => bitrate(v).map_err(|e| invalid("studio_audio_bitrate", e))?,
        None => None,
    };
    let flag = |key: &'static str| param(params, key).map_or(Ok(false), |v| bool_param(key, v));
    Ok(Some(StudioOptions {
        layout,
        force_cpu: flag("force_cpu")?,
        crf,
        preset,
        audio_bitrate,
        allow_nvenc: flag("studio_allow_nvenc")?,
    }))
}

/// A language code as the CRD accepts it (`auto`, or `xx`/`xxx` with one optional
/// `-`/`_` subtag of 2–8 letters or digits); the primary subtag is lowercased.
fn language(name: &'static str, value: &Value) -> Result<Option<String>, ParamError> {
    let Some(raw) = text(name, value, 16)? else {
        return Ok(None);
    };
    let raw = raw.trim();
    let (primary, rest) = match raw.find(['-', '_']) {
        Some(i) => raw.split_at(i),
        None => (raw, ""),
    };
    let primary = primary.to_ascii_lowercase();
    if primary == "auto" && rest.is_empty() {
        return Ok(Some(primary));
    }
    let subtag = rest.get(1..).unwrap_or_default();
    let primary_ok =
        (2..=3).contains(&primary.len()) && primary.bytes().all(|b| b.is_ascii_lowercase());
    let subtag_ok = rest.is_empty()
        || ((2..=8).contains(&subtag.len()) && subtag.bytes().all(|b| b.is_ascii_alphanumeric()));
    if primary_ok && subtag_ok {
        Ok(Some(format!("{primary}{rest}")))
    } else {
        Err(invalid(
            name,
            format!("{raw:?} is not a language code like \"fr\", \"pt-BR\" or \"auto\""),
        ))
    }
}

fn transcription(
    source_url: String,
    params: &Map<String, Value>,
    common: TaskCommon,
) -> Result<TranscriptionTaskSpec, ParamError> {
    // `language` wins; `lang` is the legacy key of Esup-Pod's fallback path.
    let requested = match param(params, "language") {
        Some(v) => language("language", v)?,
        None => None,
    };
    let requested = match requested {
        Some(l) => Some(l),
        None => match param(params, "lang") {
            Some(v) => language("lang", v)?,
            None => None,
        },
    }
    .ok_or(ParamError::MissingParameter {
        task_type: "transcription",
        name: "language",
    })?;
    let source_language = match param(params, "source_language") {
        Some(v) => language("source_language", v)?,
        None => None,
    }
    .unwrap_or_else(|| "auto".to_owned());
    if let Some(v) = param(params, "format") {
        match text("format", v, 16)? {
            Some(f) if f.trim().eq_ignore_ascii_case("vtt") => {}
            None => {}
            Some(f) => return Err(invalid("format", format!("{f:?}: only vtt is supported"))),
        }
    }
    let model = match param(params, "model") {
        Some(v) => text("model", v, 64)?.map(|m| m.trim().to_owned()),
        None => None,
    };
    if let Some(m) = &model
        && !m
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(invalid(
            "model",
            format!("{m:?} may only hold letters, digits, '.', '_' and '-'"),
        ));
    }
    let model_type = match param(params, "model_type") {
        Some(v) => text("model_type", v, 64)?,
        None => None,
    };
    let duration_seconds = match param(params, "duration") {
        Some(v) => match number(v) {
            Ok(Some(d)) if d >= 0.0 => Some(d),
            Ok(None) => None,
            _ => {
                return Err(invalid(
                    "duration",
                    "expected a non-negative number of seconds",
                ));
            }
        },
        None => None,
    };
    let normalize = match param(params, "normalize") {
        Some(v) => bool_param("normalize", v)?,
        None => false,
    };
    Ok(TranscriptionTaskSpec {
        source: MediaSource { url: source_url },
        language: requested,
        source_language,
        duration_seconds,
        normalize,
        model,
        model_type,
        format: SubtitleFormat::Vtt,
        common,
    })
}

/// The manager's in-flight dedup key (§1.2 step 3): lowercase hex SHA-256 of the canonical
/// JSON of `{task_type, source_url, parameters, notify_url, app_name, etab_name}`, as Python's
/// `json.dumps(sort_keys=True, separators=(",", ":"))` writes it, so that keys computed here
/// and by the reference manager agree.
pub fn fingerprint(request: &TaskRequest) -> String {
    let mut doc = Map::new();
    doc.insert("task_type".into(), Value::from(request.task_type.as_str()));
    doc.insert(
        "source_url".into(),
        Value::from(request.source_url.as_str()),
    );
    doc.insert(
        "parameters".into(),
        Value::Object(request.parameters.clone()),
    );
    doc.insert(
        "notify_url".into(),
        Value::from(request.notify_url.as_str()),
    );
    doc.insert("app_name".into(), Value::from(request.app_name.as_str()));
    doc.insert("etab_name".into(), Value::from(request.etab_name.as_str()));
    let digest = Sha256::digest(canonical_json(&Value::Object(doc)).as_bytes());
    crate::lower_hex(&digest)
}

/// Python's `json.dumps(value, sort_keys=True, separators=(",", ":"))` with its default
/// `ensure_ascii=True`: keys sorted by code point, every character outside printable ASCII
/// written `\uXXXX` (UTF-16, lowercase hex), floats written as Python's `repr` writes them.
///
/// Limit: integers beyond 64 bits are read by serde_json as floats, where Python keeps them
/// exact; no Esup-Pod parameter comes near.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else if let Some(u) = n.as_u64() {
                out.push_str(&u.to_string());
            } else {
                out.push_str(&python_float_repr(n.as_f64().unwrap_or(f64::NAN)));
            }
        }
        Value::String(s) => write_python_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(object) => {
            // Sorted here rather than trusting the map: serde_json's `preserve_order`
            // feature, enabled anywhere in a build, would keep insertion order.
            let mut entries: Vec<(&String, &Value)> = object.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_python_string(key, out);
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
    }
}

/// Python's `py_encode_basestring_ascii`.
fn write_python_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

/// Python's `repr(float)`: the shortest round-trip digits, positional when the decimal
/// exponent is in [-4, 16), else scientific with a signed, at least two-digit exponent
/// (`1e+16`, `1e-05`); always a `.0` on integral positional values.
fn python_float_repr(f: f64) -> String {
    if !f.is_finite() {
        // Not reachable from JSON input; Python would write these.
        return if f.is_nan() {
            "NaN".to_owned()
        } else if f > 0.0 {
            "Infinity".to_owned()
        } else {
            "-Infinity".to_owned()
        };
    }
    let sign = if f.is_sign_negative() { "-" } else { "" };
    // Rust's `{:e}` gives the shortest round-trip digits, e.g. "6.12e2".
    let sci = format!("{:e}", f.abs());
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    // Position of the decimal point relative to the start of `digits`.
    let point = exponent + 1;
    let body = if !(-3..=16).contains(&point) {
        let (first, rest) = digits.split_at(1);
        let fraction = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        format!("{first}{fraction}e{exp_sign}{:02}", exponent.abs())
    } else if point <= 0 {
        format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
    } else {
        let point = point.unsigned_abs() as usize;
        if point >= digits.len() {
            format!("{digits}{}.0", "0".repeat(point - digits.len()))
        } else {
            let (whole, fraction) = digits.split_at(point);
            format!("{whole}.{fraction}")
        }
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr_matches_python() {
        // Expected values from CPython 3: repr(x).
        let cases = [
            (612.0, "612.0"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (0.1, "0.1"),
            (1.5, "1.5"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (1.234_567_890_123_456_7e16, "1.2345678901234568e+16"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (123_456.789, "123456.789"),
            (1e100, "1e+100"),
            (-2.5e-300, "-2.5e-300"),
            (5e-324, "5e-324"),
        ];
        for (f, expected) in cases {
            assert_eq!(python_float_repr(f), expected, "{f:e}");
        }
    }

    #[test]
    fn bitrate_pattern() {
        for ok in ["750k", "3M", "1.5M", "128000", "96K", "2000m"] {
            assert!(is_bitrate(ok), "{ok}");
        }
        for bad in [
            "",
            "k",
            "1.k",
            ".5k",
            "3G",
            "750 k",
            "-1k",
            "1e3",
            "12345678901234567",
        ] {
            assert!(!is_bitrate(bad), "{bad}");
        }
    }

    #[test]
    fn url_form() {
        assert_eq!(
            http_url("https://pod.example/media/my video (1).mp4", 4096),
            Ok("https://pod.example/media/my%20video%20(1).mp4".to_owned())
        );
        assert!(http_url("http://pod.example", 4096).is_ok());
        assert!(http_url("https://pod.example?x=1", 4096).is_ok());
        for bad in [
            "",
            "ftp://pod.example/a.mp4",
            "https://",
            "https:///a.mp4",
            "https://user:pw@pod.example/a.mp4",
            "https://pod.example/a\tb.mp4",
            "HTTPS://pod.example/a.mp4",
        ] {
            assert!(http_url(bad, 4096).is_err(), "{bad}");
        }
        assert!(http_url("https://pod.example/aaaa", 20).is_err());
    }

    #[test]
    fn dressing_urls_are_listed_for_the_url_policy() {
        let value = serde_json::json!({
            "watermark": "http://169.254.169.254/logo.png",
            "ending_credits_video": "https://pod.test/outro.mp4",
        });
        let d = dressing(&value).unwrap().unwrap();
        assert_eq!(
            d.urls(),
            [
                ("dressing.watermark", "http://169.254.169.254/logo.png"),
                (
                    "dressing.ending_credits_video",
                    "https://pod.test/outro.mp4"
                ),
            ]
        );
    }

    #[test]
    fn watermark_labels() {
        for (label, expected) in [
            ("top_left", WatermarkPosition::TopLeft),
            ("En haut à droite", WatermarkPosition::TopRight),
            ("en bas a gauche", WatermarkPosition::BottomLeft),
            ("Bottom right", WatermarkPosition::BottomRight),
        ] {
            assert_eq!(watermark_position(label), Some(expected), "{label}");
        }
        assert_eq!(watermark_position("centre"), None);
    }
}
