//! What a transcription returns: the files for the manifest and the `transcription` block of
//! `info_video.json` (the reference runner's keys, plus what we measured).

use std::path::PathBuf;

use serde::Serialize;

use crate::checks::{Coverage, GAP_ALERT_S};
use crate::plan::ModelChoice;

#[derive(Debug, Clone, Serialize)]
pub struct TranslationInfo {
    /// none | local_translation | whisper_translate | whisper_legacy_fallback
    pub backend: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InternalGaps {
    pub count: usize,
    pub threshold_seconds: f64,
    pub gaps: Vec<crate::checks::Gap>,
}

impl InternalGaps {
    pub fn from(coverage: &Coverage) -> Self {
        Self {
            count: coverage.internal_gaps.len(),
            threshold_seconds: GAP_ALERT_S,
            gaps: coverage.internal_gaps.clone(),
        }
    }
}

/// The `transcription` object of `info_video.json`.
#[derive(Debug, Clone, Serialize)]
pub struct TranscriptionInfo {
    pub whisper_model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub whisper_model_requested: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub whisper_model_fallback: Option<ModelChoice>,
    /// The weights loaded, e.g. `ggml-base-q8_0.bin` (the q8_0 variant on a CPU).
    pub whisper_model_file: String,
    /// "cpu" or "gpu-cuda": where whisper.cpp ran, as it said while loading the model.
    pub hardware_profile: String,
    /// Why whisper.cpp runs on the CPU although the runner found a GPU (a build without CUDA, a
    /// driver older than the CUDA runtime, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_fallback: Option<String>,
    /// The SIMD level whisper.cpp was built for: `x86-64-v4` (AVX-512) or `x86-64-v3`.
    pub whisper_cpu_build: String,
    pub requested_subtitle_language: String,
    pub requested_source_language: String,
    /// None when there was no speech to detect a language from.
    pub detected_source_language: Option<String>,
    pub final_subtitle_language: Option<String>,
    pub translation: TranslationInfo,
    pub vtt_internal_gaps: InternalGaps,
    pub coverage: Coverage,
    pub audio_duration_seconds: f64,
    pub speech_seconds: f64,
    pub cues: usize,
    pub windows: usize,
    pub processing_seconds: f64,
    /// processing time / audio duration.
    pub realtime_factor: f64,
    pub normalized: bool,
}

#[derive(Debug, Clone)]
pub struct TranscriptionOutcome {
    /// `<stem>.vtt`: the subtitles Esup-Pod imports.
    pub vtt: PathBuf,
    /// `<stem>.source-<lang>.webvtt.txt` after a translation.
    pub source_sidecar: Option<PathBuf>,
    /// Every file written, for the manifest (exactly one ends in `.vtt`).
    pub files: Vec<PathBuf>,
    pub info: TranscriptionInfo,
    /// The final text, cue by cue (for logs and tests).
    pub text: String,
}
