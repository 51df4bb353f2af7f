//! The callback tokens of task launches, read from the Secrets the operator creates (I/O) and
//! kept briefly, so that a runner's progress reports (one every 5 s) and uploads do not each
//! cost a read from the API server.
//!
//! A token that matches its cached copy is accepted; one that does not is checked against the
//! Secret read afresh, so a Secret replaced with a new token never refuses the new token. What
//! the cache delays is only the refusal of a token whose Secret was deleted or replaced: at
//! most [`CALLBACK_TOKEN_TTL`] after the Secret was last read (sooner once a token that does
//! not match makes it read again). Only tokens read successfully are kept: a missing Secret is
//! read again at the next call.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::Api;
use warp::http::StatusCode;

use crate::error::ApiError;
use crate::tenants::tokens_match;

/// How long a token read from its Secret is believed: as long as the notifier believes a
/// tenant's token (`notifier::SECRET_TTL`). Progress every 5 s then costs one read in six,
/// and a revoked token stops working within half a minute.
pub const CALLBACK_TOKEN_TTL: Duration = Duration::from_secs(30);

/// (namespace, Secret name).
type Key = (String, String);

/// Tokens by Secret, with when they were read. No `Debug`: it holds credentials.
pub struct CallbackTokens {
    ttl: Duration,
    entries: Mutex<HashMap<Key, (Instant, Vec<u8>)>>,
}

impl Default for CallbackTokens {
    fn default() -> Self {
        Self::with_ttl(CALLBACK_TOKEN_TTL)
    }
}

impl CallbackTokens {
    pub fn with_ttl(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::default(),
        }
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<Key, (Instant, Vec<u8>)>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `presented` matches the token of `key` read less than the TTL before `now`.
    fn cached_match(&self, key: &Key, presented: &[u8], now: Instant) -> bool {
        self.entries().get(key).is_some_and(|(read, token)| {
            now.saturating_duration_since(*read) < self.ttl && tokens_match(token, presented)
        })
    }

    /// Keeps `token` as read at `now`, dropping the entries that have expired.
    fn remember(&self, key: Key, token: Vec<u8>, now: Instant) {
        let mut entries = self.entries();
        entries.retain(|_, (read, _)| now.saturating_duration_since(*read) < self.ttl);
        entries.insert(key, (now, token));
    }

    fn forget(&self, key: &Key) {
        self.entries().remove(key);
    }

    /// Checks `presented` against the callback token in Secret `namespace/name`: 401 when
    /// the Secret or its token is missing, 403 when the token differs, 503 when the Secret
    /// cannot be read.
    pub async fn check(
        &self,
        client: &Client,
        namespace: &str,
        name: &str,
        presented: &[u8],
    ) -> Result<(), ApiError> {
        let key = (namespace.to_owned(), name.to_owned());
        if self.cached_match(&key, presented, Instant::now()) {
            return Ok(());
        }
        let expected = match read(client, namespace, name).await {
            Ok(token) => token,
            Err(e) => {
                self.forget(&key);
                return Err(e);
            }
        };
        let matched = tokens_match(&expected, presented);
        self.remember(key, expected, Instant::now());
        if matched {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "WrongCallbackToken",
                "Token not authorized for this task",
            ))
        }
    }
}

/// The token of Secret `namespace/name`, as the API server has it now.
async fn read(client: &Client, namespace: &str, name: &str) -> Result<Vec<u8>, ApiError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = secrets
        .get_opt(name)
        .await
        .map_err(|e| {
            ApiError::unavailable(
                "ApiServerUnavailable",
                format!("cannot read the task's callback token: {e}"),
            )
        })?
        .ok_or_else(ApiError::invalid_token)?;
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(esup_api::runner::CALLBACK_TOKEN_KEY))
        .map(|v| v.0.clone())
        .ok_or_else(ApiError::invalid_token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Key {
        ("ns".to_owned(), name.to_owned())
    }

    #[test]
    fn a_cached_token_is_believed_for_the_ttl_only() {
        let tokens = CallbackTokens::with_ttl(Duration::from_secs(30));
        let t0 = Instant::now();
        tokens.remember(key("cb1"), b"1.secret".to_vec(), t0);
        assert!(tokens.cached_match(&key("cb1"), b"1.secret", t0 + Duration::from_secs(29)));
        assert!(!tokens.cached_match(&key("cb1"), b"1.other", t0));
        assert!(!tokens.cached_match(&key("cb2"), b"1.secret", t0));
        // Expired: the Secret must be read again, so a deleted one is refused from then on.
        assert!(!tokens.cached_match(&key("cb1"), b"1.secret", t0 + Duration::from_secs(30)));
        // Expired entries go when another is kept.
        tokens.remember(
            key("cb2"),
            b"2.secret".to_vec(),
            t0 + Duration::from_secs(31),
        );
        assert_eq!(tokens.entries().len(), 1);
        tokens.forget(&key("cb2"));
        assert!(tokens.entries().is_empty());
    }
}
