//! Runs the transcription by hand or for bench/transcribe, printing one JSON line.
//!
//! transcribe-bench MODELS_DIR MODEL INPUT LANG THREADS [pipeline|bare] [OUT_DIR]
//!   pipeline: esup_transcribe::transcribe (decode, VAD, windows, merge, VTT)
//!   bare:     decode the input, then one whisper_full over the whole audio with the same
//!             decoding options: the reference for our overhead.

use std::path::PathBuf;
use std::time::Instant;

use esup_transcribe::engine::Engine;
use esup_transcribe::{
    DecodeOptions, ModelPaths, RunOptions, TranscriptionParams, audio, transcribe,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 6 {
        return Err(
            "usage: transcribe-bench MODELS_DIR MODEL INPUT LANG THREADS [pipeline|bare] [OUT_DIR]"
                .into(),
        );
    }
    let (models_dir, model, input, lang) = (
        PathBuf::from(&args[1]),
        &args[2],
        PathBuf::from(&args[3]),
        &args[4],
    );
    let threads: usize = args[5].parse()?;
    let mode = args.get(6).map_or("pipeline", String::as_str);
    // Knobs for the investigation in docs/transcription.md (defaults = production settings).
    let env_is = |k: &str| std::env::var(k).is_ok_and(|v| v == "1");
    let beam_size = std::env::var("ESUP_BEAM")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let decode = DecodeOptions {
        threads,
        beam_size,
        temperature_fallback: env_is("ESUP_FALLBACK"),
        fit_audio_ctx: env_is("ESUP_FIT_AUDIO_CTX"),
    };
    // Flash attention: ESUP_FLASH_ATTN=1 on, ESUP_NO_FLASH_ATTN=1 off, else the default
    // (on for a GPU only).
    let flash_attn = if env_is("ESUP_FLASH_ATTN") {
        Some(true)
    } else if env_is("ESUP_NO_FLASH_ATTN") {
        Some(false)
    } else {
        None
    };
    let started = Instant::now();
    match mode {
        "bare" => {
            let samples = audio::decode_to_pcm16k(&input)?;
            let engine = Engine::load(
                &models_dir.join(format!("ggml-{model}.bin")),
                false,
                flash_attn.unwrap_or(false),
            )?;
            let t = Instant::now();
            let segments = engine.transcribe(&samples, lang, false, &decode, None)?;
            let inference = t.elapsed().as_secs_f64();
            let text: Vec<&str> = segments.iter().map(|s| s.text.as_str()).collect();
            let out = serde_json::json!({"mode": "bare", "seconds": started.elapsed().as_secs_f64(), "inference_seconds": inference,
                "audio_seconds": samples.len() as f64 / 16000.0, "text": text.join(" ")});
            println!("{out}");
        }
        _ => {
            let out_dir = args.get(7).map_or_else(std::env::temp_dir, PathBuf::from);
            let models = ModelPaths {
                whisper_dir: models_dir,
                default_model: "base".into(),
                translation_dir: None,
                onnxruntime: None,
            };
            let params = TranscriptionParams {
                // ESUP_TARGET_LANG: subtitles in another language (translation measurements).
                language: std::env::var("ESUP_TARGET_LANG").unwrap_or_else(|_| lang.clone()),
                source_language: lang.clone(),
                model: Some(model.clone()),
                normalize: false,
                duration_seconds: None,
                stem: "bench".into(),
            };
            let opts = RunOptions {
                decode,
                flash_attn,
                // The model named on the command line, as given: the bench compares f16 and
                // q8_0 files side by side.
                prefer_q8_0: false,
                vad: !env_is("ESUP_NO_VAD"),
                ..RunOptions::default()
            };
            let o = transcribe(&input, &out_dir, &params, &models, &opts, |_| {})?;
            let out = serde_json::json!({"mode": "pipeline", "seconds": started.elapsed().as_secs_f64(),
                "audio_seconds": o.info.audio_duration_seconds, "text": o.text, "info": o.info});
            println!("{out}");
        }
    }
    Ok(())
}
