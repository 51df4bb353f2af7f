//! `RunnerPool`: a set of nodes (GPU or CPU) that runs tasks, with its capacity, tenants,
//! priority and overflow rules.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::core::Duration;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::common::{TaskType, minutes};

/// A pool of nodes that runs tasks as Jobs. Tasks go to the eligible pool of lowest
/// `priority` that has a free slot; a task that waits longer than its pool's `overflowAfter`
/// may also be admitted by the next pool (local GPUs, then shared GPUs, then CPU fallback).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "runner.esup-portail.org",
    version = "v1alpha1",
    kind = "RunnerPool",
    status = "RunnerPoolStatus",
    shortname = "rpool",
    category = "esup",
    derive = "PartialEq",
    doc = "A pool of nodes (GPU or CPU) that runs tasks as Jobs: capacity, tenants, priority, overflow.",
    printcolumn(name = "Priority", type_ = "integer", json_path = ".spec.priority"),
    printcolumn(name = "GPU", type_ = "string", json_path = ".spec.gpu.products"),
    printcolumn(name = "Slots", type_ = "integer", json_path = ".status.slots"),
    printcolumn(name = "Running", type_ = "integer", json_path = ".status.running"),
    printcolumn(name = "Queued", type_ = "integer", json_path = ".status.queued"),
    printcolumn(name = "Suspended", type_ = "boolean", json_path = ".spec.suspend"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Whether the pool admits tasks"
    ),
    printcolumn(
        name = "Nodes",
        type_ = "integer",
        json_path = ".status.nodes",
        priority = 1
    ),
    printcolumn(
        name = "GPUs",
        type_ = "integer",
        json_path = ".status.gpusAllocatable",
        priority = 1
    ),
    printcolumn(
        name = "Types",
        type_ = "string",
        json_path = ".spec.taskTypes",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!has(self.gpu) || self.gpu.nvenc || !self.taskTypes.exists(t, t == 'Encoding' || t == 'Studio')").message("a GPU pool without NVENC (H100, H200, A100) cannot run Encoding or Studio tasks: set gpu.nvenc only for GPUs that have it (L4, L40S, A10, T4) or drop those task types"))]
pub struct RunnerPoolSpec {
    /// Task types this pool runs.
    #[schemars(length(min = 1, max = 3))]
    #[x_kube(merge_strategy = kube::core::ListMerge::Set)]
    pub task_types: Vec<TaskType>,
    /// Order of preference among pools: lower first. Default 100.
    #[serde(default = "default_priority")]
    #[schemars(range(min = 0, max = 1_000_000))]
    pub priority: i32,
    /// Most tasks of this pool running at once. GPU pools are also bounded by the
    /// allocatable GPUs of their nodes.
    #[schemars(range(min = 1, max = 10_000))]
    pub max_concurrency: u32,
    /// GPUs each task gets; unset for a CPU pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuSpec>,
    /// Which nodes run this pool's Jobs.
    #[serde(default)]
    pub placement: Placement,
    /// CPU and memory of each runner container (GPUs come from `gpu`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Runner image; unset: the operator's default runner image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,
    /// RuntimeClass of runner pods: a sandbox such as gVisor ("gvisor", runsc) or Kata
    /// Containers ("kata") to isolate the parsing of uploaded media from the node's kernel, or
    /// "nvidia" where the NVIDIA runtime is not the default. The RuntimeClass must exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = crate::NAME_PATTERN))]
    pub runtime_class_name: Option<String>,
    /// Size limit of each runner's scratch volume (source, intermediates, outputs).
    /// Default 20Gi.
    #[serde(default = "default_scratch")]
    pub scratch_size: Quantity,
    /// Tenants allowed on this pool, with their fair-share weights and caps. Empty: every
    /// tenant, weight 1, no cap.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["name".into()]))]
    pub tenants: Vec<PoolTenant>,
    /// Stop admitting tasks; running ones finish, queued ones wait (or overflow).
    #[serde(default)]
    pub suspend: bool,
    /// A task queued on this pool for longer may also be admitted by the next pool in
    /// priority order. Unset: its tasks never leave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = crate::DURATION_PATTERN))]
    pub overflow_after: Option<Duration>,
    /// When tasks that overflowed here from another pool give their slot back.
    #[serde(default)]
    pub preemption: PreemptionPolicy,
    /// How fair share between tenants forgets past usage.
    #[serde(default)]
    pub fair_share: FairSharePolicy,
}

impl RunnerPoolSpec {
    /// Whether the pool `pool_name` with this spec may run a task of `task_type` for `tenant`
    /// that names the pools `wanted` (empty: any): its task types, its tenants (empty: all),
    /// and, for encoding on a GPU pool, an NVENC engine. The operator schedules by it and the
    /// webhook refuses a task no pool takes, as the reference manager refuses one no runner
    /// can take.
    pub fn takes(
        &self,
        pool_name: &str,
        task_type: TaskType,
        tenant: &str,
        wanted: &[String],
    ) -> bool {
        self.task_types.contains(&task_type)
            && (self.tenants.is_empty() || self.tenants.iter().any(|t| t.name == tenant))
            && self
                .gpu
                .as_ref()
                .is_none_or(|gpu| gpu.nvenc || !task_type.needs_nvenc())
            && (wanted.is_empty() || wanted.iter().any(|w| w == pool_name))
    }
}

fn default_priority() -> i32 {
    100
}

fn default_scratch() -> Quantity {
    Quantity("20Gi".to_owned())
}

/// The GPUs of a pool, as NVIDIA's device plugin and GPU feature discovery expose them.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct GpuSpec {
    /// Extended resource requested per task. Default "nvidia.com/gpu".
    #[serde(default = "default_gpu_resource")]
    #[schemars(length(min = 1, max = 253))]
    pub resource_name: String,
    /// GPUs per task. Default 1.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 16))]
    pub count_per_task: u32,
    /// Accepted values of the node label `nvidia.com/gpu.product`, e.g. "NVIDIA-L4". Empty:
    /// any GPU node the placement selects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(merge_strategy = kube::core::ListMerge::Set)]
    pub products: Vec<String>,
    /// Whether these GPUs have an NVENC engine. Encoding and studio tasks only go to GPU
    /// pools that have one; H100, H200 and A100 have none (NVDEC only).
    #[serde(default)]
    pub nvenc: bool,
}

fn default_gpu_resource() -> String {
    "nvidia.com/gpu".to_owned()
}

fn one() -> u32 {
    1
}

/// Where a pool's Jobs run.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// Labels the nodes must have.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Taints the runner pods tolerate (GPU nodes are usually tainted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Further node (anti-)affinity for the runner pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// PriorityClass of the runner pods. On a shared GPU cluster the platform team decides
    /// whose pods the scheduler preempts (lecture encodings or research jobs); unset, runner
    /// pods get the cluster's default priority. The PriorityClass must exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = crate::NAME_PATTERN))]
    pub priority_class_name: Option<String>,
}

/// A tenant's share of a pool.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolTenant {
    /// The tenant, as named in the webhook's token Secrets.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Fair-share weight: with two tenants of weights 2 and 1 both waiting, the first gets
    /// about two thirds of the slots. Default 1.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 1000))]
    pub weight: u32,
    /// Most tasks of this tenant running on this pool at once. Unset: no cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10_000))]
    pub max_concurrency: Option<u32>,
}

/// When tasks that overflowed from another pool give their slot back.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreemptionPolicy {
    /// Preempt overflowed tasks when tasks whose first choice is this pool are waiting.
    /// Default true.
    pub reclaim: bool,
    /// An overflowed task runs at least this long before it can be preempted. Default 5m.
    #[schemars(regex(pattern = crate::DURATION_PATTERN))]
    pub min_runtime: Duration,
}

impl Default for PreemptionPolicy {
    fn default() -> Self {
        Self {
            reclaim: true,
            min_runtime: minutes(5),
        }
    }
}

/// How fair share forgets past usage.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct FairSharePolicy {
    /// Half-life of a tenant's accumulated usage: a burst counts half as much after this
    /// long. Default 1h.
    #[schemars(regex(pattern = crate::DURATION_PATTERN))]
    pub half_life: Duration,
}

impl Default for FairSharePolicy {
    fn default() -> Self {
        Self {
            half_life: minutes(60),
        }
    }
}

/// Observed state of a RunnerPool.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunnerPoolStatus {
    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Suspended.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// Ready nodes the placement selects.
    #[serde(default)]
    pub nodes: u32,
    /// Allocatable GPUs on those nodes (GPU pools).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus_allocatable: Option<u32>,
    /// Tasks the pool can run at once now: `maxConcurrency`, bounded by the GPUs.
    #[serde(default)]
    pub slots: u32,
    /// Tasks running.
    #[serde(default)]
    pub running: u32,
    /// Tasks waiting in its queue.
    #[serde(default)]
    pub queued: u32,
    /// Per-tenant usage and queue.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["name".into()]))]
    pub tenants: Vec<TenantUsage>,
    /// Seconds of media processed per second of runtime, averaged over recent tasks;
    /// feeds the ETAs of queued tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_seconds_per_second: Option<f64>,
}

/// A tenant's use of a pool.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantUsage {
    /// The tenant.
    pub name: String,
    /// Its tasks running here.
    pub running: u32,
    /// Its tasks queued here.
    pub queued: u32,
    /// Its decayed usage (slot-seconds, halved every `fairShare.halfLife`) divided by its weight.
    pub weighted_usage: f64,
}
