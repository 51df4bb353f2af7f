//! Prometheus metrics of the operator, encoded as OpenMetrics text for `/metrics`.
//!
//! Label values are pool and tenant names and small fixed vocabularies (task types, phases,
//! outcomes, failure and waiting reasons, error categories, write kinds), never task names,
//! to keep cardinality bounded. Names follow Prometheus' conventions under one prefix,
//! `esup_runner_` (docs/operator.md, "Metrics").

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, PoisonError};

use esup_api::TaskPhase;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::schedule::{FinishedTask, PoolReport};

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
struct TypedLabels {
    pool: String,
    task_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExecutionLabels {
    pool: String,
    task_type: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndToEndLabels {
    task_type: String,
    phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FinishedLabels {
    pool: String,
    task_type: String,
    tenant: String,
    phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UsageLabels {
    pool: String,
    task_type: String,
    tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    pool: String,
    reason: String,
}

/// The leader's view of the pools, exported only by the leader: `replica_role` says so, and a
/// replica that steps down removes its series, so that sums across replicas never count a
/// demoted leader's last values.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LeaderPoolLabels {
    pool: String,
    replica_role: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PendingLabels {
    pool: String,
    reason: String,
    replica_role: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CategoryLabels {
    category: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

const LEADER: &str = "leader";

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;
type FloatGauge = Gauge<f64, AtomicU64>;

fn schedule_to_start_histogram() -> Histogram {
    Histogram::new(SCHEDULE_TO_START_BUCKETS)
}

fn execution_histogram() -> Histogram {
    Histogram::new(EXECUTION_BUCKETS)
}

/// A task's life, queue and retries included, spans the queue's range and the runs'.
fn end_to_end_histogram() -> Histogram {
    Histogram::new(SCHEDULE_TO_START_BUCKETS)
}

/// The phase of a finished task as a label: Kubernetes' phases in Prometheus' snake case,
/// with cancellations (Failed, reason Cancelled) apart.
pub fn finished_phase(phase: TaskPhase, reason: &str) -> &'static str {
    match phase {
        TaskPhase::Succeeded => "succeeded",
        TaskPhase::TimedOut => "timed_out",
        _ if reason == esup_api::conditions::reason::CANCELLED => "cancelled",
        _ => "failed",
    }
}

/// The operator's metric families. Families share their state with the registry, so
/// recording needs only `&self`; share it as `Arc<Metrics>`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    schedule_to_start: HistogramFamily<TypedLabels>,
    execution: HistogramFamily<ExecutionLabels>,
    end_to_end: HistogramFamily<EndToEndLabels>,
    finished: Family<FinishedLabels, Counter>,
    attempt_failures: Family<ReasonLabels, Counter>,
    media_processed: Family<UsageLabels, Counter<f64, AtomicU64>>,
    pending: Family<PendingLabels, Gauge>,
    queue_depth: Family<LeaderPoolLabels, Gauge>,
    oldest_queued: Family<LeaderPoolLabels, FloatGauge>,
    slots: Family<LeaderPoolLabels, Gauge>,
    slots_free: Family<LeaderPoolLabels, Gauge>,
    running: Family<LeaderPoolLabels, Gauge>,
    ready: Family<LeaderPoolLabels, Gauge>,
    suspended: Family<LeaderPoolLabels, Gauge>,
    gpus_allocatable: Family<LeaderPoolLabels, Gauge>,
    reconcile_errors: Family<CategoryLabels, Counter>,
    leader: Gauge,
    pass: Histogram,
    scheduler_tasks: Gauge,
    writes: Family<KindLabels, Counter>,
    undecodable: Family<KindLabels, Counter>,
    /// The series of the last pass, to remove what is gone.
    seen: Mutex<Exported>,
}

/// The pools and (pool, reason) pairs the leader's gauges show.
#[derive(Debug, Default)]
struct Exported {
    pools: BTreeSet<String>,
    pending: BTreeSet<(String, String)>,
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
            end_to_end: Family::new_with_constructor(end_to_end_histogram),
            finished: Family::default(),
            attempt_failures: Family::default(),
            media_processed: Family::default(),
            pending: Family::default(),
            queue_depth: Family::default(),
            oldest_queued: Family::default(),
            slots: Family::default(),
            slots_free: Family::default(),
            running: Family::default(),
            ready: Family::default(),
            suspended: Family::default(),
            gpus_allocatable: Family::default(),
            reconcile_errors: Family::default(),
            leader: Gauge::default(),
            pass: Histogram::new(PASS_BUCKETS),
            scheduler_tasks: Gauge::default(),
            writes: Family::default(),
            undecodable: Family::default(),
            seen: Mutex::default(),
        };
        metrics.register_tasks();
        metrics.register_pools();
        metrics.register_internals();
        metrics
    }

    /// Counters get `_total` and unit-registered metrics their unit from the encoder.
    fn register_tasks(&mut self) {
        let registry = &mut self.registry;
        registry.register_with_unit(
            "esup_runner_task_schedule_to_start",
            "Time from a task entering its pool's queue to its runner pod starting, per attempt",
            Unit::Seconds,
            self.schedule_to_start.clone(),
        );
        registry.register_with_unit(
            "esup_runner_task_execution",
            "Time from a task's runner pod starting to the task ending, by outcome",
            Unit::Seconds,
            self.execution.clone(),
        );
        registry.register_with_unit(
            "esup_runner_task_end_to_end",
            "Time from a task's creation to its end, queue and retries included, by final phase",
            Unit::Seconds,
            self.end_to_end.clone(),
        );
        registry.register(
            "esup_runner_tasks_finished",
            "Tasks that reached a terminal phase (succeeded, failed, timed_out, cancelled)",
            self.finished.clone(),
        );
        registry.register(
            "esup_runner_task_attempt_failures",
            "Failed task attempts, whether retried or not, by reason",
            self.attempt_failures.clone(),
        );
        registry.register_with_unit(
            "esup_runner_media_processed",
            "Seconds of media of the tasks that succeeded, by pool, task type and tenant",
            Unit::Seconds,
            self.media_processed.clone(),
        );
        registry.register(
            "esup_runner_tasks_pending",
            "Tasks waiting, by the pool whose queue holds them (empty: none, NoEligiblePool) and reason",
            self.pending.clone(),
        );
    }

    fn register_pools(&mut self) {
        let registry = &mut self.registry;
        registry.register(
            "esup_runner_pool_queue_depth",
            "Tasks waiting in the pool's queue",
            self.queue_depth.clone(),
        );
        registry.register_with_unit(
            "esup_runner_pool_oldest_queued",
            "Age of the oldest task waiting in the pool's queue (0 when none waits)",
            Unit::Seconds,
            self.oldest_queued.clone(),
        );
        registry.register(
            "esup_runner_pool_slots",
            "Tasks the pool can run at once now: maxConcurrency, bounded by its nodes' GPUs",
            self.slots.clone(),
        );
        registry.register(
            "esup_runner_pool_slots_free",
            "Free runner slots in the pool",
            self.slots_free.clone(),
        );
        registry.register(
            "esup_runner_pool_running",
            "Tasks running in the pool",
            self.running.clone(),
        );
        registry.register(
            "esup_runner_pool_ready",
            "1 when the pool admits tasks (its Ready condition), else 0",
            self.ready.clone(),
        );
        registry.register(
            "esup_runner_pool_suspended",
            "1 when the pool is suspended (spec.suspend), else 0",
            self.suspended.clone(),
        );
        registry.register(
            "esup_runner_pool_gpus_allocatable",
            "Allocatable GPUs on the pool's nodes (GPU pools only)",
            self.gpus_allocatable.clone(),
        );
    }

    fn register_internals(&mut self) {
        let registry = &mut self.registry;
        esup_kube_common::build_info::register(registry, "esup_runner_operator_build_info");
        registry.register(
            "esup_runner_operator_leader",
            "1 when this replica holds the leader Lease and may write, else 0",
            self.leader.clone(),
        );
        registry.register(
            "esup_runner_operator_reconcile_errors",
            "Errors of the operator's I/O layer, by category",
            self.reconcile_errors.clone(),
        );
        registry.register_with_unit(
            "esup_runner_operator_scheduler_pass",
            "Duration of one scheduling pass",
            Unit::Seconds,
            self.pass.clone(),
        );
        registry.register(
            "esup_runner_operator_scheduler_tasks",
            "Tasks seen by the latest scheduling pass",
            self.scheduler_tasks.clone(),
        );
        registry.register(
            "esup_runner_operator_kube_api_writes",
            "Writes to the Kubernetes API, by kind (status, job, secret, event, delete)",
            self.writes.clone(),
        );
        registry.register(
            "esup_runner_operator_watch_undecodable_objects",
            "Objects a watch skipped because they do not decode, by kind (each also gets a Warning Event)",
            self.undecodable.clone(),
        );
    }

    /// OpenMetrics text exposition, terminated by `# EOF`.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    pub fn observe_schedule_to_start(&self, pool: &str, task_type: &str, seconds: f64) {
        self.schedule_to_start
            .get_or_create(&TypedLabels {
                pool: pool.into(),
                task_type: task_type.into(),
            })
            .observe(seconds);
    }

    /// A task that reached a terminal phase; its media counts only when it succeeded.
    pub fn observe_finished(&self, task: &FinishedTask) {
        let phase = finished_phase(task.phase, &task.reason);
        if let Some(seconds) = task.execution_seconds {
            self.execution
                .get_or_create(&ExecutionLabels {
                    pool: task.pool.clone(),
                    task_type: task.task_type.clone(),
                    outcome: task.outcome.protocol_name().to_owned(),
                })
                .observe(seconds);
        }
        self.end_to_end
            .get_or_create(&EndToEndLabels {
                task_type: task.task_type.clone(),
                phase,
            })
            .observe(task.end_to_end_seconds);
        self.finished
            .get_or_create(&FinishedLabels {
                pool: task.pool.clone(),
                task_type: task.task_type.clone(),
                tenant: task.tenant.clone(),
                phase,
            })
            .inc();
        let media = task
            .media_seconds
            .filter(|s| task.phase == TaskPhase::Succeeded && s.is_finite() && *s > 0.0);
        if let Some(media) = media {
            self.media_processed
                .get_or_create(&UsageLabels {
                    pool: task.pool.clone(),
                    task_type: task.task_type.clone(),
                    tenant: task.tenant.clone(),
                })
                .inc_by(media);
        }
    }

    pub fn inc_attempt_failure(&self, pool: &str, reason: &str) {
        self.attempt_failures
            .get_or_create(&ReasonLabels {
                pool: pool.into(),
                reason: reason.into(),
            })
            .inc();
    }

    /// The pools and waiting tasks as the leader's pass left them. Pools and (pool, reason)
    /// pairs of the previous pass that are absent now lose their series.
    pub fn set_pools(&self, pools: &[PoolReport], pending: &BTreeMap<(String, String), u32>) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        for pool in pools {
            let labels = LeaderPoolLabels {
                pool: pool.name.clone(),
                replica_role: LEADER,
            };
            let status = &pool.status;
            self.queue_depth
                .get_or_create(&labels)
                .set(i64::from(pool.queued));
            self.oldest_queued
                .get_or_create(&labels)
                .set(pool.oldest_queued_seconds);
            self.slots
                .get_or_create(&labels)
                .set(i64::from(status.slots));
            self.slots_free
                .get_or_create(&labels)
                .set(i64::from(pool.free));
            self.running
                .get_or_create(&labels)
                .set(i64::from(status.running));
            self.ready.get_or_create(&labels).set(i64::from(pool.ready));
            self.suspended
                .get_or_create(&labels)
                .set(i64::from(pool.suspended));
            match status.gpus_allocatable {
                Some(gpus) => {
                    self.gpus_allocatable
                        .get_or_create(&labels)
                        .set(i64::from(gpus));
                }
                None => {
                    self.gpus_allocatable.remove(&labels);
                }
            }
        }
        let current: BTreeSet<String> = pools.iter().map(|p| p.name.clone()).collect();
        for gone in seen.pools.difference(&current) {
            self.remove_pool(gone);
        }
        for ((pool, reason), count) in pending {
            self.pending
                .get_or_create(&PendingLabels {
                    pool: pool.clone(),
                    reason: reason.clone(),
                    replica_role: LEADER,
                })
                .set(i64::from(*count));
        }
        for (pool, reason) in seen.pending.iter().filter(|k| !pending.contains_key(*k)) {
            self.pending.remove(&PendingLabels {
                pool: pool.clone(),
                reason: reason.clone(),
                replica_role: LEADER,
            });
        }
        *seen = Exported {
            pools: current,
            pending: pending.keys().cloned().collect(),
        };
    }

    /// A pool's gauges; its counters and histograms stay (they are cumulative).
    fn remove_pool(&self, pool: &str) {
        let labels = LeaderPoolLabels {
            pool: pool.into(),
            replica_role: LEADER,
        };
        for family in [
            &self.queue_depth,
            &self.slots,
            &self.slots_free,
            &self.running,
            &self.ready,
            &self.suspended,
            &self.gpus_allocatable,
        ] {
            family.remove(&labels);
        }
        self.oldest_queued.remove(&labels);
    }

    pub fn inc_reconcile_error(&self, category: &str) {
        self.reconcile_errors
            .get_or_create(&CategoryLabels {
                category: category.into(),
            })
            .inc();
    }

    /// Whether this replica leads. One that steps down drops the leader's gauges: it no
    /// longer computes them, and a stale copy would be summed with the new leader's.
    pub fn set_leader(&self, leader: bool) {
        let was = self.leader.set(i64::from(leader));
        if was == 1 && !leader {
            self.set_pools(&[], &BTreeMap::new());
        }
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
    use esup_api::TaskOutcome;

    fn encoded(metrics: &Metrics) -> String {
        match metrics.encode() {
            Ok(text) => text,
            Err(e) => panic!("encode failed: {e}"),
        }
    }

    fn has(text: &str, lines: &[&str]) {
        for line in lines {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }

    /// A pool's report: 4 slots, 3 running, 1 free, Ready, 2 GPUs.
    fn report(name: &str, queued: u32) -> PoolReport {
        PoolReport {
            name: name.to_owned(),
            uid: None,
            status: esup_api::RunnerPoolStatus {
                slots: 4,
                running: 3,
                gpus_allocatable: Some(2),
                ..Default::default()
            },
            queued,
            free: 1,
            oldest_queued_seconds: 90.5,
            ready: true,
            suspended: false,
            note: None,
        }
    }

    fn finished(pool: &str, phase: TaskPhase, outcome: TaskOutcome) -> FinishedTask {
        FinishedTask {
            pool: pool.to_owned(),
            task_type: "encoding".to_owned(),
            tenant: "univ-x".to_owned(),
            phase,
            reason: String::new(),
            outcome,
            execution_seconds: Some(42.0),
            end_to_end_seconds: 50.0,
            media_seconds: Some(600.0),
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
        has(
            &text,
            &[
                "# TYPE esup_runner_operator_leader gauge",
                "esup_runner_operator_leader 0",
                "# TYPE esup_runner_operator_scheduler_pass_seconds histogram",
                "# UNIT esup_runner_operator_scheduler_pass_seconds seconds",
                "esup_runner_operator_scheduler_pass_seconds_count 0",
                "# TYPE esup_runner_operator_scheduler_tasks gauge",
                concat!(
                    "esup_runner_operator_build_info{version=\"",
                    env!("CARGO_PKG_VERSION"),
                    "\",git_commit=\""
                ),
            ],
        );
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn records_tasks_by_pool_type_tenant_and_phase() {
        let m = Metrics::new();
        m.observe_schedule_to_start("gpu", "encoding", 3.0);
        m.observe_schedule_to_start("gpu", "encoding", 7200.0);
        let done = finished("gpu", TaskPhase::Succeeded, TaskOutcome::Completed);
        m.observe_finished(&done);
        m.observe_finished(&done);
        // Never admitted: no pool, no execution; its media is not counted (it did not succeed).
        m.observe_finished(&FinishedTask {
            execution_seconds: None,
            ..finished("", TaskPhase::TimedOut, TaskOutcome::Timeout)
        });
        m.inc_attempt_failure("cpu", "OOMKilled");
        m.inc_reconcile_error("ApiError");
        m.set_leader(true);
        m.observe_pass(0.002, 17);
        m.inc_writes("status");
        m.inc_writes("status");
        m.inc_writes("job");
        let text = encoded(&m);
        has(
            &text,
            &[
                "# UNIT esup_runner_task_schedule_to_start_seconds seconds",
                r#"esup_runner_task_schedule_to_start_seconds_count{pool="gpu",task_type="encoding"} 2"#,
                r#"esup_runner_task_schedule_to_start_seconds_bucket{le="5.0",pool="gpu",task_type="encoding"} 1"#,
                r#"esup_runner_task_execution_seconds_count{pool="gpu",task_type="encoding",outcome="completed"} 2"#,
                r#"esup_runner_task_end_to_end_seconds_count{task_type="encoding",phase="succeeded"} 2"#,
                r#"esup_runner_task_end_to_end_seconds_count{task_type="encoding",phase="timed_out"} 1"#,
                "# TYPE esup_runner_tasks_finished counter",
                r#"esup_runner_tasks_finished_total{pool="gpu",task_type="encoding",tenant="univ-x",phase="succeeded"} 2"#,
                r#"esup_runner_tasks_finished_total{pool="",task_type="encoding",tenant="univ-x",phase="timed_out"} 1"#,
                r#"esup_runner_media_processed_seconds_total{pool="gpu",task_type="encoding",tenant="univ-x"} 1200.0"#,
                r#"esup_runner_task_attempt_failures_total{pool="cpu",reason="OOMKilled"} 1"#,
                r#"esup_runner_operator_reconcile_errors_total{category="ApiError"} 1"#,
                "esup_runner_operator_leader 1",
                r#"esup_runner_operator_scheduler_pass_seconds_bucket{le="0.0025"} 1"#,
                "esup_runner_operator_scheduler_tasks 17",
                r#"esup_runner_operator_kube_api_writes_total{kind="status"} 2"#,
                r#"esup_runner_operator_kube_api_writes_total{kind="job"} 1"#,
            ],
        );
        // A task that never started has no execution time to observe.
        assert!(!text.contains(r#"esup_runner_task_execution_seconds_count{pool="""#));
    }

    #[test]
    fn pool_gauges_follow_the_last_pass_and_forget_what_is_gone() {
        let m = Metrics::new();
        m.set_leader(true);
        let mut cpu = report("cpu", 0);
        cpu.status.gpus_allocatable = None;
        let pools = [report("gpu", 4), cpu];
        let pending = BTreeMap::from([
            (("gpu".to_owned(), "WaitingForCapacity".to_owned()), 4),
            ((String::new(), "NoEligiblePool".to_owned()), 1),
        ]);
        m.set_pools(&pools, &pending);
        let text = encoded(&m);
        has(
            &text,
            &[
                r#"esup_runner_pool_queue_depth{pool="gpu",replica_role="leader"} 4"#,
                r#"esup_runner_pool_oldest_queued_seconds{pool="gpu",replica_role="leader"} 90.5"#,
                r#"esup_runner_pool_slots{pool="gpu",replica_role="leader"} 4"#,
                r#"esup_runner_pool_slots_free{pool="gpu",replica_role="leader"} 1"#,
                r#"esup_runner_pool_running{pool="gpu",replica_role="leader"} 3"#,
                r#"esup_runner_pool_ready{pool="gpu",replica_role="leader"} 1"#,
                r#"esup_runner_pool_suspended{pool="gpu",replica_role="leader"} 0"#,
                r#"esup_runner_pool_gpus_allocatable{pool="gpu",replica_role="leader"} 2"#,
                r#"esup_runner_tasks_pending{pool="gpu",reason="WaitingForCapacity",replica_role="leader"} 4"#,
                r#"esup_runner_tasks_pending{pool="",reason="NoEligiblePool",replica_role="leader"} 1"#,
            ],
        );
        assert!(!text.contains(r#"esup_runner_pool_gpus_allocatable{pool="cpu""#));

        // The gpu pool is deleted and its task no longer waits for a pool.
        m.set_pools(&[report("cpu", 0)], &BTreeMap::new());
        let text = encoded(&m);
        assert!(!text.contains(r#"pool="gpu""#), "{text}");
        assert!(!text.contains("NoEligiblePool"), "{text}");
        has(
            &text,
            &[r#"esup_runner_pool_slots{pool="cpu",replica_role="leader"} 4"#],
        );
    }

    #[test]
    fn a_replica_that_steps_down_stops_exporting_the_leaders_gauges() {
        let m = Metrics::new();
        m.set_leader(true);
        m.set_pools(
            &[report("gpu", 2)],
            &BTreeMap::from([(("gpu".to_owned(), "TenantCapReached".to_owned()), 2)]),
        );
        m.observe_finished(&FinishedTask {
            task_type: "transcription".to_owned(),
            ..finished("gpu", TaskPhase::Failed, TaskOutcome::Failed)
        });
        m.set_leader(false);
        let text = encoded(&m);
        assert!(!text.contains("esup_runner_pool_queue_depth{"), "{text}");
        assert!(!text.contains("esup_runner_tasks_pending{"), "{text}");
        has(
            &text,
            &[
                "esup_runner_operator_leader 0",
                r#"esup_runner_tasks_finished_total{pool="gpu",task_type="transcription",tenant="univ-x",phase="failed"} 1"#,
            ],
        );
    }

    #[test]
    fn finished_phases_set_cancellations_apart() {
        use esup_api::conditions::reason;
        assert_eq!(
            finished_phase(TaskPhase::Succeeded, reason::COMPLETED),
            "succeeded"
        );
        assert_eq!(
            finished_phase(TaskPhase::TimedOut, reason::NO_PROGRESS),
            "timed_out"
        );
        assert_eq!(
            finished_phase(TaskPhase::Failed, reason::CANCELLED),
            "cancelled"
        );
        assert_eq!(
            finished_phase(TaskPhase::Failed, reason::OOM_KILLED),
            "failed"
        );
    }
}
