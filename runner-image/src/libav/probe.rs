//! Opening and probing a source with libavformat: the FFI side of `media`.

use std::path::Path;

use ffmpeg_next as ff;

use crate::error::RunnerError;
use crate::media::{AudioInfo, MediaInfo, VideoInfo};

/// The whitelists of every open of a media file: one definition, in esup-transcribe (which
/// opens the transcription's source itself), used by every open of the runner too.
pub use esup_transcribe::audio::{DEMUXERS, PROTOCOLS, open_safe};

/// Opens the source with the reference runner's probe sizes (`-probesize 100M
/// -analyzeduration 100M`), under the whitelists. A file libavformat cannot read is not media;
/// one in a format outside [`DEMUXERS`] is refused before its demuxer reads anything.
pub fn open(path: &Path) -> Result<ff::format::context::Input, RunnerError> {
    let sizes = [("probesize", "100000000"), ("analyzeduration", "100000000")];
    open_safe(path, &sizes).map_err(|e| match e {
        ff::Error::InvalidData | ff::Error::DecoderNotFound | ff::Error::DemuxerNotFound => {
            RunnerError::invalid_input(
                "NotMedia",
                format!("the source is not a readable media file ({e})"),
            )
        }
        // What libavformat answers for a format or protocol off the whitelists.
        ff::Error::Other { errno } if errno == ff::error::EINVAL => {
            RunnerError::invalid_input(
                "UnsupportedFormat",
                format!(
                    "the source is not in a media format the runner reads (playlists, scripts and network formats are refused): {e}"
                ),
            )
        }
        other => RunnerError::transient(
            "SourceUnreadable",
            format!("cannot open the source: {other}"),
        ),
    })
}

fn seconds(ts: i64, base: f64) -> Option<f64> {
    (ts != ff::ffi::AV_NOPTS_VALUE).then(|| ts as f64 / base)
}

/// What the source holds: the first decodable video stream (not cover art) and every
/// decodable audio stream. Codecs on `denylist` count as undecodable (the reference
/// runner's `MEDIA_CODEC_DENYLIST`).
pub fn probe(
    input: &ff::format::context::Input,
    denylist: &[String],
) -> Result<MediaInfo, RunnerError> {
    let mut video = None;
    let mut audio = Vec::new();
    let mut unsupported = Vec::new();
    for stream in input.streams() {
        let params = stream.parameters();
        let medium = params.medium();
        if !matches!(medium, ff::media::Type::Video | ff::media::Type::Audio) {
            continue;
        }
        let codec = params.id().name().to_owned();
        let attached_pic = stream
            .disposition()
            .contains(ff::format::stream::Disposition::ATTACHED_PIC);
        if attached_pic {
            continue;
        }
        if denylist.iter().any(|d| d.eq_ignore_ascii_case(&codec))
            || ff::decoder::find(params.id()).is_none()
        {
            unsupported.push(codec);
            continue;
        }
        let Ok(context) = ff::codec::context::Context::from_parameters(params) else {
            unsupported.push(codec);
            continue;
        };
        match medium {
            ff::media::Type::Video if video.is_none() => {
                let Ok(decoder) = context.decoder().video() else {
                    unsupported.push(codec);
                    continue;
                };
                let rate = stream.avg_frame_rate();
                let fps = if rate.denominator() != 0 {
                    f64::from(rate)
                } else {
                    0.0
                };
                video = Some(VideoInfo {
                    index: stream.index(),
                    codec,
                    width: decoder.width(),
                    height: decoder.height(),
                    fps,
                    pix_fmt: format!("{:?}", decoder.format()).to_lowercase(),
                    profile: None,
                });
            }
            ff::media::Type::Audio => {
                let Ok(decoder) = context.decoder().audio() else {
                    unsupported.push(codec);
                    continue;
                };
                audio.push(AudioInfo {
                    index: stream.index(),
                    codec,
                    channels: decoder.channels(),
                    sample_rate: decoder.rate(),
                });
            }
            _ => {}
        }
    }
    if video.is_none() && audio.is_empty() && !unsupported.is_empty() {
        return Err(RunnerError::invalid_input(
            "UnsupportedCodec",
            format!(
                "no stream can be decoded (codecs: {})",
                unsupported.join(", ")
            ),
        ));
    }
    let base = f64::from(ff::ffi::AV_TIME_BASE);
    Ok(MediaInfo {
        format_name: input.format().name().to_owned(),
        duration: seconds(input.duration(), base).unwrap_or(0.0),
        start_time: seconds(container_start(input), base).unwrap_or(0.0),
        video,
        audio,
    })
}

/// The container's start time: the earliest stream start, as libavformat computes it.
fn container_start(input: &ff::format::context::Input) -> i64 {
    input
        .streams()
        .filter_map(|s| {
            let st = s.start_time();
            (st != ff::ffi::AV_NOPTS_VALUE)
                .then(|| st.rescale(s.time_base(), ff::rescale::TIME_BASE))
        })
        .min()
        .unwrap_or(ff::ffi::AV_NOPTS_VALUE)
}

use ff::Rescale;
