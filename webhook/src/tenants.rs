//! Tenants and their tokens. Each tenant (an institution) has one Kubernetes Secret in the
//! tenant-Secret namespace (`--tenant-secrets-namespace`, by default the webhook's), labelled `runner.esup-portail.org/tenant=<name>`, holding the token(s)
//! its Esup-Pod uses (keys `token`, `token-*`) and optional settings. The table is rebuilt
//! whenever such a Secret changes, so tokens rotate without a restart.

use std::collections::BTreeMap;
use std::time::Duration;

use esup_api::{SecretKeyRef, TaskPriority};

use crate::admission::AdmissionMode;
use sha2::{Digest, Sha256};

/// What the webhook knows of a tenant.
#[derive(Clone, Debug, PartialEq)]
pub struct Tenant {
    pub name: String,
    /// Namespace of its tasks (default: the tenant's name).
    pub namespace: String,
    /// Most unfinished tasks it may have; beyond, `/task/execute` answers 503 so that
    /// Esup-Pod fails over to its next manager.
    pub max_backlog: u32,
    /// Retention of its finished tasks and their files.
    pub retention: Option<Duration>,
    /// Queue priority of its tasks.
    pub priority: TaskPriority,
    /// How its tasks wait for a runner: in the cluster's queue, or in Esup-Pod's.
    pub admission: AdmissionMode,
}

/// A token's tenant, and where the token lives (the notify of a task is sent with the token
/// it was submitted with, read back from this Secret key).
#[derive(Clone, Debug, PartialEq)]
pub struct Caller {
    pub tenant: Tenant,
    pub token_ref: SecretKeyRef,
}

#[derive(Default)]
pub struct TokenTable {
    entries: Vec<([u8; 32], Caller)>,
}

/// A Secret reduced to what the table needs.
#[derive(Clone, Debug, Default)]
pub struct TenantSecret {
    pub name: String,
    pub namespace: String,
    pub tenant: String,
    pub data: BTreeMap<String, String>,
}

/// Why a tenant Secret was skipped; logged and turned into an Event on the Secret.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum SecretError {
    #[error("Secret {0}: tenant name {1:?} is not a lowercase DNS label")]
    BadTenant(String, String),
    #[error("Secret {0}: no `token` key")]
    NoToken(String),
    #[error("Secret {0}: key {1}: {2}")]
    BadSetting(String, String, String),
}

impl SecretError {
    pub fn category(&self) -> &'static str {
        match self {
            Self::BadTenant(..) => "BadTenantName",
            Self::NoToken(_) => "NoToken",
            Self::BadSetting(..) => "BadTenantSetting",
        }
    }
}

pub const DEFAULT_MAX_BACKLOG: u32 = 500;

fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

/// Whether two tokens are equal, compared by digest so that the time taken does not tell how
/// close a guess came.
pub fn tokens_match(a: &[u8], b: &[u8]) -> bool {
    constant_time_eq(&digest(a), &digest(b))
}

/// Equality that takes the same time wherever the inputs differ.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl TokenTable {
    /// Builds the table from every tenant Secret; bad Secrets are skipped and reported.
    pub fn build(secrets: &[TenantSecret]) -> (Self, Vec<SecretError>) {
        let mut table = Self::default();
        let mut errors = Vec::new();
        for secret in secrets {
            match tenant_of(secret) {
                Ok(tenant) => {
                    for (key, token) in secret.data.iter().filter(|(k, _)| is_token_key(k)) {
                        let token = token.trim();
                        if token.is_empty() {
                            continue;
                        }
                        let caller = Caller {
                            tenant: tenant.clone(),
                            token_ref: SecretKeyRef {
                                name: secret.name.clone(),
                                key: key.clone(),
                                namespace: Some(secret.namespace.clone()),
                            },
                        };
                        table.entries.push((digest(token.as_bytes()), caller));
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        (table, errors)
    }

    /// The caller a token belongs to. Every entry is compared, in constant time each, so the
    /// answer's timing does not tell how close a guess came.
    pub fn authenticate(&self, token: &str) -> Option<&Caller> {
        let presented = digest(token.as_bytes());
        let mut found = None;
        for (known, caller) in &self.entries {
            if constant_time_eq(known, &presented) && found.is_none() {
                found = Some(caller);
            }
        }
        found
    }

    pub fn tenants(&self) -> Vec<&Tenant> {
        let mut seen: BTreeMap<&str, &Tenant> = BTreeMap::new();
        for (_, caller) in &self.entries {
            seen.entry(&caller.tenant.name).or_insert(&caller.tenant);
        }
        seen.into_values().collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Keys that hold tokens: `token`, `token-*` (several keys let a token rotate).
pub fn is_token_key(key: &str) -> bool {
    key == "token" || key.starts_with("token-")
}

fn tenant_of(secret: &TenantSecret) -> Result<Tenant, SecretError> {
    let id = format!("{}/{}", secret.namespace, secret.name);
    if !esup_api::labels::is_dns_label(&secret.tenant) {
        return Err(SecretError::BadTenant(id, secret.tenant.clone()));
    }
    if !secret.data.keys().any(|k| is_token_key(k)) {
        return Err(SecretError::NoToken(id));
    }
    let bad = |key: &str, why: String| SecretError::BadSetting(id.clone(), key.to_owned(), why);
    let namespace = match secret.data.get("namespace").map(|s| s.trim()) {
        Some(ns) if !esup_api::labels::is_dns_label(ns) => {
            return Err(bad("namespace", format!("{ns:?} is not a namespace name")));
        }
        Some(ns) => ns.to_owned(),
        None => secret.tenant.clone(),
    };
    let max_backlog = match secret.data.get("maxBacklog") {
        Some(v) => v
            .trim()
            .parse::<u32>()
            .map_err(|e| bad("maxBacklog", e.to_string()))?,
        None => DEFAULT_MAX_BACKLOG,
    };
    let retention = match secret.data.get("retention") {
        Some(v) => Some(
            v.trim()
                .parse::<kube::core::Duration>()
                .map(Duration::from)
                .map_err(|e| bad("retention", format!("{e} (e.g. 1440h)")))?,
        ),
        None => None,
    };
    let priority = match secret.data.get("priority").map(|s| s.trim()) {
        None | Some("Normal") => TaskPriority::Normal,
        Some("High") => TaskPriority::High,
        Some("Low") => TaskPriority::Low,
        Some(other) => {
            return Err(bad(
                "priority",
                format!("{other:?} is not High, Normal or Low"),
            ));
        }
    };
    let admission = match secret.data.get("admission") {
        None => AdmissionMode::default(),
        Some(v) => AdmissionMode::parse(v)
            .ok_or_else(|| bad("admission", format!("{v:?} is not queue or immediate")))?,
    };
    Ok(Tenant {
        name: secret.tenant.clone(),
        namespace,
        max_backlog,
        retention,
        priority,
        admission,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(name: &str, tenant: &str, data: &[(&str, &str)]) -> TenantSecret {
        TenantSecret {
            name: name.to_owned(),
            namespace: "esup-system".to_owned(),
            tenant: tenant.to_owned(),
            data: data
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn tokens_map_to_their_tenant_and_secret_key() {
        let (table, errors) = TokenTable::build(&[
            secret(
                "t-x",
                "univ-x",
                &[
                    ("token", "aaa"),
                    ("token-2026", "bbb"),
                    ("namespace", "pod-x"),
                    ("maxBacklog", "7"),
                ],
            ),
            secret(
                "t-y",
                "univ-y",
                &[
                    ("token", "ccc"),
                    ("priority", "Low"),
                    ("retention", "720h"),
                    ("admission", "immediate"),
                ],
            ),
        ]);
        assert!(errors.is_empty(), "{errors:?}");
        let x = table.authenticate("bbb").expect("rotated token works");
        assert_eq!(x.tenant.admission, AdmissionMode::Queue, "the default");
        assert_eq!(
            table.authenticate("ccc").map(|c| c.tenant.admission),
            Some(AdmissionMode::Immediate)
        );
        assert_eq!(
            (
                x.tenant.name.as_str(),
                x.tenant.namespace.as_str(),
                x.tenant.max_backlog
            ),
            ("univ-x", "pod-x", 7)
        );
        assert_eq!(x.token_ref.key, "token-2026");
        let y = table.authenticate("ccc").unwrap();
        assert_eq!(y.tenant.namespace, "univ-y");
        assert_eq!(y.tenant.priority, TaskPriority::Low);
        assert_eq!(y.tenant.retention, Some(Duration::from_secs(720 * 3600)));
        assert!(table.authenticate("aab").is_none());
        assert!(table.authenticate("").is_none());
        assert_eq!(table.tenants().len(), 2);
    }

    #[test]
    fn bad_secrets_are_skipped_with_a_reason() {
        let table = [
            (secret("a", "Univ_X", &[("token", "t")]), "BadTenantName"),
            (secret("b", "univ-x", &[("other", "t")]), "NoToken"),
            (
                secret("c", "univ-x", &[("token", "t"), ("maxBacklog", "lots")]),
                "BadTenantSetting",
            ),
            (
                secret("d", "univ-x", &[("token", "t"), ("priority", "Urgent")]),
                "BadTenantSetting",
            ),
            (
                secret("e", "univ-x", &[("token", "t"), ("namespace", "Bad NS")]),
                "BadTenantSetting",
            ),
            (
                secret("f", "univ-x", &[("token", "t"), ("admission", "later")]),
                "BadTenantSetting",
            ),
        ];
        for (s, category) in table {
            let (built, errors) = TokenTable::build(std::slice::from_ref(&s));
            assert!(built.is_empty(), "{s:?}");
            assert_eq!(errors.len(), 1);
            assert_eq!(errors[0].category(), category, "{:?}", errors[0]);
        }
    }

    #[test]
    fn comparison_is_over_digests() {
        let a = digest(b"token");
        let mut b = a;
        assert!(constant_time_eq(&a, &b));
        b[31] ^= 1;
        assert!(!constant_time_eq(&a, &b));
    }
}
