//! Shared by the integration tests: real models from make-models, speech from espeak-ng, media
//! from the ffmpeg CLI, ONNX Runtime from its PyPI wheel. Nothing here is a test double.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

use esup_transcribe::{DecodeOptions, ModelPaths, RunOptions, TranscriptionParams};

pub const ENGLISH: &str = "Welcome to the university video platform. Today we will learn how the operator \
                           schedules transcription jobs on shared graphics cards.";
pub const FRENCH: &str = "Bonjour à tous. La vidéo de ce cours sera disponible demain matin sur la plateforme. \
                          Le cours de mathématiques commence à neuf heures. Les étudiants doivent lire le premier \
                          chapitre avant la séance.";

/// Varied sentences for long audio (identical repeats make Whisper loop, which is not what a
/// long-audio test is about).
pub const LECTURE: &str = "Each institution keeps its own queue, and the cluster lends idle capacity to the others. \
                           When a job fails, the operator retries it on another node and tells the platform. \
                           Subtitles are written in WebVTT, with at most two lines of forty characters per cue. \
                           The lecture recordings are kept for sixty days before they are deleted. \
                           Graphics cards are shared between universities through pools with quotas and priorities.";

/// whisper.cpp uses every core: tests that run it take turns instead of fighting for 2 cores.
pub fn whisper_turn() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn models_dir() -> PathBuf {
    let dir = std::env::var_os("ESUP_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/esup-runner/models")
        });
    for m in ["base", "base-q8_0", "tiny.en"] {
        let f = dir.join(format!("ggml-{m}.bin"));
        assert!(
            f.is_file(),
            "{} is missing: run runner-image/models/make-models",
            f.display()
        );
    }
    dir
}

pub fn models() -> ModelPaths {
    ModelPaths {
        whisper_dir: models_dir(),
        default_model: "base".into(),
        translation_dir: None,
        onnxruntime: None,
    }
}

pub fn params(
    stem: &str,
    language: &str,
    source: &str,
    model: Option<&str>,
) -> TranscriptionParams {
    TranscriptionParams {
        language: language.into(),
        source_language: source.into(),
        model: model.map(str::to_string),
        normalize: false,
        duration_seconds: None,
        stem: stem.into(),
    }
}

pub fn options() -> RunOptions {
    RunOptions {
        decode: DecodeOptions {
            threads: 2,
            ..DecodeOptions::default()
        },
        ..RunOptions::default()
    }
}

pub fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// espeak-ng speech of `text` as a WAV file.
pub fn speech_wav(dir: &Path, name: &str, voice: &str, speed: u32, text: &str) -> PathBuf {
    let wav = dir.join(format!("{name}.wav"));
    run(Command::new("espeak-ng")
        .args(["-v", voice, "-s", &speed.to_string(), "-w"])
        .arg(&wav)
        .arg(text));
    wav
}

/// Re-encodes with the ffmpeg CLI: `args` go between the inputs and the output.
pub fn ffmpeg(inputs: &[&Path], pre: &[&str], args: &[&str], out: &Path) -> PathBuf {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y"])
        .args(pre);
    for i in inputs {
        cmd.arg("-i").arg(i);
    }
    run(cmd.args(args).arg(out));
    out.to_path_buf()
}

/// What Esup-Pod sends: a 44.1 kHz stereo MP3.
pub fn as_mp3(wav: &Path, out: &Path) -> PathBuf {
    ffmpeg(
        &[wav],
        &[],
        &[
            "-ar",
            "44100",
            "-ac",
            "2",
            "-c:a",
            "libmp3lame",
            "-b:a",
            "128k",
        ],
        out,
    )
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
}
