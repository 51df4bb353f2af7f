//! Where in time things are taken: the cut window, thumbnail instants, the overview sprite's
//! sampling and its WebVTT (protocol §3.1); the frame rate and audio sample rate of the
//! intermediates. Pure.

/// The kept window of the source, in seconds from its start.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    pub start: f64,
    pub end: f64,
}

impl Window {
    pub fn duration(&self) -> f64 {
        (self.end - self.start).max(0.0)
    }
}

/// `-ss <start> -to <end>`: `end` clamped to the initial duration Esup-Pod gave and to the
/// source's own; without a cut, the whole source.
pub fn window(source_duration: f64, cut: Option<(f64, f64, Option<f64>)>) -> Window {
    match cut {
        None => Window {
            start: 0.0,
            end: source_duration,
        },
        Some((start, end, initial)) => {
            let end = end
                .min(initial.unwrap_or(f64::INFINITY))
                .min(source_duration);
            let start = start.clamp(0.0, end.max(0.0));
            Window { start, end }
        }
    }
}

/// Thumbnail instants, relative to the window: `int(dur * [.25, .5, .75])`.
pub fn thumbnail_times(duration: f64) -> [u64; 3] {
    [0.25, 0.5, 0.75].map(|f| (duration * f).floor().max(0.0) as u64)
}

/// Widest sprite: 16384 px, i.e. 102 tiles of 160 px.
pub const MAX_TILES: u32 = 16384 / TILE_WIDTH;
pub const TILE_WIDTH: u32 = 160;
pub const TILE_HEIGHT: u32 = 90;

/// The overview's sampling: one tile per `interval` seconds (1 s, growing so that the tiles
/// fit one row), `count` tiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overview {
    pub interval: u32,
    pub count: u32,
}

pub fn overview(duration: f64) -> Overview {
    let d = duration.max(0.0);
    let interval = ((d / f64::from(MAX_TILES)).ceil() as u32).max(1);
    let count = ((d / f64::from(interval)).floor() as u32).clamp(1, MAX_TILES);
    Overview { interval, count }
}

fn vtt_time(seconds: u64) -> String {
    format!(
        "{:02}:{:02}:{:02}.000",
        seconds / 3600,
        (seconds / 60) % 60,
        seconds % 60
    )
}

/// `generate_overview_vtt`: cue i spans `int(i*dur/N)` to `int((i+1)*dur/N)` and shows tile i.
pub fn overview_vtt(duration: f64, count: u32, sprite: &str) -> String {
    let mut out = String::from("WEBVTT\n\n");
    let n = f64::from(count.max(1));
    for i in 0..count {
        let start = (f64::from(i) * duration / n).floor().max(0.0) as u64;
        let end = (f64::from(i + 1) * duration / n).floor().max(0.0) as u64;
        out.push_str(&format!(
            "{} --> {}\n{sprite}#xywh={},0,{TILE_WIDTH},{TILE_HEIGHT}\n\n",
            vtt_time(start),
            vtt_time(end),
            i * TILE_WIDTH
        ));
    }
    out
}

/// Audio of the intermediates (the dressed file, the studio mix): 48 kHz, as the
/// reference's `aformat`.
pub const SAMPLE_RATE: u32 = 48_000;

/// A frame rate as a fraction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub num: u32,
    pub den: u32,
}

impl Rate {
    /// The main video's own rate when it is a plausible one (1 to 120 fps), else 25.
    pub fn of_source(num: i32, den: i32) -> Self {
        let fallback = Self { num: 25, den: 1 };
        match (u32::try_from(num), u32::try_from(den)) {
            (Ok(n), Ok(d)) if n > 0 && d > 0 => {
                let fps = f64::from(n) / f64::from(d);
                if (1.0..=120.0).contains(&fps) {
                    Self { num: n, den: d }
                } else {
                    fallback
                }
            }
            _ => fallback,
        }
    }

    pub fn fps(self) -> f64 {
        f64::from(self.num) / f64::from(self.den.max(1))
    }

    /// Frames that fill `seconds` (at least one).
    pub fn frames(self, seconds: f64) -> u64 {
        ((seconds.max(0.0) * self.fps()).round() as u64).max(1)
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.num, self.den)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_windows_are_clamped() {
        assert_eq!(
            window(10.0, None),
            Window {
                start: 0.0,
                end: 10.0
            }
        );
        assert_eq!(
            window(10.0, Some((2.0, 5.0, Some(9.0)))),
            Window {
                start: 2.0,
                end: 5.0
            }
        );
        assert_eq!(window(10.0, Some((2.0, 50.0, Some(8.0)))).end, 8.0);
        assert_eq!(window(10.0, Some((2.0, 50.0, None))).end, 10.0);
        let empty = window(10.0, Some((12.0, 50.0, None)));
        assert_eq!(empty.duration(), 0.0);
    }

    #[test]
    fn thumbnails_at_quarters() {
        assert_eq!(thumbnail_times(6.0), [1, 3, 4]);
        assert_eq!(thumbnail_times(100.0), [25, 50, 75]);
        assert_eq!(thumbnail_times(0.5), [0, 0, 0]);
    }

    #[test]
    fn overview_fits_one_row() {
        assert_eq!(
            overview(6.0),
            Overview {
                interval: 1,
                count: 6
            }
        );
        assert_eq!(
            overview(6.9),
            Overview {
                interval: 1,
                count: 6
            }
        );
        assert_eq!(
            overview(0.4),
            Overview {
                interval: 1,
                count: 1
            }
        );
        assert_eq!(
            overview(102.0),
            Overview {
                interval: 1,
                count: 102
            }
        );
        let long = overview(3600.0);
        assert_eq!(
            long,
            Overview {
                interval: 36,
                count: 100
            }
        );
        for d in [1.0, 50.0, 103.0, 7200.0, 86_399.0] {
            let o = overview(d);
            assert!(o.count * TILE_WIDTH <= 16384, "{d}");
        }
    }

    #[test]
    fn vtt_matches_the_reference_format() {
        let vtt = overview_vtt(7.0, 2, "overview.png");
        assert_eq!(
            vtt,
            "WEBVTT\n\n00:00:00.000 --> 00:00:03.000\noverview.png#xywh=0,0,160,90\n\n\
             00:00:03.000 --> 00:00:07.000\noverview.png#xywh=160,0,160,90\n\n"
        );
        assert!(overview_vtt(3725.0, 1, "o.png").contains("00:00:00.000 --> 01:02:05.000"));
    }
}
