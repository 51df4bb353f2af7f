//! Word error rate, with the same text normalisation as runner-image/models/speech_check.py so
//! that numbers compare across the models check, these tests and the benchmark.

/// Lower-case words without punctuation; accents kept (they matter in French); apostrophes and
/// hyphens split words ("l'université" → "l", "université").
pub fn normalise(text: &str) -> Vec<String> {
    text.to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '_' {
                c
            } else {
                ' '
            }
        })
        .collect::<String>()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// (substitutions + deletions + insertions) / reference words.
pub fn word_error_rate(reference: &str, hypothesis: &str) -> f64 {
    let (r, h) = (normalise(reference), normalise(hypothesis));
    if r.is_empty() {
        return if h.is_empty() { 0.0 } else { 1.0 };
    }
    let mut previous: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut current = vec![i + 1; h.len() + 1];
        for (j, hw) in h.iter().enumerate() {
            current[j + 1] = (previous[j + 1] + 1)
                .min(current[j] + 1)
                .min(previous[j] + usize::from(rw != hw));
        }
        previous = current;
    }
    previous[h.len()] as f64 / r.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_splits_apostrophes_and_keeps_accents() {
        assert_eq!(
            normalise("L'Université, c'est — très-bien!"),
            vec!["l", "université", "c", "est", "très", "bien"]
        );
    }

    #[test]
    fn counts_each_kind_of_error() {
        assert_eq!(word_error_rate("a b c d", "a b c d"), 0.0);
        assert_eq!(word_error_rate("a b c d", "a x c d"), 0.25); // substitution
        assert_eq!(word_error_rate("a b c d", "a c d"), 0.25); // deletion
        assert_eq!(word_error_rate("a b c d", "a b y c d"), 0.25); // insertion
        assert_eq!(word_error_rate("a b", ""), 1.0);
        assert_eq!(word_error_rate("", ""), 0.0);
        assert_eq!(word_error_rate("", "x"), 1.0);
        assert_eq!(word_error_rate("Hello, world.", "hello world"), 0.0);
    }
}
