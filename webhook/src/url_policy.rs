//! Outbound URL policy (the SSRF guard): the pure rules live in `esup_api::url_policy`, shared
//! with the runner; this adds the webhook's resolution with tokio, for `/task/execute` and the
//! notifier.

use std::net::IpAddr;

pub use esup_api::url_policy::{Checked, UrlPolicy, UrlRefusal, is_public};

/// The full check, with DNS: in scope wherever `policy.check(..)` is called.
pub trait Resolve {
    /// Syntax, then every address the host resolves to. Returns the addresses, so a fetch
    /// can connect to exactly what was checked (no DNS rebinding).
    fn check(
        &self,
        field: &str,
        raw: &str,
    ) -> impl Future<Output = Result<(Checked, Vec<IpAddr>), UrlRefusal>> + Send;
}

impl Resolve for UrlPolicy {
    async fn check(&self, field: &str, raw: &str) -> Result<(Checked, Vec<IpAddr>), UrlRefusal> {
        let checked = self.check_syntax(field, raw)?;
        if let Some(ip) = checked.literal {
            return Ok((checked, vec![ip]));
        }
        let addrs: Vec<IpAddr> = tokio::net::lookup_host((checked.host.as_str(), checked.port))
            .await
            .map_err(|_| UrlRefusal::Unresolvable(field.to_owned()))?
            .map(|a| a.ip())
            .collect();
        self.check_resolved(field, &checked, &addrs)?;
        Ok((checked, addrs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn names_that_resolve_to_loopback_are_refused() {
        let policy = UrlPolicy::default();
        // "localhost" is refused by name; a name resolving to loopback is refused by address.
        let err = policy
            .check("source_url", "http://localhost./a.mp4")
            .await
            .unwrap_err();
        assert!(
            matches!(err, UrlRefusal::HostNotAllowed(_) | UrlRefusal::Private(_)),
            "{err:?}"
        );
        let err = policy
            .check("source_url", "http://does-not-exist.invalid/a.mp4")
            .await
            .unwrap_err();
        assert_eq!(err.category(), "Unresolvable");
    }
}
