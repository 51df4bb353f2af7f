//! Tests of the whole pass. Tasks, pools, nodes, Jobs and pods are plain values; a small
//! simulator feeds each plan's statuses back in as the next snapshot, creates the Jobs of
//! `Launch` actions, deletes those of `Stop` actions, and moves the clock.

use std::collections::{BTreeMap, HashMap};

use esup_api::conditions::{reason, task as cond};
use esup_api::status::{AttemptRecord, Progress, QueueStatus, TaskResult};
use esup_api::{
    EncodingTask, EncodingTaskSpec, RunnerPool, TaskOutcome, TaskPhase, TaskStatus,
    TranscriptionTask, TranscriptionTaskSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use super::{Action, Observation, Plan, PoolReport, Settings, Snapshot, TaskChange, plan};
use crate::failure::FREE_DISRUPTIONS;
use esup_api::task::{TaskKey, TaskKind, TaskSpec};

use crate::model::{ContainerInfo, JobCondition, JobInfo, NodeInfo, PodInfo, Pool, Task};

const NS: &str = "pod";
/// Seconds since the epoch of t = 0 in every test.
const T0: i64 = 1_700_000_000;

fn at(t: i64) -> Timestamp {
    Timestamp::from_second(T0 + t).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Building values

fn spec_yaml(head: &str, tenant: &str, extra: &str) -> String {
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!(", {extra}")
    };
    format!("{{{head}, requester: {{tenant: {tenant}, etabName: Univ, appName: Esup-Pod}}{extra}}}")
}

fn new_task(kind: TaskKind, name: &str, spec: TaskSpec) -> Task {
    Task {
        key: TaskKey {
            kind,
            namespace: NS.to_owned(),
            name: name.to_owned(),
        },
        uid: format!("uid-{name}"),
        generation: Some(1),
        resource_version: None,
        created: at(0),
        deleting: false,
        cancel_requested: false,
        invalid_parameters: None,
        spec,
        status: TaskStatus::default(),
    }
}

/// An encoding task; `extra` adds fields of the spec, e.g. "priority: Low, pools: [a]".
fn encoding(name: &str, tenant: &str, extra: &str) -> Task {
    let yaml = spec_yaml("source: {url: 'https://pod.example/v.mp4'}", tenant, extra);
    let spec: EncodingTaskSpec = serde_yaml::from_str(&yaml).unwrap();
    new_task(TaskKind::Encoding, name, TaskSpec::Encoding(spec))
}

fn transcription(name: &str, tenant: &str, extra: &str) -> Task {
    let yaml = spec_yaml(
        "source: {url: 'https://pod.example/a.mp3'}, language: fr",
        tenant,
        extra,
    );
    let spec: TranscriptionTaskSpec = serde_yaml::from_str(&yaml).unwrap();
    new_task(TaskKind::Transcription, name, TaskSpec::Transcription(spec))
}

/// The full studio EncodingTask of the API fixtures: tenant univ-x, pools [local-l4, shared-l4].
fn fixture_encoding() -> Task {
    let mut object: EncodingTask = serde_yaml::from_str(include_str!(
        "../../../api/tests/fixtures/encodingtask-full.yaml"
    ))
    .unwrap();
    object.metadata.namespace = Some(NS.to_owned());
    object.metadata.uid = Some("uid-fixture-encoding".to_owned());
    Task::from_resource(&object).unwrap()
}

/// The full TranscriptionTask of the API fixtures: tenant univ-y, pools [cpu], priority Low.
fn fixture_transcription() -> Task {
    let mut object: TranscriptionTask = serde_yaml::from_str(include_str!(
        "../../../api/tests/fixtures/transcriptiontask-full.yaml"
    ))
    .unwrap();
    object.metadata.namespace = Some(NS.to_owned());
    object.metadata.uid = Some("uid-fixture-transcription".to_owned());
    Task::from_resource(&object).unwrap()
}

/// The full RunnerPool of the API fixtures: local-l4, L4 nodes, tenants univ-x (cap 3) and univ-y.
fn fixture_pool() -> Pool {
    let object: RunnerPool = serde_yaml::from_str(include_str!(
        "../../../api/tests/fixtures/runnerpool-full.yaml"
    ))
    .unwrap();
    Pool::from_object(&object).unwrap()
}

fn with_pools(mut task: Task, pools: &[&str]) -> Task {
    let wanted = pools.iter().map(|p| (*p).to_owned()).collect();
    match &mut task.spec {
        TaskSpec::Encoding(spec) => spec.common.pools = wanted,
        TaskSpec::Transcription(spec) => spec.common.pools = wanted,
    }
    task
}

fn pool(name: &str, yaml: &str) -> Pool {
    Pool {
        generation: Some(1),
        ..crate::model::test_pool(name, yaml)
    }
}

/// A pool of encoding tasks with `slots` slots and default everything else.
fn encoding_pool(name: &str, slots: u32) -> Pool {
    pool(
        name,
        &format!("{{taskTypes: [Encoding], maxConcurrency: {slots}}}"),
    )
}

fn cpu_node(name: &str) -> NodeInfo {
    NodeInfo {
        name: name.to_owned(),
        labels: Default::default(),
        allocatable: Default::default(),
        usable: true,
    }
}

/// A GPU node as NVIDIA's GPU feature discovery labels it.
fn gpu_node(name: &str, product: &str, gpus: u64) -> NodeInfo {
    NodeInfo {
        name: name.to_owned(),
        labels: [
            (esup_api::labels::GPU_PRODUCT.to_owned(), product.to_owned()),
            ("nvidia.com/gpu.present".to_owned(), "true".to_owned()),
        ]
        .into_iter()
        .collect(),
        allocatable: [("nvidia.com/gpu".to_owned(), gpus)].into_iter().collect(),
        usable: true,
    }
}

fn active_job(name: &str, uid: &str) -> JobInfo {
    JobInfo {
        namespace: NS.to_owned(),
        name: name.to_owned(),
        task_uid: uid.to_owned(),
        active: 1,
        succeeded: 0,
        failed: 0,
        conditions: Vec::new(),
        deleting: false,
    }
}

fn pending_pod(job: &str, uid: &str, node: Option<&str>) -> PodInfo {
    PodInfo {
        namespace: NS.to_owned(),
        name: format!("{job}-p0d"),
        job_name: job.to_owned(),
        task_uid: uid.to_owned(),
        node_name: node.map(str::to_owned),
        phase: "Pending".to_owned(),
        reason: None,
        message: None,
        disruption: None,
        container: ContainerInfo::default(),
        started: None,
        deleting: false,
    }
}

/// How an attempt's Job ends.
#[derive(Clone, Copy, Debug)]
enum End {
    Complete,
    Exit(i32),
    Oom,
    Evicted,
    SchedulerPreempted,
    NodeLost,
    Deadline,
}

// ---------------------------------------------------------------------------------------------
// The simulator

struct Sim {
    t: i64,
    tasks: Vec<Task>,
    pools: Vec<Pool>,
    nodes: Vec<NodeInfo>,
    jobs: HashMap<(String, String), JobInfo>,
    pods: HashMap<(String, String), PodInfo>,
    launch_errors: HashMap<String, String>,
    settings: Settings,
    /// Namespaces with a runner NetworkPolicy.
    policed: Vec<String>,
    /// Create an active Job for each `Launch` action, as the runtime does.
    create_jobs: bool,
}

impl Sim {
    fn new(pools: Vec<Pool>, nodes: Vec<NodeInfo>) -> Self {
        Self {
            t: 0,
            tasks: Vec::new(),
            pools,
            nodes,
            jobs: HashMap::new(),
            pods: HashMap::new(),
            launch_errors: HashMap::new(),
            settings: Settings::default(),
            policed: Vec::new(),
            create_jobs: true,
        }
    }

    fn now(&self) -> Timestamp {
        at(self.t)
    }

    /// Submits a task now.
    fn add(&mut self, mut task: Task) {
        task.created = self.now();
        self.tasks.push(task);
    }

    fn plan(&self) -> Plan {
        let snapshot = Snapshot {
            tasks: self.tasks.iter().collect(),
            pools: self.pools.iter().collect(),
            nodes: self.nodes.clone(),
            jobs: &self.jobs,
            pods: &self.pods,
            launch_errors: &self.launch_errors,
            policed_namespaces: self.policed.iter().map(String::as_str).collect(),
        };
        plan(&snapshot, self.now(), &self.settings)
    }

    /// One pass at the current time, carried out.
    fn pass(&mut self) -> Plan {
        let plan = self.plan();
        self.apply(&plan);
        plan
    }

    /// One pass at time `t`, carried out.
    fn pass_at(&mut self, t: i64) -> Plan {
        assert!(t >= self.t, "time goes forward");
        self.t = t;
        self.pass()
    }

    fn apply(&mut self, plan: &Plan) {
        for change in &plan.tasks {
            let task = self
                .tasks
                .iter_mut()
                .find(|t| t.uid == change.uid)
                .expect("a planned task exists");
            task.status = change.status.clone();
            match &change.action {
                Action::Launch { launch, .. } if self.create_jobs => {
                    let name = task.identity().job_name(*launch);
                    let job = active_job(&name, &task.uid);
                    self.jobs.entry((NS.to_owned(), name)).or_insert(job);
                }
                Action::Stop { job } => {
                    let key = (NS.to_owned(), job.clone());
                    self.jobs.remove(&key);
                    self.pods.remove(&key);
                }
                _ => {}
            }
            self.launch_errors.remove(&change.uid);
        }
        for orphan in &plan.orphans {
            self.jobs.remove(orphan);
            self.pods.remove(orphan);
        }
        self.tasks.retain(|t| !plan.expired.contains(&t.key));
    }

    fn task(&self, name: &str) -> &Task {
        self.tasks
            .iter()
            .find(|t| t.key.name == name)
            .unwrap_or_else(|| panic!("no task {name}"))
    }

    fn task_mut(&mut self, name: &str) -> &mut Task {
        self.tasks
            .iter_mut()
            .find(|t| t.key.name == name)
            .unwrap_or_else(|| panic!("no task {name}"))
    }

    fn status(&self, name: &str) -> &TaskStatus {
        &self.task(name).status
    }

    /// (namespace, name) of the task's current Job.
    fn job_key(&self, name: &str) -> (String, String) {
        let job = self.status(name).job_name.clone().expect("a Job name");
        (NS.to_owned(), job)
    }

    /// The runner pod of the task's current attempt runs on `node` since now.
    fn run_pod(&mut self, name: &str, node: &str) {
        let key = self.job_key(name);
        let mut pod = pending_pod(&key.1, &self.task(name).uid, Some(node));
        pod.phase = "Running".to_owned();
        pod.container.running = true;
        pod.started = Some(self.now());
        self.pods.insert(key, pod);
    }

    /// The runner pod of the task's current attempt is bound to `node` and waits (e.g. for
    /// its image).
    fn place_pod(&mut self, name: &str, node: &str, waiting: Option<&str>) {
        let key = self.job_key(name);
        let mut pod = pending_pod(&key.1, &self.task(name).uid, Some(node));
        pod.container.waiting_reason = waiting.map(str::to_owned);
        self.pods.insert(key, pod);
    }

    /// The task's current Job ends, and its pod with it.
    fn end(&mut self, name: &str, end: End) {
        let key = self.job_key(name);
        let uid = self.task(name).uid.clone();
        let job = self.jobs.get_mut(&key).expect("the attempt's Job exists");
        let (type_, why) = match end {
            End::Complete => ("Complete", None),
            End::Deadline => ("Failed", Some("DeadlineExceeded")),
            _ => ("Failed", Some("BackoffLimitExceeded")),
        };
        job.active = 0;
        if matches!(end, End::Complete) {
            job.succeeded = 1;
        } else {
            job.failed = 1;
        }
        job.conditions = vec![JobCondition {
            type_: type_.to_owned(),
            status: true,
            reason: why.map(str::to_owned),
            message: None,
        }];
        let pod = self
            .pods
            .entry(key.clone())
            .or_insert_with(|| pending_pod(&key.1, &uid, None));
        pod.container.running = false;
        pod.phase = if matches!(end, End::Complete) {
            "Succeeded"
        } else {
            "Failed"
        }
        .to_owned();
        let (code, terminated) = match end {
            End::Complete => (Some(0), "Completed"),
            End::Exit(code) => (Some(code), "Error"),
            End::Oom => (Some(137), "OOMKilled"),
            End::Evicted | End::SchedulerPreempted | End::Deadline => (Some(137), "Error"),
            End::NodeLost => (None, "Error"),
        };
        pod.container.exit_code = code;
        pod.container.terminated_reason = Some(terminated.to_owned());
        match end {
            End::Evicted => {
                pod.reason = Some("Evicted".to_owned());
                pod.message = Some("The node was low on resource: memory.".to_owned());
            }
            End::SchedulerPreempted => pod.disruption = Some("PreemptionByScheduler".to_owned()),
            End::NodeLost => pod.reason = Some("NodeLost".to_owned()),
            End::Deadline => pod.reason = Some("DeadlineExceeded".to_owned()),
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reading plans and statuses

fn change<'p>(plan: &'p Plan, name: &str) -> Option<&'p TaskChange> {
    plan.tasks.iter().find(|c| c.key.name == name)
}

fn changed<'p>(plan: &'p Plan, name: &str) -> &'p TaskChange {
    change(plan, name).unwrap_or_else(|| panic!("no change for {name}: {plan:#?}"))
}

/// (task, pool) of every `Launch`, in task order.
fn launched(plan: &Plan) -> Vec<(&str, &str)> {
    plan.tasks
        .iter()
        .filter_map(|c| match &c.action {
            Action::Launch { pool, .. } => Some((c.key.name.as_str(), pool.as_str())),
            _ => None,
        })
        .collect()
}

fn launched_names(plan: &Plan) -> Vec<&str> {
    launched(plan).into_iter().map(|(t, _)| t).collect()
}

fn stopped(plan: &Plan) -> Vec<&str> {
    plan.tasks
        .iter()
        .filter(|c| matches!(c.action, Action::Stop { .. }))
        .map(|c| c.key.name.as_str())
        .collect()
}

fn launch(pool: &str, launch: u32, avoid_nodes: &[&str]) -> Action {
    Action::Launch {
        pool: pool.to_owned(),
        launch,
        avoid_nodes: avoid_nodes.iter().map(|n| (*n).to_owned()).collect(),
    }
}

/// The condition that describes the task's phase.
fn phase_condition(status: &TaskStatus) -> &Condition {
    let type_ = match status.phase {
        TaskPhase::Pending | TaskPhase::Queued => cond::QUEUED,
        TaskPhase::Admitted => cond::ADMITTED,
        TaskPhase::Running => cond::RUNNING,
        TaskPhase::Succeeded => cond::SUCCEEDED,
        TaskPhase::Failed => cond::FAILED,
        TaskPhase::TimedOut => cond::TIMED_OUT,
    };
    let found = status.condition(type_);
    assert!(
        found.is_some_and(|c| c.status == "True"),
        "phase {:?} without its condition: {:#?}",
        status.phase,
        status.conditions
    );
    found.unwrap()
}

/// The reason of the phase's condition.
fn why(status: &TaskStatus) -> &str {
    &phase_condition(status).reason
}

fn message(status: &TaskStatus) -> &str {
    &phase_condition(status).message
}

fn last_attempt(status: &TaskStatus) -> &AttemptRecord {
    status.attempt_history.last().expect("an attempt record")
}

fn position(status: &TaskStatus) -> Option<(u32, &str)> {
    status
        .queue
        .as_ref()
        .map(|q| (q.position_in_pool, q.pool.as_str()))
}

fn report<'p>(plan: &'p Plan, pool: &str) -> &'p PoolReport {
    plan.pools
        .iter()
        .find(|p| p.name == pool)
        .unwrap_or_else(|| panic!("no report for pool {pool}"))
}

fn time(t: i64) -> Option<Time> {
    Some(Time(at(t)))
}

// ---------------------------------------------------------------------------------------------
// 1. Pool choice

const L4: &str = "{taskTypes: [Encoding, Studio, Transcription], priority: 10, maxConcurrency: 4, gpu: {products: [NVIDIA-L4], nvenc: true}}";
/// A GPU pool without NVENC (the API refuses Encoding on it; the scheduler must too).
const H100: &str = "{taskTypes: [Encoding, Transcription], priority: 10, maxConcurrency: 4, gpu: {products: [NVIDIA-H100]}}";
const CPU: &str = "{taskTypes: [Encoding, Studio, Transcription], priority: 50, maxConcurrency: 4}";
const X_ONLY: &str =
    "{taskTypes: [Encoding], priority: 5, maxConcurrency: 4, tenants: [{name: univ-x}]}";
const OFF: &str = "{taskTypes: [Encoding], priority: 5, maxConcurrency: 4, suspend: true}";
const ENCODING_ONLY: &str = "{taskTypes: [Encoding], maxConcurrency: 4}";
const SHARED_L4: &str = "{taskTypes: [Encoding, Studio, Transcription], priority: 20, maxConcurrency: 4, gpu: {products: [NVIDIA-L4], nvenc: true}}";

fn mixed_nodes() -> Vec<NodeInfo> {
    vec![
        cpu_node("cpu-1"),
        gpu_node("l4-1", "NVIDIA-L4", 2),
        gpu_node("h100-1", "NVIDIA-H100", 2),
    ]
}

/// (what, pools, task, its home pool, the pool that admits it, reason of its phase's condition)
type ChoiceCase = (
    &'static str,
    Vec<Pool>,
    Task,
    Option<&'static str>,
    Option<&'static str>,
    &'static str,
);

#[test]
fn pool_choice() {
    let table: Vec<ChoiceCase> = vec![
        (
            "encoding skips a GPU pool without NVENC",
            vec![pool("h100", H100), pool("cpu", CPU)],
            encoding("t", "univ-x", ""),
            Some("cpu"),
            Some("cpu"),
            reason::JOB_CREATED,
        ),
        (
            "transcription runs on a GPU pool without NVENC",
            vec![pool("h100", H100), pool("cpu", CPU)],
            transcription("t", "univ-x", ""),
            Some("h100"),
            Some("h100"),
            reason::JOB_CREATED,
        ),
        (
            "encoding takes an NVENC GPU pool of higher priority",
            vec![pool("l4", L4), pool("cpu", CPU)],
            encoding("t", "univ-x", ""),
            Some("l4"),
            Some("l4"),
            reason::JOB_CREATED,
        ),
        (
            "a tenant off the allow-list goes to the next pool",
            vec![pool("x-only", X_ONLY), pool("cpu", CPU)],
            encoding("t", "univ-y", ""),
            Some("cpu"),
            Some("cpu"),
            reason::JOB_CREATED,
        ),
        (
            "a tenant on the allow-list takes it",
            vec![pool("x-only", X_ONLY), pool("cpu", CPU)],
            encoding("t", "univ-x", ""),
            Some("x-only"),
            Some("x-only"),
            reason::JOB_CREATED,
        ),
        (
            "a suspended first choice stays home and admits nothing",
            vec![pool("off", OFF), pool("cpu", CPU)],
            encoding("t", "univ-x", ""),
            Some("off"),
            None,
            reason::POOL_SUSPENDED,
        ),
        (
            "the task's pools, in its order, beat pool priority",
            vec![pool("x-only", X_ONLY), pool("l4", L4), pool("cpu", CPU)],
            encoding("t", "univ-x", "pools: [cpu, l4]"),
            Some("cpu"),
            Some("cpu"),
            reason::JOB_CREATED,
        ),
        (
            "the task's pools name no eligible pool",
            vec![pool("cpu", CPU)],
            encoding("t", "univ-x", "pools: [elsewhere]"),
            None,
            None,
            reason::NO_ELIGIBLE_POOL,
        ),
        (
            "no pool runs the task type",
            vec![pool("enc", ENCODING_ONLY)],
            transcription("t", "univ-x", ""),
            None,
            None,
            reason::NO_ELIGIBLE_POOL,
        ),
        (
            "fixtures: a studio task on its first L4 pool",
            vec![fixture_pool(), pool("shared-l4", SHARED_L4)],
            fixture_encoding(),
            Some("local-l4"),
            Some("local-l4"),
            reason::JOB_CREATED,
        ),
        (
            "fixtures: the task's order of pools",
            vec![fixture_pool(), pool("shared-l4", SHARED_L4)],
            with_pools(fixture_encoding(), &["shared-l4", "local-l4"]),
            Some("shared-l4"),
            Some("shared-l4"),
            reason::JOB_CREATED,
        ),
        (
            "fixtures: a transcription restricted to the CPU pool",
            vec![fixture_pool(), pool("cpu", CPU)],
            fixture_transcription(),
            Some("cpu"),
            Some("cpu"),
            reason::JOB_CREATED,
        ),
    ];
    for (what, pools, task, home, admitted_by, expected_reason) in table {
        let name = task.key.name.clone();
        let mut sim = Sim::new(pools, mixed_nodes());
        sim.add(task);
        let plan = sim.pass();
        let c = changed(&plan, &name);
        assert_eq!(c.status.home_pool.as_deref(), home, "{what}: home pool");
        match admitted_by {
            Some(by) => {
                assert_eq!(c.action, launch(by, 1, &[]), "{what}");
                assert_eq!(c.status.phase, TaskPhase::Admitted, "{what}");
                assert_eq!(c.status.pool.as_deref(), Some(by), "{what}");
                assert_eq!(c.status.launches, 1, "{what}");
                let expected_job = sim.task(&name).identity().job_name(1);
                assert_eq!(c.status.job_name.as_deref(), Some(&*expected_job), "{what}");
                assert_eq!(last_attempt(&c.status).pool, by, "{what}");
            }
            None => {
                assert_eq!(c.action, Action::None, "{what}");
                assert_eq!(c.status.phase, TaskPhase::Queued, "{what}");
                assert_eq!(c.status.pool, None, "{what}");
            }
        }
        assert_eq!(why(&c.status), expected_reason, "{what}");
        if expected_reason == reason::NO_ELIGIBLE_POOL {
            assert_eq!(c.status.queue, None, "{what}");
            let kind = sim.task(&name).task_type().protocol_name();
            assert_eq!(
                message(&c.status),
                format!("no RunnerPool runs {kind} tasks for tenant univ-x"),
                "{what}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Capacity

#[test]
fn max_concurrency_holds_with_twenty_queued_tasks() {
    let mut sim = Sim::new(vec![encoding_pool("cpu", 4)], vec![cpu_node("n1")]);
    for i in 0..20 {
        sim.add(encoding(&format!("t{i:02}"), "univ-x", ""));
    }
    let plan = sim.pass();
    assert_eq!(
        launched(&plan),
        [
            ("t00", "cpu"),
            ("t01", "cpu"),
            ("t02", "cpu"),
            ("t03", "cpu")
        ]
    );
    for i in 4..20u32 {
        let name = format!("t{i:02}");
        let status = &changed(&plan, &name).status;
        assert_eq!(status.phase, TaskPhase::Queued, "{name}");
        assert_eq!(why(status), reason::WAITING_FOR_CAPACITY, "{name}");
        assert_eq!(message(status), "waiting for a free slot in cpu", "{name}");
        assert_eq!(position(status), Some((i - 3, "cpu")), "{name}");
        assert_eq!(
            status.queue.as_ref().unwrap().position_overall,
            i - 3,
            "{name}"
        );
        assert_eq!(status.home_pool.as_deref(), Some("cpu"));
    }
    let cpu = report(&plan, "cpu");
    assert_eq!(
        (cpu.status.slots, cpu.status.running, cpu.queued, cpu.free),
        (4, 4, 16, 0)
    );
    assert!(cpu.ready);
    assert_eq!(
        plan.pending,
        BTreeMap::from([(
            ("cpu".to_owned(), reason::WAITING_FOR_CAPACITY.to_owned()),
            16
        )])
    );

    // With the Jobs created, the next pass has nothing to write; the queue has aged.
    let again = sim.pass_at(5);
    assert_eq!(again.tasks, [], "no write storm");
    assert_eq!(report(&again, "cpu").status.running, 4);
    assert_eq!(report(&again, "cpu").oldest_queued_seconds, 5.0);

    // A task no pool takes waits outside every queue.
    sim.add(transcription("lost", "univ-x", ""));
    let plan = sim.pass_at(6);
    assert_eq!(
        plan.pending
            .get(&(String::new(), reason::NO_ELIGIBLE_POOL.to_owned())),
        Some(&1)
    );
    assert_eq!(
        plan.pending[&("cpu".to_owned(), reason::WAITING_FOR_CAPACITY.to_owned())],
        16
    );
}

#[test]
fn gpu_pools_are_bounded_by_allocatable_gpus() {
    let table = [
        // (GPUs of each node, GPUs per task, maxConcurrency, launches)
        (vec![1, 2], 1, 10, 3),
        (vec![4], 2, 10, 2),
        (vec![4, 4], 1, 3, 3),
        (vec![0], 1, 10, 0),
    ];
    for (gpus, per_task, max, expected) in table {
        let what = format!("{gpus:?} GPUs, {per_task} per task, maxConcurrency {max}");
        let yaml = format!(
            "{{taskTypes: [Transcription], maxConcurrency: {max}, gpu: {{countPerTask: {per_task}}}}}"
        );
        let nodes = gpus
            .iter()
            .enumerate()
            .map(|(i, n)| gpu_node(&format!("g{i}"), "NVIDIA-L4", *n))
            .collect();
        let mut sim = Sim::new(vec![pool("gpu", &yaml)], nodes);
        for i in 0..6 {
            sim.add(transcription(&format!("t{i}"), "univ-x", ""));
        }
        let plan = sim.pass();
        assert_eq!(launched(&plan).len(), expected, "{what}");
        let gpu = report(&plan, "gpu");
        assert_eq!(gpu.status.slots, expected as u32, "{what}");
        assert_eq!(
            gpu.status.gpus_allocatable,
            Some(gpus.iter().sum::<u64>() as u32),
            "{what}"
        );
        assert_eq!(gpu.queued, 6 - expected as u32, "{what}");
        // The next pass, with the Jobs created and their pods not yet bound, admits no more.
        let again = sim.pass_at(1);
        assert_eq!(launched(&again), [], "{what}");
    }
}

#[test]
fn pools_sharing_gpu_nodes_do_not_both_hand_out_the_same_gpus() {
    // Two pools select the same node of 2 GPUs: the institution's own, then a shared one.
    let local = pool(
        "local",
        "{taskTypes: [Transcription], priority: 10, maxConcurrency: 4, gpu: {}, tenants: [{name: univ-x}]}",
    );
    let shared = pool(
        "shared",
        "{taskTypes: [Transcription], priority: 20, maxConcurrency: 4, gpu: {}}",
    );
    let mut sim = Sim::new(vec![local, shared], vec![gpu_node("g1", "NVIDIA-L4", 2)]);
    for name in ["x0", "x1"] {
        sim.add(transcription(name, "univ-x", ""));
    }
    for name in ["y0", "y1"] {
        sim.add(transcription(name, "univ-y", ""));
    }
    let plan = sim.pass();
    assert_eq!(launched(&plan), [("x0", "local"), ("x1", "local")]);
    for name in ["y0", "y1"] {
        let status = &changed(&plan, name).status;
        assert_eq!(status.phase, TaskPhase::Queued, "{name}");
        assert_eq!(status.home_pool.as_deref(), Some("shared"), "{name}");
    }
    assert_eq!(report(&plan, "shared").free, 0);
    assert_eq!(report(&plan, "local").free, 0);
    // And still none on the next pass.
    assert_eq!(launched(&sim.pass_at(1)), []);
}

#[test]
fn tenant_max_concurrency() {
    let yaml = "{taskTypes: [Encoding], maxConcurrency: 5, tenants: [{name: univ-x, maxConcurrency: 2}, {name: univ-y}]}";
    let mut sim = Sim::new(vec![pool("p", yaml)], vec![cpu_node("n1")]);
    for name in ["x0", "x1", "x2", "x3"] {
        sim.add(encoding(name, "univ-x", ""));
    }
    for name in ["y0", "y1"] {
        sim.add(encoding(name, "univ-y", ""));
    }
    let plan = sim.pass();
    let mut admitted = launched_names(&plan);
    admitted.sort_unstable();
    assert_eq!(admitted, ["x0", "x1", "y0", "y1"]);
    for name in ["x2", "x3"] {
        let status = &changed(&plan, name).status;
        assert_eq!(status.phase, TaskPhase::Queued, "{name}");
        assert_eq!(why(status), reason::TENANT_CAP_REACHED, "{name}");
        assert_eq!(
            message(status),
            "tenant univ-x runs as many tasks as its cap allows"
        );
    }
    assert_eq!(report(&plan, "p").free, 1, "the pool keeps a slot free");
    assert_eq!(sim.pass_at(1).tasks, [], "stable while nothing changes");

    // One of univ-x's tasks ends: the next takes its place.
    sim.run_pod("x0", "n1");
    sim.end("x0", End::Complete);
    let plan = sim.pass_at(2);
    assert_eq!(changed(&plan, "x0").status.phase, TaskPhase::Succeeded);
    assert_eq!(launched_names(&plan), ["x2"]);
    assert_eq!(
        why(&changed(&plan, "x3").status),
        reason::TENANT_CAP_REACHED
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Queue order

#[test]
fn priority_high_then_normal_then_low() {
    let mut sim = Sim::new(vec![encoding_pool("p", 1)], vec![cpu_node("n1")]);
    // Names sort against the priorities, so the order cannot come from them.
    sim.add(encoding("a-low", "univ-x", "priority: Low"));
    sim.add(encoding("b-normal", "univ-x", ""));
    sim.add(encoding("c-high", "univ-x", "priority: High"));
    let plan = sim.pass();
    assert_eq!(launched_names(&plan), ["c-high"]);
    assert_eq!(position(sim.status("b-normal")), Some((1, "p")));
    assert_eq!(position(sim.status("a-low")), Some((2, "p")));

    let mut order = vec!["c-high".to_owned()];
    for t in [10, 20] {
        let running = order.last().unwrap().clone();
        sim.end(&running, End::Complete);
        let plan = sim.pass_at(t);
        order.extend(launched_names(&plan).into_iter().map(str::to_owned));
    }
    assert_eq!(order, ["c-high", "b-normal", "a-low"]);
}

#[test]
fn fair_share_lets_a_second_tenant_through_a_burst() {
    let mut sim = Sim::new(vec![encoding_pool("p", 2)], vec![cpu_node("n1")]);
    for i in 0..10 {
        sim.add(encoding(&format!("a{i:02}"), "univ-a", ""));
    }
    assert_eq!(launched_names(&sim.pass()), ["a00", "a01"]);

    // A minute later, univ-b submits two tasks: they go ahead of univ-a's eight older ones.
    sim.t = 60;
    sim.add(encoding("b0", "univ-b", ""));
    sim.add(encoding("b1", "univ-b", ""));
    let plan = sim.pass();
    assert_eq!(launched(&plan), []);
    assert_eq!(position(sim.status("b0")), Some((1, "p")));
    assert_eq!(position(sim.status("b1")), Some((2, "p")));
    for i in 2..10u32 {
        let name = format!("a{i:02}");
        assert_eq!(position(sim.status(&name)), Some((i + 1, "p")), "{name}");
    }

    // The first slot to free goes to univ-b; from then on the two tenants share the two
    // slots one each, whatever univ-a's backlog.
    let mut admitted = Vec::new();
    for (t, ending) in [(100, "a00"), (110, "a01"), (120, "b0"), (130, "a02")] {
        sim.end(ending, End::Complete);
        let plan = sim.pass_at(t);
        admitted.extend(launched_names(&plan).into_iter().map(str::to_owned));
    }
    assert_eq!(admitted, ["b0", "a02", "b1", "a03"]);
}

#[test]
fn fair_share_weights() {
    let yaml = "{taskTypes: [Encoding], maxConcurrency: 6, tenants: [{name: univ-a, weight: 2}, {name: univ-b}]}";
    let mut sim = Sim::new(vec![pool("p", yaml)], vec![cpu_node("n1")]);
    for i in 0..6 {
        sim.add(encoding(&format!("a{i}"), "univ-a", ""));
        sim.add(encoding(&format!("b{i}"), "univ-b", ""));
    }
    let plan = sim.pass();
    let admitted = launched_names(&plan);
    let of = |tenant: char| admitted.iter().filter(|n| n.starts_with(tenant)).count();
    assert_eq!(
        (of('a'), of('b')),
        (4, 2),
        "weight 2 gets two slots for one"
    );
}

#[test]
fn older_tasks_first() {
    let mut sim = Sim::new(vec![encoding_pool("p", 1)], vec![cpu_node("n1")]);
    sim.add(encoding("busy", "univ-x", ""));
    sim.pass();
    sim.t = 10;
    sim.add(encoding("zeta", "univ-x", ""));
    sim.pass();
    sim.t = 20;
    sim.add(encoding("alpha", "univ-x", ""));
    sim.pass();
    assert_eq!(position(sim.status("zeta")), Some((1, "p")));
    assert_eq!(position(sim.status("alpha")), Some((2, "p")));
    sim.end("busy", End::Complete);
    assert_eq!(launched_names(&sim.pass_at(30)), ["zeta"]);
}

#[test]
fn tasks_first_seen_together_go_in_submission_order() {
    // Submitted while the operator was away: one pass sees them all at once.
    let mut sim = Sim::new(vec![encoding_pool("p", 1)], nodes(1));
    for (t, name) in [(0, "c"), (5, "a"), (9, "b")] {
        sim.t = t;
        sim.add(encoding(name, "univ-x", ""));
    }
    let plan = sim.pass_at(600);
    assert_eq!(launched_names(&plan), ["c"]);
    assert_eq!(position(sim.status("a")), Some((1, "p")));
    assert_eq!(position(sim.status("b")), Some((2, "p")));
    assert_eq!(sim.status("b").queue.as_ref().unwrap().position_overall, 2);
}

// ---------------------------------------------------------------------------------------------
// 4. Overflow

#[test]
fn overflow_to_the_next_pool() {
    let table = [
        // (what, extra fields of pool a, waited, admitted by)
        ("before overflowAfter", "overflowAfter: 10m", 599, None),
        ("at overflowAfter", "overflowAfter: 10m", 600, Some("b")),
        ("home pool without overflowAfter", "", 23 * 3600, None),
        (
            "suspended home, before overflowAfter",
            "suspend: true, overflowAfter: 5m",
            299,
            None,
        ),
        (
            "suspended home, at overflowAfter",
            "suspend: true, overflowAfter: 5m",
            300,
            Some("b"),
        ),
    ];
    for (what, extra, waited, admitted_by) in table {
        let extra = if extra.is_empty() {
            String::new()
        } else {
            format!(", {extra}")
        };
        let a = pool(
            "a",
            &format!("{{taskTypes: [Encoding], priority: 10, maxConcurrency: 1{extra}}}"),
        );
        let b = pool(
            "b",
            "{taskTypes: [Encoding], priority: 20, maxConcurrency: 2}",
        );
        let suspended = a.spec.suspend;
        let mut sim = Sim::new(vec![a, b], vec![cpu_node("n1")]);
        sim.add(encoding("busy", "univ-x", ""));
        sim.pass();
        sim.t = 1;
        sim.add(encoding("t", "univ-x", ""));
        let plan = sim.pass();
        let status = &changed(&plan, "t").status;
        assert_eq!(status.phase, TaskPhase::Queued, "{what}");
        assert_eq!(status.home_pool.as_deref(), Some("a"), "{what}");

        let plan = sim.pass_at(1 + waited);
        let status = sim.status("t");
        assert_eq!(status.home_pool.as_deref(), Some("a"), "{what}: home kept");
        match admitted_by {
            Some(by) => {
                assert_eq!(changed(&plan, "t").action, launch(by, 1, &[]), "{what}");
                assert_eq!(status.phase, TaskPhase::Admitted, "{what}");
                assert_eq!(status.pool.as_deref(), Some(by), "{what}");
                assert_eq!(why(status), reason::OVERFLOWED, "{what}");
                assert!(
                    message(status).contains("after waiting for a"),
                    "{what}: {}",
                    message(status)
                );
            }
            None => {
                assert!(!launched_names(&plan).contains(&"t"), "{what}");
                assert_eq!(status.phase, TaskPhase::Queued, "{what}");
                let expected = if suspended {
                    reason::POOL_SUSPENDED
                } else {
                    reason::WAITING_FOR_CAPACITY
                };
                assert_eq!(why(status), expected, "{what}");
                assert_eq!(status.queue.as_ref().unwrap().pool, "a", "{what}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Preemption

const HOME_A: &str = "{taskTypes: [Encoding], priority: 10, maxConcurrency: 1, overflowAfter: 1m}";

/// Pool a (one slot, overflowAfter 1m) is held by "a-busy"; the `overflowed` tasks (name,
/// extra spec fields, start time) wait for a from t=1, overflow to pool b at t=61, and their
/// runners start at their start times.
fn overflowed_onto(b: Pool, overflowed: &[(&str, &str, i64)]) -> Sim {
    let mut sim = Sim::new(vec![pool("a", HOME_A), b], vec![cpu_node("n1")]);
    sim.add(encoding("a-busy", "univ-y", ""));
    sim.pass();
    sim.run_pod("a-busy", "n1");
    sim.t = 1;
    for (name, extra, _) in overflowed {
        sim.add(encoding(name, "univ-y", extra));
    }
    sim.pass();
    let plan = sim.pass_at(61);
    for (name, _, _) in overflowed {
        let status = &changed(&plan, name).status;
        assert_eq!(status.pool.as_deref(), Some("b"), "{name} overflowed");
        assert_eq!(why(status), reason::OVERFLOWED, "{name}");
    }
    let mut starts: Vec<_> = overflowed.iter().map(|(n, _, s)| (*s, *n)).collect();
    starts.sort_unstable();
    for (start, name) in starts {
        sim.t = start;
        sim.run_pod(name, "n1");
        sim.pass();
        assert_eq!(sim.status(name).phase, TaskPhase::Running, "{name}");
    }
    sim
}

#[test]
fn preemption_gives_the_slot_back_to_home_tasks() {
    let table = [
        // (what, preemption policy of b, pass at, preempted)
        (
            "before minRuntime",
            "{reclaim: true, minRuntime: 5m}",
            61 + 299,
            false,
        ),
        (
            "at minRuntime",
            "{reclaim: true, minRuntime: 5m}",
            61 + 300,
            true,
        ),
        (
            "reclaim off",
            "{reclaim: false, minRuntime: 5m}",
            61 + 800,
            false,
        ),
    ];
    for (what, policy, check, preempted) in table {
        let b = pool(
            "b",
            &format!(
                "{{taskTypes: [Encoding], priority: 20, maxConcurrency: 1, preemption: {policy}}}"
            ),
        );
        let mut sim = overflowed_onto(b, &[("over", "", 61)]);
        sim.t = 130;
        sim.add(encoding("b-own", "univ-x", "pools: [b]"));
        let plan = sim.pass();
        assert_eq!(stopped(&plan), Vec::<&str>::new(), "{what}");
        assert_eq!(
            message(sim.status("b-own")),
            "waiting for a free slot in b",
            "{what}"
        );

        let plan = sim.pass_at(check);
        if !preempted {
            assert_eq!(stopped(&plan), Vec::<&str>::new(), "{what}");
            assert_eq!(sim.status("over").phase, TaskPhase::Running, "{what}");
            continue;
        }
        let c = changed(&plan, "over");
        assert_eq!(
            c.action,
            Action::Stop {
                job: "enc-over-1".to_owned()
            },
            "{what}"
        );
        assert_eq!(c.status.phase, TaskPhase::Queued, "{what}");
        assert_eq!(why(&c.status), reason::PREEMPTED, "{what}");
        assert_eq!(c.status.attempts, 0, "{what}: not charged");
        assert_eq!(c.status.next_retry_time, None, "{what}: requeued at once");
        assert_eq!(c.status.home_pool.as_deref(), Some("a"), "{what}");
        let record = last_attempt(&c.status);
        assert_eq!(
            (
                record.pool.as_str(),
                record.reason.as_deref(),
                record.charged
            ),
            ("b", Some(reason::PREEMPTED), false),
            "{what}"
        );
        assert_eq!(record.finish_time, time(check), "{what}");
        assert_eq!(
            c.observations,
            [Observation::AttemptFailed {
                pool: "b".to_owned(),
                reason: reason::PREEMPTED.to_owned()
            }],
            "{what}"
        );

        // The next pass gives b's slot to its own task; the preempted one waits for a.
        let plan = sim.pass_at(check + 1);
        assert_eq!(launched(&plan), [("b-own", "b")], "{what}");
        assert_eq!(why(sim.status("b-own")), reason::JOB_CREATED, "{what}");
        let over = sim.status("over");
        assert_eq!(over.phase, TaskPhase::Queued, "{what}");
        assert_eq!(why(over), reason::WAITING_FOR_CAPACITY, "{what}");
        assert_eq!(position(over), Some((1, "a")), "{what}");
        assert_eq!(over.launches, 1, "{what}");
    }
}

#[test]
fn preemption_victim_choice() {
    let table = [
        // (what, overflowed tasks (name, extra, start), victim)
        (
            "lowest priority first",
            [("low", "priority: Low", 61), ("recent", "", 121)],
            "low",
        ),
        (
            "then the most recently started",
            [("early", "", 61), ("late", "", 121)],
            "late",
        ),
        (
            "a high priority task is spared",
            [("high", "priority: High", 121), ("normal", "", 61)],
            "normal",
        ),
    ];
    for (what, overflowed, victim) in table {
        let b = pool(
            "b",
            "{taskTypes: [Encoding], priority: 20, maxConcurrency: 2}",
        );
        let mut sim = overflowed_onto(b, &overflowed);
        sim.t = 130;
        sim.add(encoding("b-own", "univ-x", "pools: [b]"));
        sim.pass();
        let plan = sim.pass_at(121 + 300);
        assert_eq!(stopped(&plan), [victim], "{what}: one victim for one task");
    }
}

#[test]
fn no_preemption_for_a_home_task_held_back_by_its_tenant_cap() {
    let b = pool(
        "b",
        "{taskTypes: [Encoding], priority: 20, maxConcurrency: 2, tenants: [{name: univ-x, maxConcurrency: 1}, {name: univ-y}]}",
    );
    let mut sim = Sim::new(vec![pool("a", HOME_A), b], vec![cpu_node("n1")]);
    sim.add(encoding("a-busy", "univ-y", ""));
    sim.add(encoding("b-own1", "univ-x", "pools: [b]"));
    let plan = sim.pass();
    assert_eq!(launched(&plan), [("a-busy", "a"), ("b-own1", "b")]);
    sim.t = 1;
    sim.add(encoding("over", "univ-y", ""));
    sim.pass();
    assert_eq!(launched(&sim.pass_at(61)), [("over", "b")]);
    sim.run_pod("over", "n1");
    sim.t = 62;
    sim.add(encoding("b-own2", "univ-x", "pools: [b]"));
    sim.pass();
    let own2 = sim.status("b-own2");
    assert_eq!(own2.phase, TaskPhase::Queued);
    assert_eq!(
        why(own2),
        reason::TENANT_CAP_REACHED,
        "held back by its cap"
    );

    // b-own2 could not run on the freed slot (univ-x is at its cap on b): "over" keeps it.
    let plan = sim.pass_at(61 + 400);
    assert_eq!(stopped(&plan), Vec::<&str>::new());
    assert_eq!(sim.status("over").phase, TaskPhase::Running);
}

// ---------------------------------------------------------------------------------------------
// 6. Attempts

fn nodes(n: usize) -> Vec<NodeInfo> {
    (1..=n).map(|i| cpu_node(&format!("n{i}"))).collect()
}

/// Pool "p" (one slot, nodes n1..n4); task "t" admitted at t=0, its runner running on n1
/// since t=10 (seen by the pass at t=10).
fn running_task(extra: &str) -> Sim {
    let mut sim = Sim::new(vec![encoding_pool("p", 1)], nodes(4));
    sim.add(encoding("t", "univ-x", extra));
    assert_eq!(launched(&sim.pass()), [("t", "p")]);
    sim.t = 10;
    sim.run_pod("t", "n1");
    sim.pass();
    assert_eq!(sim.status("t").phase, TaskPhase::Running);
    sim
}

/// A short task can start and end between two passes: its start is still counted, for the
/// schedule-to-start latency and its execution time.
#[test]
fn an_attempt_that_ends_unseen_still_reports_its_start() {
    let mut sim = Sim::new(vec![encoding_pool("p", 1)], nodes(1));
    sim.add(encoding("t", "univ-x", ""));
    sim.pass();
    sim.t = 20;
    sim.run_pod("t", "n1");
    sim.t = 30;
    sim.end("t", End::Complete);
    let plan = sim.pass_at(40);
    let c = changed(&plan, "t");
    assert_eq!(c.status.phase, TaskPhase::Succeeded);
    assert_eq!(c.status.start_time, time(20));
    assert!(
        c.observations.contains(&Observation::Started {
            pool: "p".to_owned(),
            task_type: "encoding".to_owned(),
            waited: 20.0
        }),
        "{:?}",
        c.observations
    );
    assert!(
        c.observations
            .iter()
            .any(|o| matches!(o, Observation::Finished(f)
            if f.execution_seconds == Some(20.0))),
        "{:?}",
        c.observations
    );
}

#[test]
fn a_runner_that_starts_makes_the_task_running() {
    let mut sim = Sim::new(vec![encoding_pool("p", 1)], nodes(1));
    sim.add(encoding("t", "univ-x", ""));
    sim.pass();
    sim.t = 30;
    sim.run_pod("t", "n1");
    let plan = sim.pass_at(40);
    let c = changed(&plan, "t");
    assert_eq!(c.status.phase, TaskPhase::Running);
    assert_eq!(why(&c.status), reason::POD_RUNNING);
    assert_eq!(c.status.start_time, time(30), "when the runner started");
    assert_eq!(c.status.node_name.as_deref(), Some("n1"));
    assert_eq!(last_attempt(&c.status).node_name.as_deref(), Some("n1"));
    assert_eq!(
        c.observations,
        [Observation::Started {
            pool: "p".to_owned(),
            task_type: "encoding".to_owned(),
            waited: 30.0
        }]
    );
    assert_eq!(c.action, Action::None);
    assert_eq!(sim.pass_at(41).tasks, [], "reported once");
}

#[test]
fn how_an_attempt_ends() {
    use TaskPhase::*;
    let table = [
        // (end, phase, reason, attempts, retry after (s), attempt record's reason, charged)
        (
            End::Complete,
            Succeeded,
            reason::COMPLETED,
            0,
            None,
            None,
            false,
        ),
        (
            End::Exit(65),
            Failed,
            reason::INVALID_INPUT,
            1,
            None,
            Some(reason::INVALID_INPUT),
            true,
        ),
        (
            End::Exit(64),
            Failed,
            reason::INVALID_INPUT,
            1,
            None,
            Some(reason::INVALID_INPUT),
            true,
        ),
        (
            End::Exit(1),
            Queued,
            reason::BACKING_OFF,
            1,
            Some(30),
            Some("RunnerFailed"),
            true,
        ),
        (
            End::Exit(75),
            Queued,
            reason::BACKING_OFF,
            1,
            Some(30),
            Some("RunnerFailed"),
            true,
        ),
        (
            End::Oom,
            Queued,
            reason::BACKING_OFF,
            1,
            Some(30),
            Some(reason::OOM_KILLED),
            true,
        ),
        (
            End::Evicted,
            Queued,
            reason::EVICTED,
            0,
            None,
            Some(reason::EVICTED),
            false,
        ),
        (
            End::SchedulerPreempted,
            Queued,
            reason::PREEMPTED,
            0,
            None,
            Some(reason::PREEMPTED),
            false,
        ),
        (
            End::NodeLost,
            Queued,
            reason::NODE_LOST,
            0,
            None,
            Some(reason::NODE_LOST),
            false,
        ),
        (
            End::Deadline,
            TimedOut,
            reason::EXECUTION_DEADLINE_EXCEEDED,
            1,
            None,
            Some(reason::EXECUTION_DEADLINE_EXCEEDED),
            true,
        ),
    ];
    for (end, phase, expected_reason, attempts, retry_after, record_reason, charged) in table {
        let what = format!("{end:?}");
        let mut sim = running_task("");
        sim.end("t", end);
        let plan = sim.pass_at(100);
        let c = changed(&plan, "t");
        let status = &c.status;
        assert_eq!(status.phase, phase, "{what}");
        assert_eq!(why(status), expected_reason, "{what}");
        assert_eq!(status.attempts, attempts, "{what}");
        assert_eq!(c.action, Action::None, "{what}: the Job is done already");
        let record = last_attempt(status);
        assert_eq!(record.finish_time, time(100), "{what}");
        assert_eq!(record.reason.as_deref(), record_reason, "{what}");
        assert_eq!(record.charged, charged, "{what}");
        assert_eq!(record.node_name.as_deref(), Some("n1"), "{what}");
        assert_eq!(
            status.next_retry_time,
            retry_after.and_then(|s| time(100 + s)),
            "{what}"
        );
        assert!(c.note.is_some(), "{what}: an Event");

        if phase.is_terminal() {
            assert_eq!(status.completion_time, time(100), "{what}");
            let outcome = match phase {
                Succeeded => TaskOutcome::Completed,
                TimedOut => TaskOutcome::Timeout,
                _ => TaskOutcome::Failed,
            };
            assert!(
                c.observations
                    .iter()
                    .any(|o| matches!(o, Observation::Finished(f)
                    if f.pool == "p"
                        && f.task_type == "encoding"
                        && f.phase == phase
                        && f.outcome == outcome
                        && f.execution_seconds == Some(90.0))),
                "{what}: {:?}",
                c.observations
            );
            // Never retried.
            assert_eq!(sim.pass_at(10_000).tasks, [], "{what}");
            continue;
        }

        assert_eq!(status.completion_time, None, "{what}");
        assert_eq!(status.node_name, None, "{what}");
        assert_eq!(
            c.observations,
            [Observation::AttemptFailed {
                pool: "p".to_owned(),
                reason: record_reason.unwrap().to_owned()
            }],
            "{what}"
        );
        // Retried after the backoff (charged) or at the next pass (not charged), avoiding the
        // node of a charged failure only.
        let retry_at = 100 + retry_after.unwrap_or(1);
        if retry_at > 101 {
            let plan = sim.pass_at(retry_at - 1);
            assert_eq!(plan.tasks, [], "{what}: backing off, nothing to write");
            assert_eq!(why(sim.status("t")), reason::BACKING_OFF, "{what}");
        }
        let plan = sim.pass_at(retry_at);
        let avoid: &[&str] = if charged { &["n1"] } else { &[] };
        assert_eq!(changed(&plan, "t").action, launch("p", 2, avoid), "{what}");
        let status = sim.status("t");
        assert_eq!(status.launches, 2, "{what}");
        assert_eq!(status.attempts, attempts, "{what}");
        assert_eq!(status.job_name.as_deref(), Some("enc-t-2"), "{what}");
        assert_eq!(status.next_retry_time, None, "{what}");
    }
}

#[test]
fn backoff_doubles_up_to_its_cap_then_retries_run_out() {
    let retry = "retry: {maxAttempts: 4, initialBackoff: 10s, maxBackoff: 25s}";
    let mut sim = Sim::new(vec![encoding_pool("p", 1)], nodes(4));
    sim.add(encoding("t", "univ-x", retry));
    let mut plan = sim.pass();
    let mut failed_on: Vec<String> = Vec::new();
    for (attempt, backoff) in [(1u32, Some(10)), (2, Some(20)), (3, Some(25)), (4, None)] {
        let avoid: Vec<&str> = failed_on.iter().map(String::as_str).collect();
        assert_eq!(
            changed(&plan, "t").action,
            launch("p", attempt, &avoid),
            "attempt {attempt}"
        );
        let node = format!("n{attempt}");
        sim.t += 5;
        sim.run_pod("t", &node);
        sim.pass();
        sim.t += 5;
        sim.end("t", End::Exit(1));
        let failed_at = sim.t;
        sim.pass();
        failed_on.push(node);
        let status = sim.status("t");
        assert_eq!(status.attempts, attempt);
        let Some(backoff) = backoff else {
            assert_eq!(status.phase, TaskPhase::Failed);
            assert_eq!(why(status), reason::RETRIES_EXHAUSTED);
            assert!(
                message(status)
                    .starts_with("4 of 4 attempts failed; last: runner exited with code 1"),
                "{}",
                message(status)
            );
            assert_eq!(status.completion_time, time(failed_at));
            break;
        };
        assert_eq!(why(status), reason::BACKING_OFF, "attempt {attempt}");
        assert_eq!(
            status.next_retry_time,
            time(failed_at + backoff),
            "attempt {attempt}"
        );
        plan = sim.pass_at(failed_at + backoff - 1);
        assert_eq!(plan.tasks, [], "attempt {attempt}: still backing off");
        plan = sim.pass_at(failed_at + backoff);
    }
    assert_eq!(sim.status("t").launches, 4);
    assert_eq!(sim.pass_at(10_000).tasks, []);
}

#[test]
fn evictions_are_free_only_up_to_an_allowance_so_a_task_cannot_loop_for_ever() {
    // A media file that makes every node it lands on run out of memory: the kubelet evicts
    // the runner each time. Without a bound this requeues for ever at no charge.
    let retry = "retry: {maxAttempts: 2, initialBackoff: 10s, maxBackoff: 10s}";
    let mut sim = Sim::new(vec![encoding_pool("p", 1)], nodes(4));
    sim.add(encoding("t", "univ-x", retry));
    sim.pass();
    let mut evictions = 0;
    while sim.status("t").phase != TaskPhase::Failed {
        assert!(evictions < 20, "still retrying after {evictions} evictions");
        sim.t += 5;
        sim.run_pod("t", "n1");
        sim.pass();
        sim.t += 5;
        sim.end("t", End::Evicted);
        sim.pass();
        evictions += 1;
        let status = sim.status("t");
        let record = last_attempt(status);
        assert_eq!(record.reason.as_deref(), Some(reason::EVICTED));
        let free = evictions <= FREE_DISRUPTIONS;
        assert_eq!(record.charged, !free, "eviction {evictions}");
        assert_eq!(
            status.free_disruptions,
            evictions.min(FREE_DISRUPTIONS),
            "eviction {evictions}"
        );
        sim.t += 10; // past any backoff
        sim.pass();
    }
    let status = sim.status("t");
    assert_eq!(
        evictions,
        FREE_DISRUPTIONS + 2,
        "two free, then two charged attempts"
    );
    assert_eq!(status.attempts, 2);
    assert_eq!(why(status), reason::RETRIES_EXHAUSTED);
    assert!(message(status).contains("charged"), "{}", message(status));
}

#[test]
fn a_namespace_without_a_runner_network_policy_gets_no_runner_when_one_is_required() {
    let mut sim = Sim::new(vec![encoding_pool("p", 2)], nodes(1));
    sim.settings.require_runner_network_policy = true;
    sim.add(encoding("t", "univ-x", ""));
    let plan = sim.pass();
    assert_eq!(launched(&plan), [], "no runner with open egress");
    let status = sim.status("t");
    assert_eq!(status.phase, TaskPhase::Queued);
    assert_eq!(why(status), reason::NO_RUNNER_NETWORK_POLICY);
    assert!(message(status).contains(NS), "{}", message(status));
    // The chart's policy appears in the namespace: the task is launched.
    sim.policed.push(NS.to_owned());
    assert_eq!(launched(&sim.pass_at(1)), [("t", "p")]);
    // Not required (no NetworkPolicy controller in the cluster): launched as before.
    let mut open = Sim::new(vec![encoding_pool("p", 2)], nodes(1));
    open.add(encoding("t", "univ-x", ""));
    assert_eq!(launched(&open.pass()), [("t", "p")]);
}

#[test]
fn preemptions_stay_free() {
    let mut sim = running_task("retry: {maxAttempts: 1, initialBackoff: 10s, maxBackoff: 10s}");
    for _ in 0..(FREE_DISRUPTIONS + 3) {
        sim.end("t", End::SchedulerPreempted);
        sim.pass();
        assert_eq!(sim.status("t").phase, TaskPhase::Queued);
        sim.pass();
        sim.t += 5;
        sim.run_pod("t", "n1");
        sim.pass();
    }
    assert_eq!(sim.status("t").attempts, 0);
    assert_eq!(sim.status("t").free_disruptions, 0);
}

#[test]
fn a_runner_that_fails_before_it_is_seen_running_still_marks_its_node() {
    let mut sim = Sim::new(vec![encoding_pool("p", 1)], nodes(2));
    sim.add(encoding("t", "univ-x", ""));
    sim.pass();
    // The pod ran and failed on n2 between two passes: never seen running.
    sim.t = 5;
    sim.place_pod("t", "n2", None);
    sim.end("t", End::Exit(1));
    let plan = sim.pass();
    let status = &changed(&plan, "t").status;
    assert_eq!(why(status), reason::BACKING_OFF);
    assert_eq!(last_attempt(status).node_name.as_deref(), Some("n2"));
    let plan = sim.pass_at(5 + 30);
    assert_eq!(changed(&plan, "t").action, launch("p", 2, &["n2"]));
}

#[test]
fn an_image_that_cannot_be_pulled_ends_the_attempt_after_the_grace() {
    let mut sim = Sim::new(vec![encoding_pool("p", 1)], nodes(1));
    sim.add(encoding("t", "univ-x", ""));
    sim.pass();
    sim.t = 5;
    sim.place_pod("t", "n1", Some("ImagePullBackOff"));
    let plan = sim.pass_at(119);
    assert_eq!(stopped(&plan), Vec::<&str>::new());
    assert_eq!(sim.status("t").phase, TaskPhase::Admitted);

    let plan = sim.pass_at(120);
    let c = changed(&plan, "t");
    assert_eq!(
        c.action,
        Action::Stop {
            job: "enc-t-1".to_owned()
        }
    );
    assert_eq!(c.status.phase, TaskPhase::Queued);
    assert_eq!(why(&c.status), reason::BACKING_OFF);
    assert_eq!(c.status.attempts, 1);
    let record = last_attempt(&c.status);
    assert_eq!(record.reason.as_deref(), Some(reason::IMAGE_PULL_FAILED));
    assert!(record.charged);
    assert_eq!(record.node_name.as_deref(), Some("n1"));
}

#[test]
fn a_silent_runner_is_stopped_after_the_progress_timeout() {
    let table = [
        // (what, last progress report, pass at, stopped); timeouts.progress is 15m.
        ("silent since its start", None, 10 + 900, false),
        (
            "silent since its start, past the timeout",
            None,
            10 + 901,
            true,
        ),
        ("reported at t=200", Some(200), 200 + 900, false),
        (
            "reported at t=200, past the timeout",
            Some(200),
            200 + 901,
            true,
        ),
    ];
    for (what, reported, check, expect_stop) in table {
        let mut sim = running_task("");
        if let Some(r) = reported {
            sim.task_mut("t").status.progress = Some(Progress {
                stage: "encode".to_owned(),
                percent: Some(10.0),
                media_duration_seconds: None,
                update_time: Time(at(r)),
            });
        }
        let plan = sim.pass_at(check);
        if !expect_stop {
            assert_eq!(plan.tasks, [], "{what}");
            continue;
        }
        let c = changed(&plan, "t");
        assert_eq!(
            c.action,
            Action::Stop {
                job: "enc-t-1".to_owned()
            },
            "{what}"
        );
        assert_eq!(why(&c.status), reason::BACKING_OFF, "{what}");
        assert_eq!(c.status.attempts, 1, "{what}");
        let record = last_attempt(&c.status);
        assert_eq!(
            record.reason.as_deref(),
            Some(reason::NO_PROGRESS),
            "{what}"
        );
        assert!(record.charged, "{what}");
    }
}

// ---------------------------------------------------------------------------------------------
// 7. Timeouts

#[test]
fn queue_wait_exceeded() {
    let timeouts = "timeouts: {queueWait: 1h, execution: 5h, progress: 15m}";
    for (waited, timed_out) in [(3599, false), (3600, true)] {
        let mut sim = Sim::new(vec![encoding_pool("p", 1)], nodes(1));
        sim.add(encoding("busy", "univ-x", ""));
        sim.pass();
        sim.t = 1;
        sim.add(encoding("t", "univ-x", timeouts));
        sim.pass();
        let plan = sim.pass_at(1 + waited);
        let status = sim.status("t");
        if !timed_out {
            assert_eq!(status.phase, TaskPhase::Queued, "waited {waited}");
            assert_eq!(change(&plan, "t"), None, "waited {waited}");
            continue;
        }
        let c = changed(&plan, "t");
        assert_eq!(status.phase, TaskPhase::TimedOut);
        assert_eq!(why(status), reason::QUEUE_WAIT_EXCEEDED);
        assert_eq!(status.completion_time, time(1 + waited));
        assert_eq!(status.queue, None);
        let [Observation::Finished(finished)] = c.observations.as_slice() else {
            panic!("one Finished observation: {:?}", c.observations);
        };
        assert_eq!(
            (
                finished.pool.as_str(),
                finished.task_type.as_str(),
                finished.outcome
            ),
            ("", "encoding", TaskOutcome::Timeout)
        );
        assert_eq!(finished.reason, reason::QUEUE_WAIT_EXCEEDED);
        assert_eq!(finished.execution_seconds, None, "it never started");
        assert!(finished.end_to_end_seconds >= 3600.0, "{finished:?}");
        assert!(c.note.as_ref().is_some_and(|n| n.warning));
    }
}

// ---------------------------------------------------------------------------------------------
// 8. Restart safety

#[test]
fn an_admitted_task_whose_job_is_missing_gets_the_same_job_again() {
    let mut sim = Sim::new(vec![encoding_pool("p", 1)], nodes(1));
    sim.create_jobs = false;
    sim.add(encoding("t", "univ-x", ""));
    let first = sim.pass();
    assert_eq!(changed(&first, "t").action, launch("p", 1, &[]));
    let admitted = sim.status("t").clone();

    // Within the grace, the Job may just not be seen yet.
    assert_eq!(sim.pass_at(9).tasks, []);
    let plan = sim.pass_at(10);
    let c = changed(&plan, "t");
    assert_eq!(c.action, launch("p", 1, &[]), "same launch, same Job name");
    assert_eq!(c.status, admitted, "nothing else changes");
    assert_eq!(c.status.job_name.as_deref(), Some("enc-t-1"));

    // Once it exists, nothing more.
    sim.jobs.insert(
        (NS.to_owned(), "enc-t-1".to_owned()),
        active_job("enc-t-1", "uid-t"),
    );
    assert_eq!(sim.pass_at(11).tasks, []);
}

#[test]
fn a_refused_launch_ends_the_attempt() {
    let mut sim = Sim::new(vec![encoding_pool("p", 1)], nodes(1));
    sim.create_jobs = false;
    sim.add(encoding("t", "univ-x", ""));
    sim.pass();
    sim.launch_errors
        .insert("uid-t".to_owned(), "exceeded quota: jobs".to_owned());
    let plan = sim.pass_at(1);
    let c = changed(&plan, "t");
    assert_eq!(c.action, Action::None);
    assert_eq!(c.status.phase, TaskPhase::Queued);
    assert_eq!(why(&c.status), reason::BACKING_OFF);
    assert_eq!(c.status.attempts, 1);
    let record = last_attempt(&c.status);
    assert_eq!(record.finish_time, time(1));
    assert!(
        record
            .message
            .as_deref()
            .is_some_and(|m| m.contains("refused Job enc-t-1: exceeded quota")),
        "{record:?}"
    );
}

#[test]
fn active_jobs_no_task_claims_are_orphans() {
    let mut sim = Sim::new(vec![encoding_pool("p", 1)], nodes(1));
    sim.add(encoding("admitted", "univ-x", ""));
    sim.add(encoding("queued", "univ-x", ""));
    assert_eq!(launched_names(&sim.pass()), ["admitted"]);
    let mut job = |name: &str, uid: &str, finished: bool, deleting: bool| {
        let mut j = active_job(name, uid);
        if finished {
            j.conditions = vec![JobCondition {
                type_: "Complete".to_owned(),
                status: true,
                reason: None,
                message: None,
            }];
        }
        j.deleting = deleting;
        sim.jobs.insert((NS.to_owned(), name.to_owned()), j);
    };
    // The queued task's Job left by an operator stopped before deleting it: an orphan.
    job("enc-queued-1", "uid-queued", false, false);
    // Already finished, or already being deleted: nothing to do.
    job("enc-queued-0", "uid-queued", true, false);
    job("enc-admitted-0", "uid-admitted", false, true);
    // A Job of a task this operator does not know: left to garbage collection.
    job("enc-ghost-1", "uid-ghost", false, false);
    let plan = sim.pass_at(1);
    assert_eq!(
        plan.orphans,
        [(NS.to_owned(), "enc-queued-1".to_owned())],
        "the admitted task's enc-admitted-1 is claimed"
    );
}

#[test]
fn a_running_task_whose_job_vanished_ends_its_attempt() {
    let mut sim = running_task("");
    let key = sim.job_key("t");
    sim.jobs.remove(&key);
    sim.pods.remove(&key);
    let plan = sim.pass_at(50);
    let c = changed(&plan, "t");
    assert_eq!(c.action, Action::None);
    assert_eq!(c.status.phase, TaskPhase::Queued);
    assert_eq!(why(&c.status), reason::BACKING_OFF);
    assert_eq!(c.status.attempts, 1);
    assert_eq!(last_attempt(&c.status).reason.as_deref(), Some("PodLost"));
}

#[test]
fn a_task_whose_job_vanished_after_delivering_its_result_succeeds() {
    // The operator was down while the runner finished and the Job's TTL removed it; the
    // webhook recorded the result. Running it again would redo delivered work.
    for seen_running in [true, false] {
        let mut sim = Sim::new(vec![encoding_pool("p", 1)], nodes(1));
        sim.add(encoding("t", "univ-x", ""));
        sim.pass();
        if seen_running {
            sim.t = 10;
            sim.run_pod("t", "n1");
            sim.pass();
        }
        sim.task_mut("t").status.result = Some(TaskResult {
            outcome: TaskOutcome::Completed,
            error_message: None,
            files: Vec::new(),
            hardware: None,
            launch: None,
            script_output_ref: None,
            script_output: None,
            report_time: Time(at(40)),
        });
        let key = sim.job_key("t");
        sim.jobs.remove(&key);
        sim.pods.remove(&key);
        let plan = sim.pass_at(5000);
        let c = changed(&plan, "t");
        assert_eq!(c.action, Action::None, "seen running: {seen_running}");
        assert_eq!(
            c.status.phase,
            TaskPhase::Succeeded,
            "seen running: {seen_running}"
        );
        assert_eq!(c.status.attempts, 0, "seen running: {seen_running}");
    }
}

#[test]
fn an_unchanged_state_writes_nothing() {
    let a = pool(
        "a",
        "{taskTypes: [Encoding], priority: 10, maxConcurrency: 3, tenants: [{name: univ-x, maxConcurrency: 1}, {name: univ-y}]}",
    );
    let b = pool(
        "b",
        "{taskTypes: [Encoding], priority: 20, maxConcurrency: 1, suspend: true}",
    );
    let c = pool(
        "c",
        "{taskTypes: [Encoding], priority: 30, maxConcurrency: 1}",
    );
    let mut sim = Sim::new(vec![a, b, c], nodes(2));
    sim.add(encoding("x1-running", "univ-x", ""));
    sim.add(encoding("x2-capped", "univ-x", ""));
    sim.add(encoding("y1-admitted", "univ-y", ""));
    sim.add(encoding("y2-admitted", "univ-y", ""));
    sim.add(encoding("y3-waiting", "univ-y", ""));
    sim.add(encoding("on-b", "univ-y", "pools: [b]"));
    sim.add(transcription("nowhere", "univ-x", ""));
    sim.add(encoding(
        "backing-off",
        "univ-y",
        "pools: [c], retry: {maxAttempts: 3, initialBackoff: 10m, maxBackoff: 10m}",
    ));
    sim.pass();
    sim.run_pod("x1-running", "n1");
    sim.run_pod("backing-off", "n2");
    sim.end("backing-off", End::Exit(1));
    let plan = sim.pass_at(1);
    assert_eq!(
        changed(&plan, "x1-running").status.phase,
        TaskPhase::Running
    );
    assert_eq!(
        why(&changed(&plan, "backing-off").status),
        reason::BACKING_OFF
    );

    let expected = [
        ("x1-running", TaskPhase::Running, reason::POD_RUNNING),
        ("x2-capped", TaskPhase::Queued, reason::TENANT_CAP_REACHED),
        ("y1-admitted", TaskPhase::Admitted, reason::JOB_CREATED),
        ("y2-admitted", TaskPhase::Admitted, reason::JOB_CREATED),
        (
            "y3-waiting",
            TaskPhase::Queued,
            reason::WAITING_FOR_CAPACITY,
        ),
        ("on-b", TaskPhase::Queued, reason::POOL_SUSPENDED),
        ("nowhere", TaskPhase::Queued, reason::NO_ELIGIBLE_POOL),
        ("backing-off", TaskPhase::Queued, reason::BACKING_OFF),
    ];
    let before: Vec<TaskStatus> = sim.tasks.iter().map(|t| t.status.clone()).collect();
    for t in [2, 3, 60] {
        let plan = sim.pass_at(t);
        assert_eq!(plan.tasks, [], "pass at {t}");
        assert_eq!(plan.orphans, [], "pass at {t}");
    }
    for (name, phase, expected_reason) in expected {
        let status = sim.status(name);
        assert_eq!(
            (status.phase, why(status)),
            (phase, expected_reason),
            "{name}"
        );
    }
    let after: Vec<TaskStatus> = sim.tasks.iter().map(|t| t.status.clone()).collect();
    assert_eq!(before, after);
}

// ---------------------------------------------------------------------------------------------
// 9. Retention

#[test]
fn finished_tasks_expire_after_their_retention() {
    let table = [
        // (spec fields, age, expired); the default retention is set to 48h.
        ("retention: 30h", 30 * 3600 - 1, false),
        ("retention: 30h", 30 * 3600, true),
        ("", 48 * 3600 - 1, false),
        ("", 48 * 3600, true),
        // Below the 24h floor: kept 24h.
        ("retention: 1h", 3600, false),
        ("retention: 1h", 24 * 3600 - 1, false),
        ("retention: 1h", 24 * 3600, true),
        ("retention: 0s", 24 * 3600, true),
    ];
    for (extra, age, expired) in table {
        let mut sim = running_task(extra);
        sim.settings.default_retention = std::time::Duration::from_secs(48 * 3600);
        sim.end("t", End::Complete);
        sim.pass_at(100);
        assert_eq!(sim.status("t").completion_time, time(100));
        let key = sim.task("t").key.clone();
        let plan = sim.pass_at(100 + age);
        assert_eq!(plan.tasks, [], "{extra} {age}");
        let expected: &[TaskKey] = if expired { &[key] } else { &[] };
        assert_eq!(plan.expired, expected, "{extra} {age}");
    }
}

// ---------------------------------------------------------------------------------------------
// 10. Positions

#[test]
fn queue_positions_follow_admission_order() {
    let pools = vec![
        pool(
            "a",
            "{taskTypes: [Encoding], priority: 10, maxConcurrency: 1}",
        ),
        pool(
            "b",
            "{taskTypes: [Encoding], priority: 20, maxConcurrency: 1}",
        ),
    ];
    let mut sim = Sim::new(pools, nodes(1));
    for name in ["a0", "a1", "a2", "a3"] {
        sim.add(encoding(name, "univ-x", "pools: [a]"));
    }
    for name in ["b0", "b1", "b2"] {
        sim.add(encoding(name, "univ-x", "pools: [b]"));
    }
    let plan = sim.pass();
    assert_eq!(launched(&plan), [("a0", "a"), ("b0", "b")]);
    let places = |sim: &Sim, name: &str| {
        let q = sim.status(name).queue.clone().unwrap();
        (q.pool, q.position_in_pool, q.position_overall)
    };
    let expected = [
        ("a1", "a", 1, 1),
        ("a2", "a", 2, 3),
        ("a3", "a", 3, 5),
        ("b1", "b", 1, 2),
        ("b2", "b", 2, 4),
    ];
    for (name, p, in_pool, overall) in expected {
        assert_eq!(
            places(&sim, name),
            (p.to_owned(), in_pool, overall),
            "{name}"
        );
    }
    let messages: Vec<String> = ["a1", "a2", "a3", "b1", "b2"]
        .iter()
        .map(|n| message(sim.status(n)).to_owned())
        .collect();

    // a0 ends: the head of a's queue goes next, the others move up.
    sim.end("a0", End::Complete);
    let plan = sim.pass_at(10);
    assert_eq!(launched_names(&plan), ["a1"]);
    let expected = [
        ("a2", "a", 1, 1),
        ("a3", "a", 2, 3),
        ("b1", "b", 1, 2),
        ("b2", "b", 2, 4),
    ];
    for (name, p, in_pool, overall) in expected {
        assert_eq!(
            places(&sim, name),
            (p.to_owned(), in_pool, overall),
            "{name}"
        );
    }
    for name in ["a2", "a3"] {
        let c = changed(&plan, name);
        assert!(c.informational, "{name}: only its place moved");
        assert_eq!(c.action, Action::None, "{name}");
    }
    for name in ["b1", "b2"] {
        assert_eq!(change(&plan, name), None, "{name}: its place did not move");
    }
    // Conditions keep their messages and transition times.
    for (name, before) in ["a2", "a3", "b1", "b2"].iter().zip(&messages[1..]) {
        assert_eq!(message(sim.status(name)), before, "{name}");
        assert_eq!(
            phase_condition(sim.status(name)).last_transition_time,
            Time(at(0)),
            "{name}"
        );
    }
    assert_eq!(sim.pass_at(11).tasks, []);
}

#[test]
fn estimated_start_times_hold_still_while_work_goes_as_expected() {
    let mut p = pool("p", "{taskTypes: [Transcription], maxConcurrency: 1}");
    p.status.media_seconds_per_second = Some(2.0);
    let mut sim = Sim::new(vec![p], nodes(1));
    sim.add(transcription("first", "univ-x", "durationSeconds: 600"));
    sim.add(transcription("second", "univ-x", "durationSeconds: 300"));
    sim.pass();
    // 600 media seconds ahead at 2 per second, the runner not started yet.
    let eta = |sim: &Sim| {
        sim.status("second")
            .queue
            .as_ref()
            .unwrap()
            .estimated_start_time
            .clone()
    };
    assert_eq!(eta(&sim), time(300));
    // The runner has not started: the estimate slips, but a slip under a minute (and under
    // a tenth of the wait) is not worth a write.
    assert_eq!(change(&sim.pass_at(1), "second"), None);
    assert_eq!(eta(&sim), time(300));
    // A minute later it is: an informational write.
    let plan = sim.pass_at(60);
    let c = changed(&plan, "second");
    assert!(c.informational);
    assert_eq!(eta(&sim), time(360));
    // Once it runs at the measured pace, the estimate stays put: nothing to write.
    sim.run_pod("first", "n1");
    let plan = sim.pass_at(61);
    assert_eq!(changed(&plan, "first").status.phase, TaskPhase::Running);
    assert_eq!(change(&plan, "second"), None);
    assert_eq!(sim.pass_at(110).tasks, []);
    assert_eq!(eta(&sim), time(360));
}

#[test]
fn deep_queue_positions_are_rewritten_only_when_materially_wrong() {
    let at = |pool: u32, overall: u32| QueueStatus {
        position_in_pool: pool,
        position_overall: overall,
        pool: "p".into(),
        estimated_start_time: None,
    };
    let now = Timestamp::UNIX_EPOCH;
    let table = [
        (at(5, 5), at(4, 4), true),          // near the head every step counts
        (at(11, 11), at(10, 10), true),      // reaching the top ten
        (at(500, 500), at(499, 499), false), // one step deep in the queue
        (at(500, 500), at(450, 450), true),  // a tenth of the way
        (at(500, 500), at(460, 449), true),  // overall moved enough
        (at(30, 30), at(30, 30), false),
    ];
    for (old, new, moved) in table {
        assert_eq!(
            super::materially_moved(&old, &new, now),
            moved,
            "{old:?} -> {new:?}"
        );
    }
    let mut other_pool = at(30, 30);
    other_pool.pool = "q".into();
    assert!(super::materially_moved(&at(30, 30), &other_pool, now));
}

#[test]
fn a_pool_that_starts_or_stops_admitting_gets_one_event_each_time() {
    let mut sim = Sim::new(vec![encoding_pool("p", 2)], vec![]);
    let first = report(&sim.pass(), "p").clone();
    let note = first
        .note
        .clone()
        .expect("a new pool reports its state once");
    assert!(note.warning);
    assert_eq!(note.reason, "NoMatchingNodes");
    sim.pools[0].status = first.status;
    let again = report(&sim.pass(), "p").clone();
    assert_eq!(again.note, None, "no Event while nothing changes");
    sim.pools[0].status = again.status;
    sim.nodes.push(cpu_node("n1"));
    let ready = report(&sim.pass(), "p").clone();
    let note = ready.note.expect("the pool now admits");
    assert!(!note.warning);
    assert_eq!(note.reason, "Admitting");
}

#[test]
fn a_cancelled_task_stops_its_job_and_fails_as_cancelled() {
    let mut sim = Sim::new(vec![encoding_pool("p", 1)], nodes(1));
    sim.add(encoding("running", "univ-x", ""));
    sim.add(encoding("waiting", "univ-x", ""));
    sim.pass();
    sim.run_pod("running", "n1");
    sim.pass_at(1);
    assert_eq!(sim.status("running").phase, TaskPhase::Running);
    sim.task_mut("running").cancel_requested = true;
    sim.task_mut("waiting").cancel_requested = true;
    let plan = sim.pass_at(2);
    let job = sim.status("running").job_name.clone().unwrap();
    assert_eq!(changed(&plan, "running").action, Action::Stop { job });
    for name in ["running", "waiting"] {
        let status = sim.status(name);
        assert_eq!(status.phase, TaskPhase::Failed, "{name}");
        assert_eq!(why(status), "Cancelled");
        assert_eq!(message(status), "Cancelled by user.");
    }
    assert_eq!(changed(&plan, "waiting").action, Action::None);
    assert_eq!(sim.pass_at(3).tasks, [], "a cancelled task stays ended");
}

#[test]
fn a_task_accepted_with_invalid_parameters_fails_without_running() {
    let refusal = "Invalid parameters for task type: encoding (invalid fields: zeta)";
    let mut sim = Sim::new(vec![encoding_pool("p", 2)], nodes(1));
    let mut invalid = encoding("invalid", "univ-x", "");
    invalid.invalid_parameters = Some(refusal.to_owned());
    sim.add(invalid);
    sim.add(encoding("valid", "univ-x", ""));
    let plan = sim.pass();
    let status = sim.status("invalid");
    assert_eq!(status.phase, TaskPhase::Failed);
    assert_eq!(why(status), "InvalidParameters");
    assert_eq!(message(status), refusal);
    assert!(status.job_name.is_none() && status.pool.is_none());
    let change = changed(&plan, "invalid");
    assert_eq!(change.action, Action::None, "never launched");
    assert_eq!(
        change.note.as_ref().map(|n| n.reason.as_str()),
        Some("InvalidParameters")
    );
    assert_eq!(
        sim.status("valid").phase,
        TaskPhase::Admitted,
        "it takes no slot"
    );
    assert_eq!(sim.pass_at(1).tasks, [], "it stays failed");
}
