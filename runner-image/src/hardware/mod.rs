//! The GPU: `detect` asks NVML what is there (I/O), `choice` decides which GPU codecs a task
//! tries and why the CPU is used elsewhere (pure). libav's side of NVDEC is `libav::nvdec`.

pub mod choice;
pub mod detect;
