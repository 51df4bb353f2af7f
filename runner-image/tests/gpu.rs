//! The GPU paths' fallback, on a machine without a GPU (no NVIDIA driver, no libcuda, NVML
//! absent), where libav has the CUVID and NVENC codecs but cannot open them. With
//! `ESUP_ASSUME_GPU` the runner really tries `<codec>_cuvid` and `h264_nvenc`; each open fails
//! for real and the task must still succeed on the CPU, saying why in info_video.json.
//! On a machine with a GPU these checks do not hold (the GPU would work): they are skipped there.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

/// Whether an NVIDIA driver is present: then the GPU could really work and the fallback
/// expectations below do not apply.
fn driver_present() -> bool {
    Path::new("/dev/nvidiactl").exists()
}

/// Runs `esup-runner <command>` with `ESUP_ASSUME_GPU` set (or removed), no callback.
fn run_with_gpu(command: &str, source: &Path, out: &Path, assume: Option<&str>, extra: &[&str]) {
    let mut cmd = runner();
    cmd.args([command, "--source"])
        .arg(source)
        .arg("--out")
        .arg(out)
        .args(extra)
        .env_remove("ESUP_CALLBACK_URL")
        .env_remove("ESUP_FORCE_CPU");
    match assume {
        Some(v) => cmd.env("ESUP_ASSUME_GPU", v),
        None => cmd.env_remove("ESUP_ASSUME_GPU"),
    };
    let output = cmd.output().expect("runner");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn hardware(out: &Path) -> Value {
    info(out)["hardware"].clone()
}

fn reasons(h: &Value) -> Vec<String> {
    h["fallback"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn encoding_log(out: &Path) -> String {
    std::fs::read_to_string(out.join("encoding.log")).unwrap()
}

#[test]
fn without_a_gpu_the_encode_is_on_the_cpu_with_the_reason() {
    if driver_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = video(dir.path(), "lecture.mp4", 640, 360, 25, 3.0, true);
    let out = dir.path().join("out");
    run_with_gpu("encode", &src, &out, None, &[]);
    check_rendition(&out, "lecture", 360, 640, 75.0, 1, true);
    let h = hardware(&out);
    assert_eq!(h["gpu"], Value::Null);
    assert_eq!(h["decode"], "cpu");
    assert_eq!(h["encode"], "libx264");
    let r = reasons(&h);
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(r[0].starts_with("no GPU: NVML unavailable"), "{r:?}");
}

#[test]
fn a_gpu_whose_codecs_cannot_open_falls_back_to_the_cpu() {
    if driver_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = video(dir.path(), "lecture.mp4", 640, 360, 25, 3.0, true);
    let out = dir.path().join("out");
    run_with_gpu("encode", &src, &out, Some("Test GPU,nvenc"), &[]);
    // Same outputs as on the CPU: keyframes every 2 s, HLS and MP4 alike.
    check_rendition(&out, "lecture", 360, 640, 75.0, 1, true);
    check_pictures(&out, "lecture", 3.0);
    let h = hardware(&out);
    assert_eq!(h["gpu"], "Test GPU");
    assert_eq!(h["decode"], "cpu");
    assert_eq!(h["encode"], "libx264");
    let r = reasons(&h);
    assert_eq!(r.len(), 2, "{r:?}");
    // The CUVID decoder was really tried (its preflight failed to open it) ...
    assert!(
        r[0].starts_with("decode: h264_cuvid could not be opened"),
        "{r:?}"
    );
    // ... and so was NVENC.
    assert!(
        r[1].starts_with("encode: h264_nvenc could not be opened"),
        "{r:?}"
    );
    let log = encoding_log(&out);
    assert!(log.contains("GPU: Test GPU (NVENC: true)"), "{log}");
    assert!(log.contains("video decoder: cpu"), "{log}");
}

#[test]
fn hopper_without_nvenc_and_a_webm_source() {
    if driver_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("talk.webm");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=640x360:rate=24:duration=2",
        "-c:v",
        "libvpx-vp9",
        "-deadline",
        "realtime",
        "-cpu-used",
        "8",
        src.to_str().unwrap(),
    ]);
    let out = dir.path().join("out");
    run_with_gpu("encode", &src, &out, Some("NVIDIA H200"), &[]);
    check_rendition(&out, "talk", 360, 640, 48.0, 0, true);
    let h = hardware(&out);
    assert_eq!(h["gpu"], "NVIDIA H200");
    assert_eq!(
        (h["decode"].as_str(), h["encode"].as_str()),
        (Some("cpu"), Some("libx264"))
    );
    let r = reasons(&h);
    assert_eq!(r.len(), 2, "{r:?}");
    // No NVENC engine: libx264 without even trying; NVDEC is tried with the VP9 decoder.
    assert_eq!(r[0], "encode: NVIDIA H200 has no NVENC engine");
    assert!(
        r[1].starts_with("decode: vp9_cuvid could not be opened"),
        "{r:?}"
    );
}

#[test]
fn force_cpu_tries_no_gpu_codec() {
    let dir = tempfile::tempdir().unwrap();
    let src = video(dir.path(), "lecture.mp4", 640, 360, 25, 2.0, false);
    let out = dir.path().join("out");
    run_with_gpu(
        "encode",
        &src,
        &out,
        Some("NVIDIA L4,nvenc"),
        &["--force-cpu"],
    );
    let h = hardware(&out);
    assert_eq!(h["gpu"], Value::Null);
    assert_eq!(
        (h["decode"].as_str(), h["encode"].as_str()),
        (Some("cpu"), Some("libx264"))
    );
    assert_eq!(
        reasons(&h),
        ["no GPU: forced to the CPU (--force-cpu)".to_owned()]
    );
}

/// A one-track Opencast mediapackage next to `track`.
fn package(dir: &Path, track: &str) -> std::path::PathBuf {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<mediapackage xmlns=\"http://mediapackage.opencastproject.org\" id=\"rec\" presenter=\"mid\">\n<media>\n<track id=\"p\" type=\"presentation/source\"><mimetype>video/mp4</mimetype><url>{track}</url></track>\n</media>\n</mediapackage>\n"
    );
    let path = dir.join("package.xml");
    std::fs::write(&path, xml).unwrap();
    path
}

#[test]
fn studio_uses_nvenc_only_when_allowed() {
    if driver_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    video(dir.path(), "screen.mp4", 640, 360, 25, 2.0, true);
    let xml = package(dir.path(), "screen.mp4");

    // Not allowed: NVENC is not even tried, for the mix nor for the encode.
    let out = dir.path().join("out");
    run_with_gpu(
        "studio",
        &xml,
        &out,
        Some("NVIDIA L4,nvenc"),
        &["--params", r#"{"studio_preset": "ultrafast"}"#],
    );
    let first = info(&out);
    assert_eq!(first["studio"]["encoder"], "libx264");
    let r = reasons(&first["hardware"]);
    assert!(
        r.iter()
            .any(|s| s == "encode: NVENC is off for studio tasks without studio_allow_nvenc"),
        "{r:?}"
    );
    assert!(!r.iter().any(|s| s.contains("h264_nvenc")), "{r:?}");

    // Allowed: tried for the mix and for the encode; both fall back here.
    let out = dir.path().join("out_nvenc");
    run_with_gpu(
        "studio",
        &xml,
        &out,
        Some("NVIDIA L4,nvenc"),
        &[
            "--params",
            r#"{"studio_preset": "ultrafast", "studio_allow_nvenc": "true"}"#,
        ],
    );
    let info = info(&out);
    assert_eq!(info["studio"]["encoder"], "libx264");
    assert_eq!(info["hardware"]["encode"], "libx264");
    let r = reasons(&info["hardware"]);
    let nvenc: Vec<&String> = r.iter().filter(|s| s.contains("h264_nvenc")).collect();
    assert_eq!(nvenc.len(), 2, "mix and encode: {r:?}");
    check_rendition(&out, "studio_base", 360, 640, 60.0, 1, true);
}
