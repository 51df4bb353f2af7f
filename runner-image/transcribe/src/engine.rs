//! whisper.cpp through whisper-rs: load a model once, detect the language, transcribe windows.

use std::cell::RefCell;
use std::path::Path;
use std::time::Instant;

use whisper_rs::{
    FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperState,
};

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
    /// Encode a window shorter than 30 s with an encoder context cut to its length
    /// (whisper.cpp's `audio_ctx`) instead of 30 s of padding. The encoder's cost is about
    /// proportional to its context, so a 5 s window costs a sixth of a full pass. Off by
    /// default: Whisper was trained on 30 s inputs, and the cut context cost 15 points of WER
    /// on the French benchmark audio (docs/transcription.md, "audio_ctx").
    pub fit_audio_ctx: bool,
}

/// Encoder positions per second of audio (100 mel frames/s, the conv stride halves them).
const AUDIO_CTX_PER_SECOND: usize = 50;
/// Whisper's full encoder context: 30 s.
const FULL_AUDIO_CTX: usize = 1500;
/// Context kept beyond the window's audio: whisper.cpp must see silence after the last word
/// to place its final timestamp instead of cutting the segment at the edge.
const AUDIO_CTX_MARGIN: usize = 64;
/// whisper.cpp's flash-attention kernels work on blocks: a multiple of 64 wastes nothing.
const AUDIO_CTX_STEP: usize = 64;

/// The encoder context for a window of `samples` (16 kHz): its length plus a margin, rounded
/// up to a block; 0 (whisper.cpp's full 30 s) when that would not be shorter.
pub fn audio_ctx_for(samples: usize) -> usize {
    let needed = (samples * AUDIO_CTX_PER_SECOND).div_ceil(crate::audio::SAMPLE_RATE as usize)
        + AUDIO_CTX_MARGIN;
    let ctx = needed.div_ceil(AUDIO_CTX_STEP) * AUDIO_CTX_STEP;
    if ctx >= FULL_AUDIO_CTX { 0 } else { ctx }
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            beam_size: 1,
            temperature_fallback: false,
            fit_audio_ctx: false,
        }
    }
}

/// The SIMD level whisper.cpp was compiled for (ggml picks its kernels at compile time):
/// `x86-64-v4` in the runner's AVX-512 build, `x86-64-v3` in the portable one.
pub fn cpu_build() -> &'static str {
    cpu_build_of(whisper_rs::print_system_info())
}

/// Reads whisper.cpp's system info line (`... CPU : SSE3 = 1 | AVX2 = 1 | ... | AVX512 = 1 |`).
fn cpu_build_of(system_info: &str) -> &'static str {
    let on = |feature: &str| {
        system_info.split('|').any(|part| {
            let entry = part.rsplit(':').next().unwrap_or(part);
            entry
                .split_once('=')
                .is_some_and(|(name, value)| name.trim() == feature && value.trim() == "1")
        })
    };
    if on("AVX512") {
        "x86-64-v4"
    } else if on("AVX2") && on("FMA") {
        "x86-64-v3"
    } else {
        "other"
    }
}

pub struct Engine {
    /// One decoding state (KV caches, compute buffers: tens of MB) for every window and the
    /// language detection, allocated once; whisper.cpp resets it at each call.
    state: RefCell<WhisperState>,
    pub multilingual: bool,
    /// Where whisper.cpp actually runs, as it said while loading.
    pub backend: Backend,
}

/// Whether whisper.cpp was built with a GPU backend (the `cuda` feature).
pub const GPU_BACKEND_BUILT: bool = cfg!(feature = "cuda");

/// The device whisper.cpp chose while loading a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// A GPU backend, by ggml's device name (`CUDA0`).
    Gpu(String),
    /// The CPU; when a GPU was asked for, why it is not used (whisper.cpp's and ggml's words).
    Cpu { gpu_fallback: Option<String> },
}

/// Reads whisper.cpp's load log (`whisper_backend_init_gpu: using CUDA0 backend`, or `no GPU
/// found` / `failed to initialize ... backend`, after ggml's own CUDA errors). `gpu`: whether
/// a GPU was asked for.
fn backend_of(load_log: &str, gpu: bool) -> Backend {
    let lines = || load_log.lines().map(str::trim);
    let chosen = lines().find_map(|l| {
        let (_, rest) = l.split_once("whisper_backend_init_gpu: using ")?;
        Some(rest.strip_suffix(" backend")?.to_string())
    });
    match chosen {
        Some(device) if gpu && !load_log.contains(&format!("failed to initialize {device}")) => {
            Backend::Gpu(device)
        }
        _ if !gpu => Backend::Cpu { gpu_fallback: None },
        _ => {
            let why: Vec<&str> = lines()
                .filter(|l| {
                    l.contains("no GPU found")
                        || l.contains("failed to initialize")
                        || l.contains("ggml_cuda_init")
                })
                .collect();
            Backend::Cpu {
                gpu_fallback: Some(if why.is_empty() {
                    "whisper.cpp chose no GPU backend".to_string()
                } else {
                    why.join("; ")
                }),
            }
        }
    }
}

/// Collects what whisper.cpp and ggml log (through whisper-rs's `tracing` hooks) on this
/// thread while `f` runs, and passes it on to the process's own subscriber afterwards.
fn with_load_log<T>(f: impl FnOnce() -> T) -> (T, String) {
    let capture = crate::shared_log::SharedLog::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .without_time()
        .with_level(false)
        .with_target(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let log = capture.text();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        tracing::debug!(target: "whisper_cpp", "{}", line.trim());
    }
    (out, log)
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
        // The GPU backend is chosen (or given up) while the context and the state are made.
        let (loaded, load_log) = with_load_log(|| {
            let ctx = WhisperContext::new_with_params(model, params).map_err(|e| {
                TranscribeError::Whisper(format!("cannot load {}: {e}", model.display()))
            })?;
            let state = ctx.create_state().map_err(whisper_err("state"))?;
            Ok::<_, TranscribeError>((ctx.is_multilingual(), state))
        });
        let (multilingual, state) = loaded?;
        let backend = backend_of(&load_log, gpu);
        if let Backend::Cpu {
            gpu_fallback: Some(why),
        } = &backend
        {
            tracing::warn!(%why, "whisper.cpp runs on the CPU although a GPU was asked for");
        }
        Ok(Self {
            state: RefCell::new(state),
            multilingual,
            backend,
        })
    }

    fn state(&self) -> Result<std::cell::RefMut<'_, WhisperState>, TranscribeError> {
        self.state
            .try_borrow_mut()
            .map_err(|_| TranscribeError::Whisper("decoding state already in use".into()))
    }

    /// The most likely spoken language of `samples` (its first 30 s), as a code like "fr".
    /// Call it before `transcribe` with `fit_audio_ctx`: the shared state keeps the last
    /// call's encoder context, and detection should see the full one.
    pub fn detect_language(
        &self,
        samples: &[f32],
        threads: usize,
    ) -> Result<String, TranscribeError> {
        if !self.multilingual {
            return Ok("en".to_string());
        }
        let mut state = self.state()?;
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
        let mut state = self.state()?;
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
        // Nor inside a window: whisper.cpp would otherwise prompt each 30 s slice with the
        // text of the previous ones (faster-whisper's condition_on_previous_text=False).
        params.set_n_max_text_ctx(0);
        params.set_suppress_blank(true);
        params.set_suppress_nst(true);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_special(false);
        params.set_print_timestamps(false);
        if !opts.temperature_fallback {
            params.set_temperature_inc(0.0);
        }
        if opts.fit_audio_ctx {
            params.set_audio_ctx(audio_ctx_for(samples.len()) as i32);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backend_is_what_whisper_cpp_said_while_loading() {
        let cuda = "whisper_init_with_params_no_state: use gpu    = 1\n\
            ggml_cuda_init: found 1 CUDA devices:\n\
            whisper_backend_init_gpu: using CUDA0 backend\n\
            whisper_init_state: kv self size  =    6.29 MB\n";
        assert_eq!(backend_of(cuda, true), Backend::Gpu("CUDA0".into()));
        let no_driver = "ggml_cuda_init: failed to initialize CUDA: CUDA driver version is insufficient for CUDA runtime version\n\
            whisper_backend_init_gpu: no GPU found\n";
        assert_eq!(
            backend_of(no_driver, true),
            Backend::Cpu {
                gpu_fallback: Some("ggml_cuda_init: failed to initialize CUDA: CUDA driver version is insufficient for CUDA runtime version; whisper_backend_init_gpu: no GPU found".into())
            }
        );
        let init_failed = "whisper_backend_init_gpu: using CUDA0 backend\n\
            whisper_backend_init_gpu: failed to initialize CUDA0 backend\n";
        assert!(
            matches!(backend_of(init_failed, true), Backend::Cpu { gpu_fallback: Some(w) } if w.contains("failed to initialize CUDA0"))
        );
        assert_eq!(
            backend_of("whisper_init_state: kv self size = 6.29 MB\n", true),
            Backend::Cpu {
                gpu_fallback: Some("whisper.cpp chose no GPU backend".into())
            }
        );
        assert_eq!(backend_of(cuda, false), Backend::Cpu { gpu_fallback: None });
    }

    #[test]
    fn the_cpu_build_is_read_from_whisper_cpps_system_info() {
        let portable = "WHISPER : COREML = 0 | OPENVINO = 0 | CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | LLAMAFILE = 1 | OPENMP = 0 | REPACK = 1 | ";
        assert_eq!(cpu_build_of(portable), "x86-64-v3");
        let v4 = portable.replace("BMI2 = 1 |", "BMI2 = 1 | AVX512 = 1 |");
        assert_eq!(cpu_build_of(&v4), "x86-64-v4");
        assert_eq!(
            cpu_build_of(&portable.replace("AVX2 = 1", "AVX2 = 0")),
            "other"
        );
        assert_eq!(
            cpu_build_of(&portable.replace("AVX2 = 1", "AVX512_VNNI = 1")),
            "other"
        );
        // The build under test is one of the two the image ships.
        assert!(
            ["x86-64-v3", "x86-64-v4"].contains(&cpu_build()),
            "{}",
            whisper_rs::print_system_info()
        );
    }

    #[test]
    fn audio_ctx_fits_short_windows_and_keeps_full_ones() {
        let sec = |s: f32| (s * 16_000.0) as usize;
        // 5 s = 250 positions + 64 margin = 314, rounded up to 320.
        assert_eq!(audio_ctx_for(sec(5.0)), 320);
        assert_eq!(audio_ctx_for(sec(13.3)), 768);
        assert_eq!(audio_ctx_for(1), 128);
        // 28.5 s needs 1425 + 64 = 1489 -> 1536 >= 1500: the full context.
        assert_eq!(audio_ctx_for(sec(28.5)), 0);
        assert_eq!(audio_ctx_for(sec(30.0)), 0);
        assert_eq!(audio_ctx_for(sec(31.4)), 0);
        for s in [0.5_f32, 3.0, 10.0, 20.0, 27.0] {
            let ctx = audio_ctx_for(sec(s));
            assert!(
                ctx.is_multiple_of(64) && ctx as f32 >= s * 50.0 + 64.0,
                "{s} s -> {ctx}"
            );
        }
    }
}
