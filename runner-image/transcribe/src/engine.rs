//! whisper.cpp through whisper-rs: load a model once, detect the language, transcribe windows.

use std::path::Path;
use std::time::Instant;

use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

use crate::chunk::Segment;
use crate::error::TranscribeError;

/// Decoding settings shared by every window (and by the benchmark's bare whisper.cpp run).
#[derive(Debug, Clone, Copy)]
pub struct DecodeOptions {
    pub threads: usize,
    /// 1 = greedy; more = beam search of that width.
    pub beam_size: usize,
    /// whisper.cpp's temperature fallback (re-decode at higher temperatures, up to 5 more
    /// passes, when the text repeats or is unlikely). Off by default: on base it made hard
    /// audio 5× slower without better text (docs/transcription.md), and greedy alone is
    /// deterministic and bounded in time.
    pub temperature_fallback: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            beam_size: 1,
            temperature_fallback: false,
        }
    }
}

pub struct Engine {
    ctx: WhisperContext,
    pub multilingual: bool,
}

fn whisper_err(what: &str) -> impl Fn(whisper_rs::WhisperError) -> TranscribeError + '_ {
    move |e| TranscribeError::Whisper(format!("{what}: {e}"))
}

impl Engine {
    /// Loads a ggml model. `gpu` asks whisper.cpp for its GPU backend (only compiled in with
    /// the `cuda` feature; whisper.cpp falls back to the CPU when no device answers).
    pub fn load(model: &Path, gpu: bool, flash_attn: bool) -> Result<Self, TranscribeError> {
        // whisper.cpp's own logging goes to `tracing` instead of stderr.
        whisper_rs::install_logging_hooks();
        let params = WhisperContextParameters {
            use_gpu: gpu,
            flash_attn,
            ..Default::default()
        };
        let ctx = WhisperContext::new_with_params(model, params).map_err(|e| {
            TranscribeError::Whisper(format!("cannot load {}: {e}", model.display()))
        })?;
        let multilingual = ctx.is_multilingual();
        Ok(Self { ctx, multilingual })
    }

    /// The most likely spoken language of `samples` (its first 30 s), as a code like "fr".
    pub fn detect_language(
        &self,
        samples: &[f32],
        threads: usize,
    ) -> Result<String, TranscribeError> {
        if !self.multilingual {
            return Ok("en".to_string());
        }
        let mut state = self.ctx.create_state().map_err(whisper_err("state"))?;
        let n = samples.len().min(30 * crate::audio::SAMPLE_RATE as usize);
        state
            .pcm_to_mel(&samples[..n], threads.max(1))
            .map_err(whisper_err("mel"))?;
        let (id, _) = state
            .lang_detect(0, threads.max(1))
            .map_err(whisper_err("language detection"))?;
        whisper_rs::get_lang_str(id)
            .map(str::to_string)
            .ok_or_else(|| TranscribeError::Whisper(format!("unknown language id {id}")))
    }

    /// Segments of one window, times in ms from the window's start. `translate` is Whisper's
    /// X→English task. Stops with `Timeout` once `deadline` passes.
    pub fn transcribe(
        &self,
        samples: &[f32],
        language: &str,
        translate: bool,
        opts: &DecodeOptions,
        deadline: Option<(Instant, u64)>,
    ) -> Result<Vec<Segment>, TranscribeError> {
        let mut state = self.ctx.create_state().map_err(whisper_err("state"))?;
        let strategy = if opts.beam_size > 1 {
            SamplingStrategy::BeamSearch {
                beam_size: opts.beam_size as i32,
                patience: -1.0,
            }
        } else {
            SamplingStrategy::Greedy { best_of: 1 }
        };
        let mut params = FullParams::new(strategy);
        params.set_n_threads(opts.threads.max(1) as i32);
        params.set_language(Some(language));
        params.set_translate(translate);
        // Windows are independent (the reference runner's chunked calls do the same): a
        // hallucination in one window cannot leak into the next through the prompt.
        params.set_no_context(true);
        params.set_suppress_blank(true);
        params.set_suppress_nst(true);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_special(false);
        params.set_print_timestamps(false);
        if !opts.temperature_fallback {
            params.set_temperature_inc(0.0);
        }
        if let Some((deadline, _)) = deadline {
            params.set_abort_callback_safe(move || Instant::now() > deadline);
        }
        let result = state.full(params, samples);
        if let Some((deadline, seconds)) = deadline
            && Instant::now() > deadline
        {
            return Err(TranscribeError::Timeout { seconds });
        }
        result.map_err(whisper_err("inference"))?;
        let mut segments = Vec::new();
        for seg in state.as_iter() {
            let text = seg
                .to_str_lossy()
                .map_err(whisper_err("segment text"))?
                .trim()
                .to_string();
            // whisper.cpp times are centiseconds.
            segments.push(Segment {
                start_ms: seg.start_timestamp() * 10,
                end_ms: seg.end_timestamp() * 10,
                text,
            });
        }
        Ok(segments)
    }
}
