//! Errors of the runner, each with a category (Event reason, metric label) and the exit code
//! of the runner contract (`esup_api::runner::exit_code`).

use esup_api::runner::exit_code;

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// Bad command line, spec or parameters.
    #[error("{0}")]
    Usage(String),
    /// The media or the request is unusable: never retried.
    #[error("{message}")]
    InvalidInput {
        category: &'static str,
        message: String,
    },
    /// Source or webhook unreachable, disk full: may pass on another attempt.
    #[error("{message}")]
    Transient {
        category: &'static str,
        message: String,
    },
    /// Processing failed on a source that probed fine.
    #[error("Encoding failed: {0}")]
    Encoding(String),
}

impl RunnerError {
    pub fn invalid_input(category: &'static str, message: impl Into<String>) -> Self {
        Self::InvalidInput {
            category,
            message: message.into(),
        }
    }

    pub fn transient(category: &'static str, message: impl Into<String>) -> Self {
        Self::Transient {
            category,
            message: message.into(),
        }
    }

    pub fn encoding(context: &str, e: impl std::fmt::Display) -> Self {
        Self::Encoding(format!("{context}: {e}"))
    }

    pub fn category(&self) -> &'static str {
        match self {
            Self::Usage(_) => "InvalidParameters",
            Self::InvalidInput { category, .. } | Self::Transient { category, .. } => category,
            Self::Encoding(_) => "EncodingFailed",
        }
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Usage(_) => exit_code::USAGE,
            Self::InvalidInput { .. } => exit_code::INVALID_INPUT,
            // An encoding failure on a source that probed fine may be the node's (memory,
            // disk): the operator's retry policy decides.
            Self::Transient { .. } | Self::Encoding(_) => exit_code::TRANSIENT,
        }
    }

    /// Whether Esup-Pod should be told now (a final failure), rather than the attempt retried.
    pub fn is_final(&self) -> bool {
        exit_code::is_invalid_input(self.exit_code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_contract() {
        assert_eq!(RunnerError::Usage("x".into()).exit_code(), 64);
        let bad = RunnerError::invalid_input("NotMedia", "not a media file");
        assert_eq!(
            (bad.exit_code(), bad.category(), bad.is_final()),
            (65, "NotMedia", true)
        );
        let t = RunnerError::transient("DownloadFailed", "boom");
        assert_eq!((t.exit_code(), t.is_final()), (75, false));
        assert_eq!(
            RunnerError::encoding("mux", "eof").to_string(),
            "Encoding failed: mux: eof"
        );
    }
}
