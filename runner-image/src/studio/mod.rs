//! Studio tasks (protocol §3.2, stage 1): an Opencast recording mixed into `studio_base.mp4`.
//! `mediapackage` (pure) reads the recording's XML and SMIL; `plan` (pure) lays the mix out;
//! `mix` renders it with libav. The one pass (`encode`) then encodes `studio_base.mp4`.

pub mod mediapackage;
pub mod mix;
pub mod plan;
