//! Helpers of the integration tests: media made on the spot with the ffmpeg CLI (lavfi
//! sources, espeak-ng speech), the runner binary, and ffprobe to check what it wrote.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The converted Whisper models (`make models`): `ESUP_MODELS_DIR`, else the build cache's.
pub fn models_dir() -> PathBuf {
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

/// The runner binary, allowed to fetch from 127.0.0.1 (where the tests' servers listen) and
/// nowhere else private; a test that needs another URL policy sets the variables again.
pub fn runner() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_esup-runner"));
    command
        .env("ESUP_PRIVATE_NETWORKS", "127.0.0.1/32")
        .env_remove("ESUP_ALLOWED_HOSTS")
        .env_remove("ESUP_PRIVATE_HOSTS");
    command
}

/// Runs the ffmpeg CLI (quiet), panicking on failure.
pub fn ffmpeg(args: &[&str]) {
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-y"])
        .args(args)
        .status()
        .expect("ffmpeg");
    assert!(status.success(), "ffmpeg {args:?}");
}

/// A WAV of speech, `seconds` long (padded or cut), from espeak-ng.
pub fn speech(dir: &Path, seconds: f64) -> PathBuf {
    let raw = dir.join("speech_raw.wav");
    let status = Command::new("espeak-ng")
        .args([
            "-w",
            raw.to_str().unwrap(),
            "Bonjour, ceci est un cours de test pour Esup Pod. Hello and welcome.",
        ])
        .status()
        .expect("espeak-ng");
    assert!(status.success());
    let out = dir.join("speech.wav");
    ffmpeg(&[
        "-i",
        raw.to_str().unwrap(),
        "-af",
        "apad",
        "-t",
        &seconds.to_string(),
        out.to_str().unwrap(),
    ]);
    out
}

/// A video with `testsrc2` and speech (or none), encoded quickly.
pub fn video(
    dir: &Path,
    name: &str,
    w: u32,
    h: u32,
    fps: u32,
    seconds: f64,
    audio: bool,
) -> PathBuf {
    let out = dir.join(name);
    let src = format!("testsrc2=size={w}x{h}:rate={fps}:duration={seconds}");
    let mut args: Vec<String> = vec!["-f".into(), "lavfi".into(), "-i".into(), src];
    if audio {
        args.extend(["-i".into(), speech(dir, seconds).to_str().unwrap().into()]);
    }
    args.extend(
        [
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ]
        .map(String::from),
    );
    if audio {
        args.extend(["-c:a", "aac", "-shortest"].map(String::from));
    }
    args.push(out.to_str().unwrap().into());
    ffmpeg(&args.iter().map(String::as_str).collect::<Vec<_>>());
    out
}

pub fn probe(path: &Path) -> Value {
    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
            "-count_frames",
        ])
        .arg(path)
        .output()
        .expect("ffprobe");
    assert!(
        output.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("ffprobe json")
}

pub fn streams<'a>(probe: &'a Value, kind: &str) -> Vec<&'a Value> {
    probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["codec_type"] == kind)
        .collect()
}

pub fn frames(stream: &Value) -> u64 {
    stream["nb_read_frames"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

pub fn duration(probe: &Value) -> f64 {
    probe["format"]["duration"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.0)
}

/// Fully decodes a file with the ffmpeg CLI: it plays.
pub fn decodes(path: &Path) {
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-xerror", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .status()
        .expect("ffmpeg");
    assert!(status.success(), "{} does not decode", path.display());
}

pub struct Run {
    pub code: i32,
    pub stderr: String,
}

pub fn encode(source: &Path, out: &Path, extra: &[&str]) -> Run {
    run_task("encode", source.to_str().expect("UTF-8 path"), out, extra)
}

/// The run ended with exit 65 (invalid input, never retried) and named `category` on stderr
/// and in encoding.log.
pub fn assert_refused(run: &Run, out: &Path, category: &str) {
    assert_eq!(run.code, 65, "{}", run.stderr);
    assert!(
        run.stderr.contains(category),
        "{category} in {}",
        run.stderr
    );
    let log = std::fs::read_to_string(out.join("encoding.log")).expect("encoding.log");
    assert!(log.contains(category), "{log}");
}

pub fn info(out: &Path) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(out.join("info_video.json")).expect("info_video.json"),
    )
    .expect("json")
}

/// Checks one video rendition: HLS playlist naming its .ts, sizes, frame count, playable;
/// the MP4 when asked, with its moov first (faststart).
pub fn check_rendition(
    out: &Path,
    base: &str,
    height: u32,
    width: u32,
    frames_expected: f64,
    audio_streams: usize,
    mp4: bool,
) {
    let m3u8 = out.join(format!("{height}p_{base}.m3u8"));
    let ts = out.join(format!("{height}p_{base}.ts"));
    let playlist = std::fs::read_to_string(&m3u8).expect("m3u8");
    assert!(playlist.starts_with("#EXTM3U"), "{playlist}");
    assert!(playlist.contains("#EXT-X-PLAYLIST-TYPE:VOD") && playlist.contains("#EXT-X-ENDLIST"));
    assert!(
        playlist
            .lines()
            .any(|l| l == format!("{height}p_{base}.ts")),
        "{playlist}"
    );
    assert!(playlist.contains("#EXT-X-TARGETDURATION:2"), "{playlist}");
    let mut files = vec![ts];
    let mp4_path = out.join(format!("{height}p_{base}.mp4"));
    if mp4 {
        let bytes = std::fs::read(&mp4_path).expect("mp4");
        let moov = bytes.windows(4).position(|w| w == b"moov").expect("moov");
        let mdat = bytes.windows(4).position(|w| w == b"mdat").expect("mdat");
        assert!(moov < mdat, "faststart: moov before mdat");
        files.push(mp4_path);
    } else {
        assert!(!mp4_path.exists(), "no MP4 for {height}p");
    }
    let mut counts: Vec<f64> = Vec::new();
    for f in files {
        let p = probe(&f);
        let v = streams(&p, "video");
        assert_eq!(v.len(), 1, "{}", f.display());
        assert_eq!(v[0]["codec_name"], "h264");
        assert_eq!(v[0]["profile"], "High");
        assert_eq!(v[0]["pix_fmt"], "yuv420p");
        assert_eq!(
            (v[0]["width"].as_u64(), v[0]["height"].as_u64()),
            (Some(u64::from(width)), Some(u64::from(height))),
            "{}",
            f.display()
        );
        let n = frames(v[0]) as f64;
        assert!(
            (n - frames_expected).abs() <= 2.0,
            "{}: {n} frames, {frames_expected} expected",
            f.display()
        );
        counts.push(n);
        let a = streams(&p, "audio");
        assert_eq!(a.len(), audio_streams, "{}", f.display());
        for s in a {
            assert_eq!(s["codec_name"], "aac");
            assert_eq!(s["sample_rate"], "48000");
        }
        decodes(&f);
    }
    // The same packets went to both files: the same frames must come out.
    assert!(
        counts.windows(2).all(|w| w[0] == w[1]),
        "{height}p: HLS and MP4 frame counts differ: {counts:?}"
    );
}

/// Thumbnails, sprite and VTT: the VTT's tiles are exactly the sprite's.
pub fn check_pictures(out: &Path, base: &str, duration: f64) {
    for i in 0..3 {
        let p = probe(&out.join(format!("{base}_{i}.png")));
        let v = streams(&p, "video");
        assert!(v[0]["width"].as_u64().unwrap() <= 1280 && v[0]["height"].as_u64().unwrap() <= 720);
    }
    let sprite = probe(&out.join("overview.png"));
    let sw = streams(&sprite, "video")[0]["width"].as_u64().unwrap();
    let sh = streams(&sprite, "video")[0]["height"].as_u64().unwrap();
    assert_eq!(sh, 90);
    let vtt = std::fs::read_to_string(out.join("overview.vtt")).unwrap();
    assert!(vtt.starts_with("WEBVTT\n"));
    let tiles: Vec<(u64, u64, u64, u64)> = vtt
        .lines()
        .filter_map(|l| l.strip_prefix("overview.png#xywh="))
        .map(|c| {
            let n: Vec<u64> = c.split(',').map(|x| x.parse().unwrap()).collect();
            (n[0], n[1], n[2], n[3])
        })
        .collect();
    assert!(!tiles.is_empty());
    assert_eq!(tiles.len() as u64 * 160, sw, "one tile per cue, one row");
    for (i, t) in tiles.iter().enumerate() {
        assert_eq!(*t, (i as u64 * 160, 0, 160, 90));
    }
    let last_end = vtt.lines().rfind(|l| l.contains("-->")).unwrap();
    let end = last_end.split(" --> ").nth(1).unwrap();
    let secs: u64 = end[6..8].parse::<u64>().unwrap() + 60 * end[3..5].parse::<u64>().unwrap();
    assert_eq!(
        secs,
        duration.floor() as u64,
        "last cue ends at the duration"
    );
}

pub fn check_info_keys(info: &Value) {
    for key in esup_api::runner::INFO_VIDEO_REQUIRED_KEYS {
        assert!(info.get(key).is_some(), "info_video.json lacks {key}");
    }
}

/// Runs the runner with any subcommand, no callback.
pub fn run_task(command: &str, source: &str, out: &Path, extra: &[&str]) -> Run {
    let output = runner()
        .args([command, "--source", source])
        .arg("--out")
        .arg(out)
        .args(extra)
        .env_remove("ESUP_CALLBACK_URL")
        .output()
        .expect("runner");
    Run {
        code: output.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Serves `filter` on `ip` (a real server, in a thread); returns its base URL.
pub fn serve_on<F>(ip: &str, filter: F) -> String
where
    F: warp::Filter + Clone + Send + Sync + 'static,
    F::Extract: warp::Reply,
{
    let ip = ip.to_owned();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind((ip.as_str(), 0))
                .await
                .unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            warp::serve(filter).incoming(listener).run().await;
        });
    });
    format!("http://{}", rx.recv().unwrap())
}

/// Serves `dir` over HTTP on 127.0.0.1; returns its base URL.
pub fn serve_dir(dir: &Path) -> String {
    serve_on("127.0.0.1", warp::fs::dir(dir.to_path_buf()))
}

/// A host on `ip` that serves `bytes` at any path and counts the requests that reach it.
pub fn counting_host(
    ip: &str,
    bytes: Vec<u8>,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use warp::Filter;
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let filter = warp::any().map(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        bytes.clone()
    });
    (serve_on(ip, filter), hits)
}

/// The mean colour (R, G, B) of a rectangle `w:h:x:y` of the frame shown at `t` seconds.
pub fn mean_rgb(path: &Path, t: f64, rect: &str) -> [u8; 3] {
    let output = Command::new("ffmpeg")
        .args(["-v", "error", "-ss", &t.to_string(), "-i"])
        .arg(path)
        .args([
            "-frames:v",
            "1",
            "-vf",
            &format!("crop={rect},format=rgb24,scale=1:1:flags=area"),
            "-f",
            "rawvideo",
            "-",
        ])
        .output()
        .expect("ffmpeg");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.stdout.len(), 3, "one RGB pixel");
    [output.stdout[0], output.stdout[1], output.stdout[2]]
}

/// Whether `rgb` is within `tolerance` of `expected` on every channel.
pub fn near(rgb: [u8; 3], expected: [u8; 3], tolerance: u8) -> bool {
    rgb.iter()
        .zip(expected)
        .all(|(a, b)| a.abs_diff(b) <= tolerance)
}

/// A plain colour clip, optionally with a tone, encoded quickly.
pub fn colour_clip(
    dir: &Path,
    name: &str,
    colour: &str,
    size: &str,
    fps: u32,
    seconds: f64,
    tone: Option<u32>,
) -> PathBuf {
    let out = dir.join(name);
    let mut args: Vec<String> = vec![
        "-f".into(),
        "lavfi".into(),
        "-i".into(),
        format!("color=c={colour}:size={size}:rate={fps}:duration={seconds}"),
    ];
    if let Some(f) = tone {
        args.extend([
            "-f".into(),
            "lavfi".into(),
            "-i".into(),
            format!("sine=frequency={f}:duration={seconds}"),
        ]);
    }
    args.extend(
        [
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ]
        .map(String::from),
    );
    if tone.is_some() {
        args.extend(["-c:a", "aac", "-shortest"].map(String::from));
    }
    args.push(out.to_str().unwrap().into());
    ffmpeg(&args.iter().map(String::as_str).collect::<Vec<_>>());
    out
}
