//! Renders the studio mix with libav (protocol §3.2, stage 1): the presentation and
//! presenter tracks decoded side by side into one graph (`hstack` or `overlay`), 30 fps,
//! audio from the presentation (else the presenter), into `studio_base.mp4`.

use std::io::Write;
use std::path::Path;

use esup_api::encoding::{StudioLayout, StudioOptions};
use serde_json::{Value, json};

use crate::error::RunnerError;
use crate::libav::fail;
use crate::libav::graph::Graph;
use crate::libav::render::{AudioOut, Feed, Graphs, Sink, Stage, VideoOut};
use crate::media::MediaInfo;
use crate::studio::mediapackage::Recording;
use crate::studio::plan::{
    Arrangement, Geometry, MIX_RATE, MixSettings, STUDIO_BASE, geometry, mix_audio_spec,
    mix_duration, mix_settings, mix_video_spec,
};

/// One downloaded track.
pub struct Track<'a> {
    /// `presentation` or `presenter`.
    pub role: &'static str,
    pub path: &'a Path,
}

/// What is mixed: the tracks (the presentation first when there is one), the layout asked
/// for, and the SMIL window (begin, end).
pub struct Recorded<'a> {
    pub tracks: &'a [Track<'a>],
    pub layout: StudioLayout,
    pub cut: Option<(f64, Option<f64>)>,
}

/// The studio mix's summary (`info_video.json`'s `studio`), and why its NVENC was not used
/// when it was allowed.
pub type MixSummary = (Value, Option<String>);

fn layout_name(l: StudioLayout) -> &'static str {
    match l {
        StudioLayout::SideBySide => "mid",
        StudioLayout::PresenterTopRight => "piph",
        StudioLayout::PresenterBottomRight => "pipb",
    }
}

/// Stage 1 of a studio task: `studio_base.mp4` in `stage.dir` from the downloaded
/// `recording`, with the task's studio options; `nvenc`: the mix may try NVENC. Blocking.
pub fn mix_recording(
    recording: &Recording,
    options: Option<&StudioOptions>,
    nvenc: bool,
    stage: &Stage<'_>,
    log: &mut dyn Write,
) -> Result<MixSummary, RunnerError> {
    let layout = options
        .and_then(|o| o.layout)
        .unwrap_or(recording.package.layout);
    let tracks: Vec<Track<'_>> = recording
        .tracks
        .iter()
        .map(|(role, path)| Track { role, path })
        .collect();
    let mut settings = mix_settings(options, tracks.len() == 1);
    settings.nvenc = nvenc;
    let recorded = Recorded {
        tracks: &tracks,
        layout,
        cut: recording.cut,
    };
    let (mut summary, fallback) = mix(&recorded, &settings, stage, log)?;
    if let Some(o) = summary.as_object_mut() {
        o.insert(
            "force_cpu".into(),
            json!(options.is_some_and(|o| o.force_cpu)),
        );
    }
    Ok((summary, fallback))
}

/// The mix laid out: which probed tracks give the pictures, their geometry, the window, the
/// length, and which track gives the sound.
struct Layout {
    first: usize,
    second: Option<usize>,
    arrangement: Arrangement,
    geo: Geometry,
    window: Option<(f64, f64)>,
    duration: f64,
    frames: u64,
    audio_from: Option<usize>,
}

fn probe_tracks<'a>(
    tracks: &'a [Track<'a>],
    denylist: &[String],
    log: &mut dyn Write,
) -> Result<Vec<(&'a Track<'a>, MediaInfo)>, RunnerError> {
    let mut probed = Vec::new();
    for t in tracks {
        let input = crate::libav::probe::open(t.path).map_err(|e| track_error(t.role, e))?;
        let media =
            crate::libav::probe::probe(&input, denylist).map_err(|e| track_error(t.role, e))?;
        writeln!(log, "studio {} track: {media:?}", t.role).ok();
        probed.push((t, media));
    }
    Ok(probed)
}

fn lay_out(
    probed: &[(&Track<'_>, MediaInfo)],
    layout: StudioLayout,
    cut: Option<(f64, Option<f64>)>,
) -> Result<Layout, RunnerError> {
    // Tracks with pictures are mixed; a track with only sound may still give the audio.
    let pictures: Vec<usize> = (0..probed.len())
        .filter(|&i| probed[i].1.video.is_some())
        .collect();
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
    let size = |i: usize| {
        probed[i]
            .1
            .video
            .as_ref()
            .map_or((2, 2), |v| (v.width, v.height))
    };
    let arrangement = if second.is_some() {
        Arrangement::Layout(layout)
    } else {
        Arrangement::Single
    };
    let geo = geometry(arrangement, size(first), second.map(size));
    let durations: Vec<f64> = pictures.iter().map(|&i| probed[i].1.duration).collect();
    let longest = mix_duration(&durations, None);
    let window = cut.map(|(b, e)| (b, e.unwrap_or(longest).min(longest)));
    let duration = mix_duration(&durations, window);
    if duration.is_nan() || duration <= 0.0 {
        return Err(RunnerError::invalid_input(
            "ZeroDuration",
            "the studio recording (after its SMIL cut) lasts nothing",
        ));
    }
    // Sound: the presentation's, else the presenter's.
    let audio_from = probed
        .iter()
        .position(|(t, m)| t.role == "presentation" && !m.audio.is_empty())
        .or_else(|| probed.iter().position(|(_, m)| !m.audio.is_empty()));
    Ok(Layout {
        first,
        second,
        arrangement,
        geo,
        window,
        duration,
        frames: MIX_RATE.frames(duration),
        audio_from,
    })
}

/// A feed per track that gives pictures or the sound (graph sources `in0`, `in1`), and
/// which of them gives the sound.
fn open_feeds(
    probed: &[(&Track<'_>, MediaInfo)],
    l: &Layout,
) -> Result<(Vec<Feed>, Option<usize>), RunnerError> {
    let mut feeds = Vec::new();
    let mut audio_feed = None;
    for (i, (t, m)) in probed.iter().enumerate() {
        let source = if i == l.first {
            Some("in0")
        } else if l.second == Some(i) {
            Some("in1")
        } else {
            None
        };
        let video = source.and_then(|s| m.video.as_ref().map(|v| (v.index, s)));
        let audio = (l.audio_from == Some(i))
            .then(|| m.audio.first().map(|a| a.index))
            .flatten();
        if video.is_none() && audio.is_none() {
            continue;
        }
        if audio.is_some() {
            audio_feed = Some(feeds.len());
        }
        let input = crate::libav::probe::open(t.path)?;
        feeds.push(Feed::open(input, m.start_time, video, audio)?);
    }
    Ok((feeds, audio_feed))
}

/// Mixes `recorded` into `studio_base.mp4` in `stage.dir`. Returns what was mixed, for
/// `info_video.json`, and why NVENC was not used when `settings.nvenc` asked for it.
/// Blocking.
pub fn mix(
    recorded: &Recorded<'_>,
    settings: &MixSettings,
    stage: &Stage<'_>,
    log: &mut dyn Write,
) -> Result<MixSummary, RunnerError> {
    let probed = probe_tracks(recorded.tracks, stage.denylist, log)?;
    let l = lay_out(&probed, recorded.layout, recorded.cut)?;
    let spec = mix_video_spec(
        l.arrangement,
        &l.geo,
        l.second.is_some(),
        l.window,
        l.frames,
    );
    writeln!(log, "studio mix ({}x{}): {spec}", l.geo.width, l.geo.height).ok();

    let (mut feeds, audio_feed) = open_feeds(&probed, &l)?;
    let sources: Vec<(String, String)> = feeds.iter().filter_map(Feed::video_source).collect();
    let source_refs: Vec<(&str, &str, &str)> = sources
        .iter()
        .map(|(n, a)| (n.as_str(), "buffer", a.as_str()))
        .collect();
    let mut video_graph =
        Graph::with_sources(&source_refs, "buffersink", 1, &spec).map_err(fail("studio graph"))?;

    let audio_args = audio_feed.and_then(|i| feeds[i].audio_source());
    let mut sink = Sink::create(
        &stage.dir.join(format!("{STUDIO_BASE}.mp4")),
        &VideoOut {
            width: l.geo.width,
            height: l.geo.height,
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
            let spec = mix_audio_spec(l.window, l.duration, *stereo);
            writeln!(log, "studio audio: {spec}").ok();
            let mut g = Graph::new(("abuffer", args), "abuffersink", 1, &spec)
                .map_err(fail("studio audio graph"))?;
            if let Some(size) = sink.audio_frame_size() {
                g.set_frame_size(0, size);
            }
            Some(g)
        }
    };
    if let Some((begin, _)) = l.window {
        for f in &mut feeds {
            f.seek(begin);
        }
    }
    let offset = l.window.map_or(0.0, |w| w.0);
    let mut report = |t: f64| (stage.progress)(((t - offset) / l.duration).clamp(0.0, 1.0));
    let errors = crate::libav::render::run(
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
    finish(sink, recorded.layout, &probed, &l, settings, log)
}

/// Closes `studio_base.mp4`, logs what it holds and sums the mix up.
fn finish(
    sink: Sink,
    layout: StudioLayout,
    probed: &[(&Track<'_>, MediaInfo)],
    l: &Layout,
    settings: &MixSettings,
    log: &mut dyn Write,
) -> Result<MixSummary, RunnerError> {
    let written = sink.frames();
    let has_audio = sink.has_audio();
    let (encoder, fallback) = sink.encoder();
    let fallback = fallback.map(str::to_owned);
    if let Some(why) = &fallback {
        writeln!(log, "warning: {why}; the mix uses libx264").ok();
        tracing::warn!(reason = %why, "NVENC fallback (studio mix)");
    }
    sink.finish().map_err(fail("studio_base.mp4"))?;
    let nvenc = encoder == crate::hardware::choice::NVENC;
    writeln!(
        log,
        "studio_base.mp4: {}x{} {written} frames at 30 fps, {encoder} {} {} {}{}",
        l.geo.width,
        l.geo.height,
        if nvenc { "cq" } else { "crf" },
        settings.crf,
        if nvenc {
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
    let single = l.arrangement == Arrangement::Single;
    let summary = json!({
        "layout": if single { "single" } else { layout_name(layout) },
        "tracks": probed.iter().map(|(t, _)| t.role).collect::<Vec<_>>(),
        "audio_from": l.audio_from.map(|i| probed[i].0.role),
        "width": l.geo.width,
        "height": l.geo.height,
        "duration": l.duration,
        "frames": written,
        "smil_cut": l.window.map(|(b, e)| json!({"begin": b, "end": e})),
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
