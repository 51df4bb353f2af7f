//! The Prometheus / OpenMetrics text that the operator serves at `/metrics`, as far as the
//! benchmarks read it: counters, gauges and histogram buckets, without timestamps.

use std::collections::BTreeMap;

/// One scrape: every series (`name{labels}`) and its value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scrape {
    pub series: BTreeMap<String, f64>,
}

impl Scrape {
    pub fn parse(text: &str) -> Self {
        let series = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|l| {
                let (name, value) = l.trim().rsplit_once(' ')?;
                let value = match value {
                    "+Inf" => f64::INFINITY,
                    "-Inf" => f64::NEG_INFINITY,
                    v => v.parse().ok()?,
                };
                Some((name.to_owned(), value))
            })
            .collect();
        Self { series }
    }

    /// The value of one series; 0 when absent (a counter not yet incremented).
    pub fn get(&self, series: &str) -> f64 {
        self.series.get(series).copied().unwrap_or(0.0)
    }

    /// What changed since `earlier`: counters and histograms become the increase.
    pub fn since(&self, earlier: &Self) -> Self {
        let series = self
            .series
            .iter()
            .map(|(k, v)| (k.clone(), v - earlier.get(k)))
            .collect();
        Self { series }
    }

    /// Values of `name{label="..."}` series by label value, e.g. writes by kind.
    pub fn by_label(&self, name: &str, label: &str) -> BTreeMap<String, f64> {
        let prefix = format!("{name}{{{label}=\"");
        self.series
            .iter()
            .filter_map(|(k, v)| {
                let rest = k.strip_prefix(&prefix)?;
                let (value, _) = rest.split_once('"')?;
                Some((value.to_owned(), *v))
            })
            .collect()
    }

    /// Upper bound of the histogram bucket that holds quantile `q` (0..1) of `name`'s
    /// observations; `None` without observations. `+Inf` when it is above the last bound.
    pub fn bucket_quantile(&self, name: &str, q: f64) -> Option<f64> {
        let mut buckets: Vec<(f64, f64)> = self
            .by_label(&format!("{name}_bucket"), "le")
            .into_iter()
            .filter_map(|(le, count)| {
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                Some((le, count))
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total = buckets.last()?.1;
        if total <= 0.0 {
            return None;
        }
        buckets
            .iter()
            .find(|(_, count)| *count >= q * total)
            .map(|(le, _)| *le)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# TYPE esup_runner_operator_kube_api_writes counter\n\
        esup_runner_operator_kube_api_writes_total{kind=\"status\"} 120\n\
        esup_runner_operator_kube_api_writes_total{kind=\"job\"} 3\n\
        # TYPE esup_runner_operator_scheduler_pass_seconds histogram\n\
        esup_runner_operator_scheduler_pass_seconds_sum 1.5\n\
        esup_runner_operator_scheduler_pass_seconds_count 10\n\
        esup_runner_operator_scheduler_pass_seconds_bucket{le=\"0.01\"} 2\n\
        esup_runner_operator_scheduler_pass_seconds_bucket{le=\"0.1\"} 9\n\
        esup_runner_operator_scheduler_pass_seconds_bucket{le=\"1.0\"} 10\n\
        esup_runner_operator_scheduler_pass_seconds_bucket{le=\"+Inf\"} 10\n\
        # EOF\n";

    #[test]
    fn parses_counters_and_labels() {
        let s = Scrape::parse(TEXT);
        assert_eq!(
            s.get("esup_runner_operator_scheduler_pass_seconds_count"),
            10.0
        );
        assert_eq!(s.get("absent"), 0.0);
        let writes = s.by_label("esup_runner_operator_kube_api_writes_total", "kind");
        assert_eq!(writes.get("status"), Some(&120.0));
        assert_eq!(writes.get("job"), Some(&3.0));
    }

    #[test]
    fn quantiles_from_buckets() {
        let s = Scrape::parse(TEXT);
        assert_eq!(
            s.bucket_quantile("esup_runner_operator_scheduler_pass_seconds", 0.5),
            Some(0.1)
        );
        assert_eq!(
            s.bucket_quantile("esup_runner_operator_scheduler_pass_seconds", 0.99),
            Some(1.0)
        );
        assert_eq!(
            s.bucket_quantile("esup_runner_operator_scheduler_pass_seconds", 0.1),
            Some(0.01)
        );
        let none = s.since(&s);
        assert_eq!(
            none.bucket_quantile("esup_runner_operator_scheduler_pass_seconds", 0.5),
            None
        );
    }
}
