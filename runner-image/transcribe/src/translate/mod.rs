//! fr↔en translation of subtitle text with Marian (Helsinki-NLP opus-mt) models exported to
//! ONNX, run by ONNX Runtime loaded at run time (`ort`, `load-dynamic`).

mod marian;
mod runtime;
mod vocab;

use std::path::PathBuf;

pub use marian::MarianTranslator;
pub use runtime::ort_environment;
pub use vocab::{MarianConfig, Vocab};

#[derive(Debug, thiserror::Error)]
pub enum TranslateError {
    #[error(
        "ONNX Runtime library not found at {0} (install it with runner-image/transcribe/install-onnxruntime)"
    )]
    RuntimeMissing(PathBuf),
    #[error("cannot load ONNX Runtime: {0}")]
    RuntimeLoad(String),
    #[error("translation model incomplete: {0}")]
    ModelMissing(String),
    #[error("translation model invalid: {0}")]
    ModelInvalid(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("inference: {0}")]
    Inference(String),
}

impl TranslateError {
    pub fn category(&self) -> &'static str {
        match self {
            Self::RuntimeMissing(_) => "OnnxRuntimeMissing",
            Self::RuntimeLoad(_) => "OnnxRuntimeLoadFailed",
            Self::ModelMissing(_) => "TranslationModelMissing",
            Self::ModelInvalid(_) => "TranslationModelInvalid",
            Self::Tokenizer(_) => "TokenizerFailed",
            Self::Inference(_) => "TranslationFailed",
        }
    }
}

/// The directory name of the model translating `from` into `to`, e.g. `opus-mt-fr-en`.
pub fn model_dir_name(from: &str, to: &str) -> String {
    format!("opus-mt-{from}-{to}")
}
