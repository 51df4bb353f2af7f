//! Transcription for the esup-runner (Esup-Pod protocol §3.3): any media file → 16 kHz audio
//! (libav) → voice activity → Whisper windows (whisper.cpp) → one monotonic timeline → WebVTT
//! (2 × 40 characters per cue), translated fr↔en by Marian on ONNX Runtime when asked.
//!
//! [`transcribe`] writes `<stem>.vtt` (the one `.vtt` Esup-Pod imports) and, after a
//! translation, the source-language sidecar `<stem>.source-<lang>.webvtt.txt`; it returns the
//! `transcription` block of `info_video.json` and the files for the manifest.

pub mod audio;
pub mod checks;
pub mod chunk;
pub mod engine;
mod error;
mod outcome;
pub mod plan;
pub mod repetition;
mod run;
pub mod shared_log;
pub mod translate;
pub mod vad;
pub mod vtt;
pub mod wer;

pub use engine::DecodeOptions;
pub use error::TranscribeError;
pub use outcome::{TranscriptionInfo, TranscriptionOutcome, TranslationInfo};
pub use run::{ModelPaths, RunOptions, TranscriptionParams, transcribe};
