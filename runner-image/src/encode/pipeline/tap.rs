//! The picture tap of the one pass (libav, PNG files): it sees every decoded video frame of
//! the kept window and takes the three thumbnails and the overview sprite's tiles from them,
//! and reports the pass's progress by their time.

use std::path::Path;

use ffmpeg_next as ff;

use crate::encode::info::{Outputs, Thumbnail};
use crate::error::RunnerError;
use crate::libav::fail;
use crate::libav::pictures::{Sprite, write_thumbnail};
use crate::naming::{Names, OVERVIEW_SPRITE, OVERVIEW_VTT};
use crate::timeline::{Overview, Window, overview_vtt, thumbnail_times};

pub(super) struct PictureTap<'a> {
    window: Window,
    overview: Overview,
    out: &'a Path,
    names: Names<'a>,
    thumb_times: [u64; 3],
    thumbs_done: [bool; 3],
    sprite: Sprite,
    /// Where pictures no frame reached come from.
    first_frame: Option<ff::frame::Video>,
    progress: &'a dyn Fn(f64),
    last_report: f64,
}

impl<'a> PictureTap<'a> {
    pub(super) fn new(
        window: Window,
        overview: Overview,
        out: &'a Path,
        names: Names<'a>,
        progress: &'a dyn Fn(f64),
    ) -> Self {
        Self {
            window,
            overview,
            out,
            names,
            thumb_times: thumbnail_times(window.duration()),
            thumbs_done: [false; 3],
            sprite: Sprite::new(overview.count),
            first_frame: None,
            progress,
            last_report: 0.0,
        }
    }

    /// A decoded frame at `t` seconds of the source.
    pub(super) fn look(&mut self, frame: &ff::frame::Video, t: f64) -> Result<(), RunnerError> {
        let window = self.window;
        let tw = t - window.start;
        if !(tw >= 0.0 && t < window.end) {
            return Ok(());
        }
        if self.first_frame.is_none() {
            self.first_frame = Some(frame.clone());
        }
        for (i, done) in self.thumbs_done.iter_mut().enumerate() {
            if !*done && tw >= self.thumb_times[i] as f64 {
                write_thumbnail(frame, &self.out.join(self.names.thumbnail(i)))
                    .map_err(fail("thumbnail"))?;
                *done = true;
            }
        }
        let tile = (tw / f64::from(self.overview.interval)).floor() as usize;
        if tile < self.overview.count as usize && !self.sprite.is_filled(tile) {
            self.sprite.put(tile, frame).map_err(fail("overview"))?;
        }
        if tw - self.last_report >= 1.0 {
            self.last_report = tw;
            (self.progress)((tw / window.duration().max(0.001)).clamp(0.0, 1.0));
        }
        Ok(())
    }

    /// Pictures that no frame reached (timestamps past the last frame): the first frame, as
    /// the reference runner retries at t=0. Then the sprite and its WebVTT.
    pub(super) fn finish(mut self, outputs: &mut Outputs) -> Result<(), RunnerError> {
        let first = self.first_frame.take().ok_or_else(|| {
            RunnerError::invalid_input(
                "NoUsableStream",
                "no video frame could be decoded in the kept window",
            )
        })?;
        let names = self.names;
        for (i, done) in self.thumbs_done.iter().enumerate() {
            if !done {
                write_thumbnail(&first, &self.out.join(names.thumbnail(i)))
                    .map_err(fail("thumbnail"))?;
            }
        }
        for (i, t) in self.thumb_times.iter().enumerate() {
            outputs.thumbnails.push(Thumbnail {
                filename: names.thumbnail(i),
                timestamp: *t,
                percentage: [25, 50, 75][i],
            });
        }
        let missing: Vec<usize> = self.sprite.missing().collect();
        for i in missing {
            self.sprite.put(i, &first).map_err(fail("overview"))?;
        }
        self.sprite
            .write(&self.out.join(OVERVIEW_SPRITE))
            .map_err(fail("overview"))?;
        std::fs::write(
            self.out.join(OVERVIEW_VTT),
            overview_vtt(self.window.duration(), self.overview.count, OVERVIEW_SPRITE),
        )
        .map_err(|e| RunnerError::transient("DiskWriteFailed", e.to_string()))?;
        outputs.overview = Some((OVERVIEW_SPRITE.into(), OVERVIEW_VTT.into()));
        Ok(())
    }
}
