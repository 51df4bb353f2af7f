//! Dressing (protocol §3.1): a watermark over the main video and credits videos joined
//! around it. `plan` is pure (geometry, filter descriptions, frame and sample counts);
//! `render` draws that plan with libav into the intermediate the one pass encodes.

pub mod plan;
pub mod render;
