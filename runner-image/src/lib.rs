//! esup-runner: Esup-Pod's encoding in one libav pass, its transcription (esup-transcribe), and
//! their delivery to the webhook.
//!
//! In the order a task runs: `run` dispatches the subcommand once; `task` is the lifecycle
//! every task shares (work dir, source fetch, progress, report, delivery, the failure's
//! completion); `io` moves bytes (download, dressing and studio assets, delivery); `hardware`
//! says which GPU codecs to try; `studio` and `dressing` each pair a pure plan with its libav
//! rendering of an intermediate; `encode` is the one pass (its orchestration, the per-stream
//! pipeline, the ladder and `info_video.json`); `transcription` is the Whisper task; `verify`
//! checks the outputs before delivery. `libav` holds the libav pieces they share (probe,
//! graphs, encoders, muxers, pictures, the intermediate renderer). The rest is pure data and
//! names (`job`, `media`, `timeline`, `naming`, `error`).

pub mod cli;
pub mod dressing;
pub mod encode;
pub mod error;
pub mod hardware;
pub mod io;
pub mod job;
pub mod ladder;
pub mod libav;
pub mod media;
pub mod naming;
pub mod run;
pub mod runner_build;
pub mod studio;
pub mod task;
pub mod timeline;
pub mod transcription;
pub mod verify;
