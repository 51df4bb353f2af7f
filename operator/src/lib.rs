//! esup-runner-operator's controller: schedules `EncodingTask` and `TranscriptionTask` onto
//! `RunnerPool`s as Jobs.
//!
//! Pure parts (no client, unit-tested on values): `model` (compact views of API objects),
//! `schedule` (pool choice, capacity, queue order, fair share, overflow, preemption),
//! `job` (Job builder), `failure` (why an attempt ended), `status` (conditions and status
//! patches). I/O parts: `runtime` (watchers, the scheduling loop, writes), `http` (`/metrics`,
//! `/healthz`, `/readyz`). Leader election, guarded watches and the command-line preamble are
//! `esup-kube-common`'s, shared with the webhook.

pub mod crdgen;
pub mod error;
pub mod failure;
pub mod http;
pub mod job;
pub mod metrics;
pub mod model;
pub mod runtime;
pub mod schedule;
pub mod status;
