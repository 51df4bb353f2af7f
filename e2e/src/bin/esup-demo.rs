//! `esup-demo`: plays Esup-Pod against an installed esup-runner (the webhook's Service), as
//! `make demo` runs it. It makes a one-minute lecture clip with French speech, serves it from
//! its own MEDIA_ROOT, submits the encoding exactly as Esup-Pod does, waits for the notify and
//! imports the results (every file checked against the manifest's sha256), then submits the
//! transcription of the imported MP3, as Esup-Pod does next, and prints the manifest, the
//! subtitles and the timings.
//!
//! Usage: esup-demo --webhook URL --token TOKEN --work DIR [--timeout SECONDS]
//! The stand-in listens on the pod gateway (ESUP_POD_GATEWAY, default 10.244.0.1) so that
//! runner pods can download the clip and the webhook can notify it.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a demo: fail loudly with the reason

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use esup_e2e::{EsupPodStandIn, Notified};

/// About 55 s of speech at espeak-ng's speed 150: a short lecture on photosynthesis.
const LECTURE_FR: &str = "Bonjour à toutes et à tous. Aujourd'hui, nous parlons de la \
photosynthèse. Les plantes vertes captent la lumière du soleil grâce à la chlorophylle. \
Cette énergie sert à transformer le dioxyde de carbone de l'air et l'eau du sol en sucres. \
Le dioxygène que nous respirons est un produit de cette réaction. La photosynthèse se déroule \
dans les chloroplastes, de petites structures présentes dans les cellules des feuilles. \
On distingue deux étapes. La première dépend directement de la lumière. La seconde, appelée \
cycle de Calvin, fixe le carbone et fabrique les sucres. Sans la photosynthèse, il n'y aurait \
ni forêts, ni cultures, ni oxygène dans l'atmosphère. La semaine prochaine, nous verrons \
comment la respiration cellulaire utilise ces sucres. Merci de votre attention.";

const CLIP_SECONDS: u32 = 60;

/// Esup-Pod's default ladder, sent inside `rendition` as Pod ≥ 4.2 does.
const RENDITION: &str = r#"{"360": {"resolution": "640x360", "video_bitrate": "750k", "audio_bitrate": "96k", "encode_mp4": true}, "720": {"resolution": "1280x720", "video_bitrate": "2000k", "audio_bitrate": "128k", "encode_mp4": true}, "1080": {"resolution": "1920x1080", "video_bitrate": "3000k", "audio_bitrate": "192k", "encode_mp4": false}}"#;

struct Args {
    webhook: String,
    token: String,
    work: PathBuf,
    timeout: Duration,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let (mut webhook, mut token, mut work, mut timeout) = (None, None, None, 900);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--webhook" => webhook = Some(value()?),
            "--token" => token = Some(value()?),
            "--work" => work = Some(PathBuf::from(value()?)),
            "--timeout" => timeout = value()?.parse().map_err(|e| format!("--timeout: {e}"))?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Args {
        webhook: webhook.ok_or("--webhook URL is required")?,
        token: token.ok_or("--token TOKEN is required")?,
        work: work.ok_or("--work DIR is required")?,
        timeout: Duration::from_secs(timeout),
    })
}

/// The lecture: a test pattern and the French speech padded to one minute (kept between runs).
fn make_clip(media: &Path) -> Result<PathBuf, String> {
    let clip = media.join("lecture.mp4");
    if clip.exists() {
        return Ok(clip);
    }
    esup_e2e::speaking_clip(
        media,
        "lecture",
        CLIP_SECONDS,
        "1280x720",
        ("fr", LECTURE_FR),
    )
}

struct Manager {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Manager {
    async fn execute(&self, body: serde_json::Value) -> Result<String, String> {
        let response = self
            .http
            .post(format!("{}/task/execute", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("POST /task/execute: {e}"))?;
        let status = response.status();
        let answer: serde_json::Value = response.json().await.unwrap_or_default();
        match answer["task_id"].as_str() {
            Some(id) if status.is_success() => Ok(id.to_owned()),
            _ => Err(format!("POST /task/execute answered {status}: {answer}")),
        }
    }

    async fn get_json(&self, path: &str) -> serde_json::Value {
        match self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
        {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => serde_json::Value::Null,
        }
    }
}

/// Waits for Esup-Pod's notify of `task`, printing the manager's status on the way (Esup-Pod's
/// own view comes only from the notify).
async fn wait_for_notify(
    pod: &EsupPodStandIn,
    manager: &Manager,
    task: &str,
    timeout: Duration,
) -> Result<Notified, String> {
    let start = Instant::now();
    let mut last = String::new();
    loop {
        if let Some(n) = pod.received().into_iter().find(|n| n.task_id == task) {
            return Ok(n);
        }
        if start.elapsed() > timeout {
            return Err(format!("no notify for {task} within {timeout:?}"));
        }
        let status = manager.get_json(&format!("/task/status/{task}")).await;
        let line = format!(
            "{} on {}",
            status["status"].as_str().unwrap_or("?"),
            status["runner_id"]
                .as_str()
                .filter(|r| !r.is_empty())
                .unwrap_or("no runner yet")
        );
        if line != last {
            println!(
                "  [{:>5.1} s] {task}: {line}",
                start.elapsed().as_secs_f64()
            );
            last = line;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

fn completed(n: &Notified, what: &str) -> Result<(), String> {
    if n.status != "completed" {
        return Err(format!(
            "{what} ended {}: {}",
            n.status,
            n.error_message.clone().unwrap_or_default()
        ));
    }
    if !n.import_errors.is_empty() {
        return Err(format!("{what}: import failed: {:?}", n.import_errors));
    }
    Ok(())
}

async fn demo(args: Args) -> Result<(), String> {
    let media = args.work.join("media");
    println!("== the lecture clip ({CLIP_SECONDS} s, 1280x720, French speech)");
    let clip = make_clip(&media)?;
    println!("  {}", clip.display());

    let pod = EsupPodStandIn::start_with(0, &args.token, &args.webhook, Some(media.clone())).await;
    let manager = Manager {
        http: reqwest::Client::new(),
        base: args.webhook.trim_end_matches('/').to_owned(),
        token: args.token.clone(),
    };
    let health = manager.get_json("/manager/health").await;
    println!("== the runner manager at {}: {health}", manager.base);

    println!("== encoding, as Esup-Pod submits it");
    let encoding_start = Instant::now();
    let encoding = manager
        .execute(serde_json::json!({
            "etab_name": "Université de démonstration / Pod", "app_name": "Esup-Pod",
            "app_version": "4.2.0", "task_type": "encoding",
            "source_url": format!("{}/lecture.mp4", pod.media_url()),
            "notify_url": pod.notify_url,
            "parameters": {"rendition": RENDITION, "video_id": 1,
                           "video_slug": "1-photosynthese", "video_title": "La photosynthèse"}
        }))
        .await?;
    println!("  task {encoding}");
    let notified = wait_for_notify(&pod, &manager, &encoding, args.timeout).await?;
    let encoding_time = encoding_start.elapsed();
    completed(&notified, "the encoding")?;
    let manifest = manager.get_json(&format!("/task/result/{encoding}")).await;
    println!("== manifest of {encoding} (imported and sha256-checked by the stand-in)");
    let imported = media.join("tasks").join(&encoding);
    for file in manifest["files"].as_array().cloned().unwrap_or_default() {
        let path = file["path"].as_str().unwrap_or("?");
        let sha = file["sha256"].as_str().unwrap_or("");
        let size = std::fs::metadata(imported.join(path)).map_or(0, |m| m.len());
        println!(
            "  {path:<34} {size:>10} bytes  sha256 {}…",
            sha.get(..16).unwrap_or(sha)
        );
    }
    let info: serde_json::Value = std::fs::read(imported.join("info_video.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("info_video.json was not imported")?;
    println!(
        "  info_video.json: duration {} s, video {}, audio {}, renditions {}, hardware {}",
        info["duration"],
        info["has_stream_video"],
        info["has_stream_audio"],
        info["encode_video"]
            .as_array()
            .map(|v| v
                .iter()
                .filter_map(|e| e["filename"].as_str())
                .collect::<Vec<_>>()
                .join(" "))
            .unwrap_or_default(),
        info["hardware"]
    );

    println!("== transcription of the imported MP3, as Esup-Pod submits it next");
    let mp3 = notified
        .imported
        .iter()
        .find(|p| p.starts_with("audio_192k_") && p.ends_with(".mp3"))
        .ok_or("the encoding produced no audio_192k_*.mp3")?
        .clone();
    let transcription_start = Instant::now();
    let transcription = manager
        .execute(serde_json::json!({
            "etab_name": "Université de démonstration / Pod", "app_name": "Esup-Pod",
            "app_version": "4.2.0", "task_type": "transcription",
            "source_url": format!("{}/tasks/{encoding}/{mp3}", pod.media_url()),
            "notify_url": pod.notify_url,
            "parameters": {"language": "fr", "source_language": "fr",
                           "duration": f64::from(CLIP_SECONDS), "normalize": false,
                           "video_id": 1, "video_slug": "1-photosynthese",
                           "video_title": "La photosynthèse"}
        }))
        .await?;
    println!("  task {transcription}");
    let notified = wait_for_notify(&pod, &manager, &transcription, args.timeout).await?;
    let transcription_time = transcription_start.elapsed();
    completed(&notified, "the transcription")?;
    let vtt = notified
        .imported
        .iter()
        .find(|p| p.ends_with(".vtt"))
        .ok_or("the transcription produced no .vtt")?;
    let subtitles = std::fs::read_to_string(media.join("tasks").join(&transcription).join(vtt))
        .map_err(|e| format!("{vtt}: {e}"))?;
    println!("== subtitles ({vtt})");
    println!("{subtitles}");

    println!("== timings (submit to notify, with the import)");
    let rtf = |d: Duration| d.as_secs_f64() / f64::from(CLIP_SECONDS);
    println!(
        "  encoding       {:>6.1} s  ({:.2} x real time)",
        encoding_time.as_secs_f64(),
        rtf(encoding_time)
    );
    println!(
        "  transcription  {:>6.1} s  ({:.2} x real time)",
        transcription_time.as_secs_f64(),
        rtf(transcription_time)
    );
    println!("  results kept in {}", media.join("tasks").display());
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    // reqwest is built without a TLS provider of its own (plain HTTP here): name ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!(
                "esup-demo: {e}\nusage: esup-demo --webhook URL --token TOKEN --work DIR [--timeout SECONDS]"
            );
            return ExitCode::from(2);
        }
    };
    match demo(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("esup-demo: {e}");
            ExitCode::FAILURE
        }
    }
}
