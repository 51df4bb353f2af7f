//! How many tasks each pool can start now: its `maxConcurrency`, bounded for GPU pools by
//! the allocatable GPUs of the nodes it selects, minus what running attempts hold.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::NodeSelectorRequirement;

use crate::model::{NodeInfo, Pool};

/// An attempt that holds (or is about to hold) a slot.
#[derive(Clone, Debug, PartialEq)]
pub struct Holder<'a> {
    pub pool: &'a str,
    pub tenant: &'a str,
    /// Node the pod was bound to, once known.
    pub node: Option<&'a str>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct PoolCapacity {
    /// Usable nodes the pool selects.
    pub nodes: Vec<String>,
    pub gpus_allocatable: u64,
    /// GPUs of its nodes not held by any attempt (GPU pools).
    pub gpus_free: u64,
    /// Tasks it could run at once: `maxConcurrency`, bounded by its GPUs.
    pub slots: u32,
    pub running: u32,
    /// Slots free now (0 when suspended or without nodes).
    pub free: u32,
    pub running_by_tenant: BTreeMap<String, u32>,
    /// Why it admits nothing, when it does not: (reason, message).
    pub blocked: Option<(&'static str, String)>,
}

/// Whether `pool` would place its pods on `node`: the node is usable, carries every label of
/// the node selector, satisfies the required node affinity, and has an accepted GPU product.
pub fn selects(pool: &Pool, node: &NodeInfo) -> bool {
    let placement = &pool.spec.placement;
    node.usable
        && placement
            .node_selector
            .iter()
            .all(|(k, v)| node.labels.get(k) == Some(v))
        && required_affinity_matches(pool, node)
        && pool.spec.gpu.as_ref().is_none_or(|gpu| {
            gpu.products.is_empty()
                || node
                    .labels
                    .get(esup_api::labels::GPU_PRODUCT)
                    .is_some_and(|p| gpu.products.contains(p))
        })
}

fn required_affinity_matches(pool: &Pool, node: &NodeInfo) -> bool {
    let terms = pool
        .spec
        .placement
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|r| r.node_selector_terms.as_slice())
        .unwrap_or_default();
    // Terms are ORed, the expressions of a term ANDed; no term means no constraint.
    terms.is_empty()
        || terms.iter().any(|term| {
            term.match_expressions
                .as_deref()
                .unwrap_or_default()
                .iter()
                .all(|e| expression_matches(e, node))
        })
}

fn expression_matches(e: &NodeSelectorRequirement, node: &NodeInfo) -> bool {
    let value = node.labels.get(&e.key);
    let values = e.values.as_deref().unwrap_or_default();
    match e.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(bound)) = (
                value.and_then(|v| v.parse::<i64>().ok()),
                values.first().and_then(|b| b.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if e.operator == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

/// Capacity of every pool, given the attempts that hold slots.
pub fn compute(
    pools: &[Pool],
    nodes: &[NodeInfo],
    holders: &[Holder<'_>],
) -> BTreeMap<String, PoolCapacity> {
    let node_sets: BTreeMap<&str, BTreeSet<&str>> = pools
        .iter()
        .map(|p| {
            let set = nodes
                .iter()
                .filter(|n| selects(p, n))
                .map(|n| n.name.as_str())
                .collect();
            (p.name.as_str(), set)
        })
        .collect();
    let pool_by_name: BTreeMap<&str, &Pool> = pools.iter().map(|p| (p.name.as_str(), p)).collect();
    let gpus_of = |pool: &str| -> u64 {
        pool_by_name
            .get(pool)
            .and_then(|p| p.gpu_request())
            .map_or(0, |(_, n)| u64::from(n))
    };

    pools
        .iter()
        .map(|pool| {
            let mine = &node_sets[pool.name.as_str()];
            let mut cap = PoolCapacity {
                nodes: mine.iter().map(|n| (*n).to_owned()).collect(),
                ..PoolCapacity::default()
            };
            for h in holders.iter().filter(|h| h.pool == pool.name) {
                cap.running += 1;
                *cap.running_by_tenant
                    .entry(h.tenant.to_owned())
                    .or_default() += 1;
            }
            let mut slots = pool.spec.max_concurrency;
            if let Some((resource, per_task)) = pool.gpu_request() {
                cap.gpus_allocatable = nodes
                    .iter()
                    .filter(|n| mine.contains(n.name.as_str()))
                    .map(|n| n.allocatable.get(resource).copied().unwrap_or(0))
                    .sum();
                // GPUs held on this pool's nodes, by any pool's attempts; attempts not yet
                // bound to a node count against every pool that could have placed them here.
                let held: u64 = holders
                    .iter()
                    .filter(|h| match h.node {
                        Some(node) => mine.contains(node),
                        None => node_sets.get(h.pool).is_some_and(|s| !s.is_disjoint(mine)),
                    })
                    .map(|h| gpus_of(h.pool))
                    .sum();
                let per_task = u64::from(per_task.max(1));
                let by_gpu = u32::try_from(cap.gpus_allocatable / per_task).unwrap_or(u32::MAX);
                slots = slots.min(by_gpu);
                cap.gpus_free = cap.gpus_allocatable.saturating_sub(held);
                cap.free = u32::try_from(cap.gpus_free / per_task).unwrap_or(u32::MAX);
            } else {
                cap.free = u32::MAX;
            }
            cap.slots = slots;
            cap.free = cap
                .free
                .min(pool.spec.max_concurrency.saturating_sub(cap.running));
            cap.blocked = if pool.spec.suspend {
                Some((
                    esup_api::conditions::reason::POOL_SUSPENDED,
                    "the pool is suspended".to_owned(),
                ))
            } else if mine.is_empty() {
                Some((
                    esup_api::conditions::reason::NO_MATCHING_NODES,
                    "no ready, schedulable node matches the pool's placement and GPU products"
                        .to_owned(),
                ))
            } else if pool.gpu_request().is_some() && cap.gpus_allocatable == 0 {
                Some((
                    esup_api::conditions::reason::NO_GPUS,
                    "the pool's nodes have no allocatable GPUs".to_owned(),
                ))
            } else {
                None
            };
            if cap.blocked.is_some() {
                cap.free = 0;
            }
            (pool.name.clone(), cap)
        })
        .collect()
}

/// Takes a slot of `pool` for an attempt of `tenant` admitted during the pass. Its GPUs are
/// taken from every GPU pool that shares a node with `pool` (the attempt is not bound to a
/// node yet), as [`compute`] counts them, so that two pools do not hand out the same GPUs.
pub fn take(caps: &mut BTreeMap<String, PoolCapacity>, pools: &[&Pool], pool: &Pool, tenant: &str) {
    let Some(cap) = caps.get_mut(&pool.name) else {
        return;
    };
    cap.free = cap.free.saturating_sub(1);
    cap.running += 1;
    *cap.running_by_tenant.entry(tenant.to_owned()).or_default() += 1;
    let Some((_, taken)) = pool.gpu_request() else {
        return;
    };
    let mine: BTreeSet<String> = cap.nodes.iter().cloned().collect();
    for other in pools {
        let Some((_, per_task)) = other.gpu_request() else {
            continue;
        };
        let Some(cap) = caps.get_mut(&other.name) else {
            continue;
        };
        if !cap.nodes.iter().any(|n| mine.contains(n)) {
            continue;
        }
        cap.gpus_free = cap.gpus_free.saturating_sub(u64::from(taken));
        let by_gpu = cap.gpus_free / u64::from(per_task.max(1));
        cap.free = cap.free.min(u32::try_from(by_gpu).unwrap_or(u32::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_pool as pool;

    fn node(name: &str, labels: &[(&str, &str)], gpus: u64) -> NodeInfo {
        NodeInfo {
            name: name.to_owned(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            allocatable: [("nvidia.com/gpu".to_owned(), gpus)].into_iter().collect(),
            usable: true,
        }
    }

    const GPU_POOL: &str = "{taskTypes: [Transcription], maxConcurrency: 10, gpu: {products: [NVIDIA-L4]}, placement: {nodeSelector: {gpu: 'yes'}}}";

    #[test]
    fn gpu_pool_is_bounded_by_free_gpus_on_its_nodes() {
        let pools = [
            pool("l4", GPU_POOL),
            pool("cpu", "{taskTypes: [Transcription], maxConcurrency: 3}"),
        ];
        let nodes = [
            node(
                "a",
                &[("gpu", "yes"), (esup_api::labels::GPU_PRODUCT, "NVIDIA-L4")],
                2,
            ),
            node(
                "b",
                &[
                    ("gpu", "yes"),
                    (esup_api::labels::GPU_PRODUCT, "NVIDIA-H100"),
                ],
                8,
            ),
            node("c", &[], 0),
        ];
        let holders = [
            Holder {
                pool: "l4",
                tenant: "x",
                node: Some("a"),
            },
            Holder {
                pool: "cpu",
                tenant: "x",
                node: Some("c"),
            },
            Holder {
                pool: "cpu",
                tenant: "y",
                node: None,
            },
        ];
        let caps = compute(&pools, &nodes, &holders);
        let l4 = &caps["l4"];
        assert_eq!(l4.nodes, ["a"], "the H100 node is not an L4");
        assert_eq!(
            (l4.gpus_allocatable, l4.slots, l4.running, l4.free),
            (2, 2, 1, 1)
        );
        let cpu = &caps["cpu"];
        assert_eq!(cpu.nodes.len(), 3);
        assert_eq!((cpu.slots, cpu.running, cpu.free), (3, 2, 1));
        assert_eq!(cpu.running_by_tenant["y"], 1);
    }

    #[test]
    fn unbound_attempts_of_overlapping_pools_hold_gpus() {
        let shared = "{taskTypes: [Transcription], maxConcurrency: 10, gpu: {}, placement: {nodeSelector: {gpu: 'yes'}}}";
        let pools = [pool("local", shared), pool("shared", shared)];
        let nodes = [node("a", &[("gpu", "yes")], 2)];
        let holders = [Holder {
            pool: "local",
            tenant: "x",
            node: None,
        }];
        let caps = compute(&pools, &nodes, &holders);
        assert_eq!(caps["shared"].free, 1);
        assert_eq!(caps["local"].free, 1);
    }

    #[test]
    fn suspended_or_nodeless_pools_admit_nothing() {
        let pools = [
            pool(
                "off",
                "{taskTypes: [Encoding], maxConcurrency: 2, suspend: true}",
            ),
            pool(
                "nowhere",
                "{taskTypes: [Encoding], maxConcurrency: 2, placement: {nodeSelector: {zone: mars}}}",
            ),
        ];
        let nodes = [node("a", &[], 0)];
        let caps = compute(&pools, &nodes, &[]);
        assert_eq!(caps["off"].free, 0);
        assert_eq!(caps["off"].blocked.as_ref().unwrap().0, "PoolSuspended");
        assert_eq!(
            caps["nowhere"].blocked.as_ref().unwrap().0,
            "NoMatchingNodes"
        );
    }

    #[test]
    fn required_affinity_expressions() {
        let yaml = "{taskTypes: [Encoding], maxConcurrency: 1, placement: {affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: zone, operator: In, values: [a, b]}, {key: spot, operator: DoesNotExist}]}, {matchExpressions: [{key: mem, operator: Gt, values: ['64']}]}]}}}}}";
        let p = pool("p", yaml);
        let table = [
            (vec![("zone", "a")], true),
            (vec![("zone", "c")], false),
            (vec![("zone", "a"), ("spot", "1")], false),
            (vec![("mem", "128")], true),
            (vec![("mem", "32")], false),
        ];
        for (labels, expected) in table {
            assert_eq!(selects(&p, &node("n", &labels, 0)), expected, "{labels:?}");
        }
        let mut unusable = node("n", &[("zone", "a")], 0);
        unusable.usable = false;
        assert!(!selects(&p, &unusable));
    }
}
