//! A failed Kubernetes API request, as every component reports it: what was being done, to
//! what, and whether another writer simply got there first.

/// A failed API request. A `409 Conflict` is its own case: another writer moved the object
/// first, which concurrent writers expect and answer by reading it again, so it is logged
/// quietly and counted apart from real failures.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("Kubernetes API request failed ({verb} {what}): {source}")]
    Api {
        verb: &'static str,
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("another writer changed {what} first")]
    Conflict { what: String },
}

impl KubeError {
    /// Wraps a client error from `verb` on `what`, recognising a conflict (HTTP 409).
    pub fn new(verb: &'static str, what: impl Into<String>, source: kube::Error) -> Self {
        let what = what.into();
        match &source {
            kube::Error::Api(status) if status.code == 409 => Self::Conflict { what },
            _ => Self::Api { verb, what, source },
        }
    }

    /// Stable, low-cardinality category: metric label and Event reason.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Api { .. } => "ApiError",
            Self::Conflict { .. } => "Conflict",
        }
    }

    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure("refused", "Reason")
                .with_code(code)
                .boxed(),
        )
    }

    #[test]
    fn a_409_is_a_conflict_and_anything_else_an_api_failure() {
        let conflict = KubeError::new("patch", "Lease esup/x", status(409));
        assert!(conflict.is_conflict());
        assert_eq!(conflict.category(), "Conflict");
        assert_eq!(
            conflict.to_string(),
            "another writer changed Lease esup/x first"
        );
        let failure = KubeError::new("patch", "Lease esup/x", status(500));
        assert!(!failure.is_conflict());
        assert_eq!(failure.category(), "ApiError");
        assert!(
            failure
                .to_string()
                .starts_with("Kubernetes API request failed (patch Lease esup/x)")
        );
    }
}
