//! Output validation (reference runner 1.9.0) on real media: a source whose picture stops
//! early fails with `OutputTooShort` and Esup-Pod is told `failed`; outputs cut short after
//! the encoding, emptied or removed are caught by the check's own I/O; a transcription
//! without its WebVTT is caught, one with an empty WebVTT (no speech) is not.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use common::*;
use esup_runner::verify::{Expected, Kind, check, expected_transcription};
use warp::Filter;

/// Only the smallest rendition: faster, and enough for every kind of output.
const ONE_RENDITION: &str = r#"{"rendition": "{\"720\": null, \"1080\": null}"}"#;

/// `seconds_video` of picture and `seconds_audio` of tone in one MP4, not `-shortest`.
fn uneven(dir: &Path, name: &str, seconds_video: f64, seconds_audio: f64) -> PathBuf {
    let out = dir.join(name);
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc2=size=320x240:rate=25:duration={seconds_video}"),
        "-f",
        "lavfi",
        "-i",
        &format!("sine=frequency=440:duration={seconds_audio}"),
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        out.to_str().unwrap(),
    ]);
    out
}

/// A stand-in webhook on 127.0.0.1 that accepts uploads and records the completion.
fn webhook(completion: Arc<Mutex<Option<serde_json::Value>>>) -> String {
    let files = warp::put()
        .and(warp::path!("cb" / "files" / ..))
        .and(warp::path::tail())
        .and(warp::body::bytes())
        .map(|_: warp::path::Tail, _: bytes::Bytes| warp::reply::json(&serde_json::json!({})));
    let progress = warp::post()
        .and(warp::path!("cb" / "progress"))
        .and(warp::body::json())
        .map(|_: serde_json::Value| warp::reply::json(&serde_json::json!({"status": "ok"})));
    let done = warp::post()
        .and(warp::path!("cb" / "completion"))
        .and(warp::body::json())
        .map(move |v: serde_json::Value| {
            *completion.lock().unwrap() = Some(v);
            warp::reply::json(&serde_json::json!({"status": "acknowledged"}))
        });
    format!("{}/cb", serve_on("127.0.0.1", files.or(progress).or(done)))
}

/// Encodes `source` with a callback; the exit code, stderr and the completion posted.
fn encode_with_callback(source: &Path, out: &Path) -> (i32, String, serde_json::Value) {
    let completion = Arc::new(Mutex::new(None));
    let url = webhook(completion.clone());
    let output = runner()
        .args(["encode", "--source"])
        .arg(source)
        .arg("--out")
        .arg(out)
        .args(["--params", ONE_RENDITION])
        .env("ESUP_CALLBACK_URL", url)
        .env("ESUP_CALLBACK_TOKEN", "s3cret")
        .output()
        .unwrap();
    let posted = completion.lock().unwrap().take().expect("a completion");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
        posted,
    )
}

#[test]
fn a_picture_that_stops_16_s_before_the_sound_fails_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let src = uneven(dir.path(), "short.mp4", 4.0, 20.0);
    let out = dir.path().join("out");
    let (code, stderr, completion) = encode_with_callback(&src, &out);
    assert_eq!(code, 65, "final, not retried: {stderr}");
    assert_eq!(completion["status"], "failed", "{completion}");
    assert_eq!(
        completion["files"],
        serde_json::json!([]),
        "nothing delivered"
    );
    let message = completion["error_message"].as_str().unwrap();
    assert!(
        message.starts_with("Encoding failed: output 360p_short.ts lasts 4.")
            && message.contains("20.00 s expected")
            && message.contains("more than 5 s shorter"),
        "{message}"
    );
    let log = std::fs::read_to_string(out.join("encoding.log")).unwrap();
    assert!(log.contains("error (OutputTooShort)"), "{log}");
    assert!(
        completion["script_output"]
            .as_str()
            .unwrap()
            .contains("OutputTooShort")
    );
}

#[test]
fn a_picture_that_stops_3_s_before_the_sound_is_within_the_tolerance() {
    let dir = tempfile::tempdir().unwrap();
    let src = uneven(dir.path(), "almost.mp4", 17.0, 20.0);
    let out = dir.path().join("out");
    let (code, stderr, completion) = encode_with_callback(&src, &out);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(completion["status"], "completed", "{completion}");
    let log = std::fs::read_to_string(out.join("encoding.log")).unwrap();
    assert!(log.contains("outputs checked: "), "{log}");
}

fn media(name: &str, kind: Kind) -> Vec<Expected> {
    vec![Expected::new(name.into(), kind)]
}

fn category(dir: &Path, expected: &[Expected]) -> Result<(), &'static str> {
    check(dir, expected, 20.0).map_err(|e| e.category())
}

/// Every file of `dir` and its bytes.
fn contents(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

/// Keeps the first `share` of a file's bytes, as a disk full or a killed writer would.
fn truncate(path: &Path, share: f64) {
    let bytes = std::fs::read(path).unwrap();
    let keep = (bytes.len() as f64 * share) as usize;
    std::fs::write(path, &bytes[..keep]).unwrap();
}

#[test]
fn outputs_cut_short_emptied_or_removed_after_the_encoding_are_caught() {
    let dir = tempfile::tempdir().unwrap();
    let src = video(dir.path(), "full.mp4", 320, 240, 25, 20.0, true);
    let out = dir.path().join("out");
    let run = encode(&src, &out, &["--params", ONE_RENDITION]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let all = [
        ("360p_full.m3u8", Kind::File),
        ("360p_full.ts", Kind::Video),
        ("360p_full.mp4", Kind::Video),
        ("audio_192k_full.mp3", Kind::Audio),
        ("full_0.png", Kind::File),
        ("overview.vtt", Kind::File),
        ("info_video.json", Kind::File),
    ]
    .map(|(n, k)| Expected::new(n.into(), k));
    let before = contents(&out);
    assert_eq!(category(&out, &all), Ok(()), "the real outputs pass");
    assert!(before == contents(&out), "the check only reads");

    // The MP4's index is at its start (faststart) and the MP3 starts with a frame count:
    // both headers still claim 20 s, the packets do not.
    for (name, kind) in [
        ("360p_full.mp4", Kind::Video),
        ("360p_full.ts", Kind::Video),
        ("audio_192k_full.mp3", Kind::Audio),
    ] {
        truncate(&out.join(name), 0.5);
        let err = check(&out, &media(name, kind), 20.0).unwrap_err();
        assert_eq!(err.category(), "OutputTooShort", "{name}: {err}");
        assert!(
            err.to_string()
                .starts_with(&format!("output {name} lasts "))
        );
    }

    std::fs::write(out.join("full_0.png"), b"").unwrap();
    assert_eq!(
        category(&out, &media("full_0.png", Kind::File)),
        Err("OutputEmpty")
    );
    std::fs::remove_file(out.join("360p_full.m3u8")).unwrap();
    assert_eq!(
        category(&out, &media("360p_full.m3u8", Kind::File)),
        Err("OutputMissing")
    );
    std::fs::write(out.join("360p_full.ts"), b"not a transport stream").unwrap();
    assert_eq!(
        category(&out, &media("360p_full.ts", Kind::Video)),
        Err("OutputUnreadable")
    );
    // An MP3 where a rendition is expected: no picture to measure.
    assert_eq!(
        category(&out, &media("audio_192k_full.mp3", Kind::Video)),
        Err("OutputUnreadable")
    );
}

#[test]
fn a_transcription_without_its_webvtt_is_caught_an_empty_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    // Silence: no speech, so a WebVTT without cues, which is a valid result.
    let src = dir.path().join("audio_192k_silence.mp3");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "anullsrc=r=44100:cl=mono",
        "-t",
        "6",
        src.to_str().unwrap(),
    ]);
    let out = dir.path().join("out");
    let output = runner()
        .args(["transcribe", "--source"])
        .arg(&src)
        .arg("--out")
        .arg(&out)
        .args(["--params", r#"{"language":"fr"}"#, "--models-dir"])
        .arg(models_dir())
        .env_remove("ESUP_CALLBACK_URL")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let vtt = out.join("audio_192k_silence.vtt");
    let text = std::fs::read_to_string(&vtt).unwrap();
    assert!(
        text.starts_with("WEBVTT") && !text.contains("-->"),
        "{text}"
    );
    let expected = expected_transcription("audio_192k_silence");
    assert!(check(&out, &expected, f64::NAN).is_ok());

    std::fs::remove_file(&vtt).unwrap();
    let err = check(&out, &expected, f64::NAN).unwrap_err();
    assert_eq!(err.category(), "OutputMissing");
    assert_eq!(
        err.into_runner_error("Transcription failed").to_string(),
        "Transcription failed: output audio_192k_silence.vtt is missing"
    );
}
