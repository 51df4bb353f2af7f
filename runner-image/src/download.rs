//! Getting the source: a local file, or an http(s) URL downloaded with a size bound, retries
//! with backoff (protocol §3.0: 5 attempts, 2 s × 2^n capped at 30 s; 12 when the server
//! answers an empty HTML placeholder) and a free-space check.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::error::RunnerError;

pub struct DownloadPolicy {
    pub max_bytes: u64,
    pub attempts: u32,
    pub placeholder_attempts: u32,
    /// First backoff delay; doubles each attempt, capped at 30 s.
    pub base_delay: Duration,
}

/// Delay before attempt `n` (1-based retry number).
pub fn backoff(base: Duration, retry: u32) -> Duration {
    let factor = 2u32.saturating_pow(retry.saturating_sub(1));
    base.saturating_mul(factor).min(Duration::from_secs(30))
}

/// Whether `available` bytes are enough for a source of `size` bytes: the source plus
/// outputs, which stay well under the source's size at Esup-Pod bitrates; twice is a margin.
pub fn enough_space(size: u64, available: u64) -> bool {
    available >= size.saturating_mul(2)
}

fn available_space(dir: &Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(dir).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

fn too_large(size: u64, max: u64) -> RunnerError {
    RunnerError::invalid_input(
        "SourceTooLarge",
        format!("the source is {size} bytes, more than the limit of {max}"),
    )
}

fn check_space(dir: &Path, size: u64) -> Result<(), RunnerError> {
    match available_space(dir) {
        Some(avail) if !enough_space(size, avail) => Err(RunnerError::transient(
            "DiskFull",
            format!(
                "{avail} bytes free in {}, {size} bytes of source",
                dir.display()
            ),
        )),
        _ => Ok(()),
    }
}

/// Returns the local path of the source.
pub async fn fetch(
    source: &str,
    work: &Path,
    file_name: &str,
    policy: &DownloadPolicy,
) -> Result<PathBuf, RunnerError> {
    if !(source.starts_with("http://") || source.starts_with("https://")) {
        let path = PathBuf::from(source.strip_prefix("file://").unwrap_or(source));
        let meta = tokio::fs::metadata(&path).await.map_err(|e| {
            RunnerError::invalid_input("SourceNotFound", format!("{}: {e}", path.display()))
        })?;
        if meta.len() > policy.max_bytes {
            return Err(too_large(meta.len(), policy.max_bytes));
        }
        check_space(work, meta.len())?;
        return Ok(path);
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| RunnerError::transient("DownloadFailed", e.to_string()))?;
    let target = work.join(file_name);
    let mut attempt = 0;
    let last_error = loop {
        attempt += 1;
        match try_once(&client, source, &target, work, policy).await {
            Ok(()) => return Ok(target),
            Err(Attempt::Final(e)) => return Err(e),
            Err(Attempt::Retry {
                message,
                placeholder,
            }) => {
                let limit = if placeholder {
                    policy.placeholder_attempts
                } else {
                    policy.attempts
                };
                tracing::warn!(attempt, %message, "download failed");
                if attempt >= limit {
                    break message;
                }
                tokio::time::sleep(backoff(policy.base_delay, attempt)).await;
            }
        }
    };
    Err(RunnerError::transient(
        "DownloadFailed",
        format!("cannot download the source after {attempt} attempts: {last_error}"),
    ))
}

enum Attempt {
    Final(RunnerError),
    Retry { message: String, placeholder: bool },
}

async fn try_once(
    client: &reqwest::Client,
    url: &str,
    target: &Path,
    work: &Path,
    policy: &DownloadPolicy,
) -> Result<(), Attempt> {
    let retry = |message: String| Attempt::Retry {
        message,
        placeholder: false,
    };
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| retry(e.to_string()))?;
    let status = response.status();
    if status.is_client_error() && status.as_u16() != 408 && status.as_u16() != 429 {
        return Err(Attempt::Final(RunnerError::invalid_input(
            "SourceNotFound",
            format!("the source URL answered {status}"),
        )));
    }
    if !status.is_success() {
        return Err(retry(format!("the source URL answered {status}")));
    }
    let html = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if let Some(len) = response.content_length() {
        if len > policy.max_bytes {
            return Err(Attempt::Final(too_large(len, policy.max_bytes)));
        }
        check_space(work, len).map_err(Attempt::Final)?;
    }
    let io = |e: std::io::Error| {
        Attempt::Final(RunnerError::transient("DiskWriteFailed", e.to_string()))
    };
    let mut file = tokio::fs::File::create(target).await.map_err(io)?;
    let mut received: u64 = 0;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| retry(e.to_string()))?;
        received += chunk.len() as u64;
        if received > policy.max_bytes {
            drop(file);
            tokio::fs::remove_file(target).await.ok();
            return Err(Attempt::Final(too_large(received, policy.max_bytes)));
        }
        file.write_all(&chunk).await.map_err(io)?;
    }
    file.flush().await.map_err(io)?;
    if received == 0 || (html && received < 1024) {
        // Esup-Pod may answer an empty HTML page while the file is still being written.
        return Err(Attempt::Retry {
            message: "empty or placeholder answer".into(),
            placeholder: true,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let base = Duration::from_secs(2);
        assert_eq!(backoff(base, 1), Duration::from_secs(2));
        assert_eq!(backoff(base, 2), Duration::from_secs(4));
        assert_eq!(backoff(base, 4), Duration::from_secs(16));
        assert_eq!(backoff(base, 5), Duration::from_secs(30));
        assert_eq!(backoff(base, 40), Duration::from_secs(30));
    }

    #[test]
    fn space_margin() {
        assert!(enough_space(100, 200));
        assert!(!enough_space(100, 199));
        assert!(enough_space(0, 0));
    }
}
