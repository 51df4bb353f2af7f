//! Outbound URL policy (the SSRF guard). Esup-Pod's `source_url`, `notify_url` and dressing
//! URLs are fetched from inside the cluster, so a hostile request could aim them at the
//! cloud metadata service, the API server or a private network. A URL passes when it is
//! http(s) with a host and no userinfo, its host is allowed, and every address it resolves
//! to is public — unless the host is on the operator's allow-list of in-cluster hosts, which
//! is what lets an Esup-Pod running in the same cluster be reached (protocol §6 gap 4).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

#[derive(Clone, Debug, Default)]
pub struct UrlPolicy {
    /// When non-empty, only these hosts (exactly, or any subdomain) may be used.
    pub allowed_hosts: Vec<String>,
    /// Hosts (exactly, or any subdomain) that may resolve to private addresses, e.g.
    /// `pod.pod-system.svc.cluster.local`.
    pub private_hosts: Vec<String>,
    /// Networks whose addresses are accepted although private, e.g. `10.96.0.0/12`.
    pub private_networks: Vec<ipnet::IpNet>,
}

/// Why a URL is refused; the message is returned to the caller as `detail`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefusal {
    #[error("{0} is not a valid URL")]
    Malformed(String),
    #[error("{0} must use http or https")]
    Scheme(String),
    #[error("{0} is missing host")]
    NoHost(String),
    #[error("{0} must not include userinfo")]
    Userinfo(String),
    #[error("{0} host not allowed")]
    HostNotAllowed(String),
    #[error("{0} host cannot be resolved")]
    Unresolvable(String),
    #[error("{0} resolves to a private/loopback/link-local address")]
    Private(String),
}

impl UrlRefusal {
    pub fn category(&self) -> &'static str {
        match self {
            Self::Malformed(_) | Self::Scheme(_) | Self::NoHost(_) | Self::Userinfo(_) => {
                "InvalidUrl"
            }
            Self::HostNotAllowed(_) => "HostNotAllowed",
            Self::Unresolvable(_) => "Unresolvable",
            Self::Private(_) => "PrivateAddress",
        }
    }
}

/// A URL that passed the syntactic checks: what remains is resolving its host.
#[derive(Clone, Debug, PartialEq)]
pub struct Checked {
    pub url: Url,
    pub host: String,
    /// Set when the host is an IP literal (then no resolution is needed).
    pub literal: Option<IpAddr>,
    pub port: u16,
    /// The host may resolve to private addresses.
    pub private_ok: bool,
}

fn matches_host(host: &str, patterns: &[String]) -> bool {
    patterns.iter().any(|p| {
        let p = p.trim_start_matches('.').to_ascii_lowercase();
        host == p || host.ends_with(&format!(".{p}"))
    })
}

impl UrlPolicy {
    /// Everything that can be decided without DNS. `field` names the URL in messages
    /// ("source_url", "notify_url").
    pub fn check_syntax(&self, field: &str, raw: &str) -> Result<Checked, UrlRefusal> {
        let url = Url::parse(raw).map_err(|_| UrlRefusal::Malformed(field.to_owned()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(UrlRefusal::Scheme(field.to_owned()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlRefusal::Userinfo(field.to_owned()));
        }
        let (host, literal) = match url.host() {
            Some(Host::Domain(d)) => (d.trim_end_matches('.').to_ascii_lowercase(), None),
            Some(Host::Ipv4(ip)) => (ip.to_string(), Some(IpAddr::V4(ip))),
            Some(Host::Ipv6(ip)) => (ip.to_string(), Some(IpAddr::V6(ip))),
            None => return Err(UrlRefusal::NoHost(field.to_owned())),
        };
        if host.is_empty() {
            return Err(UrlRefusal::NoHost(field.to_owned()));
        }
        if !self.allowed_hosts.is_empty() && !matches_host(&host, &self.allowed_hosts) {
            return Err(UrlRefusal::HostNotAllowed(field.to_owned()));
        }
        let private_ok = matches_host(&host, &self.private_hosts);
        if !private_ok && (host == "localhost" || host.ends_with(".localhost")) {
            return Err(UrlRefusal::HostNotAllowed(field.to_owned()));
        }
        let port = url.port_or_known_default().unwrap_or(80);
        let checked = Checked {
            url,
            host,
            literal,
            port,
            private_ok,
        };
        if let Some(ip) = literal {
            self.check_address(field, &checked, ip)?;
        }
        Ok(checked)
    }

    /// Checks one address the host resolved to.
    pub fn check_address(
        &self,
        field: &str,
        checked: &Checked,
        ip: IpAddr,
    ) -> Result<(), UrlRefusal> {
        if checked.private_ok
            || is_public(ip)
            || self.private_networks.iter().any(|n| n.contains(&ip))
        {
            Ok(())
        } else {
            Err(UrlRefusal::Private(field.to_owned()))
        }
    }

    /// The full check: syntax, then every address the host resolves to. Returns the
    /// addresses, so a fetch can connect to exactly what was checked (no DNS rebinding).
    pub async fn check(
        &self,
        field: &str,
        raw: &str,
    ) -> Result<(Checked, Vec<IpAddr>), UrlRefusal> {
        let checked = self.check_syntax(field, raw)?;
        if let Some(ip) = checked.literal {
            return Ok((checked, vec![ip]));
        }
        let addrs: Vec<IpAddr> = tokio::net::lookup_host((checked.host.as_str(), checked.port))
            .await
            .map_err(|_| UrlRefusal::Unresolvable(field.to_owned()))?
            .map(|a| a.ip())
            .collect();
        if addrs.is_empty() {
            return Err(UrlRefusal::Unresolvable(field.to_owned()));
        }
        for ip in &addrs {
            self.check_address(field, &checked, *ip)?;
        }
        Ok((checked, addrs))
    }
}

/// Whether an address is publicly routable: not private, loopback, link-local (the cloud
/// metadata service lives at 169.254.169.254), shared, multicast, documentation, benchmark,
/// reserved or unspecified — IPv4-mapped IPv6 addresses judged as their IPv4 address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_unspecified()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link-local
        || (first == 0x2001 && ip.segments()[1] == 0x0db8) // documentation
        || ip.to_ipv4().is_some_and(|v4| !is_public_v4(v4))) // IPv4-compatible
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let table = [
            ("93.184.216.34", true),
            ("2606:4700::1111", true),
            ("127.0.0.1", false),
            ("10.1.2.3", false),
            ("172.16.0.1", false),
            ("192.168.1.1", false),
            ("169.254.169.254", false),
            ("100.64.0.1", false),
            ("0.0.0.0", false),
            ("255.255.255.255", false),
            ("240.0.0.1", false),
            ("::1", false),
            ("::", false),
            ("fd00::1", false),
            ("fe80::1", false),
            ("::ffff:127.0.0.1", false),
            ("::ffff:169.254.169.254", false),
            ("::ffff:8.8.8.8", true),
        ];
        for (ip, public) in table {
            assert_eq!(is_public(ip.parse().unwrap()), public, "{ip}");
        }
    }

    #[test]
    fn syntax_and_literals() {
        let policy = UrlPolicy::default();
        let table = [
            ("https://pod.univ.fr/media/a.mp4", None),
            ("ftp://pod.univ.fr/a.mp4", Some("InvalidUrl")),
            ("https://user:pw@pod.univ.fr/a.mp4", Some("InvalidUrl")),
            ("not a url", Some("InvalidUrl")),
            ("http://localhost/a.mp4", Some("HostNotAllowed")),
            ("http://127.0.0.1/a.mp4", Some("PrivateAddress")),
            ("http://[::1]/a.mp4", Some("PrivateAddress")),
            (
                "http://169.254.169.254/latest/meta-data/",
                Some("PrivateAddress"),
            ),
            ("http://10.0.0.5/media/x.mp4", Some("PrivateAddress")),
            ("http://2130706433/", Some("PrivateAddress")), // 127.0.0.1 in decimal
            ("http://0x7f.1/", Some("PrivateAddress")),
            ("http://93.184.216.34/a.mp4", None),
        ];
        for (url, refusal) in table {
            let got = policy
                .check_syntax("source_url", url)
                .err()
                .map(|e| e.category());
            assert_eq!(got, refusal, "{url}");
        }
    }

    #[test]
    fn allow_lists() {
        let policy = UrlPolicy {
            allowed_hosts: vec!["univ.fr".into()],
            private_hosts: vec!["pod.pod-system.svc.cluster.local".into()],
            private_networks: vec!["10.96.0.0/12".parse().unwrap()],
        };
        assert!(
            policy
                .check_syntax("notify_url", "https://pod.univ.fr/x")
                .is_ok()
        );
        assert_eq!(
            policy
                .check_syntax("notify_url", "https://evil.fr/x")
                .unwrap_err()
                .category(),
            "HostNotAllowed"
        );
        let open = UrlPolicy {
            allowed_hosts: vec![],
            ..policy.clone()
        };
        assert!(
            open.check_syntax("n", "http://10.96.0.10/x").is_ok(),
            "allowed network"
        );
        assert!(open.check_syntax("n", "http://10.244.0.10/x").is_err());
        let svc = open
            .check_syntax("n", "http://pod.pod-system.svc.cluster.local:8000/x")
            .unwrap();
        assert!(svc.private_ok);
        assert!(
            open.check_address("n", &svc, "10.244.1.2".parse().unwrap())
                .is_ok()
        );
        let other = open
            .check_syntax("n", "http://other.svc.cluster.local/x")
            .unwrap();
        assert_eq!(
            open.check_address("n", &other, "10.244.1.2".parse().unwrap())
                .unwrap_err()
                .category(),
            "PrivateAddress"
        );
    }

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
