//! `crdgen DIR` writes the CRDs into DIR; `crdgen --check DIR` exits 1 if DIR differs from
//! what the API types generate (CI runs it so that `crds/` never drifts from `api/`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use esup_operator::crdgen::{CrdFile, render};

const USAGE: &str = "usage: crdgen [--check] DIR\n  writes (or with --check, compares) DIR/<plural>.<group>.yaml for every CRD";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (check, dir) = match args.as_slice() {
        [flag, dir] if flag == "--check" => (true, PathBuf::from(dir)),
        [dir] if !dir.starts_with('-') => (false, PathBuf::from(dir)),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let files = match render() {
        Ok(files) => files,
        Err(err) => {
            eprintln!("crdgen: {err}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = if check {
        check_dir(&dir, &files)
    } else {
        write_dir(&dir, &files)
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("crdgen: {message}");
            ExitCode::FAILURE
        }
    }
}

fn write_dir(dir: &Path, files: &[CrdFile]) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for file in files {
        let path = dir.join(&file.file_name);
        std::fs::write(&path, &file.yaml)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn check_dir(dir: &Path, files: &[CrdFile]) -> Result<(), String> {
    let stale: Vec<String> = files
        .iter()
        .filter(|file| {
            std::fs::read_to_string(dir.join(&file.file_name))
                .ok()
                .as_deref()
                != Some(file.yaml.as_str())
        })
        .map(|file| dir.join(&file.file_name).display().to_string())
        .collect();
    if stale.is_empty() {
        return Ok(());
    }
    Err(format!(
        "generated CRDs differ from the committed ones (run `make crds` and commit): {}",
        stale.join(", ")
    ))
}
