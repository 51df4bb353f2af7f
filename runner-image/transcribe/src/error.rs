//! Errors of a transcription, each with a stable category (Event reason, metric label).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TranscribeError {
    #[error("invalid transcription parameters: {0}")]
    InvalidParams(String),
    #[error("cannot read {path}: {reason}")]
    InputUnreadable { path: PathBuf, reason: String },
    #[error("input {path} has no audio stream (is it a media file?)")]
    NoAudio { path: PathBuf },
    #[error("audio decoding failed: {0}")]
    Decode(String),
    #[error("whisper model {name} not found (looked for {path})")]
    ModelMissing { name: String, path: PathBuf },
    #[error("whisper failed: {0}")]
    Whisper(String),
    #[error("transcription took longer than its budget of {seconds} s")]
    Timeout { seconds: u64 },
    #[error("translation failed: {0}")]
    Translation(#[from] crate::translate::TranslateError),
    #[error("cannot write {path}: {reason}")]
    Output { path: PathBuf, reason: String },
}

impl TranscribeError {
    /// Stable label for Kubernetes Events and metrics.
    pub fn category(&self) -> &'static str {
        match self {
            Self::InvalidParams(_) => "InvalidParameters",
            Self::InputUnreadable { .. } => "InputUnreadable",
            Self::NoAudio { .. } => "NoAudioStream",
            Self::Decode(_) => "AudioDecodeFailed",
            Self::ModelMissing { .. } => "ModelMissing",
            Self::Whisper(_) => "WhisperFailed",
            Self::Timeout { .. } => "Timeout",
            Self::Translation(e) => e.category(),
            Self::Output { .. } => "OutputWriteFailed",
        }
    }
}
