//! `esup-runner transcribe` (protocol §3.3): the task's spec, the download, esup-transcribe's
//! Whisper pass off the async threads with progress, `info_video.json`, then the same delivery
//! as an encoding.

use std::io::Write;
use std::sync::Arc;

use esup_api::status::HardwareReport;
use esup_api::task::TaskSpec;
use esup_api::transcription::TranscriptionTaskSpec;
use esup_transcribe::{ModelPaths, RunOptions, TranscribeError, TranscriptionParams};

use crate::cli::{TaskArgs, TranscribeArgs};
use crate::error::RunnerError;
use crate::io::deliver::Callback;
use crate::io::io_error;
use crate::job::spec_from_params;
use crate::naming::INFO_JSON;
use crate::task::fetch::{Fetched, fetch_source};
use crate::task::progress::{Progress, run_blocking_with_progress};
use crate::task::{Log, deliver};

/// The one stage of the blocking work.
const STAGES: [&str; 1] = ["transcribe"];

/// Where this runner finds its models, from its flags.
pub fn model_paths(args: &TranscribeArgs) -> ModelPaths {
    ModelPaths {
        whisper_dir: args.models_dir.clone(),
        default_model: args.whisper_model.clone(),
        translation_dir: args.translation_dir.clone(),
        onnxruntime: args.onnxruntime.clone(),
    }
}

/// The task: `--spec` from the operator, or Esup-Pod's raw `--params` by hand.
fn spec(args: &TaskArgs) -> Result<TranscriptionTaskSpec, RunnerError> {
    if let Some(json) = &args.spec {
        return serde_json::from_str(json)
            .map_err(|e| RunnerError::Usage(format!("invalid --spec: {e}")));
    }
    let params = args.params.as_deref().unwrap_or("{}");
    match spec_from_params(params, &args.source, "transcription")? {
        TaskSpec::Transcription(spec) => Ok(spec),
        TaskSpec::Encoding(_) => Err(RunnerError::Usage("not a transcription task".into())),
    }
}

/// The input's fault (exit 65, not retried), the task's (64), or the node's (75, retried).
fn runner_error(e: TranscribeError) -> RunnerError {
    let category = e.category();
    match e {
        TranscribeError::InvalidParams(_) => RunnerError::Usage(e.to_string()),
        TranscribeError::InputUnreadable { .. }
        | TranscribeError::NoAudio { .. }
        | TranscribeError::Decode(_) => RunnerError::invalid_input(category, e.to_string()),
        TranscribeError::ModelMissing { .. }
        | TranscribeError::Whisper(_)
        | TranscribeError::Timeout { .. }
        | TranscribeError::Translation(_)
        | TranscribeError::Output { .. } => RunnerError::transient(category, e.to_string()),
    }
}

pub async fn execute(
    args: &TaskArgs,
    models: &ModelPaths,
    callback: Option<&Callback>,
    log: &mut Log,
) -> Result<(), RunnerError> {
    let spec = spec(args)?;
    let Fetched {
        path: source, base, ..
    } = fetch_source(args, callback, log, spec.duration_seconds).await?;

    let gpu = if args.force_cpu {
        Err("forced to the CPU".to_owned())
    } else {
        crate::hardware::detect::detect()
    };
    match &gpu {
        Ok(g) => writeln!(log, "GPU: {}", g.name),
        Err(why) => writeln!(log, "no GPU used: {why}"),
    }
    .ok();
    let params = TranscriptionParams {
        language: spec.language.clone(),
        source_language: spec.source_language.clone(),
        model: spec.model.clone(),
        normalize: spec.normalize,
        duration_seconds: spec.duration_seconds,
        stem: base.clone(),
    };
    let options = RunOptions {
        gpu: gpu.is_ok(),
        ..RunOptions::default()
    };

    // Whisper is CPU-bound: off the async threads, progress through an atomic.
    let progress = Arc::new(Progress::new(&STAGES));
    let shared = progress.clone();
    let (out, models) = (args.out.clone(), models.clone());
    let outcome = run_blocking_with_progress(
        move || {
            esup_transcribe::transcribe(&source, &out, &params, &models, &options, |fraction| {
                shared.set(0, f64::from(fraction) * 100.0);
            })
        },
        &progress,
        callback,
        spec.duration_seconds,
    )
    .await
    .map_err(|e| RunnerError::transient("TranscriptionCrashed", e.to_string()))?
    .map_err(runner_error)?;
    writeln!(
        log,
        "transcribed {:.1} s of audio in {:.1} s on {} (whisper.cpp built for {}): {} cues, language {}",
        outcome.info.audio_duration_seconds,
        outcome.info.processing_seconds,
        outcome.info.hardware_profile,
        outcome.info.whisper_cpu_build,
        outcome.info.cues,
        outcome
            .info
            .final_subtitle_language
            .as_deref()
            .unwrap_or("none (no speech)"),
    )
    .ok();

    let video = &spec.common.video;
    let info = serde_json::json!({
        "transcription": outcome.info,
        "video_id": video.id,
        "video_slug": video.slug,
        "video_title": video.title,
    });
    let text = serde_json::to_string_pretty(&info)
        .map_err(|e| RunnerError::transient("OutputWriteFailed", e.to_string()))?;
    std::fs::write(args.out.join(INFO_JSON), text).map_err(io_error("info_video.json"))?;
    // Output validation (reference runner 1.9.0): the WebVTT Esup-Pod imports is there.
    crate::verify::check(
        &args.out,
        &crate::verify::expected_transcription(&base),
        f64::NAN,
    )
    .map_err(|e| e.into_runner_error("Transcription failed"))?;
    let hardware = HardwareReport {
        gpu: gpu.ok().map(|g| g.name),
        inference: Some(outcome.info.hardware_profile.clone()),
        ..Default::default()
    };
    deliver(callback, &args.out, log, hardware).await
}
