//! The URL policy on every fetch of the runner, against real HTTP servers on loopback
//! addresses: the runner may use 127.0.0.1 (ESUP_PRIVATE_NETWORKS=127.0.0.1/32, as
//! `common::runner` sets it) and nothing else private. Servers on 127.0.0.2 and 127.0.0.3
//! stand for internal hosts and count the requests that reach them: none may.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use warp::Filter;

/// An internal host on `ip`: serves `file` at any path and counts the requests.
fn internal_host(ip: &str, file: &Path) -> (String, Arc<AtomicUsize>) {
    counting_host(ip, std::fs::read(file).unwrap())
}

/// Redirects every request to `target` (302).
fn redirector(target: String) -> String {
    let filter = warp::any().map(move || {
        warp::http::Response::builder()
            .status(302)
            .header("location", target.clone())
            .body(String::new())
            .unwrap()
    });
    serve_on("127.0.0.1", filter)
}

fn log_of(out: &Path) -> String {
    std::fs::read_to_string(out.join("encoding.log")).unwrap_or_default()
}

#[test]
fn a_redirect_to_a_private_address_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let clip = colour_clip(d, "clip.mp4", "blue", "320x240", 25, 1.0, None);
    let (internal, hits) = internal_host("127.0.0.2", &clip);
    let allowed = redirector(format!("{internal}/cours.mp4"));
    let out = d.join("out");
    let work = d.join("work");
    let run = run_task(
        "encode",
        &format!("{allowed}/cours.mp4"),
        &out,
        &["--work", work.to_str().unwrap(), "--retry-base-ms", "10"],
    );
    assert_refused(&run, &out, "PrivateAddress");
    let log = log_of(&out);
    assert!(
        log.contains("source_url") && log.contains("redirected to http://127.0.0.2:"),
        "{log}"
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the internal host was reached"
    );
    assert!(!work.join("cours.mp4").exists(), "nothing is downloaded");
}

/// A name that resolves to a private address: the lookup is injected (no DNS), so that
/// `media.example.test` resolves to 127.0.0.2, where a real server listens.
#[tokio::test]
async fn a_name_resolving_to_a_private_address_is_refused() {
    use esup_api::url_policy::UrlPolicy;
    use esup_runner::io::download::{DownloadPolicy, Lookup, fetch};

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let clip = colour_clip(d, "clip.mp4", "blue", "320x240", 25, 1.0, None);
    let (internal, hits) = internal_host("127.0.0.2", &clip);
    let port = internal.rsplit(':').next().unwrap().to_owned();
    let lookup: Lookup = Arc::new(|host: String| {
        Box::pin(async move {
            assert_eq!(host, "media.example.test");
            Ok(vec!["127.0.0.2".parse::<IpAddr>().unwrap()])
        })
    });
    let policy = |networks: &[&str]| DownloadPolicy {
        max_bytes: 1 << 30,
        attempts: 2,
        placeholder_attempts: 2,
        base_delay: std::time::Duration::from_millis(10),
        urls: Arc::new(UrlPolicy {
            private_networks: networks.iter().map(|n| n.parse().unwrap()).collect(),
            ..UrlPolicy::default()
        }),
        lookup: lookup.clone(),
    };
    let url = format!("http://media.example.test:{port}/cours.mp4");
    let work = d.join("work");
    std::fs::create_dir_all(&work).unwrap();

    let refused = fetch(
        "source_url",
        &url,
        &work,
        "cours.mp4",
        &policy(&["127.0.0.1/32"]),
    )
    .await
    .unwrap_err();
    assert_eq!(
        (refused.category(), refused.is_final()),
        ("PrivateAddress", true),
        "{refused}"
    );
    let message = refused.to_string();
    assert!(
        message.contains("source_url") && message.contains("media.example.test"),
        "{message}"
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the internal host was reached"
    );
    assert!(!work.join("cours.mp4").exists());

    // The same fetch where the policy allows that network: the lookup and server work.
    let path = fetch(
        "source_url",
        &url,
        &work,
        "cours.mp4",
        &policy(&["127.0.0.2/32"]),
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read(path).unwrap(), std::fs::read(&clip).unwrap());
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[test]
fn a_dressing_url_at_an_internal_address_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let main = colour_clip(d, "cours.mp4", "blue", "320x240", 25, 1.0, None);
    let (internal, hits) = internal_host("127.0.0.2", &main);
    // The internal host first: on a runner without the policy it would be fetched (and the
    // test would stop there, before a metadata address is ever tried).
    for (key, url, field) in [
        (
            "watermark",
            format!("{internal}/logo.png"),
            "dressing.watermark",
        ),
        (
            "opening_credits_video",
            format!("{internal}/intro.mp4"),
            "dressing.opening_credits_video",
        ),
        (
            "watermark",
            "http://169.254.169.254/latest/meta-data/logo.png".to_owned(),
            "dressing.watermark",
        ),
    ] {
        let out = d.join(format!("out_{}", field.replace('.', "_")));
        let params = serde_json::json!({
            "rendition": "{\"360\": null}",
            "dressing": serde_json::json!({ key: url }).to_string(),
        });
        let run = run_task(
            "encode",
            main.to_str().unwrap(),
            &out,
            &["--params", &params.to_string()],
        );
        assert_refused(&run, &out, "PrivateAddress");
        let log = log_of(&out);
        assert!(log.contains(field) && log.contains(&url), "{log}");
        assert_eq!(hits.load(Ordering::SeqCst), 0, "{url} was fetched");
    }
}

#[test]
fn a_mediapackage_naming_an_internal_host_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let track = colour_clip(d, "presenter.mp4", "red", "320x240", 25, 1.0, None);
    let (internal, hits) = internal_host("127.0.0.3", &track);
    let smil = "<smil><body><video clipBegin=\"0s\" clipEnd=\"1s\"/></body></smil>";
    let package = |track: &str, smil: &str| {
        format!(
            "<mediapackage presenter=\"mid\"><media><track type=\"presenter/source\"><url>{track}</url></track></media>\
             <metadata><catalog type=\"smil/cutting\"><url>{smil}</url></catalog></metadata></mediapackage>"
        )
    };
    std::fs::write(d.join("cut.smil"), smil).unwrap();
    let cases = [
        (
            "internal_track.xml",
            package(&format!("{internal}/track.mp4"), "cut.smil"),
            "mediapackage presenter track",
        ),
        (
            "internal_smil.xml",
            package("presenter.mp4", &format!("{internal}/cut.smil")),
            "mediapackage SMIL catalog",
        ),
        (
            "metadata_track.xml",
            package("http://169.254.169.254/latest/track.mp4", "cut.smil"),
            "mediapackage presenter track",
        ),
    ];
    for (name, xml, _) in &cases {
        std::fs::write(d.join(name), xml).unwrap();
    }
    let url = serve_dir(d);
    for (name, _, field) in cases {
        let out = d.join(format!("out_{name}"));
        let work = d.join(format!("work_{name}"));
        let run = run_task(
            "studio",
            &format!("{url}/{name}"),
            &out,
            &[
                "--params",
                r#"{"studio_preset": "ultrafast"}"#,
                "--work",
                work.to_str().unwrap(),
                "--retry-base-ms",
                "10",
            ],
        );
        assert_refused(&run, &out, "PrivateAddress");
        let log = log_of(&out);
        assert!(log.contains(field), "{name}: {log}");
        assert_eq!(
            hits.load(Ordering::SeqCst),
            0,
            "{name}: the internal host was reached"
        );
        assert!(!work.join("presenter").join("track.mp4").exists());
    }
}
