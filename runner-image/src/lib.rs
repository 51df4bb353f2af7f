//! esup-runner: Esup-Pod's encoding in one libav pass, its transcription (esup-transcribe), and
//! their delivery to the webhook.
//! Pure parts (ladder, naming, timeline, media checks, info JSON, job, dressing, studio,
//! mediapackage) are separate from the libav side (probe, graph, encode, mux, pictures,
//! pipeline, render, dress, mix) and from I/O (download, assets, deliver).

pub mod assets;
pub mod cli;
pub mod deliver;
pub mod download;
pub mod dress;
pub mod dressing;
pub mod encode;
pub mod error;
pub mod gpu;
pub mod graph;
pub mod hardware;
pub mod info;
pub mod job;
pub mod ladder;
pub mod media;
pub mod mediapackage;
pub mod mix;
pub mod mux;
pub mod naming;
pub mod nvdec;
pub mod pictures;
pub mod pipeline;
pub mod probe;
pub mod render;
pub mod run;
pub mod runner_build;
pub mod studio;
pub mod timeline;
pub mod transcription;
pub mod verify;
