//! Studio mixes end to end: Opencast mediapackages naming generated tracks (local files, and
//! over a real local HTTP server on 127.0.0.1), each layout, a SMIL cut, a single track and
//! malformed packages; checked with ffprobe and decoded pixels.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::path::Path;

use common::*;

const RED: [u8; 3] = [255, 0, 0];
const BLUE: [u8; 3] = [0, 0, 255];

/// A 640x360 blue presentation (VP9 + Opus, with a tone, 4 s) and a 320x240 red presenter
/// (H.264, silent, 3 s), and the SMIL keeping 0.5 s to 3.5 s.
fn recording(dir: &Path) {
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=c=blue:size=640x360:rate=25:duration=4",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=4",
        "-c:v",
        "libvpx-vp9",
        "-deadline",
        "realtime",
        "-cpu-used",
        "8",
        "-c:a",
        "libopus",
        "-shortest",
        dir.join("presentation.webm").to_str().unwrap(),
    ]);
    colour_clip(dir, "presenter.mp4", "red", "320x240", 30, 3.0, None);
    std::fs::write(
        dir.join("cut.smil"),
        r#"<smil xmlns="http://www.w3.org/ns/SMIL"><body><par>
<video src="presenter.mp4" clipBegin="0.5s" clipEnd="00:00:03.500"/></par></body></smil>"#,
    )
    .unwrap();
}

fn package(dir: &Path, name: &str, layout: &str, tracks: &[(&str, &str)], smil: bool) -> String {
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<mediapackage xmlns=\"http://mediapackage.opencastproject.org\" id=\"rec\" presenter=\"{layout}\">\n<media>\n"
    );
    for (kind, url) in tracks {
        xml.push_str(&format!(
            "<track id=\"{kind}\" type=\"{kind}/source\"><mimetype>video/webm</mimetype><url>{url}</url></track>\n"
        ));
    }
    xml.push_str("</media>\n<metadata>\n");
    if smil {
        xml.push_str("<catalog id=\"smil\" type=\"smil/cutting\"><url>cut.smil</url></catalog>\n");
    }
    xml.push_str("</metadata>\n</mediapackage>\n");
    let path = dir.join(name);
    std::fs::write(&path, xml).unwrap();
    path.to_str().unwrap().to_owned()
}

const BOTH: [(&str, &str); 2] = [
    ("presenter", "presenter.mp4"),
    ("presentation", "presentation.webm"),
];

/// studio_base.mp4: size, 30 fps, frames, AAC 48 kHz from the presentation.
fn check_base(out: &Path, width: u64, height: u64, frames_expected: f64) {
    let base = out.join("studio_base.mp4");
    let p = probe(&base);
    let v = streams(&p, "video")[0];
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(width), Some(height))
    );
    assert_eq!(v["r_frame_rate"], "30/1");
    assert_eq!(v["codec_name"], "h264");
    let n = frames(v) as f64;
    assert!((n - frames_expected).abs() <= 1.0, "{n} frames");
    let a = streams(&p, "audio");
    assert_eq!(a.len(), 1, "the presentation's sound");
    assert_eq!(
        (a[0]["codec_name"].as_str(), a[0]["sample_rate"].as_str()),
        (Some("aac"), Some("48000"))
    );
    let bytes = std::fs::read(&base).unwrap();
    let moov = bytes.windows(4).position(|w| w == b"moov").unwrap();
    let mdat = bytes.windows(4).position(|w| w == b"mdat").unwrap();
    assert!(moov < mdat, "faststart");
    decodes(&base);
}

/// The encode pass ran on the mix: outputs named after studio_base, in the manifest.
fn check_encoded(out: &Path, width: u32, seconds: f64) {
    check_rendition(out, "studio_base", 360, width, seconds * 30.0, 1, true);
    check_pictures(out, "studio_base", seconds);
    let listing = esup_runner::io::deliver::list_outputs(out).unwrap();
    for f in [
        "studio_base.mp4",
        "360p_studio_base.mp4",
        "360p_studio_base.m3u8",
        "360p_studio_base.ts",
        "audio_192k_studio_base.mp3",
        "studio_base_0.png",
        "info_video.json",
    ] {
        assert!(
            listing.iter().any(|l| l == f),
            "{f} in the manifest: {listing:?}"
        );
    }
    let info = info(out);
    check_info_keys(&info);
    assert_eq!(info["duration"], seconds.round() as u64);
}

#[test]
fn each_layout_with_its_smil_cut() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    recording(d);
    // Side by side, fetched over HTTP: relative URLs resolve against the package's URL.
    package(d, "mid.xml", "mid", &BOTH, true);
    let url = serve_dir(d);
    let out = d.join("out_mid");
    let fast = r#"{"studio_preset": "ultrafast", "video_slug": "12-rec"}"#;
    let run = run_task(
        "studio",
        &format!("{url}/mid.xml"),
        &out,
        &[
            "--params",
            fast,
            "--work",
            d.join("work_mid").to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    // 640x360 and 320x240 at 240 lines: 426 + 320; 0.5 s to 3.5 s kept.
    check_base(&out, 746, 240, 90.0);
    let base = out.join("studio_base.mp4");
    assert!(
        near(mean_rgb(&base, 1.0, "300:200:50:20"), BLUE, 40),
        "presentation left"
    );
    assert!(
        near(mean_rgb(&base, 1.0, "250:200:460:20"), RED, 40),
        "presenter right"
    );
    // 746x240 at 360 lines: 1120 wide.
    check_encoded(&out, 1120, 3.0);
    let info = info(&out);
    assert_eq!(info["studio"]["layout"], "mid");
    assert_eq!(info["studio"]["smil_cut"]["begin"], 0.5);
    assert_eq!(info["video_slug"], "12-rec");

    // Picture in picture, local files: presenter a quarter high (90 lines, 120 wide),
    // 10 px from the right and the top or bottom; gone after its end (2.5 s into the mix).
    for (layout, y) in [("piph", 10), ("pipb", 360 - 90 - 10)] {
        let xml = package(d, &format!("{layout}.xml"), layout, &BOTH, true);
        let out = d.join(format!("out_{layout}"));
        let run = run_task(
            "studio",
            &xml,
            &out,
            &[
                "--params",
                fast,
                "--work",
                d.join(format!("work_{layout}")).to_str().unwrap(),
            ],
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
        check_base(&out, 640, 360, 90.0);
        let base = out.join("studio_base.mp4");
        let pip = format!("100:70:{}:{}", 640 - 120 - 10 + 10, y + 10);
        assert!(
            near(mean_rgb(&base, 1.0, &pip), RED, 40),
            "{layout}: presenter at {pip}"
        );
        assert!(
            near(mean_rgb(&base, 2.8, &pip), BLUE, 40),
            "{layout}: presenter gone after its end"
        );
        assert!(
            near(mean_rgb(&base, 1.0, "4:4:632:180"), BLUE, 40),
            "{layout}: right margin"
        );
        let other_y = if y == 10 { 260 } else { 10 };
        assert!(
            near(
                mean_rgb(&base, 1.0, &format!("100:70:520:{}", other_y + 10)),
                BLUE,
                40
            ),
            "{layout}: presenter only in its corner"
        );
        check_encoded(&out, 640, 3.0);
    }
}

#[test]
fn a_single_track_and_the_layout_parameter() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    recording(d);
    let xml = package(
        d,
        "single.xml",
        "piph",
        &[("presentation", "presentation.webm")],
        false,
    );
    let out = d.join("out");
    let run = run_task(
        "studio",
        &xml,
        &out,
        &["--params", r#"{"studio_preset": "ultrafast"}"#],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    check_base(&out, 640, 360, 120.0);
    check_encoded(&out, 640, 4.0);
    assert_eq!(info(&out)["studio"]["layout"], "single");

    // `presenter` in the task's parameters wins over the package's attribute.
    let xml = package(d, "both.xml", "mid", &BOTH, true);
    let out = d.join("out_param");
    let run = run_task(
        "studio",
        &xml,
        &out,
        &[
            "--params",
            r#"{"presenter": "pipb", "studio_preset": "ultrafast", "studio_crf": 30}"#,
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    check_base(&out, 640, 360, 90.0);
    let info = info(&out);
    assert_eq!(info["studio"]["layout"], "pipb");
    assert_eq!(info["studio"]["crf"], 30);
}

#[test]
fn bad_packages_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("broken.xml"), "<mediapackage><media><track").unwrap();
    let no_track = package(d, "empty.xml", "mid", &[], false);
    let pdf_track = package(d, "pdf.xml", "mid", &[("presenter", "slides.mp4")], false);
    std::fs::write(d.join("slides.mp4"), b"%PDF-1.4\n%%EOF\n").unwrap();
    let odd_layout = package(
        d,
        "odd.xml",
        "sideways",
        &[("presenter", "slides.mp4")],
        false,
    );
    for (i, (source, category)) in [
        (
            d.join("broken.xml").to_str().unwrap().to_owned(),
            "InvalidMediapackage",
        ),
        (no_track, "InvalidMediapackage"),
        (odd_layout, "InvalidMediapackage"),
        (pdf_track, "NotMedia"),
    ]
    .into_iter()
    .enumerate()
    {
        let out = d.join(format!("out{i}"));
        assert_refused(&run_task("studio", &source, &out, &[]), &out, category);
    }
}
