//! The blocking side of an encoding task: the studio mix first for a studio task, then the
//! source probed, dressed when asked, the hardware chosen, the one pass planned and run,
//! `info_video.json` written and the outputs checked. libav and disk I/O; runs on a
//! blocking thread.

use std::io::Write;
use std::path::{Path, PathBuf};

use ffmpeg_next as ff;

use crate::dressing::plan::Assets;
use crate::encode::info::{Outputs, info_json};
use crate::encode::pipeline::Plan;
use crate::error::RunnerError;
use crate::hardware::choice::{Allowance, Gpu};
use crate::job::Job;
use crate::libav::render::Stage;
use crate::media::{MediaInfo, cfr_rate, validate};
use crate::naming::INFO_JSON;
use crate::studio::mediapackage::Recording;
use crate::studio::mix::MixSummary;
use crate::task::Log;
use crate::task::progress::Progress;
use crate::timeline::{Window, overview, window};

/// The stages the task's progress names, in the order they run.
pub const STAGES: [&str; 3] = ["mix", "dressing", "encode"];
const MIX: usize = 0;
const DRESSING: usize = 1;
const ENCODE: usize = 2;

/// What detection found (or why no GPU is used) and what the task allows.
pub struct Hardware {
    pub gpu: Result<Gpu, String>,
    pub allow: Allowance,
}

/// The file the pass encodes (for a studio task, the mix it writes first), its extension,
/// the outputs' base name, and the recording to mix.
pub struct Source {
    pub path: PathBuf,
    pub extension: String,
    pub base: String,
    pub recording: Option<Recording>,
}

/// Everything the blocking stages need, moved onto the blocking thread.
pub struct Pass {
    pub job: Job,
    pub hardware: Hardware,
    pub denylist: Vec<String>,
    pub out: PathBuf,
    pub work: PathBuf,
    pub source: Source,
    pub assets: Assets,
}

/// The file the one pass reads once the dressing is done, and what it holds.
struct Prepared {
    input: ff::format::context::Input,
    path: PathBuf,
    media: MediaInfo,
    window: Window,
    webm: bool,
    /// What the dressing applied (`info_video.json`'s `dressing_applied`).
    dressing_applied: Option<serde_json::Value>,
}

impl Pass {
    /// The studio mix (studio tasks), then the one pass.
    pub fn run(&self, progress: &Progress, mut log: Log) -> Result<Outputs, RunnerError> {
        let studio = match &self.source.recording {
            None => None,
            Some(recording) => Some(self.studio_mix(recording, progress, &mut log)?),
        };
        self.encode(studio, progress, log)
    }

    /// A rendering stage writing in `dir`, its share done to `report`.
    fn stage<'a>(&'a self, dir: &'a Path, report: &'a dyn Fn(f64)) -> Stage<'a> {
        Stage {
            denylist: &self.denylist,
            dir,
            progress: report,
        }
    }

    /// Stage 1 of a studio task: `out/studio_base.mp4`.
    fn studio_mix(
        &self,
        recording: &Recording,
        progress: &Progress,
        log: &mut Log,
    ) -> Result<MixSummary, RunnerError> {
        crate::libav::init()?;
        // The tracks are decoded on the CPU; only the mix's encoder may be on the GPU.
        let nvenc =
            crate::hardware::choice::choose(&self.hardware.gpu, None, self.hardware.allow).nvenc;
        let report = |p: f64| progress.set(MIX, p * 100.0);
        let stage = self.stage(&self.out, &report);
        crate::studio::mix::mix_recording(recording, self.job.studio.as_ref(), nvenc, &stage, log)
    }

    /// Probe, dressing, plan, pass, info_video.json, output check.
    fn encode(
        &self,
        studio: Option<MixSummary>,
        progress: &Progress,
        mut log: Log,
    ) -> Result<Outputs, RunnerError> {
        crate::libav::init()?;
        let (prepared, expected_seconds) = self.prepare(studio.as_ref(), progress, &mut log)?;
        let Prepared {
            input,
            path,
            media,
            window: w,
            webm,
            dressing_applied,
        } = prepared;
        let (plan, choice_gpu, fallback) = self.plan(&media, &path, w, webm, &mut log);
        let report = |p: f64| progress.set(ENCODE, p * 100.0);
        let base = &self.source.base;
        let mut outputs =
            crate::encode::pipeline::run(input, &media, &plan, &self.out, base, &report, &mut log)?;
        outputs.gpu = choice_gpu;
        // The mix's reasons first (it ran first), then the pass's.
        let pass_fallback = std::mem::take(&mut outputs.fallback);
        outputs.fallback = studio
            .as_ref()
            .and_then(|(_, why)| why.clone())
            .into_iter()
            .chain(fallback)
            .chain(pass_fallback)
            .collect();
        self.write_info(&media, &w, dressing_applied, studio, &outputs)?;
        // Output validation (reference runner 1.9.0): what the pass was to write is there, and
        // none of its media is more than 5 s shorter than the kept source.
        let expected = crate::verify::expected_encoding(
            base,
            &plan.rungs,
            media.video.is_some(),
            !media.audio.is_empty(),
        );
        crate::verify::check(&self.out, &expected, expected_seconds)
            .map_err(|e| e.into_runner_error("Encoding failed"))?;
        writeln!(
            log,
            "outputs checked: {} files, media within {} s of {expected_seconds:.2} s",
            expected.len(),
            crate::verify::TOLERANCE_SECONDS
        )
        .ok();
        Ok(outputs)
    }

    /// The source probed and checked, its kept window, and the dressing rendered when there
    /// is one (the pass then encodes that file whole). Also what the outputs must last.
    fn prepare(
        &self,
        studio: Option<&MixSummary>,
        progress: &Progress,
        log: &mut Log,
    ) -> Result<(Prepared, f64), RunnerError> {
        let source = &self.source.path;
        let mut input = crate::libav::probe::open(source)?;
        let mut media = crate::libav::probe::probe(&input, &self.denylist)?;
        writeln!(log, "probe: {media:?}").ok();
        validate(&media)?;
        let mut w = window(media.duration, self.job.cut);
        if w.duration() <= 0.0 {
            return Err(RunnerError::invalid_input(
                "ZeroDuration",
                "the cut keeps nothing of the source",
            ));
        }
        // What the outputs must last, whatever the dressing adds: the kept part of the source,
        // or of the studio mix's timeline (its summary's duration, not the probe of its file).
        let timeline = studio
            .and_then(|(summary, _)| summary.get("duration"))
            .and_then(serde_json::Value::as_f64);
        let expected_seconds =
            timeline.map_or(w.duration(), |t| window(t, self.job.cut).duration());
        let mut webm = media.is_webm_like(&self.source.extension);
        let mut path = source.clone();
        let mut dressing_applied = None;
        if !self.assets.is_empty() {
            if media.video.is_some() {
                drop(input);
                let report = |p: f64| progress.set(DRESSING, p * 100.0);
                let stage = self.stage(&self.work, &report);
                let main = crate::dressing::render::Main {
                    source,
                    media: &media,
                    window: w,
                };
                let (dressed, applied) =
                    crate::dressing::render::dress(&main, &self.assets, &stage, log)?;
                input = crate::libav::probe::open(&dressed)?;
                path = dressed.clone();
                media = crate::libav::probe::probe(&input, &self.denylist)?;
                writeln!(log, "dressed probe: {media:?}").ok();
                validate(&media)?;
                w = window(media.duration, None);
                webm = false;
                dressing_applied = Some(applied);
            } else {
                writeln!(log, "warning: no video stream, the dressing is not applied").ok();
            }
        }
        let prepared = Prepared {
            input,
            path,
            media,
            window: w,
            webm,
            dressing_applied,
        };
        Ok((prepared, expected_seconds))
    }

    /// The renditions, codecs (NVDEC preflighted on `path`) and pictures of the pass; also
    /// the GPU used and why the CPU is used where it is.
    fn plan(
        &self,
        media: &MediaInfo,
        path: &Path,
        w: Window,
        webm: bool,
        log: &mut Log,
    ) -> (Plan, Option<String>, Vec<String>) {
        let rungs = match &media.video {
            Some(v) => crate::ladder::select(&self.job.ladder, v.height),
            None => Vec::new(),
        };
        let choice = crate::hardware::choice::choose(
            &self.hardware.gpu,
            media.video.as_ref().map(|v| v.codec.as_str()),
            self.hardware.allow,
        );
        let mut fallback = choice.fallback;
        let nvdec = match (choice.cuvid, &media.video) {
            (Some(name), Some(v)) => match crate::libav::nvdec::preflight(path, v.index, name) {
                Ok(n) => Some(n),
                Err(why) => {
                    tracing::warn!(reason = %why, "NVDEC fallback");
                    fallback.push(format!("decode: {why}"));
                    None
                }
            },
            _ => None,
        };
        for why in &fallback {
            writeln!(log, "CPU codec: {why}").ok();
        }
        let plan = Plan {
            rungs,
            window: w,
            cfr: webm.then(|| cfr_rate(media.video.as_ref().map_or(0.0, |v| v.fps))),
            webm,
            overview: overview(w.duration()),
            nvdec,
            nvenc: choice.nvenc,
        };
        writeln!(
            log,
            "window: {:.3}..{:.3} s; renditions: {:?}",
            w.start,
            w.end,
            plan.rungs.iter().map(|r| r.height).collect::<Vec<_>>()
        )
        .ok();
        (plan, choice.gpu, fallback)
    }

    /// `info_video.json`, with what the dressing applied and the studio mix's summary.
    fn write_info(
        &self,
        media: &MediaInfo,
        w: &Window,
        dressing_applied: Option<serde_json::Value>,
        studio: Option<MixSummary>,
        outputs: &Outputs,
    ) -> Result<(), RunnerError> {
        let job = &self.job;
        let dressing = job
            .dressing
            .as_ref()
            .and_then(|d| serde_json::to_value(d).ok());
        let mut info = info_json(media, w, job.cut.is_some(), &job.ids, dressing, outputs);
        if let Some(o) = info.as_object_mut() {
            o.insert(
                "dressing_applied".into(),
                dressing_applied.unwrap_or(serde_json::Value::Null),
            );
            if let Some((studio, _)) = studio {
                o.insert("studio".into(), studio);
            }
        }
        let text = serde_json::to_string_pretty(&info)
            .map_err(|e| RunnerError::encoding("info_video.json", e))?;
        std::fs::write(self.out.join(INFO_JSON), text + "\n")
            .map_err(|e| RunnerError::transient("DiskWriteFailed", e.to_string()))
    }
}
