//! `esup-runner transcribe` end to end on this machine: espeak-ng speech in, the real base model
//! (from `make models`), one WebVTT and info_video.json out; a non-media input fails as the
//! input's fault (exit 65).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{ffmpeg, runner};

fn models_dir() -> PathBuf {
    let dir = std::env::var_os("ESUP_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/esup-runner/models")
        });
    assert!(
        dir.join("ggml-base.bin").is_file(),
        "{} lacks ggml-base.bin: run `make models`",
        dir.display()
    );
    dir
}

fn transcribe(source: &Path, out: &Path, params: &str) -> (i32, String) {
    let output = runner()
        .args(["transcribe", "--source"])
        .arg(source)
        .arg("--out")
        .arg(out)
        .args(["--params", params, "--models-dir"])
        .arg(models_dir())
        .env_remove("ESUP_CALLBACK_URL")
        .output()
        .expect("runner");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn english_speech_becomes_one_webvtt_and_the_info_block() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("speech.wav");
    let status = Command::new("espeak-ng")
        .args(["-v", "en", "-w"])
        .arg(&wav)
        .arg("Welcome to the lecture. Today we study the history of the university library.")
        .status()
        .expect("espeak-ng");
    assert!(status.success());
    let mp3 = dir.path().join("audio_192k_my lecture.mp3");
    ffmpeg(&["-i", wav.to_str().unwrap(), mp3.to_str().unwrap()]);
    let out = dir.path().join("out");
    let (code, stderr) = transcribe(
        &mp3,
        &out,
        r#"{"language":"en","source_language":"auto","video_id":7,"video_slug":"7-lecture"}"#,
    );
    assert_eq!(code, 0, "{stderr}");

    let vtts: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".vtt"))
        .collect();
    assert_eq!(
        vtts,
        ["audio_192k_my_lecture.vtt"],
        "exactly one .vtt, named after the stem"
    );
    let vtt = std::fs::read_to_string(out.join(&vtts[0])).unwrap();
    assert!(vtt.starts_with("WEBVTT"), "{vtt}");
    let lower = vtt.to_lowercase();
    for word in ["welcome", "lecture", "library"] {
        assert!(lower.contains(word), "{word:?} missing from {vtt}");
    }

    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("info_video.json")).unwrap())
            .unwrap();
    let t = &info["transcription"];
    assert_eq!(t["detected_source_language"], "en", "{info}");
    assert_eq!(t["final_subtitle_language"], "en", "{info}");
    assert_eq!(t["hardware_profile"], "cpu", "no GPU on this machine");
    assert_eq!(info["video_id"], 7);
    assert!(out.join("encoding.log").is_file());
}

#[test]
fn a_text_file_is_refused_as_the_inputs_fault() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("notes.mp3");
    std::fs::write(&fake, "these are lecture notes, not audio\n".repeat(100)).unwrap();
    let (code, stderr) = transcribe(&fake, &dir.path().join("out"), r#"{"language":"fr"}"#);
    assert_eq!(code, 65, "{stderr}");
    assert!(
        stderr.contains("InputUnreadable") || stderr.contains("NoAudioStream"),
        "{stderr}"
    );
}
