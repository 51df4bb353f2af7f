# Shared settings of the runner-image/models scripts (sourced, not run).
# Every pin lives here so that a version bump is one edit and moves every cache key.
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1  # keep the checkout clean of __pycache__

ESUP_CACHE_DIR=${ESUP_CACHE_DIR:-$HOME/.cache/esup-runner}
MODELS_DIR=${ESUP_MODELS_DIR:-$ESUP_CACHE_DIR/models}
MODELS_SRC_DIR=$ESUP_CACHE_DIR/models-src

# Tools of the converter: numpy only at run time, pytest for its unit tests.
NUMPY_VERSION=2.4.6
PYTEST_VERSION=9.2.0
MODELS_VENV_VERSION=1-numpy$NUMPY_VERSION-pytest$PYTEST_VERSION
MODELS_VENV=$ESUP_CACHE_DIR/models-venv-$MODELS_VENV_VERSION

# whisper.cpp as vendored by the whisper-rs-sys crate that whisper-rs 0.16.0 depends on: the
# same inference code as the runner, so the check proves what production will load.
WHISPER_RS_VERSION=0.16.0
WHISPER_RS_SYS_VERSION=0.15.0
WHISPER_CPP_VERSION=1.8.3
WHISPER_CPP_DIR=$ESUP_CACHE_DIR/whisper-cpp-$WHISPER_CPP_VERSION

models_log() { printf '[models] %s\n' "$*" >&2; }
models_die() { printf '[models] error: %s\n' "$*" >&2; exit 1; }

# Serialise concurrent runs (make models from two shells, CI and a developer).
models_lock() { # NAME
  mkdir -p "$ESUP_CACHE_DIR"
  exec {MODELS_LOCK_FD}>"$ESUP_CACHE_DIR/$1.lock"
  flock "$MODELS_LOCK_FD"
}
