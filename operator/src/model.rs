//! The operator's compact, kind-agnostic view of the cluster: tasks, pools, nodes, Jobs and
//! pods as the scheduler needs them. Built from API objects by pure conversions, so that the
//! scheduling core and the Job builder are tested on plain values, and so that ten thousand
//! queued tasks cost kilobytes each, not the size of their full objects.

use std::collections::BTreeMap;

use esup_api::labels;
use esup_api::task::{TaskIdentity, TaskKey, TaskKind, TaskResource, TaskSpec};
use esup_api::{RunnerPool, RunnerPoolSpec, RunnerPoolStatus, TaskCommon, TaskStatus, TaskType};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

/// A task as the scheduler sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    pub key: TaskKey,
    pub uid: String,
    pub generation: Option<i64>,
    pub resource_version: Option<String>,
    pub created: Timestamp,
    /// Set once the task is being deleted: nothing new is launched for it.
    pub deleting: bool,
    /// Someone asked to cancel it (`esup_api::labels::STOP_ANNOTATION`, Esup-Pod's `/task/stop`).
    pub cancel_requested: bool,
    /// Accepted with invalid parameters: the message it fails with
    /// (`esup_api::labels::INVALID_PARAMETERS_ANNOTATION`).
    pub invalid_parameters: Option<String>,
    pub spec: TaskSpec,
    pub status: TaskStatus,
}

impl Task {
    /// What the names of its Jobs and callback Secrets derive from.
    pub fn identity(&self) -> TaskIdentity<'_> {
        TaskIdentity {
            kind: self.key.kind,
            name: &self.key.name,
            uid: &self.uid,
        }
    }

    pub fn common(&self) -> &TaskCommon {
        self.spec.common()
    }

    pub fn tenant(&self) -> &str {
        &self.common().requester.tenant
    }

    pub fn task_type(&self) -> TaskType {
        self.spec.task_type()
    }

    /// Media seconds this task processes, best known: the runner's probe, then the request.
    pub fn media_seconds(&self) -> Option<f64> {
        self.status
            .progress
            .as_ref()
            .and_then(|p| p.media_duration_seconds)
            .or_else(|| self.spec.declared_media_seconds())
    }

    /// The scheduler's view of a task of either kind.
    pub fn from_resource<K: TaskResource>(task: &K) -> Option<Self> {
        Self::build(K::KIND, task, task.task_spec(), task.task_status().cloned())
    }

    fn build<K: ResourceExt>(
        kind: TaskKind,
        object: &K,
        spec: TaskSpec,
        status: Option<TaskStatus>,
    ) -> Option<Self> {
        let meta = object.meta();
        Some(Self {
            key: TaskKey {
                kind,
                namespace: meta.namespace.clone()?,
                name: meta.name.clone()?,
            },
            uid: meta.uid.clone()?,
            generation: meta.generation,
            resource_version: meta.resource_version.clone(),
            created: meta
                .creation_timestamp
                .as_ref()
                .map_or(Timestamp::UNIX_EPOCH, |t| t.0),
            deleting: meta.deletion_timestamp.is_some(),
            cancel_requested: meta
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(esup_api::labels::STOP_ANNOTATION)),
            invalid_parameters: meta
                .annotations
                .as_ref()
                .and_then(|a| a.get(esup_api::labels::INVALID_PARAMETERS_ANNOTATION))
                .cloned(),
            spec,
            status: status.unwrap_or_default(),
        })
    }
}

/// A RunnerPool.
#[derive(Clone, Debug, PartialEq)]
pub struct Pool {
    pub name: String,
    pub uid: Option<String>,
    pub generation: Option<i64>,
    pub spec: RunnerPoolSpec,
    /// Its last written status: condition transition times and measured throughput.
    pub status: RunnerPoolStatus,
}

impl Pool {
    pub fn from_object(pool: &RunnerPool) -> Option<Self> {
        Some(Self {
            name: pool.metadata.name.clone()?,
            uid: pool.metadata.uid.clone(),
            generation: pool.metadata.generation,
            spec: pool.spec.clone(),
            status: pool.status.clone().unwrap_or_default(),
        })
    }

    /// Extended resource and count each task of this pool requests; None for CPU pools.
    pub fn gpu_request(&self) -> Option<(&str, u32)> {
        self.spec
            .gpu
            .as_ref()
            .map(|gpu| (gpu.resource_name.as_str(), gpu.count_per_task))
    }
}

/// A pool named `name` with the spec written in `yaml`, for tests.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub fn test_pool(name: &str, yaml: &str) -> Pool {
    Pool {
        name: name.to_owned(),
        uid: None,
        generation: None,
        spec: serde_yaml::from_str::<RunnerPoolSpec>(yaml).unwrap(),
        status: RunnerPoolStatus::default(),
    }
}

/// A node, reduced to what capacity and placement need.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeInfo {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Allocatable extended resources by name (e.g. "nvidia.com/gpu" → 2).
    pub allocatable: BTreeMap<String, u64>,
    /// Ready and schedulable.
    pub usable: bool,
}

impl NodeInfo {
    pub fn from_object(node: &Node) -> Option<Self> {
        let name = node.metadata.name.clone()?;
        let status = node.status.as_ref();
        let allocatable = status
            .and_then(|s| s.allocatable.as_ref())
            .map(|resources| {
                resources
                    .iter()
                    .filter(|(key, _)| key.contains('/'))
                    .filter_map(|(key, q)| Some((key.clone(), q.0.parse::<u64>().ok()?)))
                    .collect()
            })
            .unwrap_or_default();
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let unschedulable = node
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false);
        Some(Self {
            name,
            labels: node.labels().clone(),
            allocatable,
            usable: ready && !unschedulable,
        })
    }
}

/// A condition of a Job, as far as classification needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobCondition {
    pub type_: String,
    pub status: bool,
    pub reason: Option<String>,
    pub message: Option<String>,
}

/// A Job the operator launched.
#[derive(Clone, Debug, PartialEq)]
pub struct JobInfo {
    pub namespace: String,
    pub name: String,
    pub task_uid: String,
    pub active: i32,
    pub succeeded: i32,
    pub failed: i32,
    pub conditions: Vec<JobCondition>,
    pub deleting: bool,
}

impl JobInfo {
    pub fn from_object(job: &Job) -> Option<Self> {
        let status = job.status.clone().unwrap_or_default();
        Some(Self {
            namespace: job.metadata.namespace.clone()?,
            name: job.metadata.name.clone()?,
            task_uid: job.labels().get(labels::TASK_UID)?.clone(),
            active: status.active.unwrap_or(0),
            succeeded: status.succeeded.unwrap_or(0),
            failed: status.failed.unwrap_or(0),
            conditions: status
                .conditions
                .unwrap_or_default()
                .into_iter()
                .map(|c| JobCondition {
                    status: c.status == "True",
                    type_: c.type_,
                    reason: c.reason,
                    message: c.message,
                })
                .collect(),
            deleting: job.metadata.deletion_timestamp.is_some(),
        })
    }

    /// `Complete` or `Failed`: the Job controller is done with it.
    pub fn finished(&self) -> Option<&JobCondition> {
        self.conditions
            .iter()
            .find(|c| c.status && (c.type_ == "Complete" || c.type_ == "Failed"))
    }
}

/// How the runner container ended or why it has not started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerInfo {
    /// Terminated: exit code, reason (OOMKilled, Error, Completed, ContainerCannotRun...), message.
    pub exit_code: Option<i32>,
    pub terminated_reason: Option<String>,
    pub terminated_message: Option<String>,
    /// Waiting: reason (ErrImagePull, ImagePullBackOff, CreateContainerConfigError...), message.
    pub waiting_reason: Option<String>,
    pub waiting_message: Option<String>,
    pub running: bool,
}

/// Name of the container that runs the task in every runner pod.
pub const RUNNER_CONTAINER: &str = "runner";

/// A runner pod.
#[derive(Clone, Debug, PartialEq)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub job_name: String,
    pub task_uid: String,
    pub node_name: Option<String>,
    /// Pending, Running, Succeeded, Failed, Unknown.
    pub phase: String,
    /// Pod-level reason, e.g. "Evicted", "NodeLost", "Shutdown", "DeadlineExceeded".
    pub reason: Option<String>,
    pub message: Option<String>,
    /// Reason of a true `DisruptionTarget` condition (EvictionByEvictionAPI,
    /// PreemptionByScheduler, DeletionByTaintManager, TerminationByKubelet...).
    pub disruption: Option<String>,
    /// The `runner` container's state (never a sidecar's: a mesh may inject one first).
    pub container: ContainerInfo,
    pub started: Option<Timestamp>,
    pub deleting: bool,
}

impl PodInfo {
    pub fn from_object(pod: &Pod) -> Option<Self> {
        let labels = pod.labels();
        let status = pod.status.clone().unwrap_or_default();
        let disruption = status.conditions.as_ref().and_then(|conditions| {
            conditions
                .iter()
                .find(|c| c.type_ == "DisruptionTarget" && c.status == "True")
                .map(|c| c.reason.clone().unwrap_or_else(|| "Disrupted".to_owned()))
        });
        let runner = status
            .container_statuses
            .as_ref()
            .and_then(|statuses| statuses.iter().find(|cs| cs.name == RUNNER_CONTAINER));
        let container = runner
            .and_then(|cs| cs.state.as_ref())
            .map(|state| ContainerInfo {
                exit_code: state.terminated.as_ref().map(|t| t.exit_code),
                terminated_reason: state.terminated.as_ref().and_then(|t| t.reason.clone()),
                terminated_message: state.terminated.as_ref().and_then(|t| t.message.clone()),
                waiting_reason: state.waiting.as_ref().and_then(|w| w.reason.clone()),
                waiting_message: state.waiting.as_ref().and_then(|w| w.message.clone()),
                running: state.running.is_some(),
            })
            .unwrap_or_default();
        Some(Self {
            namespace: pod.metadata.namespace.clone()?,
            name: pod.metadata.name.clone()?,
            job_name: labels.get("job-name")?.clone(),
            task_uid: labels.get(labels::TASK_UID)?.clone(),
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            phase: status.phase.unwrap_or_else(|| "Pending".to_owned()),
            reason: status.reason,
            message: status.message,
            disruption,
            container,
            // When the runner started, not when the kubelet accepted the pod (image pulls).
            started: runner
                .and_then(|cs| {
                    let state = cs.state.as_ref()?;
                    let running = state.running.as_ref().and_then(|r| r.started_at.clone());
                    // Ended before a pass saw it running: its start is kept there.
                    running.or_else(|| state.terminated.as_ref()?.started_at.clone())
                })
                .or(status.start_time)
                .map(|t| t.0),
            deleting: pod.metadata.deletion_timestamp.is_some(),
        })
    }
}
