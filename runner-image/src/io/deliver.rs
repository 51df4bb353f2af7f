//! Delivery to the webhook's runner callbacks (`$ESUP_CALLBACK_URL`, bearer
//! `$ESUP_CALLBACK_TOKEN`): `POST progress`, `PUT files/<path>` for each output, then
//! `POST completion` with the manifest (sha256 and size of every file).

use std::path::{Path, PathBuf};
use std::time::Duration;

use esup_api::runner::{Completion, ProgressReport, ResultFileEntry, TaskCallbacks};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use crate::error::RunnerError;

/// Every regular file under `out`, as `/`-separated relative paths; `_gap_repairs/` is
/// skipped as the reference runner skips it. Sorted, with `info_video.json` and
/// `encoding.log` first so that a reader of the manifest finds them at once.
pub fn list_outputs(out: &Path) -> std::io::Result<Vec<String>> {
    fn walk(dir: &Path, prefix: &str, acc: &mut Vec<String>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let kind = entry.file_type()?;
            let rel = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            if kind.is_dir() {
                if name != "_gap_repairs" {
                    walk(&entry.path(), &rel, acc)?;
                }
            } else if kind.is_file() {
                acc.push(rel);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(out, "", &mut files)?;
    files.sort_by_key(|f| {
        (
            f != crate::naming::INFO_JSON,
            f != crate::naming::ENCODING_LOG,
            f.clone(),
        )
    });
    Ok(files)
}

pub async fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    let hex = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((hex, size))
}

pub struct Callback {
    urls: TaskCallbacks,
    token: String,
    client: reqwest::Client,
}

/// Backoff 0.5 s doubling to 30 s: about a minute in all, long enough for a webhook pod to be
/// replaced (a rollout, a crash) without failing the task and encoding it all again.
const ATTEMPTS: u32 = 8;

/// Whether a webhook answer may pass on a later try. Besides 5xx: 408 and 429 (a busy or
/// rate-limiting webhook), 425, and 404, which a replica whose task cache lags behind the
/// task's creation answers for a task that exists. Failing the task on one of these would
/// throw its whole encode away.
pub fn retry_answer(status: u16) -> bool {
    matches!(status, 404 | 408 | 425 | 429) || (500..600).contains(&status)
}

/// The wait a `Retry-After` header asks for, in seconds, capped at the backoff's cap.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds.min(30)))
}

fn transient(e: impl std::fmt::Display) -> RunnerError {
    RunnerError::transient("WebhookUnreachable", e.to_string())
}

impl Callback {
    pub fn new(base: &str, token: &str) -> Result<Self, RunnerError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(transient)?;
        Ok(Self {
            urls: TaskCallbacks::from_base(base),
            token: token.to_owned(),
            client,
        })
    }

    /// Best effort: a lost progress report only delays the status.
    pub async fn progress(&self, report: &ProgressReport) {
        let result = self
            .client
            .post(self.urls.progress())
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(10))
            .json(report)
            .send()
            .await;
        if let Err(e) = result.and_then(|r| r.error_for_status()) {
            tracing::warn!(error = %e, "progress report not delivered");
        }
    }

    /// Sends with retries on connection errors and transient answers ([`retry_answer`]);
    /// any other 4xx is final.
    async fn send(
        &self,
        build: impl Fn() -> Result<reqwest::RequestBuilder, RunnerError>,
    ) -> Result<reqwest::Response, RunnerError> {
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            let mut delay = crate::io::download::backoff(Duration::from_millis(500), attempt);
            match build()?.bearer_auth(&self.token).send().await {
                Ok(r) if r.status().is_success() => return Ok(r),
                Ok(r) if !retry_answer(r.status().as_u16()) => {
                    let status = r.status();
                    let body = r.text().await.unwrap_or_default();
                    return Err(RunnerError::invalid_input(
                        "WebhookRefused",
                        format!("webhook answered {status}: {body}"),
                    ));
                }
                Ok(r) => {
                    if let Some(asked) = retry_after(r.headers()) {
                        delay = delay.max(asked);
                    }
                    last = format!("webhook answered {}", r.status());
                }
                Err(e) => last = e.to_string(),
            }
            tracing::warn!(attempt, error = %last, "webhook call failed");
            if attempt < ATTEMPTS {
                tokio::time::sleep(delay).await;
            }
        }
        Err(transient(last))
    }

    /// Uploads one output and returns its manifest entry.
    pub async fn upload(&self, out: &Path, rel: &str) -> Result<ResultFileEntry, RunnerError> {
        let path: PathBuf = out.join(rel);
        let (sha256, size_bytes) = sha256_file(&path)
            .await
            .map_err(|e| RunnerError::transient("DiskReadFailed", format!("{rel}: {e}")))?;
        let url = self.urls.file(rel);
        self.send(|| {
            let path = path.clone();
            let url = url.clone();
            Ok(self
                .client
                .put(url)
                .body(reqwest::Body::wrap_stream(file_stream(path))))
        })
        .await?;
        Ok(ResultFileEntry {
            path: rel.to_owned(),
            sha256,
            size_bytes,
        })
    }

    pub async fn complete(&self, completion: &Completion) -> Result<(), RunnerError> {
        let url = self.urls.completion();
        self.send(|| Ok(self.client.post(url.clone()).json(completion)))
            .await
            .map(|_| ())
    }
}

/// The file as a stream of chunks, opened lazily so that a retried request reads it again.
fn file_stream(path: PathBuf) -> impl futures::Stream<Item = std::io::Result<bytes::Bytes>> {
    futures::stream::once(async move { tokio::fs::File::open(path).await })
        .map_ok(|file| tokio_util::io::ReaderStream::with_capacity(file, 1 << 20))
        .try_flatten()
}

use futures::TryStreamExt;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_answers_are_retried_and_refusals_are_final() {
        for status in [404, 408, 425, 429, 500, 502, 503, 504] {
            assert!(retry_answer(status), "{status}");
        }
        for status in [400, 401, 403, 409, 413, 422] {
            assert!(!retry_answer(status), "{status}");
        }
    }

    #[test]
    fn outputs_are_listed_recursively() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["b.ts", "info_video.json", "encoding.log", "a.png"] {
            std::fs::write(dir.path().join(f), "x").unwrap();
        }
        std::fs::create_dir_all(dir.path().join("_gap_repairs")).unwrap();
        std::fs::write(dir.path().join("_gap_repairs/x"), "x").unwrap();
        std::fs::create_dir_all(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/c.vtt"), "x").unwrap();
        assert_eq!(
            list_outputs(dir.path()).unwrap(),
            [
                "info_video.json",
                "encoding.log",
                "a.png",
                "b.ts",
                "sub/c.vtt"
            ]
        );
    }
}
