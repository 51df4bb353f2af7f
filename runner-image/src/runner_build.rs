//! Which build of the runner transcribes here.
//!
//! whisper.cpp's ggml picks its SIMD kernels and its GPU backend at compile time, and the static
//! build that whisper-rs links cannot load variants at run time (ggml's `GGML_BACKEND_DL` needs
//! shared libraries). So an image carries up to three builds, side by side:
//! - `esup-runner`: portable (x86-64-v3: AVX2, FMA, F16C), the one the Job starts;
//! - `esup-runner-x86-64-v4`: whisper.cpp with AVX-512;
//! - `esup-runner-cuda`: whisper.cpp with its CUDA backend (the `-cuda` image, with the CUDA
//!   runtime and cuBLAS).
//!
//! `esup-runner transcribe` execs the best one present for this node (docs/transcription.md,
//! "Runner builds").

use std::path::{Path, PathBuf};

/// Set in the environment of the build the runner execs, so that it never execs again; set it
/// by hand (`x86-64-v3`) to keep the portable build.
pub const BUILD_ENV: &str = "ESUP_RUNNER_BUILD";

/// The builds `esup-runner` (the portable one, x86-64-v3) may hand the transcription to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunnerBuild {
    /// x86-64-v4: AVX-512 F, BW, CD, DQ and VL (Skylake-SP and later Xeons, Zen 4 and later).
    X86_64V4,
    /// whisper.cpp on CUDA, for nodes where NVML finds a GPU.
    Cuda,
}

impl RunnerBuild {
    pub fn name(self) -> &'static str {
        match self {
            Self::X86_64V4 => "x86-64-v4",
            Self::Cuda => "cuda",
        }
    }

    /// Its file name, beside `esup-runner`.
    pub fn binary_name(self) -> &'static str {
        match self {
            Self::X86_64V4 => "esup-runner-x86-64-v4",
            Self::Cuda => "esup-runner-cuda",
        }
    }
}

/// Whether this CPU (and its OS, which must save the AVX-512 registers) runs x86-64-v4 code.
pub fn cpu_has_x86_64_v4() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512cd")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vl")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The build to exec instead of this one, if any: the CUDA build when there is a GPU, else the
/// AVX-512 build on an AVX-512 CPU; each only when its file is beside `current_exe`.
pub fn better_build(
    current_exe: &Path,
    gpu_found: bool,
    cpu_x86_64_v4: bool,
) -> Option<(RunnerBuild, PathBuf)> {
    let dir = current_exe.parent()?;
    [
        (RunnerBuild::Cuda, gpu_found),
        (RunnerBuild::X86_64V4, cpu_x86_64_v4),
    ]
    .into_iter()
    .filter(|(_, wanted)| *wanted)
    .map(|(build, _)| (build, dir.join(build.binary_name())))
    .find(|(_, path)| path != current_exe && path.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builds_in(dir: &Path, names: &[&str]) -> PathBuf {
        for n in names {
            std::fs::write(dir.join(n), b"").unwrap();
        }
        dir.join("esup-runner")
    }

    #[test]
    fn the_avx512_build_is_chosen_only_when_present_on_an_avx512_cpu() {
        let dir = tempfile::tempdir().unwrap();
        let exe = builds_in(dir.path(), &["esup-runner"]);
        assert_eq!(better_build(&exe, false, true), None, "no v4 file");
        let v4 = dir.path().join("esup-runner-x86-64-v4");
        std::fs::write(&v4, b"").unwrap();
        assert_eq!(
            better_build(&exe, false, true),
            Some((RunnerBuild::X86_64V4, v4.clone()))
        );
        assert_eq!(better_build(&exe, false, false), None, "AVX2-only CPU");
        assert_eq!(
            better_build(&v4, false, true),
            None,
            "the v4 build never execs itself"
        );
    }

    #[test]
    fn a_gpu_node_gets_the_cuda_build_when_the_image_has_it() {
        let dir = tempfile::tempdir().unwrap();
        let exe = builds_in(
            dir.path(),
            &["esup-runner", "esup-runner-x86-64-v4", "esup-runner-cuda"],
        );
        let cuda = dir.path().join("esup-runner-cuda");
        assert_eq!(
            better_build(&exe, true, true),
            Some((RunnerBuild::Cuda, cuda.clone()))
        );
        assert_eq!(
            better_build(&exe, false, true).map(|b| b.0),
            Some(RunnerBuild::X86_64V4),
            "no GPU: the CUDA build is not used"
        );
        std::fs::remove_file(&cuda).unwrap();
        assert_eq!(
            better_build(&exe, true, true).map(|b| b.0),
            Some(RunnerBuild::X86_64V4),
            "an image without the CUDA build: the best CPU build"
        );
    }

    #[test]
    fn a_directory_named_like_a_build_is_not_executed() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("esup-runner");
        std::fs::create_dir(dir.path().join("esup-runner-x86-64-v4")).unwrap();
        assert_eq!(better_build(&exe, false, true), None);
    }
}
