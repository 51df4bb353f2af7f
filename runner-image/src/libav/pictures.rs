//! Still pictures from decoded frames: the three thumbnails and the overview sprite, written
//! as PNG with libavcodec's encoder.

use std::path::Path;

use ffmpeg_next as ff;

use crate::libav::graph::{Graph, THUMBNAIL_SPEC, TILE_SPEC};
use crate::timeline::{TILE_HEIGHT, TILE_WIDTH};

/// `buffer` arguments for a frame.
pub fn buffer_args(frame: &ff::frame::Video, time_base: ff::Rational, sar: ff::Rational) -> String {
    let sar = if sar.numerator() > 0 && sar.denominator() > 0 {
        sar
    } else {
        ff::Rational::new(1, 1)
    };
    format!(
        "video_size={}x{}:pix_fmt={}:time_base={}/{}:pixel_aspect={}/{}",
        frame.width(),
        frame.height(),
        ff::ffi::AVPixelFormat::from(frame.format()) as i32,
        time_base.numerator(),
        time_base.denominator().max(1),
        sar.numerator(),
        sar.denominator()
    )
}

/// Runs one frame through a single-output graph, giving the RGB picture.
fn convert(frame: &ff::frame::Video, spec: &str) -> Result<ff::frame::Video, ff::Error> {
    let args = buffer_args(frame, ff::Rational::new(1, 25), frame.aspect_ratio());
    let mut graph = Graph::new(("buffer", &args), "buffersink", 1, spec)?;
    let mut copy = frame.clone();
    copy.set_pts(Some(0));
    graph.push(Some(&copy))?;
    graph.push(None)?;
    let mut out = ff::frame::Video::empty();
    if graph.pull(0, &mut out)? {
        Ok(out)
    } else {
        Err(ff::Error::Bug)
    }
}

fn write_png(picture: &ff::frame::Video, path: &Path) -> Result<(), ff::Error> {
    let codec = ff::encoder::find(ff::codec::Id::PNG).ok_or(ff::Error::EncoderNotFound)?;
    let mut enc = ff::codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()?;
    enc.set_width(picture.width());
    enc.set_height(picture.height());
    enc.set_format(ff::format::Pixel::RGB24);
    enc.set_time_base(ff::Rational::new(1, 25));
    let mut enc = enc.open_as(codec)?;
    enc.send_frame(picture)?;
    enc.send_eof()?;
    let mut packet = ff::Packet::empty();
    enc.receive_packet(&mut packet)?;
    let data = packet.data().ok_or(ff::Error::Bug)?;
    std::fs::write(path, data).map_err(|e| ff::Error::Other {
        errno: e.raw_os_error().unwrap_or(ff::util::error::EIO),
    })
}

/// `<base>_<i>.png`: at most 1280x720, aspect kept.
pub fn write_thumbnail(frame: &ff::frame::Video, path: &Path) -> Result<(), ff::Error> {
    write_png(&convert(frame, THUMBNAIL_SPEC)?, path)
}

/// The overview sprite, filled tile by tile.
pub struct Sprite {
    picture: ff::frame::Video,
    filled: Vec<bool>,
}

impl Sprite {
    pub fn new(count: u32) -> Self {
        let mut picture =
            ff::frame::Video::new(ff::format::Pixel::RGB24, TILE_WIDTH * count, TILE_HEIGHT);
        picture.data_mut(0).fill(0);
        Self {
            picture,
            filled: vec![false; count as usize],
        }
    }

    pub fn is_filled(&self, i: usize) -> bool {
        self.filled.get(i).copied().unwrap_or(true)
    }

    pub fn missing(&self) -> impl Iterator<Item = usize> + '_ {
        self.filled
            .iter()
            .enumerate()
            .filter(|(_, f)| !**f)
            .map(|(i, _)| i)
    }

    /// Scales `frame` to 160x90 (lanczos) into tile `i`.
    pub fn put(&mut self, i: usize, frame: &ff::frame::Video) -> Result<(), ff::Error> {
        let tile = convert(frame, TILE_SPEC)?;
        let row_bytes = TILE_WIDTH as usize * 3;
        let (src_stride, dst_stride) = (tile.stride(0), self.picture.stride(0));
        let src = tile.data(0);
        let dst = self.picture.data_mut(0);
        for y in 0..TILE_HEIGHT as usize {
            let s = &src[y * src_stride..y * src_stride + row_bytes];
            let start = y * dst_stride + i * row_bytes;
            dst[start..start + row_bytes].copy_from_slice(s);
        }
        if let Some(f) = self.filled.get_mut(i) {
            *f = true;
        }
        Ok(())
    }

    pub fn write(&self, path: &Path) -> Result<(), ff::Error> {
        write_png(&self.picture, path)
    }
}
