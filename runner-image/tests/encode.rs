//! End-to-end encodes of generated media, checked with ffprobe.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use common::*;

#[test]
fn landscape_1080p_gives_every_output() {
    let dir = tempfile::tempdir().unwrap();
    let src = video(dir.path(), "Cours d'été.mp4", 1920, 1080, 25, 4.0, true);
    let out = dir.path().join("out");
    let run = encode(&src, &out, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let base = "Cours_d'ete";
    check_rendition(&out, base, 360, 640, 100.0, 1, true);
    check_rendition(&out, base, 720, 1280, 100.0, 1, true);
    check_rendition(&out, base, 1080, 1920, 100.0, 1, false);
    // Keyframes every 2 s, as -force_key_frames "expr:gte(t,n_forced*2)".
    let output = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v",
            "-skip_frame",
            "nokey",
            "-show_entries",
            "frame=pts_time",
            "-of",
            "csv=p=0",
        ])
        .arg(out.join(format!("720p_{base}.mp4")))
        .output()
        .unwrap();
    let mut keys: Vec<f64> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.trim_end_matches(',').parse().ok())
        .collect();
    keys.sort_by(f64::total_cmp);
    assert_eq!(keys, [0.0, 2.0], "keyframes");
    let mp3 = probe(&out.join(format!("audio_192k_{base}.mp3")));
    let a = streams(&mp3, "audio");
    assert_eq!(
        (a[0]["codec_name"].as_str(), a[0]["sample_rate"].as_str()),
        (Some("mp3"), Some("44100"))
    );
    assert!(
        (duration(&mp3) - 4.0).abs() < 0.1,
        "mp3 duration {}",
        duration(&mp3)
    );
    assert!(
        !out.join(format!("audio_192k_{base}.m4a")).exists(),
        "no m4a when there is video"
    );
    check_pictures(&out, base, 4.0);
    let info = info(&out);
    check_info_keys(&info);
    assert_eq!(info["duration"], 4);
    assert_eq!(info["has_stream_video"], true);
    let videos = info["encode_video"].as_array().unwrap();
    assert_eq!(videos.len(), 5, "3 HLS + 2 MP4");
    assert!(videos.iter().any(|v| v["encoding_format"] == "video/mp2t"
        && v["rendition"] == "1920x1080"
        && v["filename"] == format!("1080p_{base}.m3u8")));
    assert!(
        videos
            .iter()
            .any(|v| v["encoding_format"] == "video/mp4" && v["rendition"] == "640x360")
    );
    assert_eq!(info["encode_thumbnail"][1]["percentage"], 50);
    assert_eq!(info["encode_thumbnail"][1]["timestamp"], 2);
    assert_eq!(info["hardware"]["encode"], "libx264");
    assert!(out.join("encoding.log").exists());
}

#[test]
fn portrait_keeps_its_aspect() {
    let dir = tempfile::tempdir().unwrap();
    let src = video(dir.path(), "portrait.mp4", 360, 640, 30, 3.0, true);
    let out = dir.path().join("out");
    let run = encode(&src, &out, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    check_rendition(&out, "portrait", 360, 202, 90.0, 1, true);
    assert!(
        !out.join("720p_portrait.m3u8").exists(),
        "640 < 720: not filled"
    );
    check_pictures(&out, "portrait", 3.0);
}

#[test]
fn four_by_three_and_a_custom_ladder() {
    let dir = tempfile::tempdir().unwrap();
    let src = video(dir.path(), "old.mp4", 640, 480, 25, 3.0, true);
    let out = dir.path().join("out");
    let params = r#"{"rendition": "{\"240\": {\"resolution\": \"320x240\", \"video_bitrate\": \"300k\", \"encode_mp4\": true}, \"720\": null, \"1080\": null}"}"#;
    let run = encode(&src, &out, &["--params", params]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    check_rendition(&out, "old", 240, 320, 75.0, 1, true);
    check_rendition(&out, "old", 360, 480, 75.0, 1, true);
    let info = info(&out);
    assert!(
        info["encode_video"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["rendition"] == "320x240")
    );
}

#[test]
fn webm_vp9_becomes_constant_frame_rate() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("screen.webm");
    let speech = speech(dir.path(), 3.0);
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=480x360:rate=24:duration=3",
        "-i",
        speech.to_str().unwrap(),
        "-c:v",
        "libvpx-vp9",
        "-deadline",
        "realtime",
        "-cpu-used",
        "8",
        "-b:v",
        "300k",
        "-c:a",
        "libopus",
        "-shortest",
        src.to_str().unwrap(),
    ]);
    let out = dir.path().join("out");
    let run = encode(&src, &out, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    check_rendition(&out, "screen", 360, 480, 72.0, 1, true);
    let p = probe(&out.join("360p_screen.mp4"));
    assert_eq!(streams(&p, "video")[0]["r_frame_rate"], "24/1");
    // Constant frame rate: every packet lasts 1/24 s.
    let output = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v",
            "-show_entries",
            "packet=duration_time",
            "-of",
            "csv=p=0",
        ])
        .arg(out.join("360p_screen.mp4"))
        .output()
        .unwrap();
    let durations: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(
        durations.len() >= 70 && durations.iter().all(|d| d == "0.041667"),
        "{durations:?}"
    );
    assert_eq!(info(&out)["codec"], "vp9");
}

#[test]
fn audio_only_mp3_gives_mp3_and_m4a() {
    let dir = tempfile::tempdir().unwrap();
    let speech = speech(dir.path(), 4.0);
    let src = dir.path().join("podcast.mp3");
    ffmpeg(&[
        "-i",
        speech.to_str().unwrap(),
        "-c:a",
        "libmp3lame",
        "-b:a",
        "64k",
        src.to_str().unwrap(),
    ]);
    let out = dir.path().join("out");
    let run = encode(&src, &out, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mp3 = probe(&out.join("audio_192k_podcast.mp3"));
    assert!((duration(&mp3) - 4.0).abs() < 0.15, "{}", duration(&mp3));
    let m4a = probe(&out.join("audio_192k_podcast.m4a"));
    assert_eq!(streams(&m4a, "audio")[0]["codec_name"], "aac");
    assert_eq!(streams(&m4a, "audio")[0]["sample_rate"], "44100");
    assert!((duration(&m4a) - 4.0).abs() < 0.15, "{}", duration(&m4a));
    decodes(&out.join("audio_192k_podcast.m4a"));
    let info = info(&out);
    check_info_keys(&info);
    assert_eq!(info["has_stream_video"], false);
    assert_eq!(info["has_stream_thumbnail"], false);
    assert_eq!(info["encode_video"].as_array().unwrap().len(), 0);
    let audio = info["encode_audio"].as_array().unwrap();
    assert!(
        audio
            .iter()
            .any(|a| a["encoding_format"] == "video/mp4"
                && a["filename"] == "audio_192k_podcast.m4a")
    );
    assert!(audio.iter().any(|a| a["encoding_format"] == "audio/mp3"));
    assert!(!out.join("overview.png").exists());
}

#[test]
fn outputs_of_a_percent_encoded_source_url_are_named_from_its_decoded_name() {
    // Esup-Pod serves `Cours (1) été.mp3` as `Cours%20(1)%20%C3%A9t%C3%A9.mp3`: the reference
    // runner decodes the path before sanitising, so the outputs are `..._Cours_(1)_ete.*`.
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    std::fs::create_dir(&media).unwrap();
    let speech = speech(dir.path(), 2.0);
    let served = media.join("Cours (1) été.mp3");
    ffmpeg(&[
        "-i",
        speech.to_str().unwrap(),
        "-c:a",
        "libmp3lame",
        served.to_str().unwrap(),
    ]);
    let base = serve_dir(&media);
    let url = format!("{base}/Cours%20(1)%20%C3%A9t%C3%A9.mp3?token=a%2Fb");
    let out = dir.path().join("out");
    let work = dir.path().join("work");
    let run = run_task("encode", &url, &out, &["--work", work.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for name in [
        "audio_192k_Cours_(1)_ete.mp3",
        "audio_192k_Cours_(1)_ete.m4a",
    ] {
        assert!(
            out.join(name).is_file(),
            "{name} in {:?}",
            std::fs::read_dir(&out)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect::<Vec<_>>()
        );
    }
}

#[test]
fn every_audio_stream_is_mapped() {
    let dir = tempfile::tempdir().unwrap();
    let speech = speech(dir.path(), 3.0);
    // MP4: with an MKV source of two audio streams the HLS muxer has been seen cutting one
    // 3 s segment instead of two (open question, see docs/runner.md).
    let src = dir.path().join("bilingual.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=640x360:rate=25:duration=3",
        "-i",
        speech.to_str().unwrap(),
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=300:duration=3",
        "-map",
        "0:v",
        "-map",
        "1:a",
        "-map",
        "2:a",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a",
        "aac",
        src.to_str().unwrap(),
    ]);
    let out = dir.path().join("out");
    let run = encode(&src, &out, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    check_rendition(&out, "bilingual", 360, 640, 75.0, 2, true);
    assert_eq!(
        info(&out)["audio_stream_indices"],
        serde_json::json!([1, 2])
    );
}

#[test]
fn a_cut_keeps_its_window() {
    let dir = tempfile::tempdir().unwrap();
    let src = video(dir.path(), "long.mp4", 640, 360, 25, 6.0, true);
    let out = dir.path().join("out");
    let params = r#"{"cut": "{\"start\": \"00:00:01\", \"end\": \"00:00:09\", \"initial_duration\": \"00:00:04\"}"}"#;
    let run = encode(&src, &out, &["--params", params]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // end clamped to initial_duration: 1 s to 4 s, 3 s = 75 frames.
    check_rendition(&out, "long", 360, 640, 75.0, 1, true);
    let mp3 = probe(&out.join("audio_192k_long.mp3"));
    assert!(
        (duration(&mp3) - 3.0).abs() < 0.1,
        "mp3 cut too: {}",
        duration(&mp3)
    );
    let p = probe(&out.join("360p_long.mp4"));
    let start: f64 = streams(&p, "video")[0]["start_time"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(start.abs() < 0.1, "starts at 0, not at the cut: {start}");
    check_pictures(&out, "long", 3.0);
    let info = info(&out);
    assert_eq!(info["cut_applied"], true);
    assert_eq!(info["duration"], 3);
    assert_eq!(info["encode_thumbnail"][2]["timestamp"], 2);
}
