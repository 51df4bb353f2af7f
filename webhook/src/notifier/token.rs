//! Which Secret a notification may take its bearer token from, free of I/O.
//!
//! A task's `spec.notify.tokenSecretRef` is written by whoever creates the task. Trusting it
//! would let anyone who can create a task have the webhook POST any Secret it can read (S3 keys,
//! Helm release Secrets, other tenants' tokens) to a URL of their choosing. So the reference is
//! only honoured when it names a tenant Secret of the tenant-Secret namespace, labelled with
//! the task's own tenant, under a `token` / `token-*` key: exactly what the webhook itself
//! writes when Esup-Pod submits a task.

use esup_api::SecretKeyRef;
use k8s_openapi::api::core::v1::Secret;

use esup_api::labels::TENANT as TENANT_LABEL;

use crate::tenants::is_token_key;

/// Event reason and condition reason of a refused token reference.
pub const NOTIFY_TOKEN_REFUSED: &str = "NotifyTokenRefused";

/// Why the notifier will not use the Secret key a task names. Final: the task's spec does not
/// change by waiting, so the notification ends without a send.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefusal {
    #[error(
        "tokenSecretRef names a Secret in namespace {got}; notify tokens are only read from \
         the tenant Secrets of namespace {allowed}"
    )]
    OtherNamespace { got: String, allowed: String },
    #[error("tokenSecretRef key {0:?} is not `token` or `token-*`")]
    NotATokenKey(String),
    #[error("Secret {0} is not a tenant Secret (no {TENANT_LABEL} label)")]
    NotATenantSecret(String),
    #[error("Secret {secret} belongs to tenant {owner:?}, not to the task's tenant {tenant:?}")]
    OtherTenant {
        secret: String,
        owner: String,
        tenant: String,
    },
    #[error("Secret {secret} has no usable token under key {key}")]
    NoValue { secret: String, key: String },
}

impl TokenRefusal {
    /// Metric label and log category; the Event reason is [`NOTIFY_TOKEN_REFUSED`].
    pub fn category(&self) -> &'static str {
        match self {
            Self::OtherNamespace { .. } => "OtherNamespace",
            Self::NotATokenKey(_) => "NotATokenKey",
            Self::NotATenantSecret(_) => "NotATenantSecret",
            Self::OtherTenant { .. } => "OtherTenant",
            Self::NoValue { .. } => "NoTokenValue",
        }
    }
}

/// What can be decided from the reference alone, before anything is read: the namespace to
/// read from (an unset namespace means the tenant-Secret namespace).
pub fn check_ref(r: &SecretKeyRef, allowed_namespace: &str) -> Result<String, TokenRefusal> {
    let namespace = r.namespace.as_deref().unwrap_or(allowed_namespace);
    if namespace != allowed_namespace {
        return Err(TokenRefusal::OtherNamespace {
            got: namespace.to_owned(),
            allowed: allowed_namespace.to_owned(),
        });
    }
    if !is_token_key(&r.key) {
        return Err(TokenRefusal::NotATokenKey(r.key.clone()));
    }
    Ok(namespace.to_owned())
}

/// The token of `secret` that a task of `tenant` referring to it by `r` may be notified with.
pub fn token_for(
    secret: &Secret,
    tenant: &str,
    r: &SecretKeyRef,
    allowed_namespace: &str,
) -> Result<String, TokenRefusal> {
    check_ref(r, allowed_namespace)?;
    let meta = &secret.metadata;
    let namespace = meta.namespace.as_deref().unwrap_or_default();
    // The Secret read must be the one named, in the allowed namespace (a guard against a
    // caller that fetched something else).
    if namespace != allowed_namespace {
        return Err(TokenRefusal::OtherNamespace {
            got: namespace.to_owned(),
            allowed: allowed_namespace.to_owned(),
        });
    }
    let id = format!("{namespace}/{}", meta.name.as_deref().unwrap_or(&r.name));
    let owner = meta
        .labels
        .as_ref()
        .and_then(|l| l.get(TENANT_LABEL))
        .ok_or_else(|| TokenRefusal::NotATenantSecret(id.clone()))?;
    if owner != tenant {
        return Err(TokenRefusal::OtherTenant {
            secret: id,
            owner: owner.clone(),
            tenant: tenant.to_owned(),
        });
    }
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(&r.key))
        .and_then(|v| std::str::from_utf8(&v.0).ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .ok_or(TokenRefusal::NoValue {
            secret: id,
            key: r.key.clone(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    const NS: &str = "esup-tenants";

    fn secret(namespace: &str, tenant: Option<&str>, data: &[(&str, &str)]) -> Secret {
        let mut s = Secret::default();
        s.metadata.name = Some("tenant-univ-x".into());
        s.metadata.namespace = Some(namespace.into());
        s.metadata.labels = tenant.map(|t| {
            [(TENANT_LABEL.to_owned(), t.to_owned())]
                .into_iter()
                .collect()
        });
        s.data = Some(
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        );
        s
    }

    fn reference(namespace: Option<&str>, key: &str) -> SecretKeyRef {
        SecretKeyRef {
            name: "tenant-univ-x".into(),
            key: key.into(),
            namespace: namespace.map(str::to_owned),
        }
    }

    #[test]
    fn only_the_tasks_own_tenant_token_is_used() {
        let tenant_secret = secret(
            NS,
            Some("univ-x"),
            &[
                ("token", " tok-x \n"),
                ("token-2", "tok-x-2"),
                ("aws-secret-access-key", "AKIA"),
                ("token-empty", "  "),
            ],
        );
        let cases: Vec<(&str, Secret, SecretKeyRef, Result<&str, &str>)> = vec![
            (
                "key token",
                tenant_secret.clone(),
                reference(Some(NS), "token"),
                Ok("tok-x"),
            ),
            (
                "key token-2",
                tenant_secret.clone(),
                reference(Some(NS), "token-2"),
                Ok("tok-x-2"),
            ),
            (
                "namespace unset: the tenant-Secret namespace",
                tenant_secret.clone(),
                reference(None, "token"),
                Ok("tok-x"),
            ),
            (
                "other namespace named",
                secret("kube-system", Some("univ-x"), &[("token", "t")]),
                reference(Some("kube-system"), "token"),
                Err("OtherNamespace"),
            ),
            (
                "named right, but the Secret read is elsewhere",
                secret("esup-system", Some("univ-x"), &[("token", "t")]),
                reference(Some(NS), "token"),
                Err("OtherNamespace"),
            ),
            (
                "no tenant label (an S3 or Helm Secret)",
                secret(NS, None, &[("token", "t")]),
                reference(Some(NS), "token"),
                Err("NotATenantSecret"),
            ),
            (
                "another tenant's Secret",
                secret(NS, Some("univ-y"), &[("token", "t")]),
                reference(Some(NS), "token"),
                Err("OtherTenant"),
            ),
            (
                "key aws-secret-access-key",
                tenant_secret.clone(),
                reference(Some(NS), "aws-secret-access-key"),
                Err("NotATokenKey"),
            ),
            (
                "key namespace (a tenant setting)",
                tenant_secret.clone(),
                reference(Some(NS), "namespace"),
                Err("NotATokenKey"),
            ),
            (
                "empty value",
                tenant_secret.clone(),
                reference(Some(NS), "token-empty"),
                Err("NoTokenValue"),
            ),
            (
                "missing key",
                tenant_secret.clone(),
                reference(Some(NS), "token-9"),
                Err("NoTokenValue"),
            ),
        ];
        for (name, s, r, expected) in cases {
            let got = token_for(&s, "univ-x", &r, NS);
            match expected {
                Ok(token) => assert_eq!(got.as_deref(), Ok(token), "{name}"),
                Err(category) => {
                    let refusal = got.expect_err(name);
                    assert_eq!(refusal.category(), category, "{name}: {refusal}");
                }
            }
        }
    }

    /// The reference the webhook writes on a task it creates (from the token table, built
    /// from the watched Secrets) is one the notifier accepts.
    #[test]
    fn the_webhooks_own_references_pass() {
        use crate::tenants::{TenantSecret, TokenTable};
        let watched = TenantSecret {
            name: "tenant-univ-x".into(),
            namespace: NS.into(),
            tenant: "univ-x".into(),
            data: [("token", "tok-x"), ("token-2027", "tok-x-2")]
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        let (table, errors) = TokenTable::build(&[watched]);
        assert!(errors.is_empty());
        let stored = secret(
            NS,
            Some("univ-x"),
            &[("token", "tok-x"), ("token-2027", "tok-x-2")],
        );
        for presented in ["tok-x", "tok-x-2"] {
            let caller = table.authenticate(presented).expect("known token");
            assert_eq!(caller.token_ref.namespace.as_deref(), Some(NS));
            assert_eq!(
                token_for(&stored, &caller.tenant.name, &caller.token_ref, NS).as_deref(),
                Ok(presented)
            );
        }
    }

    #[test]
    fn references_are_refused_before_any_read() {
        assert_eq!(
            check_ref(&reference(None, "token-2026"), NS).as_deref(),
            Ok(NS)
        );
        assert_eq!(
            check_ref(&reference(Some("default"), "token"), NS).map_err(|e| e.category()),
            Err("OtherNamespace")
        );
        assert_eq!(
            check_ref(&reference(Some(NS), "tokens"), NS).map_err(|e| e.category()),
            Err("NotATokenKey")
        );
    }
}
