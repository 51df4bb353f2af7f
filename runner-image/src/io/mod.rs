//! The runner's network and disk I/O: `download` (the bounded, retried, URL-policed fetch),
//! `assets` (a task's files besides its source: dressing, studio recording), `deliver` (the
//! webhook's runner callbacks: progress, file uploads, completion); and the disk write
//! error they and the tasks share.

pub mod assets;
pub mod deliver;
pub mod download;

use crate::error::RunnerError;

/// A failed disk write of `what`: transient (the node's disk, not the task).
pub fn io_error(what: &'static str) -> impl Fn(std::io::Error) -> RunnerError {
    move |e| RunnerError::transient("DiskWriteFailed", format!("{what}: {e}"))
}
