//! Opening encoders with the reference runner's settings (protocol §3.1).

use ffmpeg_next as ff;

use crate::ladder::RateControl;

/// libx264 (or libavcodec's `h264` when libx264 is missing), profile high, yuv420p, preset
/// slow, qmin 20 / qmax 50 (WebM: 0 / 35), no scene-cut keyframes, the rendition's rate
/// control. `global_header`: needed when the packets also go to an MP4.
pub struct VideoSettings {
    pub width: u32,
    pub height: u32,
    pub time_base: ff::Rational,
    pub frame_rate: Option<ff::Rational>,
    pub rate: RateControl,
    pub webm: bool,
    pub global_header: bool,
}

pub fn open_video(s: &VideoSettings) -> Result<(ff::encoder::Video, &'static str), ff::Error> {
    let (codec, name) = match ff::encoder::find_by_name("libx264") {
        Some(c) => (c, "libx264"),
        None => (
            ff::encoder::find(ff::codec::Id::H264).ok_or(ff::Error::EncoderNotFound)?,
            "h264",
        ),
    };
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
    let mut opts = ff::Dictionary::new();
    opts.set("threads", "auto");
    opts.set("preset", "slow");
    opts.set("profile", "high");
    let (qmin, qmax) = if s.webm { ("0", "35") } else { ("20", "50") };
    opts.set("qmin", qmin);
    opts.set("qmax", qmax);
    opts.set("sc_threshold", "0");
    opts.set("b", &s.rate.bitrate.to_string());
    opts.set("minrate", &s.rate.minrate.to_string());
    opts.set("maxrate", &s.rate.maxrate.to_string());
    opts.set("bufsize", &s.rate.bufsize.to_string());
    Ok((enc.open_as_with(codec, opts)?, name))
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
