//! Output files: HLS (single `.ts` + `.m3u8`), MP4 with faststart, and audio files. Each
//! takes the encoders' packets unchanged, so one encode feeds several containers.

use std::path::Path;

use ffmpeg_next as ff;

pub struct Muxer {
    ctx: ff::format::context::Output,
    /// Time base of each stream's encoder.
    encoder_time_bases: Vec<ff::Rational>,
    options: ff::Dictionary<'static>,
    started: bool,
}

impl Muxer {
    /// `-hls_playlist_type vod -hls_list_size 0 -hls_time 2
    /// -hls_flags single_file+independent_segments`.
    pub fn hls(path: &Path) -> Result<Self, ff::Error> {
        let mut options = ff::Dictionary::new();
        options.set("hls_playlist_type", "vod");
        options.set("hls_list_size", "0");
        options.set("hls_time", "2");
        options.set("hls_flags", "single_file+independent_segments");
        Self::new(ff::format::output_as(path, "hls")?, options)
    }

    /// `-movflags faststart -write_tmcd 0`.
    pub fn mp4(path: &Path) -> Result<Self, ff::Error> {
        let mut options = ff::Dictionary::new();
        options.set("movflags", "faststart");
        options.set("write_tmcd", "0");
        Self::new(ff::format::output_as(path, "mp4")?, options)
    }

    /// The container is guessed from the extension (`.mp3`, `.m4a`).
    pub fn file(path: &Path) -> Result<Self, ff::Error> {
        Self::new(ff::format::output(path)?, ff::Dictionary::new())
    }

    fn new(
        ctx: ff::format::context::Output,
        options: ff::Dictionary<'static>,
    ) -> Result<Self, ff::Error> {
        Ok(Self {
            ctx,
            encoder_time_bases: Vec::new(),
            options,
            started: false,
        })
    }

    /// Adds a stream carrying an opened encoder's packets; returns its index.
    pub fn add_stream(&mut self, encoder: &ff::codec::Context) -> Result<usize, ff::Error> {
        let mut stream = self.ctx.add_stream_with(encoder)?;
        stream.set_time_base(encoder.time_base());
        let index = stream.index();
        self.encoder_time_bases.push(encoder.time_base());
        Ok(index)
    }

    pub fn start(&mut self) -> Result<(), ff::Error> {
        self.ctx.write_header_with(self.options.clone())?;
        self.started = true;
        Ok(())
    }

    /// Writes a copy of `packet` (in its encoder's time base) to `stream`.
    pub fn write(&mut self, stream: usize, packet: &ff::Packet) -> Result<(), ff::Error> {
        let mut copy = packet.clone();
        let to = self
            .ctx
            .stream(stream)
            .ok_or(ff::Error::StreamNotFound)?
            .time_base();
        let from = *self
            .encoder_time_bases
            .get(stream)
            .ok_or(ff::Error::StreamNotFound)?;
        copy.set_stream(stream);
        copy.rescale_ts(from, to);
        copy.set_position(-1);
        copy.write_interleaved(&mut self.ctx)
    }

    pub fn finish(&mut self) -> Result<(), ff::Error> {
        if self.started {
            self.started = false;
            self.ctx.write_trailer()?;
        }
        Ok(())
    }
}
