//! A task's lifecycle, the same for every kind (`run`): the callbacks and the log set up, the
//! kind's body run, `encoding.log` written and, when a failure is final, the failed
//! completion posted. Also what every body uses on its way: the scratch directory, the
//! source's fetch (`fetch`), progress (`progress`) and the delivery of the outputs. I/O.

pub mod fetch;
pub mod progress;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use esup_api::runner::Completion;
use esup_api::status::HardwareReport;
use esup_api::wire::TerminalStatus;

use crate::cli::TaskArgs;
use crate::error::RunnerError;
use crate::io::deliver::{Callback, list_outputs};
use crate::io::io_error;
use crate::naming::ENCODING_LOG;
use crate::task::progress::report;

/// The log written to `encoding.log` and sent as `script_output`.
pub use esup_transcribe::shared_log::SharedLog as Log;

/// Runs `body` as a task: callbacks from `args`, a fresh log, the elapsed time logged; on
/// failure, `encoding.log` in `--out` and, when final, the failed completion. Returns the
/// process exit code.
pub async fn run(
    args: &TaskArgs,
    body: impl AsyncFnOnce(Option<&Callback>, &mut Log) -> Result<(), RunnerError>,
) -> i32 {
    let callback = match args.callback_url.as_deref().filter(|u| !u.is_empty()) {
        Some(url) => match Callback::new(url, &args.callback_token) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!(error = %e, "cannot set up callbacks");
                return e.exit_code();
            }
        },
        None => None,
    };
    let launch = &args.launch;
    tracing::info!(
        kind = launch.kind.as_deref().unwrap_or(""),
        namespace = launch.namespace.as_deref().unwrap_or(""),
        task = launch.name.as_deref().unwrap_or(""),
        uid = launch.uid.as_deref().unwrap_or(""),
        launch = launch.launch.unwrap_or(0),
        pool = launch.pool.as_deref().unwrap_or(""),
        "task started"
    );
    let mut log = Log::default();
    let started = Instant::now();
    let result = body(callback.as_ref(), &mut log).await;
    writeln!(log, "elapsed: {:.2} s", started.elapsed().as_secs_f64()).ok();
    match result {
        Ok(()) => 0,
        Err(e) => fail(args, callback.as_ref(), &mut log, e).await,
    }
}

/// A failed task: its log kept beside the outputs, the failure posted when no retry can
/// help. Returns the exit code.
async fn fail(args: &TaskArgs, callback: Option<&Callback>, log: &mut Log, e: RunnerError) -> i32 {
    writeln!(log, "error ({}): {e}", e.category()).ok();
    tracing::error!(category = e.category(), error = %e, "task failed");
    std::fs::create_dir_all(&args.out).ok();
    std::fs::write(args.out.join(ENCODING_LOG), log.text()).ok();
    if e.is_final()
        && let Some(cb) = callback
    {
        let completion = Completion {
            status: TerminalStatus::Failed,
            error_message: Some(e.to_string()),
            script_output: Some(script_output(log)),
            files: Vec::new(),
            hardware: None,
        };
        if let Err(post) = cb.complete(&completion).await {
            tracing::error!(error = %post, "cannot post the failure");
            return post.exit_code().max(e.exit_code());
        }
    }
    e.exit_code()
}

/// The completion's `script_output`: the log under the reference runner's heading.
pub fn script_output(log: &Log) -> String {
    format!("[info_script.log]\n{}", log.text())
}

/// The scratch directory: `--work`, else one under the system temp dir.
pub fn work_dir(args: &TaskArgs) -> Result<PathBuf, RunnerError> {
    let work: PathBuf = args.work.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("esup-runner-{}", std::process::id()))
    });
    std::fs::create_dir_all(&work).map_err(io_error("work directory"))?;
    Ok(work)
}

/// Writes `encoding.log`, then, with callbacks, uploads every file of `out` (each with its
/// sha256) and posts the completion.
pub async fn deliver(
    callback: Option<&Callback>,
    out: &Path,
    log: &Log,
    hardware: HardwareReport,
) -> Result<(), RunnerError> {
    std::fs::write(out.join(ENCODING_LOG), log.text()).map_err(io_error("encoding.log"))?;
    let Some(cb) = callback else {
        return Ok(());
    };
    report(Some(cb), "upload", None, None).await;
    let mut files = Vec::new();
    let listing = list_outputs(out)
        .map_err(|e| RunnerError::transient("DiskReadFailed", format!("listing outputs: {e}")))?;
    for rel in listing {
        files.push(cb.upload(out, &rel).await?);
    }
    let completion = Completion {
        status: TerminalStatus::Completed,
        error_message: None,
        script_output: Some(script_output(log)),
        files,
        hardware: Some(hardware),
    };
    cb.complete(&completion).await
}
