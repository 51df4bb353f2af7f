//! The operator against the local cluster: real API server, scheduler, Job controller and
//! kubelet; runner pods really run. The runner is the stand-in image
//! (`e2e/images/runner-standin`): it sleeps and exits as its source URL says, and reports each
//! start to a callback recorder, so the tests can count real runs. Each test runs its own
//! operator process (with its own Lease) and its own pools, and restricts its tasks to them.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests fail loudly by design

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use esup_api::{EncodingTask, RunnerPool, TaskPhase, TaskStatus, TranscriptionTask};
use esup_e2e::{
    CallbackRecorder, FIELD_MANAGER, OperatorProcess, client, fresh_namespace, install_crds,
    wait_for,
};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};

const LABEL_POOL: &str = "runner.esup-portail.org/pool";
const LABEL_TASK_UID: &str = "runner.esup-portail.org/task-uid";

struct Fixture {
    client: Client,
    ns: String,
    pools: Vec<String>,
    callbacks: CallbackRecorder,
}

impl Fixture {
    async fn new(ns: &str) -> Self {
        let client = client().await;
        install_crds(&client).await;
        fresh_namespace(&client, "esup-system").await;
        let ns = fresh_namespace(&client, ns).await;
        // Leftovers of an earlier run of the same test.
        let _ = Api::<TranscriptionTask>::namespaced(client.clone(), &ns)
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await;
        let _ = Api::<EncodingTask>::namespaced(client.clone(), &ns)
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await;
        let callbacks = CallbackRecorder::start().await;
        Self {
            client,
            ns,
            pools: Vec::new(),
            callbacks,
        }
    }

    fn operator(&self, lease: &str, identity: &str) -> OperatorProcess {
        OperatorProcess::start(lease, identity, &self.callbacks.base_url)
    }

    async fn pool(&mut self, name: &str, spec: serde_json::Value) {
        let pool: RunnerPool = serde_json::from_value(serde_json::json!({
            "apiVersion": "runner.esup-portail.org/v1alpha1", "kind": "RunnerPool",
            "metadata": {"name": name}, "spec": spec,
        }))
        .expect("pool");
        let api: Api<RunnerPool> = Api::all(self.client.clone());
        api.patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&pool),
        )
        .await
        .expect("pool applies");
        self.pools.push(name.to_owned());
    }

    /// A transcription task whose stand-in runner sleeps `seconds` and exits `code`.
    async fn transcription(
        &self,
        name: &str,
        pools: &[&str],
        seconds: f64,
        code: i32,
        extra: serde_json::Value,
    ) {
        let mut spec = serde_json::json!({
            "source": {"url": format!("http://media.test/sleep/{seconds}/exit/{code}/{name}.mp3")},
            "language": "fr",
            "requester": {"tenant": "univ-x", "etabName": "Université X", "appName": "Esup-Pod"},
            "pools": pools,
        });
        merge(&mut spec, extra);
        let task: TranscriptionTask = serde_json::from_value(serde_json::json!({
            "apiVersion": "runner.esup-portail.org/v1alpha1", "kind": "TranscriptionTask",
            "metadata": {"name": name, "namespace": self.ns}, "spec": spec,
        }))
        .expect("task");
        self.transcriptions()
            .patch(
                name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&task),
            )
            .await
            .expect("task applies");
    }

    fn transcriptions(&self) -> Api<TranscriptionTask> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    async fn status(&self, name: &str) -> TaskStatus {
        self.transcriptions()
            .get(name)
            .await
            .expect("get task")
            .status
            .unwrap_or_default()
    }

    async fn wait_phase(&self, name: &str, phase: TaskPhase, timeout: Duration) -> TaskStatus {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.status(name).await;
            if status.phase == phase {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {name} to be {phase:?}; last status: {status:#?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn jobs(&self, selector: &str) -> Vec<Job> {
        Api::<Job>::namespaced(self.client.clone(), &self.ns)
            .list(&ListParams::default().labels(selector))
            .await
            .expect("list jobs")
            .items
    }

    async fn cleanup(self) {
        let _ = self
            .transcriptions()
            .delete_collection(&DeleteParams::background(), &ListParams::default())
            .await;
        let _ = Api::<EncodingTask>::namespaced(self.client.clone(), &self.ns)
            .delete_collection(&DeleteParams::background(), &ListParams::default())
            .await;
        let pools: Api<RunnerPool> = Api::all(self.client.clone());
        for pool in &self.pools {
            let _ = pools.delete(pool, &DeleteParams::default()).await;
        }
    }
}

fn merge(base: &mut serde_json::Value, extra: serde_json::Value) {
    if let (Some(base), serde_json::Value::Object(extra)) = (base.as_object_mut(), extra) {
        base.extend(extra);
    }
}

fn condition_reason(status: &TaskStatus, type_: &str) -> Option<String> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.reason.clone())
}

fn job_active(job: &Job) -> bool {
    let finished = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| {
            c.iter()
                .any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        });
    !finished && job.metadata.deletion_timestamp.is_none()
}

#[tokio::test]
async fn gpu_task_job_requests_a_gpu_and_runs_on_the_gpu_node() {
    let mut fx = Fixture::new("esup-e2e-gpu").await;
    fx.pool(
        "e2e-gpu-l4",
        serde_json::json!({
            "taskTypes": ["Encoding", "Transcription"], "priority": 1, "maxConcurrency": 2,
            "gpu": {"products": ["NVIDIA-L4"], "nvenc": true},
            "placement": {"nodeSelector": {"nvidia.com/gpu.present": "true"}},
        }),
    )
    .await;
    let _operator = fx.operator("e2e-gpu", "e2e-gpu-1");
    fx.transcription("gpu-task", &["e2e-gpu-l4"], 1.0, 0, serde_json::json!({}))
        .await;
    let status = fx
        .wait_phase("gpu-task", TaskPhase::Succeeded, Duration::from_secs(90))
        .await;
    assert_eq!(status.pool.as_deref(), Some("e2e-gpu-l4"));

    let job = &fx.jobs(&format!("{LABEL_POOL}=e2e-gpu-l4")).await[0];
    let pod_spec = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let limits = pod_spec.containers[0]
        .resources
        .as_ref()
        .unwrap()
        .limits
        .as_ref()
        .unwrap();
    assert_eq!(limits["nvidia.com/gpu"].0, "1", "the Job requests one GPU");
    let terms = &pod_spec
        .affinity
        .as_ref()
        .unwrap()
        .node_affinity
        .as_ref()
        .unwrap()
        .required_during_scheduling_ignored_during_execution
        .as_ref()
        .unwrap()
        .node_selector_terms;
    assert!(terms.iter().all(|t| {
        t.match_expressions
            .as_ref()
            .unwrap()
            .iter()
            .any(|e| e.key == "nvidia.com/gpu.product")
    }));

    let pods = Api::<Pod>::namespaced(fx.client.clone(), &fx.ns)
        .list(&ListParams::default().labels(&format!("job-name={}", job.name_any())))
        .await
        .unwrap()
        .items;
    let node_name = pods[0]
        .spec
        .as_ref()
        .unwrap()
        .node_name
        .clone()
        .expect("pod bound to a node");
    let node = Api::<Node>::all(fx.client.clone())
        .get(&node_name)
        .await
        .unwrap();
    assert_eq!(
        node.labels()
            .get("nvidia.com/gpu.present")
            .map(String::as_str),
        Some("true")
    );
    assert_eq!(
        node.labels()
            .get("nvidia.com/gpu.product")
            .map(String::as_str),
        Some("NVIDIA-L4")
    );
    assert_eq!(
        fx.callbacks.starts("gpu-task").len(),
        1,
        "the runner ran once"
    );
    fx.cleanup().await;
}

#[tokio::test]
async fn pool_concurrency_cap_holds_under_20_queued_tasks() {
    let mut fx = Fixture::new("esup-e2e-cap").await;
    fx.pool(
        "e2e-cap",
        serde_json::json!({"taskTypes": ["Transcription"], "priority": 1, "maxConcurrency": 2}),
    )
    .await;
    let names: Vec<String> = (0..20).map(|i| format!("cap-{i:02}")).collect();
    for name in &names {
        fx.transcription(name, &["e2e-cap"], 2.0, 0, serde_json::json!({}))
            .await;
    }
    let _operator = fx.operator("e2e-cap", "e2e-cap-1");
    let mut most_active = 0;
    let mut deepest_position = 0;
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let active = fx
            .jobs(&format!("{LABEL_POOL}=e2e-cap"))
            .await
            .iter()
            .filter(|j| job_active(j))
            .count();
        assert!(
            active <= 2,
            "{active} Jobs of a pool with maxConcurrency 2 are active at once"
        );
        most_active = most_active.max(active);
        let tasks = fx
            .transcriptions()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items;
        let statuses: Vec<TaskStatus> = tasks
            .into_iter()
            .map(|t| t.status.unwrap_or_default())
            .collect();
        let holding = statuses
            .iter()
            .filter(|s| matches!(s.phase, TaskPhase::Admitted | TaskPhase::Running))
            .count();
        assert!(
            holding <= 2,
            "{holding} tasks hold a slot of a pool with maxConcurrency 2"
        );
        deepest_position = statuses
            .iter()
            .filter_map(|s| s.queue.as_ref())
            .map(|q| q.position_in_pool)
            .max()
            .unwrap_or(0)
            .max(deepest_position);
        if statuses
            .iter()
            .filter(|s| s.phase == TaskPhase::Succeeded)
            .count()
            == names.len()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "20 tasks did not all succeed in time"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(most_active, 2, "the pool used both of its slots");
    assert!(
        deepest_position >= 10,
        "queued tasks showed their position (deepest seen {deepest_position})"
    );
    let pool = Api::<RunnerPool>::all(fx.client.clone())
        .get("e2e-cap")
        .await
        .unwrap();
    assert_eq!(pool.status.unwrap().slots, 2);
    for name in &names {
        assert_eq!(
            fx.callbacks.starts(name).len(),
            1,
            "{name} ran exactly once"
        );
    }
    fx.cleanup().await;
}

#[tokio::test]
async fn a_task_overflows_to_the_next_pool_after_overflow_after() {
    let mut fx = Fixture::new("esup-e2e-overflow").await;
    fx.pool("e2e-home", serde_json::json!({"taskTypes": ["Transcription"], "priority": 1, "maxConcurrency": 1, "overflowAfter": "5s"})).await;
    fx.pool(
        "e2e-spare",
        serde_json::json!({"taskTypes": ["Transcription"], "priority": 2, "maxConcurrency": 1}),
    )
    .await;
    let _operator = fx.operator("e2e-overflow", "e2e-overflow-1");
    fx.transcription(
        "long",
        &["e2e-home", "e2e-spare"],
        40.0,
        0,
        serde_json::json!({}),
    )
    .await;
    let long = fx
        .wait_phase("long", TaskPhase::Running, Duration::from_secs(60))
        .await;
    assert_eq!(long.pool.as_deref(), Some("e2e-home"));

    let submitted = Instant::now();
    fx.transcription(
        "waiting",
        &["e2e-home", "e2e-spare"],
        1.0,
        0,
        serde_json::json!({}),
    )
    .await;
    let queued = fx
        .wait_phase("waiting", TaskPhase::Queued, Duration::from_secs(10))
        .await;
    assert_eq!(queued.home_pool.as_deref(), Some("e2e-home"));
    let admitted = wait_for(
        Duration::from_secs(60),
        "the waiting task to be admitted",
        || async {
            let s = fx.status("waiting").await;
            s.pool.is_some().then_some(s)
        },
    )
    .await;
    // Status times have the API's one-second resolution (the Queued condition's transition
    // time is stored truncated), so overflow comes at overflowAfter within that second.
    let waited = submitted.elapsed();
    assert!(
        waited >= Duration::from_secs(4),
        "overflowed after {waited:?}, well before overflowAfter (5s): {admitted:#?}"
    );
    assert_eq!(admitted.pool.as_deref(), Some("e2e-spare"));
    assert_eq!(admitted.home_pool.as_deref(), Some("e2e-home"));
    assert_eq!(
        condition_reason(&admitted, "Admitted").as_deref(),
        Some("Overflowed")
    );
    fx.wait_phase("waiting", TaskPhase::Succeeded, Duration::from_secs(60))
        .await;
    fx.cleanup().await;
}

#[tokio::test]
async fn suspending_a_pool_stops_admissions() {
    let mut fx = Fixture::new("esup-e2e-suspend").await;
    fx.pool("e2e-suspend", serde_json::json!({"taskTypes": ["Transcription"], "priority": 1, "maxConcurrency": 2, "suspend": true})).await;
    let _operator = fx.operator("e2e-suspend", "e2e-suspend-1");
    fx.transcription("held", &["e2e-suspend"], 1.0, 0, serde_json::json!({}))
        .await;
    let queued = fx
        .wait_phase("held", TaskPhase::Queued, Duration::from_secs(20))
        .await;
    assert_eq!(
        condition_reason(&queued, "Queued").as_deref(),
        Some("PoolSuspended")
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    let still = fx.status("held").await;
    assert_eq!(
        still.phase,
        TaskPhase::Queued,
        "a suspended pool admitted a task"
    );
    assert!(
        fx.jobs(&format!("{LABEL_POOL}=e2e-suspend"))
            .await
            .is_empty()
    );
    let pool = Api::<RunnerPool>::all(fx.client.clone())
        .get("e2e-suspend")
        .await
        .unwrap();
    let suspended = pool
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Suspended")
        .unwrap();
    assert_eq!(suspended.status, "True");

    let resume = serde_json::json!({"spec": {"suspend": false}});
    Api::<RunnerPool>::all(fx.client.clone())
        .patch(
            "e2e-suspend",
            &PatchParams::default(),
            &Patch::Merge(&resume),
        )
        .await
        .unwrap();
    fx.wait_phase("held", TaskPhase::Succeeded, Duration::from_secs(60))
        .await;
    fx.cleanup().await;
}

#[tokio::test]
async fn a_task_that_no_longer_decodes_is_skipped_with_an_event_and_others_run() {
    // A stored object this release cannot read: as left by an older CRD version or a value a
    // newer release narrowed. Made here by loosening the CRD's spec schema for one create,
    // then restoring the real CRD (the stored object stays as written).
    // reqwest is built without a TLS provider of its own (plain HTTP here): name ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut fx = Fixture::new("esup-e2e-undecodable").await;
    let crds: Api<CustomResourceDefinition> = Api::all(fx.client.clone());
    let name = "transcriptiontasks.runner.esup-portail.org";
    let mut loose = esup_api::custom_resource_definitions()
        .into_iter()
        .find(|c| c.name_any() == name)
        .unwrap();
    let schema = loose.spec.versions[0].schema.as_mut().unwrap();
    let root = schema.open_api_v3_schema.as_mut().unwrap();
    root.properties.as_mut().unwrap().insert(
        "spec".to_owned(),
        serde_json::from_value(
            serde_json::json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
        )
        .unwrap(),
    );
    crds.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&loose),
    )
    .await
    .unwrap();
    let bad = serde_json::json!({
        "apiVersion": "runner.esup-portail.org/v1alpha1", "kind": "TranscriptionTask",
        "metadata": {"name": "narrowed", "namespace": fx.ns},
        "spec": {"source": {"url": "http://media.test/a.mp3"}, "language": "fr", "priority": "Urgent",
                 "requester": {"tenant": "univ-x", "etabName": "Université X", "appName": "Esup-Pod"}},
    });
    let dynamic: Api<kube::api::DynamicObject> = Api::namespaced_with(
        fx.client.clone(),
        &fx.ns,
        &kube::discovery::ApiResource::erase::<TranscriptionTask>(&()),
    );
    wait_for(Duration::from_secs(30), "the loose schema to serve", || {
        let (dynamic, bad) = (dynamic.clone(), bad.clone());
        async move {
            let object: kube::api::DynamicObject = serde_json::from_value(bad).ok()?;
            dynamic
                .patch(
                    "narrowed",
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&object),
                )
                .await
                .ok()
        }
    })
    .await;
    install_crds(&fx.client).await;
    assert!(
        fx.transcriptions()
            .list(&ListParams::default())
            .await
            .is_err(),
        "the typed list fails on the stored object, as a typed watch does"
    );

    fx.pool(
        "e2e-undecodable",
        serde_json::json!({"taskTypes": ["Transcription"], "priority": 1, "maxConcurrency": 1}),
    )
    .await;
    let _operator = fx.operator("e2e-undecodable", "e2e-undecodable-1");
    fx.transcription(
        "readable",
        &["e2e-undecodable"],
        0.5,
        0,
        serde_json::json!({}),
    )
    .await;
    fx.wait_phase("readable", TaskPhase::Succeeded, Duration::from_secs(90))
        .await;
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(fx.client.clone(), &fx.ns);
    wait_for(
        Duration::from_secs(30),
        "a Warning Event on the skipped task",
        || async {
            events
                .list(&ListParams::default().fields("involvedObject.name=narrowed"))
                .await
                .ok()?
                .items
                .into_iter()
                .find(|e| {
                    e.reason.as_deref() == Some("UndecodableObject")
                        && e.type_.as_deref() == Some("Warning")
                })
        },
    )
    .await;
    // The webhook's caches skip it too: it opens its API port only once they have listed.
    let webhook = esup_e2e::WebhookProcess::start("e2e-undecodable").await;
    let metrics = reqwest::get(format!("{}/metrics", webhook.metrics_url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            r#"esup_runner_webhook_watch_undecodable_objects_total{kind="TranscriptionTask"}"#
        ),
        "{metrics}"
    );
    dynamic
        .delete("narrowed", &DeleteParams::default())
        .await
        .unwrap();
    fx.cleanup().await;
}

/// The value of the series `series` (name and labels exactly as exposed) in a scrape.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// What a platform team's alerts read, by name and value: tasks finished by phase and tenant,
/// media seconds, waiting tasks by pool and reason (NoEligiblePool once their only pool is
/// deleted), the oldest queued age, and the pool's capacity gauges, all from the real cluster.
#[tokio::test]
async fn metrics_count_finished_and_waiting_tasks_by_reason() {
    let mut fx = Fixture::new("esup-e2e-metrics").await;
    fx.pool(
        "e2e-met",
        serde_json::json!({"taskTypes": ["Transcription"], "priority": 1, "maxConcurrency": 1}),
    )
    .await;
    let operator = fx.operator("e2e-metrics", "e2e-metrics-1");
    let only = serde_json::json!({"durationSeconds": 90.0});
    fx.transcription("done", &["e2e-met"], 0.5, 0, only.clone())
        .await;
    fx.wait_phase("done", TaskPhase::Succeeded, Duration::from_secs(90))
        .await;
    let leader = r#"pool="e2e-met",replica_role="leader""#;
    let finished = r#"esup_runner_tasks_finished_total{pool="e2e-met",task_type="transcription",tenant="univ-x",phase="succeeded"}"#;
    let metrics = wait_for(
        Duration::from_secs(30),
        "the finished task's metrics",
        || async {
            let m = operator.metrics().await?;
            (sample(&m, finished) == Some(1.0)).then_some(m)
        },
    )
    .await;
    for (series, value) in [
        (
            r#"esup_runner_media_processed_seconds_total{pool="e2e-met",task_type="transcription",tenant="univ-x"}"#.to_owned(),
            90.0,
        ),
        (
            r#"esup_runner_task_end_to_end_seconds_count{task_type="transcription",phase="succeeded"}"#.to_owned(),
            1.0,
        ),
        (
            r#"esup_runner_task_schedule_to_start_seconds_count{pool="e2e-met",task_type="transcription"}"#.to_owned(),
            1.0,
        ),
        (format!("esup_runner_pool_slots{{{leader}}}"), 1.0),
        (format!("esup_runner_pool_ready{{{leader}}}"), 1.0),
        ("esup_runner_operator_leader".to_owned(), 1.0),
    ] {
        assert_eq!(sample(&metrics, &series), Some(value), "{series}\n{metrics}");
    }

    // One task holds the only slot; the next waits for capacity in the pool's queue.
    fx.transcription("long", &["e2e-met"], 120.0, 0, only.clone())
        .await;
    fx.wait_phase("long", TaskPhase::Running, Duration::from_secs(90))
        .await;
    fx.transcription("waiting", &["e2e-met"], 0.5, 0, only)
        .await;
    let waiting = r#"esup_runner_tasks_pending{pool="e2e-met",reason="WaitingForCapacity",replica_role="leader"}"#;
    let metrics = wait_for(
        Duration::from_secs(30),
        "a task waiting for capacity",
        || async {
            let m = operator.metrics().await?;
            (sample(&m, waiting) == Some(1.0)
                && sample(
                    &m,
                    &format!("esup_runner_pool_oldest_queued_seconds{{{leader}}}"),
                )
                .is_some_and(|age| age > 0.0))
            .then_some(m)
        },
    )
    .await;
    assert_eq!(
        sample(
            &metrics,
            &format!("esup_runner_pool_queue_depth{{{leader}}}")
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            &format!("esup_runner_pool_slots_free{{{leader}}}")
        ),
        Some(0.0),
        "{metrics}"
    );

    // Its only pool is deleted: no pool can take it any more, and the pool's gauges go.
    Api::<RunnerPool>::all(fx.client.clone())
        .delete("e2e-met", &DeleteParams::default())
        .await
        .unwrap();
    let no_pool =
        r#"esup_runner_tasks_pending{pool="",reason="NoEligiblePool",replica_role="leader"}"#;
    let metrics = wait_for(
        Duration::from_secs(30),
        "NoEligiblePool in the metrics",
        || async {
            let m = operator.metrics().await?;
            (sample(&m, no_pool) == Some(1.0)).then_some(m)
        },
    )
    .await;
    assert_eq!(sample(&metrics, waiting), None, "{metrics}");
    assert!(
        !metrics.contains(&format!("esup_runner_pool_slots{{{leader}}}")),
        "a deleted pool's gauges are removed\n{metrics}"
    );
    fx.cleanup().await;
}

#[tokio::test]
async fn a_killed_runner_pod_is_retried_and_the_task_succeeds() {
    let mut fx = Fixture::new("esup-e2e-retry").await;
    fx.pool(
        "e2e-retry",
        serde_json::json!({"taskTypes": ["Transcription"], "priority": 1, "maxConcurrency": 1}),
    )
    .await;
    let _operator = fx.operator("e2e-retry", "e2e-retry-1");
    let retry = serde_json::json!({"retry": {"maxAttempts": 3, "initialBackoff": "1s", "maxBackoff": "5s"}});
    fx.transcription("victim", &["e2e-retry"], 15.0, 0, retry)
        .await;
    let running = fx
        .wait_phase("victim", TaskPhase::Running, Duration::from_secs(60))
        .await;
    let first_job = running.job_name.clone().unwrap();
    wait_for(
        Duration::from_secs(20),
        "the first runner to report its start",
        || async { (!fx.callbacks.starts("victim").is_empty()).then_some(()) },
    )
    .await;

    let pods: Api<Pod> = Api::namespaced(fx.client.clone(), &fx.ns);
    let pod = pods
        .list(&ListParams::default().labels(&format!("job-name={first_job}")))
        .await
        .unwrap()
        .items
        .remove(0);
    pods.delete(
        &pod.name_any(),
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        },
    )
    .await
    .unwrap();

    let done = fx
        .wait_phase("victim", TaskPhase::Succeeded, Duration::from_secs(120))
        .await;
    assert_eq!(done.launches, 2, "one retry after the killed pod");
    assert_ne!(
        done.job_name.as_deref(),
        Some(first_job.as_str()),
        "the retry ran as a new Job"
    );
    let first = &done.attempt_history[0];
    assert!(
        first.finish_time.is_some() && first.reason.is_some(),
        "the killed attempt is recorded: {first:?}"
    );
    let starts = fx.callbacks.starts("victim");
    let launches: Vec<&str> = starts.iter().map(|s| s.launch.as_str()).collect();
    assert_eq!(launches, ["1", "2"], "the runner ran once per launch");
    fx.cleanup().await;
}

#[tokio::test]
async fn sigkill_of_the_operator_amid_50_tasks_loses_none_and_runs_none_twice() {
    let mut fx = Fixture::new("esup-e2e-sigkill").await;
    fx.pool(
        "e2e-sigkill",
        serde_json::json!({"taskTypes": ["Transcription"], "priority": 1, "maxConcurrency": 4}),
    )
    .await;
    let names: Vec<String> = (0..50).map(|i| format!("sk-{i:02}")).collect();
    let operator = fx.operator("e2e-sigkill", "e2e-sigkill-1");
    for name in &names {
        fx.transcription(name, &["e2e-sigkill"], 1.0, 0, serde_json::json!({}))
            .await;
    }
    let succeeded = |fx: &Fixture| {
        let api = fx.transcriptions();
        async move {
            api.list(&ListParams::default())
                .await
                .unwrap()
                .items
                .iter()
                .filter(|t| {
                    t.status
                        .as_ref()
                        .is_some_and(|s| s.phase == TaskPhase::Succeeded)
                })
                .count()
        }
    };
    wait_for(
        Duration::from_secs(180),
        "a dozen tasks to succeed",
        || async { (succeeded(&fx).await >= 12).then_some(()) },
    )
    .await;
    operator.kill().await;
    let at_kill = succeeded(&fx).await;
    assert!(
        at_kill < names.len(),
        "the kill came too late to test anything"
    );

    // A new replica must first wait for the dead one's Lease to expire.
    let _successor = fx.operator("e2e-sigkill", "e2e-sigkill-2");
    wait_for(
        Duration::from_secs(300),
        "all 50 tasks to succeed",
        || async { (succeeded(&fx).await == names.len()).then_some(()) },
    )
    .await;

    let tasks = fx
        .transcriptions()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert_eq!(tasks.len(), names.len(), "no task was lost");
    let mut jobs_per_task: BTreeMap<String, usize> = BTreeMap::new();
    for job in fx.jobs(&format!("{LABEL_POOL}=e2e-sigkill")).await {
        *jobs_per_task
            .entry(job.labels()[LABEL_TASK_UID].clone())
            .or_default() += 1;
    }
    for task in &tasks {
        let status = task.status.as_ref().unwrap();
        assert_eq!(
            status.launches,
            1,
            "{} was launched {} times",
            task.name_any(),
            status.launches
        );
        assert_eq!(
            jobs_per_task.get(task.uid().as_deref().unwrap()),
            Some(&1),
            "{} has one Job",
            task.name_any()
        );
        let starts = fx.callbacks.starts(&task.name_any());
        assert_eq!(
            starts.len(),
            1,
            "{} ran {} times",
            task.name_any(),
            starts.len()
        );
    }
    fx.cleanup().await;
}
