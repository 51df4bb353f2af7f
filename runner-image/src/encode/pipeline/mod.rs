//! The one pass (libav), in the shape of rust-ffmpeg's transcoding examples: the source is
//! demuxed once and each packet goes to its stream's path (`video`: decode once, scale once
//! per rendition, encode once; `audio`: decode once, resample per output), whose filtered
//! frames go to the outputs (`outputs`: each rendition's HLS and MP4 files take the same
//! packets; the MP3 and M4A); the video path's picture tap (`tap`) takes the thumbnails and
//! the overview sprite from the same decoded frames.

mod audio;
mod outputs;
mod tap;
mod video;

use std::io::Write;
use std::path::Path;

use ffmpeg_next as ff;

use crate::encode::info::{Outputs, VideoOutput};
use crate::error::RunnerError;
use crate::ladder::Rung;
use crate::libav::nvdec::Nvdec;
use crate::media::MediaInfo;
use crate::naming::Names;
use crate::timeline::{Overview, Window};
use audio::AudioPath;
use outputs::Sinks;
use video::VideoPath;

/// What to produce.
pub struct Plan {
    pub rungs: Vec<Rung>,
    pub window: Window,
    /// Constant frame rate (WebM sources).
    pub cfr: Option<u32>,
    pub webm: bool,
    pub overview: Overview,
    /// Decode the video on NVDEC with this CUVID decoder (it passed its preflight).
    pub nvdec: Option<Nvdec>,
    /// Try NVENC for the renditions.
    pub nvenc: bool,
}

/// What every path of the pass reads: the source's probe, the plan, where the outputs go and
/// their names, and what the progress goes to.
struct Context<'a> {
    media: &'a MediaInfo,
    plan: &'a Plan,
    out: &'a Path,
    names: Names<'a>,
    progress: &'a dyn Fn(f64),
}

impl Context<'_> {
    /// The container's start in `tb`: subtracted from every timestamp, as ffmpeg does.
    fn start_ts(&self, tb: ff::Rational) -> i64 {
        (self.media.start_time * f64::from(tb.denominator()) / f64::from(tb.numerator()).max(1.0))
            .round() as i64
    }
}

/// The demuxed stream a path takes, and how many of its packets the decoder refused.
struct Demuxed {
    index: usize,
    refused: u32,
}

impl Demuxed {
    fn new(index: usize) -> Self {
        Self { index, refused: 0 }
    }

    /// Sends `packet` to `decoder`; a packet it refuses is counted and skipped (`false`).
    fn send(&mut self, decoder: &mut ff::decoder::Opened, packet: &ff::Packet) -> bool {
        let sent = decoder.send_packet(packet).is_ok();
        if !sent {
            self.refused += 1;
        }
        sent
    }
}

/// Runs the pass. `progress` gets the share done (0..1) of the kept window.
pub fn run(
    mut input: ff::format::context::Input,
    media: &MediaInfo,
    plan: &Plan,
    out: &Path,
    base: &str,
    progress: &dyn Fn(f64),
    log: &mut dyn Write,
) -> Result<Outputs, RunnerError> {
    let cx = Context {
        media,
        plan,
        out,
        names: Names(base),
        progress,
    };
    let mut outputs = Outputs {
        decoder: "cpu".into(),
        ..Default::default()
    };
    let mut sinks = Sinks::default();
    let mut video = match &media.video {
        Some(v) => Some(VideoPath::open(
            &input,
            v,
            &cx,
            &mut sinks,
            &mut outputs,
            log,
        )?),
        None => None,
    };
    if video.is_some() {
        for rung in plan.rungs.iter().filter(|r| r.encode_mp4) {
            outputs.video.push(VideoOutput {
                encoding_format: "video/mp4",
                rendition: rung.resolution(),
                filename: cx.names.mp4(rung.height),
            });
        }
    }
    let mut audio: Vec<AudioPath> = Vec::new();
    for (j, a) in media.audio.iter().enumerate() {
        let slot = audio.len();
        let opened = AudioPath::open(&input, (j, a), slot, &cx, &mut sinks, &mut outputs, log)?;
        audio.extend(opened);
    }
    sinks.start()?;

    for (stream, packet) in input.packets() {
        let index = stream.index();
        if let Some(v) = video.as_mut().filter(|v| v.demuxed.index == index) {
            v.send_packet(&packet, &mut sinks)?;
        } else if let Some(a) = audio.iter_mut().find(|a| a.demuxed.index == index) {
            a.send_packet(&packet, &mut sinks)?;
        }
    }
    let decode_errors: u32 = video.as_ref().map_or(0, |v| v.demuxed.refused)
        + audio.iter().map(|a| a.demuxed.refused).sum::<u32>();
    if decode_errors > 0 {
        writeln!(
            log,
            "warning: {decode_errors} packets could not be decoded (video decoder: {})",
            outputs.decoder
        )
        .ok();
    }

    // Flush: decoders, graphs, encoders, files; then the pictures no frame reached.
    if let Some(v) = video.as_mut() {
        v.flush(&mut sinks)?;
    }
    for a in &mut audio {
        a.flush(&mut sinks)?;
    }
    sinks.finish()?;
    if let Some(v) = video {
        v.finish(&mut outputs)?;
    }
    if outputs.encoder.is_empty() {
        outputs.encoder = "none".into();
    }
    progress(1.0);
    Ok(outputs)
}
