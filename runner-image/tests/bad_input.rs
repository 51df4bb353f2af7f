//! Unusable sources end with exit 65 (never retried) and a clear message; bad parameters
//! with 64.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use common::*;

fn refused(source: &std::path::Path, extra: &[&str], category: &str) {
    let out = source.parent().unwrap().join("out");
    assert_refused(&encode(source, &out, extra), &out, category);
}

#[test]
fn a_pdf_renamed_mp4_is_not_media() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("slides.mp4");
    std::fs::write(&src, b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n").unwrap();
    refused(&src, &[], "NotMedia");
}

#[test]
fn a_truncated_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let full = video(dir.path(), "full.mp4", 320, 240, 25, 2.0, false);
    let bytes = std::fs::read(&full).unwrap();
    let src = dir.path().join("cut.mp4");
    // The moov box is at the end (no faststart): half the file has no index.
    std::fs::write(&src, &bytes[..bytes.len() / 2]).unwrap();
    refused(&src, &[], "NotMedia");
}

#[test]
fn zero_duration_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("empty.wav");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "anullsrc=r=44100:cl=mono",
        "-t",
        "0",
        src.to_str().unwrap(),
    ]);
    refused(&src, &[], "ZeroDuration");
}

#[test]
fn no_usable_stream_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let srt = dir.path().join("s.srt");
    std::fs::write(&srt, "1\n00:00:00,000 --> 00:00:01,000\nBonjour\n").unwrap();
    let src = dir.path().join("subtitles.mkv");
    ffmpeg(&["-i", srt.to_str().unwrap(), src.to_str().unwrap()]);
    refused(&src, &[], "NoUsableStream");
}

#[test]
fn a_denied_codec_is_unsupported() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("magic.avi");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=10:duration=1",
        "-c:v",
        "magicyuv",
        src.to_str().unwrap(),
    ]);
    refused(&src, &[], "UnsupportedCodec");
}

#[test]
fn a_source_over_the_limit_is_too_large() {
    let dir = tempfile::tempdir().unwrap();
    let src = video(dir.path(), "big.mp4", 320, 240, 25, 1.0, false);
    refused(&src, &["--max-source-bytes", "1000"], "SourceTooLarge");
}

#[test]
fn a_non_media_extension_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("notes.pdf");
    std::fs::write(&src, b"%PDF").unwrap();
    refused(&src, &[], "UnsupportedExtension");
}

#[test]
fn unknown_parameters_are_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let src = video(dir.path(), "a.mp4", 320, 240, 25, 1.0, false);
    let run = encode(
        &src,
        &dir.path().join("out"),
        &["--params", r#"{"colour": "red"}"#],
    );
    assert_eq!(run.code, 64, "{}", run.stderr);
    assert!(
        run.stderr.contains("invalid fields: colour"),
        "{}",
        run.stderr
    );
}
