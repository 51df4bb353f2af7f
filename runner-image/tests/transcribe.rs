//! `esup-runner transcribe` end to end on this machine: espeak-ng speech in, the real base model
//! (from `make models`), one WebVTT and info_video.json out; a non-media input fails as the
//! input's fault (exit 65).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::path::Path;
use std::process::Command;

use common::{ffmpeg, models_dir, runner};

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
    assert_eq!(
        t["whisper_cpu_build"], "x86-64-v3",
        "cargo's own build is the portable one: {info}"
    );
    assert_eq!(info["video_id"], 7);
    assert!(out.join("encoding.log").is_file());
}

/// The hand-over to the build for this node, with scripts standing in for the other builds (a
/// real one is a second full build of the runner: `bench/transcribe` builds and measures the
/// AVX-512 one; the CUDA one is checked by hand, docs/transcription.md, "GPU").
#[test]
fn the_transcription_goes_to_the_build_for_this_node_beside_the_runner() {
    use esup_runner::runner_build::{BUILD_ENV, RunnerBuild, cpu_has_x86_64_v4};
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let runner_copy = bin.join("esup-runner");
    std::fs::copy(env!("CARGO_BIN_EXE_esup-runner"), &runner_copy).unwrap();
    let record = dir.path().join("ran");
    for build in [RunnerBuild::X86_64V4, RunnerBuild::Cuda] {
        let path = bin.join(build.binary_name());
        let script = format!(
            "#!/bin/sh\necho \"{} ${BUILD_ENV} $*\" > '{}'\n",
            build.binary_name(),
            record.display()
        );
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = dir.path().join("out");
    // Which stand-in ran (its name, the build chosen, the arguments), or the runner's own exit.
    let run = |extra: &[&str], env: &[(&str, &str)]| {
        let mut cmd = Command::new(&runner_copy);
        cmd.args(["transcribe", "--source", "/nonexistent.mp3", "--out"])
            .arg(&out)
            .args(["--params", r#"{"language":"fr"}"#])
            .args(extra)
            .env_remove("ESUP_CALLBACK_URL")
            .env_remove(BUILD_ENV)
            .env_remove("ESUP_ASSUME_GPU")
            .envs(env.iter().copied());
        let output = cmd.output().unwrap();
        let ran = std::fs::read_to_string(&record).ok();
        let _ = std::fs::remove_file(&record);
        (ran, output)
    };
    let args = format!(
        r#"transcribe --source /nonexistent.mp3 --out {} --params {{"language":"fr"}}"#,
        out.display()
    );

    let (ran, output) = run(&[], &[]);
    if cpu_has_x86_64_v4() {
        assert_eq!(
            ran.as_deref().map(str::trim),
            Some(format!("esup-runner-x86-64-v4 x86-64-v4 {args}").as_str()),
            "same arguments, the choice in the environment: {output:?}"
        );
    } else {
        assert_eq!(ran, None, "an AVX2-only CPU keeps the portable build");
    }

    let (ran, output) = run(&[], &[("ESUP_ASSUME_GPU", "NVIDIA H200")]);
    assert_eq!(
        ran.as_deref().map(str::trim),
        Some(format!("esup-runner-cuda cuda {args}").as_str()),
        "a GPU node: the CUDA build: {output:?}"
    );
    let (ran, _) = run(&["--force-cpu"], &[("ESUP_ASSUME_GPU", "NVIDIA H200")]);
    assert!(
        !ran.unwrap_or_default().starts_with("esup-runner-cuda"),
        "--force-cpu: no CUDA build"
    );

    // Kept by hand: this build runs, and refuses the missing file.
    let (ran, kept) = run(
        &[],
        &[(BUILD_ENV, "x86-64-v3"), ("ESUP_ASSUME_GPU", "NVIDIA H200")],
    );
    assert_eq!(
        ran, None,
        "ESUP_RUNNER_BUILD=x86-64-v3 keeps the portable build"
    );
    assert_eq!(kept.status.code(), Some(65), "{kept:?}");
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
