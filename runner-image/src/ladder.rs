//! The rendition ladder (protocol §3.1): the default ladder, bitrate inference, which
//! renditions a source can fill, and the rate control of each. Pure.

use esup_api::encoding::Rendition;

/// One rendition to encode, with its bitrates resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rung {
    pub height: u32,
    /// Esup-Pod's nominal width: only the `rendition` label ("1280x720") uses it; the picture
    /// keeps the source's aspect ratio (`scale=-2:<h>`), as the reference runner does.
    pub width: u32,
    /// Video bitrate in bit/s.
    pub video_bitrate: u64,
    /// Audio bitrate in bit/s.
    pub audio_bitrate: u64,
    pub encode_mp4: bool,
}

impl Rung {
    /// Esup-Pod's resolution label, which it matches against its `VideoRendition` table.
    pub fn resolution(&self) -> String {
        format!("{}x{}", self.width, self.height)
    }
}

/// The reference runner's (and Esup-Pod's fixture) default ladder.
pub const DEFAULT_LADDER: [(u32, u32, u64, u64, bool); 3] = [
    (360, 640, 750_000, 96_000, true),
    (720, 1280, 2_000_000, 128_000, true),
    (1080, 1920, 3_000_000, 192_000, false),
];

/// Bitrates for a rung that gives none: its default rung's, else by height bracket.
fn inferred_bitrates(height: u32) -> (u64, u64) {
    if let Some(&(_, _, v, a, _)) = DEFAULT_LADDER.iter().find(|r| r.0 == height) {
        return (v, a);
    }
    match height {
        0..=240 => (400_000, 64_000),
        241..=360 => (750_000, 96_000),
        361..=480 => (1_000_000, 128_000),
        481..=720 => (2_000_000, 128_000),
        721..=1080 => (3_000_000, 192_000),
        1081..=1440 => (6_000_000, 192_000),
        _ => (12_000_000, 192_000),
    }
}

/// Parses "750k", "2M", "3000000" into bit/s.
pub fn parse_bitrate(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, factor) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1_000),
        b'm' | b'M' => (&s[..s.len() - 1], 1_000_000),
        _ => (s, 1),
    };
    let value: f64 = digits.parse().ok()?;
    (value.is_finite() && value > 0.0).then(|| (value * factor as f64).round() as u64)
}

/// The spec's ladder (already merged over the default by the webhook; empty: the default),
/// sorted by height, bitrates resolved.
pub fn ladder(renditions: &[Rendition]) -> Vec<Rung> {
    let mut rungs: Vec<Rung> = if renditions.is_empty() {
        DEFAULT_LADDER
            .iter()
            .map(
                |&(height, width, video_bitrate, audio_bitrate, encode_mp4)| Rung {
                    height,
                    width,
                    video_bitrate,
                    audio_bitrate,
                    encode_mp4,
                },
            )
            .collect()
    } else {
        renditions
            .iter()
            .map(|r| {
                let (v, a) = inferred_bitrates(r.height);
                Rung {
                    height: r.height,
                    width: r.width,
                    video_bitrate: r
                        .video_bitrate
                        .as_deref()
                        .and_then(parse_bitrate)
                        .unwrap_or(v),
                    audio_bitrate: r
                        .audio_bitrate
                        .as_deref()
                        .and_then(parse_bitrate)
                        .unwrap_or(a),
                    encode_mp4: r.encode_mp4,
                }
            })
            .collect()
    };
    rungs.sort_by_key(|r| r.height);
    rungs.dedup_by_key(|r| r.height);
    rungs
}

/// `select_renditions_for_encode`: the smallest rung always, larger ones only when the source
/// is at least that high.
pub fn select(ladder: &[Rung], source_height: u32) -> Vec<Rung> {
    ladder
        .iter()
        .enumerate()
        .filter(|(i, r)| *i == 0 || source_height >= r.height)
        .map(|(_, r)| r.clone())
        .collect()
}

/// x264 rate control of a rendition, in bit/s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateControl {
    pub bitrate: u64,
    pub minrate: u64,
    pub maxrate: u64,
    pub bufsize: u64,
}

/// The legacy table when the bitrate is the default one for that height, else ⅔·b / 3⁄2·b / 2·b.
pub fn rate_control(rung: &Rung) -> RateControl {
    let b = rung.video_bitrate;
    let legacy = match (rung.height, b) {
        (360, 750_000) => Some((500_000, 1_000_000, 1_500_000)),
        (720, 2_000_000) => Some((1_000_000, 3_000_000, 4_000_000)),
        (1080, 3_000_000) => Some((2_000_000, 4_500_000, 6_000_000)),
        _ => None,
    };
    let (minrate, maxrate, bufsize) = legacy.unwrap_or((b * 2 / 3, b * 3 / 2, b * 2));
    RateControl {
        bitrate: b,
        minrate,
        maxrate,
        bufsize,
    }
}

/// Output width of `scale=-2:<h>`: the source aspect, rounded to the nearest even number
/// (libavfilter's `ff_scale_adjust_dimensions`).
pub fn scaled_width(source_width: u32, source_height: u32, height: u32) -> u32 {
    if source_height == 0 {
        return 2;
    }
    let num = u64::from(height) * u64::from(source_width);
    let den = u64::from(source_height) * 2;
    let halves = (num + den / 2) / den;
    u32::try_from(halves * 2).unwrap_or(u32::MAX).max(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendition(height: u32, width: u32, video: Option<&str>, mp4: bool) -> Rendition {
        Rendition {
            height,
            width,
            video_bitrate: video.map(str::to_owned),
            audio_bitrate: None,
            encode_mp4: mp4,
        }
    }

    #[test]
    fn empty_spec_is_the_default_ladder() {
        let l = ladder(&[]);
        assert_eq!(
            l.iter().map(|r| r.height).collect::<Vec<_>>(),
            [360, 720, 1080]
        );
        assert_eq!(l[0].resolution(), "640x360");
        assert!(l[0].encode_mp4 && l[1].encode_mp4 && !l[2].encode_mp4);
    }

    #[test]
    fn bitrates_parse_and_are_inferred() {
        assert_eq!(parse_bitrate("750k"), Some(750_000));
        assert_eq!(parse_bitrate("2M"), Some(2_000_000));
        assert_eq!(parse_bitrate("1.5M"), Some(1_500_000));
        assert_eq!(parse_bitrate("128000"), Some(128_000));
        assert_eq!(parse_bitrate("k"), None);
        assert_eq!(parse_bitrate("-3k"), None);
        let l = ladder(&[
            rendition(1080, 1920, None, false),
            rendition(480, 854, None, true),
        ]);
        assert_eq!(l[0].height, 480, "sorted by height");
        assert_eq!(
            (l[0].video_bitrate, l[0].audio_bitrate),
            (1_000_000, 128_000)
        );
        assert_eq!(
            (l[1].video_bitrate, l[1].audio_bitrate),
            (3_000_000, 192_000)
        );
    }

    #[test]
    fn selection_keeps_smallest_and_what_the_source_fills() {
        let l = ladder(&[]);
        let heights = |s: Vec<Rung>| s.iter().map(|r| r.height).collect::<Vec<_>>();
        assert_eq!(heights(select(&l, 1080)), [360, 720, 1080]);
        assert_eq!(heights(select(&l, 1079)), [360, 720]);
        assert_eq!(heights(select(&l, 720)), [360, 720]);
        assert_eq!(
            heights(select(&l, 240)),
            [360],
            "the smallest is always kept"
        );
        // Portrait 1080x1920: the literal source height decides, as in the reference runner.
        assert_eq!(heights(select(&l, 1920)), [360, 720, 1080]);
        let with_4k = ladder(&[
            rendition(360, 640, None, true),
            rendition(2160, 3840, None, false),
        ]);
        assert_eq!(heights(select(&with_4k, 2160)), [360, 2160]);
    }

    #[test]
    fn rate_control_legacy_and_proportional() {
        let l = ladder(&[]);
        let rc: Vec<_> = l.iter().map(rate_control).collect();
        assert_eq!(
            (rc[0].minrate, rc[0].maxrate, rc[0].bufsize),
            (500_000, 1_000_000, 1_500_000)
        );
        assert_eq!(
            (rc[1].minrate, rc[1].maxrate, rc[1].bufsize),
            (1_000_000, 3_000_000, 4_000_000)
        );
        assert_eq!(
            (rc[2].minrate, rc[2].maxrate, rc[2].bufsize),
            (2_000_000, 4_500_000, 6_000_000)
        );
        let custom = ladder(&[rendition(720, 1280, Some("1200k"), true)]);
        let rc = rate_control(&custom[0]);
        assert_eq!(
            (rc.bitrate, rc.minrate, rc.maxrate, rc.bufsize),
            (1_200_000, 800_000, 1_800_000, 2_400_000)
        );
    }

    #[test]
    fn scaled_widths_match_libavfilter() {
        assert_eq!(scaled_width(1920, 1080, 360), 640);
        assert_eq!(scaled_width(1920, 1080, 720), 1280);
        assert_eq!(scaled_width(1080, 1920, 360), 202);
        assert_eq!(scaled_width(640, 480, 360), 480);
        assert_eq!(scaled_width(1000, 1000, 0), 2);
    }
}
