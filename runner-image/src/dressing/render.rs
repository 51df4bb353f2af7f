//! Renders the dressed main video with libav (protocol §3.1 `dressing`): the main video cut
//! first, the watermark over it, the opening and ending credits joined around it, into one
//! intermediate MP4 in the work directory; the one pass then encodes that file, as the
//! reference runner encodes its intermediate.

use std::io::Write;
use std::path::{Path, PathBuf};

use esup_api::encoding::{Watermark, WatermarkPosition};
use ffmpeg_next as ff;
use serde_json::{Value, json};

use crate::dressing::plan::{
    Assets, LogoPlacement, audio_samples, audio_spec, credits_video_spec, even, logo_placement,
    main_video_spec, silence_spec,
};
use crate::error::RunnerError;
use crate::libav::fail;
use crate::libav::graph::Graph;
use crate::libav::pictures::buffer_args;
use crate::libav::render::{AudioOut, Feed, Graphs, Sink, Stage, VideoOut, load_picture};
use crate::media::MediaInfo;
use crate::timeline::{Rate, Window};

/// The intermediate is encoded again by the pass: a low CRF keeps that second generation
/// close to the source, a fast preset keeps the stage short.
pub const INTERMEDIATE_CRF: u8 = 18;
pub const INTERMEDIATE_PRESET: &str = "veryfast";
pub const INTERMEDIATE_AUDIO_BITRATE: u64 = 192_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    Opening,
    Main,
    Ending,
}

struct Segment {
    part: Part,
    path: PathBuf,
    media: MediaInfo,
    duration: f64,
}

fn credits_error(which: &str, e: RunnerError) -> RunnerError {
    match e {
        RunnerError::InvalidInput { message, .. } => RunnerError::invalid_input(
            "InvalidCredits",
            format!("the {which} credits video is unusable: {message}"),
        ),
        other => other,
    }
}

fn probe_credits(which: &str, path: &Path, denylist: &[String]) -> Result<Segment, RunnerError> {
    let input = crate::libav::probe::open(path).map_err(|e| credits_error(which, e))?;
    let media =
        crate::libav::probe::probe(&input, denylist).map_err(|e| credits_error(which, e))?;
    if media.video.is_none() || !(media.duration.is_finite() && media.duration > 0.0) {
        return Err(RunnerError::invalid_input(
            "InvalidCredits",
            format!("the {which} credits video has no video stream or no duration"),
        ));
    }
    Ok(Segment {
        part: if which == "opening" {
            Part::Opening
        } else {
            Part::Ending
        },
        path: path.to_owned(),
        duration: media.duration,
        media,
    })
}

fn position_name(p: WatermarkPosition) -> &'static str {
    match p {
        WatermarkPosition::TopLeft => "top_left",
        WatermarkPosition::TopRight => "top_right",
        WatermarkPosition::BottomLeft => "bottom_left",
        WatermarkPosition::BottomRight => "bottom_right",
    }
}

/// The main video to dress: its file, its probe and the window of it that is kept.
pub struct Main<'a> {
    pub source: &'a Path,
    pub media: &'a MediaInfo,
    pub window: Window,
}

/// The decoded watermark, where it goes, and what the task asked of it.
struct Logo {
    picture: ff::frame::Video,
    placement: LogoPlacement,
    watermark: Watermark,
}

/// What every segment's rendering shares.
struct Shared<'a> {
    /// The main video's cut (start, end), when it is not kept whole.
    cut: Option<(f64, f64)>,
    /// The main video's size, and the (even) frame everything is rendered at.
    main_size: (u32, u32),
    frame: (u32, u32),
    rate: Rate,
    logo: Option<&'a Logo>,
    /// Audio as soon as one part has some; the others get silence of their length.
    with_audio: bool,
}

fn load_logo(assets: &Assets, frame: (u32, u32)) -> Result<Option<Logo>, RunnerError> {
    let Some((path, wm)) = &assets.watermark else {
        return Ok(None);
    };
    let picture = load_picture(path).map_err(|e| {
        RunnerError::invalid_input(
            "InvalidWatermark",
            format!("the watermark {} is not a readable image: {e}", wm.url),
        )
    })?;
    let sar = picture.aspect_ratio();
    let placement = logo_placement(
        frame,
        (picture.width(), picture.height()),
        (sar.numerator(), sar.denominator()),
        wm.position,
    );
    Ok(Some(Logo {
        picture,
        placement,
        watermark: wm.clone(),
    }))
}

/// The opening credits, the kept main video, the ending credits: those there are.
fn segments(
    main: &Main<'_>,
    assets: &Assets,
    denylist: &[String],
) -> Result<Vec<Segment>, RunnerError> {
    let mut segments = Vec::new();
    if let Some(p) = &assets.opening {
        segments.push(probe_credits("opening", p, denylist)?);
    }
    segments.push(Segment {
        part: Part::Main,
        path: main.source.to_owned(),
        media: main.media.clone(),
        duration: main.window.duration(),
    });
    if let Some(p) = &assets.ending {
        segments.push(probe_credits("ending", p, denylist)?);
    }
    Ok(segments)
}

/// Writes `dressed.mp4` in `stage.dir` from the `main` video and the `assets`. Returns its
/// path and what was applied (for `info_video.json`). Blocking.
pub fn dress(
    main: &Main<'_>,
    assets: &Assets,
    stage: &Stage<'_>,
    log: &mut dyn Write,
) -> Result<(PathBuf, Value), RunnerError> {
    let (media, window) = (main.media, main.window);
    let Some(main_video) = &media.video else {
        return Err(RunnerError::Encoding(
            "dressing needs a video stream".into(),
        ));
    };
    let cut =
        (window.start > 0.0 || window.end < media.duration).then_some((window.start, window.end));
    // The main video's rate and frame; credits are normalised to them.
    let main_input = crate::libav::probe::open(main.source)?;
    let rate = {
        let r = main_input
            .stream(main_video.index)
            .map(|s| s.avg_frame_rate())
            .unwrap_or(ff::Rational::new(0, 1));
        Rate::of_source(r.numerator(), r.denominator())
    };
    drop(main_input);
    let frame = even((main_video.width, main_video.height));
    let logo = load_logo(assets, frame)?;
    let segments = segments(main, assets, stage.denylist)?;
    let frames: Vec<u64> = segments.iter().map(|s| rate.frames(s.duration)).collect();
    let samples = audio_samples(&frames, rate);
    let shared = Shared {
        cut,
        main_size: (main_video.width, main_video.height),
        frame,
        rate,
        logo: logo.as_ref(),
        with_audio: segments.iter().any(|s| !s.media.audio.is_empty()),
    };

    let path = stage.dir.join("dressed.mp4");
    let mut sink = Sink::create(
        &path,
        &VideoOut {
            width: frame.0,
            height: frame.1,
            rate,
            crf: INTERMEDIATE_CRF,
            preset: INTERMEDIATE_PRESET.into(),
            keyframe_every: None,
            // As the reference's dressing intermediates: libx264 (the final encode may use NVENC).
            nvenc: false,
        },
        shared.with_audio.then_some(&AudioOut {
            bitrate: INTERMEDIATE_AUDIO_BITRATE,
            stereo: true,
        }),
    )
    .map_err(fail("dressed output"))?;

    let total: f64 = segments.iter().map(|s| s.duration).sum();
    let mut done_before = 0.0;
    let mut applied = serde_json::Map::new();
    for ((segment, n), s) in segments.iter().zip(&frames).zip(&samples) {
        let offset = if segment.part == Part::Main {
            cut.map_or(0.0, |c| c.0)
        } else {
            0.0
        };
        let mut report = |t: f64| {
            if total > 0.0 {
                (stage.progress)(((done_before + (t - offset).max(0.0)) / total).clamp(0.0, 1.0));
            }
        };
        render_segment(&shared, segment, (*n, *s), &mut sink, &mut report, log)?;
        done_before += segment.duration;
        let entry = json!({"duration": segment.duration, "frames": n, "audio": !segment.media.audio.is_empty()});
        match segment.part {
            Part::Opening => {
                applied.insert("opening_credits".into(), entry);
            }
            Part::Ending => {
                applied.insert("ending_credits".into(), entry);
            }
            Part::Main => {}
        }
    }
    let frames_written = sink.frames();
    sink.finish().map_err(fail("dressed output"))?;
    if let Some(l) = &logo {
        let p = &l.placement;
        applied.insert(
            "watermark".into(),
            json!({
                "position": position_name(l.watermark.position),
                "opacity": l.watermark.opacity,
                "x": p.x, "y": p.y, "width": p.width, "height": p.height,
            }),
        );
    }
    applied.insert("cut_first".into(), json!(cut.is_some()));
    applied.insert("frame".into(), json!(format!("{}x{}", frame.0, frame.1)));
    applied.insert("frame_rate".into(), json!(rate.to_string()));
    applied.insert("frames".into(), json!(frames_written));
    writeln!(
        log,
        "dressed: {} ({frames_written} frames at {rate} fps, {}x{})",
        path.display(),
        frame.0,
        frame.1
    )
    .ok();
    Ok((path, Value::Object(applied)))
}

/// The video graph of a segment: the main video cut and watermarked, or credits scaled and
/// padded to the frame; `n` frames. With the `buffer` arguments of the logo's source.
fn video_graph_spec(shared: &Shared<'_>, part: Part, n: u64) -> (String, Option<String>) {
    match part {
        Part::Main => {
            let placement = shared.logo.map(|l| (l.placement, l.watermark.opacity));
            let spec = main_video_spec(shared.cut, shared.main_size, shared.rate, n, placement);
            let logo_args = shared.logo.map(|l| {
                buffer_args(
                    &l.picture,
                    ff::Rational::new(1, 25),
                    l.picture.aspect_ratio(),
                )
            });
            (spec, logo_args)
        }
        Part::Opening | Part::Ending => (credits_video_spec(shared.frame, shared.rate, n), None),
    }
}

/// Renders one segment (`n`: its frames and samples) into `sink`.
fn render_segment(
    shared: &Shared<'_>,
    segment: &Segment,
    (n, s): (u64, u64),
    sink: &mut Sink,
    report: &mut dyn FnMut(f64),
    log: &mut dyn Write,
) -> Result<(), RunnerError> {
    let video = segment
        .media
        .video
        .as_ref()
        .ok_or(RunnerError::Encoding("segment without video".into()))?;
    let input = crate::libav::probe::open(&segment.path)?;
    let audio_stream = segment.media.audio.first().map(|a| a.index);
    let mut feed = Feed::open(
        input,
        segment.media.start_time,
        Some((video.index, "in")),
        audio_stream.filter(|_| shared.with_audio),
    )?;
    let (src_name, src_args) = feed
        .video_source()
        .ok_or(RunnerError::Encoding("segment without video".into()))?;
    let (spec, logo_source) = video_graph_spec(shared, segment.part, n);
    writeln!(log, "dressing {:?}: {spec}", segment.part).ok();
    let mut sources = vec![(src_name.as_str(), "buffer", src_args.as_str())];
    if let Some(args) = &logo_source {
        sources.push(("logo", "buffer", args.as_str()));
    }
    let mut video_graph =
        Graph::with_sources(&sources, "buffersink", 1, &spec).map_err(fail("dressing graph"))?;
    if let (Some(l), Some(_)) = (shared.logo, &logo_source) {
        let mut copy = l.picture.clone();
        copy.set_pts(Some(0));
        video_graph
            .push_to("logo", Some(&copy))
            .map_err(fail("watermark"))?;
        video_graph
            .push_to("logo", None)
            .map_err(fail("watermark"))?;
    }
    let cut = if segment.part == Part::Main {
        shared.cut
    } else {
        None
    };
    let (mut audio_graph, silence) = if shared.with_audio {
        let (g, silence) = audio_graph(&feed, segment.part, cut, s, sink, log)?;
        (Some(g), silence)
    } else {
        (None, false)
    };
    if let Some((start, _)) = cut {
        feed.seek(start);
    }
    let mut graphs = Graphs {
        video: &mut video_graph,
        audio: audio_graph.as_mut(),
    };
    let errors = crate::libav::render::run(
        std::slice::from_mut(&mut feed),
        &mut graphs,
        silence,
        sink,
        report,
    )?;
    if errors > 0 {
        writeln!(
            log,
            "warning: {errors} packets of {:?} could not be decoded",
            segment.part
        )
        .ok();
    }
    Ok(())
}

/// A segment's audio graph (`s` samples): its own sound, cut as its video, or silence made
/// by the graph (then `true`).
fn audio_graph(
    feed: &Feed,
    part: Part,
    cut: Option<(f64, f64)>,
    s: u64,
    sink: &Sink,
    log: &mut dyn Write,
) -> Result<(Graph, bool), RunnerError> {
    let (g, silence) = match feed.audio_source() {
        Some((args, _)) => {
            let spec = audio_spec(cut, s);
            writeln!(log, "dressing {part:?} audio: {spec}").ok();
            (
                Graph::new(("abuffer", &args), "abuffersink", 1, &spec),
                false,
            )
        }
        None => (
            Graph::with_sources(&[], "abuffersink", 1, &silence_spec(s)),
            true,
        ),
    };
    let mut g = g.map_err(fail("dressing audio graph"))?;
    if let Some(size) = sink.audio_frame_size() {
        g.set_frame_size(0, size);
    }
    Ok((g, silence))
}
