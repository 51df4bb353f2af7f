//! The one pass: demux and decode the source once; scale each rendition once and encode it
//! once; mux the same packets into its HLS and MP4 files; feed the MP3 (and M4A), the
//! thumbnails and the overview sprite from the same decoded frames.

use std::io::Write;
use std::path::Path;

use ff::Rescale;
use ffmpeg_next as ff;

use crate::encode::{AudioSettings, OpenedVideo, VideoSettings, open_audio, open_video};
use crate::error::RunnerError;
use crate::graph::{AudioBranch, Graph, audio_spec, video_spec};
use crate::info::{AudioOutput, Outputs, Thumbnail, VideoOutput};
use crate::ladder::{Rung, rate_control, scaled_width};
use crate::media::MediaInfo;
use crate::mux::Muxer;
use crate::naming::{Names, OVERVIEW_SPRITE, OVERVIEW_VTT};
use crate::nvdec::Nvdec;
use crate::pictures::{Sprite, write_thumbnail};
use crate::timeline::{Overview, Window, overview_vtt, thumbnail_times};

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

fn fail(context: &'static str) -> impl Fn(ff::Error) -> RunnerError {
    move |e| RunnerError::encoding(context, e)
}

/// One rendition's encoders and files.
struct RenditionOut {
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

/// An audio-only output (MP3, M4A).
struct AudioFile {
    encoder: ff::encoder::Audio,
    muxer: Muxer,
}

impl AudioFile {
    /// The reference's `-ar 44100 -q:a 2` audio file at `path`; `what` names it in errors.
    fn open(
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
}

fn drain_video(r: &mut RenditionOut) -> Result<(), RunnerError> {
    let mut packet = ff::Packet::empty();
    while r.video.receive_packet(&mut packet).is_ok() {
        if packet.duration() <= 0 {
            packet.set_duration(r.frame_duration);
        }
        for m in &mut r.muxers {
            m.write(0, &packet).map_err(fail("mux video"))?;
        }
    }
    Ok(())
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

/// `-force_key_frames "expr:gte(t,n_forced*2)"`; every other frame's type is left to x264.
fn encode_frame(r: &mut RenditionOut, frame: &mut ff::frame::Video) -> Result<(), RunnerError> {
    let t = frame.pts().unwrap_or(0) as f64 * f64::from(r.video_tb);
    if t >= f64::from(r.forced) * 2.0 {
        frame.set_kind(ff::picture::Type::I);
        r.forced += 1;
    } else {
        frame.set_kind(ff::picture::Type::None);
    }
    r.video.send_frame(frame).map_err(fail("encode video"))?;
    drain_video(r)
}

/// The video decoder: the preflighted CUVID one when given and it opens again, else libav's
/// CPU decoder (frame threads). Also the size and pixel format its frames will have.
fn open_video_decoder(
    stream: &ff::format::stream::Stream<'_>,
    nvdec: Option<Nvdec>,
    outputs: &mut Outputs,
) -> Result<(ff::decoder::Video, (u32, u32, ff::format::Pixel)), RunnerError> {
    if let Some(n) = nvdec {
        match crate::nvdec::open(stream.parameters(), n.decoder) {
            Ok(d) => {
                outputs.decoder = crate::hardware::decode_label(Some(n.decoder));
                return Ok((d, (n.width, n.height, n.format)));
            }
            Err(why) => {
                let why = format!("decode: {why}");
                tracing::warn!(reason = %why, "NVDEC fallback");
                outputs.fallback.push(why);
            }
        }
    }
    let mut ctx = ff::codec::context::Context::from_parameters(stream.parameters())
        .map_err(fail("video decoder"))?;
    ctx.set_threading(ff::codec::threading::Config {
        kind: ff::codec::threading::Type::Frame,
        count: 0,
        ..Default::default()
    });
    let decoder = ctx.decoder().video().map_err(fail("video decoder"))?;
    outputs.decoder = crate::hardware::decode_label(None);
    let shape = (decoder.width(), decoder.height(), decoder.format());
    Ok((decoder, shape))
}

fn layout_of(decoder: &ff::decoder::Audio) -> ff::ChannelLayout {
    let layout = decoder.channel_layout();
    if layout.bits() == 0 {
        ff::ChannelLayout::default(i32::from(decoder.channels()))
    } else {
        layout
    }
}

struct AudioIn {
    stream: usize,
    decoder: ff::decoder::Audio,
    graph: Graph,
    branches: Vec<AudioBranch>,
    time_base: ff::Rational,
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
    let names = Names(base);
    let window = plan.window;
    let mut outputs = Outputs {
        decoder: "cpu".into(),
        ..Default::default()
    };
    let has_video = media.video.is_some();

    // Video: decoder, graph, encoders.
    let mut video_in = None;
    let mut renditions: Vec<RenditionOut> = Vec::new();
    if let Some(v) = &media.video {
        let stream = input
            .stream(v.index)
            .ok_or(RunnerError::Encoding("video stream vanished".into()))?;
        let tb = stream.time_base();
        let rate = stream.avg_frame_rate();
        let (decoder, (width, height, format)) =
            open_video_decoder(&stream, plan.nvdec, &mut outputs)?;
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
        let spec = video_spec(&window, media.duration, plan.cfr, &heights);
        writeln!(log, "video graph: {spec}").ok();
        let mut graph = Graph::new(("buffer", &args), "buffersink", heights.len(), &spec)
            .map_err(fail("video graph"))?;
        let frame_rate = match plan.cfr {
            Some(r) => Some(ff::Rational::new(i32::try_from(r).unwrap_or(30), 1)),
            None => (rate.numerator() > 0 && rate.denominator() > 0).then_some(rate),
        };
        let mut nvenc = plan.nvenc;
        let mut encoders: Vec<&'static str> = Vec::new();
        for (i, rung) in plan.rungs.iter().enumerate() {
            let time_base = graph.time_base(i).unwrap_or(tb);
            let settings = VideoSettings {
                width: scaled_width(v.width, v.height, rung.height),
                height: rung.height,
                time_base,
                frame_rate,
                rate: rate_control(rung),
                webm: plan.webm,
                global_header: true,
                nvenc,
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
                nvenc = false;
            }
            if !encoders.contains(&encoder_name) {
                encoders.push(encoder_name);
            }
            writeln!(
                log,
                "{}p: {}x{} {encoder_name} preset {} profile high b={} minrate={} maxrate={} bufsize={} keyframes every 2 s{}",
                rung.height, settings.width, settings.height,
                if encoder_name == crate::hardware::NVENC { "p4" } else { "slow" },
                settings.rate.bitrate, settings.rate.minrate,
                settings.rate.maxrate, settings.rate.bufsize,
                if rung.encode_mp4 { ", HLS + MP4" } else { ", HLS" }
            )
            .ok();
            let mut muxers = vec![
                Muxer::hls(&out.join(names.hls_playlist(rung.height)))
                    .map_err(fail("HLS output"))?,
            ];
            outputs.video.push(VideoOutput {
                encoding_format: "video/mp2t",
                rendition: rung.resolution(),
                filename: names.hls_playlist(rung.height),
            });
            if rung.encode_mp4 {
                muxers.push(
                    Muxer::mp4(&out.join(names.mp4(rung.height))).map_err(fail("MP4 output"))?,
                );
            }
            renditions.push(RenditionOut {
                video,
                video_tb: time_base,
                audio: Vec::new(),
                muxers,
                forced: 0,
                frame_duration: frame_rate
                    .map(|fr| {
                        1_i64.rescale(
                            ff::Rational::new(fr.denominator(), fr.numerator()),
                            time_base,
                        )
                    })
                    .unwrap_or(0),
            });
        }
        outputs.encoder = encoders.join("+");
        video_in = Some((v.index, decoder, graph, tb));
    }
    for rung in plan.rungs.iter().filter(|r| r.encode_mp4 && has_video) {
        outputs.video.push(VideoOutput {
            encoding_format: "video/mp4",
            rendition: rung.resolution(),
            filename: names.mp4(rung.height),
        });
    }

    // Audio: a decoder and a graph per recognised stream.
    let mut audio_in: Vec<AudioIn> = Vec::new();
    let mut mp3: Option<AudioFile> = None;
    let mut m4a: Option<AudioFile> = None;
    for (j, a) in media.audio.iter().enumerate() {
        let stream = input
            .stream(a.index)
            .ok_or(RunnerError::Encoding("audio stream vanished".into()))?;
        let tb = stream.time_base();
        let ctx = ff::codec::context::Context::from_parameters(stream.parameters())
            .map_err(fail("audio decoder"))?;
        let decoder = ctx.decoder().audio().map_err(fail("audio decoder"))?;
        let layout = layout_of(&decoder);
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
        if branches.is_empty() {
            continue;
        }
        let args = format!(
            "time_base={}/{}:sample_rate={}:sample_fmt={}:channel_layout=0x{:x}",
            tb.numerator(),
            tb.denominator(),
            decoder.rate(),
            decoder.format().name(),
            layout.bits()
        );
        let spec = audio_spec(&window, media.duration, &branches);
        writeln!(log, "audio stream {}: {spec}", a.index).ok();
        let mut graph = Graph::new(("abuffer", &args), "abuffersink", branches.len(), &spec)
            .map_err(fail("audio graph"))?;
        let channels = decoder.channels();
        for (b, branch) in branches.iter().enumerate() {
            match branch {
                AudioBranch::Aac48k => {
                    for (r, rung) in renditions.iter_mut().zip(&plan.rungs) {
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
                        graph.set_frame_size(b, enc.frame_size());
                        r.audio.push(enc);
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
                        &out.join(names.mp3()),
                        ("MP3 encoder", "MP3 output"),
                    )?;
                    graph.set_frame_size(b, file.encoder.frame_size());
                    mp3 = Some(file);
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
                        &out.join(names.m4a()),
                        ("M4A encoder", "M4A output"),
                    )?;
                    graph.set_frame_size(b, file.encoder.frame_size());
                    m4a = Some(file);
                    outputs.audio.push(AudioOutput {
                        encoding_format: "video/mp4",
                        filename: names.m4a(),
                    });
                }
            }
        }
        audio_in.push(AudioIn {
            stream: a.index,
            decoder,
            graph,
            branches,
            time_base: tb,
        });
    }

    // Streams: video first, then every mapped audio stream, as `-map 0:v:0 -map 0:<i>`.
    for r in &mut renditions {
        for m in &mut r.muxers {
            m.add_stream(&r.video).map_err(fail("mux"))?;
            for a in &r.audio {
                m.add_stream(a).map_err(fail("mux"))?;
            }
            m.start().map_err(fail("mux header"))?;
        }
    }
    for f in [&mut mp3, &mut m4a].into_iter().flatten() {
        f.muxer.start().map_err(fail("audio header"))?;
    }

    // Pictures.
    let thumb_times = thumbnail_times(window.duration());
    let mut thumbs_done = [false; 3];
    let mut sprite = has_video.then(|| Sprite::new(plan.overview.count));
    let mut first_frame: Option<ff::frame::Video> = None;

    let start_ts = |tb: ff::Rational| -> i64 {
        (media.start_time * f64::from(tb.denominator()) / f64::from(tb.numerator()).max(1.0))
            .round() as i64
    };
    let mut last_report = 0.0_f64;
    let mut vframe = ff::frame::Video::empty();
    let mut aframe = ff::frame::Audio::empty();
    let mut filtered_v = ff::frame::Video::empty();
    let mut filtered_a = ff::frame::Audio::empty();

    let mut on_video_frame = |frame: &mut ff::frame::Video,
                              graph: &mut Graph,
                              tb: ff::Rational,
                              renditions: &mut Vec<RenditionOut>,
                              filtered: &mut ff::frame::Video|
     -> Result<(), RunnerError> {
        let Some(ts) = frame.timestamp().or(frame.pts()) else {
            return Ok(());
        };
        let rel = ts - start_ts(tb);
        frame.set_pts(Some(rel));
        let t = rel as f64 * f64::from(tb);
        let tw = t - window.start;
        if tw >= 0.0 && t < window.end {
            if first_frame.is_none() {
                first_frame = Some(frame.clone());
            }
            for (i, done) in thumbs_done.iter_mut().enumerate() {
                if !*done && tw >= thumb_times[i] as f64 {
                    write_thumbnail(frame, &out.join(names.thumbnail(i)))
                        .map_err(fail("thumbnail"))?;
                    *done = true;
                }
            }
            if let Some(s) = sprite.as_mut() {
                let tile = (tw / f64::from(plan.overview.interval)).floor() as usize;
                if tile < plan.overview.count as usize && !s.is_filled(tile) {
                    s.put(tile, frame).map_err(fail("overview"))?;
                }
            }
            if tw - last_report >= 1.0 {
                last_report = tw;
                progress((tw / window.duration().max(0.001)).clamp(0.0, 1.0));
            }
        }
        graph.push(Some(frame)).map_err(fail("video filter"))?;
        for (i, r) in renditions.iter_mut().enumerate() {
            while graph.pull(i, filtered).map_err(fail("video filter"))? {
                encode_frame(r, filtered)?;
            }
        }
        Ok(())
    };

    let on_audio_frame = |a: &mut AudioIn,
                          frame: Option<&mut ff::frame::Audio>,
                          renditions: &mut Vec<RenditionOut>,
                          j: usize,
                          mp3: &mut Option<AudioFile>,
                          m4a: &mut Option<AudioFile>,
                          filtered: &mut ff::frame::Audio|
     -> Result<(), RunnerError> {
        match frame {
            Some(frame) => {
                let Some(ts) = frame.timestamp().or(frame.pts()) else {
                    return Ok(());
                };
                frame.set_pts(Some(ts - start_ts(a.time_base)));
                a.graph.push(Some(frame)).map_err(fail("audio filter"))?;
            }
            None => a.graph.push(None).map_err(fail("audio filter"))?,
        }
        for (b, branch) in a.branches.clone().iter().enumerate() {
            while a.graph.pull(b, filtered).map_err(fail("audio filter"))? {
                match branch {
                    AudioBranch::Aac48k => {
                        for r in renditions.iter_mut() {
                            if let Some(enc) = r.audio.get_mut(j) {
                                enc.send_frame(filtered).map_err(fail("encode audio"))?;
                                drain_audio(enc, &mut r.muxers, 1 + j)?;
                            }
                        }
                    }
                    AudioBranch::Mp3 | AudioBranch::Aac44k => {
                        let file = if *branch == AudioBranch::Mp3 {
                            mp3.as_mut()
                        } else {
                            m4a.as_mut()
                        };
                        if let Some(f) = file {
                            f.encoder
                                .send_frame(filtered)
                                .map_err(fail("encode audio"))?;
                            drain_audio(&mut f.encoder, std::slice::from_mut(&mut f.muxer), 0)?;
                        }
                    }
                }
            }
        }
        Ok(())
    };

    let mut decode_errors = 0_u32;
    for (stream, packet) in input.packets() {
        let index = stream.index();
        if let Some((vi, decoder, graph, tb)) = video_in.as_mut()
            && *vi == index
        {
            if decoder.send_packet(&packet).is_err() {
                decode_errors += 1;
                continue;
            }
            while decoder.receive_frame(&mut vframe).is_ok() {
                on_video_frame(&mut vframe, graph, *tb, &mut renditions, &mut filtered_v)?;
            }
        } else if let Some(j) = audio_in.iter().position(|a| a.stream == index) {
            let a = &mut audio_in[j];
            if a.decoder.send_packet(&packet).is_err() {
                decode_errors += 1;
                continue;
            }
            while a.decoder.receive_frame(&mut aframe).is_ok() {
                on_audio_frame(
                    a,
                    Some(&mut aframe),
                    &mut renditions,
                    j,
                    &mut mp3,
                    &mut m4a,
                    &mut filtered_a,
                )?;
            }
        }
    }
    if decode_errors > 0 {
        writeln!(
            log,
            "warning: {decode_errors} packets could not be decoded (video decoder: {})",
            outputs.decoder
        )
        .ok();
    }

    // Flush: decoders, graphs, encoders, files.
    if let Some((_, decoder, graph, tb)) = video_in.as_mut() {
        decoder.send_eof().ok();
        while decoder.receive_frame(&mut vframe).is_ok() {
            on_video_frame(&mut vframe, graph, *tb, &mut renditions, &mut filtered_v)?;
        }
        graph.push(None).map_err(fail("video filter"))?;
        for (i, r) in renditions.iter_mut().enumerate() {
            while graph
                .pull(i, &mut filtered_v)
                .map_err(fail("video filter"))?
            {
                encode_frame(r, &mut filtered_v)?;
            }
        }
    }
    for (j, a) in audio_in.iter_mut().enumerate() {
        a.decoder.send_eof().ok();
        while a.decoder.receive_frame(&mut aframe).is_ok() {
            on_audio_frame(
                a,
                Some(&mut aframe),
                &mut renditions,
                j,
                &mut mp3,
                &mut m4a,
                &mut filtered_a,
            )?;
        }
        on_audio_frame(
            a,
            None,
            &mut renditions,
            j,
            &mut mp3,
            &mut m4a,
            &mut filtered_a,
        )?;
    }
    for r in &mut renditions {
        r.video.send_eof().map_err(fail("encode video"))?;
        drain_video(r)?;
        for (j, enc) in r.audio.iter_mut().enumerate() {
            enc.send_eof().map_err(fail("encode audio"))?;
            drain_audio(enc, &mut r.muxers, 1 + j)?;
        }
        for m in &mut r.muxers {
            m.finish().map_err(fail("mux trailer"))?;
        }
    }
    for f in [&mut mp3, &mut m4a].into_iter().flatten() {
        f.encoder.send_eof().map_err(fail("encode audio"))?;
        drain_audio(&mut f.encoder, std::slice::from_mut(&mut f.muxer), 0)?;
        f.muxer.finish().map_err(fail("audio trailer"))?;
    }

    // Pictures that no frame reached (timestamps past the last frame): the first frame, as
    // the reference runner retries at t=0.
    if has_video {
        let first = first_frame.ok_or_else(|| {
            RunnerError::invalid_input(
                "NoUsableStream",
                "no video frame could be decoded in the kept window",
            )
        })?;
        for (i, done) in thumbs_done.iter().enumerate() {
            if !done {
                write_thumbnail(&first, &out.join(names.thumbnail(i)))
                    .map_err(fail("thumbnail"))?;
            }
        }
        for (i, t) in thumb_times.iter().enumerate() {
            outputs.thumbnails.push(Thumbnail {
                filename: names.thumbnail(i),
                timestamp: *t,
                percentage: [25, 50, 75][i],
            });
        }
        if let Some(mut s) = sprite {
            let missing: Vec<usize> = s.missing().collect();
            for i in missing {
                s.put(i, &first).map_err(fail("overview"))?;
            }
            s.write(&out.join(OVERVIEW_SPRITE))
                .map_err(fail("overview"))?;
            std::fs::write(
                out.join(OVERVIEW_VTT),
                overview_vtt(window.duration(), plan.overview.count, OVERVIEW_SPRITE),
            )
            .map_err(|e| RunnerError::transient("DiskWriteFailed", e.to_string()))?;
            outputs.overview = Some((OVERVIEW_SPRITE.into(), OVERVIEW_VTT.into()));
        }
    }
    if outputs.encoder.is_empty() {
        outputs.encoder = "none".into();
    }
    progress(1.0);
    Ok(outputs)
}
