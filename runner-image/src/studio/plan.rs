//! The studio mix (protocol §3.2), pure: the layout's geometry, the mix's filter
//! description, its length and its encoder settings. `mix` renders it with libav.

use esup_api::encoding::{StudioLayout, StudioOptions};

use crate::ladder::scaled_width;
use crate::timeline::Rate;

/// The mix is always 30 fps, constant (`fps=30`, `-r 30`).
pub const MIX_RATE: Rate = Rate { num: 30, den: 1 };
/// Picture-in-picture: the presenter is a quarter of the frame's height, 10 px from the
/// right edge and from the top (`piph`) or bottom (`pipb`).
pub const PIP_MARGIN: u32 = 10;
pub const STUDIO_BASE: &str = "studio_base";

/// What the mix is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrangement {
    /// Only one track: it alone, at its own height.
    Single,
    Layout(StudioLayout),
}

/// Sizes of the mixed picture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub width: u32,
    pub height: u32,
    /// Height each input is scaled to: presentation (or the single track), then presenter.
    pub heights: [u32; 2],
    /// The presenter's rectangle in a picture-in-picture: (x, y, w, h).
    pub pip: Option<(u32, u32, u32, u32)>,
}

fn even_down(v: u32) -> u32 {
    (v & !1).max(2)
}

/// `first` is the presentation (or the only track), `second` the presenter.
pub fn geometry(
    arrangement: Arrangement,
    first: (u32, u32),
    second: Option<(u32, u32)>,
) -> Geometry {
    let (fw, fh) = first;
    match (arrangement, second) {
        (Arrangement::Single, _) | (_, None) => {
            let h = even_down(fh);
            Geometry {
                width: scaled_width(fw, fh, h),
                height: h,
                heights: [h, 0],
                pip: None,
            }
        }
        (Arrangement::Layout(StudioLayout::SideBySide), Some((sw, sh))) => {
            // hstack at the smaller of the two heights.
            let h = even_down(fh.min(sh));
            Geometry {
                width: scaled_width(fw, fh, h) + scaled_width(sw, sh, h),
                height: h,
                heights: [h, h],
                pip: None,
            }
        }
        (Arrangement::Layout(layout), Some((sw, sh))) => {
            let h = even_down(fh);
            let w = scaled_width(fw, fh, h);
            let ph = even_down(h / 4);
            let pw = scaled_width(sw, sh, ph).min(w);
            let x = w.saturating_sub(pw + PIP_MARGIN);
            let y = if layout == StudioLayout::PresenterBottomRight {
                h.saturating_sub(ph + PIP_MARGIN)
            } else {
                PIP_MARGIN
            };
            Geometry {
                width: w,
                height: h,
                heights: [h, ph],
                pip: Some((x, y, pw, ph)),
            }
        }
    }
}

/// The mix's length: the longer track, cut by the SMIL window when there is one.
pub fn mix_duration(durations: &[f64], cut: Option<(f64, f64)>) -> f64 {
    let longest = durations.iter().copied().fold(0.0_f64, f64::max);
    match cut {
        None => longest,
        Some((begin, end)) => (end.min(longest) - begin).max(0.0),
    }
}

/// Per input: its start at 0 (after the SMIL cut), 30 fps, scaled to `height`, 4:2:0,
/// square pixels; the last frame held as long as the mix lasts.
fn input_chain(name: &str, cut: Option<(f64, f64)>, height: u32, label: &str) -> String {
    let mut chain = format!("[{name}]");
    if let Some((b, e)) = cut {
        chain.push_str(&format!("trim=start={b}:end={e},"));
    }
    chain.push_str(&format!(
        "setpts=PTS-STARTPTS,fps={MIX_RATE},scale=-2:{height},setsar=1,format=yuv420p,tpad=stop_mode=clone:stop=-1[{label}]"
    ));
    chain
}

/// The video graph of the mix: sources `[in0]` (presentation or the single track) and
/// `[in1]` (presenter), sink `[out0]`, exactly `frames` frames.
pub fn mix_video_spec(
    arrangement: Arrangement,
    geometry: &Geometry,
    two_inputs: bool,
    cut: Option<(f64, f64)>,
    frames: u64,
) -> String {
    let end = format!("trim=end_frame={frames},format=yuv420p,setsar=1[out0]");
    if !two_inputs || arrangement == Arrangement::Single {
        let chain = input_chain("in0", cut, geometry.heights[0], "v");
        return format!("{chain};[v]{end}");
    }
    let first = input_chain("in0", cut, geometry.heights[0], "a");
    match geometry.pip {
        None => {
            let second = input_chain("in1", cut, geometry.heights[1], "b");
            format!("{first};{second};[a][b]hstack=inputs=2,{end}")
        }
        Some((x, y, _, _)) => {
            // The presenter is not held past its end: it leaves the picture, as the
            // reference's `eof_action=pass`.
            let mut second = String::from("[in1]");
            if let Some((b, e)) = cut {
                second.push_str(&format!("trim=start={b}:end={e},"));
            }
            second.push_str(&format!(
                "setpts=PTS-STARTPTS,fps={MIX_RATE},scale=-2:{},setsar=1,format=yuv420p[b]",
                geometry.heights[1]
            ));
            format!(
                "{first};{second};[a][b]overlay=x={x}:y={y}:eof_action=pass:shortest=0:repeatlast=0,{end}"
            )
        }
    }
}

/// The mix's audio: the chosen track's, cut, 48 kHz, mono or stereo as it was.
pub fn mix_audio_spec(cut: Option<(f64, f64)>, duration: f64, stereo: bool) -> String {
    let mut spec = String::from("[in]");
    if let Some((b, e)) = cut {
        spec.push_str(&format!("atrim=start={b}:end={e},"));
    }
    let layout = if stereo { "stereo" } else { "mono" };
    spec.push_str(&format!(
        "asetpts=PTS-STARTPTS,atrim=end={duration},aresample=48000,aformat=sample_fmts=fltp:sample_rates=48000:channel_layouts={layout}[out0]"
    ));
    spec
}

/// libx264 settings of the mix: `studio_crf`, `studio_preset` and `studio_audio_bitrate`,
/// else 23 / medium (20 / slow for a single track, the reference's `STUDIO_DEFAULT_*`) and
/// 192 kbit/s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MixSettings {
    pub crf: u8,
    pub preset: String,
    pub audio_bitrate: u64,
    /// Encode the mix with NVENC (a GPU with the engine, and `studio_allow_nvenc`).
    pub nvenc: bool,
}

pub fn mix_settings(options: Option<&StudioOptions>, single: bool) -> MixSettings {
    let (crf, preset) = if single { (20, "slow") } else { (23, "medium") };
    MixSettings {
        crf: options.and_then(|o| o.crf).unwrap_or(crf),
        preset: options
            .and_then(|o| o.preset.clone())
            .unwrap_or_else(|| preset.to_owned()),
        audio_bitrate: options
            .and_then(|o| o.audio_bitrate.as_deref())
            .and_then(crate::ladder::parse_bitrate)
            .unwrap_or(192_000),
        nvenc: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn side_by_side_at_the_smaller_height() {
        let g = geometry(
            Arrangement::Layout(StudioLayout::SideBySide),
            (1280, 720),
            Some((640, 480)),
        );
        // 1280x720 at 480 lines: 853.3 → 854 (even); the presenter keeps 640.
        assert_eq!((g.width, g.height, g.heights), (854 + 640, 480, [480, 480]));
        assert_eq!(g.pip, None);
    }

    #[test]
    fn picture_in_picture_corners() {
        let top = geometry(
            Arrangement::Layout(StudioLayout::PresenterTopRight),
            (1280, 720),
            Some((640, 480)),
        );
        assert_eq!((top.width, top.height), (1280, 720));
        // A quarter of 720 = 180 lines; 640x480 at 180 lines = 240 wide.
        assert_eq!(top.pip, Some((1280 - 240 - 10, 10, 240, 180)));
        let bottom = geometry(
            Arrangement::Layout(StudioLayout::PresenterBottomRight),
            (1280, 720),
            Some((640, 480)),
        );
        assert_eq!(bottom.pip, Some((1030, 720 - 180 - 10, 240, 180)));
    }

    #[test]
    fn a_single_track_is_itself() {
        let g = geometry(
            Arrangement::Layout(StudioLayout::SideBySide),
            (641, 361),
            None,
        );
        assert_eq!((g.width, g.height, g.pip), (640, 360, None));
        assert_eq!(
            geometry(Arrangement::Single, (1280, 720), Some((1, 1))).width,
            1280
        );
    }

    #[test]
    fn duration_and_graphs() {
        assert_eq!(mix_duration(&[4.0, 5.5], None), 5.5);
        assert_eq!(mix_duration(&[4.0, 5.5], Some((1.0, 3.0))), 2.0);
        assert_eq!(mix_duration(&[4.0], Some((1.0, 30.0))), 3.0);
        assert_eq!(mix_duration(&[4.0], Some((5.0, 30.0))), 0.0);
        let mid = Arrangement::Layout(StudioLayout::SideBySide);
        let g = geometry(mid, (1280, 720), Some((640, 480)));
        let spec = mix_video_spec(mid, &g, true, Some((1.0, 3.0)), 60);
        assert!(
            spec.starts_with("[in0]trim=start=1:end=3,setpts=PTS-STARTPTS,fps=30/1,scale=-2:480,"),
            "{spec}"
        );
        assert!(
            spec.contains("[a][b]hstack=inputs=2,trim=end_frame=60,"),
            "{spec}"
        );
        let pip = Arrangement::Layout(StudioLayout::PresenterBottomRight);
        let g = geometry(pip, (1280, 720), Some((640, 480)));
        let spec = mix_video_spec(pip, &g, true, None, 90);
        assert!(
            spec.contains("scale=-2:180,setsar=1,format=yuv420p[b]"),
            "{spec}"
        );
        assert!(
            spec.contains("overlay=x=1030:y=530:eof_action=pass"),
            "{spec}"
        );
        let single = mix_video_spec(Arrangement::Single, &g, false, None, 90);
        assert!(
            single.starts_with("[in0]setpts=PTS-STARTPTS,fps=30/1,scale=-2:720,"),
            "{single}"
        );
        assert!(!single.contains("in1"));
        assert_eq!(
            mix_audio_spec(Some((1.0, 3.0)), 2.0, false),
            "[in]atrim=start=1:end=3,asetpts=PTS-STARTPTS,atrim=end=2,aresample=48000,\
             aformat=sample_fmts=fltp:sample_rates=48000:channel_layouts=mono[out0]"
        );
    }

    #[test]
    fn settings_defaults_and_overrides() {
        assert_eq!(
            mix_settings(None, false),
            MixSettings {
                crf: 23,
                preset: "medium".into(),
                audio_bitrate: 192_000,
                nvenc: false,
            }
        );
        assert_eq!(mix_settings(None, true).crf, 20);
        assert_eq!(mix_settings(None, true).preset, "slow");
        let o = StudioOptions {
            crf: Some(30),
            preset: Some("veryfast".into()),
            audio_bitrate: Some("128k".into()),
            ..Default::default()
        };
        assert_eq!(
            mix_settings(Some(&o), true),
            MixSettings {
                crf: 30,
                preset: "veryfast".into(),
                audio_bitrate: 128_000,
                nvenc: false,
            }
        );
    }
}
