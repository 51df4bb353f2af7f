//! esup-runner: Esup-Pod's encoding in one libav pass, its transcription (esup-transcribe), and
//! their delivery to the webhook.
//! Pure parts (ladder, naming, timeline, media checks, info JSON, job) are separate from
//! the libav side (probe, graph, encode, mux, pictures, pipeline) and from I/O (download,
//! deliver).

pub mod cli;
pub mod deliver;
pub mod download;
pub mod encode;
pub mod error;
pub mod gpu;
pub mod graph;
pub mod info;
pub mod job;
pub mod ladder;
pub mod media;
pub mod mux;
pub mod naming;
pub mod pictures;
pub mod pipeline;
pub mod probe;
pub mod run;
pub mod timeline;
pub mod transcription;
