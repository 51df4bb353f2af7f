//! The libav side the stages share: opening and probing inputs (`probe`), filter graphs
//! (`graph`), encoders with the reference runner's settings (`encoders`), output containers
//! (`mux`), NVDEC's CUVID decoders (`nvdec`), still pictures (`pictures`), and the renderer of intermediate MP4s (`render`, used
//! by the dressing and the studio mix). Here too, the two helpers every libav caller needs.

pub mod encoders;
pub mod graph;
pub mod mux;
pub mod nvdec;
pub mod pictures;
pub mod probe;
pub mod render;

use ffmpeg_next as ff;

use crate::error::RunnerError;

/// Maps a libav error to an encoding error naming the step (`context`).
pub(crate) fn fail(context: &'static str) -> impl Fn(ff::Error) -> RunnerError {
    move |e| RunnerError::encoding(context, e)
}

/// A decoder's channel layout; a stream that declares none gets the default of its count.
pub(crate) fn channel_layout(decoder: &ff::decoder::Audio) -> ff::ChannelLayout {
    let layout = decoder.channel_layout();
    if layout.bits() == 0 {
        ff::ChannelLayout::default(i32::from(decoder.channels()))
    } else {
        layout
    }
}

/// libav's CPU video decoder for `parameters`, with frame threads (as many as it likes).
pub(crate) fn cpu_video_decoder(
    parameters: ff::codec::Parameters,
) -> Result<ff::decoder::Video, RunnerError> {
    let mut ctx =
        ff::codec::context::Context::from_parameters(parameters).map_err(fail("video decoder"))?;
    ctx.set_threading(ff::codec::threading::Config {
        kind: ff::codec::threading::Type::Frame,
        count: 0,
        ..Default::default()
    });
    ctx.decoder().video().map_err(fail("video decoder"))
}

/// Starts libav for a blocking stage: initialised, and quiet but for errors.
pub(crate) fn init() -> Result<(), RunnerError> {
    ff::init().map_err(|e| RunnerError::encoding("libav init", e))?;
    ff::util::log::set_level(ff::util::log::Level::Error);
    Ok(())
}
