//! libav opens the runner's files with the `file` protocol only and the demuxers the runner
//! supports (`esup_runner::libav::probe::DEMUXERS`): a "media" file that is really a playlist or a
//! concat script, which would make libav read other files or URLs, is refused before its
//! demuxer reads anything.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;

/// A server on 127.0.0.1 that counts requests and serves `bytes` at any path.
fn counting_server(bytes: Vec<u8>) -> (String, Arc<AtomicUsize>) {
    counting_host("127.0.0.1", bytes)
}

/// A segment outside the task's directories stands for a file of the runner's disk that a
/// playlist would leak into the outputs.
#[test]
fn playlists_and_concat_scripts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let d = dir.path();
    let clip = colour_clip(
        elsewhere.path(),
        "secret.mp4",
        "red",
        "320x240",
        25,
        1.0,
        None,
    );
    let segment = elsewhere.path().join("secret.ts");
    ffmpeg(&[
        "-i",
        clip.to_str().unwrap(),
        "-c",
        "copy",
        "-f",
        "mpegts",
        segment.to_str().unwrap(),
    ]);
    let (server, hits) = counting_server(std::fs::read(&segment).unwrap());
    let playlist = |uri: &str| {
        format!("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:1.0,\n{uri}\n#EXT-X-ENDLIST\n")
    };
    let cases = [
        (
            "hls_file.mp4",
            playlist(&format!("file://{}", segment.display())),
        ),
        ("hls_path.mkv", playlist(segment.to_str().unwrap())),
        (
            "concat.mp4",
            "ffconcat version 1.0\nfile secret.mp4\n".to_owned(),
        ),
        ("hls_http.mp4", playlist(&format!("{server}/secret.ts"))),
    ];
    // The concat script names a file beside it (its `safe` mode allows no other).
    std::fs::copy(&clip, d.join("secret.mp4")).unwrap();
    for (name, text) in &cases {
        let source = d.join(name);
        std::fs::write(&source, text).unwrap();
        let out = d.join(format!("out_{name}"));
        let run = encode(
            &source,
            &out,
            &["--params", r#"{"rendition": "{\"360\": null}"}"#],
        );
        assert_refused(&run, &out, "UnsupportedFormat");
        assert!(
            std::fs::read_dir(&out)
                .unwrap()
                .flatten()
                .all(|e| e.file_name() == "encoding.log"),
            "{name}: outputs were written"
        );
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0, "libav fetched a URL");
}

/// The transcription opens its source itself (esup-transcribe), under the same whitelists.
#[test]
fn the_transcription_source_is_opened_under_the_whitelists() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let speech = speech(d, 2.0);
    std::fs::write(
        d.join("cours.mp4"),
        format!(
            "ffconcat version 1.0\nfile {}\n",
            speech.file_name().unwrap().to_str().unwrap()
        ),
    )
    .unwrap();
    let err = esup_transcribe::audio::decode_to_pcm16k(&d.join("cours.mp4")).unwrap_err();
    assert!(err.to_string().contains("Invalid argument"), "{err}");
    // The real file still decodes.
    assert!(
        !esup_transcribe::audio::decode_to_pcm16k(&speech)
            .unwrap()
            .is_empty()
    );
}
