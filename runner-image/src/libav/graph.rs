//! libavfilter graphs: the pure description strings, and building a graph with one buffer
//! source and named sinks.

use ffmpeg_next as ff;

use crate::timeline::Window;

/// `trim`/`atrim` and the timestamp shift of a cut; empty when the whole source is kept.
fn cut_filters(window: &Window, source_duration: f64, audio: bool) -> String {
    if window.start <= 0.0 && window.end >= source_duration {
        return String::new();
    }
    let (trim, setpts) = if audio {
        ("atrim", "asetpts")
    } else {
        ("trim", "setpts")
    };
    format!(
        "{trim}=start={s}:end={e},{setpts}=PTS-{s}/TB,",
        s = window.start,
        e = window.end
    )
}

/// The video graph: cut, constant frame rate for WebM sources, then one branch per
/// rendition, each scaled once (`scale=-2:<h>`, yuv420p), into sinks `out0`, `out1`...
pub fn video_spec(
    window: &Window,
    source_duration: f64,
    cfr: Option<u32>,
    heights: &[u32],
) -> String {
    let mut spec = format!("[in]{}", cut_filters(window, source_duration, false));
    if let Some(rate) = cfr {
        spec.push_str(&format!("fps={rate},"));
    }
    spec.push_str(&format!("split={}", heights.len()));
    for i in 0..heights.len() {
        spec.push_str(&format!("[s{i}]"));
    }
    for (i, h) in heights.iter().enumerate() {
        spec.push_str(&format!(";[s{i}]scale=-2:{h},format=yuv420p[out{i}]"));
    }
    spec
}

/// What one audio branch is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AudioBranch {
    /// AAC for the HLS/MP4 renditions: 48 kHz.
    Aac48k,
    /// `audio_192k_<base>.mp3`: libmp3lame at 44.1 kHz, mono or stereo.
    Mp3,
    /// `audio_192k_<base>.m4a`: AAC at 44.1 kHz.
    Aac44k,
}

impl AudioBranch {
    fn filters(self) -> &'static str {
        match self {
            Self::Aac48k => "aresample=48000,aformat=sample_fmts=fltp:sample_rates=48000",
            Self::Mp3 => {
                "aresample=44100,aformat=sample_fmts=fltp:sample_rates=44100:channel_layouts=stereo|mono"
            }
            Self::Aac44k => "aresample=44100,aformat=sample_fmts=fltp:sample_rates=44100",
        }
    }
}

/// The audio graph of one stream: cut once, then a branch per use into sinks `out0`...
pub fn audio_spec(window: &Window, source_duration: f64, branches: &[AudioBranch]) -> String {
    let mut spec = format!(
        "[in]{}asplit={}",
        cut_filters(window, source_duration, true),
        branches.len()
    );
    for i in 0..branches.len() {
        spec.push_str(&format!("[s{i}]"));
    }
    for (i, b) in branches.iter().enumerate() {
        spec.push_str(&format!(";[s{i}]{}[out{i}]", b.filters()));
    }
    spec
}

/// Thumbnails: at most 1280x720, aspect kept, RGB for the PNG encoder.
pub const THUMBNAIL_SPEC: &str = "[in]scale='min(1280,iw)':'min(720,ih)':force_original_aspect_ratio=decrease,format=rgb24[out0]";
/// Overview tiles.
pub const TILE_SPEC: &str = "[in]scale=160:90:flags=lanczos,setsar=1,format=rgb24[out0]";

/// A configured graph: `push` (or `push_to` a named source) to feed, `pull(i)` to drain.
pub struct Graph {
    graph: ff::filter::Graph,
    sinks: usize,
}

impl Graph {
    /// One source named `in`: `source` is the buffer/abuffer filter name and its arguments.
    pub fn new(
        source: (&str, &str),
        sink: &str,
        sinks: usize,
        spec: &str,
    ) -> Result<Self, ff::Error> {
        Self::with_sources(&[("in", source.0, source.1)], sink, sinks, spec)
    }

    /// Any number of sources, each `(name, filter, arguments)`, named `[name]` in `spec`
    /// (none: the spec makes its own frames, e.g. `anullsrc`).
    pub fn with_sources(
        sources: &[(&str, &str, &str)],
        sink: &str,
        sinks: usize,
        spec: &str,
    ) -> Result<Self, ff::Error> {
        let mut graph = ff::filter::Graph::new();
        let snk = ff::filter::find(sink).ok_or(ff::Error::FilterNotFound)?;
        for (name, filter, args) in sources {
            let src = ff::filter::find(filter).ok_or(ff::Error::FilterNotFound)?;
            graph.add(&src, name, args)?;
        }
        for i in 0..sinks {
            graph.add(&snk, &format!("out{i}"), "")?;
        }
        {
            // The parser's "outputs" are our sources, its "inputs" our sinks.
            let mut parser: Option<ff::filter::graph::Parser<'_>> = None;
            for (name, _, _) in sources {
                parser = Some(match parser {
                    None => graph.output(name, 0)?,
                    Some(p) => p.output(name, 0)?,
                });
            }
            for i in 0..sinks {
                let name = format!("out{i}");
                parser = Some(match parser {
                    None => graph.input(&name, 0)?,
                    Some(p) => p.input(&name, 0)?,
                });
            }
            match parser {
                Some(p) => p.parse(spec)?,
                None => graph.parse(spec)?,
            }
        }
        graph.validate()?;
        Ok(Self { graph, sinks })
    }

    /// Feeds source `name` a frame, or its end (`None`).
    pub fn push_to(&mut self, name: &str, frame: Option<&ff::Frame>) -> Result<(), ff::Error> {
        let mut ctx = self.graph.get(name).ok_or(ff::Error::FilterNotFound)?;
        match frame {
            Some(f) => ctx.source().add(f),
            None => ctx.source().flush(),
        }
    }

    pub fn push(&mut self, frame: Option<&ff::Frame>) -> Result<(), ff::Error> {
        self.push_to("in", frame)
    }

    /// The next frame of sink `i`, if one is ready.
    pub fn pull(&mut self, i: usize, frame: &mut ff::Frame) -> Result<bool, ff::Error> {
        let mut ctx = self
            .graph
            .get(&format!("out{i}"))
            .ok_or(ff::Error::FilterNotFound)?;
        match ctx.sink().frame(frame) {
            Ok(()) => Ok(true),
            Err(ff::Error::Eof) => Ok(false),
            Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub fn time_base(&mut self, i: usize) -> Option<ff::Rational> {
        let mut ctx = self.graph.get(&format!("out{i}"))?;
        Some(ctx.sink().time_base())
    }

    pub fn set_frame_size(&mut self, i: usize, samples: u32) {
        if let Some(mut ctx) = self.graph.get(&format!("out{i}")) {
            ctx.sink().set_frame_size(samples);
        }
    }

    pub fn sinks(&self) -> usize {
        self.sinks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_graph_descriptions() {
        let whole = Window {
            start: 0.0,
            end: 6.0,
        };
        assert_eq!(
            video_spec(&whole, 6.0, None, &[360, 720]),
            "[in]split=2[s0][s1];[s0]scale=-2:360,format=yuv420p[out0];[s1]scale=-2:720,format=yuv420p[out1]"
        );
        let cut = Window {
            start: 1.5,
            end: 4.0,
        };
        assert_eq!(
            video_spec(&cut, 6.0, Some(25), &[360]),
            "[in]trim=start=1.5:end=4,setpts=PTS-1.5/TB,fps=25,split=1[s0];[s0]scale=-2:360,format=yuv420p[out0]"
        );
    }

    #[test]
    fn audio_graph_descriptions() {
        let cut = Window {
            start: 1.0,
            end: 4.0,
        };
        let spec = audio_spec(&cut, 6.0, &[AudioBranch::Aac48k, AudioBranch::Mp3]);
        assert!(
            spec.starts_with("[in]atrim=start=1:end=4,asetpts=PTS-1/TB,asplit=2[s0][s1];"),
            "{spec}"
        );
        assert!(spec.contains("[s1]aresample=44100,"));
        assert!(spec.ends_with("[out1]"));
    }
}
