//! The notify POST itself, over hyper's connection API.
//!
//! Why not a pooled client (reqwest, hyper-util's): the connection must go to the addresses
//! the URL policy just checked (no second resolution, no proxy from the environment, no
//! redirect to follow), and the two timeouts must be told apart exactly as the reference
//! manager's httpx does: `connect` covers TCP and TLS, `read` the wait for Esup-Pod's answer
//! once the request is sent. A read timeout counts as delivered, so misfiling a slow connect
//! as one would lose a notification. One connection per notify is no cost at this rate.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{
    ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderValue, USER_AGENT,
};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use url::Position;

use super::logic::SendOutcome;
use crate::url_policy::{Checked, Resolve, UrlPolicy, UrlRefusal};

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// A notify URL that passed the policy, with the addresses that were checked.
#[derive(Clone, Debug)]
pub struct Target {
    pub checked: Checked,
    pub addrs: Vec<IpAddr>,
}

#[derive(Clone)]
pub struct Sender {
    /// The error when no TLS configuration could be built: https sends then fail with it.
    tls: Result<Arc<ClientConfig>, String>,
    connect_timeout: Duration,
    read_timeout: Duration,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("tls", &self.tls.as_ref().map(|_| "rustls"))
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .finish()
    }
}

/// TLS as kube does it: ring, and the platform's trust store (`SSL_CERT_FILE` and
/// `SSL_CERT_DIR` are honoured, for an Esup-Pod behind an internal CA).
fn tls_config() -> Result<Arc<ClientConfig>, String> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_platform_verifier()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn host_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A 2xx is delivered; anything else is retried, named as the manager logs it.
pub fn classify_status(status: StatusCode) -> SendOutcome {
    if status.is_success() {
        SendOutcome::Accepted(status.to_string())
    } else {
        SendOutcome::Failed(status.to_string())
    }
}

/// What a refusal of the URL policy means for delivery: a name that does not resolve may
/// resolve later (a connection error, retried); every other refusal stays a refusal.
pub fn classify_refusal(refusal: &UrlRefusal, url: &str) -> SendOutcome {
    match refusal {
        UrlRefusal::Unresolvable(_) => {
            SendOutcome::Failed(format!("cannot resolve {}", host_of(url)))
        }
        other => SendOutcome::Refused(format!(
            "refused by the URL policy ({}): {other}",
            other.category()
        )),
    }
}

impl Sender {
    pub fn new(connect_timeout: Duration, read_timeout: Duration) -> Self {
        let tls = tls_config();
        if let Err(e) = &tls {
            tracing::error!(error = %e, "no TLS for notifications: https notify URLs will fail");
        }
        Self {
            tls,
            connect_timeout,
            read_timeout,
        }
    }

    /// Applies the URL policy at send time; the error is the outcome to record.
    pub async fn resolve(&self, policy: &UrlPolicy, url: &str) -> Result<Target, SendOutcome> {
        self.resolve_within(policy.check("notify_url", url), url)
            .await
    }

    /// Resolution is part of connecting: a DNS server that does not answer must not hold a
    /// send (and its slot) longer than the connect timeout.
    async fn resolve_within(
        &self,
        check: impl Future<Output = Result<(Checked, Vec<IpAddr>), UrlRefusal>>,
        url: &str,
    ) -> Result<Target, SendOutcome> {
        match tokio::time::timeout(self.connect_timeout, check).await {
            Ok(Ok((checked, addrs))) => Ok(Target { checked, addrs }),
            Ok(Err(refusal)) => Err(classify_refusal(&refusal, url)),
            Err(_) => Err(SendOutcome::Failed(format!(
                "resolving {} timed out after {}s",
                host_of(url),
                self.connect_timeout.as_secs_f64()
            ))),
        }
    }

    /// Policy check, then POST.
    pub async fn deliver(
        &self,
        policy: &UrlPolicy,
        url: &str,
        token: &str,
        body: Bytes,
    ) -> SendOutcome {
        match self.resolve(policy, url).await {
            Ok(target) => self.post(&target, token, body).await,
            Err(outcome) => outcome,
        }
    }

    /// POSTs `body` to the target, connecting only to its checked addresses.
    pub async fn post(&self, target: &Target, token: &str, body: Bytes) -> SendOutcome {
        let request = match build_request(&target.checked, token, body) {
            Ok(r) => r,
            Err(e) => return SendOutcome::Failed(e),
        };
        let host = &target.checked.host;
        let connecting = async {
            let io = self.connect(target).await?;
            hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(io))
                .await
                .map_err(|e| format!("HTTP handshake with {host}: {e}"))
        };
        let (mut sender, conn) = match tokio::time::timeout(self.connect_timeout, connecting).await
        {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => return SendOutcome::Failed(e),
            Err(_) => {
                return SendOutcome::Failed(format!(
                    "connect to {host} timed out after {}s",
                    self.connect_timeout.as_secs_f64()
                ));
            }
        };
        let exchange = async {
            let response = sender.send_request(request);
            tokio::pin!(response, conn);
            tokio::select! {
                biased;
                r = &mut response => r,
                // The connection ended first; the response future now resolves at once, with
                // the answer if one was read before the close, else with the error.
                _ = &mut conn => response.await,
            }
        };
        // Dropping the exchange on timeout closes the socket, as httpx does.
        match tokio::time::timeout(self.read_timeout, exchange).await {
            Err(_) => SendOutcome::ReadTimeout,
            Ok(Ok(response)) => classify_status(response.status()),
            Ok(Err(e)) => SendOutcome::Failed(format!("{host}: {e}")),
        }
    }

    async fn connect(&self, target: &Target) -> Result<Box<dyn Io>, String> {
        let checked = &target.checked;
        let mut last = format!("{}: no address to connect to", checked.host);
        let mut tcp = None;
        for ip in &target.addrs {
            let addr = SocketAddr::new(*ip, checked.port);
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    tcp = Some(stream);
                    break;
                }
                Err(e) => last = format!("connect to {addr}: {e}"),
            }
        }
        let tcp = tcp.ok_or(last)?;
        // Small request, one exchange: no reason to wait for Nagle.
        let _ = tcp.set_nodelay(true);
        if checked.url.scheme() != "https" {
            return Ok(Box::new(tcp));
        }
        let config = self.tls.clone()?;
        let name = ServerName::try_from(checked.host.clone())
            .map_err(|e| format!("{}: not a TLS server name: {e}", checked.host))?;
        let stream = TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake with {}: {e}", checked.host))?;
        Ok(Box::new(stream))
    }
}

fn build_request(
    checked: &Checked,
    token: &str,
    body: Bytes,
) -> Result<Request<Full<Bytes>>, String> {
    let url = &checked.url;
    let host = &url[Position::BeforeHost..Position::AfterPort];
    let target = match &url[Position::BeforePath..Position::AfterQuery] {
        "" => "/",
        t => t,
    };
    let mut bearer = HeaderValue::try_from(format!("Bearer {token}"))
        .map_err(|_| "the notify token is not a valid header value".to_owned())?;
    bearer.set_sensitive(true);
    Request::builder()
        .method(Method::POST)
        .uri(target)
        .header(HOST, host)
        .header(ACCEPT, "application/json")
        .header(CONTENT_TYPE, "application/json")
        .header(CONTENT_LENGTH, body.len())
        .header(AUTHORIZATION, bearer)
        .header(
            USER_AGENT,
            concat!("esup-webhook/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(body))
        .map_err(|e| format!("cannot build the notify request: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use warp::Filter;
    use warp::http::StatusCode as WarpStatus;

    #[test]
    fn statuses() {
        let cases = [
            (200, SendOutcome::Accepted("200 OK".into())),
            (202, SendOutcome::Accepted("202 Accepted".into())),
            (204, SendOutcome::Accepted("204 No Content".into())),
            (302, SendOutcome::Failed("302 Found".into())),
            (401, SendOutcome::Failed("401 Unauthorized".into())),
            (403, SendOutcome::Failed("403 Forbidden".into())),
            (500, SendOutcome::Failed("500 Internal Server Error".into())),
            (503, SendOutcome::Failed("503 Service Unavailable".into())),
            (599, SendOutcome::Failed("599 <unknown status code>".into())),
        ];
        for (code, expected) in cases {
            let status = StatusCode::from_u16(code).expect("valid code");
            assert_eq!(classify_status(status), expected, "{code}");
        }
    }

    #[test]
    fn refusals() {
        let url = "https://pod.univ.fr/runner/notify_task_end/";
        assert_eq!(
            classify_refusal(&UrlRefusal::Unresolvable("notify_url".into()), url),
            SendOutcome::Failed("cannot resolve pod.univ.fr".into())
        );
        assert_eq!(
            classify_refusal(&UrlRefusal::Private("notify_url".into()), url),
            SendOutcome::Refused(
                "refused by the URL policy (PrivateAddress): notify_url resolves to a \
                 private/loopback/link-local address"
                    .into()
            )
        );
    }

    #[test]
    fn requests_carry_host_bearer_and_origin_form_target() {
        let policy = UrlPolicy::default();
        let checked = policy
            .check_syntax(
                "notify_url",
                "https://pod.univ.fr:8443/runner/notify_task_end/?x=1#f",
            )
            .expect("valid");
        let request = build_request(&checked, "T0k", Bytes::from_static(b"{}")).expect("request");
        assert_eq!(request.uri(), "/runner/notify_task_end/?x=1");
        let h = request.headers();
        assert_eq!(h[HOST], "pod.univ.fr:8443");
        assert_eq!(h[AUTHORIZATION], "Bearer T0k");
        assert!(h[AUTHORIZATION].is_sensitive());
        assert_eq!(h[ACCEPT], "application/json");
        assert_eq!(h[CONTENT_TYPE], "application/json");
        assert_eq!(h[CONTENT_LENGTH], "2");
        let bare = policy
            .check_syntax("notify_url", "http://pod.univ.fr")
            .expect("valid");
        let request = build_request(&bare, "t", Bytes::new()).expect("request");
        assert_eq!(request.uri(), "/");
        assert_eq!(request.headers()[HOST], "pod.univ.fr");
        assert!(build_request(&bare, "bad\ntoken", Bytes::new()).is_err());
    }

    /// A DNS server that never answers (a lookup that never ends) costs a send no more than
    /// the connect timeout.
    #[tokio::test]
    async fn resolution_is_bounded_by_the_connect_timeout() {
        let sender = Sender::new(Duration::from_millis(300), Duration::from_secs(1));
        let url = "https://pod.univ.fr/runner/notify_task_end/";
        let never = std::future::pending::<Result<(Checked, Vec<IpAddr>), UrlRefusal>>();
        let started = std::time::Instant::now();
        let outcome =
            tokio::time::timeout(Duration::from_secs(3), sender.resolve_within(never, url))
                .await
                .expect("resolution gave up within the connect timeout");
        assert_eq!(
            outcome.map(drop),
            Err(SendOutcome::Failed(
                "resolving pod.univ.fr timed out after 0.3s".into()
            ))
        );
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    /// Stands in for Esup-Pod's `notify_task_end` view.
    async fn fake_esup_pod() -> SocketAddr {
        let expected = json!({"task_id": "t-1", "status": "completed", "error_message": null, "script_output": null});
        let notify = warp::post()
            .and(warp::path!("runner" / "notify_task_end"))
            .and(warp::header::optional::<String>("authorization"))
            .and(warp::header::optional::<String>("content-type"))
            .and(warp::header::optional::<String>("accept"))
            .and(warp::body::json::<serde_json::Value>())
            .map(
                move |auth: Option<String>,
                      ct: Option<String>,
                      accept: Option<String>,
                      body: serde_json::Value| {
                    let reply = |v: serde_json::Value, s| {
                        warp::reply::with_status(warp::reply::json(&v), s)
                    };
                    if auth.as_deref() != Some("Bearer good-token") {
                        return reply(
                            json!({"error": "Invalid Bearer token."}),
                            WarpStatus::FORBIDDEN,
                        );
                    }
                    if ct.as_deref() != Some("application/json")
                        || accept.as_deref() != Some("application/json")
                    {
                        return reply(
                            json!({"error": "Only application/json content type is allowed."}),
                            WarpStatus::UNSUPPORTED_MEDIA_TYPE,
                        );
                    }
                    if body != expected {
                        return reply(
                            json!({"error": "Invalid request."}),
                            WarpStatus::BAD_REQUEST,
                        );
                    }
                    reply(json!({"status": "OK"}), WarpStatus::OK)
                },
            );
        let busy = warp::post()
            .and(warp::path!("busy" / "notify_task_end"))
            .map(|| warp::reply::with_status("maintenance", WarpStatus::SERVICE_UNAVAILABLE));
        let importing = warp::post()
            .and(warp::path!("slow" / "notify_task_end"))
            .then(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                warp::reply::json(&json!({"status": "OK"}))
            });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(
            warp::serve(notify.or(busy).or(importing))
                .incoming(listener)
                .run(),
        );
        addr
    }

    #[tokio::test]
    async fn classifies_esup_pods_answers() {
        let addr = fake_esup_pod().await;
        let sender = Sender::new(Duration::from_secs(1), Duration::from_secs(1));
        let loopback = UrlPolicy {
            private_networks: vec!["127.0.0.0/8".parse().expect("network")],
            ..UrlPolicy::default()
        };
        let body = Bytes::from_static(
            br#"{"task_id":"t-1","status":"completed","error_message":null,"script_output":null}"#,
        );
        let base = format!("http://{addr}");
        let cases = [
            (
                "accepted",
                "/runner/notify_task_end/",
                "good-token",
                SendOutcome::Accepted("200 OK".into()),
            ),
            (
                "wrong token",
                "/runner/notify_task_end/",
                "other-token",
                SendOutcome::Failed("403 Forbidden".into()),
            ),
            (
                "unavailable",
                "/busy/notify_task_end/",
                "good-token",
                SendOutcome::Failed("503 Service Unavailable".into()),
            ),
            (
                "importing past the read timeout",
                "/slow/notify_task_end/",
                "good-token",
                SendOutcome::ReadTimeout,
            ),
        ];
        for (name, path, token, expected) in cases {
            let started = std::time::Instant::now();
            let got = sender
                .deliver(&loopback, &format!("{base}{path}"), token, body.clone())
                .await;
            assert_eq!(got, expected, "{name}");
            assert!(
                started.elapsed() < Duration::from_secs(3),
                "{name} took {:?}",
                started.elapsed()
            );
        }

        // The default policy refuses loopback: permanent, nothing is sent.
        let refused = sender
            .deliver(
                &UrlPolicy::default(),
                &format!("{base}/runner/notify_task_end/"),
                "good-token",
                body.clone(),
            )
            .await;
        assert!(
            matches!(refused, SendOutcome::Refused(ref why) if why.contains("PrivateAddress")),
            "{refused:?}"
        );

        // Nobody listening: a connection error, retried.
        let closed = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind");
        let closed_addr = closed.local_addr().expect("address");
        drop(closed);
        let refused_conn = sender
            .deliver(
                &loopback,
                &format!("http://{closed_addr}/runner/notify_task_end/"),
                "good-token",
                body.clone(),
            )
            .await;
        assert!(
            matches!(refused_conn, SendOutcome::Failed(ref why) if why.starts_with(&format!("connect to {closed_addr}"))),
            "{refused_conn:?}"
        );

        // https against a plain HTTP server: the TLS handshake fails, which is a connection error.
        let tls = sender
            .deliver(
                &loopback,
                &format!("https://{addr}/runner/notify_task_end/"),
                "good-token",
                body,
            )
            .await;
        assert!(
            matches!(tls, SendOutcome::Failed(ref why) if why.starts_with("TLS handshake")),
            "{tls:?}"
        );
    }
}
