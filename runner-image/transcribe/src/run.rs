//! The whole transcription of one input: the I/O around the pure parts.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::audio::{SAMPLE_RATE, decode_to_pcm16k};
use crate::chunk::{self, ChunkConfig, Segment};
use crate::engine::{Backend, DecodeOptions, Engine, GPU_BACKEND_BUILT};
use crate::error::TranscribeError;
use crate::outcome::{InternalGaps, TranscriptionInfo, TranscriptionOutcome, TranslationInfo};
use crate::plan::{self, ModelChoice, Translation};
use crate::repetition;
use crate::translate::{MarianTranslator, model_dir_name};
use crate::{checks, vad, vtt};

/// A task's parameters (Esup-Pod's, already validated by the webhook).
#[derive(Debug, Clone)]
pub struct TranscriptionParams {
    /// Subtitle language; "auto" keeps the spoken one.
    pub language: String,
    /// Spoken language; "auto" detects it.
    pub source_language: String,
    /// Whisper model name; None = the runner's default.
    pub model: Option<String>,
    /// Loudness normalisation before recognition.
    pub normalize: bool,
    /// Media duration as Esup-Pod knows it (sizes the time budget).
    pub duration_seconds: Option<f64>,
    /// Output base name (§3.0's sanitised input stem, e.g. `audio_192k_my_lecture`).
    pub stem: String,
}

/// Where the runner's models live.
#[derive(Debug, Clone)]
pub struct ModelPaths {
    /// Holds `ggml-<model>.bin`.
    pub whisper_dir: PathBuf,
    pub default_model: String,
    /// Holds `opus-mt-fr-en/` and `opus-mt-en-fr/` (ONNX exports); None = no local translation.
    pub translation_dir: Option<PathBuf>,
    /// `libonnxruntime.so`; None = no local translation.
    pub onnxruntime: Option<PathBuf>,
}

impl ModelPaths {
    pub fn whisper_model(&self, name: &str) -> PathBuf {
        self.whisper_dir.join(format!("ggml-{name}.bin"))
    }

    fn marian(&self, from: &str, to: &str) -> Option<(PathBuf, PathBuf)> {
        let dir = self
            .translation_dir
            .as_ref()?
            .join(model_dir_name(from, to));
        let lib = self.onnxruntime.clone()?;
        (dir.join("encoder_model.onnx").is_file() && lib.is_file()).then_some((dir, lib))
    }
}

#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    pub decode: DecodeOptions,
    /// A GPU was found (NVML): ask whisper.cpp for it, if this build has the `cuda` feature.
    pub gpu: bool,
    /// whisper.cpp's flash attention; None = on a GPU only. ggml's CPU kernel walks the
    /// keys one query row at a time (accumulating in f16): plain attention, two matrix
    /// products, made the CPU runs 1.5× faster, for 0.8 points of WER on our espeak set
    /// (docs/transcription.md, "Flash attention").
    pub flash_attn: Option<bool>,
    /// On the CPU, load `ggml-<model>-q8_0.bin` instead of `ggml-<model>.bin` when it is
    /// installed (same text, about 10 % faster: docs/transcription.md). Ignored on a GPU.
    pub prefer_q8_0: bool,
    /// Energy VAD; off = every sample is speech (benchmarks of bare inference).
    pub vad: bool,
    pub window_seconds: f32,
    pub overlap_seconds: f32,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            decode: DecodeOptions::default(),
            gpu: false,
            flash_attn: None,
            prefer_q8_0: true,
            vad: true,
            // Long windows: whisper.cpp slides its 30 s view inside one (src/chunk.rs).
            window_seconds: 600.0,
            overlap_seconds: 0.0,
        }
    }
}

/// §3.3: the reference runner's budget, max(60 s, 8 × duration).
fn budget(duration_s: f64) -> Duration {
    Duration::from_secs_f64((duration_s * 8.0).max(60.0))
}

fn write_atomic(path: &Path, text: &str) -> Result<(), TranscribeError> {
    let err = |e: std::io::Error| TranscribeError::Output {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, text).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Renders segments and checks the result with our own strict reader before it is written.
fn render_checked(segments: &[Segment]) -> Result<(String, usize, String), TranscribeError> {
    let cues = vtt::layout_all(segments);
    let text = vtt::render(&cues);
    let reread = vtt::parse(&text).map_err(|e| TranscribeError::Output {
        path: PathBuf::from("<vtt>"),
        reason: e,
    })?;
    let problems = vtt::check_layout(&reread);
    if !problems.is_empty() {
        return Err(TranscribeError::Output {
            path: PathBuf::from("<vtt>"),
            reason: problems.join("; "),
        });
    }
    let plain = cues
        .iter()
        .map(vtt::Cue::text)
        .collect::<Vec<_>>()
        .join(" ");
    Ok((text, cues.len(), plain))
}

/// Transcribes `input` into `out_dir`; `progress` gets fractions in [0, 1].
pub fn transcribe(
    input: &Path,
    out_dir: &Path,
    params: &TranscriptionParams,
    models: &ModelPaths,
    opts: &RunOptions,
    mut progress: impl FnMut(f32),
) -> Result<TranscriptionOutcome, TranscribeError> {
    let run = Run::new(params, models, opts)?;
    let choice = run.choose_model()?;
    let mut samples = decode_to_pcm16k(input)?;
    progress(0.05);
    let audio = run.prepare_audio(&mut samples);
    let model = run.load_model(choice)?;
    progress(0.1);
    let langs = run.languages(&model.engine, &audio)?;
    let decoder = Decoder::new(&run, &model.engine, &audio, &langs.translation);
    let source_segments = decoder.pass(&langs.source, false, 0.0, &mut progress)?;
    let (final_segments, marian_model) =
        run.translate(&langs, &decoder, &source_segments, &mut progress)?;
    progress(0.95);
    let coverage = checks::check(&source_segments, &audio.speech, SAMPLE_RATE, audio.total_ms);
    let written = write_outputs(
        out_dir,
        &params.stem,
        &langs,
        &source_segments,
        &final_segments,
    )?;
    progress(1.0);
    let info = run.describe(&model, &audio, &langs, marian_model, coverage, written.cues);
    Ok(TranscriptionOutcome {
        vtt: written.vtt,
        source_sidecar: written.source_sidecar,
        files: written.files,
        info,
        text: written.plain,
    })
}

/// One transcription's inputs and settings, shared by its stages.
struct Run<'a> {
    params: &'a TranscriptionParams,
    models: &'a ModelPaths,
    opts: &'a RunOptions,
    started: Instant,
    /// Whether whisper.cpp will try the GPU: the model file and flash attention follow it.
    gpu: bool,
}

/// The decoded media, reduced to its speech, and the windows Whisper sees.
struct Audio {
    /// The samples Whisper sees: the speech only when the VAD runs, normalised if asked.
    samples: Vec<f32>,
    speech: Vec<vad::Span>,
    total_ms: i64,
    seconds: f64,
    /// The time budget's end, and the budget in seconds for the message.
    deadline: Option<(Instant, u64)>,
    windows: Vec<chunk::Chunk>,
}

/// The Whisper model chosen and loaded.
struct Model {
    choice: ModelChoice,
    engine: Engine,
    weights: PathBuf,
}

/// The spoken and subtitle languages, and how to get from one to the other.
struct Languages {
    detected: Option<String>,
    source: String,
    target: String,
    translation: Translation,
}

/// What [`write_outputs`] wrote.
struct Written {
    vtt: PathBuf,
    source_sidecar: Option<PathBuf>,
    files: Vec<PathBuf>,
    cues: usize,
    plain: String,
}

impl<'a> Run<'a> {
    fn new(
        params: &'a TranscriptionParams,
        models: &'a ModelPaths,
        opts: &'a RunOptions,
    ) -> Result<Self, TranscribeError> {
        let started = Instant::now();
        if params.stem.is_empty() || params.stem.contains('/') {
            return Err(TranscribeError::InvalidParams(format!(
                "output stem {:?}",
                params.stem
            )));
        }
        Ok(Self {
            params,
            models,
            opts,
            started,
            gpu: opts.gpu && GPU_BACKEND_BUILT,
        })
    }

    /// q8_0 weights are for the CPU only.
    fn quantised_for(&self, gpu: bool) -> bool {
        self.opts.prefer_q8_0 && !gpu
    }

    fn installed(&self, name: &str) -> bool {
        self.models.whisper_model(name).is_file()
    }

    /// The requested model, or the one that replaces it (plan::choose_model).
    fn choose_model(&self) -> Result<ModelChoice, TranscribeError> {
        let (params, models) = (self.params, self.models);
        let quantised = self.quantised_for(self.gpu);
        plan::choose_model(
            params.model.as_deref(),
            &models.default_model,
            &params.source_language,
            |n| {
                self.installed(n)
                    || (quantised && self.installed(&format!("{n}{}", plan::Q8_0_SUFFIX)))
            },
        )
        .ok_or_else(|| {
            let name = params
                .model
                .clone()
                .unwrap_or_else(|| models.default_model.clone());
            TranscribeError::ModelMissing {
                path: models.whisper_model(&name),
                name,
            }
        })
    }

    /// The time budget, the VAD's speech spans, loudness normalisation, and the chunk plan.
    fn prepare_audio(&self, samples: &mut Vec<f32>) -> Audio {
        let opts = self.opts;
        let total_ms = samples.len() as i64 * 1000 / i64::from(SAMPLE_RATE);
        let seconds = total_ms as f64 / 1000.0;
        let limit = budget(self.params.duration_seconds.unwrap_or(seconds).max(seconds));
        let deadline = Some((self.started + limit, limit.as_secs()));
        let speech = if opts.vad {
            vad::detect(samples, &vad::VadConfig::default())
        } else if samples.is_empty() {
            Vec::new()
        } else {
            vec![vad::Span {
                start: 0,
                end: samples.len(),
            }]
        };
        if self.params.normalize {
            let gain = vad::normalisation_gain(samples, &speech, -23.0);
            samples.iter_mut().for_each(|s| *s *= gain);
        }
        let samples = if opts.vad {
            vad::keep_only(samples, &speech)
        } else {
            std::mem::take(samples)
        };
        let frame = (SAMPLE_RATE / 100 * 3) as usize; // 30 ms, the VAD's frame
        let levels = vad::frame_levels(&samples, frame);
        let cfg = ChunkConfig::seconds(SAMPLE_RATE, opts.window_seconds, 5.0, opts.overlap_seconds);
        let windows = chunk::plan(&speech, &cfg, &levels, frame);
        Audio {
            samples,
            speech,
            total_ms,
            seconds,
            deadline,
            windows,
        }
    }

    /// Loads the chosen model for the GPU if asked, else (or when there is no GPU after all)
    /// for the CPU.
    fn load_model(&self, choice: ModelChoice) -> Result<Model, TranscribeError> {
        let load = |gpu: bool| {
            let weights = self.models.whisper_model(&plan::weights_file(
                &choice.name,
                self.quantised_for(gpu),
                |n| self.installed(n),
            ));
            Engine::load(&weights, gpu, self.opts.flash_attn.unwrap_or(gpu)).map(|e| (e, weights))
        };
        let (mut engine, mut weights) = load(self.gpu)?;
        if let Backend::Cpu {
            gpu_fallback: Some(_),
        } = &engine.backend
        {
            // No GPU after all: the CPU's settings (q8_0 weights, no flash attention) are 1.5
            // to 3 times faster there than the GPU's. The reason stays for the report.
            let fallback = engine.backend.clone();
            (engine, weights) = load(false)?;
            engine.backend = fallback;
        }
        Ok(Model {
            choice,
            engine,
            weights,
        })
    }

    /// The spoken language (forced, or detected on the first window), the subtitles', and
    /// the translation between them.
    fn languages(&self, engine: &Engine, audio: &Audio) -> Result<Languages, TranscribeError> {
        let params = self.params;
        let detected = match (audio.windows.first(), params.source_language.as_str()) {
            (None, _) => None,
            (Some(_), _) if !engine.multilingual => Some("en".to_string()),
            (Some(w), "auto") => Some(
                engine.detect_language(&audio.samples[w.start..w.end], self.opts.decode.threads)?,
            ),
            (Some(_), forced) => Some(forced.to_string()),
        };
        let source = detected
            .clone()
            .unwrap_or_else(|| params.source_language.clone());
        let target = plan::final_language(&params.language, &source);
        let translation = if detected.is_some() && source != "auto" && target != "auto" {
            plan::choose_translation(&source, &target, |a, b| self.models.marian(a, b).is_some())
        } else {
            Translation::None
        };
        Ok(Languages {
            detected,
            source,
            target,
            translation,
        })
    }

    /// The subtitles' segments, from the source ones: the same, a second Whisper pass, or
    /// Marian on each segment; with the Marian model's name.
    fn translate(
        &self,
        langs: &Languages,
        decoder: &Decoder<'_>,
        source_segments: &[Segment],
        progress: &mut dyn FnMut(f32),
    ) -> Result<(Vec<Segment>, Option<String>), TranscribeError> {
        Ok(match &langs.translation {
            Translation::None => (source_segments.to_vec(), None),
            Translation::WhisperTranslate => {
                (decoder.pass(&langs.source, true, 1.0, progress)?, None)
            }
            Translation::WhisperRerun { to } => (decoder.pass(to, false, 1.0, progress)?, None),
            Translation::Local { from, to } => {
                let (dir, lib) = self.models.marian(from, to).ok_or_else(|| {
                    TranscribeError::InvalidParams("translation model vanished".into())
                })?;
                let mut marian = MarianTranslator::load(&dir, &lib, self.opts.decode.threads)?;
                let mut out = Vec::with_capacity(source_segments.len());
                for s in source_segments {
                    out.push(Segment {
                        text: marian.translate(&s.text)?,
                        ..s.clone()
                    });
                }
                (out, Some(model_dir_name(from, to)))
            }
        })
    }

    /// The report's facts about this run.
    fn describe(
        &self,
        model: &Model,
        audio: &Audio,
        langs: &Languages,
        marian_model: Option<String>,
        coverage: checks::Coverage,
        cues: usize,
    ) -> TranscriptionInfo {
        let (params, engine) = (self.params, &model.engine);
        let elapsed = self.started.elapsed().as_secs_f64();
        let (from, to) = match &langs.translation {
            Translation::None => (None, None),
            _ => (Some(langs.source.clone()), Some(langs.target.clone())),
        };
        let choice = &model.choice;
        TranscriptionInfo {
            whisper_model: choice.name.clone(),
            whisper_model_requested: params.model.clone(),
            whisper_model_fallback: choice.fallback_reason.is_some().then(|| choice.clone()),
            whisper_model_file: model
                .weights
                .file_name()
                .map_or_else(String::new, |f| f.to_string_lossy().into_owned()),
            hardware_profile: match &engine.backend {
                Backend::Gpu(_) => "gpu-cuda".into(),
                Backend::Cpu { .. } => "cpu".into(),
            },
            gpu_fallback: match &engine.backend {
                Backend::Cpu { .. } if self.opts.gpu && !self.gpu => {
                    Some("this build of whisper.cpp has no CUDA backend".into())
                }
                Backend::Cpu { gpu_fallback } => gpu_fallback.clone(),
                Backend::Gpu(_) => None,
            },
            whisper_cpu_build: crate::engine::cpu_build().into(),
            requested_subtitle_language: params.language.clone(),
            requested_source_language: params.source_language.clone(),
            detected_source_language: langs.detected.clone(),
            final_subtitle_language: (langs.target != "auto").then(|| langs.target.clone()),
            translation: TranslationInfo {
                backend: langs.translation.backend().into(),
                from,
                to,
                model: marian_model,
            },
            vtt_internal_gaps: InternalGaps::from(&coverage),
            coverage,
            audio_duration_seconds: audio.seconds,
            speech_seconds: audio.speech.iter().map(|s| s.len()).sum::<usize>() as f64
                / f64::from(SAMPLE_RATE),
            cues,
            windows: audio.windows.len(),
            processing_seconds: elapsed,
            realtime_factor: if audio.seconds > 0.0 {
                elapsed / audio.seconds
            } else {
                0.0
            },
            normalized: params.normalize,
        }
    }
}

/// Whisper passes over every window of the audio.
struct Decoder<'a> {
    engine: &'a Engine,
    audio: &'a Audio,
    opts: &'a RunOptions,
    /// Whisper passes in the whole run: progress is shared between them.
    passes: f32,
}

impl<'a> Decoder<'a> {
    fn new(run: &Run<'a>, engine: &'a Engine, audio: &'a Audio, translation: &Translation) -> Self {
        // A second Whisper pass doubles the work.
        let second = matches!(
            translation,
            Translation::WhisperTranslate | Translation::WhisperRerun { .. }
        );
        Self {
            engine,
            audio,
            opts: run.opts,
            passes: if second { 2.0 } else { 1.0 },
        }
    }

    /// Pass number `pass` (from 0) in `language`, or into English if `translate`: the
    /// windows' segments on the media's clock, merged, with repetition loops repaired.
    fn pass(
        &self,
        language: &str,
        translate: bool,
        pass: f32,
        progress: &mut dyn FnMut(f32),
    ) -> Result<Vec<Segment>, TranscribeError> {
        let audio = self.audio;
        let windows = &audio.windows;
        let mut per_window = Vec::with_capacity(windows.len());
        for (i, w) in windows.iter().enumerate() {
            let mut segs = self.engine.transcribe(
                &audio.samples[w.start..w.end],
                language,
                translate,
                &self.opts.decode,
                audio.deadline,
            )?;
            let offset = w.start as i64 * 1000 / i64::from(SAMPLE_RATE);
            for s in &mut segs {
                s.start_ms += offset;
                s.end_ms += offset;
            }
            per_window.push((*w, segs));
            progress(0.1 + 0.8 * (pass + (i + 1) as f32 / windows.len() as f32) / self.passes);
        }
        Ok(repair_repetitions(chunk::merge(
            &per_window,
            SAMPLE_RATE,
            audio.total_ms,
        )))
    }
}

/// Whisper's repetition loops, collapsed (with a warning: they mean the decoder derailed).
fn repair_repetitions(segments: Vec<Segment>) -> Vec<Segment> {
    let (segments, repaired) = repetition::repair(segments);
    if repaired > 0 {
        tracing::warn!(repaired, "repaired repetition loops in Whisper's output");
    }
    segments
}

/// Writes the subtitles, and beside them the source-language ones when they were translated.
fn write_outputs(
    out_dir: &Path,
    stem: &str,
    langs: &Languages,
    source_segments: &[Segment],
    final_segments: &[Segment],
) -> Result<Written, TranscribeError> {
    let (text, cues, plain) = render_checked(final_segments)?;
    std::fs::create_dir_all(out_dir).map_err(|e| TranscribeError::Output {
        path: out_dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    let vtt = out_dir.join(format!("{stem}.vtt"));
    write_atomic(&vtt, &text)?;
    let mut files = vec![vtt.clone()];
    let source_sidecar = if langs.translation == Translation::None {
        None
    } else {
        let (source_text, _, _) = render_checked(source_segments)?;
        // Not `.vtt`: Esup-Pod imports every .vtt it is given, and this one is not the subtitle.
        let path = out_dir.join(format!("{stem}.source-{}.webvtt.txt", langs.source));
        write_atomic(&path, &source_text)?;
        files.push(path.clone());
        Some(path)
    };
    Ok(Written {
        vtt,
        source_sidecar,
        files,
        cues,
        plain,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_is_eight_times_the_duration_at_least_a_minute() {
        assert_eq!(budget(0.0), Duration::from_secs(60));
        assert_eq!(budget(600.0), Duration::from_secs(4800));
    }

    #[test]
    fn rendered_text_is_checked() {
        let segs = [Segment {
            start_ms: 0,
            end_ms: 1000,
            text: "Bonjour".into(),
        }];
        let (text, cues, plain) = render_checked(&segs).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (text.as_str(), cues, plain.as_str()),
            (
                "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nBonjour\n",
                1,
                "Bonjour"
            )
        );
        assert_eq!(
            render_checked(&[]).map(|r| r.0).ok().as_deref(),
            Some("WEBVTT\n")
        );
    }
}
