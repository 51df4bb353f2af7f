//! WebVTT for Esup-Pod: at most 2 lines of 40 characters per cue (the reference runner's
//! `max_line_count=2`, `max_line_width=40`), long segments split into several cues whose times
//! are shared in proportion to their text, and a strict reader used to check what we write.

use crate::chunk::Segment;

pub const MAX_LINE_CHARS: usize = 40;
pub const MAX_LINES: usize = 2;

#[derive(Debug, Clone, PartialEq)]
pub struct Cue {
    pub start_ms: i64,
    pub end_ms: i64,
    pub lines: Vec<String>,
}

impl Cue {
    pub fn text(&self) -> String {
        self.lines.join(" ")
    }
}

/// Greedy word wrap; a word longer than a line is cut.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    for word in text.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        while word.len() > width {
            if !current.is_empty() {
                lines.push(std::mem::take(&mut current));
            }
            lines.push(word.drain(..width).collect());
        }
        let word: String = word.into_iter().collect();
        let needed =
            current.chars().count() + usize::from(!current.is_empty()) + word.chars().count();
        if needed > width && !current.is_empty() {
            lines.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(&word);
    }
    if !current.is_empty() {
        lines.push(current);
    }
    lines
}

/// Cues of one segment: its wrapped lines in groups of `MAX_LINES`, the segment's time shared
/// among them in proportion to their characters (speech rate is roughly constant).
pub fn layout(segment: &Segment) -> Vec<Cue> {
    let lines = wrap(&segment.text, MAX_LINE_CHARS);
    let groups: Vec<Vec<String>> = lines.chunks(MAX_LINES).map(<[String]>::to_vec).collect();
    let weight = |g: &Vec<String>| {
        g.iter()
            .map(|l| l.chars().count() as i64)
            .sum::<i64>()
            .max(1)
    };
    let total: i64 = groups.iter().map(weight).sum();
    let span = (segment.end_ms - segment.start_ms).max(0);
    let mut cues = Vec::with_capacity(groups.len());
    let (mut t, mut acc) = (segment.start_ms, 0i64);
    let n = groups.len();
    for (i, g) in groups.into_iter().enumerate() {
        acc += weight(&g);
        let end = if i + 1 == n {
            segment.end_ms.max(segment.start_ms)
        } else {
            segment.start_ms + span * acc / total
        };
        cues.push(Cue {
            start_ms: t,
            end_ms: end,
            lines: g,
        });
        t = end;
    }
    cues
}

pub fn layout_all(segments: &[Segment]) -> Vec<Cue> {
    segments.iter().flat_map(layout).collect()
}

pub fn timestamp(ms: i64) -> String {
    let ms = ms.max(0);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

fn escape(line: &str) -> String {
    line.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn unescape(line: &str) -> String {
    line.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The file: `WEBVTT` alone when there are no cues (a valid empty result for Esup-Pod).
pub fn render(cues: &[Cue]) -> String {
    let mut out = String::from("WEBVTT\n");
    for c in cues {
        out.push('\n');
        out.push_str(&format!(
            "{} --> {}\n",
            timestamp(c.start_ms),
            timestamp(c.end_ms)
        ));
        for l in &c.lines {
            out.push_str(&escape(l));
            out.push('\n');
        }
    }
    out
}

fn parse_timestamp(s: &str) -> Option<i64> {
    let (hms, frac) = s.split_once('.')?;
    if frac.len() != 3 {
        return None;
    }
    let parts: Vec<&str> = hms.split(':').collect();
    let num = |p: &str| {
        if p.len() >= 2 && p.bytes().all(|b| b.is_ascii_digit()) {
            p.parse::<i64>().ok()
        } else {
            None
        }
    };
    let (h, m, sec) = match parts.as_slice() {
        [h, m, s] => (num(h)?, num(m)?, num(s)?),
        [m, s] => (0, num(m)?, num(s)?),
        _ => return None,
    };
    if m > 59 || sec > 59 {
        return None;
    }
    Some(((h * 60 + m) * 60 + sec) * 1000 + frac.parse::<i64>().ok()?)
}

/// A strict reader of the WebVTT subset Esup-Pod imports (header, blank-line separated cues,
/// optional identifiers, `start --> end` with start ≤ end).
pub fn parse(text: &str) -> Result<Vec<Cue>, String> {
    let text = text
        .strip_prefix('\u{feff}')
        .unwrap_or(text)
        .replace("\r\n", "\n");
    let mut blocks = text.split("\n\n").map(str::trim_end_matches_newline);
    let header = blocks.next().unwrap_or_default();
    if !(header == "WEBVTT" || header.starts_with("WEBVTT ") || header.starts_with("WEBVTT\n")) {
        return Err(format!(
            "missing WEBVTT header, got {:?}",
            header.lines().next().unwrap_or("")
        ));
    }
    let mut cues = Vec::new();
    for block in blocks.filter(|b| !b.trim().is_empty()) {
        let mut lines = block.lines();
        let mut timing = lines.next().unwrap_or_default();
        if !timing.contains("-->") {
            timing = lines
                .next()
                .ok_or_else(|| format!("cue without timing: {block:?}"))?;
        }
        let (a, b) = timing
            .split_once(" --> ")
            .ok_or_else(|| format!("bad timing line {timing:?}"))?;
        let b = b.split_whitespace().next().unwrap_or_default();
        let (start_ms, end_ms) = (
            parse_timestamp(a.trim()).ok_or_else(|| format!("bad start {a:?}"))?,
            parse_timestamp(b).ok_or_else(|| format!("bad end {b:?}"))?,
        );
        if end_ms < start_ms {
            return Err(format!("cue ends before it starts: {timing:?}"));
        }
        let lines: Vec<String> = lines.map(unescape).collect();
        if lines.is_empty() {
            return Err(format!("cue without text at {timing:?}"));
        }
        cues.push(Cue {
            start_ms,
            end_ms,
            lines,
        });
    }
    Ok(cues)
}

trait TrimNewline {
    fn trim_end_matches_newline(&self) -> &str;
}
impl TrimNewline for str {
    fn trim_end_matches_newline(&self) -> &str {
        self.trim_matches('\n')
    }
}

/// What `check` found wrong with a list of cues (empty when it respects our rules).
pub fn check_layout(cues: &[Cue]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut previous_end = 0;
    for (i, c) in cues.iter().enumerate() {
        if c.lines.is_empty() || c.lines.len() > MAX_LINES {
            problems.push(format!("cue {i} has {} lines", c.lines.len()));
        }
        if let Some(l) = c.lines.iter().find(|l| l.chars().count() > MAX_LINE_CHARS) {
            problems.push(format!(
                "cue {i} has a line of {} characters: {l:?}",
                l.chars().count()
            ));
        }
        if c.start_ms < previous_end || c.end_ms < c.start_ms {
            problems.push(format!(
                "cue {i} is not in order ({}..{} after {previous_end})",
                c.start_ms, c.end_ms
            ));
        }
        previous_end = c.end_ms;
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(a: i64, b: i64, t: &str) -> Segment {
        Segment {
            start_ms: a,
            end_ms: b,
            text: t.into(),
        }
    }

    #[test]
    fn wrap_respects_width_and_keeps_words() {
        let text = "Welcome to the university video platform. Today we will learn how the operator schedules jobs.";
        let lines = wrap(text, 40);
        assert!(lines.iter().all(|l| l.chars().count() <= 40), "{lines:?}");
        assert_eq!(lines.join(" "), text);
        assert_eq!(wrap("", 40), Vec::<String>::new());
        let long = "x".repeat(95);
        assert_eq!(
            wrap(&format!("a {long} b"), 40)
                .iter()
                .map(|l| l.chars().count())
                .collect::<Vec<_>>(),
            vec![1, 40, 40, 17]
        );
        // Characters, not bytes: accented French fits as the width says.
        let fr = "é".repeat(40);
        assert_eq!(wrap(&fr, 40), vec![fr.clone()]);
    }

    #[test]
    fn long_segments_become_several_cues_with_proportional_times() {
        let text = "aaaa ".repeat(40); // 200 characters → 5 lines of 39 → 3 cues
        let cues = layout(&seg(1_000, 11_000, &text));
        assert_eq!(cues.len(), 3);
        assert!(check_layout(&cues).is_empty(), "{:?}", check_layout(&cues));
        assert_eq!(cues[0].start_ms, 1_000);
        assert_eq!(cues[2].end_ms, 11_000);
        // Two full cues of 78 characters and one of 39: 4 s, 4 s, 2 s.
        assert_eq!(cues[0].end_ms, 5_000);
        assert_eq!(cues[1].end_ms, 9_000);
        for w in cues.windows(2) {
            assert_eq!(w[0].end_ms, w[1].start_ms);
        }
    }

    #[test]
    fn render_then_parse_round_trips() {
        let cues = layout_all(&[
            seg(0, 2_500, "Bonjour à tous <3 & bienvenue"),
            seg(3_600_123, 3_601_000, "Fin."),
        ]);
        let text = render(&cues);
        assert!(
            text.starts_with(
                "WEBVTT\n\n00:00:00.000 --> 00:00:02.500\nBonjour à tous &lt;3 &amp; bienvenue\n"
            ),
            "{text}"
        );
        assert!(text.contains("01:00:00.123 --> 01:00:01.000\nFin.\n"));
        assert_eq!(parse(&text), Ok(cues));
    }

    #[test]
    fn empty_is_a_valid_file() {
        assert_eq!(render(&[]), "WEBVTT\n");
        assert_eq!(parse("WEBVTT\n"), Ok(vec![]));
    }

    #[test]
    fn parse_rejects_what_pod_would_reject() {
        assert!(parse("").is_err());
        assert!(parse("WEBVTX\n\n00:00.000 --> 00:01.000\nx\n").is_err());
        assert!(parse("WEBVTT\n\n00:00:02.000 --> 00:00:01.000\nx\n").is_err());
        assert!(parse("WEBVTT\n\n00:00:01,000 --> 00:00:02.000\nx\n").is_err());
        assert!(parse("WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n").is_err());
        // Identifiers and settings are valid WebVTT.
        let ok = parse("WEBVTT\n\nid1\n00:01.000 --> 00:02.000 align:start\nx\n").map(|c| c.len());
        assert_eq!(ok, Ok(1));
    }

    #[test]
    fn check_layout_reports_violations() {
        let bad = vec![
            Cue {
                start_ms: 0,
                end_ms: 10,
                lines: vec!["a".into(), "b".into(), "c".into()],
            },
            Cue {
                start_ms: 5,
                end_ms: 20,
                lines: vec!["x".repeat(41)],
            },
        ];
        assert_eq!(check_layout(&bad).len(), 3);
    }
}
