//! What probing found in a source, and the checks that make a source unusable. Pure.

use crate::error::RunnerError;

#[derive(Clone, Debug, PartialEq)]
pub struct VideoInfo {
    /// Index of the stream in the container.
    pub index: usize,
    pub codec: String,
    pub width: u32,
    pub height: u32,
    /// Average frame rate; 0 when unknown.
    pub fps: f64,
    pub pix_fmt: String,
    pub profile: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AudioInfo {
    pub index: usize,
    pub codec: String,
    pub channels: u16,
    pub sample_rate: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MediaInfo {
    pub format_name: String,
    /// Seconds.
    pub duration: f64,
    /// Container start time, seconds (subtracted from every timestamp, as ffmpeg does).
    pub start_time: f64,
    pub video: Option<VideoInfo>,
    /// Every recognised (decodable) audio stream, in container order.
    pub audio: Vec<AudioInfo>,
}

impl MediaInfo {
    /// A WebM source is encoded at a constant frame rate (§3.1).
    pub fn is_webm_like(&self, extension: &str) -> bool {
        extension == "webm"
            || self
                .video
                .as_ref()
                .is_some_and(|v| matches!(v.codec.as_str(), "vp8" | "vp9" | "av1"))
    }
}

/// `-r <round(src fps) clamped 6..30, default 30>` for WebM sources.
pub fn cfr_rate(fps: f64) -> u32 {
    if fps.is_finite() && fps > 0.0 {
        (fps.round() as u32).clamp(6, 30)
    } else {
        30
    }
}

/// Refuses sources that cannot give Esup-Pod its outputs.
pub fn validate(info: &MediaInfo) -> Result<(), RunnerError> {
    if info.video.is_none() && info.audio.is_empty() {
        return Err(RunnerError::invalid_input(
            "NoUsableStream",
            "the source has no decodable video or audio stream",
        ));
    }
    if !(info.duration.is_finite() && info.duration > 0.0) {
        return Err(RunnerError::invalid_input(
            "ZeroDuration",
            "the source has a zero or unknown duration",
        ));
    }
    if let Some(v) = &info.video
        && (v.width == 0 || v.height == 0)
    {
        return Err(RunnerError::invalid_input(
            "NoUsableStream",
            "the video stream has no picture size",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> MediaInfo {
        MediaInfo {
            format_name: "mov,mp4".into(),
            duration: 6.0,
            start_time: 0.0,
            video: Some(VideoInfo {
                index: 0,
                codec: "h264".into(),
                width: 1920,
                height: 1080,
                fps: 25.0,
                pix_fmt: "yuv420p".into(),
                profile: Some("High".into()),
            }),
            audio: vec![AudioInfo {
                index: 1,
                codec: "aac".into(),
                channels: 2,
                sample_rate: 48000,
            }],
        }
    }

    #[test]
    fn validation() {
        assert!(validate(&info()).is_ok());
        let mut zero = info();
        zero.duration = 0.0;
        assert_eq!(
            validate(&zero).map_err(|e| e.category()),
            Err("ZeroDuration")
        );
        let mut none = info();
        none.video = None;
        none.audio.clear();
        assert_eq!(
            validate(&none).map_err(|e| e.category()),
            Err("NoUsableStream")
        );
        let mut audio_only = info();
        audio_only.video = None;
        assert!(validate(&audio_only).is_ok());
    }

    #[test]
    fn webm_detection_and_rate() {
        let mut i = info();
        assert!(!i.is_webm_like("mp4"));
        assert!(i.is_webm_like("webm"));
        if let Some(v) = i.video.as_mut() {
            v.codec = "vp9".into();
        }
        assert!(i.is_webm_like("mkv"));
        assert_eq!(cfr_rate(29.97), 30);
        assert_eq!(cfr_rate(60.0), 30);
        assert_eq!(cfr_rate(2.0), 6);
        assert_eq!(cfr_rate(0.0), 30);
        assert_eq!(cfr_rate(f64::NAN), 30);
    }
}
