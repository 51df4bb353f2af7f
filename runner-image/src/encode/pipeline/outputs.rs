//! The one pass's outputs (libav): each rendition's video encoder and AAC encoders with its
//! HLS (and MP4) files, and the audio-only files (MP3, M4A). The stream paths give them
//! filtered frames; the same packets go to every file of a rendition.

use std::path::Path;

use ffmpeg_next as ff;

use crate::error::RunnerError;
use crate::libav::encoders::{AudioSettings, open_audio};
use crate::libav::fail;
use crate::libav::graph::AudioBranch;
use crate::libav::mux::Muxer;

/// One rendition's encoders and files.
pub(super) struct Rendition {
    video: ff::encoder::Video,
    video_tb: ff::Rational,
    /// One AAC encoder per mapped audio stream.
    audio: Vec<ff::encoder::Audio>,
    muxers: Vec<Muxer>,
    forced: u32,
    /// One frame in `video_tb`: given to packets x264 leaves without a duration, as the
    /// ffmpeg CLI does; without it the MP4's edit list ends one frame early.
    frame_duration: i64,
}

impl Rendition {
    pub(super) fn new(
        video: ff::encoder::Video,
        video_tb: ff::Rational,
        muxers: Vec<Muxer>,
        frame_duration: i64,
    ) -> Self {
        Self {
            video,
            video_tb,
            audio: Vec::new(),
            muxers,
            forced: 0,
            frame_duration,
        }
    }

    /// Adds the AAC encoder of the next mapped audio stream.
    pub(super) fn add_audio(&mut self, encoder: ff::encoder::Audio) {
        self.audio.push(encoder);
    }

    /// Streams as `-map 0:v:0 -map 0:<i>`: video first, then every mapped audio stream.
    fn start(&mut self) -> Result<(), RunnerError> {
        for m in &mut self.muxers {
            m.add_stream(&self.video).map_err(fail("mux"))?;
            for a in &self.audio {
                m.add_stream(a).map_err(fail("mux"))?;
            }
            m.start().map_err(fail("mux header"))?;
        }
        Ok(())
    }

    /// `-force_key_frames "expr:gte(t,n_forced*2)"`; every other frame's type is left to x264.
    pub(super) fn encode_video(&mut self, frame: &mut ff::frame::Video) -> Result<(), RunnerError> {
        let t = frame.pts().unwrap_or(0) as f64 * f64::from(self.video_tb);
        if t >= f64::from(self.forced) * 2.0 {
            frame.set_kind(ff::picture::Type::I);
            self.forced += 1;
        } else {
            frame.set_kind(ff::picture::Type::None);
        }
        self.video.send_frame(frame).map_err(fail("encode video"))?;
        self.drain_video()
    }

    fn drain_video(&mut self) -> Result<(), RunnerError> {
        let mut packet = ff::Packet::empty();
        while self.video.receive_packet(&mut packet).is_ok() {
            if packet.duration() <= 0 {
                packet.set_duration(self.frame_duration);
            }
            for m in &mut self.muxers {
                m.write(0, &packet).map_err(fail("mux video"))?;
            }
        }
        Ok(())
    }

    /// A frame of the `slot`-th mapped audio stream, to its AAC encoder.
    fn encode_audio(&mut self, slot: usize, frame: &ff::frame::Audio) -> Result<(), RunnerError> {
        if let Some(enc) = self.audio.get_mut(slot) {
            enc.send_frame(frame).map_err(fail("encode audio"))?;
            drain_audio(enc, &mut self.muxers, 1 + slot)?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), RunnerError> {
        self.video.send_eof().map_err(fail("encode video"))?;
        self.drain_video()?;
        for (j, enc) in self.audio.iter_mut().enumerate() {
            enc.send_eof().map_err(fail("encode audio"))?;
            drain_audio(enc, &mut self.muxers, 1 + j)?;
        }
        for m in &mut self.muxers {
            m.finish().map_err(fail("mux trailer"))?;
        }
        Ok(())
    }
}

/// An audio-only output (MP3, M4A).
pub(super) struct AudioFile {
    encoder: ff::encoder::Audio,
    muxer: Muxer,
}

impl AudioFile {
    /// The reference's `-ar 44100 -q:a 2` audio file at `path`; `what` names it in errors.
    pub(super) fn open(
        codec: &'static str,
        layout: ff::ChannelLayout,
        channels: u16,
        path: &Path,
        what: (&'static str, &'static str),
    ) -> Result<Self, RunnerError> {
        let (encoder_context, output_context) = what;
        let encoder = open_audio(&AudioSettings {
            codec,
            sample_rate: 44100,
            layout,
            channels,
            bitrate: None,
            quality: Some(2),
            // MP4 (M4A) keeps codec headers out of band; MP3 has none.
            global_header: codec != "libmp3lame",
        })
        .map_err(fail(encoder_context))?;
        let mut muxer = Muxer::file(path).map_err(fail(output_context))?;
        muxer.add_stream(&encoder).map_err(fail(output_context))?;
        Ok(Self { encoder, muxer })
    }

    /// Samples per frame the encoder takes.
    pub(super) fn frame_size(&self) -> u32 {
        self.encoder.frame_size()
    }

    fn send(&mut self, frame: &ff::frame::Audio) -> Result<(), RunnerError> {
        self.encoder
            .send_frame(frame)
            .map_err(fail("encode audio"))?;
        drain_audio(&mut self.encoder, std::slice::from_mut(&mut self.muxer), 0)
    }

    fn finish(&mut self) -> Result<(), RunnerError> {
        self.encoder.send_eof().map_err(fail("encode audio"))?;
        drain_audio(&mut self.encoder, std::slice::from_mut(&mut self.muxer), 0)?;
        self.muxer.finish().map_err(fail("audio trailer"))
    }
}

fn drain_audio(
    encoder: &mut ff::encoder::Audio,
    muxers: &mut [Muxer],
    stream: usize,
) -> Result<(), RunnerError> {
    let mut packet = ff::Packet::empty();
    while encoder.receive_packet(&mut packet).is_ok() {
        for m in muxers.iter_mut() {
            m.write(stream, &packet).map_err(fail("mux audio"))?;
        }
    }
    Ok(())
}

/// Every encoder and file of the pass.
#[derive(Default)]
pub(super) struct Sinks {
    pub(super) renditions: Vec<Rendition>,
    pub(super) mp3: Option<AudioFile>,
    pub(super) m4a: Option<AudioFile>,
}

impl Sinks {
    /// Every file's streams and header, once every encoder is open.
    pub(super) fn start(&mut self) -> Result<(), RunnerError> {
        for r in &mut self.renditions {
            r.start()?;
        }
        for f in [&mut self.mp3, &mut self.m4a].into_iter().flatten() {
            f.muxer.start().map_err(fail("audio header"))?;
        }
        Ok(())
    }

    /// A filtered frame of the `slot`-th mapped audio stream, to the outputs of `branch`.
    pub(super) fn audio(
        &mut self,
        branch: AudioBranch,
        slot: usize,
        frame: &ff::frame::Audio,
    ) -> Result<(), RunnerError> {
        match branch {
            AudioBranch::Aac48k => {
                for r in &mut self.renditions {
                    r.encode_audio(slot, frame)?;
                }
                Ok(())
            }
            AudioBranch::Mp3 => self.mp3.as_mut().map_or(Ok(()), |f| f.send(frame)),
            AudioBranch::Aac44k => self.m4a.as_mut().map_or(Ok(()), |f| f.send(frame)),
        }
    }

    /// Encoders drained, trailers written.
    pub(super) fn finish(&mut self) -> Result<(), RunnerError> {
        for r in &mut self.renditions {
            r.finish()?;
        }
        for f in [&mut self.mp3, &mut self.m4a].into_iter().flatten() {
            f.finish()?;
        }
        Ok(())
    }
}
