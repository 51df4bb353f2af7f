//! Outbound URL policy (the SSRF guard), shared by the webhook (at submission and before each
//! notification) and the runner (before each fetch and each redirect hop). Esup-Pod's
//! `source_url`, `notify_url` and dressing URLs, and the track and SMIL URLs inside a studio
//! mediapackage, are fetched from inside the cluster, so a hostile request could aim them at
//! the cloud metadata service, the API server or a private network. A URL passes when it is
//! http(s) with a host and no userinfo, its host is allowed, and every address it resolves to
//! is public — unless the host is on the operator's allow-list of in-cluster hosts, which is
//! what lets an Esup-Pod running in the same cluster be reached (protocol §6 gap 4).
//!
//! Pure: resolving names is the caller's (the webhook with tokio, the runner through its HTTP
//! client's resolver); [`UrlPolicy::check_resolved`] judges what the resolver found.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use ipnet::IpNet;
use url::{Host, Url};

/// Environment variables of the policy, the same in the webhook, the operator and the runner:
/// comma-separated lists.
pub mod env {
    pub const ALLOWED_HOSTS: &str = "ESUP_ALLOWED_HOSTS";
    pub const PRIVATE_HOSTS: &str = "ESUP_PRIVATE_HOSTS";
    pub const PRIVATE_NETWORKS: &str = "ESUP_PRIVATE_NETWORKS";
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UrlPolicy {
    /// When non-empty, only these hosts (exactly, or any subdomain) may be used.
    pub allowed_hosts: Vec<String>,
    /// Hosts (exactly, or any subdomain) that may resolve to private addresses, e.g.
    /// `pod.pod-system.svc.cluster.local`.
    pub private_hosts: Vec<String>,
    /// Networks whose addresses are accepted although private, e.g. `10.96.0.0/12`.
    pub private_networks: Vec<IpNet>,
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
    /// The policy as the runner's environment: `(variable, comma-separated value)` for each
    /// setting that is not empty (an unset variable means the same as an empty list).
    pub fn to_env(&self) -> Vec<(&'static str, String)> {
        let networks: Vec<String> = self.private_networks.iter().map(IpNet::to_string).collect();
        [
            (env::ALLOWED_HOSTS, self.allowed_hosts.join(",")),
            (env::PRIVATE_HOSTS, self.private_hosts.join(",")),
            (env::PRIVATE_NETWORKS, networks.join(",")),
        ]
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
        .collect()
    }

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

    /// Judges what the host of `checked` resolved to: at least one address, and every one
    /// allowed. A caller then connects to these addresses only, so that a second resolution
    /// (DNS rebinding) cannot lead elsewhere.
    pub fn check_resolved(
        &self,
        field: &str,
        checked: &Checked,
        addrs: &[IpAddr],
    ) -> Result<(), UrlRefusal> {
        if addrs.is_empty() {
            return Err(UrlRefusal::Unresolvable(field.to_owned()));
        }
        addrs
            .iter()
            .try_for_each(|ip| self.check_address(field, checked, *ip))
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
    let [s0, s1, s2, s3, s4, s5, s6, s7] = ip.segments();
    let embedded = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    // Prefixes that carry an IPv4 address: a gateway forwards to that address, so it decides.
    if (s0, s1, s2, s3, s4, s5) == (0x0064, 0xff9b, 0, 0, 0, 0) {
        return is_public_v4(embedded(s6, s7)); // NAT64 well-known prefix 64:ff9b::/96
    }
    if s0 == 0x2002 {
        return is_public_v4(embedded(s1, s2)); // 6to4 2002::/16
    }
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s0 & 0xfe00) == 0xfc00 // unique local
        || (s0 & 0xffc0) == 0xfe80 // link-local
        || (s0 & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s0, s1, s2) == (0x0064, 0xff9b, 0x0001) // local-use NAT64 64:ff9b:1::/48
        || (s0, s1, s2, s3) == (0x0100, 0, 0, 0) // discard-only 100::/64
        || (s0, s1) == (0x2001, 0) // Teredo 2001::/32: tunnels to an address it hides
        || (s0, s1, s2) == (0x2001, 0x0002, 0) // benchmarking 2001:2::/48
        || (s0 == 0x2001 && matches!(s1 & 0xfff0, 0x0010 | 0x0020)) // ORCHID 2001:10::/28, 2001:20::/28
        || (s0, s1) == (0x2001, 0x0db8) // documentation
        || (s0 & 0xfff0) == 0x3ff0 // documentation 3fff::/20
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
            // NAT64 (well-known prefix): judged as the embedded IPv4 address.
            ("64:ff9b::8.8.8.8", true),
            ("64:ff9b::a9fe:a9fe", false), // 169.254.169.254
            ("64:ff9b::127.0.0.1", false),
            ("64:ff9b::10.0.0.1", false),
            // Local-use NAT64: whatever it embeds, a local translator.
            ("64:ff9b:1::808:808", false),
            // 6to4: judged as the embedded IPv4 address.
            ("2002:0808:0808::1", true),
            ("2002:a9fe:a9fe::1", false),
            ("2002:7f00:0001::1", false),
            ("2002:c0a8:0101::1", false),
            ("2001::1", false),             // Teredo
            ("2001:0:4136:e378::1", false), // Teredo
            ("2001:2::1", false),           // benchmarking
            ("2001:10::1", false),          // ORCHID
            ("2001:20::1", false),          // ORCHIDv2
            ("100::1", false),              // discard-only
            ("2001:db8::1", false),
            ("3fff::1", false),
            ("fec0::1", false),
            ("2001:4860:4860::8888", true),
            ("2001:3::1", true),
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
            ("http://[64:ff9b::a9fe:a9fe]/latest", Some("PrivateAddress")),
            ("http://[2002:a9fe:a9fe::1]/latest", Some("PrivateAddress")),
            ("http://[2001::a9fe:a9fe]/x", Some("PrivateAddress")),
            ("http://[64:ff9b::808:808]/a.mp4", None),
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

    #[test]
    fn resolved_addresses_are_each_checked() {
        let policy = UrlPolicy::default();
        let checked = policy
            .check_syntax("source_url", "https://media.example.test/a.mp4")
            .unwrap();
        let ips = |list: &[&str]| list.iter().map(|s| s.parse().unwrap()).collect::<Vec<_>>();
        assert!(
            policy
                .check_resolved("source_url", &checked, &ips(&["93.184.216.34"]))
                .is_ok()
        );
        // One private address among public ones is enough to refuse: the client could pick it.
        let err = policy
            .check_resolved("source_url", &checked, &ips(&["93.184.216.34", "10.0.0.1"]))
            .unwrap_err();
        assert_eq!(err, UrlRefusal::Private("source_url".into()));
        assert_eq!(
            err.to_string(),
            "source_url resolves to a private/loopback/link-local address"
        );
        assert_eq!(
            policy
                .check_resolved("source_url", &checked, &[])
                .unwrap_err()
                .category(),
            "Unresolvable"
        );
    }

    #[test]
    fn environment_round_trip() {
        assert!(UrlPolicy::default().to_env().is_empty());
        let policy = UrlPolicy {
            allowed_hosts: vec!["univ.fr".into(), "cdn.univ.fr".into()],
            private_hosts: vec![],
            private_networks: vec![
                "10.96.0.0/12".parse().unwrap(),
                "10.0.0.1/32".parse().unwrap(),
            ],
        };
        assert_eq!(
            policy.to_env(),
            [
                (env::ALLOWED_HOSTS, "univ.fr,cdn.univ.fr".to_owned()),
                (env::PRIVATE_NETWORKS, "10.96.0.0/12,10.0.0.1/32".to_owned()),
            ]
        );
    }
}
