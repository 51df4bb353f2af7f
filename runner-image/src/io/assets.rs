//! The files a task needs besides its source, fetched with the source's bounded, retried
//! download and URL rules: the dressing's watermark and credits videos, and a studio
//! recording's mediapackage, SMIL cutting catalog and tracks.

use std::io::Write;
use std::path::Path;

use esup_api::encoding::Dressing;

use crate::dressing::plan::Assets;
use crate::error::RunnerError;
use crate::io::download::{DownloadPolicy, fetch, is_url_refusal};
use crate::io::io_error;
use crate::naming::{is_http_url, media_extension, source_file_name};
use crate::studio::mediapackage::{Origin, Recording, parse, smil_cut};

/// Largest mediapackage or SMIL document accepted.
pub const MAX_XML_BYTES: u64 = 4 * 1024 * 1024;

/// `name.<ext>` with the URL's extension when it is a plain one, else `fallback`.
fn local_name(url: &str, name: &str, fallback: &str) -> String {
    let file = source_file_name(url);
    let ext = file
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .filter(|e| !e.is_empty() && e.len() <= 5 && e.bytes().all(|b| b.is_ascii_alphanumeric()))
        .unwrap_or_else(|| fallback.to_owned());
    format!("{name}.{ext}")
}

/// A final problem with a dressing file is the dressing's: its own category, the URL in
/// the message. Transient failures and URL policy refusals (already named) stay as they are.
fn recategorise(category: &'static str, what: &str, url: &str, e: RunnerError) -> RunnerError {
    match e {
        e if is_url_refusal(&e) => e,
        RunnerError::InvalidInput { message, .. } => {
            RunnerError::invalid_input(category, format!("{what} {url}: {message}"))
        }
        other => other,
    }
}

/// Downloads the watermark and credits into `work/dressing/`. A task whose source came over
/// http(s) may only name http(s) files.
pub async fn fetch_dressing(
    dressing: &Dressing,
    source: &str,
    work: &Path,
    policy: &DownloadPolicy,
    log: &mut dyn Write,
) -> Result<Assets, RunnerError> {
    let dir = work.join("dressing");
    std::fs::create_dir_all(&dir).map_err(io_error("work directory"))?;
    let get = |category: &'static str,
               what: &'static str,
               field: &'static str,
               url: String,
               name: String| {
        let dir = dir.clone();
        async move {
            if is_http_url(source) && !is_http_url(&url) {
                return Err(RunnerError::invalid_input(
                    category,
                    format!("{what} {url:?} is not an http(s) URL"),
                ));
            }
            fetch(field, &url, &dir, &name, policy)
                .await
                .map_err(|e| recategorise(category, what, &url, e))
        }
    };
    let mut assets = Assets::default();
    if let Some(wm) = &dressing.watermark {
        let name = local_name(&wm.url, "watermark", "png");
        let path = get(
            "InvalidWatermark",
            "watermark",
            "dressing.watermark",
            wm.url.clone(),
            name,
        )
        .await?;
        writeln!(log, "watermark: {} ({})", wm.url, path.display()).ok();
        assets.watermark = Some((path, wm.clone()));
    }
    for (which, credits, field) in [
        (
            "opening",
            &dressing.opening_credits,
            "dressing.opening_credits_video",
        ),
        (
            "ending",
            &dressing.ending_credits,
            "dressing.ending_credits_video",
        ),
    ] {
        let Some(c) = credits else { continue };
        let name = local_name(&c.url, &format!("{which}_credits"), "mp4");
        let what = if which == "opening" {
            "opening credits"
        } else {
            "ending credits"
        };
        let path = get("InvalidCredits", what, field, c.url.clone(), name).await?;
        writeln!(log, "{what}: {} ({})", c.url, path.display()).ok();
        if which == "opening" {
            assets.opening = Some(path);
        } else {
            assets.ending = Some(path);
        }
    }
    Ok(assets)
}

fn package_error(e: crate::studio::mediapackage::MediapackageError) -> RunnerError {
    RunnerError::invalid_input(e.category(), e.to_string())
}

fn read_text(path: &Path, what: &str) -> Result<String, RunnerError> {
    let bytes = std::fs::read(path)
        .map_err(|e| RunnerError::transient("DiskReadFailed", format!("{what}: {e}")))?;
    String::from_utf8(bytes).map_err(|_| {
        RunnerError::invalid_input("InvalidMediapackage", format!("{what} is not UTF-8 text"))
    })
}

/// Downloads the mediapackage at `source`, its SMIL catalog and its tracks into `work`.
pub async fn fetch_recording(
    source: &str,
    work: &Path,
    policy: &DownloadPolicy,
    log: &mut dyn Write,
) -> Result<Recording, RunnerError> {
    let small = DownloadPolicy {
        max_bytes: policy.max_bytes.min(MAX_XML_BYTES),
        ..policy.clone()
    };
    let xml_path = fetch("source_url", source, work, "mediapackage.xml", &small)
        .await
        .map_err(|e| recategorise("InvalidMediapackage", "mediapackage", source, e))?;
    let package = parse(&read_text(&xml_path, "the mediapackage")?).map_err(package_error)?;
    writeln!(log, "mediapackage: {source}: {package:?}").ok();
    let origin = Origin::of(source).map_err(package_error)?;

    let cut = match &package.smil {
        None => None,
        Some(reference) => {
            let url = origin
                .resolve("SMIL catalog", reference)
                .map_err(package_error)?;
            match fetch(
                "mediapackage SMIL catalog",
                &url,
                work,
                "cutting.smil",
                &small,
            )
            .await
            {
                // A refused URL is an error, not a missing cut.
                Err(e) if is_url_refusal(&e) => return Err(e),
                Ok(path) => {
                    let cut = read_text(&path, "the SMIL catalog")
                        .ok()
                        .and_then(|t| smil_cut(&t));
                    writeln!(log, "SMIL catalog {url}: cut {cut:?}").ok();
                    cut
                }
                // As the reference runner: an unreadable catalog means no cut.
                Err(e @ RunnerError::InvalidInput { .. }) => {
                    writeln!(log, "warning: SMIL catalog {url} ignored: {e}").ok();
                    None
                }
                Err(e) => return Err(e),
            }
        }
    };

    let mut tracks = Vec::new();
    for (role, reference) in [
        ("presentation", &package.presentation),
        ("presenter", &package.presenter),
    ] {
        let Some(reference) = reference else { continue };
        let url = origin.resolve(role, reference).map_err(package_error)?;
        let file_name = source_file_name(&url);
        if media_extension(&file_name).is_none() {
            return Err(RunnerError::invalid_input(
                "UnsupportedExtension",
                format!(
                    "the {role} track {file_name:?} does not have a media extension ({})",
                    crate::naming::MEDIA_EXTENSIONS.join(", ")
                ),
            ));
        }
        let dir = work.join(role);
        std::fs::create_dir_all(&dir).map_err(io_error("work directory"))?;
        let field = format!("mediapackage {role} track");
        let path = fetch(&field, &url, &dir, &file_name, policy)
            .await
            .map_err(|e| match e {
                e if is_url_refusal(&e) => e,
                RunnerError::InvalidInput { category, message } => RunnerError::invalid_input(
                    category,
                    format!("the {role} track {url}: {message}"),
                ),
                other => other,
            })?;
        writeln!(log, "{role} track: {url} ({})", path.display()).ok();
        tracks.push((role, path));
    }
    Ok(Recording {
        package,
        tracks,
        cut,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_names_keep_plain_extensions() {
        assert_eq!(
            local_name("https://pod.test/logo.PNG?x=1", "watermark", "png"),
            "watermark.png"
        );
        assert_eq!(
            local_name("https://pod.test/logo", "watermark", "png"),
            "watermark.png"
        );
        assert_eq!(
            local_name("https://pod.test/a.b/intro.webm", "opening_credits", "mp4"),
            "opening_credits.webm"
        );
        assert_eq!(
            local_name("https://pod.test/x.$$$", "watermark", "png"),
            "watermark.png"
        );
    }
}
