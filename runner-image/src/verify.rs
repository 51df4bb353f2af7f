//! Output validation, as the reference runner does since 1.9.0: before a task is reported
//! completed, every output it is expected to produce must exist, be non-empty and, for media,
//! last no more than [`TOLERANCE_SECONDS`] less than the part of the source that was kept.
//! A longer output is fine (dressing credits add to it).
//!
//! The verdict is pure ([`verdict`], [`expected_encoding`], [`expected_transcription`]); the
//! I/O ([`observe`], [`check`]) stats each file and measures its duration with libav.

use std::path::Path;

use ff::Rescale;
use ffmpeg_next as ff;

use crate::error::RunnerError;
use crate::ladder::Rung;
use crate::naming::{INFO_JSON, Names, OVERVIEW_SPRITE, OVERVIEW_VTT};

/// How much shorter than expected an output may be, in seconds (the reference's 5 s).
pub const TOLERANCE_SECONDS: f64 = 5.0;

/// What an output must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A video rendition (HLS `.ts`, MP4): its video stream is measured, since the audio
    /// would hide a picture that stops early.
    Video,
    /// An audio derivative (MP3, M4A): its audio stream is measured.
    Audio,
    /// Present and non-empty only: playlists, pictures, WebVTT, `info_video.json`. An
    /// empty WebVTT (no speech) is still a file with its header, so it passes.
    File,
}

/// One output the task must produce, by its name in the output directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    pub name: String,
    pub kind: Kind,
}

impl Expected {
    pub fn new(name: String, kind: Kind) -> Self {
        Self { name, kind }
    }
}

/// What measuring a media output gave.
#[derive(Clone, Debug, PartialEq)]
pub enum Measure {
    /// Not media ([`Kind::File`]), or not measured because the file is missing or empty.
    NotMeasured,
    /// Seconds from the stream's first packet to the end of its last.
    Seconds(f64),
    /// libav cannot read it, or it has no stream of the expected kind.
    Unreadable(String),
}

/// What was found on disk for one expected output.
#[derive(Clone, Debug, PartialEq)]
pub struct Found {
    /// Size in bytes; `None` when the file does not exist.
    pub size: Option<u64>,
    pub measure: Measure,
}

/// Why the outputs cannot be delivered as a completed task.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum OutputError {
    #[error("output {name} is missing")]
    Missing { name: String },
    #[error("output {name} is empty (0 bytes)")]
    Empty { name: String },
    #[error("output {name} is not readable media: {why}")]
    Unreadable { name: String, why: String },
    #[error(
        "output {name} lasts {seconds:.2} s, {expected:.2} s expected (the source, or its cut): more than {TOLERANCE_SECONDS} s shorter"
    )]
    TooShort {
        name: String,
        seconds: f64,
        expected: f64,
    },
}

impl OutputError {
    /// Event reason and metric label.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Missing { .. } => "OutputMissing",
            Self::Empty { .. } => "OutputEmpty",
            Self::Unreadable { .. } => "OutputUnreadable",
            Self::TooShort { .. } => "OutputTooShort",
        }
    }

    /// The task's failure, final (exit 65): the same source gives the same outputs, so a
    /// retry would not help, and Esup-Pod is told `failed` with `context: <this message>`.
    pub fn into_runner_error(self, context: &str) -> RunnerError {
        RunnerError::invalid_input(self.category(), format!("{context}: {self}"))
    }
}

/// The verdict on one output: `expected_seconds` is the length of the kept part of the
/// source (the cut's, the studio timeline's); not finite or not positive, no length check.
pub fn verdict(output: &Expected, found: &Found, expected_seconds: f64) -> Result<(), OutputError> {
    let name = || output.name.clone();
    match found.size {
        None => return Err(OutputError::Missing { name: name() }),
        Some(0) => return Err(OutputError::Empty { name: name() }),
        Some(_) => {}
    }
    if output.kind == Kind::File {
        return Ok(());
    }
    let seconds = match &found.measure {
        Measure::Seconds(s) if s.is_finite() => *s,
        Measure::Seconds(s) => {
            return Err(OutputError::Unreadable {
                name: name(),
                why: format!("duration {s}"),
            });
        }
        Measure::Unreadable(why) => {
            return Err(OutputError::Unreadable {
                name: name(),
                why: why.clone(),
            });
        }
        Measure::NotMeasured => {
            return Err(OutputError::Unreadable {
                name: name(),
                why: "not measured".into(),
            });
        }
    };
    if expected_seconds.is_finite()
        && expected_seconds > 0.0
        && expected_seconds - seconds > TOLERANCE_SECONDS
    {
        return Err(OutputError::TooShort {
            name: name(),
            seconds,
            expected: expected_seconds,
        });
    }
    Ok(())
}

/// What an encoding (or a studio task's pass) must produce: per rendition its HLS playlist
/// and segment file, its MP4 when `encode_mp4`; the MP3 when the source has sound, and the
/// M4A when it has sound but no picture; pictures and overview when it has a picture;
/// `info_video.json` always.
pub fn expected_encoding(
    base: &str,
    rungs: &[Rung],
    has_video: bool,
    has_audio: bool,
) -> Vec<Expected> {
    let names = Names(base);
    let mut out = Vec::new();
    if has_video {
        for r in rungs {
            out.push(Expected::new(names.hls_playlist(r.height), Kind::File));
            out.push(Expected::new(names.hls_segment(r.height), Kind::Video));
        }
        for r in rungs.iter().filter(|r| r.encode_mp4) {
            out.push(Expected::new(names.mp4(r.height), Kind::Video));
        }
    }
    if has_audio {
        out.push(Expected::new(names.mp3(), Kind::Audio));
        if !has_video {
            out.push(Expected::new(names.m4a(), Kind::Audio));
        }
    }
    if has_video {
        for i in 0..3 {
            out.push(Expected::new(names.thumbnail(i), Kind::File));
        }
        out.push(Expected::new(OVERVIEW_SPRITE.into(), Kind::File));
        out.push(Expected::new(OVERVIEW_VTT.into(), Kind::File));
    }
    out.push(Expected::new(INFO_JSON.into(), Kind::File));
    out
}

/// What a transcription must produce: `<stem>.vtt`, the file Esup-Pod imports. No length
/// check: an empty WebVTT (no speech) is a valid result.
pub fn expected_transcription(stem: &str) -> Vec<Expected> {
    vec![
        Expected::new(format!("{stem}.vtt"), Kind::File),
        Expected::new(INFO_JSON.into(), Kind::File),
    ]
}

/// Stats `path` and, for media, measures it. Blocking.
pub fn observe(path: &Path, kind: Kind) -> Found {
    let size = std::fs::metadata(path)
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len());
    let measure = match (kind, size) {
        (Kind::File, _) | (_, None | Some(0)) => Measure::NotMeasured,
        (Kind::Video, _) => measure(path, ff::media::Type::Video),
        (Kind::Audio, _) => measure(path, ff::media::Type::Audio),
    };
    Found { size, measure }
}

/// The length of the first `medium` stream of `path`, from its packets: a header may claim
/// the whole length of a file cut short (an MP4's index, an MP3's Xing frame count), the
/// packets cannot.
fn measure(path: &Path, medium: ff::media::Type) -> Measure {
    let mut input = match crate::libav::probe::open_safe(path, &[]) {
        Ok(i) => i,
        Err(e) => return Measure::Unreadable(e.to_string()),
    };
    let Some((index, time_base, rate)) = input
        .streams()
        .find(|s| {
            s.parameters().medium() == medium
                && !s
                    .disposition()
                    .contains(ff::format::stream::Disposition::ATTACHED_PIC)
        })
        .map(|s| (s.index(), s.time_base(), s.avg_frame_rate()))
    else {
        return Measure::Unreadable(format!("no {medium:?} stream").to_lowercase());
    };
    // MPEG-TS video packets carry no duration: the last frame lasts one frame period.
    let frame = if rate.numerator() > 0 && rate.denominator() > 0 {
        1_i64.rescale(rate.invert(), time_base)
    } else {
        0
    };
    let mut first: Option<i64> = None;
    let mut end: Option<i64> = None;
    for (stream, packet) in input.packets() {
        if stream.index() != index {
            continue;
        }
        let Some(ts) = packet.pts().or(packet.dts()) else {
            continue;
        };
        first = Some(first.map_or(ts, |f| f.min(ts)));
        let duration = match packet.duration() {
            d if d > 0 => d,
            _ => frame,
        };
        let e = ts.saturating_add(duration);
        end = Some(end.map_or(e, |x| x.max(e)));
    }
    match (first, end) {
        (Some(f), Some(e)) => Measure::Seconds((e - f) as f64 * f64::from(time_base)),
        _ => Measure::Seconds(0.0),
    }
}

/// Checks every expected output of `dir`: the first failure, in order. Blocking.
pub fn check(dir: &Path, outputs: &[Expected], expected_seconds: f64) -> Result<(), OutputError> {
    for output in outputs {
        let found = observe(&dir.join(&output.name), output.kind);
        verdict(output, &found, expected_seconds)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(name: &str) -> Expected {
        Expected::new(name.into(), Kind::Video)
    }

    fn media(seconds: f64) -> Found {
        Found {
            size: Some(1000),
            measure: Measure::Seconds(seconds),
        }
    }

    fn category(r: Result<(), OutputError>) -> Option<&'static str> {
        r.err().map(|e| e.category())
    }

    #[test]
    fn missing_and_empty_files_fail() {
        let missing = Found {
            size: None,
            measure: Measure::NotMeasured,
        };
        let empty = Found {
            size: Some(0),
            measure: Measure::NotMeasured,
        };
        for kind in [Kind::Video, Kind::Audio, Kind::File] {
            let out = Expected::new("x".into(), kind);
            assert_eq!(
                category(verdict(&out, &missing, 20.0)),
                Some("OutputMissing")
            );
            assert_eq!(category(verdict(&out, &empty, 20.0)), Some("OutputEmpty"));
        }
        let vtt = Expected::new("cours.vtt".into(), Kind::File);
        let header_only = Found {
            size: Some(8),
            measure: Measure::NotMeasured,
        };
        assert_eq!(verdict(&vtt, &header_only, 20.0), Ok(()));
        assert_eq!(
            verdict(&vtt, &missing, 20.0).map_err(|e| e.to_string()),
            Err("output cours.vtt is missing".to_owned())
        );
    }

    #[test]
    fn five_seconds_short_passes_more_fails() {
        let out = video("360p_a.ts");
        assert_eq!(verdict(&out, &media(20.0), 20.0), Ok(()));
        assert_eq!(verdict(&out, &media(15.0), 20.0), Ok(()));
        assert_eq!(
            verdict(&out, &media(14.9), 20.0),
            Err(OutputError::TooShort {
                name: "360p_a.ts".into(),
                seconds: 14.9,
                expected: 20.0,
            })
        );
        let e = verdict(&out, &media(4.0), 20.0).unwrap_err();
        assert_eq!(e.category(), "OutputTooShort");
        assert_eq!(
            e.into_runner_error("Encoding failed").to_string(),
            "Encoding failed: output 360p_a.ts lasts 4.00 s, 20.00 s expected (the source, or its cut): more than 5 s shorter"
        );
    }

    #[test]
    fn longer_outputs_pass() {
        // Opening and ending credits make the outputs longer than the source.
        let out = Expected::new("audio_192k_a.mp3".into(), Kind::Audio);
        assert_eq!(verdict(&out, &media(95.0), 20.0), Ok(()));
    }

    #[test]
    fn the_cut_length_is_the_expected_length() {
        use crate::timeline::window;
        // A 10 s cut (30..40) of a 600 s source: 9 s of output is fine, 4 s is not.
        let kept = window(600.0, Some((30.0, 40.0, Some(600.0)))).duration();
        let out = video("720p_a.mp4");
        assert_eq!(verdict(&out, &media(9.0), kept), Ok(()));
        assert_eq!(
            category(verdict(&out, &media(4.0), kept)),
            Some("OutputTooShort")
        );
    }

    #[test]
    fn unreadable_media_fails_and_unknown_length_skips_the_length_check() {
        let out = video("360p_a.ts");
        let garbage = Found {
            size: Some(10),
            measure: Measure::Unreadable("Invalid data found when processing input".into()),
        };
        assert_eq!(
            category(verdict(&out, &garbage, 20.0)),
            Some("OutputUnreadable")
        );
        let nan = Found {
            size: Some(10),
            measure: Measure::Seconds(f64::NAN),
        };
        assert_eq!(
            category(verdict(&out, &nan, 20.0)),
            Some("OutputUnreadable")
        );
        assert_eq!(verdict(&out, &media(1.0), 0.0), Ok(()));
        assert_eq!(verdict(&out, &media(1.0), f64::NAN), Ok(()));
    }

    fn rung(height: u32, encode_mp4: bool) -> Rung {
        Rung {
            height,
            width: height * 16 / 9,
            video_bitrate: 1_000_000,
            audio_bitrate: 128_000,
            encode_mp4,
        }
    }

    fn names(list: &[Expected]) -> Vec<(&str, Kind)> {
        list.iter().map(|e| (e.name.as_str(), e.kind)).collect()
    }

    #[test]
    fn what_each_job_must_produce() {
        let rungs = [rung(360, true), rung(1080, false)];
        assert_eq!(
            names(&expected_encoding("a", &rungs, true, true)),
            [
                ("360p_a.m3u8", Kind::File),
                ("360p_a.ts", Kind::Video),
                ("1080p_a.m3u8", Kind::File),
                ("1080p_a.ts", Kind::Video),
                ("360p_a.mp4", Kind::Video),
                ("audio_192k_a.mp3", Kind::Audio),
                ("a_0.png", Kind::File),
                ("a_1.png", Kind::File),
                ("a_2.png", Kind::File),
                ("overview.png", Kind::File),
                ("overview.vtt", Kind::File),
                ("info_video.json", Kind::File),
            ]
        );
        // An audio-only source: no rendition, no picture; the MP3 and the M4A.
        assert_eq!(
            names(&expected_encoding("a", &[], false, true)),
            [
                ("audio_192k_a.mp3", Kind::Audio),
                ("audio_192k_a.m4a", Kind::Audio),
                ("info_video.json", Kind::File),
            ]
        );
        // A silent video: no MP3.
        assert!(
            !expected_encoding("a", &rungs, true, false)
                .iter()
                .any(|e| e.kind == Kind::Audio)
        );
        assert_eq!(
            names(&expected_transcription("cours")),
            [("cours.vtt", Kind::File), ("info_video.json", Kind::File)]
        );
    }
}
