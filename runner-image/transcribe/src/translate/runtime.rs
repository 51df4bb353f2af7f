//! ONNX Runtime, loaded once per process from a given `libonnxruntime.so`, with every failure
//! (missing file, wrong version, not a library) an error instead of a panic.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;

use super::TranslateError;

/// ort allows one environment per process; it is created by the first caller and kept
/// (with the path it came from, so a second caller asking for another library is told).
static ENV: OnceLock<(PathBuf, Environment)> = OnceLock::new();
static INIT: Mutex<()> = Mutex::new(());

pub fn ort_environment(library: &Path) -> Result<&'static Environment, TranslateError> {
    // dlopen of a missing file is reported by ort too, but this message says how to install it.
    if !library.is_file() {
        return Err(TranslateError::RuntimeMissing(library.to_path_buf()));
    }
    if let Some((path, env)) = ENV.get() {
        return same_library(path, library).map(|()| env);
    }
    let _guard = INIT
        .lock()
        .map_err(|_| TranslateError::RuntimeLoad("a previous load panicked".into()))?;
    if let Some((path, env)) = ENV.get() {
        return same_library(path, library).map(|()| env);
    }
    let library = library
        .canonicalize()
        .map_err(|e| TranslateError::RuntimeLoad(format!("{}: {e}", library.display())))?;
    let builder =
        ort::init_from(&library).map_err(|e| TranslateError::RuntimeLoad(e.to_string()))?;
    let env = builder
        .with_name("esup-transcribe")
        .build()
        .map_err(|e| TranslateError::RuntimeLoad(e.to_string()))?;
    let (_, env) = ENV.get_or_init(|| (library, env));
    Ok(env)
}

fn same_library(loaded: &Path, wanted: &Path) -> Result<(), TranslateError> {
    let wanted = wanted
        .canonicalize()
        .unwrap_or_else(|_| wanted.to_path_buf());
    if wanted == loaded {
        Ok(())
    } else {
        Err(TranslateError::RuntimeLoad(format!(
            "ONNX Runtime is already loaded from {} in this process; cannot load {}",
            loaded.display(),
            wanted.display()
        )))
    }
}
