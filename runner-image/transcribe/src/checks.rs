//! Coverage and gap checks of a transcript against the speech the VAD heard (§3.3's
//! validation: coverage ≥ 75 %, final gap ≤ 300 s, internal gaps > 15 s reported).

use serde::Serialize;

use crate::chunk::Segment;
use crate::vad::Span;

pub const MIN_COVERAGE: f64 = 0.75;
pub const MAX_FINAL_GAP_S: f64 = 300.0;
pub const GAP_ALERT_S: f64 = 15.0;
/// Speech this close to a cue counts as covered (Whisper's segment bounds are loose).
const SLACK_MS: i64 = 1_000;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Gap {
    pub start_s: f64,
    pub end_s: f64,
    /// Seconds of speech (by the VAD) inside the gap: a gap of silence is not a problem.
    pub speech_s: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Coverage {
    /// Share of the VAD's speech that lies under (or within 1 s of) a cue; 1 when no speech.
    pub speech_coverage: f64,
    pub speech_s: f64,
    /// Seconds from the last cue to the end of the audio.
    pub final_gap_s: f64,
    pub internal_gaps: Vec<Gap>,
    pub ok: bool,
}

pub fn check(segments: &[Segment], speech: &[Span], sample_rate: u32, total_ms: i64) -> Coverage {
    let ms = |s: usize| s as i64 * 1000 / i64::from(sample_rate);
    let speech_ms: Vec<(i64, i64)> = speech.iter().map(|s| (ms(s.start), ms(s.end))).collect();
    let overlap = |a: i64, b: i64, spans: &[(i64, i64)]| -> i64 {
        spans
            .iter()
            .map(|&(x, y)| (b.min(y) - a.max(x)).max(0))
            .sum()
    };
    let covered: Vec<(i64, i64)> = segments
        .iter()
        .map(|s| (s.start_ms - SLACK_MS, s.end_ms + SLACK_MS))
        .collect();
    let total_speech: i64 = speech_ms.iter().map(|(a, b)| b - a).sum();
    // Speech under any cue, counting each millisecond once (cues are sorted and disjoint after merge).
    let mut union: Vec<(i64, i64)> = Vec::new();
    for &(a, b) in &covered {
        match union.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => union.push((a, b)),
        }
    }
    let covered_speech: i64 = speech_ms.iter().map(|&(a, b)| overlap(a, b, &union)).sum();
    let speech_coverage = if total_speech == 0 {
        1.0
    } else {
        covered_speech as f64 / total_speech as f64
    };

    let mut internal_gaps = Vec::new();
    for w in segments.windows(2) {
        let (a, b) = (w[0].end_ms, w[1].start_ms);
        if (b - a) as f64 / 1000.0 > GAP_ALERT_S {
            internal_gaps.push(Gap {
                start_s: a as f64 / 1000.0,
                end_s: b as f64 / 1000.0,
                speech_s: overlap(a, b, &speech_ms) as f64 / 1000.0,
            });
        }
    }
    let last_end = segments.last().map_or(0, |s| s.end_ms);
    let final_gap_s = (total_ms - last_end).max(0) as f64 / 1000.0;
    // A long tail without speech (applause, music) is fine; an untranscribed spoken tail is not.
    let tail_speech = overlap(last_end, total_ms, &speech_ms) as f64 / 1000.0;
    let ok =
        speech_coverage >= MIN_COVERAGE && (final_gap_s <= MAX_FINAL_GAP_S || tail_speech < 1.0);
    Coverage {
        speech_coverage,
        speech_s: total_speech as f64 / 1000.0,
        final_gap_s,
        internal_gaps,
        ok,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(a: i64, b: i64) -> Segment {
        Segment {
            start_ms: a,
            end_ms: b,
            text: "x".into(),
        }
    }
    const SR: u32 = 1000; // one sample per millisecond keeps the arithmetic readable

    #[test]
    fn full_coverage_and_no_gaps() {
        let c = check(
            &[seg(0, 5_000), seg(5_000, 9_000)],
            &[Span {
                start: 200,
                end: 8_800,
            }],
            SR,
            10_000,
        );
        assert_eq!(c.speech_coverage, 1.0);
        assert!(c.internal_gaps.is_empty());
        assert_eq!(c.final_gap_s, 1.0);
        assert!(c.ok);
    }

    #[test]
    fn missed_speech_lowers_coverage_and_shows_in_gaps() {
        let speech = [
            Span {
                start: 0,
                end: 10_000,
            },
            Span {
                start: 20_000,
                end: 40_000,
            },
        ];
        let c = check(&[seg(0, 10_000), seg(45_000, 46_000)], &speech, SR, 50_000);
        // 10 s covered out of 30 s of speech (the slack reaches no other speech).
        assert!((c.speech_coverage - 10.0 / 30.0).abs() < 1e-9, "{c:?}");
        assert_eq!(
            c.internal_gaps,
            vec![Gap {
                start_s: 10.0,
                end_s: 45.0,
                speech_s: 20.0
            }]
        );
        assert!(!c.ok);
    }

    #[test]
    fn silence_is_fully_covered_and_a_silent_tail_is_fine() {
        let c = check(&[], &[], SR, 400_000);
        assert_eq!(c.speech_coverage, 1.0);
        assert!(c.ok);
        let c = check(
            &[],
            &[Span {
                start: 390_000,
                end: 395_000,
            }],
            SR,
            400_000,
        );
        assert!(!c.ok);
    }
}
