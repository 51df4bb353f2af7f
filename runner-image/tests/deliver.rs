//! Delivery against a real local HTTP server (warp on 127.0.0.1) that records what the
//! runner sends: uploads under files/, progress, and the completion with its manifest.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::*;
use sha2::{Digest, Sha256};
use warp::Filter;
use warp::Reply;

#[derive(Default)]
struct Seen {
    files: HashMap<String, Vec<u8>>,
    progress: Vec<serde_json::Value>,
    completion: Option<serde_json::Value>,
    bearer: Vec<String>,
}

/// Starts the stand-in webhook in a thread; returns its callback base URL.
fn webhook(seen: Arc<Mutex<Seen>>) -> String {
    flaky_webhook(seen, Vec::new())
}

/// The stand-in webhook, answering the first uploads and completions with `answers` (in
/// order) before accepting them, as a busy, rate-limiting or lagging webhook does.
fn flaky_webhook(seen: Arc<Mutex<Seen>>, answers: Vec<u16>) -> String {
    let answers = Arc::new(Mutex::new(std::collections::VecDeque::from(answers)));
    let flake = move || -> Option<warp::http::Response<String>> {
        let status = answers.lock().unwrap().pop_front()?;
        Some(
            warp::http::Response::builder()
                .status(status)
                .header("retry-after", "1")
                .body(format!("{{\"detail\": \"answer {status}\"}}"))
                .unwrap(),
        )
    };
    let flake_files = flake.clone();
    let auth = warp::header::<String>("authorization");
    let s1 = seen.clone();
    let files = warp::put()
        .and(warp::path!("cb" / "files" / ..))
        .and(warp::path::tail())
        .and(auth)
        .and(warp::body::bytes())
        .map(move |tail: warp::path::Tail, bearer: String, body: Bytes| {
            if let Some(refusal) = flake_files() {
                return refusal.into_response();
            }
            let path = percent_decode(tail.as_str());
            let mut s = s1.lock().unwrap();
            s.bearer.push(bearer);
            s.files.insert(path, body.to_vec());
            warp::reply::json(&serde_json::json!({"ok": true})).into_response()
        });
    let s2 = seen.clone();
    let progress = warp::post()
        .and(warp::path!("cb" / "progress"))
        .and(warp::body::json())
        .map(move |v: serde_json::Value| {
            s2.lock().unwrap().progress.push(v);
            warp::reply::json(&serde_json::json!({"status": "ok"}))
        });
    let s3 = seen.clone();
    let completion = warp::post()
        .and(warp::path!("cb" / "completion"))
        .and(warp::body::json())
        .map(move |v: serde_json::Value| {
            if let Some(refusal) = flake() {
                return refusal.into_response();
            }
            s3.lock().unwrap().completion = Some(v);
            warp::reply::json(&serde_json::json!({"status": "acknowledged"})).into_response()
        });
    let routes = files.or(progress).or(completion);
    format!("{}/cb", serve_on("127.0.0.1", routes))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn run_with_callback(source: &std::path::Path, out: &std::path::Path, url: &str) -> i32 {
    runner()
        .args(["encode", "--source"])
        .arg(source)
        .arg("--out")
        .arg(out)
        .args([
            "--params",
            r#"{"rendition": "{\"720\": null, \"1080\": null}"}"#,
        ])
        .env("ESUP_CALLBACK_URL", url)
        .env("ESUP_CALLBACK_TOKEN", "s3cret")
        .status()
        .unwrap()
        .code()
        .unwrap_or(-1)
}

#[test]
fn outputs_are_uploaded_with_their_sha256_then_completed() {
    let dir = tempfile::tempdir().unwrap();
    let src = video(dir.path(), "ma vidéo.mp4", 320, 240, 25, 2.0, true);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let url = webhook(seen.clone());
    let out = dir.path().join("out");
    assert_eq!(run_with_callback(&src, &out, &url), 0);
    let s = seen.lock().unwrap();
    assert!(s.bearer.iter().all(|b| b == "Bearer s3cret"));
    let completion = s.completion.as_ref().expect("completion posted");
    assert_eq!(completion["status"], "completed");
    assert_eq!(completion["error_message"], serde_json::Value::Null);
    assert!(
        completion["script_output"]
            .as_str()
            .unwrap()
            .starts_with("[info_script.log]")
    );
    assert_eq!(completion["hardware"]["encode"], "libx264");
    let manifest = completion["files"].as_array().unwrap();
    let on_disk: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(manifest.len(), on_disk.len(), "every output listed");
    assert_eq!(manifest[0]["path"], "info_video.json");
    for entry in manifest {
        let path = entry["path"].as_str().unwrap();
        let uploaded = s
            .files
            .get(path)
            .unwrap_or_else(|| panic!("{path} not uploaded"));
        let local = std::fs::read(out.join(path)).unwrap();
        assert_eq!(uploaded, &local, "{path} uploaded whole");
        let sha: String = Sha256::digest(&local)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(entry["sha256"], sha, "{path}");
        assert_eq!(entry["size_bytes"], local.len() as u64);
        esup_api::runner::safe_result_path(path).unwrap();
    }
    assert!(s.files.contains_key("360p_ma_video.ts"));
    assert!(s.progress.iter().any(|p| p["stage"] == "download"));
    assert!(s.progress.iter().any(|p| p["stage"] == "upload"));
}

#[test]
fn busy_rate_limiting_or_lagging_webhook_answers_are_retried() {
    // 429 and 408 from a busy webhook, 404 from a replica whose cache has not seen the task
    // yet: each passes, so the runner retries instead of failing the task for good (65).
    let dir = tempfile::tempdir().unwrap();
    let src = video(dir.path(), "clip.mp4", 320, 240, 25, 1.0, false);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let url = flaky_webhook(seen.clone(), vec![429, 408, 404]);
    let out = dir.path().join("out");
    assert_eq!(run_with_callback(&src, &out, &url), 0);
    let s = seen.lock().unwrap();
    assert_eq!(
        s.completion.as_ref().expect("completion posted")["status"],
        "completed"
    );
    let outputs = std::fs::read_dir(&out).unwrap().count();
    assert_eq!(
        s.files.len(),
        outputs,
        "every output uploaded once accepted"
    );
}

#[test]
fn a_final_failure_is_reported_as_failed() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("fake.mp4");
    std::fs::write(&src, b"%PDF-1.4 not a video").unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let url = webhook(seen.clone());
    assert_eq!(run_with_callback(&src, &dir.path().join("out"), &url), 65);
    let s = seen.lock().unwrap();
    let completion = s.completion.as_ref().expect("completion posted");
    assert_eq!(completion["status"], "failed");
    assert!(
        completion["error_message"]
            .as_str()
            .unwrap()
            .contains("not a readable media file")
    );
    assert!(s.files.is_empty());
}

#[test]
fn a_source_url_is_downloaded_and_a_missing_webhook_is_transient() {
    let dir = tempfile::tempdir().unwrap();
    let src = video(dir.path(), "clip.mp4", 320, 240, 25, 1.0, false);
    let bytes = std::fs::read(&src).unwrap();
    // A source server that fails twice before serving, to exercise the retries.
    let hits = Arc::new(Mutex::new(0u32));
    let h = hits.clone();
    let route = warp::path!("media" / "clip.mp4").map(move || {
        let mut n = h.lock().unwrap();
        *n += 1;
        let status = if *n <= 2 { 503 } else { 200 };
        let body = if *n <= 2 { Vec::new() } else { bytes.clone() };
        warp::http::Response::builder()
            .status(status)
            .body(body)
            .unwrap()
    });
    let base = serve_on("127.0.0.1", route);
    let out = dir.path().join("out");
    let status = runner()
        .args([
            "encode",
            "--source",
            &format!("{base}/media/clip.mp4"),
            "--retry-base-ms",
            "50",
            "--work",
        ])
        .arg(dir.path().join("work"))
        .arg("--out")
        .arg(&out)
        // Nothing listens there: delivery cannot happen, so the attempt is transient (75).
        .env("ESUP_CALLBACK_URL", "http://127.0.0.1:9/cb")
        .status()
        .unwrap();
    assert_eq!(*hits.lock().unwrap(), 3, "two failures, then the download");
    assert!(
        out.join("360p_clip.m3u8").exists(),
        "encoded from the download"
    );
    assert_eq!(status.code(), Some(75));
}
