//! Helpers of the project's benchmarks (see `docs/benchmarks.md`): latency summaries, readings
//! of `/proc` for a process's CPU and memory, and the Prometheus text the operator serves.
//! The benchmarks themselves are binaries under `src/bin/`; `webhook` holds the HTTP load
//! generator of `webhook-bench`.

pub mod cluster;
pub mod procfs;
pub mod prom;
pub mod stats;
pub mod webhook;
