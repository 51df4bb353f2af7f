//! An encoding task (also a studio task, whose source is a recording to mix first) from its
//! job to its delivery: the source (or recording) and dressing files fetched, the GPU
//! detected, the blocking pass run with its progress reported, the outputs delivered. I/O.

use std::io::Write;
use std::sync::Arc;

use esup_api::status::HardwareReport;

use crate::cli::TaskArgs;
use crate::dressing::plan::Assets;
use crate::encode::pass::{Hardware, Pass, STAGES, Source as PassSource};
use crate::error::RunnerError;
use crate::hardware::choice::Allowance;
use crate::io::deliver::Callback;
use crate::io::io_error;
use crate::job::{Job, from_params_json, from_spec_json};
use crate::studio::plan::STUDIO_BASE;
use crate::task::fetch::{download_policy, fetch_source};
use crate::task::progress::{Progress, report, run_blocking_with_progress};
use crate::task::{Log, deliver, work_dir};

/// What the task's `--source` is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A media file (`esup-runner encode`).
    Media,
    /// An Opencast mediapackage to mix into `studio_base.mp4` first (`esup-runner studio`).
    Studio,
}

fn resolve_job(args: &TaskArgs, studio: bool) -> Result<Job, RunnerError> {
    match (&args.spec, &args.params) {
        (Some(spec), _) => from_spec_json(spec),
        (None, Some(params)) => from_params_json(params, &args.source, studio),
        (None, None) => from_params_json("{}", &args.source, studio),
    }
}

/// The source to encode: downloaded, or the studio mix's file-to-be with its recording.
async fn fetch_input(
    args: &TaskArgs,
    kind: Source,
    callback: Option<&Callback>,
    log: &mut Log,
) -> Result<PassSource, RunnerError> {
    if kind == Source::Media {
        let f = fetch_source(args, callback, log, None).await?;
        return Ok(PassSource {
            path: f.path,
            extension: f.extension,
            base: f.base,
            recording: None,
        });
    }
    std::fs::create_dir_all(&args.out).map_err(io_error("output directory"))?;
    let work = work_dir(args)?;
    report(callback, "download", None, None).await;
    let recording =
        crate::io::assets::fetch_recording(&args.source, &work, &download_policy(args), log)
            .await?;
    Ok(PassSource {
        path: args.out.join(format!("{STUDIO_BASE}.mp4")),
        extension: "mp4".to_owned(),
        base: STUDIO_BASE.to_owned(),
        recording: Some(recording),
    })
}

/// What detection found (or why no GPU is used) and what the task allows; logged.
fn hardware(args: &TaskArgs, job: &Job, kind: Source, log: &mut Log) -> Hardware {
    let hardware = Hardware {
        gpu: if args.force_cpu {
            Err("forced to the CPU (--force-cpu)".to_owned())
        } else if job.studio.as_ref().is_some_and(|s| s.force_cpu) {
            Err("forced to the CPU (studio force_cpu)".to_owned())
        } else {
            crate::hardware::detect::detect()
        },
        allow: Allowance {
            studio: kind == Source::Studio,
            studio_allow_nvenc: job.studio.as_ref().is_some_and(|s| s.allow_nvenc),
        },
    };
    match &hardware.gpu {
        Ok(g) => writeln!(log, "GPU: {} (NVENC: {})", g.name, g.nvenc),
        Err(why) => writeln!(log, "no GPU used: {why}"),
    }
    .ok();
    hardware
}

pub async fn execute(
    args: &TaskArgs,
    kind: Source,
    callback: Option<&Callback>,
    log: &mut Log,
) -> Result<(), RunnerError> {
    let job = resolve_job(args, kind == Source::Studio)?;
    let source = fetch_input(args, kind, callback, log).await?;
    let work = work_dir(args)?;
    let assets = match &job.dressing {
        Some(d) => {
            crate::io::assets::fetch_dressing(d, &args.source, &work, &download_policy(args), log)
                .await?
        }
        None => Assets::default(),
    };
    let hardware = hardware(args, &job, kind, log);

    // The work is CPU-bound libav work: off the async threads, progress through atomics.
    let pass = Pass {
        job,
        hardware,
        denylist: args.codec_denylist.clone(),
        out: args.out.clone(),
        work,
        source,
        assets,
    };
    let progress = Arc::new(Progress::new(&STAGES));
    let shared = progress.clone();
    let task_log = log.clone();
    let mut outputs = run_blocking_with_progress(
        move || pass.run(&shared, task_log),
        &progress,
        callback,
        None,
    )
    .await
    .map_err(|e| RunnerError::Encoding(e.to_string()))??;

    let hardware = HardwareReport {
        gpu: outputs.gpu.take(),
        decode: Some(outputs.decoder.clone()),
        encode: Some(outputs.encoder.clone()),
        ..Default::default()
    };
    deliver(callback, &args.out, log, hardware).await
}
