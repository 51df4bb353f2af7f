//! Progress of a task: `POST progress` with its stage, and the blocking work (libav,
//! Whisper) run off the async threads while its share done is reported every 5 s. I/O.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use esup_api::runner::ProgressReport;

use crate::io::deliver::Callback;

/// How often the async side reports the blocking work's progress.
const PERIOD: Duration = Duration::from_secs(5);

/// Reports `stage` (and its percent done, the media's length when known); nothing without
/// callbacks.
pub async fn report(
    callback: Option<&Callback>,
    stage: &str,
    percent: Option<f64>,
    duration: Option<f64>,
) {
    if let Some(cb) = callback {
        cb.progress(&ProgressReport {
            stage: stage.to_owned(),
            percent,
            media_duration_seconds: duration,
        })
        .await;
    }
}

/// The stage a blocking work is in, and its percent done: written by the work, read by the
/// async side.
pub struct Progress {
    stages: &'static [&'static str],
    stage: AtomicUsize,
    percent: AtomicU64,
}

impl Progress {
    /// At the first of `stages`, 0 % done.
    pub fn new(stages: &'static [&'static str]) -> Self {
        Self {
            stages,
            stage: AtomicUsize::new(0),
            percent: AtomicU64::new(0.0_f64.to_bits()),
        }
    }

    /// `stage`: an index into the stages.
    pub fn set(&self, stage: usize, percent: f64) {
        self.stage.store(stage, Ordering::Relaxed);
        self.percent.store(percent.to_bits(), Ordering::Relaxed);
    }

    pub fn get(&self) -> (&'static str, f64) {
        let stage = self.stage.load(Ordering::Relaxed);
        (
            self.stages
                .get(stage)
                .or(self.stages.last())
                .copied()
                .unwrap_or_default(),
            f64::from_bits(self.percent.load(Ordering::Relaxed)),
        )
    }
}

/// Runs `work` on the blocking threads and, until it ends, reports `progress` every 5 s
/// (`duration`: the media's length, when known). A panic of `work` comes back as the
/// `JoinError`.
pub async fn run_blocking_with_progress<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
    progress: &Progress,
    callback: Option<&Callback>,
    duration: Option<f64>,
) -> Result<T, tokio::task::JoinError> {
    let mut running = tokio::task::spawn_blocking(work);
    loop {
        tokio::select! {
            done = &mut running => return done,
            () = tokio::time::sleep(PERIOD) => {
                let (stage, percent) = progress.get();
                report(callback, stage, Some(percent), duration).await;
            }
        }
    }
}
