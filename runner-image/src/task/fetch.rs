//! Fetching a task's source (protocol §3.0): its extension checked, the output and work
//! directories made, the bounded and retried download under the URL policy. I/O.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::TaskArgs;
use crate::error::RunnerError;
use crate::io::deliver::Callback;
use crate::io::download::{DownloadPolicy, fetch, system_lookup};
use crate::io::io_error;
use crate::naming::{MEDIA_EXTENSIONS, media_extension, output_base, source_file_name};
use crate::task::progress::report;
use crate::task::{Log, work_dir};

/// The downloaded source, its extension and the outputs' base name (§3.0).
pub struct Fetched {
    pub path: PathBuf,
    pub extension: String,
    pub base: String,
}

/// §3.0's download policy, bounded by `--max-source-bytes`, under the URL policy of
/// `ESUP_ALLOWED_HOSTS`, `ESUP_PRIVATE_HOSTS` and `ESUP_PRIVATE_NETWORKS`.
pub fn download_policy(args: &TaskArgs) -> DownloadPolicy {
    DownloadPolicy {
        max_bytes: args.max_source_bytes,
        attempts: 5,
        placeholder_attempts: 12,
        base_delay: Duration::from_millis(args.retry_base_ms),
        urls: Arc::new(args.url_policy()),
        lookup: system_lookup(),
    }
}

/// Checks the source's extension, makes the output and work directories, and downloads the
/// source (bounded, retried), reporting the `download` stage.
pub async fn fetch_source(
    args: &TaskArgs,
    callback: Option<&Callback>,
    log: &mut Log,
    media_duration: Option<f64>,
) -> Result<Fetched, RunnerError> {
    let file_name = source_file_name(&args.source);
    let extension = media_extension(&file_name).ok_or_else(|| {
        RunnerError::invalid_input(
            "UnsupportedExtension",
            format!(
                "{file_name:?} does not have a media extension ({})",
                MEDIA_EXTENSIONS.join(", ")
            ),
        )
    })?;
    std::fs::create_dir_all(&args.out).map_err(io_error("output directory"))?;
    let work = work_dir(args)?;

    report(callback, "download", None, media_duration).await;
    let path = fetch(
        "source_url",
        &args.source,
        &work,
        &file_name,
        &download_policy(args),
    )
    .await?;
    writeln!(log, "source: {} ({})", args.source, path.display()).ok();
    Ok(Fetched {
        path,
        extension,
        base: output_base(&file_name),
    })
}
