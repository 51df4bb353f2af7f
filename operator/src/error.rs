//! Errors of the operator's I/O layer. Each has a stable category: the `reason` of the Event
//! that reports it and the `category` label of `esup_reconcile_errors_total`.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API request failed ({verb} {what}): {source}")]
    Api {
        verb: &'static str,
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("another writer changed {what} first; retrying with fresh state")]
    Conflict { what: String },
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
            Self::Api { .. } => "ApiError",
            Self::Conflict { .. } => "Conflict",
            Self::Serialize { .. } => "SerializationError",
            Self::Random(_) => "RandomSourceError",
            Self::Config(_) => "ConfigError",
        }
    }

    /// Wraps a client error, recognising write conflicts (HTTP 409), which are expected
    /// under concurrent writers and retried from fresh state.
    pub fn api(verb: &'static str, what: impl Into<String>, source: kube::Error) -> Self {
        let what = what.into();
        match &source {
            kube::Error::Api(status) if status.code == 409 => Self::Conflict { what },
            _ => Self::Api { verb, what, source },
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
