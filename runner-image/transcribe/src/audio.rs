//! Any media file → 16 kHz mono f32, in-process with libav (ffmpeg-next): Whisper's input.

use std::path::Path;

use ffmpeg_next as ff;

use crate::error::TranscribeError;

/// The only protocol libavformat may use on the runner's files: they are downloaded first, so
/// a file never needs the network, and a hostile one cannot make libav fetch a URL.
pub const PROTOCOLS: &str = "file";

/// The demuxers the runner reads, by libavformat name: the containers of the accepted
/// extensions (esup-runner's `naming::MEDIA_EXTENSIONS`: mov/mp4/m4v/3gp, matroska/webm, avi/divx, flv,
/// mpegts/mts/ts, mpeg/mpg/m2p, asf/wmv/wma, mp3, wav, ogg), what Esup-Pod and Opencast
/// Studio also produce (mxf, flac, aac, raw h264/hevc/mpeg video, dv), and the watermark's
/// still images (png, jpeg, webp, gif, image2). Everything else is refused, above all the
/// formats that open further files or URLs named inside the file: playlists (hls, dash),
/// scripts (concat), session descriptions (sdp, rtsp), IMF packages.
pub const DEMUXERS: &str = "mov,matroska,avi,flv,mpegts,mpeg,asf,mp3,wav,ogg,mxf,flac,aac,h264,hevc,mpegvideo,m4v,dv,png_pipe,jpeg_pipe,webp_pipe,gif,image2";

/// Opens a media file under the whitelists, with `extra` options; libavformat's own error.
/// Every open of a downloaded or local media file goes through here.
pub fn open_safe(
    path: &Path,
    extra: &[(&str, &str)],
) -> Result<ff::format::context::Input, ff::Error> {
    let mut options = ff::Dictionary::new();
    options.set("protocol_whitelist", PROTOCOLS);
    options.set("format_whitelist", DEMUXERS);
    for (key, value) in extra {
        options.set(key, value);
    }
    ff::format::input_with_dictionary(path, options)
}

/// Whisper's sample rate.
pub const SAMPLE_RATE: u32 = 16_000;

/// Decodes the best audio stream of `path` to 16 kHz mono f32 samples.
pub fn decode_to_pcm16k(path: &Path) -> Result<Vec<f32>, TranscribeError> {
    ff::init().map_err(|e| TranscribeError::Decode(format!("libav init: {e}")))?;
    let mut input = open_safe(path, &[]).map_err(|e| TranscribeError::InputUnreadable {
        path: path.to_path_buf(),
        reason: format!("{e} (not a media file libav can read)"),
    })?;
    let stream = input
        .streams()
        .best(ff::media::Type::Audio)
        .ok_or_else(|| TranscribeError::NoAudio {
            path: path.to_path_buf(),
        })?;
    let index = stream.index();
    let ctx = ff::codec::context::Context::from_parameters(stream.parameters())
        .map_err(|e| TranscribeError::Decode(format!("audio decoder parameters: {e}")))?;
    let mut decoder = ctx
        .decoder()
        .audio()
        .map_err(|e| TranscribeError::Decode(format!("no decoder for the audio stream: {e}")))?;

    let mut out = Resampled::default();
    let mut frame = ff::frame::Audio::empty();
    let mut bad_packets = 0usize;
    for (s, packet) in input.packets() {
        if s.index() != index {
            continue;
        }
        // A damaged packet loses a few milliseconds; only a stream that yields nothing fails.
        if decoder.send_packet(&packet).is_err() {
            bad_packets += 1;
            continue;
        }
        while decoder.receive_frame(&mut frame).is_ok() {
            out.push(&mut frame)?;
        }
    }
    let _ = decoder.send_eof();
    while decoder.receive_frame(&mut frame).is_ok() {
        out.push(&mut frame)?;
    }
    out.finish()?;
    if out.samples.is_empty() && bad_packets > 0 {
        return Err(TranscribeError::Decode(format!(
            "{bad_packets} audio packets could not be decoded and none could"
        )));
    }
    Ok(out.samples)
}

/// An allocated output frame: swresample refuses to flush into a frame without a format.
fn output_frame(samples: usize) -> ff::frame::Audio {
    let mut f = ff::frame::Audio::new(
        ff::format::Sample::F32(ff::format::sample::Type::Packed),
        samples,
        ff::ChannelLayout::MONO,
    );
    f.set_rate(SAMPLE_RATE);
    f
}

/// A resampler made from the first frame's format (and remade if the format changes midway,
/// as it can in concatenated streams).
#[derive(Default)]
struct Resampled {
    ctx: Option<(
        ff::software::resampling::Context,
        (ff::format::Sample, u64, u32),
    )>,
    samples: Vec<f32>,
}

impl Resampled {
    fn push(&mut self, frame: &mut ff::frame::Audio) -> Result<(), TranscribeError> {
        // Some decoders (raw PCM without a channel mask) leave the layout unset; swresample
        // needs one.
        if frame.channel_layout().bits() == 0 {
            frame.set_channel_layout(ff::ChannelLayout::default(i32::from(frame.channels())));
        }
        let layout = frame.channel_layout();
        let key = (frame.format(), layout.bits(), frame.rate());
        if self.ctx.as_ref().map(|(_, k)| *k) != Some(key) {
            self.finish()?;
            let ctx = ff::software::resampling::Context::get(
                frame.format(),
                layout,
                frame.rate(),
                ff::format::Sample::F32(ff::format::sample::Type::Packed),
                ff::ChannelLayout::MONO,
                SAMPLE_RATE,
            )
            .map_err(|e| TranscribeError::Decode(format!("resampler: {e}")))?;
            self.ctx = Some((ctx, key));
        }
        // Room for every converted sample, upsampling included (ffmpeg-next would size the
        // output like the input, and swresample would hold back what does not fit).
        let room = frame.samples() * SAMPLE_RATE as usize / frame.rate().max(1) as usize + 256;
        let mut resampled = output_frame(room);
        if let Some((ctx, _)) = self.ctx.as_mut() {
            ctx.run(frame, &mut resampled)
                .map_err(|e| TranscribeError::Decode(format!("resampling: {e}")))?;
        }
        self.append(&resampled);
        Ok(())
    }

    /// Drains the samples the resampler still holds.
    fn finish(&mut self) -> Result<(), TranscribeError> {
        let Some((mut ctx, _)) = self.ctx.take() else {
            return Ok(());
        };
        loop {
            let mut resampled = output_frame(4096);
            let delay = ctx
                .flush(&mut resampled)
                .map_err(|e| TranscribeError::Decode(format!("resampler flush: {e}")))?;
            self.append(&resampled);
            if delay.is_none() || resampled.samples() == 0 {
                return Ok(());
            }
        }
    }

    fn append(&mut self, frame: &ff::frame::Audio) {
        if frame.samples() > 0 {
            self.samples.extend_from_slice(frame.plane::<f32>(0));
        }
    }
}
