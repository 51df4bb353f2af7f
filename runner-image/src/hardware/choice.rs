//! Which codecs a task should try, from what NVML found and what the task allows (protocol
//! §3.1 "GPU variant", §3.2): NVDEC through libav's `<codec>_cuvid` decoders when a GPU is
//! there, NVENC (`h264_nvenc`) only where that GPU has the engine and, for studio tasks, only
//! with `studio_allow_nvenc`. Pure: the libav side tries these and falls back on failure.

/// A GPU found by NVML (or assumed by a test): its model name and whether it has NVENC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gpu {
    pub name: String,
    pub nvenc: bool,
}

/// The NVENC encoder tried in place of libx264.
pub const NVENC: &str = "h264_nvenc";

/// The CUVID decoder of a codec (libav's codec name, as probed), when libav has one.
pub fn cuvid_decoder(codec: &str) -> Option<&'static str> {
    Some(match codec {
        "h264" => "h264_cuvid",
        "hevc" => "hevc_cuvid",
        "av1" => "av1_cuvid",
        "vp9" => "vp9_cuvid",
        "vp8" => "vp8_cuvid",
        "mpeg1video" => "mpeg1_cuvid",
        "mpeg2video" => "mpeg2_cuvid",
        "mpeg4" => "mpeg4_cuvid",
        "vc1" => "vc1_cuvid",
        "mjpeg" => "mjpeg_cuvid",
        _ => return None,
    })
}

/// What the task allows, besides the GPU itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Allowance {
    /// A studio task: NVENC only with `studio_allow_nvenc`.
    pub studio: bool,
    pub studio_allow_nvenc: bool,
}

/// The codecs to try, and why the CPU is used where it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Choice {
    /// The GPU the task may use (its model name).
    pub gpu: Option<String>,
    /// A `<codec>_cuvid` decoder to try.
    pub cuvid: Option<&'static str>,
    /// Try `h264_nvenc`.
    pub nvenc: bool,
    /// Why a CPU codec is (or will be) used, one line each; empty when the GPU does both.
    pub fallback: Vec<String>,
}

/// `gpu`: what detection gave (or why there is none). `codec`: the source's video codec.
pub fn choose(gpu: &Result<Gpu, String>, codec: Option<&str>, allow: Allowance) -> Choice {
    let g = match gpu {
        Ok(g) => g,
        Err(why) => {
            return Choice {
                fallback: vec![format!("no GPU: {why}")],
                ..Choice::default()
            };
        }
    };
    let mut choice = Choice {
        gpu: Some(g.name.clone()),
        ..Choice::default()
    };
    if let Some(codec) = codec {
        choice.cuvid = cuvid_decoder(codec);
        if choice.cuvid.is_none() {
            choice
                .fallback
                .push(format!("decode: no NVDEC decoder for {codec}"));
        }
    }
    if !g.nvenc {
        choice
            .fallback
            .push(format!("encode: {} has no NVENC engine", g.name));
    } else if allow.studio && !allow.studio_allow_nvenc {
        choice
            .fallback
            .push("encode: NVENC is off for studio tasks without studio_allow_nvenc".into());
    } else {
        choice.nvenc = true;
    }
    choice
}

/// `hardware.decode` of info_video.json and of the completion.
pub fn decode_label(cuvid: Option<&str>) -> String {
    match cuvid {
        Some(name) => format!("nvdec ({name})"),
        None => "cpu".into(),
    }
}

/// `ESUP_ASSUME_GPU=<name>[,nvenc]`: a GPU taken as present without asking NVML. For tests
/// only: it makes the runner try CUVID/NVENC where there is no GPU, to prove the fallback.
pub fn parse_assumed_gpu(value: &str) -> Option<Gpu> {
    let mut parts = value.split(',').map(str::trim);
    let name = parts.next().filter(|n| !n.is_empty())?;
    let nvenc = parts.any(|p| p.eq_ignore_ascii_case("nvenc"));
    Some(Gpu {
        name: name.to_owned(),
        nvenc,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu(name: &str, nvenc: bool) -> Result<Gpu, String> {
        Ok(Gpu {
            name: name.into(),
            nvenc,
        })
    }

    #[test]
    fn decoders_follow_the_codec() {
        assert_eq!(cuvid_decoder("h264"), Some("h264_cuvid"));
        assert_eq!(cuvid_decoder("hevc"), Some("hevc_cuvid"));
        assert_eq!(cuvid_decoder("vp9"), Some("vp9_cuvid"));
        assert_eq!(cuvid_decoder("mpeg2video"), Some("mpeg2_cuvid"));
        assert_eq!(cuvid_decoder("prores"), None);
        assert_eq!(cuvid_decoder(""), None);
    }

    #[test]
    fn no_gpu_means_cpu_with_the_reason() {
        let c = choose(
            &Err("NVML unavailable: libnvidia-ml.so".into()),
            Some("h264"),
            Allowance::default(),
        );
        assert_eq!((c.gpu, c.cuvid, c.nvenc), (None, None, false));
        assert_eq!(c.fallback, ["no GPU: NVML unavailable: libnvidia-ml.so"]);
    }

    #[test]
    fn an_l4_decodes_and_encodes() {
        let c = choose(&gpu("NVIDIA L4", true), Some("h264"), Allowance::default());
        assert_eq!(c.gpu.as_deref(), Some("NVIDIA L4"));
        assert_eq!((c.cuvid, c.nvenc), (Some("h264_cuvid"), true));
        assert!(c.fallback.is_empty());
    }

    #[test]
    fn hopper_decodes_on_nvdec_and_encodes_with_x264() {
        let c = choose(
            &gpu("NVIDIA H200", false),
            Some("vp9"),
            Allowance::default(),
        );
        assert_eq!((c.cuvid, c.nvenc), (Some("vp9_cuvid"), false));
        assert_eq!(c.fallback, ["encode: NVIDIA H200 has no NVENC engine"]);
    }

    #[test]
    fn studio_needs_its_flag_for_nvenc() {
        let studio = Allowance {
            studio: true,
            studio_allow_nvenc: false,
        };
        let c = choose(&gpu("NVIDIA L4", true), Some("h264"), studio);
        assert!(!c.nvenc);
        assert_eq!(c.cuvid, Some("h264_cuvid"));
        assert_eq!(c.fallback.len(), 1);
        let allowed = Allowance {
            studio_allow_nvenc: true,
            ..studio
        };
        assert!(choose(&gpu("NVIDIA L4", true), Some("h264"), allowed).nvenc);
    }

    #[test]
    fn an_unknown_codec_or_no_video_decodes_on_the_cpu() {
        let c = choose(
            &gpu("NVIDIA L4", true),
            Some("prores"),
            Allowance::default(),
        );
        assert_eq!(c.cuvid, None);
        assert_eq!(c.fallback, ["decode: no NVDEC decoder for prores"]);
        // An audio-only source: nothing to decode on NVDEC, nothing to say about it.
        let c = choose(&gpu("NVIDIA L4", true), None, Allowance::default());
        assert_eq!((c.cuvid, c.nvenc), (None, true));
        assert!(c.fallback.is_empty());
    }

    #[test]
    fn labels() {
        assert_eq!(decode_label(Some("h264_cuvid")), "nvdec (h264_cuvid)");
        assert_eq!(decode_label(None), "cpu");
    }

    #[test]
    fn assumed_gpu_parses() {
        assert_eq!(
            parse_assumed_gpu("Test GPU,nvenc"),
            Some(Gpu {
                name: "Test GPU".into(),
                nvenc: true
            })
        );
        assert_eq!(
            parse_assumed_gpu("NVIDIA H200"),
            Some(Gpu {
                name: "NVIDIA H200".into(),
                nvenc: false
            })
        );
        assert_eq!(parse_assumed_gpu(""), None);
        assert_eq!(parse_assumed_gpu(",nvenc"), None);
    }
}
