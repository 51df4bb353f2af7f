//! `esup-webhook health-check`: asks a running webhook for `GET /manager/health` with a
//! tenant's token, as Esup-Pod's "Test connection" does. The chart's `helm test` hook runs it
//! from the webhook image, so a platform team gets the same check in its own cluster.

use std::time::Duration;

use esup_api::wire::HealthBody;

/// Why the check failed. The category is the hook's log line prefix.
#[derive(Debug, thiserror::Error)]
pub enum HealthCheckError {
    #[error("invalid URL {0:?}: give the webhook's base URL, e.g. http://esup-webhook:8080")]
    InvalidUrl(String),
    #[error("no answer from {url}: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url} answered {status}: {body}")]
    Refused {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url} answered 200 without a healthy health document: {body}")]
    NotHealthy { url: String, body: String },
}

impl HealthCheckError {
    pub fn category(&self) -> &'static str {
        match self {
            Self::InvalidUrl(_) => "InvalidUrl",
            Self::Unreachable { .. } => "Unreachable",
            Self::Refused { .. } => "Refused",
            Self::NotHealthy { .. } => "NotHealthy",
        }
    }
}

/// The health document of the webhook at `base`, fetched with `token`.
pub async fn check(
    base: &str,
    token: &str,
    timeout: Duration,
) -> Result<HealthBody, HealthCheckError> {
    let base = base.trim_end_matches('/');
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(HealthCheckError::InvalidUrl(base.to_owned()));
    }
    // reqwest is built without a TLS provider of its own: name ring, as kube does (a no-op
    // when the process already installed it).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = format!("{base}/manager/health");
    let unreachable = |source| HealthCheckError::Unreachable {
        url: url.clone(),
        source,
    };
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(unreachable)?;
    let response = client
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .map_err(unreachable)?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(unreachable)?;
    let shown = esup_api::truncate_chars(body.trim(), 300);
    if status != 200 {
        return Err(HealthCheckError::Refused {
            url,
            status,
            body: shown,
        });
    }
    match serde_json::from_str::<HealthBody>(&body) {
        Ok(health) if health.status == "healthy" => Ok(health),
        _ => Err(HealthCheckError::NotHealthy { url, body: shown }),
    }
}
