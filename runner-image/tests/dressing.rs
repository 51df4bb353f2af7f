//! Dressing end to end: watermark and credits fetched from a real local HTTP server
//! (127.0.0.1), rendered, encoded, and checked with ffprobe and decoded pixels.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use common::*;

const RED: [u8; 3] = [255, 0, 0];
const BLUE: [u8; 3] = [0, 0, 255];
const GREEN: [u8; 3] = [0, 128, 0];
const WHITE: [u8; 3] = [255, 255, 255];
const BLACK: [u8; 3] = [0, 0, 0];

fn params(dressing: &serde_json::Value, cut: Option<&str>) -> String {
    let mut p = serde_json::json!({
        "rendition": "{\"720\": null, \"1080\": null}",
        "dressing": dressing.to_string(),
    });
    if let Some(c) = cut {
        p["cut"] = serde_json::Value::String(c.to_owned());
    }
    p.to_string()
}

fn video_frames(path: &std::path::Path) -> f64 {
    frames(streams(&probe(path), "video")[0]) as f64
}

#[test]
fn watermark_and_credits_are_applied() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let main = colour_clip(d, "cours.mp4", "blue", "640x360", 25, 3.0, Some(440));
    // An opaque red logo, 2:1; the opening is 4:3 and silent, the ending 16:9 with sound.
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=c=red:size=100x50,format=rgba",
        "-frames:v",
        "1",
        d.join("logo.png").to_str().unwrap(),
    ]);
    colour_clip(d, "intro.mp4", "white", "320x240", 30, 2.0, None);
    colour_clip(d, "outro.mp4", "green", "1280x720", 25, 1.5, Some(880));
    let url = serve_dir(d);
    let dressing = serde_json::json!({
        "watermark": format!("{url}/logo.png"),
        "watermark_position": "En haut à droite",
        "watermark_opacity": "100",
        "opening_credits": "intro",
        "opening_credits_video": format!("{url}/intro.mp4"),
        "opening_credits_video_duration": "00:00:02",
        "ending_credits_video": format!("{url}/outro.mp4"),
    });
    let out = d.join("out");
    let run = run_task(
        "encode",
        main.to_str().unwrap(),
        &out,
        &[
            "--params",
            &params(&dressing, None),
            "--work",
            d.join("work").to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);

    // 2 s + 3 s + the ending's own length (1.5 s of video, its AAC a frame longer).
    let mp4 = out.join("360p_cours.mp4");
    let n = video_frames(&mp4);
    assert!((n - 163.0).abs() <= 2.0, "{n} frames");
    check_rendition(&out, "cours", 360, 640, n, 1, true);
    let p = probe(&mp4);
    let audio = streams(&p, "audio")[0];
    let audio_end: f64 = audio["duration"].as_str().unwrap().parse().unwrap();
    assert!(
        (audio_end - n / 25.0).abs() < 0.06,
        "audio {audio_end} s for {n} frames"
    );
    let mp3 = probe(&out.join("audio_192k_cours.mp3"));
    assert!(
        (duration(&mp3) - n / 25.0).abs() < 0.1,
        "mp3 {}",
        duration(&mp3)
    );

    // Opening (0-2 s): the 4:3 white picture pillarboxed in the 16:9 frame, no logo.
    assert!(near(mean_rgb(&mp4, 1.0, "40:360:0:0"), BLACK, 20));
    assert!(near(mean_rgb(&mp4, 1.0, "200:200:220:80"), WHITE, 20));
    assert!(
        !near(mean_rgb(&mp4, 1.0, "60:28:556:22"), RED, 80),
        "no logo on credits"
    );
    // Main (2-5 s): the logo 36 px high (72 wide), 18 px from the top right corner
    // (54 px at 1080 lines), nowhere else.
    assert!(
        near(mean_rgb(&mp4, 3.5, "60:28:556:22"), RED, 40),
        "logo at top right"
    );
    for rect in [
        "60:28:24:22",
        "60:28:24:310",
        "60:28:556:310",
        "100:100:270:130",
    ] {
        assert!(
            near(mean_rgb(&mp4, 3.5, rect), BLUE, 40),
            "no logo at {rect}"
        );
    }
    for rect in ["4:4:634:30", "40:4:570:6"] {
        assert!(
            near(mean_rgb(&mp4, 3.5, rect), BLUE, 40),
            "margin kept at {rect}"
        );
    }
    // Ending (5 s-): green, no logo.
    assert!(near(mean_rgb(&mp4, 5.8, "60:28:556:22"), GREEN, 30));

    let info = info(&out);
    check_info_keys(&info);
    assert_eq!(info["dressing"], true);
    assert_eq!(info["duration"], (n / 25.0).round() as u64);
    let applied = &info["dressing_applied"];
    assert_eq!(applied["watermark"]["position"], "top_right");
    assert_eq!(
        (
            applied["watermark"]["width"].as_u64(),
            applied["watermark"]["height"].as_u64()
        ),
        (Some(72), Some(36))
    );
    assert_eq!(applied["opening_credits"]["audio"], false);
    assert_eq!(applied["ending_credits"]["audio"], true);
    assert_eq!(info["dressing_input"]["watermark"]["opacity"], 100);
    check_pictures(&out, "cours", n / 25.0);
}

#[test]
fn the_cut_comes_before_the_credits() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Red 0-2 s, blue 2-4 s, yellow 4-6 s, no sound; the cut keeps the blue part.
    let main = d.join("lecture.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=c=red:size=320x240:rate=25:duration=2",
        "-f",
        "lavfi",
        "-i",
        "color=c=blue:size=320x240:rate=25:duration=2",
        "-f",
        "lavfi",
        "-i",
        "color=c=yellow:size=320x240:rate=25:duration=2",
        "-filter_complex",
        "[0:v][1:v][2:v]concat=n=3:v=1:a=0",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        main.to_str().unwrap(),
    ]);
    colour_clip(d, "intro.mp4", "white", "320x240", 25, 1.0, Some(300));
    let url = serve_dir(d);
    let dressing = serde_json::json!({"opening_credits_video": format!("{url}/intro.mp4")});
    let cut = r#"{"start": "00:00:02", "end": "00:00:04", "initial_duration": "00:00:06"}"#;
    let out = d.join("out");
    let run = run_task(
        "encode",
        main.to_str().unwrap(),
        &out,
        &[
            "--params",
            &params(&dressing, Some(cut)),
            "--work",
            d.join("work").to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mp4 = out.join("360p_lecture.mp4");
    let n = video_frames(&mp4);
    assert!(
        (n - 75.0).abs() <= 2.0,
        "1 s of credits + 2 s kept: {n} frames"
    );
    assert!(near(mean_rgb(&mp4, 0.5, "100:100:100:100"), WHITE, 20));
    for t in [1.1, 2.0, 2.9] {
        assert!(
            near(mean_rgb(&mp4, t, "100:100:100:100"), BLUE, 40),
            "only the kept window after the credits, at {t} s"
        );
    }
    // The credits' sound, then silence for the silent main video.
    let p = probe(&mp4);
    let a = streams(&p, "audio");
    assert_eq!(a.len(), 1);
    let audio_end: f64 = a[0]["duration"].as_str().unwrap().parse().unwrap();
    assert!((audio_end - 3.0).abs() < 0.06, "{audio_end}");
    let info = info(&out);
    assert_eq!(info["cut_applied"], true);
    assert_eq!(info["duration"], 3);
    assert_eq!(info["dressing_applied"]["cut_first"], true);
    assert!(info["dressing_applied"].get("watermark").is_none());
}

#[test]
fn bad_dressing_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let main = video(d, "a.mp4", 320, 240, 25, 1.0, false);
    std::fs::write(
        d.join("broken.png"),
        b"\x89PNG\r\n\x1a\nthis is no image at all",
    )
    .unwrap();
    std::fs::write(d.join("slides.mp4"), b"%PDF-1.4\n%%EOF\n").unwrap();
    let url = serve_dir(d);
    for (i, (dressing, category)) in [
        (
            serde_json::json!({"watermark": format!("{url}/missing.png")}),
            "InvalidWatermark",
        ),
        (
            serde_json::json!({"watermark": format!("{url}/broken.png")}),
            "InvalidWatermark",
        ),
        (
            serde_json::json!({"ending_credits_video": format!("{url}/slides.mp4")}),
            "InvalidCredits",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let out = d.join(format!("out{i}"));
        let run = run_task(
            "encode",
            main.to_str().unwrap(),
            &out,
            &[
                "--params",
                &params(&dressing, None),
                "--retry-base-ms",
                "10",
            ],
        );
        assert_refused(&run, &out, category);
        assert!(!out.join("info_video.json").exists());
    }
}
