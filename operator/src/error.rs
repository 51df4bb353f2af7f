//! Errors of the operator's I/O layer. Each has a stable category: the `reason` of the Event
//! that reports it and the `category` label of `esup_runner_operator_reconcile_errors_total`.

use esup_kube_common::error::KubeError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A failed API request; a conflict is retried from fresh state.
    #[error(transparent)]
    Kube(#[from] KubeError),
    #[error("cannot serialize {what}: {source}")]
    Serialize {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot draw a callback token from the system's random source: {0}")]
    Random(String),
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl Error {
    /// Stable, low-cardinality category: metric label and Event reason.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Kube(e) => e.category(),
            Self::Serialize { .. } => "SerializationError",
            Self::Random(_) => "RandomSourceError",
            Self::Config(_) => "ConfigError",
        }
    }

    /// Wraps a client error, recognising write conflicts (HTTP 409), which are expected
    /// under concurrent writers and retried from fresh state.
    pub fn api(verb: &'static str, what: impl Into<String>, source: kube::Error) -> Self {
        KubeError::new(verb, what, source).into()
    }

    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Kube(e) if e.is_conflict())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
