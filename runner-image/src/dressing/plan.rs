//! Dressing (protocol §3.1): a watermark over the main video and credits videos joined
//! around it. Pure: the logo's geometry, the filter description of each segment, and the
//! segments' frame and sample counts; also the downloaded files. `render` draws them with
//! libav.
//!
//! Order, as the reference runner: the cut is applied to the main video first, then the
//! watermark (on the main video only), then the credits are joined.

use std::path::PathBuf;

use esup_api::encoding::{Watermark, WatermarkPosition};

use crate::timeline::{Rate, SAMPLE_RATE};

/// The downloaded dressing files.
#[derive(Clone, Debug, Default)]
pub struct Assets {
    pub watermark: Option<(PathBuf, Watermark)>,
    pub opening: Option<PathBuf>,
    pub ending: Option<PathBuf>,
}

impl Assets {
    pub fn is_empty(&self) -> bool {
        self.watermark.is_none() && self.opening.is_none() && self.ending.is_none()
    }
}

/// The reference runner dresses a 1080-line frame: logo a tenth of it high, 54 px from the
/// edges. Here the frame keeps its own height, so the margin keeps the same proportion
/// (exactly 54 px at 1080p).
pub const REFERENCE_HEIGHT: u32 = 1080;
pub const REFERENCE_MARGIN: u32 = 54;
/// Samples per AAC frame: each segment's audio is a whole number of frames, since an AAC
/// encoder takes a short frame only at the very end.
pub const AAC_FRAME: u64 = 1024;

/// Where and how large the logo is drawn, in pixels of the main frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogoPlacement {
    pub width: u32,
    pub height: u32,
    pub x: u32,
    pub y: u32,
}

/// `scale2ref=oh*mdar:ih*0.1`: the logo is a tenth of the frame's height and keeps its
/// display aspect ratio; it sits `margin` from the two edges of its corner.
pub fn logo_placement(
    frame: (u32, u32),
    logo: (u32, u32),
    logo_sar: (i32, i32),
    position: WatermarkPosition,
) -> LogoPlacement {
    let (fw, fh) = frame;
    let height = ((f64::from(fh) * 0.1).round() as u32).max(1);
    let sar = if logo_sar.0 > 0 && logo_sar.1 > 0 {
        f64::from(logo_sar.0) / f64::from(logo_sar.1)
    } else {
        1.0
    };
    let dar = f64::from(logo.0.max(1)) * sar / f64::from(logo.1.max(1));
    let width = ((f64::from(height) * dar).round() as u32).clamp(1, fw.max(1));
    let margin = margin(fh);
    let left = matches!(
        position,
        WatermarkPosition::TopLeft | WatermarkPosition::BottomLeft
    );
    let top = matches!(
        position,
        WatermarkPosition::TopLeft | WatermarkPosition::TopRight
    );
    let x = if left {
        margin
    } else {
        fw.saturating_sub(width + margin)
    };
    let y = if top {
        margin
    } else {
        fh.saturating_sub(height + margin)
    };
    LogoPlacement {
        width,
        height,
        x,
        y,
    }
}

/// 54 px at 1080 lines, in proportion elsewhere.
pub fn margin(frame_height: u32) -> u32 {
    ((f64::from(frame_height) * f64::from(REFERENCE_MARGIN) / f64::from(REFERENCE_HEIGHT)).round())
        as u32
}

/// 4:2:0 needs even sizes: an odd main frame loses its last line or column.
pub fn even(size: (u32, u32)) -> (u32, u32) {
    ((size.0 & !1).max(2), (size.1 & !1).max(2))
}

/// `fps`, then as many frames as planned: the last frame is repeated if the segment's
/// video ends early, the rest is dropped, so every segment lasts exactly `frames`.
fn exact_frames(rate: Rate, frames: u64) -> String {
    format!("fps={rate},tpad=stop_mode=clone:stop=-1,trim=end_frame={frames}")
}

/// The main segment: `[in]` (and `[logo]` for a watermark) to `[out0]`. `cut` is the
/// kept window in seconds from the source's start.
pub fn main_video_spec(
    cut: Option<(f64, f64)>,
    frame: (u32, u32),
    rate: Rate,
    frames: u64,
    logo: Option<(LogoPlacement, u8)>,
) -> String {
    let (w, h) = even(frame);
    let mut spec = String::from("[in]");
    if let Some((s, e)) = cut {
        spec.push_str(&format!("trim=start={s}:end={e},setpts=PTS-{s}/TB,"));
    }
    if (w, h) != frame {
        spec.push_str(&format!("crop={w}:{h}:0:0,"));
    }
    spec.push_str(&exact_frames(rate, frames));
    spec.push_str(",format=yuv420p");
    match logo {
        None => spec.push_str("[out0]"),
        Some((p, opacity)) => spec.push_str(&format!(
            "[main];[logo]format=rgba,colorchannelmixer=aa={:.2},scale={}:{}[wm];\
             [main][wm]overlay=x={}:y={},format=yuv420p[out0]",
            f64::from(opacity.min(100)) / 100.0,
            p.width,
            p.height,
            p.x,
            p.y
        )),
    }
    spec
}

/// A credits segment, normalised to the main frame: fitted inside it with its aspect kept,
/// centred on black, square pixels, the main frame rate.
pub fn credits_video_spec(frame: (u32, u32), rate: Rate, frames: u64) -> String {
    let (w, h) = even(frame);
    format!(
        "[in]scale={w}:{h}:force_original_aspect_ratio=decrease:force_divisible_by=2,\
         pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,setsar=1,{},format=yuv420p[out0]",
        exact_frames(rate, frames)
    )
}

/// 48 kHz stereo, gaps filled, then exactly `samples` samples (padded with silence).
fn exact_samples(samples: u64) -> String {
    format!(
        "aresample={SAMPLE_RATE}:async=1,aformat=sample_fmts=fltp:sample_rates={SAMPLE_RATE}:channel_layouts=stereo,apad,atrim=end_sample={samples}"
    )
}

/// A segment's own audio (the main video's cut when given).
pub fn audio_spec(cut: Option<(f64, f64)>, samples: u64) -> String {
    let mut spec = String::from("[in]");
    if let Some((s, e)) = cut {
        spec.push_str(&format!("atrim=start={s}:end={e},asetpts=PTS-{s}/TB,"));
    }
    spec.push_str(&exact_samples(samples));
    spec.push_str("[out0]");
    spec
}

/// Silence for a segment without audio (the reference's `anullsrc`).
pub fn silence_spec(samples: u64) -> String {
    format!(
        "anullsrc=r={SAMPLE_RATE}:cl=stereo,aformat=sample_fmts=fltp,atrim=end_sample={samples}[out0]"
    )
}

/// Samples of each segment's audio, given each segment's video frames: whole AAC frames,
/// so that the audio ends within one AAC frame (21 ms) after the video at every joint
/// and never drifts.
pub fn audio_samples(frames: &[u64], rate: Rate) -> Vec<u64> {
    let mut total_frames = 0_u64;
    let mut written = 0_u64;
    frames
        .iter()
        .map(|f| {
            total_frames += f;
            let end = u128::from(total_frames) * u128::from(SAMPLE_RATE) * u128::from(rate.den);
            let end = end.div_ceil(u128::from(rate.num.max(1)));
            let end = u64::try_from(end.div_ceil(u128::from(AAC_FRAME)))
                .unwrap_or(u64::MAX / AAC_FRAME)
                * AAC_FRAME;
            let samples = end.saturating_sub(written);
            written += samples;
            samples
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logo_is_a_tenth_high_in_its_corner() {
        // 1080p: 108 px high, 54 px margin, as the reference.
        let p = logo_placement(
            (1920, 1080),
            (200, 100),
            (1, 1),
            WatermarkPosition::TopRight,
        );
        assert_eq!(
            p,
            LogoPlacement {
                width: 216,
                height: 108,
                x: 1920 - 216 - 54,
                y: 54
            }
        );
        let p = logo_placement(
            (640, 360),
            (100, 100),
            (0, 1),
            WatermarkPosition::BottomLeft,
        );
        assert_eq!((p.width, p.height, p.x, p.y), (36, 36, 18, 360 - 36 - 18));
        let p = logo_placement((640, 360), (100, 100), (1, 1), WatermarkPosition::TopLeft);
        assert_eq!((p.x, p.y), (18, 18));
        let p = logo_placement(
            (640, 360),
            (100, 100),
            (1, 1),
            WatermarkPosition::BottomRight,
        );
        assert_eq!((p.x, p.y), (640 - 36 - 18, 360 - 36 - 18));
        // Anamorphic logo: its display aspect counts.
        let p = logo_placement((1920, 1080), (100, 100), (2, 1), WatermarkPosition::TopLeft);
        assert_eq!(p.width, 216);
        // A very wide logo never leaves the frame.
        let p = logo_placement((320, 240), (10000, 10), (1, 1), WatermarkPosition::TopRight);
        assert!(p.width <= 320);
    }

    #[test]
    fn rates_and_frames() {
        assert_eq!(Rate::of_source(25, 1), Rate { num: 25, den: 1 });
        assert_eq!(Rate::of_source(30000, 1001).to_string(), "30000/1001");
        assert_eq!(Rate::of_source(0, 1), Rate { num: 25, den: 1 });
        assert_eq!(Rate::of_source(90000, 1), Rate { num: 25, den: 1 });
        assert_eq!(Rate::of_source(-1, 0), Rate { num: 25, den: 1 });
        let r = Rate { num: 25, den: 1 };
        assert_eq!(r.frames(2.0), 50);
        assert_eq!(r.frames(0.0), 1);
        assert_eq!(Rate::of_source(30000, 1001).frames(10.0), 300);
        assert_eq!(even((641, 359)), (640, 358));
    }

    #[test]
    fn audio_of_each_segment_is_whole_aac_frames_and_follows_the_video() {
        let r = Rate { num: 25, den: 1 };
        let frames = [50, 101, 37];
        let samples = audio_samples(&frames, r);
        assert!(samples.iter().all(|s| s % AAC_FRAME == 0), "{samples:?}");
        let mut video = 0.0;
        let mut audio = 0.0;
        for (f, s) in frames.iter().zip(&samples) {
            video += *f as f64 / 25.0;
            audio += *s as f64 / 48000.0;
            assert!(
                audio >= video && audio - video < 1024.0 / 48000.0,
                "{audio} vs {video}"
            );
        }
    }

    #[test]
    fn segment_graphs() {
        let r = Rate { num: 25, den: 1 };
        assert_eq!(
            main_video_spec(None, (640, 360), r, 100, None),
            "[in]fps=25/1,tpad=stop_mode=clone:stop=-1,trim=end_frame=100,format=yuv420p[out0]"
        );
        let logo = logo_placement((640, 360), (100, 50), (1, 1), WatermarkPosition::TopRight);
        let spec = main_video_spec(Some((1.5, 4.0)), (641, 360), r, 63, Some((logo, 50)));
        assert!(
            spec.starts_with(
                "[in]trim=start=1.5:end=4,setpts=PTS-1.5/TB,crop=640:360:0:0,fps=25/1,"
            ),
            "{spec}"
        );
        assert!(
            spec.contains("[logo]format=rgba,colorchannelmixer=aa=0.50,scale=72:36[wm]"),
            "{spec}"
        );
        assert!(
            spec.ends_with("[main][wm]overlay=x=550:y=18,format=yuv420p[out0]"),
            "{spec}"
        );
        let credits = credits_video_spec((1280, 720), r, 75);
        assert!(credits.contains("scale=1280:720:force_original_aspect_ratio=decrease"));
        assert!(credits.contains("pad=1280:720:(ow-iw)/2:(oh-ih)/2,setsar=1,fps=25/1"));
        assert_eq!(
            audio_spec(Some((1.0, 3.0)), 96256),
            "[in]atrim=start=1:end=3,asetpts=PTS-1/TB,aresample=48000:async=1,\
             aformat=sample_fmts=fltp:sample_rates=48000:channel_layouts=stereo,apad,\
             atrim=end_sample=96256[out0]"
        );
        assert!(silence_spec(1024).starts_with("anullsrc=r=48000:cl=stereo,"));
    }
}
