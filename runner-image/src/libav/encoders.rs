//! Opening encoders with the reference runner's settings (protocol §3.1): libx264, or
//! NVENC with the GPU variant's settings when the task may use it.

use ffmpeg_next as ff;

use crate::hardware::choice::NVENC;
use crate::ladder::RateControl;

/// The rendition's video encoder settings (protocol §3.1). `global_header`: needed when the
/// packets also go to an MP4. `nvenc`: try `h264_nvenc` first (§3.1's GPU variant).
pub struct VideoSettings {
    pub width: u32,
    pub height: u32,
    pub time_base: ff::Rational,
    pub frame_rate: Option<ff::Rational>,
    pub rate: RateControl,
    pub webm: bool,
    pub global_header: bool,
    pub nvenc: bool,
}

/// An opened video encoder, its name, and why NVENC was not used when it was asked for.
pub struct OpenedVideo {
    pub encoder: ff::encoder::Video,
    pub name: &'static str,
    pub fallback: Option<String>,
}

/// `h264_nvenc` when asked and it opens; otherwise libx264 (or libavcodec's `h264` when
/// libx264 is missing). An NVENC failure (no driver, no libcuda, no free session) is not an
/// error: the reason comes back in `fallback`.
pub fn open_video(s: &VideoSettings) -> Result<OpenedVideo, ff::Error> {
    let mut fallback = None;
    if s.nvenc {
        match open_nvenc(s) {
            Ok(encoder) => {
                return Ok(OpenedVideo {
                    encoder,
                    name: NVENC,
                    fallback: None,
                });
            }
            Err(e) => fallback = Some(format!("encode: {NVENC} could not be opened ({e})")),
        }
    }
    let (encoder, name) = open_x264(s)?;
    Ok(OpenedVideo {
        encoder,
        name,
        fallback,
    })
}

fn video_context(
    codec: ff::Codec,
    s: &VideoSettings,
) -> Result<ff::encoder::video::Video, ff::Error> {
    let mut ctx = ff::codec::context::Context::new_with_codec(codec);
    if s.global_header {
        ctx.set_flags(ff::codec::Flags::GLOBAL_HEADER);
    }
    let mut enc = ctx.encoder().video()?;
    enc.set_width(s.width);
    enc.set_height(s.height);
    enc.set_format(ff::format::Pixel::YUV420P);
    enc.set_time_base(s.time_base);
    enc.set_frame_rate(s.frame_rate);
    Ok(enc)
}

/// Options both encoders share: profile high, qmin 20 / qmax 50 (WebM: 0 / 35), no
/// scene-cut keyframes, the rendition's rate control.
fn common_options(s: &VideoSettings) -> ff::Dictionary<'static> {
    let mut opts = ff::Dictionary::new();
    opts.set("profile", "high");
    let (qmin, qmax) = if s.webm { ("0", "35") } else { ("20", "50") };
    opts.set("qmin", qmin);
    opts.set("qmax", qmax);
    opts.set("sc_threshold", "0");
    opts.set("b", &s.rate.bitrate.to_string());
    opts.set("minrate", &s.rate.minrate.to_string());
    opts.set("maxrate", &s.rate.maxrate.to_string());
    opts.set("bufsize", &s.rate.bufsize.to_string());
    opts
}

/// libx264 preset slow (the reference's CPU command).
fn open_x264(s: &VideoSettings) -> Result<(ff::encoder::Video, &'static str), ff::Error> {
    let (codec, name) = match ff::encoder::find_by_name("libx264") {
        Some(c) => (c, "libx264"),
        None => (
            ff::encoder::find(ff::codec::Id::H264).ok_or(ff::Error::EncoderNotFound)?,
            "h264",
        ),
    };
    let enc = video_context(codec, s)?;
    let mut opts = common_options(s);
    opts.set("threads", "auto");
    opts.set("preset", "slow");
    Ok((enc.open_as_with(codec, opts)?, name))
}

/// §3.1's GPU variant: preset p4, no B-frames, no lookahead; WebM: CBR with spatial and
/// temporal AQ. `forced-idr`: without it NVENC ignores the keyframes forced every 2 s, and
/// the HLS segments would not start where the CPU encode starts them.
fn open_nvenc(s: &VideoSettings) -> Result<ff::encoder::Video, ff::Error> {
    let codec = ff::encoder::find_by_name(NVENC).ok_or(ff::Error::EncoderNotFound)?;
    let enc = video_context(codec, s)?;
    let mut opts = common_options(s);
    opts.set("preset", "p4");
    opts.set("bf", "0");
    opts.set("rc-lookahead", "0");
    opts.set("forced-idr", "1");
    if s.webm {
        opts.set("rc", "cbr");
        opts.set("cbr", "1");
        opts.set("spatial-aq", "1");
        opts.set("aq-strength", "8");
        opts.set("temporal-aq", "1");
    }
    enc.open_as_with(codec, opts)
}

/// An audio encoder: `aac` (bitrate or VBR quality) or `libmp3lame` (VBR quality).
pub struct AudioSettings {
    pub codec: &'static str,
    pub sample_rate: u32,
    pub layout: ff::ChannelLayout,
    pub channels: u16,
    pub bitrate: Option<u64>,
    /// `-q:a`.
    pub quality: Option<i32>,
    pub global_header: bool,
}

pub fn open_audio(s: &AudioSettings) -> Result<ff::encoder::Audio, ff::Error> {
    let codec = ff::encoder::find_by_name(s.codec).ok_or(ff::Error::EncoderNotFound)?;
    let mut ctx = ff::codec::context::Context::new_with_codec(codec);
    let mut flags = ff::codec::Flags::empty();
    if s.global_header {
        flags |= ff::codec::Flags::GLOBAL_HEADER;
    }
    if s.quality.is_some() {
        flags |= ff::codec::Flags::QSCALE;
    }
    ctx.set_flags(flags);
    let mut enc = ctx.encoder().audio()?;
    enc.set_rate(i32::try_from(s.sample_rate).unwrap_or(48000));
    enc.set_channel_layout(s.layout);
    enc.set_channels(i32::from(s.channels));
    enc.set_format(ff::format::Sample::F32(ff::format::sample::Type::Planar));
    enc.set_time_base(ff::Rational::new(
        1,
        i32::try_from(s.sample_rate).unwrap_or(48000),
    ));
    if let Some(b) = s.bitrate {
        enc.set_bit_rate(usize::try_from(b).unwrap_or(usize::MAX));
    }
    let mut opts = ff::Dictionary::new();
    if let Some(q) = s.quality {
        // FF_QP2LAMBDA: -q:a is stored as a lambda.
        opts.set("global_quality", &(q * 118).to_string());
    }
    enc.open_as_with(codec, opts)
}
