//! Pure decisions of a transcription: which Whisper model, which languages, which translation.

use serde::Serialize;

/// The model file actually used, and why it differs from the request when it does.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelChoice {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
}

/// Whisper names as Esup-Pod and the reference runner spell them → our file names.
fn canonical(name: &str) -> String {
    match name.trim().to_ascii_lowercase().as_str() {
        "large" => "large-v3".into(),
        "turbo" => "large-v3-turbo".into(),
        other => other.to_string(),
    }
}

/// `requested` (Esup-Pod's `model`) or the runner's default. An English-only model (`*.en`)
/// is refused for a source language other than English (with `auto` it means English); `tiny` for English prefers `tiny.en` when that file exists. A
/// model whose file is missing falls back to the default rather than failing the task (Pod's
/// own default is `turbo`, which a CPU pool does not carry); the fallback is reported.
pub fn choose_model(
    requested: Option<&str>,
    default: &str,
    source_language: &str,
    available: impl Fn(&str) -> bool,
) -> Option<ModelChoice> {
    let default = canonical(default);
    let Some(req) = requested.map(canonical).filter(|r| !r.is_empty()) else {
        return available(&default).then_some(ModelChoice {
            name: default,
            fallback_reason: None,
        });
    };
    let english = source_language == "en";
    let mut candidates = Vec::new();
    if english && !req.ends_with(".en") {
        candidates.push(format!("{req}.en"));
    }
    candidates.push(req.clone());
    let reason = if req.ends_with(".en") && !english && source_language != "auto" {
        Some(format!(
            "{req} is English-only and the source language is {source_language}"
        ))
    } else if let Some(name) = candidates.into_iter().find(|c| available(c)) {
        return Some(ModelChoice {
            name,
            fallback_reason: None,
        });
    } else {
        Some(format!("model {req} is not installed on this runner"))
    };
    available(&default).then_some(ModelChoice {
        name: default,
        fallback_reason: reason,
    })
}

/// Suffix of the q8_0 variant of a model file (`make-models base-q8_0`).
pub const Q8_0_SUFFIX: &str = "-q8_0";

/// The file stem that serves model `name`: its q8_0 variant when `quantised` (a CPU run) and
/// that file is installed, else the model itself. On a CPU the q8_0 weights give the same
/// text for about 10 % less time (docs/transcription.md); a GPU keeps the f16 weights.
pub fn weights_file(name: &str, quantised: bool, available: impl Fn(&str) -> bool) -> String {
    let q8 = format!("{name}{Q8_0_SUFFIX}");
    if quantised && !name.ends_with(Q8_0_SUFFIX) && available(&q8) {
        q8
    } else {
        name.to_string()
    }
}

/// How the subtitles reach the requested language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Translation {
    None,
    /// Marian (opus-mt) on ONNX Runtime, cue text only, timestamps kept (fr↔en).
    Local {
        from: String,
        to: String,
    },
    /// Whisper's own X→English task (a second Whisper pass).
    WhisperTranslate,
    /// Whisper asked to write the target language directly (the reference runner's fallback).
    WhisperRerun {
        to: String,
    },
}

impl Translation {
    pub fn backend(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Local { .. } => "local_translation",
            Self::WhisperTranslate => "whisper_translate",
            Self::WhisperRerun { .. } => "whisper_legacy_fallback",
        }
    }
}

/// `local_available(from, to)` says whether a Marian model and ONNX Runtime are installed.
pub fn choose_translation(
    source: &str,
    target: &str,
    local_available: impl Fn(&str, &str) -> bool,
) -> Translation {
    if source == target {
        Translation::None
    } else if local_available(source, target) {
        Translation::Local {
            from: source.into(),
            to: target.into(),
        }
    } else if target == "en" {
        Translation::WhisperTranslate
    } else {
        Translation::WhisperRerun { to: target.into() }
    }
}

/// `language` = "auto" keeps the spoken language.
pub fn final_language(requested: &str, source: &str) -> String {
    if requested == "auto" || requested.is_empty() {
        source.to_string()
    } else {
        requested.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn have(names: &'static [&'static str]) -> impl Fn(&str) -> bool {
        move |n| names.contains(&n)
    }

    #[test]
    fn default_model_when_nothing_is_asked() {
        let c = choose_model(None, "base", "auto", have(&["base", "tiny.en"]));
        assert_eq!(
            c,
            Some(ModelChoice {
                name: "base".into(),
                fallback_reason: None
            })
        );
        assert_eq!(
            choose_model(Some(" "), "base", "fr", have(&["base"])).map(|c| c.name),
            Some("base".into())
        );
        assert_eq!(choose_model(None, "base", "fr", have(&[])), None);
    }

    #[test]
    fn english_only_models_only_for_english() {
        let c = choose_model(Some("tiny.en"), "base", "en", have(&["base", "tiny.en"]));
        assert_eq!(c.map(|c| c.name), Some("tiny.en".into()));
        let c = choose_model(Some("tiny"), "base", "en", have(&["base", "tiny.en"]));
        assert_eq!(c.map(|c| c.name), Some("tiny.en".into()));
        let c = choose_model(Some("tiny.en"), "base", "fr", have(&["base", "tiny.en"]))
            .unwrap_or_else(|| panic!("no model"));
        assert_eq!(c.name, "base");
        assert!(
            c.fallback_reason
                .is_some_and(|r| r.contains("English-only"))
        );
        // Asking for an English-only model with detection means English.
        let c = choose_model(Some("tiny.en"), "base", "auto", have(&["base", "tiny.en"]));
        assert_eq!(c.map(|c| c.name), Some("tiny.en".into()));
    }

    #[test]
    fn missing_models_fall_back_to_the_default_with_a_reason() {
        let c = choose_model(Some("turbo"), "base", "fr", have(&["base"]))
            .unwrap_or_else(|| panic!("no model"));
        assert_eq!(c.name, "base");
        assert_eq!(
            c.fallback_reason.as_deref(),
            Some("model large-v3-turbo is not installed on this runner")
        );
        let c = choose_model(Some("Large"), "base", "fr", have(&["base", "large-v3"]));
        assert_eq!(c.map(|c| c.name), Some("large-v3".into()));
    }

    #[test]
    fn translation_backends() {
        let fr_en = |a: &str, b: &str| (a, b) == ("fr", "en") || (a, b) == ("en", "fr");
        assert_eq!(choose_translation("fr", "fr", fr_en), Translation::None);
        assert_eq!(
            choose_translation("fr", "en", fr_en),
            Translation::Local {
                from: "fr".into(),
                to: "en".into()
            }
        );
        assert_eq!(
            choose_translation("fr", "en", |_, _| false),
            Translation::WhisperTranslate
        );
        assert_eq!(
            choose_translation("de", "fr", fr_en),
            Translation::WhisperRerun { to: "fr".into() }
        );
        assert_eq!(
            choose_translation("de", "fr", fr_en).backend(),
            "whisper_legacy_fallback"
        );
        assert_eq!(final_language("auto", "fr"), "fr");
        assert_eq!(final_language("en", "fr"), "en");
    }

    #[test]
    fn cpu_runs_prefer_the_installed_q8_0_weights() {
        let installed = |n: &str| ["base", "base-q8_0", "tiny.en"].contains(&n);
        assert_eq!(weights_file("base", true, installed), "base-q8_0");
        assert_eq!(weights_file("base", false, installed), "base");
        // No q8_0 file: the model itself.
        assert_eq!(weights_file("tiny.en", true, installed), "tiny.en");
        // Asked for by name: kept, not doubled.
        assert_eq!(weights_file("base-q8_0", true, installed), "base-q8_0");
    }
}
