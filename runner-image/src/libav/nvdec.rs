//! NVDEC through libav's `<codec>_cuvid` decoders, opened by name (no hardware device or
//! frames context: the workspace forbids `unsafe`). Without a frames context CUVID copies each
//! picture to system memory (NV12, or P010/P016 for deeper sources), which the pass's filter
//! graph converts like any other frame.

use std::path::Path;

use ffmpeg_next as ff;

/// A CUVID decoder that decoded the source's first picture, and that picture's format: the
/// pass's graph is built for it (CUVID only knows it once the sequence header is parsed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nvdec {
    pub decoder: &'static str,
    pub format: ff::format::Pixel,
    pub width: u32,
    pub height: u32,
}

/// Opens `name` on a stream's parameters.
pub fn open(parameters: ff::codec::Parameters, name: &str) -> Result<ff::decoder::Video, String> {
    let codec =
        ff::decoder::find_by_name(name).ok_or_else(|| format!("{name} is not in this libav"))?;
    let ctx = ff::codec::context::Context::from_parameters(parameters)
        .map_err(|e| format!("{name}: {e}"))?;
    ctx.decoder()
        .open_as(codec)
        .and_then(|d| d.video())
        .map_err(|e| format!("{name} could not be opened ({e})"))
}

/// Most video packets read before giving up on a first picture (CUVID holds a few).
const PREFLIGHT_PACKETS: usize = 300;

/// Decodes the first picture of `path`'s stream `index` with `name` in a separate read of
/// the file, so a CUVID that opens but cannot decode this source (an unsupported profile or
/// chroma format, no free decoder) is found before the pass starts, and the pass can use
/// the CPU decoder from its first packet. Err: why, as one line.
pub fn preflight(path: &Path, index: usize, name: &'static str) -> Result<Nvdec, String> {
    let mut input =
        crate::libav::probe::open_safe(path, &[]).map_err(|e| format!("{name}: reopening: {e}"))?;
    let stream = input
        .stream(index)
        .ok_or_else(|| format!("{name}: no stream {index}"))?;
    let mut decoder = open(stream.parameters(), name)?;
    let mut frame = ff::frame::Video::empty();
    let found = |f: &ff::frame::Video| Nvdec {
        decoder: name,
        format: f.format(),
        width: f.width(),
        height: f.height(),
    };
    let mut sent = 0;
    for (s, packet) in input.packets() {
        if s.index() != index {
            continue;
        }
        decoder
            .send_packet(&packet)
            .map_err(|e| format!("{name} failed on the first packets ({e})"))?;
        if decoder.receive_frame(&mut frame).is_ok() {
            return Ok(found(&frame));
        }
        sent += 1;
        if sent >= PREFLIGHT_PACKETS {
            break;
        }
    }
    decoder
        .send_eof()
        .map_err(|e| format!("{name} failed on the first packets ({e})"))?;
    match decoder.receive_frame(&mut frame) {
        Ok(()) => Ok(found(&frame)),
        Err(e) => Err(format!(
            "{name} gave no picture from the first packets ({e})"
        )),
    }
}
