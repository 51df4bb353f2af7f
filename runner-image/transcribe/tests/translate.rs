//! Marian translation on ONNX Runtime: the real runtime (PyPI wheel), the real SentencePiece
//! library, a small model the test builds itself (testdata/make_test_marian.py: same files,
//! names and shapes as Hugging Face's opus-mt export; a copy model with a <pad> lure).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::*;
use esup_transcribe::translate::{MarianTranslator, TranslateError};
use esup_transcribe::{ModelPaths, transcribe};

struct Fixture {
    lib: PathBuf,
    model: PathBuf,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        // Read when the test runs (cargo sets it), not when it was built: a build cache shared
        // with a checkout elsewhere would otherwise point at that checkout.
        let here = PathBuf::from(
            std::env::var_os("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
        );
        let here = here.as_path();
        let out = Command::new(here.join("install-onnxruntime"))
            .output()
            .unwrap_or_else(|e| panic!("install-onnxruntime: {e}"));
        assert!(
            out.status.success(),
            "install-onnxruntime: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lib = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        // The venv's python sits three levels above .../site-packages/onnxruntime/capi/.
        let venv = lib
            .ancestors()
            .nth(6)
            .unwrap_or_else(|| panic!("odd path {}", lib.display()));
        let dir = tempdir();
        let model = dir.path().join("opus-mt-en-fr");
        run(Command::new(venv.join("bin/python"))
            .arg(here.join("testdata/make_test_marian.py"))
            .arg(&model));
        Fixture {
            lib,
            model,
            _dir: dir,
        }
    })
}

#[test]
fn greedy_decoding_matches_the_python_runtime() {
    let f = fixture();
    let mut t = MarianTranslator::load(&f.model, &f.lib, 1).unwrap_or_else(|e| panic!("{e}"));
    let expected: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(f.model.join("expected.json")).unwrap_or_default(),
    )
    .unwrap_or_default();
    assert_eq!(expected.len(), 4);
    for (source, want) in &expected {
        let ids: Vec<i64> = want["ids"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_i64()).collect())
            .unwrap_or_default();
        assert_eq!(
            t.encode(source).unwrap_or_else(|e| panic!("{e}")),
            ids,
            "token ids of {source:?}"
        );
        let got = t.translate(source).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            got,
            want["translation"].as_str().unwrap_or_default(),
            "translation of {source:?}"
        );
    }
    // The copy model reproduces in-vocabulary text: tokeniser, vocab.json, both graphs, the
    // <pad> ban and detokenisation all had to be right.
    assert_eq!(
        t.translate("Bonjour à tous.").ok().as_deref(),
        Some("Bonjour à tous.")
    );
    assert_eq!(t.translate("  ").ok().as_deref(), Some(""));
}

#[test]
fn a_missing_or_broken_runtime_is_an_error_not_a_panic() {
    let f = fixture();
    let missing = Path::new("/nonexistent/libonnxruntime.so");
    let e = MarianTranslator::load(&f.model, missing, 1)
        .err()
        .unwrap_or_else(|| panic!("loaded without a runtime"));
    assert!(matches!(e, TranslateError::RuntimeMissing(_)), "{e}");
    assert!(e.to_string().contains("install-onnxruntime"), "{e}");

    let dir = tempdir();
    let fake = dir.path().join("libonnxruntime.so");
    std::fs::write(&fake, b"not a shared library").unwrap_or_else(|e| panic!("{e}"));
    let e = MarianTranslator::load(&f.model, &fake, 1)
        .err()
        .unwrap_or_else(|| panic!("loaded a text file"));
    assert_eq!(e.category(), "OnnxRuntimeLoadFailed", "{e}");
}

#[test]
fn an_incomplete_model_is_reported() {
    let f = fixture();
    let dir = tempdir();
    for file in [
        "encoder_model.onnx",
        "source.spm",
        "target.spm",
        "vocab.json",
        "config.json",
    ] {
        std::fs::copy(f.model.join(file), dir.path().join(file)).unwrap_or_else(|e| panic!("{e}"));
    }
    let e = MarianTranslator::load(dir.path(), &f.lib, 1)
        .err()
        .unwrap_or_else(|| panic!("loaded without a decoder"));
    assert!(
        matches!(&e, TranslateError::ModelMissing(m) if m.contains("decoder_model.onnx")),
        "{e}"
    );
    // A decoder with past key values (other inputs) is refused with the names it has.
    std::fs::copy(
        f.model.join("encoder_model.onnx"),
        dir.path().join("decoder_model.onnx"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let e = MarianTranslator::load(dir.path(), &f.lib, 1)
        .err()
        .unwrap_or_else(|| panic!("loaded an encoder as decoder"));
    assert!(
        matches!(&e, TranslateError::ModelInvalid(m) if m.contains("attention_mask")),
        "{e}"
    );
}

#[test]
fn english_speech_to_french_subtitles_uses_the_local_model() {
    let f = fixture();
    let _turn = whisper_turn();
    let dir = tempdir();
    let wav = speech_wav(dir.path(), "en", "en-us", 150, ENGLISH);
    let models = ModelPaths {
        translation_dir: f.model.parent().map(Path::to_path_buf),
        onnxruntime: Some(f.lib.clone()),
        ..models()
    };
    let out = dir.path().join("out");
    let o = transcribe(
        &wav,
        &out,
        &params("audio_192k_talk", "fr", "auto", None),
        &models,
        &options(),
        |_| {},
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(o.info.detected_source_language.as_deref(), Some("en"));
    assert_eq!(o.info.final_subtitle_language.as_deref(), Some("fr"));
    assert_eq!(o.info.translation.backend, "local_translation");
    assert_eq!(o.info.translation.model.as_deref(), Some("opus-mt-en-fr"));
    // Exactly one .vtt for Pod; the source sidecar must not end in .vtt.
    let sidecar = out.join("audio_192k_talk.source-en.webvtt.txt");
    assert_eq!(
        o.files,
        vec![out.join("audio_192k_talk.vtt"), sidecar.clone()]
    );
    assert_eq!(
        o.files
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "vtt"))
            .count(),
        1
    );
    let source =
        esup_transcribe::vtt::parse(&std::fs::read_to_string(&sidecar).unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}"));
    let translated =
        esup_transcribe::vtt::parse(&std::fs::read_to_string(&o.vtt).unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}"));
    assert!(!source.is_empty() && !translated.is_empty());
    // Translation keeps the timeline: same first start and last end as the source.
    assert_eq!(
        source.first().map(|c| c.start_ms),
        translated.first().map(|c| c.start_ms)
    );
    assert_eq!(
        source.last().map(|c| c.end_ms),
        translated.last().map(|c| c.end_ms)
    );
    // The copy model returns the source text minus characters its tiny vocabulary lacks.
    let src_text: String = source
        .iter()
        .map(|c| c.text())
        .collect::<Vec<_>>()
        .join(" ");
    let wer = esup_transcribe::wer::word_error_rate(&src_text, &o.text);
    assert!(wer < 0.5, "WER {wer} between {src_text:?} and {:?}", o.text);
}
