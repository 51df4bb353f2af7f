//! Getting the source: a local file, or an http(s) URL downloaded with a size bound, retries
//! with backoff (protocol §3.0: 5 attempts, 2 s × 2^n capped at 30 s; 12 when the server
//! answers an empty HTML placeholder) and a free-space check.
//!
//! Every http(s) fetch goes through the URL policy (`esup_api::url_policy`), as the webhook
//! applied it at submission: the URL's syntax and host first (an IP literal is judged there,
//! since the client never resolves it), then the client's resolver looks the name up once,
//! checks every address and hands the client only those, so the connection goes where the
//! check looked. Redirects are followed here, not by the client, each hop checked again. A
//! refusal is final (exit 65), never retried.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use esup_api::url_policy::{UrlPolicy, UrlRefusal};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::error::RunnerError;

/// Redirects followed at most for one fetch (reqwest's and browsers' default).
pub const MAX_REDIRECTS: usize = 10;

/// A name lookup: the host's addresses. The system's resolver in the runner; tests inject
/// their own to make a name resolve to a chosen address without DNS.
pub type Lookup = Arc<
    dyn Fn(String) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>>
        + Send
        + Sync,
>;

/// The system's resolver (getaddrinfo through tokio).
pub fn system_lookup() -> Lookup {
    Arc::new(|host: String| {
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .map(|a| a.ip())
                .collect())
        })
    })
}

#[derive(Clone)]
pub struct DownloadPolicy {
    pub max_bytes: u64,
    pub attempts: u32,
    pub placeholder_attempts: u32,
    /// First backoff delay; doubles each attempt, capped at 30 s.
    pub base_delay: Duration,
    /// What URLs may be fetched (the webhook's policy, passed by the operator).
    pub urls: Arc<UrlPolicy>,
    pub lookup: Lookup,
}

/// The client's resolver: looks the name up, then lets through only addresses the policy
/// accepts for that host; one refused address refuses the name, as at the webhook.
struct CheckedResolver {
    policy: Arc<UrlPolicy>,
    lookup: Lookup,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let lookup = self.lookup.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = checked_addresses(&policy, &lookup, &host).await?;
            let addrs: reqwest::dns::Addrs =
                Box::new(addrs.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// `host`'s addresses, each accepted by the policy. Refusals name the host.
async fn checked_addresses(
    policy: &UrlPolicy,
    lookup: &Lookup,
    host: &str,
) -> Result<Vec<IpAddr>, UrlRefusal> {
    // The host's own rules (allow-list, private hosts) as for a URL naming it.
    let checked = policy.check_syntax(host, &format!("http://{host}/"))?;
    let addrs = lookup(host.to_owned())
        .await
        .map_err(|_| UrlRefusal::Unresolvable(host.to_owned()))?;
    policy.check_resolved(host, &checked, &addrs)?;
    Ok(addrs)
}

/// The policy's refusal behind a client error, if the resolver refused the name.
fn refusal_of(e: &reqwest::Error) -> Option<&UrlRefusal> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(refusal) = err.downcast_ref::<UrlRefusal>() {
            return Some(refusal);
        }
        source = err.source();
    }
    None
}

/// Categories of a URL the policy refused (the webhook's own) or whose redirects never end:
/// callers that relabel a file's problems keep these.
pub const URL_REFUSALS: [&str; 4] = [
    "InvalidUrl",
    "HostNotAllowed",
    "PrivateAddress",
    "TooManyRedirects",
];

/// Whether `e` is a URL the policy refused.
pub fn is_url_refusal(e: &RunnerError) -> bool {
    matches!(e, RunnerError::InvalidInput { category, .. } if URL_REFUSALS.contains(category))
}

/// A refused URL: final, under the refusal's category (the webhook's too), naming the field.
fn refused(field: &str, url: &str, refusal: &UrlRefusal) -> RunnerError {
    RunnerError::invalid_input(
        refusal.category(),
        format!("{field} {url} is refused by the URL policy: {refusal}"),
    )
}

/// The client of every fetch: the checking resolver, no proxy (a proxy would resolve and
/// connect on its own), no automatic redirects (each hop is checked in [`send_checked`]).
fn client(policy: &DownloadPolicy) -> Result<reqwest::Client, RunnerError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(60))
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(CheckedResolver {
            policy: policy.urls.clone(),
            lookup: policy.lookup.clone(),
        }))
        .build()
        .map_err(|e| RunnerError::transient("DownloadFailed", e.to_string()))
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

/// Returns the local path of the file at `source` (`field` names it in refusals:
/// `source_url`, `dressing.watermark`, ...).
pub async fn fetch(
    field: &str,
    source: &str,
    work: &Path,
    file_name: &str,
    policy: &DownloadPolicy,
) -> Result<PathBuf, RunnerError> {
    if !crate::naming::is_http_url(source) {
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
    let client = client(policy)?;
    let target = work.join(file_name);
    let mut attempt = 0;
    let last_error = loop {
        attempt += 1;
        match try_once(&client, field, source, &target, work, policy).await {
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

/// GETs `url`, following redirects by hand: each hop's URL passes the policy's syntax and
/// host checks here, and its addresses in the client's resolver, before any connection.
async fn send_checked(
    client: &reqwest::Client,
    field: &str,
    url: &str,
    policy: &UrlPolicy,
) -> Result<reqwest::Response, Attempt> {
    let retry = |message: String| Attempt::Retry {
        message,
        placeholder: false,
    };
    let mut current = url.to_owned();
    for hop in 0..=MAX_REDIRECTS {
        let shown = if hop == 0 {
            url.to_owned()
        } else {
            format!("{url} (redirected to {current})")
        };
        policy
            .check_syntax("the URL", &current)
            .map_err(|r| Attempt::Final(refused(field, &shown, &r)))?;
        let response = match client.get(&current).send().await {
            Ok(r) => r,
            Err(e) => {
                return Err(match refusal_of(&e) {
                    // A lookup that failed may work on the next attempt.
                    Some(r @ UrlRefusal::Unresolvable(_)) => retry(format!("{shown}: {r}")),
                    Some(r) => Attempt::Final(refused(field, &shown, r)),
                    None => retry(e.to_string()),
                });
            }
        };
        let status = response.status();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok());
        match (status.as_u16(), location) {
            (301 | 302 | 303 | 307 | 308, Some(location)) => {
                let next = response.url().join(location).map_err(|e| {
                    Attempt::Final(RunnerError::invalid_input(
                        "InvalidUrl",
                        format!("{field} {shown} redirects to {location:?}: {e}"),
                    ))
                })?;
                current = next.into();
            }
            _ => return Ok(response),
        }
    }
    Err(Attempt::Final(RunnerError::invalid_input(
        "TooManyRedirects",
        format!("{field} {url}: more than {MAX_REDIRECTS} redirects"),
    )))
}

async fn try_once(
    client: &reqwest::Client,
    field: &str,
    url: &str,
    target: &Path,
    work: &Path,
    policy: &DownloadPolicy,
) -> Result<(), Attempt> {
    let retry = |message: String| Attempt::Retry {
        message,
        placeholder: false,
    };
    let response = send_checked(client, field, url, &policy.urls).await?;
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

    fn lookup_to(ip: &'static str) -> Lookup {
        Arc::new(move |_host: String| {
            Box::pin(async move { Ok(vec![ip.parse().expect("address")]) })
        })
    }

    #[tokio::test]
    async fn the_resolver_passes_only_accepted_addresses() {
        let open = UrlPolicy::default();
        let to_private = lookup_to("10.0.0.1");
        assert_eq!(
            checked_addresses(&open, &to_private, "media.example.test").await,
            Err(UrlRefusal::Private("media.example.test".into()))
        );
        let metadata = lookup_to("169.254.169.254");
        assert_eq!(
            checked_addresses(&open, &metadata, "media.example.test")
                .await
                .unwrap_err()
                .category(),
            "PrivateAddress"
        );
        let public = lookup_to("93.184.216.34");
        assert_eq!(
            checked_addresses(&open, &public, "media.example.test").await,
            Ok(vec!["93.184.216.34".parse().unwrap()])
        );
        // The host rules apply to the name as they do to a URL.
        let campus = UrlPolicy {
            allowed_hosts: vec!["univ.fr".into()],
            private_hosts: vec!["pod.univ.fr".into()],
            ..UrlPolicy::default()
        };
        assert!(
            checked_addresses(&campus, &to_private, "pod.univ.fr")
                .await
                .is_ok()
        );
        assert_eq!(
            checked_addresses(&campus, &public, "media.example.test")
                .await
                .unwrap_err()
                .category(),
            "HostNotAllowed"
        );
        let failing: Lookup =
            Arc::new(|_host: String| Box::pin(async { Err(std::io::Error::other("no DNS")) }));
        assert_eq!(
            checked_addresses(&open, &failing, "media.example.test")
                .await
                .unwrap_err()
                .category(),
            "Unresolvable"
        );
    }

    #[test]
    fn space_margin() {
        assert!(enough_space(100, 200));
        assert!(!enough_space(100, 199));
        assert!(enough_space(0, 0));
    }
}
