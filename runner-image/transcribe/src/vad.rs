//! Energy-based voice activity detection. whisper.cpp's own VAD needs a Silero model that no
//! registry ships; speech vs silence/hum is what matters here (Whisper invents text on silence),
//! and frame energy against an adaptive noise floor separates them well for lecture audio.

/// A span of samples, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn len(&self) -> usize {
        self.end.saturating_sub(self.start)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone, Copy)]
pub struct VadConfig {
    pub sample_rate: u32,
    /// Analysis frame, ms.
    pub frame_ms: u32,
    /// A frame is speech when this many dB above the noise floor...
    pub margin_db: f32,
    /// ...and above this absolute level (dBFS), so digital silence and faint hiss never count.
    pub min_level_db: f32,
    /// Speech shorter than this is dropped (clicks), ms.
    pub min_speech_ms: u32,
    /// Pauses shorter than this are bridged (between words), ms.
    pub max_pause_ms: u32,
    /// Kept around each region so word onsets and tails are not clipped, ms.
    pub pad_ms: u32,
}

impl Default for VadConfig {
    fn default() -> Self {
        Self {
            sample_rate: crate::audio::SAMPLE_RATE,
            frame_ms: 30,
            margin_db: 12.0,
            min_level_db: -50.0,
            min_speech_ms: 200,
            max_pause_ms: 600,
            pad_ms: 250,
        }
    }
}

/// Frame levels in dBFS (RMS).
pub fn frame_levels(samples: &[f32], frame: usize) -> Vec<f32> {
    samples
        .chunks(frame.max(1))
        .map(|c| {
            let energy = c.iter().map(|s| s * s).sum::<f32>() / c.len() as f32;
            10.0 * energy.max(1e-12).log10()
        })
        .collect()
}

/// The noise floor: the 10th percentile of frame levels (lectures pause often enough).
fn noise_floor(levels: &[f32]) -> f32 {
    let mut sorted = levels.to_vec();
    sorted.sort_by(f32::total_cmp);
    sorted.get(sorted.len() / 10).copied().unwrap_or(-120.0)
}

/// Speech regions of `samples`, sorted, disjoint, inside `[0, samples.len())`.
pub fn detect(samples: &[f32], cfg: &VadConfig) -> Vec<Span> {
    let frame = (cfg.sample_rate * cfg.frame_ms / 1000) as usize;
    if frame == 0 || samples.is_empty() {
        return Vec::new();
    }
    let levels = frame_levels(samples, frame);
    let threshold = (noise_floor(&levels) + cfg.margin_db).max(cfg.min_level_db);
    let ms = |v: u32| (cfg.sample_rate as usize * v as usize) / 1000;

    let mut spans: Vec<Span> = Vec::new();
    for (i, level) in levels.iter().enumerate() {
        if *level < threshold {
            continue;
        }
        let (start, end) = (i * frame, ((i + 1) * frame).min(samples.len()));
        match spans.last_mut() {
            Some(last) if start - last.end <= ms(cfg.max_pause_ms) => last.end = end,
            _ => spans.push(Span { start, end }),
        }
    }
    spans.retain(|s| s.len() >= ms(cfg.min_speech_ms));
    let pad = ms(cfg.pad_ms);
    let mut padded: Vec<Span> = Vec::with_capacity(spans.len());
    for s in spans {
        let span = Span {
            start: s.start.saturating_sub(pad),
            end: (s.end + pad).min(samples.len()),
        };
        match padded.last_mut() {
            Some(last) if span.start <= last.end => last.end = span.end,
            _ => padded.push(span),
        }
    }
    padded
}

/// A copy of `samples` where everything outside `speech` is silence: Whisper then sees real
/// silence instead of hum or music it would caption.
pub fn keep_only(samples: &[f32], speech: &[Span]) -> Vec<f32> {
    let mut out = vec![0.0; samples.len()];
    for s in speech {
        let (a, b) = (s.start.min(samples.len()), s.end.min(samples.len()));
        out[a..b].copy_from_slice(&samples[a..b]);
    }
    out
}

/// Gain that brings the speech's RMS to `target_db` dBFS, capped so peaks stay below full
/// scale (the `normalize` parameter: EBU R128 aims at -23 LUFS, which this approximates).
pub fn normalisation_gain(samples: &[f32], speech: &[Span], target_db: f32) -> f32 {
    let (mut energy, mut n, mut peak) = (0.0f64, 0usize, 0.0f32);
    for s in speech {
        for v in &samples[s.start.min(samples.len())..s.end.min(samples.len())] {
            energy += f64::from(v * v);
            n += 1;
            peak = peak.max(v.abs());
        }
    }
    if n == 0 || peak == 0.0 {
        return 1.0;
    }
    let rms_db = 10.0 * (energy / n as f64).max(1e-12).log10() as f32;
    let gain = 10f32.powf((target_db - rms_db) / 20.0);
    gain.min(0.99 / peak)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SR: usize = 16_000;

    fn tone(seconds: f32, amplitude: f32) -> Vec<f32> {
        (0..(seconds * SR as f32) as usize)
            .map(|i| amplitude * (i as f32 * 2.0 * std::f32::consts::PI * 220.0 / SR as f32).sin())
            .collect()
    }

    fn noise(seconds: f32, amplitude: f32) -> Vec<f32> {
        // Deterministic pseudo-noise (an LCG): tests must not depend on a random seed.
        let mut x: u32 = 12345;
        (0..(seconds * SR as f32) as usize)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                amplitude * ((x >> 16) as f32 / 32768.0 - 1.0)
            })
            .collect()
    }

    #[test]
    fn finds_speech_between_silences() {
        let mut audio = noise(2.0, 0.001);
        audio.extend(tone(1.5, 0.3));
        audio.extend(noise(3.0, 0.001));
        audio.extend(tone(1.0, 0.3));
        audio.extend(noise(1.0, 0.001));
        let spans = detect(&audio, &VadConfig::default());
        assert_eq!(spans.len(), 2, "{spans:?}");
        let secs = |s: usize| s as f32 / SR as f32;
        assert!((secs(spans[0].start) - 1.75).abs() < 0.06, "{spans:?}");
        assert!((secs(spans[0].end) - 3.75).abs() < 0.06, "{spans:?}");
        assert!((secs(spans[1].start) - 6.25).abs() < 0.06, "{spans:?}");
        assert!(spans[1].end <= audio.len());
    }

    #[test]
    fn silence_and_faint_hiss_are_not_speech() {
        assert!(detect(&vec![0.0; SR * 5], &VadConfig::default()).is_empty());
        assert!(detect(&noise(5.0, 0.002), &VadConfig::default()).is_empty());
        assert!(detect(&[], &VadConfig::default()).is_empty());
    }

    #[test]
    fn short_pauses_are_bridged_and_clicks_dropped() {
        let mut audio = noise(1.0, 0.001);
        audio.extend(tone(0.5, 0.3));
        audio.extend(noise(0.3, 0.001)); // a pause between words
        audio.extend(tone(0.5, 0.3));
        audio.extend(noise(1.0, 0.001));
        audio.extend(tone(0.05, 0.3)); // a click
        audio.extend(noise(1.0, 0.001));
        let spans = detect(&audio, &VadConfig::default());
        assert_eq!(spans.len(), 1, "{spans:?}");
    }

    #[test]
    fn keep_only_zeroes_the_rest() {
        let audio = vec![1.0; 10];
        let kept = keep_only(
            &audio,
            &[Span { start: 2, end: 4 }, Span { start: 8, end: 20 }],
        );
        assert_eq!(kept, vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0]);
    }

    #[test]
    fn normalisation_reaches_target_without_clipping() {
        let quiet = tone(1.0, 0.01);
        let spans = [Span {
            start: 0,
            end: quiet.len(),
        }];
        let g = normalisation_gain(&quiet, &spans, -23.0);
        let rms =
            (quiet.iter().map(|v| (v * g) * (v * g)).sum::<f32>() / quiet.len() as f32).sqrt();
        assert!((20.0 * rms.log10() + 23.0).abs() < 0.1, "gain {g}");
        let loud = tone(1.0, 0.9);
        let g = normalisation_gain(&loud, &spans, -3.0);
        assert!(g * 0.9 < 1.0, "peaks must stay below full scale, gain {g}");
        assert_eq!(normalisation_gain(&loud, &[], -23.0), 1.0);
    }
}
