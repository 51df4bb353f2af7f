//! Which build of the runner transcribes on this CPU.
//!
//! whisper.cpp's ggml picks its SIMD kernels at compile time, and the static build that
//! whisper-rs links cannot load CPU variants at run time (ggml's `GGML_BACKEND_DL` needs shared
//! libraries). So the image carries two builds: `esup-runner`, portable (x86-64-v3: AVX2, FMA,
//! F16C), and, beside it, `esup-runner-x86-64-v4`, built with ggml's AVX-512 kernels. On a CPU
//! that has AVX-512, `esup-runner transcribe` execs the second one (docs/transcription.md,
//! "CPU builds"; docs/benchmarks.md for what it gives).

use std::path::{Path, PathBuf};

/// Set in the environment of the build the runner execs, so that it never execs again; set it
/// to `x86-64-v3` by hand to keep the portable build.
pub const CPU_BUILD_ENV: &str = "ESUP_RUNNER_CPU_BUILD";

/// The x86-64 micro-architecture levels the image ships builds for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuLevel {
    /// AVX2, FMA, F16C, BMI2: every node the runner supports.
    V3,
    /// V3 plus AVX-512 F, BW, CD, DQ and VL (Skylake-SP and later Xeons, Zen 4 and later).
    V4,
}

impl CpuLevel {
    pub fn name(self) -> &'static str {
        match self {
            Self::V3 => "x86-64-v3",
            Self::V4 => "x86-64-v4",
        }
    }

    /// The file name of this level's build, beside `esup-runner`.
    pub fn binary_name(self) -> &'static str {
        match self {
            Self::V3 => "esup-runner",
            Self::V4 => "esup-runner-x86-64-v4",
        }
    }
}

/// The best level this CPU (and its OS, which must save the AVX-512 registers) runs.
pub fn detected_level() -> CpuLevel {
    #[cfg(target_arch = "x86_64")]
    {
        let v4 = std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512cd")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vl");
        if v4 {
            return CpuLevel::V4;
        }
    }
    CpuLevel::V3
}

/// The build to exec instead of this one, if any: the AVX-512 build when the CPU has AVX-512,
/// the file is there, and no build was chosen already (`chosen`: the value of
/// [`CPU_BUILD_ENV`]).
pub fn better_build(current_exe: &Path, level: CpuLevel, chosen: Option<&str>) -> Option<PathBuf> {
    if chosen.is_some() || level != CpuLevel::V4 {
        return None;
    }
    let candidate = current_exe.parent()?.join(CpuLevel::V4.binary_name());
    (candidate != current_exe && candidate.is_file()).then_some(candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_avx512_build_is_chosen_only_when_present_on_an_avx512_cpu_and_not_chosen_yet() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("esup-runner");
        std::fs::write(&exe, b"").unwrap();
        let v4 = dir.path().join("esup-runner-x86-64-v4");

        assert_eq!(better_build(&exe, CpuLevel::V4, None), None, "no v4 file");
        std::fs::write(&v4, b"").unwrap();
        assert_eq!(better_build(&exe, CpuLevel::V4, None), Some(v4.clone()));
        assert_eq!(
            better_build(&exe, CpuLevel::V3, None),
            None,
            "AVX2-only CPU"
        );
        assert_eq!(
            better_build(&exe, CpuLevel::V4, Some("x86-64-v3")),
            None,
            "kept by hand"
        );
        assert_eq!(
            better_build(&v4, CpuLevel::V4, None),
            None,
            "the v4 build never execs itself"
        );
    }

    #[test]
    fn a_directory_named_like_the_build_is_not_executed() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("esup-runner");
        std::fs::create_dir(dir.path().join("esup-runner-x86-64-v4")).unwrap();
        assert_eq!(better_build(&exe, CpuLevel::V4, None), None);
    }
}
