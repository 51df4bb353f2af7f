//! `info_video.json`: every key Esup-Pod reads when it imports an encoding (protocol §3.1),
//! plus the informative ones the reference runner writes and which hardware did the work.
//! Pure: built from what the pipeline produced.

use serde_json::{Value, json};

use crate::job::VideoIds;
use crate::media::MediaInfo;
use crate::timeline::Window;

/// One written video output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoOutput {
    /// "video/mp2t" (HLS playlist) or "video/mp4".
    pub encoding_format: &'static str,
    /// Esup-Pod's resolution label, e.g. "1280x720".
    pub rendition: String,
    pub filename: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioOutput {
    /// "audio/mp3" or "video/mp4" (the m4a of an audio-only source).
    pub encoding_format: &'static str,
    pub filename: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Thumbnail {
    pub filename: String,
    pub timestamp: u64,
    pub percentage: u32,
}

/// Everything the pipeline produced and used.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outputs {
    pub video: Vec<VideoOutput>,
    pub audio: Vec<AudioOutput>,
    pub thumbnails: Vec<Thumbnail>,
    /// (sprite, vtt).
    pub overview: Option<(String, String)>,
    pub decoder: String,
    pub encoder: String,
    pub gpu: Option<String>,
    /// Why a CPU codec was used where a GPU one could have been, one line each.
    pub fallback: Vec<String>,
}

pub fn info_json(
    media: &MediaInfo,
    window: &Window,
    cut_applied: bool,
    ids: &VideoIds,
    dressing: Option<Value>,
    outputs: &Outputs,
) -> Value {
    let video = media.video.as_ref();
    let effective = window.duration();
    json!({
        "duration": effective.round() as u64,
        "has_stream_video": video.is_some(),
        "has_stream_audio": !media.audio.is_empty(),
        "has_stream_thumbnail": !outputs.thumbnails.is_empty(),
        "encode_video": outputs.video.iter().map(|v| json!({
            "encoding_format": v.encoding_format,
            "rendition": v.rendition,
            "filename": v.filename,
        })).collect::<Vec<_>>(),
        "encode_audio": outputs.audio.iter().map(|a| json!({
            "encoding_format": a.encoding_format,
            "filename": a.filename,
        })).collect::<Vec<_>>(),
        "encode_thumbnail": outputs.thumbnails.iter().map(|t| json!({
            "filename": t.filename,
            "timestamp": t.timestamp,
            "percentage": t.percentage,
        })).collect::<Vec<_>>(),
        "encode_overview": outputs.overview.as_ref().map(|(sprite, vtt)| json!({
            "sprite_filename": sprite,
            "vtt_filename": vtt,
        })),
        "codec": video.map(|v| v.codec.clone()),
        "height": video.map(|v| v.height),
        "video_duration": media.duration,
        "source_fps": video.map(|v| v.fps),
        "profile": video.and_then(|v| v.profile.clone()),
        "pix_fmt": video.map(|v| v.pix_fmt.clone()),
        "audio_stream_indices": media.audio.iter().map(|a| a.index).collect::<Vec<_>>(),
        "effective_duration": effective,
        "cut_applied": cut_applied,
        "video_id": ids.id,
        "video_slug": ids.slug,
        "video_title": ids.title,
        "dressing": dressing.is_some(),
        "dressing_input": dressing,
        "encode_result": {
            "hls": outputs.video.iter().any(|v| v.encoding_format == "video/mp2t") || video.is_none(),
            "mp4": true,
            "audio": !outputs.audio.is_empty() || media.audio.is_empty(),
            "thumbnails": !outputs.thumbnails.is_empty() || video.is_none(),
            "overview": outputs.overview.is_some() || video.is_none(),
        },
        "hardware": hardware(outputs),
    })
}

/// `{gpu, decode, encode}`, and `fallback` (the reasons) when there are any.
fn hardware(outputs: &Outputs) -> Value {
    let mut h = json!({
        "gpu": outputs.gpu,
        "decode": outputs.decoder,
        "encode": outputs.encoder,
    });
    if !outputs.fallback.is_empty()
        && let Some(o) = h.as_object_mut()
    {
        o.insert("fallback".into(), json!(outputs.fallback));
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{AudioInfo, VideoInfo};

    #[test]
    fn has_every_key_pod_reads() {
        let media = MediaInfo {
            format_name: "mov".into(),
            duration: 8.04,
            start_time: 0.0,
            video: Some(VideoInfo {
                index: 0,
                codec: "h264".into(),
                width: 1280,
                height: 720,
                fps: 25.0,
                pix_fmt: "yuv420p".into(),
                profile: None,
            }),
            audio: vec![
                AudioInfo {
                    index: 1,
                    codec: "aac".into(),
                    channels: 2,
                    sample_rate: 44100,
                },
                AudioInfo {
                    index: 2,
                    codec: "mp3".into(),
                    channels: 1,
                    sample_rate: 22050,
                },
            ],
        };
        let outputs = Outputs {
            video: vec![VideoOutput {
                encoding_format: "video/mp2t",
                rendition: "640x360".into(),
                filename: "360p_a.m3u8".into(),
            }],
            audio: vec![AudioOutput {
                encoding_format: "audio/mp3",
                filename: "audio_192k_a.mp3".into(),
            }],
            thumbnails: vec![Thumbnail {
                filename: "a_0.png".into(),
                timestamp: 1,
                percentage: 25,
            }],
            overview: Some(("overview.png".into(), "overview.vtt".into())),
            decoder: "cpu".into(),
            encoder: "libx264".into(),
            gpu: None,
            fallback: Vec::new(),
        };
        let window = Window {
            start: 1.0,
            end: 7.0,
        };
        let ids = VideoIds {
            id: Some("12".into()),
            ..Default::default()
        };
        let v = info_json(&media, &window, true, &ids, None, &outputs);
        for key in esup_api::runner::INFO_VIDEO_REQUIRED_KEYS {
            assert!(v.get(key).is_some(), "{key}");
        }
        assert_eq!(v["duration"], 6);
        assert_eq!(v["effective_duration"], 6.0);
        assert_eq!(v["audio_stream_indices"], json!([1, 2]));
        assert_eq!(v["encode_video"][0]["rendition"], "640x360");
        assert_eq!(v["encode_overview"]["vtt_filename"], "overview.vtt");
        assert_eq!(v["has_stream_thumbnail"], true);
        assert_eq!(v["hardware"]["encode"], "libx264");
        assert!(
            v["hardware"].get("fallback").is_none(),
            "no reasons, no key"
        );
        let reasons = Outputs {
            fallback: vec!["no GPU: NVML unavailable".into()],
            ..outputs
        };
        let v = info_json(&media, &window, true, &ids, None, &reasons);
        assert_eq!(
            v["hardware"]["fallback"],
            json!(["no GPU: NVML unavailable"])
        );
        assert_eq!(v["video_id"], "12");
        assert_eq!(v["cut_applied"], true);
    }
}
