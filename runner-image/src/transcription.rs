//! `esup-runner transcribe` (protocol §3.3): the task's spec, the download, esup-transcribe's
//! Whisper pass off the async threads with progress, `info_video.json`, then the same delivery
//! as an encoding.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use esup_api::params::TaskSpecFromRequest;
use esup_api::status::HardwareReport;
use esup_api::transcription::TranscriptionTaskSpec;
use esup_transcribe::{ModelPaths, RunOptions, TranscribeError, TranscriptionParams};

use crate::cli::{TaskArgs, TranscribeArgs};
use crate::deliver::Callback;
use crate::error::RunnerError;
use crate::job::spec_from_params;
use crate::naming::{ENCODING_LOG, INFO_JSON};
use crate::run::{Fetched, Log, deliver, fetch_source, io_error, report};

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
        TaskSpecFromRequest::Transcription(spec) => Ok(spec),
        TaskSpecFromRequest::Encoding(_) => {
            Err(RunnerError::Usage("not a transcription task".into()))
        }
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
        crate::gpu::detect()
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
    let percent = Arc::new(AtomicU64::new(0));
    let shared = percent.clone();
    let (out, models) = (args.out.clone(), models.clone());
    let mut pass = tokio::task::spawn_blocking(move || {
        esup_transcribe::transcribe(&source, &out, &params, &models, &options, |fraction| {
            shared.store((f64::from(fraction) * 100.0).to_bits(), Ordering::Relaxed);
        })
    });
    let outcome = loop {
        tokio::select! {
            done = &mut pass => break done
                .map_err(|e| RunnerError::transient("TranscriptionCrashed", e.to_string()))?
                .map_err(runner_error)?,
            () = tokio::time::sleep(Duration::from_secs(5)) => {
                let p = f64::from_bits(percent.load(Ordering::Relaxed));
                report(callback, "transcribe", Some(p), spec.duration_seconds).await;
            }
        }
    };
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
    std::fs::write(args.out.join(ENCODING_LOG), log.text()).map_err(io_error("encoding.log"))?;
    let Some(cb) = callback else {
        return Ok(());
    };
    let hardware = HardwareReport {
        gpu: gpu.ok().map(|g| g.name),
        inference: Some(outcome.info.hardware_profile.clone()),
        ..Default::default()
    };
    deliver(cb, &args.out, log, hardware).await
}
