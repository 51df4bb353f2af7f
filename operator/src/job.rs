//! Builds the Job that runs one attempt of a task on a pool, and the task's callback Secret.
//! Pure: the same task, pool and launch number always give the same objects, so a restarted
//! operator recomputes the names of what it already created.

use std::collections::BTreeMap;

use esup_api::TaskType;
use esup_api::runner::{RunnerArgs, TaskCallbacks, env};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, NodeAffinity,
    NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, PersistentVolumeClaimVolumeSource,
    PodSecurityContext, PodSpec, PodTemplateSpec, PreferredSchedulingTerm, ResourceRequirements,
    SeccompProfile, Secret, SecretKeySelector, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use esup_api::labels::{self, is_label_value};
use esup_api::runner::CALLBACK_TOKEN_KEY;

use esup_api::task::TaskSpec;

use crate::model::{Pool, Task};

const CONTAINER_NAME: &str = crate::model::RUNNER_CONTAINER;
const SCRATCH_VOLUME: &str = "scratch";
const SCRATCH_PATH: &str = "/scratch";
const TMP_VOLUME: &str = "tmp";
const TMP_PATH: &str = "/tmp";
const TMP_SIZE: &str = "1Gi";
const MODELS_VOLUME: &str = "models";
/// Where runner pods find models (the runner's defaults: `/models/whisper`, `/models/translation`).
pub const MODELS_PATH: &str = "/models";
/// The distroless "nonroot" user: the runner image needs no other identity.
const RUNNER_ID: i64 = 65532;
const TERMINATION_GRACE_SECONDS: i64 = 30;

/// Operator settings that shape every Job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunnerConfig {
    /// Runner image of pools that set none.
    pub default_image: String,
    /// e.g. "IfNotPresent".
    pub image_pull_policy: String,
    /// Base URL of the webhook as runners reach it, e.g.
    /// "http://esup-webhook.esup-system.svc:8080".
    pub callback_base_url: String,
    /// `ttlSecondsAfterFinished` of the Jobs.
    pub job_ttl_seconds: i32,
    /// ServiceAccount of runner pods (one without API access); `None`: the namespace's default.
    pub service_account: Option<String>,
    /// PersistentVolumeClaim, in each task's namespace, holding the Whisper and translation
    /// models: mounted read-only at [`MODELS_PATH`] in transcription pods only, so an encoding
    /// never waits on a volume it does not read.
    pub models_claim: Option<String>,
    /// The webhook's URL policy, which the runner applies to each fetch (source, dressing,
    /// mediapackage tracks, redirects): given to runner containers as its environment.
    pub url_policy: esup_api::url_policy::UrlPolicy,
}

/// One attempt to launch.
#[derive(Clone, Copy, Debug)]
pub struct Launch<'a> {
    pub task: &'a Task,
    pub pool: &'a Pool,
    /// 1-based number of this Job among the task's Jobs (`status.launches` after it).
    pub launch: u32,
    /// Nodes where earlier attempts failed: avoided when possible, never required.
    pub avoid_nodes: &'a [String],
}

/// Makes the task own what is created for it, so that deleting the task deletes its Jobs
/// and Secret.
pub fn owner_reference(task: &Task) -> OwnerReference {
    OwnerReference {
        api_version: format!("{}/{}", esup_api::GROUP, esup_api::VERSION),
        kind: task.key.kind.kind_name().to_owned(),
        name: task.key.name.clone(),
        uid: task.uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Labels of everything made for a task.
fn task_labels(task: &Task) -> BTreeMap<String, String> {
    let mut out = BTreeMap::from([
        (
            labels::MANAGED_BY.to_owned(),
            labels::MANAGED_BY_VALUE.to_owned(),
        ),
        (labels::NAME.to_owned(), labels::NAME_VALUE.to_owned()),
        (labels::TASK_UID.to_owned(), task.uid.clone()),
        (
            labels::TASK_KIND.to_owned(),
            task.key.kind.kind_name().to_owned(),
        ),
        (labels::TENANT.to_owned(), task.tenant().to_owned()),
    ]);
    // Names may be 253 characters long; the uid label is the one selectors rely on.
    if is_label_value(&task.key.name) {
        out.insert(labels::TASK_NAME.to_owned(), task.key.name.clone());
    }
    out
}

fn job_labels(launch: &Launch<'_>) -> BTreeMap<String, String> {
    let mut out = task_labels(launch.task);
    // Pool names are DNS subdomains: a longer one would make the Job invalid, and the
    // ESUP_POOL variable and the task status still name the pool.
    if is_label_value(&launch.pool.name) {
        out.insert(labels::POOL.to_owned(), launch.pool.name.clone());
    }
    out.insert(labels::LAUNCH.to_owned(), launch.launch.to_string());
    out
}

/// The Secret holding the bearer token the runner of the task's `launch`-th Job presents to
/// the webhook: `<launch>.<secret>` ([`esup_api::runner::callback_token`]). Owned by the task,
/// not by its Job: it must exist before the Job (whose pod reads it at start), so the Job's
/// uid is not known yet; the webhook's fence, not the Secret's lifetime, retires old launches,
/// and deleting the task deletes them all.
pub fn callback_secret(task: &Task, launch: u32, secret: &str) -> Secret {
    let mut labels = task_labels(task);
    labels.insert(labels::LAUNCH.to_owned(), launch.to_string());
    Secret {
        metadata: ObjectMeta {
            name: Some(task.identity().callback_secret_name(launch)),
            namespace: Some(task.key.namespace.clone()),
            labels: Some(labels),
            owner_references: Some(vec![owner_reference(task)]),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_owned()),
        string_data: Some(BTreeMap::from([(
            CALLBACK_TOKEN_KEY.to_owned(),
            esup_api::runner::callback_token(launch, secret),
        )])),
        ..Secret::default()
    }
}

/// The spec as the runner reads it from `--spec`.
fn spec_json(spec: &TaskSpec) -> String {
    let json = match spec {
        TaskSpec::Encoding(spec) => serde_json::to_string(spec),
        TaskSpec::Transcription(spec) => serde_json::to_string(spec),
    };
    // These types have string keys and infallible field serializers, so this cannot fail;
    // if it ever did, an empty spec makes the runner exit 64 (invalid input) and the task
    // fails visibly instead of the operator panicking.
    json.unwrap_or_default()
}

/// `activeDeadlineSeconds`: rounded up, so the runner never gets less than its timeout, and
/// at least 1, the API's minimum.
fn deadline_seconds(execution: kube::core::Duration) -> i64 {
    let d: std::time::Duration = execution.into();
    let secs = d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0));
    i64::try_from(secs).unwrap_or(i64::MAX).max(1)
}

fn plain_env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.into()),
        value_from: None,
    }
}

fn runner_env(launch: &Launch<'_>, config: &RunnerConfig) -> Vec<EnvVar> {
    let task = launch.task;
    vec![
        plain_env(env::TASK_KIND, task.key.kind.kind_name()),
        plain_env(env::TASK_NAMESPACE, task.key.namespace.clone()),
        plain_env(env::TASK_NAME, task.key.name.clone()),
        plain_env(env::TASK_UID, task.uid.clone()),
        plain_env(env::LAUNCH, launch.launch.to_string()),
        plain_env(env::POOL, launch.pool.name.clone()),
        plain_env(
            env::CALLBACK_URL,
            TaskCallbacks::new(
                &config.callback_base_url,
                task.key.kind,
                &task.key.namespace,
                &task.key.name,
            )
            .base(),
        ),
        EnvVar {
            name: env::CALLBACK_TOKEN.to_owned(),
            value: None,
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: task.identity().callback_secret_name(launch.launch),
                    key: CALLBACK_TOKEN_KEY.to_owned(),
                    optional: None,
                }),
                ..EnvVarSource::default()
            }),
        },
    ]
    .into_iter()
    .chain(
        config
            .url_policy
            .to_env()
            .into_iter()
            .map(|(name, value)| plain_env(name, value)),
    )
    .collect()
}

/// The pool's resources plus its GPUs. Extended resources cannot be overcommitted, so they
/// go in limits, and in requests too when requests are set (the two must then be equal).
fn resources(pool: &Pool) -> Option<ResourceRequirements> {
    let mut resources = pool.spec.resources.clone();
    if let Some((name, count)) = pool.gpu_request() {
        let resources = resources.get_or_insert_with(ResourceRequirements::default);
        let quantity = Quantity(count.to_string());
        if let Some(requests) = resources.requests.as_mut() {
            requests.insert(name.to_owned(), quantity.clone());
        }
        resources
            .limits
            .get_or_insert_with(BTreeMap::new)
            .insert(name.to_owned(), quantity);
    }
    resources
}

fn requirement(key: &str, operator: &str, values: &[String]) -> NodeSelectorRequirement {
    NodeSelectorRequirement {
        key: key.to_owned(),
        operator: operator.to_owned(),
        values: Some(values.to_vec()),
    }
}

/// The pool's affinity, narrowed to its GPU products, and steering away from failed nodes.
fn affinity(launch: &Launch<'_>) -> Option<Affinity> {
    let pool = launch.pool;
    let mut affinity = pool.spec.placement.affinity.clone().unwrap_or_default();
    let products = pool
        .spec
        .gpu
        .as_ref()
        .map(|gpu| gpu.products.as_slice())
        .unwrap_or_default();
    if !products.is_empty() {
        // Terms are ORed: the product must be required in each, or one term without it
        // would let the pod onto another GPU model.
        let product = requirement(labels::GPU_PRODUCT, "In", products);
        let node = affinity
            .node_affinity
            .get_or_insert_with(NodeAffinity::default);
        let required = node
            .required_during_scheduling_ignored_during_execution
            .get_or_insert_with(NodeSelector::default);
        if required.node_selector_terms.is_empty() {
            required
                .node_selector_terms
                .push(NodeSelectorTerm::default());
        }
        for term in &mut required.node_selector_terms {
            let expressions = term.match_expressions.get_or_insert_with(Vec::new);
            if !expressions.contains(&product) {
                expressions.push(product.clone());
            }
        }
    }
    if !launch.avoid_nodes.is_empty() {
        // Preferred only: on a single-node pool the retry must still be able to run.
        let node = affinity
            .node_affinity
            .get_or_insert_with(NodeAffinity::default);
        node.preferred_during_scheduling_ignored_during_execution
            .get_or_insert_with(Vec::new)
            .push(PreferredSchedulingTerm {
                weight: 100,
                preference: NodeSelectorTerm {
                    match_expressions: Some(vec![requirement(
                        labels::HOSTNAME,
                        "NotIn",
                        launch.avoid_nodes,
                    )]),
                    match_fields: None,
                },
            });
    }
    (affinity != Affinity::default()).then_some(affinity)
}

fn runner_container(launch: &Launch<'_>, config: &RunnerConfig) -> Container {
    let task = launch.task;
    let image = launch
        .pool
        .spec
        .image
        .clone()
        .unwrap_or_else(|| config.default_image.clone());
    Container {
        name: CONTAINER_NAME.to_owned(),
        image: Some(image),
        image_pull_policy: Some(config.image_pull_policy.clone()),
        // The runner's last log lines become the failure message when it writes none.
        termination_message_policy: Some("FallbackToLogsOnError".to_owned()),
        args: Some(
            RunnerArgs {
                task_type: task.task_type(),
                source: task.spec.source_url().to_owned(),
                spec_json: spec_json(&task.spec),
                out: format!("{SCRATCH_PATH}/out"),
                work: format!("{SCRATCH_PATH}/work"),
            }
            .to_args(),
        ),
        env: Some(runner_env(launch, config)),
        resources: resources(launch.pool),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                add: None,
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(volume_mounts(launch, config)),
        ..Container::default()
    }
}

fn mounts_models(launch: &Launch<'_>, config: &RunnerConfig) -> bool {
    config.models_claim.is_some() && launch.task.task_type() == TaskType::Transcription
}

fn volume_mounts(launch: &Launch<'_>, config: &RunnerConfig) -> Vec<VolumeMount> {
    let mut mounts = vec![
        VolumeMount {
            name: SCRATCH_VOLUME.to_owned(),
            mount_path: SCRATCH_PATH.to_owned(),
            ..VolumeMount::default()
        },
        VolumeMount {
            name: TMP_VOLUME.to_owned(),
            mount_path: TMP_PATH.to_owned(),
            ..VolumeMount::default()
        },
    ];
    if mounts_models(launch, config) {
        mounts.push(VolumeMount {
            name: MODELS_VOLUME.to_owned(),
            mount_path: MODELS_PATH.to_owned(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }
    mounts
}

fn volumes(launch: &Launch<'_>, config: &RunnerConfig) -> Vec<Volume> {
    let mut volumes = vec![
        empty_dir(SCRATCH_VOLUME, launch.pool.spec.scratch_size.clone()),
        empty_dir(TMP_VOLUME, Quantity(TMP_SIZE.to_owned())),
    ];
    if let Some(claim) = config
        .models_claim
        .as_ref()
        .filter(|_| mounts_models(launch, config))
    {
        volumes.push(Volume {
            name: MODELS_VOLUME.to_owned(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.clone(),
                read_only: Some(true),
            }),
            ..Volume::default()
        });
    }
    volumes
}

fn empty_dir(name: &str, size: Quantity) -> Volume {
    Volume {
        name: name.to_owned(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: None,
            size_limit: Some(size),
        }),
        ..Volume::default()
    }
}

/// The Job of one attempt.
pub fn build_job(launch: &Launch<'_>, config: &RunnerConfig) -> Job {
    let task = launch.task;
    let placement = &launch.pool.spec.placement;
    let labels = job_labels(launch);
    let pod = PodSpec {
        containers: vec![runner_container(launch, config)],
        restart_policy: Some("Never".to_owned()),
        // The runner talks to the webhook only, with its own token.
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        termination_grace_period_seconds: Some(TERMINATION_GRACE_SECONDS),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(RUNNER_ID),
            run_as_group: Some(RUNNER_ID),
            fs_group: Some(RUNNER_ID),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_owned(),
                localhost_profile: None,
            }),
            ..PodSecurityContext::default()
        }),
        node_selector: (!placement.node_selector.is_empty())
            .then(|| placement.node_selector.clone()),
        tolerations: (!placement.tolerations.is_empty()).then(|| placement.tolerations.clone()),
        affinity: affinity(launch),
        runtime_class_name: launch.pool.spec.runtime_class_name.clone(),
        priority_class_name: placement.priority_class_name.clone(),
        volumes: Some(volumes(launch, config)),
        service_account_name: config.service_account.clone(),
        ..PodSpec::default()
    };
    Job {
        metadata: ObjectMeta {
            name: Some(task.identity().job_name(launch.launch)),
            namespace: Some(task.key.namespace.clone()),
            labels: Some(labels.clone()),
            owner_references: Some(vec![owner_reference(task)]),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            // The operator retries itself, after classifying the failure.
            backoff_limit: Some(0),
            active_deadline_seconds: Some(deadline_seconds(task.common().timeouts.execution)),
            ttl_seconds_after_finished: Some(config.job_ttl_seconds),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..JobSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {

    use esup_api::encoding::SourceKind;
    use esup_api::{EncodingTask, RunnerPool, TranscriptionTask};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    const ENCODING: &str = include_str!("../../api/tests/fixtures/encodingtask-full.yaml");
    const TRANSCRIPTION: &str =
        include_str!("../../api/tests/fixtures/transcriptiontask-full.yaml");
    const POOL: &str = include_str!("../../api/tests/fixtures/runnerpool-full.yaml");
    const UID: &str = "0b7e2f4c-5a1d-4c3e-9f00-1234567890ab";

    fn meta_for_test(meta: &mut ObjectMeta, name: Option<&str>, uid: &str) {
        meta.namespace = Some("pod-univ-x".to_owned());
        meta.uid = Some(uid.to_owned());
        meta.creation_timestamp = Some(Time("2025-03-01T10:00:00Z".parse().unwrap()));
        if let Some(name) = name {
            meta.name = Some(name.to_owned());
        }
    }

    /// The full encoding fixture (a studio task), optionally renamed.
    fn encoding_task(name: Option<&str>, uid: &str) -> Task {
        let mut task: EncodingTask = serde_yaml::from_str(ENCODING).unwrap();
        meta_for_test(&mut task.metadata, name, uid);
        Task::from_resource(&task).unwrap()
    }

    fn media_encoding_task() -> Task {
        let mut task: EncodingTask = serde_yaml::from_str(ENCODING).unwrap();
        meta_for_test(&mut task.metadata, None, UID);
        task.spec.source.kind = SourceKind::Media;
        task.spec.studio = None;
        Task::from_resource(&task).unwrap()
    }

    fn transcription_task() -> Task {
        let mut task: TranscriptionTask = serde_yaml::from_str(TRANSCRIPTION).unwrap();
        meta_for_test(&mut task.metadata, None, UID);
        Task::from_resource(&task).unwrap()
    }

    /// The full pool fixture: an L4 GPU pool.
    fn gpu_pool() -> Pool {
        let pool: RunnerPool = serde_yaml::from_str(POOL).unwrap();
        Pool::from_object(&pool).unwrap()
    }

    fn cpu_pool() -> Pool {
        let mut pool = gpu_pool();
        pool.name = "cpu".to_owned();
        pool.spec.gpu = None;
        pool.spec.placement = Default::default();
        pool.spec.image = None;
        pool.spec.runtime_class_name = None;
        pool
    }

    fn config() -> RunnerConfig {
        RunnerConfig {
            default_image: "ghcr.io/esupportail/esup-runner:1.0".to_owned(),
            image_pull_policy: "IfNotPresent".to_owned(),
            callback_base_url: "http://esup-webhook.esup-system.svc:8080/".to_owned(),
            job_ttl_seconds: 3600,
            service_account: Some("esup-runner".to_owned()),
            models_claim: Some("esup-models".to_owned()),
            url_policy: esup_api::url_policy::UrlPolicy::default(),
        }
    }

    fn build(task: &Task, pool: &Pool, launch: u32, avoid: &[String]) -> Job {
        build_job(
            &Launch {
                task,
                pool,
                launch,
                avoid_nodes: avoid,
            },
            &config(),
        )
    }

    fn pod_spec(job: &Job) -> &PodSpec {
        job.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
    }

    fn container(job: &Job) -> &Container {
        &pod_spec(job).containers[0]
    }

    fn env_value<'a>(job: &'a Job, name: &str) -> &'a EnvVar {
        container(job)
            .env
            .as_ref()
            .unwrap()
            .iter()
            .find(|e| e.name == name)
            .unwrap()
    }

    fn node_affinity(job: &Job) -> Option<&NodeAffinity> {
        pod_spec(job)
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref())
    }

    fn q(s: &str) -> Quantity {
        Quantity(s.to_owned())
    }

    #[test]
    fn resources_of_cpu_and_gpu_pools() {
        let task = media_encoding_task();
        struct Case {
            pool: Pool,
            requests: Option<Vec<(&'static str, &'static str)>>,
            limits: Option<Vec<(&'static str, &'static str)>>,
        }
        let mut gpu_no_requests = gpu_pool();
        gpu_no_requests.spec.resources = Some(ResourceRequirements {
            limits: Some(BTreeMap::from([("memory".to_owned(), q("8Gi"))])),
            ..Default::default()
        });
        let mut gpu_no_resources = gpu_pool();
        gpu_no_resources.spec.resources = None;
        if let Some(gpu) = gpu_no_resources.spec.gpu.as_mut() {
            gpu.count_per_task = 2;
        }
        let cases = [
            Case {
                pool: cpu_pool(),
                requests: Some(vec![("cpu", "2"), ("memory", "4Gi")]),
                limits: Some(vec![("memory", "8Gi")]),
            },
            Case {
                pool: gpu_pool(),
                requests: Some(vec![
                    ("cpu", "2"),
                    ("memory", "4Gi"),
                    ("nvidia.com/gpu", "1"),
                ]),
                limits: Some(vec![("memory", "8Gi"), ("nvidia.com/gpu", "1")]),
            },
            Case {
                pool: gpu_no_requests,
                requests: None,
                limits: Some(vec![("memory", "8Gi"), ("nvidia.com/gpu", "1")]),
            },
            Case {
                pool: gpu_no_resources,
                requests: None,
                limits: Some(vec![("nvidia.com/gpu", "2")]),
            },
        ];
        let to_map = |v: Option<Vec<(&str, &str)>>| {
            v.map(|v| {
                v.into_iter()
                    .map(|(k, v)| (k.to_owned(), q(v)))
                    .collect::<BTreeMap<_, _>>()
            })
        };
        for case in cases {
            let job = build(&task, &case.pool, 1, &[]);
            let resources = container(&job).resources.clone().unwrap();
            assert_eq!(
                resources.requests,
                to_map(case.requests),
                "{}",
                case.pool.name
            );
            assert_eq!(resources.limits, to_map(case.limits), "{}", case.pool.name);
        }
    }

    fn term(exprs: &[(&str, &str, &[&str])]) -> NodeSelectorTerm {
        NodeSelectorTerm {
            match_expressions: Some(
                exprs
                    .iter()
                    .map(|(key, op, values)| NodeSelectorRequirement {
                        key: (*key).to_owned(),
                        operator: (*op).to_owned(),
                        values: Some(values.iter().map(|v| (*v).to_owned()).collect()),
                    })
                    .collect(),
            ),
            match_fields: None,
        }
    }

    #[test]
    fn gpu_products_are_required_in_every_term() {
        let task = media_encoding_task();
        let products: &[&str] = &["NVIDIA-L4"];
        let zone = ("topology.kubernetes.io/zone", "In", &["a"] as &[&str]);
        let arch = ("kubernetes.io/arch", "In", &["amd64"] as &[&str]);
        let product = (labels::GPU_PRODUCT, "In", products);
        let required = |terms: Vec<NodeSelectorTerm>| Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: terms,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        // (pool affinity, expected required terms)
        let cases = [
            (None, vec![term(&[product])]),
            (Some(required(vec![])), vec![term(&[product])]),
            (
                Some(required(vec![term(&[zone]), term(&[arch])])),
                vec![term(&[zone, product]), term(&[arch, product])],
            ),
            // Already required: not repeated.
            (
                Some(required(vec![term(&[product])])),
                vec![term(&[product])],
            ),
            (
                Some(Affinity {
                    node_affinity: Some(NodeAffinity {
                        preferred_during_scheduling_ignored_during_execution: Some(vec![]),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                vec![term(&[product])],
            ),
        ];
        for (i, (pool_affinity, expected)) in cases.into_iter().enumerate() {
            let mut pool = gpu_pool();
            pool.spec.placement.affinity = pool_affinity;
            let job = build(&task, &pool, 1, &[]);
            let terms = &node_affinity(&job)
                .unwrap()
                .required_during_scheduling_ignored_during_execution
                .as_ref()
                .unwrap()
                .node_selector_terms;
            assert_eq!(terms, &expected, "case {i}");
        }

        // No products: the pool's affinity is kept as is, and none is made up.
        let mut pool = gpu_pool();
        if let Some(gpu) = pool.spec.gpu.as_mut() {
            gpu.products.clear();
        }
        let kept = pool.spec.placement.affinity.clone();
        assert_eq!(pod_spec(&build(&task, &pool, 1, &[])).affinity, kept);
        assert_eq!(pod_spec(&build(&task, &cpu_pool(), 1, &[])).affinity, None);
    }

    #[test]
    fn avoided_nodes_are_preferred_against_not_required() {
        let task = media_encoding_task();
        let avoid = vec!["node-a".to_owned(), "node-b".to_owned()];
        for pool in [cpu_pool(), gpu_pool()] {
            let job = build(&task, &pool, 2, &avoid);
            let node = node_affinity(&job).unwrap();
            assert_eq!(
                node.preferred_during_scheduling_ignored_during_execution,
                Some(vec![PreferredSchedulingTerm {
                    weight: 100,
                    preference: term(&[(labels::HOSTNAME, "NotIn", &["node-a", "node-b"])]),
                }])
            );
            let required = node
                .required_during_scheduling_ignored_during_execution
                .iter()
                .flat_map(|r| &r.node_selector_terms)
                .flat_map(|t| t.match_expressions.iter().flatten())
                .any(|e| e.key == labels::HOSTNAME);
            assert!(!required, "{}", pool.name);
        }
    }

    #[test]
    fn image_from_pool_or_default() {
        let task = media_encoding_task();
        let cases = [
            (gpu_pool(), "esup.local/esup-runner:dev"),
            (cpu_pool(), "ghcr.io/esupportail/esup-runner:1.0"),
        ];
        for (pool, image) in cases {
            let job = build(&task, &pool, 1, &[]);
            let container = container(&job);
            assert_eq!(container.image.as_deref(), Some(image));
            assert_eq!(container.image_pull_policy.as_deref(), Some("IfNotPresent"));
            assert_eq!(container.command, None);
        }
    }

    #[test]
    fn execution_deadline_in_whole_seconds() {
        let cases = [
            ("2h0m0s", 7200),
            ("90s", 90),
            ("1.5s", 2),
            ("500ms", 1),
            ("0s", 1),
        ];
        for (timeout, seconds) in cases {
            let mut task = media_encoding_task();
            let TaskSpec::Encoding(spec) = &mut task.spec else {
                unreachable!()
            };
            spec.common.timeouts.execution = timeout.parse().unwrap();
            let job = build(&task, &cpu_pool(), 1, &[]);
            let spec = job.spec.unwrap();
            assert_eq!(spec.active_deadline_seconds, Some(seconds), "{timeout}");
            assert_eq!(spec.backoff_limit, Some(0));
            assert_eq!(spec.ttl_seconds_after_finished, Some(3600));
            assert_eq!(
                spec.template.spec.unwrap().restart_policy.as_deref(),
                Some("Never")
            );
        }
        // The fixture's own 2h.
        let job = build(&media_encoding_task(), &cpu_pool(), 1, &[]);
        assert_eq!(job.spec.unwrap().active_deadline_seconds, Some(7200));
    }

    #[test]
    fn labels_on_job_and_pod() {
        let task = media_encoding_task();
        let job = build(&task, &gpu_pool(), 3, &[]);
        let expected = BTreeMap::from(
            [
                (labels::MANAGED_BY, "esup-operator"),
                (labels::NAME, "esup-runner"),
                (labels::TASK_UID, UID),
                (labels::TASK_KIND, "EncodingTask"),
                (labels::POOL, "local-l4"),
                (labels::LAUNCH, "3"),
                (labels::TENANT, "univ-x"),
                (labels::TASK_NAME, "2f53b18a-1c09-4cdb-b31d-6a68f3e6a761"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        assert_eq!(job.metadata.labels.as_ref(), Some(&expected));
        let template = &job.spec.as_ref().unwrap().template;
        assert_eq!(
            template.metadata.as_ref().unwrap().labels.as_ref(),
            Some(&expected)
        );
        assert_eq!(
            job.metadata.name.as_deref(),
            Some(task.identity().job_name(3).as_str())
        );
        assert_eq!(job.metadata.namespace.as_deref(), Some("pod-univ-x"));
        assert_eq!(env_value(&job, env::LAUNCH).value.as_deref(), Some("3"));

        // A name too long for a label value is left out, not truncated.
        let task = encoding_task(Some(&"a".repeat(64)), UID);
        let job = build(&task, &gpu_pool(), 1, &[]);
        let labels = job.metadata.labels.unwrap();
        assert!(!labels.contains_key(labels::TASK_NAME));
        assert_eq!(labels.get(labels::TASK_UID).map(String::as_str), Some(UID));
    }

    #[test]
    fn pod_runs_restricted_without_api_access() {
        let job = build(&media_encoding_task(), &gpu_pool(), 1, &[]);
        let pod = pod_spec(&job);
        assert_eq!(pod.automount_service_account_token, Some(false));
        assert_eq!(pod.enable_service_links, Some(false));
        assert_eq!(pod.service_account_name.as_deref(), Some("esup-runner"));
        assert_eq!(pod.termination_grace_period_seconds, Some(30));
        let psc = pod.security_context.as_ref().unwrap();
        assert_eq!(psc.run_as_non_root, Some(true));
        assert_eq!(psc.run_as_user, Some(65532));
        assert_eq!(psc.run_as_group, Some(65532));
        assert_eq!(psc.fs_group, Some(65532));
        assert_eq!(
            psc.seccomp_profile.as_ref().map(|p| p.type_.as_str()),
            Some("RuntimeDefault")
        );
        let container = container(&job);
        assert_eq!(container.name, "runner");
        assert_eq!(
            container.termination_message_policy.as_deref(),
            Some("FallbackToLogsOnError")
        );
        let csc = container.security_context.as_ref().unwrap();
        assert_eq!(csc.allow_privilege_escalation, Some(false));
        assert_eq!(csc.read_only_root_filesystem, Some(true));
        assert_eq!(csc.run_as_non_root, Some(true));
        assert_eq!(
            csc.capabilities.as_ref().and_then(|c| c.drop.clone()),
            Some(vec!["ALL".to_owned()])
        );
    }

    #[test]
    fn models_only_in_transcription_pods_and_read_only() {
        let transcription = build(&transcription_task(), &cpu_pool(), 1, &[]);
        let pod = pod_spec(&transcription);
        assert_eq!(pod.service_account_name.as_deref(), Some("esup-runner"));
        let models = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == "models")
            .and_then(|v| v.persistent_volume_claim.clone())
            .unwrap();
        assert_eq!(models.claim_name, "esup-models");
        assert_eq!(models.read_only, Some(true));
        let mount = container(&transcription)
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.name == "models")
            .cloned()
            .unwrap();
        assert_eq!(
            (mount.mount_path.as_str(), mount.read_only),
            (MODELS_PATH, Some(true))
        );

        let encoding = build(&media_encoding_task(), &cpu_pool(), 1, &[]);
        let pod = pod_spec(&encoding);
        assert!(pod.volumes.iter().flatten().all(|v| v.name != "models"));
        assert!(
            container(&encoding)
                .volume_mounts
                .iter()
                .flatten()
                .all(|m| m.name != "models")
        );
    }

    #[test]
    fn placement_and_volumes() {
        let job = build(&media_encoding_task(), &gpu_pool(), 1, &[]);
        let pod = pod_spec(&job);
        assert_eq!(
            pod.node_selector,
            Some(BTreeMap::from([(
                "nvidia.com/gpu.present".to_owned(),
                "true".to_owned()
            )]))
        );
        assert_eq!(pod.tolerations.as_ref().map(Vec::len), Some(1));
        assert_eq!(pod.runtime_class_name.as_deref(), Some("nvidia"));
        assert_eq!(pod.priority_class_name.as_deref(), Some("esup-lectures"));
        let volumes: Vec<_> = pod
            .volumes
            .iter()
            .flatten()
            .map(|v| {
                let dir = v.empty_dir.as_ref().unwrap();
                (v.name.as_str(), dir.size_limit.clone().unwrap().0)
            })
            .collect();
        assert_eq!(
            volumes,
            [("scratch", "50Gi".to_owned()), ("tmp", "1Gi".to_owned())]
        );
        let mounts: Vec<_> = container(&job)
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| (m.name.as_str(), m.mount_path.as_str()))
            .collect();
        assert_eq!(mounts, [("scratch", "/scratch"), ("tmp", "/tmp")]);

        let cpu = build(&media_encoding_task(), &cpu_pool(), 1, &[]);
        let pod = pod_spec(&cpu);
        assert_eq!(pod.node_selector, None);
        assert_eq!(pod.tolerations, None);
        assert_eq!(pod.runtime_class_name, None);
        assert_eq!(
            pod.priority_class_name, None,
            "the cluster's default priority"
        );
    }

    #[test]
    fn runner_env_carries_the_url_policy() {
        let task = media_encoding_task();
        let none = build(&task, &cpu_pool(), 1, &[]);
        let names: Vec<&str> = container(&none)
            .env
            .iter()
            .flatten()
            .map(|e| e.name.as_str())
            .collect();
        assert!(
            !names
                .iter()
                .any(|n| n.starts_with("ESUP_ALLOWED") || n.starts_with("ESUP_PRIVATE")),
            "an empty policy sets nothing: {names:?}"
        );
        let config = RunnerConfig {
            url_policy: esup_api::url_policy::UrlPolicy {
                allowed_hosts: vec!["univ.fr".into(), "pod.example".into()],
                private_hosts: vec!["pod.pod.svc.cluster.local".into()],
                private_networks: vec![
                    "10.96.0.0/12".parse().unwrap(),
                    "10.244.0.1/32".parse().unwrap(),
                ],
            },
            ..config()
        };
        let job = build_job(
            &Launch {
                task: &task,
                pool: &cpu_pool(),
                launch: 1,
                avoid_nodes: &[],
            },
            &config,
        );
        for (name, value) in [
            ("ESUP_ALLOWED_HOSTS", "univ.fr,pod.example"),
            ("ESUP_PRIVATE_HOSTS", "pod.pod.svc.cluster.local"),
            ("ESUP_PRIVATE_NETWORKS", "10.96.0.0/12,10.244.0.1/32"),
        ] {
            assert_eq!(
                env_value(&job, name).value.as_deref(),
                Some(value),
                "{name}"
            );
        }
    }

    #[test]
    fn callback_env_and_secret() {
        let task = transcription_task();
        let job = build(&task, &cpu_pool(), 2, &[]);
        let ns = "pod-univ-x";
        let name = "9a1c5e2e-0d7b-4f0e-9d43-0f6f7b2a1c11";
        assert_eq!(
            env_value(&job, env::CALLBACK_URL).value.as_deref(),
            Some(
                format!("http://esup-webhook.esup-system.svc:8080/runner/v1/transcriptiontasks/{ns}/{name}")
                    .as_str()
            )
        );
        let token = env_value(&job, env::CALLBACK_TOKEN);
        assert_eq!(token.value, None);
        let selector = token
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
            .unwrap();
        // Each launch reads its own Secret.
        assert_eq!(selector.name, task.identity().callback_secret_name(2));
        assert_ne!(
            task.identity().callback_secret_name(1),
            task.identity().callback_secret_name(2)
        );
        assert_eq!(selector.key, "token");
        for (var, value) in [
            (env::TASK_KIND, "TranscriptionTask"),
            (env::TASK_NAMESPACE, ns),
            (env::TASK_NAME, name),
            (env::TASK_UID, UID),
            (env::LAUNCH, "2"),
            (env::POOL, "cpu"),
        ] {
            assert_eq!(env_value(&job, var).value.as_deref(), Some(value), "{var}");
        }

        let secret = callback_secret(&task, 2, "s3cr3t");
        assert_eq!(
            secret.metadata.name,
            Some(task.identity().callback_secret_name(2))
        );
        assert_eq!(secret.metadata.namespace.as_deref(), Some(ns));
        assert_eq!(secret.type_.as_deref(), Some("Opaque"));
        assert_eq!(
            secret.string_data,
            Some(BTreeMap::from([(
                "token".to_owned(),
                "2.s3cr3t".to_owned()
            )]))
        );
        assert_eq!(
            secret.metadata.owner_references,
            Some(vec![owner_reference(&task)])
        );
        let labels = secret.metadata.labels.unwrap();
        assert_eq!(labels.get(labels::TASK_UID).map(String::as_str), Some(UID));
        assert_eq!(labels.get(labels::LAUNCH).map(String::as_str), Some("2"));
    }

    #[test]
    fn owner_references_point_at_the_task() {
        let cases = [
            (media_encoding_task(), "EncodingTask"),
            (transcription_task(), "TranscriptionTask"),
        ];
        for (task, kind) in cases {
            let expected = OwnerReference {
                api_version: "runner.esup-portail.org/v1alpha1".to_owned(),
                kind: kind.to_owned(),
                name: task.key.name.clone(),
                uid: UID.to_owned(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            };
            assert_eq!(owner_reference(&task), expected);
            let job = build(&task, &cpu_pool(), 1, &[]);
            assert_eq!(job.metadata.owner_references, Some(vec![expected]));
        }
    }

    #[test]
    fn args_carry_subcommand_source_and_spec() {
        let cases = [
            (media_encoding_task(), "encode"),
            (encoding_task(None, UID), "studio"),
            (transcription_task(), "transcribe"),
        ];
        for (task, subcommand) in cases {
            let job = build(&task, &cpu_pool(), 1, &[]);
            let args = container(&job).args.clone().unwrap();
            assert_eq!(args.len(), 9);
            assert_eq!(args[0], subcommand);
            assert_eq!(
                &args[1..3],
                ["--source".to_owned(), task.spec.source_url().to_owned()]
            );
            assert_eq!(args[3], "--spec");
            assert!(!args[4].contains('\n'), "compact JSON");
            let parsed = match &task.spec {
                TaskSpec::Encoding(_) => {
                    TaskSpec::Encoding(serde_json::from_str(&args[4]).unwrap())
                }
                TaskSpec::Transcription(_) => {
                    TaskSpec::Transcription(serde_json::from_str(&args[4]).unwrap())
                }
            };
            assert_eq!(parsed, task.spec);
            assert_eq!(
                &args[5..],
                ["--out", "/scratch/out", "--work", "/scratch/work"]
            );
        }
    }
}
