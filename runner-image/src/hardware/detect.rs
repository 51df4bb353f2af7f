//! What hardware is there: NVML says whether a GPU is present and whether it has an NVENC
//! engine (H100, H200 and A100 have none). A missing driver or library is a clean "no GPU".

use crate::hardware::choice::{Gpu, parse_assumed_gpu};

/// Test-only override: `<name>[,nvenc]` (see `choice::parse_assumed_gpu`).
pub const ASSUME_GPU_ENV: &str = "ESUP_ASSUME_GPU";

/// The first GPU NVML reports (or the one `ESUP_ASSUME_GPU` names), or why there is none.
pub fn detect() -> Result<Gpu, String> {
    if let Some(g) = std::env::var(ASSUME_GPU_ENV)
        .ok()
        .and_then(|v| parse_assumed_gpu(&v))
    {
        return Ok(g);
    }
    let nvml = nvml_wrapper::Nvml::init().map_err(|e| format!("NVML unavailable: {e}"))?;
    let device = nvml
        .device_by_index(0)
        .map_err(|e| format!("NVML device 0: {e}"))?;
    let name = device.name().map_err(|e| format!("GPU name: {e}"))?;
    // A GPU without NVENC fails this query or reports no capacity.
    let nvenc = device
        .encoder_capacity(nvml_wrapper::enum_wrappers::device::EncoderType::H264)
        .is_ok_and(|c| c > 0);
    Ok(Gpu { name, nvenc })
}
