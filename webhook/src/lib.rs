//! esup-webhook: Esup-Pod's runner-manager API on top of the task resources.
//!
//! Esup-Pod talks to it exactly as to the reference manager (`../shared/esup-pod-protocol.md`):
//! each `/task/execute` becomes an `EncodingTask` or `TranscriptionTask`; runners post their
//! progress, files and completion back here; results are served to Esup-Pod, which is notified
//! at its `notify_url` for every terminal state.
//!
//! Pure parts: `tenants` (token table), `url_policy` (SSRF guard), `range` (HTTP ranges).
//! Pure parts too: `openapi` (route table, OpenAPI document, docs pages), `metrics`,
//! `rate_limit` (token buckets, client address behind trusted proxies).
//! I/O parts: `store` (result files), the routes (`server`: filters from the route table), the
//! two APIs over the shared `state` (`manager_api` for Esup-Pod, `runner_api` for runners,
//! with `callback_tokens`), the listeners (`serve`: timeouts, connection cap), the notifier.

pub mod admission;
pub mod callback_tokens;
pub mod dedup;
pub mod error;
pub mod health_check;
pub mod manager_api;
pub mod metrics;
pub mod notifier;
pub mod openapi;
pub mod range;
pub mod rate_limit;
pub mod retention;
pub mod runner_api;
pub mod serve;
pub mod server;
pub mod state;
pub mod store;
pub mod tasks;
pub mod tenant_watch;
pub mod tenants;
pub mod url_policy;
pub mod watch;

/// Field manager of the task resources the webhook creates.
pub const FIELD_MANAGER: &str = "esup-webhook";
