//! Esup-Pod's encoding (protocol §3.1), also stage 2 of a studio task: `task` runs it from
//! the fetch to the delivery; `pass` prepares the one pass (probe, dressing, hardware, plan)
//! and writes `info_video.json`; `pipeline` is the one pass itself (libav). `info` (pure)
//! builds `info_video.json`.

pub mod info;
pub mod pass;
pub mod pipeline;
pub mod task;
