//! One task from start to end: job, download, probe, the pass, info_video.json, delivery,
//! and the completion on failure too when the failure is final.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use esup_api::runner::{Completion, ProgressReport};
use esup_api::status::HardwareReport;
use esup_api::wire::TerminalStatus;

use crate::assets::Recording;
use crate::cli::TaskArgs;
use crate::deliver::{Callback, list_outputs};
use crate::download::{DownloadPolicy, fetch};
use crate::dress::Assets;
use crate::error::RunnerError;
use crate::gpu::Gpu;
use crate::hardware::Allowance;
use crate::info::{Outputs, info_json};
use crate::job::{Job, from_params_json, from_spec_json};
use crate::media::{cfr_rate, validate};
use crate::mix::Track;
use crate::naming::{ENCODING_LOG, INFO_JSON, media_extension, output_base, source_file_name};
use crate::pipeline::Plan;
use crate::studio::{STUDIO_BASE, mix_settings};
use crate::timeline::{overview, window};

/// The log written to `encoding.log` and sent as `script_output`.
pub use esup_transcribe::shared_log::SharedLog as Log;

/// What the runner was asked to do.
#[derive(Debug, Clone)]
pub enum TaskKind {
    Encode,
    Studio,
    Transcribe(esup_transcribe::ModelPaths),
}

/// Runs the task; returns the process exit code.
pub async fn run(args: TaskArgs, kind: TaskKind) -> i32 {
    let callback = match args.callback_url.as_deref().filter(|u| !u.is_empty()) {
        Some(url) => match Callback::new(url, &args.callback_token) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!(error = %e, "cannot set up callbacks");
                return e.exit_code();
            }
        },
        None => None,
    };
    let mut log = Log::default();
    let started = Instant::now();
    let result = match &kind {
        TaskKind::Encode => execute(&args, false, callback.as_ref(), &mut log).await,
        TaskKind::Studio => execute(&args, true, callback.as_ref(), &mut log).await,
        TaskKind::Transcribe(models) => {
            crate::transcription::execute(&args, models, callback.as_ref(), &mut log).await
        }
    };
    writeln!(log, "elapsed: {:.2} s", started.elapsed().as_secs_f64()).ok();
    match result {
        Ok(()) => 0,
        Err(e) => {
            writeln!(log, "error ({}): {e}", e.category()).ok();
            tracing::error!(category = e.category(), error = %e, "task failed");
            std::fs::create_dir_all(&args.out).ok();
            std::fs::write(args.out.join(ENCODING_LOG), log.text()).ok();
            if e.is_final()
                && let Some(cb) = &callback
            {
                let completion = Completion {
                    status: TerminalStatus::Failed,
                    error_message: Some(e.to_string()),
                    script_output: Some(script_output(&log)),
                    files: Vec::new(),
                    hardware: None,
                };
                if let Err(post) = cb.complete(&completion).await {
                    tracing::error!(error = %post, "cannot post the failure");
                    return post.exit_code().max(e.exit_code());
                }
            }
            e.exit_code()
        }
    }
}

pub(crate) fn script_output(log: &Log) -> String {
    format!("[info_script.log]\n{}", log.text())
}

fn resolve_job(args: &TaskArgs, studio: bool) -> Result<Job, RunnerError> {
    match (&args.spec, &args.params) {
        (Some(spec), _) => from_spec_json(spec),
        (None, Some(params)) => from_params_json(params, &args.source, studio),
        (None, None) => from_params_json("{}", &args.source, studio),
    }
}

/// The downloaded source, its extension and the outputs' base name (§3.0).
pub(crate) struct Fetched {
    pub path: PathBuf,
    pub extension: String,
    pub base: String,
}

pub(crate) fn io_error(what: &'static str) -> impl Fn(std::io::Error) -> RunnerError {
    move |e| RunnerError::transient("DiskWriteFailed", format!("{what}: {e}"))
}

/// The scratch directory: `--work`, else one under the system temp dir.
pub(crate) fn work_dir(args: &TaskArgs) -> Result<PathBuf, RunnerError> {
    let work: PathBuf = args.work.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("esup-runner-{}", std::process::id()))
    });
    std::fs::create_dir_all(&work).map_err(io_error("work directory"))?;
    Ok(work)
}

/// §3.0's download policy, bounded by `--max-source-bytes`, under the URL policy of
/// `ESUP_ALLOWED_HOSTS`, `ESUP_PRIVATE_HOSTS` and `ESUP_PRIVATE_NETWORKS`.
pub(crate) fn download_policy(args: &TaskArgs) -> DownloadPolicy {
    DownloadPolicy {
        max_bytes: args.max_source_bytes,
        attempts: 5,
        placeholder_attempts: 12,
        base_delay: Duration::from_millis(args.retry_base_ms),
        urls: Arc::new(args.url_policy()),
        lookup: crate::download::system_lookup(),
    }
}

/// Checks the source's extension, makes the output and work directories, and downloads the
/// source (bounded, retried), reporting the `download` stage.
pub(crate) async fn fetch_source(
    args: &TaskArgs,
    callback: Option<&Callback>,
    log: &mut Log,
    media_duration: Option<f64>,
) -> Result<Fetched, RunnerError> {
    let file_name = source_file_name(&args.source);
    let extension = media_extension(&file_name).ok_or_else(|| {
        RunnerError::invalid_input(
            "UnsupportedExtension",
            format!(
                "{file_name:?} does not have a media extension ({})",
                crate::naming::MEDIA_EXTENSIONS.join(", ")
            ),
        )
    })?;
    std::fs::create_dir_all(&args.out).map_err(io_error("output directory"))?;
    let work = work_dir(args)?;

    report(callback, "download", None, media_duration).await;
    let path = fetch(
        "source_url",
        &args.source,
        &work,
        &file_name,
        &download_policy(args),
    )
    .await?;
    writeln!(log, "source: {} ({})", args.source, path.display()).ok();
    Ok(Fetched {
        path,
        extension,
        base: output_base(&file_name),
    })
}

/// What runs before the one pass: nothing, or the studio mix of a downloaded recording.
enum Before {
    Nothing,
    Studio(Recording),
}

/// Progress of the blocking work, read by the async side every 5 s: the stage and its share.
#[derive(Default)]
struct Progress {
    stage: AtomicU64,
    percent: AtomicU64,
}

const STAGES: [&str; 3] = ["mix", "dressing", "encode"];

impl Progress {
    fn set(&self, stage: usize, share: f64) {
        self.stage.store(stage as u64, Ordering::Relaxed);
        self.percent
            .store((share * 100.0).to_bits(), Ordering::Relaxed);
    }
    fn get(&self) -> (&'static str, f64) {
        let stage = usize::try_from(self.stage.load(Ordering::Relaxed)).unwrap_or(2);
        (
            STAGES.get(stage).copied().unwrap_or("encode"),
            f64::from_bits(self.percent.load(Ordering::Relaxed)),
        )
    }
}

async fn execute(
    args: &TaskArgs,
    studio: bool,
    callback: Option<&Callback>,
    log: &mut Log,
) -> Result<(), RunnerError> {
    let job = resolve_job(args, studio)?;
    let (source, extension, base, before) = if studio {
        std::fs::create_dir_all(&args.out).map_err(io_error("output directory"))?;
        let work = work_dir(args)?;
        report(callback, "download", None, None).await;
        let recording =
            crate::assets::fetch_recording(&args.source, &work, &download_policy(args), log)
                .await?;
        (
            args.out.join(format!("{STUDIO_BASE}.mp4")),
            "mp4".to_owned(),
            STUDIO_BASE.to_owned(),
            Before::Studio(recording),
        )
    } else {
        let f = fetch_source(args, callback, log, None).await?;
        (f.path, f.extension, f.base, Before::Nothing)
    };
    let work = work_dir(args)?;
    let assets = match &job.dressing {
        Some(d) => {
            crate::assets::fetch_dressing(d, &args.source, &work, &download_policy(args), log)
                .await?
        }
        None => Assets::default(),
    };

    let hardware = Hardware {
        gpu: if args.force_cpu {
            Err("forced to the CPU (--force-cpu)".to_owned())
        } else if job.studio.as_ref().is_some_and(|s| s.force_cpu) {
            Err("forced to the CPU (studio force_cpu)".to_owned())
        } else {
            crate::gpu::detect()
        },
        allow: Allowance {
            studio,
            studio_allow_nvenc: job.studio.as_ref().is_some_and(|s| s.allow_nvenc),
        },
    };
    match &hardware.gpu {
        Ok(g) => writeln!(log, "GPU: {} (NVENC: {})", g.name, g.nvenc),
        Err(why) => writeln!(log, "no GPU used: {why}"),
    }
    .ok();

    // The work is CPU-bound libav work: off the async threads, progress through atomics.
    let progress = Arc::new(Progress::default());
    let out = args.out.clone();
    let denylist = args.codec_denylist.clone();
    let task_log = log.clone();
    let shared = progress.clone();
    let job_for_pass = job.clone();
    let mut pass = tokio::task::spawn_blocking(move || {
        let mut log = task_log;
        let studio = match &before {
            Before::Nothing => None,
            Before::Studio(recording) => Some(studio_mix(
                recording,
                &job_for_pass,
                &hardware,
                &denylist,
                &out,
                &|p| shared.set(0, p),
                &mut log,
            )?),
        };
        let stage = PassInput {
            source: &source,
            base: &base,
            extension: &extension,
            assets: &assets,
            work: &work,
            studio,
        };
        encode_pass(
            &stage,
            &out,
            &job_for_pass,
            &hardware,
            &denylist,
            log,
            &shared,
        )
    });
    let (media_duration, mut outputs) = loop {
        tokio::select! {
            done = &mut pass => break done.map_err(|e| RunnerError::Encoding(e.to_string()))??,
            () = tokio::time::sleep(Duration::from_secs(5)) => {
                let (stage, p) = progress.get();
                report(callback, stage, Some(p), None).await;
            }
        }
    };
    let _ = media_duration;

    std::fs::write(args.out.join(ENCODING_LOG), log.text()).map_err(io_error("encoding.log"))?;
    let Some(cb) = callback else {
        return Ok(());
    };
    let hardware = HardwareReport {
        gpu: outputs.gpu.take(),
        decode: Some(outputs.decoder.clone()),
        encode: Some(outputs.encoder.clone()),
        ..Default::default()
    };
    deliver(cb, &args.out, log, hardware).await
}

/// What detection found (or why no GPU is used) and what the task allows.
struct Hardware {
    gpu: Result<Gpu, String>,
    allow: Allowance,
}

/// The studio mix's summary, and why its NVENC was not used when allowed.
type MixSummary = (serde_json::Value, Option<String>);

/// Stage 1 of a studio task: `out/studio_base.mp4`. Blocking.
#[allow(clippy::too_many_arguments)]
fn studio_mix(
    recording: &Recording,
    job: &Job,
    hardware: &Hardware,
    denylist: &[String],
    out: &Path,
    progress: &dyn Fn(f64),
    log: &mut Log,
) -> Result<MixSummary, RunnerError> {
    ffmpeg_next::init().map_err(|e| RunnerError::encoding("libav init", e))?;
    ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Error);
    let options = job.studio.as_ref();
    let layout = options
        .and_then(|o| o.layout)
        .unwrap_or(recording.package.layout);
    let tracks: Vec<Track<'_>> = recording
        .tracks
        .iter()
        .map(|(role, path)| Track { role, path })
        .collect();
    let mut settings = mix_settings(options, tracks.len() == 1);
    // The tracks are decoded on the CPU; only the mix's encoder may be on the GPU.
    settings.nvenc = crate::hardware::choose(&hardware.gpu, None, hardware.allow).nvenc;
    let (mut summary, fallback) = crate::mix::mix(
        &tracks,
        layout,
        recording.cut,
        &settings,
        denylist,
        out,
        progress,
        log,
    )?;
    if let Some(o) = summary.as_object_mut() {
        o.insert(
            "force_cpu".into(),
            serde_json::json!(options.is_some_and(|o| o.force_cpu)),
        );
    }
    Ok((summary, fallback))
}

/// What the one pass encodes, and what came before it.
struct PassInput<'a> {
    source: &'a Path,
    base: &'a str,
    extension: &'a str,
    assets: &'a Assets,
    work: &'a Path,
    /// The studio mix's summary (studio tasks).
    studio: Option<MixSummary>,
}

/// Uploads every file of `out` (each with its sha256), then posts the completion.
pub(crate) async fn deliver(
    cb: &Callback,
    out: &Path,
    log: &Log,
    hardware: HardwareReport,
) -> Result<(), RunnerError> {
    report(Some(cb), "upload", None, None).await;
    let mut files = Vec::new();
    let listing = list_outputs(out)
        .map_err(|e| RunnerError::transient("DiskReadFailed", format!("listing outputs: {e}")))?;
    for rel in listing {
        files.push(cb.upload(out, &rel).await?);
    }
    let completion = Completion {
        status: TerminalStatus::Completed,
        error_message: None,
        script_output: Some(script_output(log)),
        files,
        hardware: Some(hardware),
    };
    cb.complete(&completion).await
}

pub(crate) async fn report(
    callback: Option<&Callback>,
    stage: &str,
    percent: Option<f64>,
    duration: Option<f64>,
) {
    if let Some(cb) = callback {
        cb.progress(&ProgressReport {
            stage: stage.to_owned(),
            percent,
            media_duration_seconds: duration,
        })
        .await;
    }
}

/// Probe, dressing, plan, pass, info_video.json. Blocking.
fn encode_pass(
    stage: &PassInput<'_>,
    out: &Path,
    job: &Job,
    hardware: &Hardware,
    denylist: &[String],
    mut log: Log,
    progress: &Progress,
) -> Result<(f64, Outputs), RunnerError> {
    ffmpeg_next::init().map_err(|e| RunnerError::encoding("libav init", e))?;
    ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Error);
    let mut input = crate::probe::open(stage.source)?;
    let mut media = crate::probe::probe(&input, denylist)?;
    writeln!(log, "probe: {media:?}").ok();
    validate(&media)?;
    let mut w = window(media.duration, job.cut);
    if w.duration() <= 0.0 {
        return Err(RunnerError::invalid_input(
            "ZeroDuration",
            "the cut keeps nothing of the source",
        ));
    }
    // What the outputs must last, whatever the dressing adds: the kept part of the source,
    // or of the studio mix's timeline (its summary's duration, not the probe of its file).
    let timeline = stage
        .studio
        .as_ref()
        .and_then(|(summary, _)| summary.get("duration"))
        .and_then(serde_json::Value::as_f64);
    let expected_seconds = timeline.map_or(w.duration(), |t| window(t, job.cut).duration());
    let mut webm = media.is_webm_like(stage.extension);
    // The file the pass reads: the source, or the dressed intermediate.
    let mut pass_source = stage.source.to_path_buf();
    // Dressing: cut, watermark and credits rendered first; the pass encodes that file whole.
    let mut dressing_applied = None;
    if !stage.assets.is_empty() {
        if media.video.is_some() {
            drop(input);
            let (dressed, applied) = crate::dress::dress(
                stage.source,
                &media,
                w,
                stage.assets,
                denylist,
                stage.work,
                &|p| progress.set(1, p),
                &mut log,
            )?;
            input = crate::probe::open(&dressed)?;
            pass_source = dressed.clone();
            media = crate::probe::probe(&input, denylist)?;
            writeln!(log, "dressed probe: {media:?}").ok();
            validate(&media)?;
            w = window(media.duration, None);
            webm = false;
            dressing_applied = Some(applied);
        } else {
            writeln!(log, "warning: no video stream, the dressing is not applied").ok();
        }
    }
    let rungs = match &media.video {
        Some(v) => crate::ladder::select(&job.ladder, v.height),
        None => Vec::new(),
    };
    let choice = crate::hardware::choose(
        &hardware.gpu,
        media.video.as_ref().map(|v| v.codec.as_str()),
        hardware.allow,
    );
    let mut fallback = choice.fallback;
    let nvdec = match (choice.cuvid, &media.video) {
        (Some(name), Some(v)) => match crate::nvdec::preflight(&pass_source, v.index, name) {
            Ok(n) => Some(n),
            Err(why) => {
                tracing::warn!(reason = %why, "NVDEC fallback");
                fallback.push(format!("decode: {why}"));
                None
            }
        },
        _ => None,
    };
    for why in &fallback {
        writeln!(log, "CPU codec: {why}").ok();
    }
    let plan = Plan {
        rungs,
        window: w,
        cfr: webm.then(|| cfr_rate(media.video.as_ref().map_or(0.0, |v| v.fps))),
        webm,
        overview: overview(w.duration()),
        nvdec,
        nvenc: choice.nvenc,
    };
    writeln!(
        log,
        "window: {:.3}..{:.3} s; renditions: {:?}",
        w.start,
        w.end,
        plan.rungs.iter().map(|r| r.height).collect::<Vec<_>>()
    )
    .ok();
    let report = |p: f64| progress.set(2, p);
    let mut outputs =
        crate::pipeline::run(input, &media, &plan, out, stage.base, &report, &mut log)?;
    outputs.gpu = choice.gpu;
    // The mix's reasons first (it ran first), then the pass's.
    let pass_fallback = std::mem::take(&mut outputs.fallback);
    outputs.fallback = stage
        .studio
        .as_ref()
        .and_then(|(_, why)| why.clone())
        .into_iter()
        .chain(fallback)
        .chain(pass_fallback)
        .collect();
    let dressing = job
        .dressing
        .as_ref()
        .and_then(|d| serde_json::to_value(d).ok());
    let mut info = info_json(&media, &w, job.cut.is_some(), &job.ids, dressing, &outputs);
    if let Some(o) = info.as_object_mut() {
        o.insert(
            "dressing_applied".into(),
            dressing_applied.unwrap_or(serde_json::Value::Null),
        );
        if let Some((studio, _)) = &stage.studio {
            o.insert("studio".into(), studio.clone());
        }
    }
    let text = serde_json::to_string_pretty(&info)
        .map_err(|e| RunnerError::encoding("info_video.json", e))?;
    std::fs::write(out.join(INFO_JSON), text + "\n")
        .map_err(|e| RunnerError::transient("DiskWriteFailed", e.to_string()))?;
    // Output validation (reference runner 1.9.0): what the pass was to write is there, and
    // none of its media is more than 5 s shorter than the kept source.
    let expected = crate::verify::expected_encoding(
        stage.base,
        &plan.rungs,
        media.video.is_some(),
        !media.audio.is_empty(),
    );
    crate::verify::check(out, &expected, expected_seconds)
        .map_err(|e| e.into_runner_error("Encoding failed"))?;
    writeln!(
        log,
        "outputs checked: {} files, media within {} s of {expected_seconds:.2} s",
        expected.len(),
        crate::verify::TOLERANCE_SECONDS
    )
    .ok();
    Ok((media.duration, outputs))
}
