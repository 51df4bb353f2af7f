//! An audio path of the one pass (libav): one mapped audio stream's decoder and the graph
//! that resamples it once per branch (each rendition's AAC, the MP3, the M4A), whose sinks
//! feed the outputs.

use std::io::Write;

use ffmpeg_next as ff;

use super::outputs::{AudioFile, Sinks};
use super::{Context, Demuxed};
use crate::encode::info::{AudioOutput, Outputs};
use crate::error::RunnerError;
use crate::libav::encoders::{AudioSettings, open_audio};
use crate::libav::graph::{AudioBranch, Graph, audio_spec};
use crate::libav::{channel_layout, fail};
use crate::media::AudioInfo;

pub(super) struct AudioPath {
    pub(super) demuxed: Demuxed,
    /// Which mapped audio stream this is: its AAC encoder in each rendition, its stream
    /// (1 + slot) in each rendition's files.
    slot: usize,
    decoder: ff::decoder::Audio,
    graph: Graph,
    branches: Vec<AudioBranch>,
    /// The container's start in the stream's time base.
    start: i64,
    frame: ff::frame::Audio,
    filtered: ff::frame::Audio,
}

/// The branches of the `j`-th audio stream: AAC for the renditions when there is video; the
/// MP3 from the first stream, and the M4A too for an audio-only source.
fn branches(j: usize, has_video: bool) -> Vec<AudioBranch> {
    let mut branches = Vec::new();
    if has_video {
        branches.push(AudioBranch::Aac48k);
    }
    if j == 0 {
        branches.push(AudioBranch::Mp3);
        if !has_video {
            branches.push(AudioBranch::Aac44k);
        }
    }
    branches
}

impl AudioPath {
    /// The `j`-th audio stream's decoder and graph, and its branches' encoders (into
    /// `sinks`); none when nothing is made of it.
    pub(super) fn open(
        input: &ff::format::context::Input,
        (j, a): (usize, &AudioInfo),
        slot: usize,
        cx: &Context<'_>,
        sinks: &mut Sinks,
        outputs: &mut Outputs,
        log: &mut dyn Write,
    ) -> Result<Option<Self>, RunnerError> {
        let stream = input
            .stream(a.index)
            .ok_or(RunnerError::Encoding("audio stream vanished".into()))?;
        let tb = stream.time_base();
        let ctx = ff::codec::context::Context::from_parameters(stream.parameters())
            .map_err(fail("audio decoder"))?;
        let decoder = ctx.decoder().audio().map_err(fail("audio decoder"))?;
        let branches = branches(j, cx.media.video.is_some());
        if branches.is_empty() {
            return Ok(None);
        }
        let layout = channel_layout(&decoder);
        let args = format!(
            "time_base={}/{}:sample_rate={}:sample_fmt={}:channel_layout=0x{:x}",
            tb.numerator(),
            tb.denominator(),
            decoder.rate(),
            decoder.format().name(),
            layout.bits()
        );
        let spec = audio_spec(&cx.plan.window, cx.media.duration, &branches);
        writeln!(log, "audio stream {}: {spec}", a.index).ok();
        let mut graph = Graph::new(("abuffer", &args), "abuffersink", branches.len(), &spec)
            .map_err(fail("audio graph"))?;
        for (b, branch) in branches.iter().enumerate() {
            let size = open_branch(*branch, &decoder, cx, sinks, outputs)?;
            if let Some(size) = size {
                graph.set_frame_size(b, size);
            }
        }
        Ok(Some(Self {
            demuxed: Demuxed::new(a.index),
            slot,
            decoder,
            graph,
            branches,
            start: cx.start_ts(tb),
            frame: ff::frame::Audio::empty(),
            filtered: ff::frame::Audio::empty(),
        }))
    }

    /// A packet of this stream: decoded, its frames filtered and encoded. A packet the
    /// decoder refuses is counted and skipped.
    pub(super) fn send_packet(
        &mut self,
        packet: &ff::Packet,
        sinks: &mut Sinks,
    ) -> Result<(), RunnerError> {
        if self.demuxed.send(&mut self.decoder, packet) {
            self.receive_frames(sinks)?;
        }
        Ok(())
    }

    fn receive_frames(&mut self, sinks: &mut Sinks) -> Result<(), RunnerError> {
        while self.decoder.receive_frame(&mut self.frame).is_ok() {
            let Some(ts) = self.frame.timestamp().or(self.frame.pts()) else {
                continue;
            };
            self.frame.set_pts(Some(ts - self.start));
            self.graph
                .push(Some(&self.frame))
                .map_err(fail("audio filter"))?;
            self.drain(sinks)?;
        }
        Ok(())
    }

    /// What the graph has for each branch, encoded.
    fn drain(&mut self, sinks: &mut Sinks) -> Result<(), RunnerError> {
        for (b, branch) in self.branches.iter().enumerate() {
            while self
                .graph
                .pull(b, &mut self.filtered)
                .map_err(fail("audio filter"))?
            {
                sinks.audio(*branch, self.slot, &self.filtered)?;
            }
        }
        Ok(())
    }

    /// End of stream: the decoder's and the graph's last frames.
    pub(super) fn flush(&mut self, sinks: &mut Sinks) -> Result<(), RunnerError> {
        self.decoder.send_eof().ok();
        self.receive_frames(sinks)?;
        self.graph.push(None).map_err(fail("audio filter"))?;
        self.drain(sinks)
    }
}

/// Opens the encoders of one branch; returns the samples per frame they take.
fn open_branch(
    branch: AudioBranch,
    decoder: &ff::decoder::Audio,
    cx: &Context<'_>,
    sinks: &mut Sinks,
    outputs: &mut Outputs,
) -> Result<Option<u32>, RunnerError> {
    let layout = channel_layout(decoder);
    let channels = decoder.channels();
    let names = cx.names;
    let mut size = None;
    match branch {
        AudioBranch::Aac48k => {
            for (r, rung) in sinks.renditions.iter_mut().zip(&cx.plan.rungs) {
                let enc = open_audio(&AudioSettings {
                    codec: "aac",
                    sample_rate: 48000,
                    layout,
                    channels,
                    bitrate: Some(rung.audio_bitrate),
                    quality: None,
                    global_header: true,
                })
                .map_err(fail("AAC encoder"))?;
                size = Some(enc.frame_size());
                r.add_audio(enc);
            }
        }
        AudioBranch::Mp3 => {
            let (layout, channels) = if channels == 1 {
                (ff::ChannelLayout::MONO, 1)
            } else {
                (ff::ChannelLayout::STEREO, 2)
            };
            let file = AudioFile::open(
                "libmp3lame",
                layout,
                channels,
                &cx.out.join(names.mp3()),
                ("MP3 encoder", "MP3 output"),
            )?;
            size = Some(file.frame_size());
            sinks.mp3 = Some(file);
            outputs.audio.push(AudioOutput {
                encoding_format: "audio/mp3",
                filename: names.mp3(),
            });
        }
        AudioBranch::Aac44k => {
            let file = AudioFile::open(
                "aac",
                layout,
                channels,
                &cx.out.join(names.m4a()),
                ("M4A encoder", "M4A output"),
            )?;
            size = Some(file.frame_size());
            sinks.m4a = Some(file);
            outputs.audio.push(AudioOutput {
                encoding_format: "video/mp4",
                filename: names.m4a(),
            });
        }
    }
    Ok(size)
}
