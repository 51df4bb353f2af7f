//! The video path of the one pass (libav): the decoder (NVDEC or CPU), the graph that cuts
//! and scales once per rendition, the renditions' encoders fed from its sinks, and the
//! picture tap that sees each decoded frame.

use std::io::Write;

use ff::Rescale;
use ffmpeg_next as ff;

use super::outputs::{Rendition, Sinks};
use super::tap::PictureTap;
use super::{Context, Demuxed};
use crate::encode::info::{Outputs, VideoOutput};
use crate::error::RunnerError;
use crate::ladder::{Rung, rate_control, scaled_width};
use crate::libav::encoders::{OpenedVideo, VideoSettings, open_video};
use crate::libav::fail;
use crate::libav::graph::{Graph, video_spec};
use crate::libav::mux::Muxer;
use crate::libav::nvdec::Nvdec;
use crate::media::VideoInfo;

pub(super) struct VideoPath<'a> {
    pub(super) demuxed: Demuxed,
    decoder: ff::decoder::Video,
    graph: Graph,
    time_base: ff::Rational,
    /// The container's start in `time_base`: subtracted from every timestamp.
    start: i64,
    tap: PictureTap<'a>,
    frame: ff::frame::Video,
    filtered: ff::frame::Video,
}

/// The video decoder: the preflighted CUVID one when given and it opens again, else libav's
/// CPU decoder (frame threads). Also the size and pixel format its frames will have.
fn open_decoder(
    stream: &ff::format::stream::Stream<'_>,
    nvdec: Option<Nvdec>,
    outputs: &mut Outputs,
) -> Result<(ff::decoder::Video, (u32, u32, ff::format::Pixel)), RunnerError> {
    if let Some(n) = nvdec {
        match crate::libav::nvdec::open(stream.parameters(), n.decoder) {
            Ok(d) => {
                outputs.decoder = crate::hardware::choice::decode_label(Some(n.decoder));
                return Ok((d, (n.width, n.height, n.format)));
            }
            Err(why) => {
                let why = format!("decode: {why}");
                tracing::warn!(reason = %why, "NVDEC fallback");
                outputs.fallback.push(why);
            }
        }
    }
    let decoder = crate::libav::cpu_video_decoder(stream.parameters())?;
    outputs.decoder = crate::hardware::choice::decode_label(None);
    let shape = (decoder.width(), decoder.height(), decoder.format());
    Ok((decoder, shape))
}

/// What every rendition's encoder shares.
struct EncoderShape {
    source: (u32, u32),
    frame_rate: Option<ff::Rational>,
    webm: bool,
    /// Still try NVENC: cleared at the first failure.
    nvenc: bool,
}

/// Opens `rung`'s encoder (time base `time_base`) and files; logs its settings.
fn open_rendition(
    cx: &Context<'_>,
    rung: &Rung,
    time_base: ff::Rational,
    shape: &mut EncoderShape,
    outputs: &mut Outputs,
    log: &mut dyn Write,
) -> Result<(Rendition, &'static str), RunnerError> {
    let settings = VideoSettings {
        width: scaled_width(shape.source.0, shape.source.1, rung.height),
        height: rung.height,
        time_base,
        frame_rate: shape.frame_rate,
        rate: rate_control(rung),
        webm: shape.webm,
        global_header: true,
        nvenc: shape.nvenc,
    };
    let OpenedVideo {
        encoder: video,
        name: encoder_name,
        fallback,
    } = open_video(&settings).map_err(fail("video encoder"))?;
    if let Some(why) = fallback {
        // The next renditions would fail the same way: they go to libx264 directly.
        writeln!(log, "warning: {why}; libx264 instead").ok();
        tracing::warn!(reason = %why, "NVENC fallback");
        outputs.fallback.push(why);
        shape.nvenc = false;
    }
    writeln!(
        log,
        "{}p: {}x{} {encoder_name} preset {} profile high b={} minrate={} maxrate={} bufsize={} keyframes every 2 s{}",
        rung.height, settings.width, settings.height,
        if encoder_name == crate::hardware::choice::NVENC { "p4" } else { "slow" },
        settings.rate.bitrate, settings.rate.minrate,
        settings.rate.maxrate, settings.rate.bufsize,
        if rung.encode_mp4 { ", HLS + MP4" } else { ", HLS" }
    )
    .ok();
    let names = cx.names;
    let mut muxers = vec![
        Muxer::hls(&cx.out.join(names.hls_playlist(rung.height))).map_err(fail("HLS output"))?,
    ];
    outputs.video.push(VideoOutput {
        encoding_format: "video/mp2t",
        rendition: rung.resolution(),
        filename: names.hls_playlist(rung.height),
    });
    if rung.encode_mp4 {
        muxers.push(Muxer::mp4(&cx.out.join(names.mp4(rung.height))).map_err(fail("MP4 output"))?);
    }
    let frame_duration = shape
        .frame_rate
        .map(|fr| {
            1_i64.rescale(
                ff::Rational::new(fr.denominator(), fr.numerator()),
                time_base,
            )
        })
        .unwrap_or(0);
    Ok((
        Rendition::new(video, time_base, muxers, frame_duration),
        encoder_name,
    ))
}

impl<'a> VideoPath<'a> {
    /// The decoder, the graph and every rendition's encoder and files (into `sinks`).
    pub(super) fn open(
        input: &ff::format::context::Input,
        v: &VideoInfo,
        cx: &Context<'a>,
        sinks: &mut Sinks,
        outputs: &mut Outputs,
        log: &mut dyn Write,
    ) -> Result<Self, RunnerError> {
        let plan = cx.plan;
        let stream = input
            .stream(v.index)
            .ok_or(RunnerError::Encoding("video stream vanished".into()))?;
        let tb = stream.time_base();
        let rate = stream.avg_frame_rate();
        let (decoder, (width, height, format)) = open_decoder(&stream, plan.nvdec, outputs)?;
        writeln!(log, "video decoder: {}", outputs.decoder).ok();
        let args = format!(
            "video_size={width}x{height}:pix_fmt={}:time_base={}/{}:pixel_aspect={}/{}",
            ff::ffi::AVPixelFormat::from(format) as i32,
            tb.numerator(),
            tb.denominator(),
            decoder.aspect_ratio().numerator().max(0),
            decoder.aspect_ratio().denominator().max(1),
        );
        let heights: Vec<u32> = plan.rungs.iter().map(|r| r.height).collect();
        let spec = video_spec(&plan.window, cx.media.duration, plan.cfr, &heights);
        writeln!(log, "video graph: {spec}").ok();
        let mut graph = Graph::new(("buffer", &args), "buffersink", heights.len(), &spec)
            .map_err(fail("video graph"))?;
        let mut shape = EncoderShape {
            source: (v.width, v.height),
            frame_rate: match plan.cfr {
                Some(r) => Some(ff::Rational::new(i32::try_from(r).unwrap_or(30), 1)),
                None => (rate.numerator() > 0 && rate.denominator() > 0).then_some(rate),
            },
            webm: plan.webm,
            nvenc: plan.nvenc,
        };
        let mut encoders: Vec<&'static str> = Vec::new();
        for (i, rung) in plan.rungs.iter().enumerate() {
            let time_base = graph.time_base(i).unwrap_or(tb);
            let (rendition, name) = open_rendition(cx, rung, time_base, &mut shape, outputs, log)?;
            if !encoders.contains(&name) {
                encoders.push(name);
            }
            sinks.renditions.push(rendition);
        }
        outputs.encoder = encoders.join("+");
        Ok(Self {
            demuxed: Demuxed::new(v.index),
            decoder,
            graph,
            time_base: tb,
            start: cx.start_ts(tb),
            tap: PictureTap::new(plan.window, plan.overview, cx.out, cx.names, cx.progress),
            frame: ff::frame::Video::empty(),
            filtered: ff::frame::Video::empty(),
        })
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
            let rel = ts - self.start;
            self.frame.set_pts(Some(rel));
            self.tap
                .look(&self.frame, rel as f64 * f64::from(self.time_base))?;
            self.graph
                .push(Some(&self.frame))
                .map_err(fail("video filter"))?;
            self.drain(sinks)?;
        }
        Ok(())
    }

    /// What the graph has for each rendition, encoded.
    fn drain(&mut self, sinks: &mut Sinks) -> Result<(), RunnerError> {
        for (i, r) in sinks.renditions.iter_mut().enumerate() {
            while self
                .graph
                .pull(i, &mut self.filtered)
                .map_err(fail("video filter"))?
            {
                r.encode_video(&mut self.filtered)?;
            }
        }
        Ok(())
    }

    /// End of stream: the decoder's and the graph's last frames.
    pub(super) fn flush(&mut self, sinks: &mut Sinks) -> Result<(), RunnerError> {
        self.decoder.send_eof().ok();
        self.receive_frames(sinks)?;
        self.graph.push(None).map_err(fail("video filter"))?;
        self.drain(sinks)
    }

    /// The pictures, once every frame went by.
    pub(super) fn finish(self, outputs: &mut Outputs) -> Result<(), RunnerError> {
        self.tap.finish(outputs)
    }
}
