//! Prometheus metrics of the operator, encoded as OpenMetrics text for `/metrics`.
//!
//! Label values are pool names and small fixed vocabularies (outcomes, failure reasons,
//! error categories, write kinds), never task names, to keep cardinality bounded.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Queue wait ranges from an idle pool (sub-second) to a backlog of long encodings (hours).
const SCHEDULE_TO_START_BUCKETS: [f64; 18] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0,
    7200.0, 14400.0, 21600.0,
];
/// A transcription of a short clip takes seconds; a long 4K encoding takes hours.
const EXECUTION_BUCKETS: [f64; 17] = [
    1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1200.0, 1800.0, 2700.0, 3600.0, 5400.0,
    7200.0, 14400.0, 21600.0,
];
/// A scheduling pass is in-memory work: sub-millisecond normally, seconds means trouble.
const PASS_BUCKETS: [f64; 15] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    pool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    pool: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskTypeLabels {
    pool: String,
    task_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    pool: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CategoryLabels {
    category: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn schedule_to_start_histogram() -> Histogram {
    Histogram::new(SCHEDULE_TO_START_BUCKETS)
}

fn execution_histogram() -> Histogram {
    Histogram::new(EXECUTION_BUCKETS)
}

/// The operator's metric families. Families share their state with the registry, so
/// recording needs only `&self`; share it as `Arc<Metrics>`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    schedule_to_start: HistogramFamily<PoolLabels>,
    execution: HistogramFamily<OutcomeLabels>,
    completions: Family<TaskTypeLabels, Counter>,
    failures: Family<ReasonLabels, Counter>,
    queue_depth: Family<PoolLabels, Gauge>,
    slots_free: Family<PoolLabels, Gauge>,
    running: Family<PoolLabels, Gauge>,
    reconcile_errors: Family<CategoryLabels, Counter>,
    leader: Gauge,
    pass: Histogram,
    scheduler_tasks: Gauge,
    writes: Family<KindLabels, Counter>,
    undecodable: Family<KindLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut metrics = Self {
            registry: Registry::default(),
            schedule_to_start: Family::new_with_constructor(schedule_to_start_histogram),
            execution: Family::new_with_constructor(execution_histogram),
            completions: Family::default(),
            failures: Family::default(),
            queue_depth: Family::default(),
            slots_free: Family::default(),
            running: Family::default(),
            reconcile_errors: Family::default(),
            leader: Gauge::default(),
            pass: Histogram::new(PASS_BUCKETS),
            scheduler_tasks: Gauge::default(),
            writes: Family::default(),
            undecodable: Family::default(),
        };
        let registry = &mut metrics.registry;
        // Counters get `_total` and unit-registered metrics get `_seconds` from the encoder.
        registry.register_with_unit(
            "esup_task_schedule_to_start",
            "Time from a task entering its pool's queue to its runner pod starting",
            Unit::Seconds,
            metrics.schedule_to_start.clone(),
        );
        registry.register_with_unit(
            "esup_task_execution",
            "Time from a task's runner pod starting to the task ending, by outcome",
            Unit::Seconds,
            metrics.execution.clone(),
        );
        registry.register(
            "esup_task_completions",
            "Tasks that completed successfully",
            metrics.completions.clone(),
        );
        registry.register(
            "esup_task_failures",
            "Failed task attempts, whether retried or not, by reason",
            metrics.failures.clone(),
        );
        registry.register(
            "esup_pool_queue_depth",
            "Tasks waiting in the pool's queue",
            metrics.queue_depth.clone(),
        );
        registry.register(
            "esup_pool_slots_free",
            "Free runner slots in the pool",
            metrics.slots_free.clone(),
        );
        registry.register(
            "esup_pool_running",
            "Tasks running in the pool",
            metrics.running.clone(),
        );
        registry.register(
            "esup_reconcile_errors",
            "Errors of the operator's I/O layer, by category",
            metrics.reconcile_errors.clone(),
        );
        registry.register(
            "esup_operator_leader",
            "1 when this replica holds the leader Lease and may write, else 0",
            metrics.leader.clone(),
        );
        registry.register_with_unit(
            "esup_scheduler_pass",
            "Duration of one scheduling pass",
            Unit::Seconds,
            metrics.pass.clone(),
        );
        registry.register(
            "esup_scheduler_tasks",
            "Tasks seen by the latest scheduling pass",
            metrics.scheduler_tasks.clone(),
        );
        registry.register(
            "esup_api_writes",
            "Writes to the Kubernetes API, by kind (status, job, secret, event, delete)",
            metrics.writes.clone(),
        );
        registry.register(
            "esup_watch_undecodable_objects",
            "Objects a watch skipped because they do not decode, by kind (each also gets a Warning Event)",
            metrics.undecodable.clone(),
        );
        metrics
    }

    /// OpenMetrics text exposition, terminated by `# EOF`.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    pub fn observe_schedule_to_start(&self, pool: &str, seconds: f64) {
        self.schedule_to_start
            .get_or_create(&PoolLabels { pool: pool.into() })
            .observe(seconds);
    }

    pub fn observe_execution(&self, pool: &str, outcome: &str, seconds: f64) {
        self.execution
            .get_or_create(&OutcomeLabels {
                pool: pool.into(),
                outcome: outcome.into(),
            })
            .observe(seconds);
    }

    pub fn inc_completion(&self, pool: &str, task_type: &str) {
        self.completions
            .get_or_create(&TaskTypeLabels {
                pool: pool.into(),
                task_type: task_type.into(),
            })
            .inc();
    }

    pub fn inc_failure(&self, pool: &str, reason: &str) {
        self.failures
            .get_or_create(&ReasonLabels {
                pool: pool.into(),
                reason: reason.into(),
            })
            .inc();
    }

    pub fn set_pool(&self, pool: &str, queue_depth: i64, free_slots: i64, running: i64) {
        let labels = PoolLabels { pool: pool.into() };
        self.queue_depth.get_or_create(&labels).set(queue_depth);
        self.slots_free.get_or_create(&labels).set(free_slots);
        self.running.get_or_create(&labels).set(running);
    }

    /// Drops a deleted pool's gauges so they do not report stale values forever. Its
    /// counters and histograms stay: they are cumulative.
    pub fn forget_pool(&self, pool: &str) {
        let labels = PoolLabels { pool: pool.into() };
        self.queue_depth.remove(&labels);
        self.slots_free.remove(&labels);
        self.running.remove(&labels);
    }

    pub fn inc_reconcile_error(&self, category: &str) {
        self.reconcile_errors
            .get_or_create(&CategoryLabels {
                category: category.into(),
            })
            .inc();
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    pub fn observe_pass(&self, seconds: f64, tasks: usize) {
        self.pass.observe(seconds);
        self.scheduler_tasks
            .set(i64::try_from(tasks).unwrap_or(i64::MAX));
    }

    pub fn inc_writes(&self, kind: &str) {
        self.writes
            .get_or_create(&KindLabels { kind: kind.into() })
            .inc();
    }

    pub fn inc_undecodable(&self, kind: &str) {
        self.undecodable
            .get_or_create(&KindLabels { kind: kind.into() })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(metrics: &Metrics) -> String {
        match metrics.encode() {
            Ok(text) => text,
            Err(e) => panic!("encode failed: {e}"),
        }
    }

    #[test]
    fn is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Metrics>();
    }

    #[test]
    fn unlabelled_metrics_are_exposed_from_the_start() {
        let text = encoded(&Metrics::new());
        for line in [
            "# TYPE esup_operator_leader gauge",
            "esup_operator_leader 0",
            "# TYPE esup_scheduler_pass_seconds histogram",
            "# UNIT esup_scheduler_pass_seconds seconds",
            "esup_scheduler_pass_seconds_count 0",
            "# TYPE esup_scheduler_tasks gauge",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn records_labelled_values() {
        let m = Metrics::new();
        m.observe_schedule_to_start("gpu", 3.0);
        m.observe_schedule_to_start("gpu", 7200.0);
        m.observe_execution("gpu", "Succeeded", 42.0);
        m.inc_completion("gpu", "encoding");
        m.inc_completion("gpu", "encoding");
        m.inc_failure("cpu", "OOMKilled");
        m.set_pool("gpu", 4, 1, 2);
        m.inc_reconcile_error("ApiError");
        m.set_leader(true);
        m.observe_pass(0.002, 17);
        m.inc_writes("status");
        m.inc_writes("status");
        m.inc_writes("job");
        let text = encoded(&m);
        for line in [
            "# TYPE esup_task_schedule_to_start_seconds histogram",
            "# UNIT esup_task_schedule_to_start_seconds seconds",
            r#"esup_task_schedule_to_start_seconds_count{pool="gpu"} 2"#,
            r#"esup_task_schedule_to_start_seconds_bucket{le="5.0",pool="gpu"} 1"#,
            r#"esup_task_schedule_to_start_seconds_bucket{le="7200.0",pool="gpu"} 2"#,
            "# TYPE esup_task_execution_seconds histogram",
            r#"esup_task_execution_seconds_count{pool="gpu",outcome="Succeeded"} 1"#,
            "# TYPE esup_task_completions counter",
            r#"esup_task_completions_total{pool="gpu",task_type="encoding"} 2"#,
            "# TYPE esup_task_failures counter",
            r#"esup_task_failures_total{pool="cpu",reason="OOMKilled"} 1"#,
            "# TYPE esup_pool_queue_depth gauge",
            r#"esup_pool_queue_depth{pool="gpu"} 4"#,
            "# TYPE esup_pool_slots_free gauge",
            r#"esup_pool_slots_free{pool="gpu"} 1"#,
            "# TYPE esup_pool_running gauge",
            r#"esup_pool_running{pool="gpu"} 2"#,
            "# TYPE esup_reconcile_errors counter",
            r#"esup_reconcile_errors_total{category="ApiError"} 1"#,
            "esup_operator_leader 1",
            "esup_scheduler_pass_seconds_count 1",
            r#"esup_scheduler_pass_seconds_bucket{le="0.0025"} 1"#,
            "esup_scheduler_tasks 17",
            "# TYPE esup_api_writes counter",
            r#"esup_api_writes_total{kind="status"} 2"#,
            r#"esup_api_writes_total{kind="job"} 1"#,
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn forget_pool_drops_only_that_pools_gauges() {
        let m = Metrics::new();
        m.set_pool("gpu", 4, 1, 2);
        m.set_pool("cpu", 0, 8, 0);
        m.inc_completion("gpu", "transcription");
        let text = encoded(&m);
        assert!(text.contains(r#"esup_pool_queue_depth{pool="gpu"} 4"#));
        assert!(text.contains(r#"esup_pool_slots_free{pool="gpu"} 1"#));
        assert!(text.contains(r#"esup_pool_running{pool="gpu"} 2"#));

        m.forget_pool("gpu");
        let text = encoded(&m);
        assert!(!text.contains(r#"esup_pool_queue_depth{pool="gpu"}"#));
        assert!(!text.contains(r#"esup_pool_slots_free{pool="gpu"}"#));
        assert!(!text.contains(r#"esup_pool_running{pool="gpu"}"#));
        assert!(text.contains(r#"esup_pool_slots_free{pool="cpu"} 8"#));
        assert!(
            text.contains(r#"esup_task_completions_total{pool="gpu",task_type="transcription"} 1"#)
        );
    }

    #[test]
    fn leader_gauge_goes_back_to_zero() {
        let m = Metrics::new();
        m.set_leader(true);
        m.set_leader(false);
        assert!(encoded(&m).contains("esup_operator_leader 0"));
    }
}
