//! What the operator and the webhook share for running on Kubernetes, so that neither binary
//! links the other's crate: the `build_info` metric, the command-line preamble (`cli`: logging, durations, identity,
//! shutdown), the error of a failed API request (`error`), Lease-based leader election (`leader`, I/O), watches that one undecodable
//! object cannot stall, with the relist-aware version check their caches use (`watch`), and
//! the API of either task kind chosen at run time (`tasks`).
//! The API types and every pure rule of the contract live in `esup-api`, below this crate.

pub mod build_info;
pub mod cli;
pub mod error;
pub mod leader;
pub mod tasks;
pub mod watch;
