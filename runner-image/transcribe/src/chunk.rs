//! Speech in windows, each one whisper.cpp call, and the windows' segments merged into one
//! monotonic timeline.
//!
//! Whisper's encoder always sees 30 s. Inside one call whisper.cpp slides that 30 s view
//! itself, to the end of the last complete segment (the sequential algorithm of OpenAI and
//! faster-whisper). Every extra call can cost one more encoder pass for its tail, so windows
//! are long: they split only at long silences (not worth encoding) and at `max_len`, in a
//! pause, with a short tail merged into the window before it.

use crate::vad::Span;

/// One window of audio, in samples; `overlap` samples at its start repeat the previous window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    pub start: usize,
    pub end: usize,
    pub overlap: usize,
}

/// A timed piece of text, milliseconds from the start of the audio.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub start_ms: i64,
    pub end_ms: i64,
    pub text: String,
}

#[derive(Debug, Clone, Copy)]
pub struct ChunkConfig {
    /// Longest window. Bounds the work between two progress reports and between two
    /// timeout checks of our own; whisper.cpp slides its 30 s view inside a window.
    pub max_len: usize,
    /// Non-speech at least this long ends a window: the next one starts at the next speech,
    /// so the silence is never encoded (each 30 s of it would cost an encoder pass).
    pub split_gap: usize,
    /// A last window shorter than this joins the one before it, even past `max_len`: a
    /// separate call would pay a whole encoder pass for a few seconds.
    pub min_tail: usize,
    /// How far back from a window's end a hard cut looks for the quietest moment.
    pub search: usize,
    /// Audio repeated across a hard cut. 0 by default: cutting at the quietest frame already
    /// falls between words, and a repeated stretch is transcribed twice with different errors
    /// that no seam rule removes cleanly (measured: docs/transcription.md).
    pub overlap: usize,
}

impl ChunkConfig {
    pub fn seconds(sample_rate: u32, max_s: f32, search_s: f32, overlap_s: f32) -> Self {
        let n = |s: f32| (s * sample_rate as f32) as usize;
        Self {
            max_len: n(max_s),
            split_gap: n(SPLIT_GAP_S),
            min_tail: n(MIN_TAIL_S).min(n(max_s) / 2),
            search: n(search_s).min(n(max_s) / 2),
            overlap: n(overlap_s).min(n(max_s) / 2),
        }
    }

    pub fn with_gaps(self, sample_rate: u32, split_gap_s: f32, min_tail_s: f32) -> Self {
        let n = |s: f32| (s * sample_rate as f32) as usize;
        Self {
            split_gap: n(split_gap_s),
            min_tail: n(min_tail_s).min(self.max_len / 2),
            ..self
        }
    }
}

/// Silence that ends a window: 30 s of it would cost a whole encoder pass.
pub const SPLIT_GAP_S: f32 = 30.0;
/// A tail shorter than one encoder view joins the previous window.
pub const MIN_TAIL_S: f32 = 30.0;

/// The quietest point of `[lo, hi)`: the middle of its lowest-energy frame (`levels` holds one
/// level per `frame` samples). Between two words when the speaker breathes at all.
pub fn quietest(levels: &[f32], frame: usize, lo: usize, hi: usize) -> usize {
    let frame = frame.max(1);
    let (a, b) = (lo.div_ceil(frame), (hi / frame).min(levels.len()));
    (a..b)
        .min_by(|x, y| levels[*x].total_cmp(&levels[*y]).then(y.cmp(x)))
        .map_or(hi, |i| (i * frame + frame / 2).clamp(lo, hi))
}

/// Windows covering every speech span; silence of `split_gap` or more between spans is
/// skipped entirely. A window ends at the end of the last speech span that fits in it (a
/// pause), or before a long silence; a span longer than a window is cut at its quietest
/// moment near the window's end (`levels`: frame energies). A last window shorter than
/// `min_tail` is merged into the previous one when nothing but speech and short pauses
/// separate them.
pub fn plan(speech: &[Span], cfg: &ChunkConfig, levels: &[f32], frame: usize) -> Vec<Chunk> {
    let mut chunks = plan_windows(speech, cfg, levels, frame);
    if let [.., prev, last] = chunks.as_slice()
        && last.end - last.start + last.overlap < cfg.min_tail
        && last.start + last.overlap < prev.end + cfg.split_gap
    {
        let merged = Chunk {
            start: prev.start,
            end: last.end,
            overlap: prev.overlap,
        };
        chunks.truncate(chunks.len() - 2);
        chunks.push(merged);
    }
    chunks
}

fn plan_windows(speech: &[Span], cfg: &ChunkConfig, levels: &[f32], frame: usize) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    let Some(first) = speech.first() else {
        return chunks;
    };
    let (mut i, mut start, mut overlap) = (0, first.start, 0);
    while i < speech.len() {
        let limit = start + cfg.max_len;
        let mut j = i;
        while j < speech.len()
            && speech[j].end <= limit
            && (j == i || speech[j].start - speech[j - 1].end < cfg.split_gap)
        {
            j += 1;
        }
        if j > i {
            chunks.push(Chunk {
                start,
                end: speech[j - 1].end,
                overlap,
            });
            i = j;
            if let Some(next) = speech.get(j) {
                start = next.start;
            }
            overlap = 0;
        } else {
            let lo = (limit - cfg.search).max(start + cfg.overlap + 1);
            let end = quietest(levels, frame, lo, limit);
            chunks.push(Chunk {
                start,
                end,
                overlap,
            });
            overlap = cfg.overlap;
            start = end - overlap;
        }
    }
    chunks
}

/// Normalised words, for comparing the text at a seam.
fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric())
                .flat_map(char::to_lowercase)
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// How many leading words of `head` repeat the trailing words of `tail` (at most 8).
fn repeated_words(tail: &str, head: &str) -> usize {
    let (t, h) = (words(tail), words(head));
    (1..=t.len().min(h.len()).min(8))
        .rev()
        .find(|&n| t[t.len() - n..] == h[..n])
        .unwrap_or(0)
}

/// Drops the first `n` words of `text`, keeping the original spelling of the rest.
fn drop_words(text: &str, n: usize) -> String {
    let mut seen = 0;
    let mut out = Vec::new();
    for w in text.split_whitespace() {
        if seen < n && w.chars().any(char::is_alphanumeric) {
            seen += 1;
            continue;
        }
        if seen >= n {
            out.push(w);
        }
    }
    out.join(" ")
}

/// Merges per-window segments (already in absolute time, windows in order) into one timeline:
/// in an overlap each window keeps the segments whose middle lies on its side of the seam,
/// words repeated across the seam are dropped, and times are made monotonic and clamped to
/// `[0, total_ms]`.
pub fn merge(windows: &[(Chunk, Vec<Segment>)], sample_rate: u32, total_ms: i64) -> Vec<Segment> {
    let ms = |s: usize| (s as i64 * 1000) / i64::from(sample_rate);
    let mut out: Vec<Segment> = Vec::new();
    for (chunk, segments) in windows {
        let mut incoming: Vec<Segment> = segments.clone();
        if chunk.overlap > 0 {
            let seam = ms(chunk.start) + ms(chunk.overlap) / 2;
            let mid = |s: &Segment| (s.start_ms + s.end_ms) / 2;
            out.retain(|s| mid(s) < seam);
            incoming.retain(|s| mid(s) >= seam);
            if let (Some(last), Some(first)) = (out.last(), incoming.first_mut()) {
                let n = repeated_words(&last.text, &first.text);
                if n > 0 {
                    first.text = drop_words(&first.text, n);
                }
            }
        }
        out.extend(incoming);
    }
    let mut clean: Vec<Segment> = Vec::with_capacity(out.len());
    for mut s in out {
        s.text = s.text.trim().to_string();
        if s.text.is_empty() {
            continue;
        }
        let floor = clean.last().map_or(0, |p| p.end_ms);
        s.start_ms = s.start_ms.clamp(floor, total_ms.max(floor));
        s.end_ms = s.end_ms.clamp(s.start_ms, total_ms.max(s.start_ms));
        clean.push(s);
    }
    clean
}

#[cfg(test)]
mod tests {
    use super::*;

    const SR: u32 = 16_000;
    fn s(sec: f32) -> usize {
        (sec * SR as f32) as usize
    }
    fn span(a: f32, b: f32) -> Span {
        Span {
            start: s(a),
            end: s(b),
        }
    }
    /// 30 s windows, no gap split and no tail merge: the cutting rules alone.
    fn cfg() -> ChunkConfig {
        ChunkConfig::seconds(SR, 30.0, 5.0, 2.0).with_gaps(SR, 1e6, 0.0)
    }
    const FRAME: usize = 480; // 30 ms
    /// Flat speech energy with quiet dips at the given seconds.
    fn levels(total_s: f32, dips: &[f32]) -> Vec<f32> {
        let mut l = vec![-20.0; s(total_s) / FRAME + 1];
        for d in dips {
            l[s(*d) / FRAME] = -45.0;
        }
        l
    }
    fn seg(a: i64, b: i64, t: &str) -> Segment {
        Segment {
            start_ms: a,
            end_ms: b,
            text: t.into(),
        }
    }

    #[test]
    fn short_audio_is_one_window() {
        let chunks = plan(
            &[span(1.0, 3.0), span(4.0, 9.0)],
            &cfg(),
            &levels(10.0, &[]),
            FRAME,
        );
        assert_eq!(
            chunks,
            vec![Chunk {
                start: s(1.0),
                end: s(9.0),
                overlap: 0
            }]
        );
        assert!(plan(&[], &cfg(), &[], FRAME).is_empty());
    }

    #[test]
    fn a_clip_just_over_30_s_is_one_window() {
        // The benchmark's English clip: 31.4 s of sentences. Two windows would cost three
        // encoder passes (the first window's tail is re-encoded); one costs two.
        let speech = [span(0.0, 26.0), span(26.5, 31.4)];
        let prod = ChunkConfig::seconds(SR, 600.0, 5.0, 0.0);
        let chunks = plan(&speech, &prod, &levels(32.0, &[]), FRAME);
        assert_eq!(
            chunks,
            vec![Chunk {
                start: 0,
                end: s(31.4),
                overlap: 0
            }]
        );
    }

    #[test]
    fn a_short_tail_joins_its_neighbour() {
        let c = ChunkConfig::seconds(SR, 30.0, 5.0, 0.0).with_gaps(SR, 20.0, 10.0);
        let speech = [span(0.0, 25.0), span(26.0, 29.0), span(29.5, 33.0)];
        let chunks = plan(&speech, &c, &levels(33.0, &[]), FRAME);
        assert_eq!(
            chunks,
            vec![Chunk {
                start: 0,
                end: s(33.0),
                overlap: 0
            }]
        );
        // A long tail stays its own window.
        let speech = [span(0.0, 25.0), span(26.0, 45.0)];
        assert_eq!(plan(&speech, &c, &levels(45.0, &[]), FRAME).len(), 2);
        // So does a short one after a long silence: merging would encode the silence.
        let speech = [span(0.0, 25.0), span(60.0, 62.0)];
        let chunks = plan(&speech, &c, &levels(62.0, &[]), FRAME);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[1].start, s(60.0));
    }

    #[test]
    fn a_long_silence_splits_windows() {
        let c = ChunkConfig::seconds(SR, 600.0, 5.0, 0.0).with_gaps(SR, 30.0, 30.0);
        let speech = [
            span(0.0, 40.0),
            span(45.0, 80.0),
            span(200.0, 260.0),
            span(261.0, 300.0),
        ];
        let chunks = plan(&speech, &c, &levels(300.0, &[]), FRAME);
        let c2 = |a: f32, b: f32| Chunk {
            start: s(a),
            end: s(b),
            overlap: 0,
        };
        assert_eq!(chunks, vec![c2(0.0, 80.0), c2(200.0, 300.0)]);
    }

    #[test]
    fn long_speech_is_cut_at_max_len_with_a_stable_timeline() {
        // 25 minutes of speech with 1 s pauses every 10 s: 600 s windows cut in a pause,
        // every speech sample covered once, windows in order.
        let c = ChunkConfig::seconds(SR, 600.0, 5.0, 0.0);
        let speech: Vec<Span> = (0..150)
            .map(|k| span(k as f32 * 10.0, k as f32 * 10.0 + 9.0))
            .collect();
        let chunks = plan(&speech, &c, &levels(1500.0, &[]), FRAME);
        assert_eq!(chunks.len(), 3, "{chunks:?}");
        for w in &chunks {
            assert!(w.end - w.start <= s(600.0));
        }
        for w in chunks.windows(2) {
            assert!(w[0].end < w[1].start);
        }
        for sp in &speech {
            assert_eq!(
                chunks
                    .iter()
                    .filter(|c| c.start <= sp.start && sp.end <= c.end)
                    .count(),
                1
            );
        }
    }

    #[test]
    fn cuts_in_the_last_pause_in_reach() {
        let speech = [
            span(0.0, 12.0),
            span(13.0, 25.0),
            span(26.0, 40.0),
            span(41.0, 50.0),
        ];
        let chunks = plan(&speech, &cfg(), &levels(50.0, &[]), FRAME);
        assert_eq!(
            chunks,
            vec![
                Chunk {
                    start: s(0.0),
                    end: s(25.0),
                    overlap: 0
                },
                Chunk {
                    start: s(26.0),
                    end: s(50.0),
                    overlap: 0
                },
            ]
        );
    }

    #[test]
    fn continuous_speech_is_cut_at_its_quietest_moment() {
        // Dips at 27 s (in reach of the first cut), 10 s (too early) and 54 s.
        let l = levels(70.0, &[10.0, 27.0, 54.0]);
        let no_overlap = ChunkConfig::seconds(SR, 30.0, 5.0, 0.0).with_gaps(SR, 1e6, 0.0);
        let chunks = plan(&[span(0.0, 70.0)], &no_overlap, &l, FRAME);
        let mid = |sec: f32| (s(sec) / FRAME) * FRAME + FRAME / 2;
        let c = |start, end, overlap| Chunk {
            start,
            end,
            overlap,
        };
        assert_eq!(
            chunks,
            vec![
                c(0, mid(27.0), 0),
                c(mid(27.0), mid(54.0), 0),
                c(mid(54.0), s(70.0), 0)
            ]
        );
        // With an overlap, the next window starts that much earlier.
        let chunks = plan(&[span(0.0, 70.0)], &cfg(), &l, FRAME);
        assert_eq!(chunks[1], c(mid(27.0) - s(2.0), mid(54.0), s(2.0)));
        for c in &chunks {
            assert!(c.end - c.start <= s(30.0));
        }
    }

    #[test]
    fn without_a_dip_the_cut_is_at_the_limit() {
        let no_overlap = ChunkConfig::seconds(SR, 30.0, 5.0, 0.0).with_gaps(SR, 1e6, 0.0);
        let chunks = plan(&[span(0.0, 40.0)], &no_overlap, &levels(40.0, &[]), FRAME);
        assert!(
            chunks[0].end > s(29.9) && chunks[0].end <= s(30.0),
            "{chunks:?}"
        );
        assert_eq!(quietest(&[], FRAME, 10, 20), 20);
    }

    #[test]
    fn every_speech_sample_is_in_a_window() {
        let speech = [
            span(0.5, 45.0),
            span(46.0, 47.0),
            span(80.0, 81.0),
            span(81.5, 140.0),
        ];
        let chunks = plan(&speech, &cfg(), &levels(140.0, &[20.0, 100.0]), FRAME);
        for sp in &speech {
            for x in (sp.start..sp.end).step_by(800) {
                assert!(
                    chunks.iter().any(|c| c.start <= x && x < c.end),
                    "{x} uncovered: {chunks:?}"
                );
            }
        }
        for w in chunks.windows(2) {
            assert!(w[1].start >= w[0].start && w[1].start <= w[1].end);
        }
    }

    #[test]
    fn merge_keeps_each_side_of_the_seam_and_drops_repeats() {
        let a = Chunk {
            start: 0,
            end: s(30.0),
            overlap: 0,
        };
        let b = Chunk {
            start: s(28.0),
            end: s(50.0),
            overlap: s(2.0),
        };
        let windows = vec![
            (
                a,
                vec![
                    seg(0, 10_000, "One two three."),
                    seg(25_000, 29_900, "Four five six"),
                ],
            ),
            (
                b,
                vec![
                    seg(28_000, 29_500, "six"),
                    seg(29_500, 33_000, "six seven eight."),
                    seg(40_000, 45_000, "Nine."),
                ],
            ),
        ];
        let merged = merge(&windows, SR, 50_000);
        let texts: Vec<&str> = merged.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(
            texts,
            vec!["One two three.", "Four five six", "seven eight.", "Nine."]
        );
        for w in merged.windows(2) {
            assert!(w[0].end_ms <= w[1].start_ms, "{merged:?}");
        }
    }

    #[test]
    fn merge_makes_times_monotonic_and_inside_the_audio() {
        let a = Chunk {
            start: 0,
            end: s(10.0),
            overlap: 0,
        };
        let windows = vec![(
            a,
            vec![
                seg(-5, 4_000, "a"),
                seg(3_000, 2_000, "b"),
                seg(9_000, 12_000, "c"),
                seg(9_500, 9_600, " "),
            ],
        )];
        let merged = merge(&windows, SR, 10_000);
        assert_eq!(merged.len(), 3);
        assert_eq!((merged[0].start_ms, merged[0].end_ms), (0, 4_000));
        assert_eq!((merged[1].start_ms, merged[1].end_ms), (4_000, 4_000));
        assert_eq!((merged[2].start_ms, merged[2].end_ms), (9_000, 10_000));
    }

    #[test]
    fn repeated_words_compare_normalised_words() {
        assert_eq!(repeated_words("Four five, six", "six seven"), 1);
        assert_eq!(repeated_words("four five six", "Five, six! seven"), 2);
        assert_eq!(repeated_words("a b", "c d"), 0);
        assert_eq!(drop_words("Five, six! seven", 2), "seven");
    }
}
