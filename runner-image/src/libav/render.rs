//! Rendering an intermediate MP4 with libav (the dressed main video, the studio mix): input
//! files decoded (on the CPU) into filter graphs with several named sources, and one libx264
//! (or NVENC) + AAC
//! output whose timestamps the renderer numbers itself, so that segments rendered one
//! after the other join without a gap (the credits' concat).

use std::path::Path;

use ffmpeg_next as ff;

use crate::error::RunnerError;
use crate::hardware::choice::NVENC;
use crate::libav::encoders::{AudioSettings, open_audio};
use crate::libav::graph::Graph;
use crate::libav::mux::Muxer;
use crate::libav::{channel_layout, cpu_video_decoder, fail};
use crate::timeline::Rate;

/// Where a rendering stage works: the codec denylist its probes apply, the directory it
/// writes its intermediate in, and what it reports its share done (0..1) to.
pub struct Stage<'a> {
    pub denylist: &'a [String],
    pub dir: &'a Path,
    pub progress: &'a dyn Fn(f64),
}

/// The intermediate's video: libx264 at a constant rate factor (NVENC at that constant
/// quality when `nvenc`: the studio mix with `studio_allow_nvenc`, §3.2).
pub struct VideoOut {
    pub width: u32,
    pub height: u32,
    pub rate: Rate,
    pub crf: u8,
    pub preset: String,
    /// `-force_key_frames "expr:gte(t,n_forced*K)"` with `-sc_threshold 0`; none: x264's own.
    pub keyframe_every: Option<f64>,
    pub nvenc: bool,
}

/// The intermediate's audio: AAC 48 kHz.
pub struct AudioOut {
    pub bitrate: u64,
    pub stereo: bool,
}

/// The output file and its encoders. Frames get consecutive timestamps: video frame n at
/// n / rate, audio sample n at n / 48000.
pub struct Sink {
    video: ff::encoder::Video,
    audio: Option<ff::encoder::Audio>,
    muxer: Muxer,
    rate: Rate,
    keyframe_every: Option<f64>,
    forced: u32,
    frames: i64,
    samples: i64,
    encoder_name: &'static str,
    fallback: Option<String>,
}

impl Sink {
    pub fn create(path: &Path, v: &VideoOut, a: Option<&AudioOut>) -> Result<Self, ff::Error> {
        let mut fallback = None;
        let nvenc = if v.nvenc {
            open_video(v, NVENC)
                .map_err(|e| fallback = Some(format!("encode: {NVENC} could not be opened ({e})")))
                .ok()
        } else {
            None
        };
        let (video, encoder_name) = match nvenc {
            Some(enc) => (enc, NVENC),
            None => (open_video(v, "libx264")?, "libx264"),
        };
        let audio = match a {
            None => None,
            Some(a) => Some(open_audio(&AudioSettings {
                codec: "aac",
                sample_rate: crate::timeline::SAMPLE_RATE,
                layout: if a.stereo {
                    ff::ChannelLayout::STEREO
                } else {
                    ff::ChannelLayout::MONO
                },
                channels: if a.stereo { 2 } else { 1 },
                bitrate: Some(a.bitrate),
                quality: None,
                global_header: true,
            })?),
        };
        let mut muxer = Muxer::mp4(path)?;
        muxer.add_stream(&video)?;
        if let Some(a) = &audio {
            muxer.add_stream(a)?;
        }
        muxer.start()?;
        Ok(Self {
            video,
            audio,
            muxer,
            rate: v.rate,
            keyframe_every: v.keyframe_every,
            forced: 0,
            frames: 0,
            samples: 0,
            encoder_name,
            fallback,
        })
    }

    /// The video encoder used, and why NVENC was not when it was asked for.
    pub fn encoder(&self) -> (&'static str, Option<&str>) {
        (self.encoder_name, self.fallback.as_deref())
    }

    /// Samples per audio frame the encoder takes (set on the audio sink of each graph).
    pub fn audio_frame_size(&self) -> Option<u32> {
        self.audio.as_ref().map(|a| a.frame_size())
    }

    pub fn has_audio(&self) -> bool {
        self.audio.is_some()
    }

    pub fn video_seconds(&self) -> f64 {
        self.frames as f64 / self.rate.fps()
    }

    pub fn audio_seconds(&self) -> f64 {
        self.samples as f64 / f64::from(crate::timeline::SAMPLE_RATE)
    }

    pub fn frames(&self) -> i64 {
        self.frames
    }

    pub fn video(&mut self, frame: &mut ff::frame::Video) -> Result<(), ff::Error> {
        frame.set_pts(Some(self.frames));
        let t = self.video_seconds();
        match self.keyframe_every {
            Some(k) if t >= f64::from(self.forced) * k => {
                frame.set_kind(ff::picture::Type::I);
                self.forced += 1;
            }
            _ => frame.set_kind(ff::picture::Type::None),
        }
        self.frames += 1;
        self.video.send_frame(frame)?;
        self.drain_video()
    }

    fn drain_video(&mut self) -> Result<(), ff::Error> {
        let mut packet = ff::Packet::empty();
        while self.video.receive_packet(&mut packet).is_ok() {
            if packet.duration() <= 0 {
                packet.set_duration(1);
            }
            self.muxer.write(0, &packet)?;
        }
        Ok(())
    }

    pub fn audio(&mut self, frame: &mut ff::frame::Audio) -> Result<(), ff::Error> {
        let Some(enc) = self.audio.as_mut() else {
            return Ok(());
        };
        frame.set_pts(Some(self.samples));
        self.samples += i64::try_from(frame.samples()).unwrap_or(0);
        enc.send_frame(frame)?;
        Self::drain_audio(enc, &mut self.muxer)
    }

    fn drain_audio(enc: &mut ff::encoder::Audio, muxer: &mut Muxer) -> Result<(), ff::Error> {
        let mut packet = ff::Packet::empty();
        while enc.receive_packet(&mut packet).is_ok() {
            muxer.write(1, &packet)?;
        }
        Ok(())
    }

    pub fn finish(mut self) -> Result<(), ff::Error> {
        self.video.send_eof()?;
        self.drain_video()?;
        if let Some(enc) = self.audio.as_mut() {
            enc.send_eof()?;
            Self::drain_audio(enc, &mut self.muxer)?;
        }
        self.muxer.finish()
    }
}

/// libx264 at `crf` with `preset`, or NVENC preset p4 at constant quality `crf` (`-cq`).
fn open_video(v: &VideoOut, name: &str) -> Result<ff::encoder::Video, ff::Error> {
    let codec = ff::encoder::find_by_name(name).ok_or(ff::Error::EncoderNotFound)?;
    let mut ctx = ff::codec::context::Context::new_with_codec(codec);
    ctx.set_flags(ff::codec::Flags::GLOBAL_HEADER);
    let mut enc = ctx.encoder().video()?;
    let num = i32::try_from(v.rate.num).unwrap_or(25);
    let den = i32::try_from(v.rate.den).unwrap_or(1);
    enc.set_width(v.width);
    enc.set_height(v.height);
    enc.set_format(ff::format::Pixel::YUV420P);
    enc.set_time_base(ff::Rational::new(den, num));
    enc.set_frame_rate(Some(ff::Rational::new(num, den)));
    let mut opts = ff::Dictionary::new();
    opts.set("profile", "high");
    if name == NVENC {
        opts.set("preset", "p4");
        opts.set("cq", &v.crf.to_string());
        // Without it NVENC ignores the forced keyframes.
        opts.set("forced-idr", "1");
    } else {
        opts.set("threads", "auto");
        opts.set("preset", &v.preset);
        opts.set("crf", &v.crf.to_string());
    }
    if v.keyframe_every.is_some() {
        opts.set("sc_threshold", "0");
    }
    enc.open_as_with(codec, opts)
}

/// A decoded stream of an input and the graph source it feeds.
struct VideoIn {
    stream: usize,
    decoder: ff::decoder::Video,
    time_base: ff::Rational,
    source: String,
}

struct AudioIn {
    stream: usize,
    decoder: ff::decoder::Audio,
    time_base: ff::Rational,
}

/// An input file read packet by packet: its video goes to the video graph's source
/// `source`, its audio (when taken) to the audio graph's `in`.
pub struct Feed {
    input: ff::format::context::Input,
    /// Container start, seconds: subtracted from every timestamp, as ffmpeg does.
    start: f64,
    video: Option<VideoIn>,
    audio: Option<AudioIn>,
    /// Seconds of the last decoded frame: the feeds behind are read first.
    clock: f64,
    done: bool,
}

impl Feed {
    /// `video_stream` to graph source `source`; `audio_stream` to the audio graph.
    pub fn open(
        input: ff::format::context::Input,
        start: f64,
        video_stream: Option<(usize, &str)>,
        audio_stream: Option<usize>,
    ) -> Result<Self, RunnerError> {
        let video = match video_stream {
            None => None,
            Some((index, source)) => {
                let stream = input
                    .stream(index)
                    .ok_or(RunnerError::Encoding("video stream vanished".into()))?;
                Some(VideoIn {
                    stream: index,
                    decoder: cpu_video_decoder(stream.parameters())?,
                    time_base: stream.time_base(),
                    source: source.to_owned(),
                })
            }
        };
        let audio = match audio_stream {
            None => None,
            Some(index) => {
                let stream = input
                    .stream(index)
                    .ok_or(RunnerError::Encoding("audio stream vanished".into()))?;
                let ctx = ff::codec::context::Context::from_parameters(stream.parameters())
                    .map_err(fail("audio decoder"))?;
                Some(AudioIn {
                    stream: index,
                    decoder: ctx.decoder().audio().map_err(fail("audio decoder"))?,
                    time_base: stream.time_base(),
                })
            }
        };
        Ok(Self {
            input,
            start,
            video,
            audio,
            clock: 0.0,
            done: false,
        })
    }

    /// `buffer` arguments of this feed's video (name of its source, arguments).
    pub fn video_source(&self) -> Option<(String, String)> {
        let v = self.video.as_ref()?;
        let sar = v.decoder.aspect_ratio();
        Some((
            v.source.clone(),
            format!(
                "video_size={}x{}:pix_fmt={}:time_base={}/{}:pixel_aspect={}/{}",
                v.decoder.width(),
                v.decoder.height(),
                ff::ffi::AVPixelFormat::from(v.decoder.format()) as i32,
                v.time_base.numerator(),
                v.time_base.denominator(),
                sar.numerator().max(0),
                sar.denominator().max(1),
            ),
        ))
    }

    /// `abuffer` arguments of this feed's audio, and whether it has more than one channel.
    pub fn audio_source(&self) -> Option<(String, bool)> {
        let a = self.audio.as_ref()?;
        let layout = channel_layout(&a.decoder);
        Some((
            format!(
                "time_base={}/{}:sample_rate={}:sample_fmt={}:channel_layout=0x{:x}",
                a.time_base.numerator(),
                a.time_base.denominator(),
                a.decoder.rate(),
                a.decoder.format().name(),
                layout.bits()
            ),
            a.decoder.channels() > 1,
        ))
    }

    /// Seeks to the keyframe at or before `seconds` from the start (the graph's `trim`
    /// drops what comes before the exact point).
    pub fn seek(&mut self, seconds: f64) {
        if seconds > 0.0 {
            let ts = ((self.start + seconds) * f64::from(ff::ffi::AV_TIME_BASE)) as i64;
            // A failed seek only costs decoding from the start.
            self.input.seek(ts, ..ts).ok();
        }
    }
}

/// The graphs a segment's frames go through.
pub struct Graphs<'a> {
    pub video: &'a mut Graph,
    /// With a source (`in`) fed by a feed, or self-made silence.
    pub audio: Option<&'a mut Graph>,
}

fn drain(
    graphs: &mut Graphs<'_>,
    sink: &mut Sink,
    silence_until: Option<f64>,
) -> Result<(), RunnerError> {
    let mut frame = ff::frame::Video::empty();
    while graphs
        .video
        .pull(0, &mut frame)
        .map_err(fail("video filter"))?
    {
        sink.video(&mut frame).map_err(fail("encode video"))?;
    }
    if let Some(audio) = graphs.audio.as_deref_mut() {
        let mut samples = ff::frame::Audio::empty();
        loop {
            // Generated silence is pulled only as far as the video, so the muxer does not
            // hold a whole segment of it.
            if silence_until.is_some_and(|t| sink.audio_seconds() > t) {
                break;
            }
            if !audio.pull(0, &mut samples).map_err(fail("audio filter"))? {
                break;
            }
            sink.audio(&mut samples).map_err(fail("encode audio"))?;
        }
    }
    Ok(())
}

/// Decodes `feeds` (the one furthest behind first) through `graphs` into `sink`, until
/// every feed and graph is done. `silence`: the audio graph makes its own frames.
/// `progress` gets the seconds of the segment done.
pub fn run(
    feeds: &mut [Feed],
    graphs: &mut Graphs<'_>,
    silence: bool,
    sink: &mut Sink,
    progress: &mut dyn FnMut(f64),
) -> Result<u32, RunnerError> {
    let mut decode_errors = 0_u32;
    let mut vframe = ff::frame::Video::empty();
    let mut aframe = ff::frame::Audio::empty();
    let silence_ahead = |sink: &Sink| silence.then(|| sink.video_seconds() + 0.5);
    while let Some(i) = (0..feeds.len())
        .filter(|&i| !feeds[i].done)
        .min_by(|&a, &b| feeds[a].clock.total_cmp(&feeds[b].clock))
    {
        let feed = &mut feeds[i];
        let next = feed
            .input
            .packets()
            .next()
            .map(|(stream, packet)| (stream.index(), packet));
        match next {
            Some((index, packet)) => {
                if let Some(v) = feed.video.as_mut().filter(|v| v.stream == index) {
                    if v.decoder.send_packet(&packet).is_err() {
                        decode_errors += 1;
                        continue;
                    }
                    while v.decoder.receive_frame(&mut vframe).is_ok() {
                        push_video(feed.start, v, &mut vframe, graphs, &mut feed.clock)?;
                    }
                } else if let Some(a) = feed.audio.as_mut().filter(|a| a.stream == index) {
                    if a.decoder.send_packet(&packet).is_err() {
                        decode_errors += 1;
                        continue;
                    }
                    while a.decoder.receive_frame(&mut aframe).is_ok() {
                        push_audio(feed.start, a, &mut aframe, graphs, &mut feed.clock)?;
                    }
                } else {
                    continue;
                }
            }
            None => {
                if let Some(v) = feed.video.as_mut() {
                    v.decoder.send_eof().ok();
                    while v.decoder.receive_frame(&mut vframe).is_ok() {
                        push_video(feed.start, v, &mut vframe, graphs, &mut feed.clock)?;
                    }
                    graphs
                        .video
                        .push_to(&v.source, None)
                        .map_err(fail("video filter"))?;
                }
                if let Some(a) = feed.audio.as_mut() {
                    a.decoder.send_eof().ok();
                    while a.decoder.receive_frame(&mut aframe).is_ok() {
                        push_audio(feed.start, a, &mut aframe, graphs, &mut feed.clock)?;
                    }
                    if let Some(g) = graphs.audio.as_deref_mut() {
                        g.push(None).map_err(fail("audio filter"))?;
                    }
                }
                feed.done = true;
            }
        }
        progress(feeds.iter().map(|f| f.clock).fold(f64::INFINITY, f64::min));
        drain(graphs, sink, silence_ahead(sink))?;
    }
    // Every source has ended: what the graphs still hold (held frames, padding, silence).
    drain(graphs, sink, None)?;
    Ok(decode_errors)
}

fn relative_ts(start: f64, ts: i64, tb: ff::Rational) -> i64 {
    let s =
        (start * f64::from(tb.denominator()) / f64::from(tb.numerator()).max(1.0)).round() as i64;
    ts - s
}

fn push_video(
    start: f64,
    v: &mut VideoIn,
    frame: &mut ff::frame::Video,
    graphs: &mut Graphs<'_>,
    clock: &mut f64,
) -> Result<(), RunnerError> {
    let Some(ts) = frame.timestamp().or(frame.pts()) else {
        return Ok(());
    };
    let rel = relative_ts(start, ts, v.time_base);
    frame.set_pts(Some(rel));
    *clock = clock.max(rel as f64 * f64::from(v.time_base));
    graphs
        .video
        .push_to(&v.source, Some(frame))
        .map_err(fail("video filter"))
}

fn push_audio(
    start: f64,
    a: &mut AudioIn,
    frame: &mut ff::frame::Audio,
    graphs: &mut Graphs<'_>,
    clock: &mut f64,
) -> Result<(), RunnerError> {
    let Some(ts) = frame.timestamp().or(frame.pts()) else {
        return Ok(());
    };
    let rel = relative_ts(start, ts, a.time_base);
    frame.set_pts(Some(rel));
    *clock = clock.max(rel as f64 * f64::from(a.time_base));
    match graphs.audio.as_deref_mut() {
        Some(g) => g.push(Some(frame)).map_err(fail("audio filter")),
        None => Ok(()),
    }
}

/// Decodes the first picture of an image file (the watermark's PNG).
pub fn load_picture(path: &Path) -> Result<ff::frame::Video, ff::Error> {
    let mut input = crate::libav::probe::open_safe(path, &[])?;
    let stream = input
        .streams()
        .best(ff::media::Type::Video)
        .ok_or(ff::Error::StreamNotFound)?;
    let index = stream.index();
    let mut decoder = ff::codec::context::Context::from_parameters(stream.parameters())?
        .decoder()
        .video()?;
    let mut frame = ff::frame::Video::empty();
    for (s, packet) in input.packets() {
        if s.index() != index {
            continue;
        }
        decoder.send_packet(&packet)?;
        if decoder.receive_frame(&mut frame).is_ok() {
            return Ok(frame);
        }
    }
    decoder.send_eof()?;
    decoder.receive_frame(&mut frame)?;
    Ok(frame)
}
