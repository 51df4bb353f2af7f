//! Helpers of the project's benchmarks (see `docs/benchmarks.md`): latency summaries, readings
//! of `/proc` for a process's CPU and memory, and the Prometheus text the operator serves.
//! The benchmarks themselves are binaries under `src/bin/`.

pub mod procfs;
pub mod prom;
pub mod stats;
