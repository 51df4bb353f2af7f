//! Latency summaries: nearest-rank percentiles over every sample (no histogram rounding).

use std::time::Duration;

/// Percentiles of a sample, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    pub count: usize,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Summary {
    /// Summarises durations; an empty sample gives all zeros and `count` 0.
    pub fn of(samples: &[Duration]) -> Self {
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        ms.sort_by(f64::total_cmp);
        if ms.is_empty() {
            return Self::default();
        }
        Self {
            count: ms.len(),
            p50: percentile(&ms, 50.0),
            p95: percentile(&ms, 95.0),
            p99: percentile(&ms, 99.0),
            max: ms[ms.len() - 1],
            mean: ms.iter().sum::<f64>() / ms.len() as f64,
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "count": self.count,
            "p50_ms": round(self.p50),
            "p95_ms": round(self.p95),
            "p99_ms": round(self.p99),
            "max_ms": round(self.max),
            "mean_ms": round(self.mean),
        })
    }
}

/// Nearest-rank percentile of an ascending, non-empty sample: the smallest value that at
/// least `p` percent of the sample does not exceed.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Rounded to 0.1, for reports.
pub fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let sorted: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&sorted, 50.0), 50.0);
        assert_eq!(percentile(&sorted, 99.0), 99.0);
        assert_eq!(percentile(&sorted, 100.0), 100.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 0.0), 1.0);
    }

    #[test]
    fn summary_of_durations() {
        let samples: Vec<Duration> = [30, 10, 20, 40].map(Duration::from_millis).to_vec();
        let s = Summary::of(&samples);
        assert_eq!(s.count, 4);
        assert_eq!(s.p50, 20.0);
        assert_eq!(s.p99, 40.0);
        assert_eq!(s.max, 40.0);
        assert_eq!(s.mean, 25.0);
        assert_eq!(Summary::of(&[]), Summary::default());
    }
}
