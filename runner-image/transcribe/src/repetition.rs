//! Whisper's best-known failure: on hard audio greedy decoding falls into a loop and writes
//! the same few words dozens of times, often as a run of segments squeezed onto one timestamp.
//! Re-decoding at higher temperatures (whisper.cpp's fallback) costs up to five more passes on
//! exactly that audio, so instead the text is repaired: a phrase repeated back to back keeps
//! one occurrence, a segment that repeats its predecessor is dropped, and a segment left with
//! no duration borrows time up to the next one, or is dropped when the next one starts at the
//! same instant (whisper.cpp only squeezes segments like that inside a loop). Subtitles then
//! carry what was said once, and no cue is invisible.

use crate::chunk::Segment;

/// Longest phrase (in words) looked for as a repeated unit.
const MAX_PHRASE_WORDS: usize = 8;
/// Back-to-back occurrences from which a phrase counts as a loop: two can be speech ("non,
/// non"), three of a multi-word phrase almost never are.
const MIN_REPEATS: usize = 3;
/// Shortest cue given to a segment whisper.cpp left without duration.
const MIN_SEGMENT_MS: i64 = 500;

fn normalised(word: &str) -> String {
    word.trim_matches(|c: char| !c.is_alphanumeric())
        .to_lowercase()
}

/// `text` with every phrase of 1 to 8 words repeated at least three times in a row kept once;
/// `None` when there is no such loop.
pub fn collapse(text: &str) -> Option<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let keys: Vec<String> = words.iter().map(|w| normalised(w)).collect();
    let mut kept: Vec<&str> = Vec::with_capacity(words.len());
    let mut changed = false;
    let mut i = 0;
    while i < words.len() {
        let mut skipped = None;
        for len in 1..=MAX_PHRASE_WORDS.min(words.len() - i) {
            let unit = &keys[i..i + len];
            if unit.iter().all(String::is_empty) {
                continue;
            }
            let mut repeats = 1;
            while i + (repeats + 1) * len <= words.len()
                && keys[i + repeats * len..i + (repeats + 1) * len] == *unit
            {
                repeats += 1;
            }
            if repeats >= MIN_REPEATS {
                skipped = Some((len, repeats));
                break;
            }
        }
        match skipped {
            Some((len, repeats)) => {
                kept.extend_from_slice(&words[i..i + len]);
                i += len * repeats;
                changed = true;
            }
            None => {
                kept.push(words[i]);
                i += 1;
            }
        }
    }
    changed.then(|| kept.join(" "))
}

fn same_text(a: &str, b: &str) -> bool {
    let key = |t: &str| t.split_whitespace().map(normalised).collect::<Vec<_>>();
    key(a) == key(b)
}

/// Repairs loops in time-ordered segments; returns them and how many repairs were made.
pub fn repair(segments: Vec<Segment>) -> (Vec<Segment>, usize) {
    let mut repairs = 0;
    let mut out: Vec<Segment> = Vec::with_capacity(segments.len());
    for mut s in segments {
        if let Some(text) = collapse(&s.text) {
            s.text = text;
            repairs += 1;
        }
        if s.text.trim().is_empty() {
            continue;
        }
        if let Some(last) = out.last_mut()
            && same_text(&last.text, &s.text)
        {
            last.end_ms = last.end_ms.max(s.end_ms);
            repairs += 1;
            continue;
        }
        out.push(s);
    }
    // Give squeezed segments time, never past the next segment's start.
    for i in 0..out.len() {
        if out[i].end_ms - out[i].start_ms < MIN_SEGMENT_MS {
            let limit = out.get(i + 1).map_or(i64::MAX, |n| n.start_ms);
            out[i].end_ms = (out[i].start_ms + MIN_SEGMENT_MS)
                .min(limit)
                .max(out[i].end_ms);
        }
    }
    let before = out.len();
    out.retain(|s| s.end_ms > s.start_ms);
    let dropped = before - out.len();
    (out, repairs + dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(start_ms: i64, end_ms: i64, text: &str) -> Segment {
        Segment {
            start_ms,
            end_ms,
            text: text.to_owned(),
        }
    }

    #[test]
    fn a_looping_phrase_is_kept_once() {
        let looped = format!(
            "Sans la photosynthèse, {}ni forêts.",
            "il ne faut pas, ".repeat(12)
        );
        assert_eq!(
            collapse(&looped).as_deref(),
            Some("Sans la photosynthèse, il ne faut pas, ni forêts.")
        );
        assert_eq!(collapse("ha ha ha ha").as_deref(), Some("ha"));
    }

    #[test]
    fn ordinary_speech_is_left_alone() {
        for text in [
            "Non, non, ce n'est pas cela.",
            "The quick brown fox jumps over the lazy dog.",
            "very very good",
            "",
        ] {
            assert_eq!(collapse(text), None, "{text}");
        }
    }

    #[test]
    fn repeated_squeezed_segments_become_one_readable_cue() {
        let loop_text = "ne faut pas, il ne faut pas, il";
        let segments = vec![
            seg(28_000, 32_525, "La première étape."),
            seg(32_525, 32_525, loop_text),
            seg(32_525, 32_525, loop_text),
            seg(32_525, 32_525, loop_text),
            seg(32_525, 37_648, "Merci de votre attention."),
        ];
        let (out, repairs) = repair(segments);
        // Two repeats merged, then the squeezed one left with no room dropped.
        assert_eq!(repairs, 3);
        let texts: Vec<_> = out.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(texts, ["La première étape.", "Merci de votre attention."]);
        assert!(out.iter().all(|s| s.end_ms > s.start_ms));
    }

    #[test]
    fn a_zero_length_segment_borrows_time_when_there_is_room() {
        let (out, repairs) = repair(vec![
            seg(1_000, 1_000, "Bonjour."),
            seg(3_000, 4_000, "Au revoir."),
        ]);
        assert_eq!(repairs, 0);
        assert_eq!((out[0].start_ms, out[0].end_ms), (1_000, 1_500));
        let (out, _) = repair(vec![
            seg(1_000, 1_000, "Bonjour."),
            seg(1_200, 4_000, "Au revoir."),
        ]);
        assert_eq!(out[0].end_ms, 1_200);
    }
}
