//! Rate limits, pure: token buckets by key, and the client address behind trusted proxies.
//!
//! Three limits, each with its own key (docs/webhook.md, "Rate limits"):
//! - per tenant, for requests whose token authenticated (a tenant is never slowed by others
//!   that share its address, e.g. every tenant behind one Ingress);
//! - per task, for runner callbacks whose callback token matched;
//! - per client address, for everything else: public pages and failed authentications. It is
//!   also checked before a runner callback's token is verified (that costs an API read), but
//!   only failures consume it, so an anonymous flood never spends an authenticated caller's
//!   allowance.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ipnet::IpNet;

/// Keys kept before idle buckets are dropped, and the most kept at all: beyond, unknown keys
/// share one overflow bucket, so a caller cycling through addresses cannot grow memory.
const MAX_KEYS: usize = 100_000;

/// One token bucket: `capacity` requests at once, refilled at `capacity` per minute.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(capacity: f64, now: Instant) -> Self {
        Self {
            tokens: capacity,
            at: now,
        }
    }

    /// Refills for the time elapsed, then takes one token if there is one.
    fn take(&mut self, capacity: f64, per_second: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_second).min(capacity);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether it would be full by `now` (idle long enough to forget).
    fn idle(&self, capacity: f64, per_second: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens + elapsed * per_second >= capacity
    }
}

/// Requests per key per minute, as a token bucket: a burst of the whole minute's allowance,
/// then a steady refill. A limit of 0 turns the limiter off.
pub struct KeyedLimiter<K> {
    capacity: f64,
    per_second: f64,
    buckets: Mutex<(HashMap<K, Bucket>, Option<Bucket>)>,
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    pub fn per_minute(limit: u32) -> Self {
        Self::new(limit, Duration::from_secs(60))
    }

    /// `limit` requests per `window`, refilled evenly.
    pub fn new(limit: u32, window: Duration) -> Self {
        let capacity = f64::from(limit);
        Self {
            capacity,
            per_second: capacity / window.as_secs_f64().max(f64::EPSILON),
            buckets: Mutex::new((HashMap::new(), None)),
        }
    }

    pub fn enabled(&self) -> bool {
        self.capacity > 0.0
    }

    /// Counts one request of `key`; false when it is over the limit.
    pub fn allow(&self, key: &K, now: Instant) -> bool {
        if !self.enabled() {
            return true;
        }
        let (capacity, per_second) = (self.capacity, self.per_second);
        let mut guard = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (buckets, overflow) = &mut *guard;
        if let Some(bucket) = buckets.get_mut(key) {
            return bucket.take(capacity, per_second, now);
        }
        if buckets.len() >= MAX_KEYS {
            buckets.retain(|_, b| !b.idle(capacity, per_second, now));
        }
        if buckets.len() >= MAX_KEYS {
            return overflow
                .get_or_insert_with(|| Bucket::full(capacity, now))
                .take(capacity, per_second, now);
        }
        let mut bucket = Bucket::full(capacity, now);
        let allowed = bucket.take(capacity, per_second, now);
        buckets.insert(key.clone(), bucket);
        allowed
    }

    /// Whether `key` has an allowance left, without spending it.
    pub fn has_allowance(&self, key: &K, now: Instant) -> bool {
        if !self.enabled() {
            return true;
        }
        let guard = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (buckets, overflow) = &*guard;
        let bucket = match buckets.get(key) {
            Some(b) => Some(b),
            None if buckets.len() >= MAX_KEYS => overflow.as_ref(),
            None => None,
        };
        bucket.is_none_or(|b| {
            let mut probe = *b;
            probe.take(self.capacity, self.per_second, now)
        })
    }

    /// Keys tracked (for tests of the memory bound).
    pub fn tracked(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0
            .len()
    }
}

/// The key of an address: IPv6 clients by their /64 (one host usually holds a whole /64).
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let masked = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(masked.into())
        }
        v4 => v4,
    }
}

/// Who the client is: the TCP peer, or, when the peer is a trusted proxy, the rightmost
/// address of the configured header that is not a trusted proxy itself.
#[derive(Clone, Debug, Default)]
pub struct ClientAddress {
    pub trusted_proxies: Vec<IpNet>,
    /// `X-Forwarded-For` style: comma-separated addresses, the nearest hop last. Consulted
    /// only when the peer is a trusted proxy.
    pub header: Option<String>,
}

impl ClientAddress {
    fn trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }

    /// The client of a request from `peer` carrying `values` of the configured header (every
    /// occurrence, in order). A hop that does not parse ends the walk at the last trusted hop:
    /// what a proxy did not write is not believed.
    pub fn resolve<'a>(
        &self,
        peer: Option<IpAddr>,
        values: impl IntoIterator<Item = &'a str>,
    ) -> Option<IpAddr> {
        let peer = peer.map(|ip| ip.to_canonical())?;
        if self.header.is_none() || !self.trusted(peer) {
            return Some(peer);
        }
        let hops: Vec<&str> = values.into_iter().flat_map(|v| v.split(',')).collect();
        let mut client = peer;
        for hop in hops.into_iter().rev() {
            let Some(ip) = parse_hop(hop.trim()) else {
                return Some(client);
            };
            client = ip;
            if !self.trusted(ip) {
                break;
            }
        }
        Some(client)
    }
}

/// `192.0.2.1`, `2001:db8::1`, `192.0.2.1:4711`, `[2001:db8::1]:4711`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn bucket_allows_the_burst_then_refills() {
        let limiter = KeyedLimiter::<&str>::per_minute(3);
        let t0 = Instant::now();
        assert!((0..3).all(|_| limiter.allow(&"a", t0)));
        assert!(!limiter.allow(&"a", t0));
        assert!(!limiter.has_allowance(&"a", t0));
        assert!(limiter.allow(&"b", t0), "keys are counted apart");
        // One request per 20 s comes back.
        assert!(!limiter.allow(&"a", t0 + Duration::from_secs(19)));
        assert!(limiter.allow(&"a", t0 + Duration::from_secs(40)));
        assert!(limiter.has_allowance(&"fresh", t0));
    }

    #[test]
    fn zero_turns_the_limit_off() {
        let limiter = KeyedLimiter::<u8>::per_minute(0);
        let t0 = Instant::now();
        assert!((0..1000).all(|_| limiter.allow(&1, t0)));
        assert_eq!(limiter.tracked(), 0);
    }

    #[test]
    fn keys_are_bounded() {
        let limiter = KeyedLimiter::<u32>::per_minute(2);
        let t0 = Instant::now();
        for k in 0..MAX_KEYS as u32 {
            assert!(limiter.allow(&k, t0));
        }
        // Full of busy keys: new ones share the overflow bucket.
        let fresh = MAX_KEYS as u32;
        assert!(limiter.allow(&fresh, t0) && limiter.allow(&(fresh + 1), t0));
        assert!(!limiter.allow(&(fresh + 2), t0));
        assert_eq!(limiter.tracked(), MAX_KEYS);
        // Once the old keys are idle, they are forgotten and new keys get their own bucket.
        let later = t0 + Duration::from_secs(61);
        assert!(limiter.allow(&(fresh + 3), later));
        assert_eq!(limiter.tracked(), 1);
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        assert_eq!(
            address_key(ip("2001:db8:1:2:aaaa::1")),
            address_key(ip("2001:db8:1:2:bbbb::2"))
        );
        assert_ne!(
            address_key(ip("2001:db8:1:3::1")),
            address_key(ip("2001:db8:1:2::1"))
        );
        assert_eq!(address_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
    }

    #[test]
    fn forwarded_header_is_believed_only_from_trusted_proxies() {
        let resolver = ClientAddress {
            trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
            header: Some("x-forwarded-for".into()),
        };
        // From the Ingress controller: the rightmost untrusted hop.
        assert_eq!(
            resolver.resolve(Some(ip("10.1.2.3")), ["203.0.113.9, 198.51.100.4"]),
            Some(ip("198.51.100.4"))
        );
        // Trusted hops are skipped; a client-written left part is not believed.
        assert_eq!(
            resolver.resolve(
                Some(ip("10.1.2.3")),
                ["1.1.1.1", "198.51.100.4:5123, 10.9.9.9"]
            ),
            Some(ip("198.51.100.4"))
        );
        // Everything trusted: the leftmost hop.
        assert_eq!(
            resolver.resolve(Some(ip("10.1.2.3")), ["10.7.7.7, 10.8.8.8"]),
            Some(ip("10.7.7.7"))
        );
        // Garbage stops the walk at the last trusted hop.
        assert_eq!(
            resolver.resolve(Some(ip("10.1.2.3")), ["198.51.100.4, unknown"]),
            Some(ip("10.1.2.3"))
        );
        // No header: the proxy itself.
        assert_eq!(
            resolver.resolve(Some(ip("10.1.2.3")), []),
            Some(ip("10.1.2.3"))
        );
        // An untrusted peer's header is ignored.
        assert_eq!(
            resolver.resolve(Some(ip("192.0.2.7")), ["198.51.100.4"]),
            Some(ip("192.0.2.7"))
        );
        // No trusted proxies configured: the header is never read.
        let plain = ClientAddress::default();
        assert_eq!(
            plain.resolve(Some(ip("10.1.2.3")), ["198.51.100.4"]),
            Some(ip("10.1.2.3"))
        );
        assert_eq!(
            resolver.resolve(Some(ip("::ffff:10.1.2.3")), ["[2001:db8::5]:80"]),
            Some(ip("2001:db8::5"))
        );
    }
}
