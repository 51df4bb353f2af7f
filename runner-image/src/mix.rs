//! Renders the studio mix with libav (protocol §3.2, stage 1): the presentation and
//! presenter tracks decoded side by side into one graph (`hstack` or `overlay`), 30 fps,
//! audio from the presentation (else the presenter), into `studio_base.mp4`.

use std::io::Write;
use std::path::Path;

use esup_api::encoding::StudioLayout;
use serde_json::{Value, json};

use crate::error::RunnerError;
use crate::graph::Graph;
use crate::media::MediaInfo;
use crate::render::{AudioOut, Feed, Graphs, Sink, VideoOut, fail};
use crate::studio::{
    Arrangement, MIX_RATE, MixSettings, geometry, mix_audio_spec, mix_duration, mix_video_spec,
};

/// One downloaded track.
pub struct Track<'a> {
    /// `presentation` or `presenter`.
    pub role: &'static str,
    pub path: &'a Path,
}

fn layout_name(l: StudioLayout) -> &'static str {
    match l {
        StudioLayout::SideBySide => "mid",
        StudioLayout::PresenterTopRight => "piph",
        StudioLayout::PresenterBottomRight => "pipb",
    }
}

/// `tracks`: the presentation first when there is one. `cut`: the SMIL window (begin,
/// end). Returns what was mixed, for `info_video.json`, and why NVENC was not used when
/// `settings.nvenc` asked for it. Blocking.
#[allow(clippy::too_many_arguments)]
pub fn mix(
    tracks: &[Track<'_>],
    layout: StudioLayout,
    cut: Option<(f64, Option<f64>)>,
    settings: &MixSettings,
    denylist: &[String],
    out: &Path,
    progress: &dyn Fn(f64),
    log: &mut dyn Write,
) -> Result<(Value, Option<String>), RunnerError> {
    let mut probed: Vec<(&Track<'_>, MediaInfo)> = Vec::new();
    for t in tracks {
        let input = crate::probe::open(t.path).map_err(|e| track_error(t.role, e))?;
        let media = crate::probe::probe(&input, denylist).map_err(|e| track_error(t.role, e))?;
        writeln!(log, "studio {} track: {media:?}", t.role).ok();
        probed.push((t, media));
    }
    // Tracks with pictures are mixed; a track with only sound may still give the audio.
    let pictures: Vec<&(&Track<'_>, MediaInfo)> =
        probed.iter().filter(|(_, m)| m.video.is_some()).collect();
    let (first, second) = match pictures.as_slice() {
        [] => {
            return Err(RunnerError::invalid_input(
                "NoUsableStream",
                "no track of the mediapackage has a decodable video stream",
            ));
        }
        [one] => (*one, None),
        [a, b, ..] => (*a, Some(*b)),
    };
    let size = |m: &MediaInfo| m.video.as_ref().map_or((2, 2), |v| (v.width, v.height));
    let arrangement = if second.is_some() {
        Arrangement::Layout(layout)
    } else {
        Arrangement::Single
    };
    let geo = geometry(arrangement, size(&first.1), second.map(|s| size(&s.1)));
    let durations: Vec<f64> = pictures.iter().map(|(_, m)| m.duration).collect();
    let longest = mix_duration(&durations, None);
    let window = cut.map(|(b, e)| (b, e.unwrap_or(longest).min(longest)));
    let duration = mix_duration(&durations, window);
    if duration.is_nan() || duration <= 0.0 {
        return Err(RunnerError::invalid_input(
            "ZeroDuration",
            "the studio recording (after its SMIL cut) lasts nothing",
        ));
    }
    let frames = MIX_RATE.frames(duration);
    // Sound: the presentation's, else the presenter's.
    let audio_from = probed
        .iter()
        .position(|(t, m)| t.role == "presentation" && !m.audio.is_empty())
        .or_else(|| probed.iter().position(|(_, m)| !m.audio.is_empty()));

    let spec = mix_video_spec(arrangement, &geo, second.is_some(), window, frames);
    writeln!(log, "studio mix ({}x{}): {spec}", geo.width, geo.height).ok();

    let mut feeds = Vec::new();
    let mut audio_feed = None;
    for (i, (t, m)) in probed.iter().enumerate() {
        let source = if std::ptr::eq(*t, first.0) {
            Some("in0")
        } else if second.is_some_and(|s| std::ptr::eq(*t, s.0)) {
            Some("in1")
        } else {
            None
        };
        let video = source.and_then(|s| m.video.as_ref().map(|v| (v.index, s)));
        let audio = (audio_from == Some(i))
            .then(|| m.audio.first().map(|a| a.index))
            .flatten();
        if video.is_none() && audio.is_none() {
            continue;
        }
        if audio.is_some() {
            audio_feed = Some(feeds.len());
        }
        let input = crate::probe::open(t.path)?;
        feeds.push(Feed::open(input, m.start_time, video, audio)?);
    }
    let sources: Vec<(String, String)> = feeds.iter().filter_map(Feed::video_source).collect();
    let source_refs: Vec<(&str, &str, &str)> = sources
        .iter()
        .map(|(n, a)| (n.as_str(), "buffer", a.as_str()))
        .collect();
    let mut video_graph =
        Graph::with_sources(&source_refs, "buffersink", 1, &spec).map_err(fail("studio graph"))?;

    let audio_args = audio_feed.and_then(|i| feeds[i].audio_source());
    let single = arrangement == Arrangement::Single;
    let mut sink = Sink::create(
        &out.join(format!("{}.mp4", crate::studio::STUDIO_BASE)),
        &VideoOut {
            width: geo.width,
            height: geo.height,
            rate: MIX_RATE,
            crf: settings.crf,
            preset: settings.preset.clone(),
            keyframe_every: Some(1.0),
            nvenc: settings.nvenc,
        },
        audio_args
            .as_ref()
            .map(|(_, stereo)| AudioOut {
                bitrate: settings.audio_bitrate,
                stereo: *stereo,
            })
            .as_ref(),
    )
    .map_err(fail("studio_base.mp4"))?;
    let mut audio_graph = match &audio_args {
        None => None,
        Some((args, stereo)) => {
            let spec = mix_audio_spec(window, duration, *stereo);
            writeln!(log, "studio audio: {spec}").ok();
            let mut g = Graph::new(("abuffer", args), "abuffersink", 1, &spec)
                .map_err(fail("studio audio graph"))?;
            if let Some(size) = sink.audio_frame_size() {
                g.set_frame_size(0, size);
            }
            Some(g)
        }
    };
    if let Some((begin, _)) = window {
        for f in &mut feeds {
            f.seek(begin);
        }
    }
    let offset = window.map_or(0.0, |w| w.0);
    let mut report = |t: f64| progress(((t - offset) / duration).clamp(0.0, 1.0));
    let errors = crate::render::run(
        &mut feeds,
        &mut Graphs {
            video: &mut video_graph,
            audio: audio_graph.as_mut(),
        },
        false,
        &mut sink,
        &mut report,
    )?;
    if errors > 0 {
        writeln!(
            log,
            "warning: {errors} packets of the studio tracks could not be decoded"
        )
        .ok();
    }
    let written = sink.frames();
    let has_audio = sink.has_audio();
    let (encoder, fallback) = sink.encoder();
    let fallback = fallback.map(str::to_owned);
    if let Some(why) = &fallback {
        writeln!(log, "warning: {why}; the mix uses libx264").ok();
        tracing::warn!(reason = %why, "NVENC fallback (studio mix)");
    }
    sink.finish().map_err(fail("studio_base.mp4"))?;
    writeln!(
        log,
        "studio_base.mp4: {}x{} {written} frames at 30 fps, {encoder} {} {} {}{}",
        geo.width,
        geo.height,
        if encoder == crate::hardware::NVENC {
            "cq"
        } else {
            "crf"
        },
        settings.crf,
        if encoder == crate::hardware::NVENC {
            "preset p4".to_owned()
        } else {
            format!("preset {}", settings.preset)
        },
        if has_audio {
            ", AAC 48 kHz"
        } else {
            ", no audio"
        }
    )
    .ok();
    let summary = json!({
        "layout": if single { "single" } else { layout_name(layout) },
        "tracks": probed.iter().map(|(t, _)| t.role).collect::<Vec<_>>(),
        "audio_from": audio_from.map(|i| probed[i].0.role),
        "width": geo.width,
        "height": geo.height,
        "duration": duration,
        "frames": written,
        "smil_cut": window.map(|(b, e)| json!({"begin": b, "end": e})),
        "crf": settings.crf,
        "preset": settings.preset,
        "audio_bitrate": settings.audio_bitrate,
        "encoder": encoder,
    });
    Ok((summary, fallback))
}

fn track_error(role: &str, e: RunnerError) -> RunnerError {
    match e {
        RunnerError::InvalidInput { category, message } => {
            RunnerError::invalid_input(category, format!("the {role} track: {message}"))
        }
        other => other,
    }
}
