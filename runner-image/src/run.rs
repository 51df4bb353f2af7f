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

use crate::cli::TaskArgs;
use crate::deliver::{Callback, list_outputs};
use crate::download::{DownloadPolicy, fetch};
use crate::error::RunnerError;
use crate::info::{Outputs, info_json};
use crate::job::{Job, from_params_json, from_spec_json};
use crate::media::{cfr_rate, validate};
use crate::naming::{ENCODING_LOG, INFO_JSON, media_extension, output_base, source_file_name};
use crate::pipeline::Plan;
use crate::timeline::{overview, window};

/// The log written to `encoding.log` and sent as `script_output`.
#[derive(Clone, Default)]
pub struct Log(Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    pub fn text(&self) -> String {
        self.0
            .lock()
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default()
    }
}

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

/// Checks the source's extension, makes the output and work directories, and downloads the
/// source (bounded, retried), reporting the `download` stage.
pub(crate) async fn fetch_source(
    args: &TaskArgs,
    callback: Option<&Callback>,
    log: &mut Log,
    media_duration: Option<f64>,
) -> Result<Fetched, RunnerError> {
    let file_name = source_file_name(&args.source).to_owned();
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
    let work: PathBuf = args.work.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("esup-runner-{}", std::process::id()))
    });
    std::fs::create_dir_all(&work).map_err(io_error("work directory"))?;

    report(callback, "download", None, media_duration).await;
    let policy = DownloadPolicy {
        max_bytes: args.max_source_bytes,
        attempts: 5,
        placeholder_attempts: 12,
        base_delay: Duration::from_millis(args.retry_base_ms),
    };
    let path = fetch(&args.source, &work, &file_name, &policy).await?;
    writeln!(log, "source: {} ({})", args.source, path.display()).ok();
    Ok(Fetched {
        path,
        extension,
        base: output_base(&file_name),
    })
}

async fn execute(
    args: &TaskArgs,
    studio: bool,
    callback: Option<&Callback>,
    log: &mut Log,
) -> Result<(), RunnerError> {
    if studio {
        return Err(RunnerError::Usage(
            "studio mixes are not implemented in this runner yet; submit the recording as an encoding".into(),
        ));
    }
    let job = resolve_job(args, studio)?;
    let Fetched {
        path: source,
        extension,
        base,
    } = fetch_source(args, callback, log, None).await?;

    let gpu = if args.force_cpu {
        Err("forced to the CPU".to_owned())
    } else {
        crate::gpu::detect()
    };
    match &gpu {
        Ok(g) => writeln!(
            log,
            "GPU: {} (NVENC: {}); this runner encodes on the CPU (libx264)",
            g.name, g.nvenc
        ),
        Err(why) => writeln!(log, "no GPU used: {why}"),
    }
    .ok();

    // The pass is CPU-bound libav work: off the async threads, progress through an atomic.
    let percent = Arc::new(AtomicU64::new(0));
    let out = args.out.clone();
    let denylist = args.codec_denylist.clone();
    let task_log = log.clone();
    let shared = percent.clone();
    let job_for_pass = job.clone();
    let mut pass = tokio::task::spawn_blocking(move || {
        encode_pass(
            &source,
            &out,
            &base,
            &extension,
            &job_for_pass,
            &denylist,
            task_log,
            &shared,
        )
    });
    let (media_duration, mut outputs) = loop {
        tokio::select! {
            done = &mut pass => break done.map_err(|e| RunnerError::Encoding(e.to_string()))??,
            () = tokio::time::sleep(Duration::from_secs(5)) => {
                let p = f64::from_bits(percent.load(Ordering::Relaxed));
                report(callback, "encode", Some(p), None).await;
            }
        }
    };
    outputs.gpu = gpu.ok().map(|g| g.name);
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

/// Probe, plan, pass, info_video.json. Blocking.
#[allow(clippy::too_many_arguments)]
fn encode_pass(
    source: &Path,
    out: &Path,
    base: &str,
    extension: &str,
    job: &Job,
    denylist: &[String],
    mut log: Log,
    percent: &AtomicU64,
) -> Result<(f64, Outputs), RunnerError> {
    ffmpeg_next::init().map_err(|e| RunnerError::encoding("libav init", e))?;
    ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Error);
    let input = crate::probe::open(source)?;
    let media = crate::probe::probe(&input, denylist)?;
    writeln!(log, "probe: {media:?}").ok();
    validate(&media)?;
    let w = window(media.duration, job.cut);
    if w.duration() <= 0.0 {
        return Err(RunnerError::invalid_input(
            "ZeroDuration",
            "the cut keeps nothing of the source",
        ));
    }
    let webm = media.is_webm_like(extension);
    let rungs = match &media.video {
        Some(v) => crate::ladder::select(&job.ladder, v.height),
        None => Vec::new(),
    };
    let plan = Plan {
        rungs,
        window: w,
        cfr: webm.then(|| cfr_rate(media.video.as_ref().map_or(0.0, |v| v.fps))),
        webm,
        overview: overview(w.duration()),
    };
    writeln!(
        log,
        "window: {:.3}..{:.3} s; renditions: {:?}",
        w.start,
        w.end,
        plan.rungs.iter().map(|r| r.height).collect::<Vec<_>>()
    )
    .ok();
    let progress = |p: f64| percent.store((p * 100.0).to_bits(), Ordering::Relaxed);
    let outputs = crate::pipeline::run(input, &media, &plan, out, base, &progress, &mut log)?;
    let dressing = job
        .dressing
        .as_ref()
        .and_then(|d| serde_json::to_value(d).ok());
    if dressing.is_some() {
        writeln!(
            log,
            "warning: dressing (watermark, credits) is not applied by this runner yet"
        )
        .ok();
    }
    let info = info_json(&media, &w, job.cut.is_some(), &job.ids, dressing, &outputs);
    let text = serde_json::to_string_pretty(&info)
        .map_err(|e| RunnerError::encoding("info_video.json", e))?;
    std::fs::write(out.join(INFO_JSON), text + "\n")
        .map_err(|e| RunnerError::transient("DiskWriteFailed", e.to_string()))?;
    Ok((media.duration, outputs))
}
