//! The in-memory index the watchers feed and the scheduler reads: compact views of every
//! object, replaced wholesale on each watch (re)list, and never moved back to an older
//! resourceVersion, so the operator's own writes are visible before their watch events.

use std::collections::{HashMap, HashSet};

use crate::model::{JobInfo, NodeInfo, PodInfo, Pool, Task};

/// The kinds the operator watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    EncodingTasks,
    TranscriptionTasks,
    Pools,
    Nodes,
    Jobs,
    Pods,
    RunnerPolicies,
}

pub const ALL_SOURCES: [Source; 7] = [
    Source::EncodingTasks,
    Source::TranscriptionTasks,
    Source::Pools,
    Source::Nodes,
    Source::Jobs,
    Source::Pods,
    Source::RunnerPolicies,
];

/// One change from a watcher, already converted.
#[derive(Debug)]
pub enum Change {
    Task(Box<Task>),
    TaskGone(String),
    Pool(Box<Pool>),
    PoolGone(String),
    Node(NodeInfo),
    NodeGone(String),
    Job(JobInfo),
    JobGone(String, String),
    Pod(PodInfo),
    PodGone(PodInfo),
    /// A runner NetworkPolicy (namespace, name) exists.
    RunnerPolicy(String, String),
    RunnerPolicyGone(String, String),
    /// A relist started: what the following `Listed` does not mention is gone.
    Relist(Source),
    /// The relist is complete.
    Listed(Source),
}

#[derive(Default)]
pub struct Index {
    /// By uid.
    pub tasks: HashMap<String, Task>,
    pub pools: HashMap<String, Pool>,
    pub nodes: HashMap<String, NodeInfo>,
    /// By (namespace, name).
    pub jobs: HashMap<(String, String), JobInfo>,
    /// By (namespace, Job name).
    pub pods: HashMap<(String, String), PodInfo>,
    /// Runner NetworkPolicies, by (namespace, name).
    pub runner_policies: HashSet<(String, String)>,
    synced: HashSet<Source>,
    /// Keys seen since a relist began, per source.
    relisting: HashMap<Source, HashSet<String>>,
}

impl Index {
    pub fn synced(&self) -> bool {
        ALL_SOURCES.iter().all(|s| self.synced.contains(s))
    }

    /// Records a task the operator just wrote (the API server's answer).
    pub fn put_task(&mut self, mut task: Task) {
        // The operator never reads the runner's output; results recorded before it moved to
        // the result store hold up to 64 KiB of it, kept here for the task's whole retention.
        task.status.drop_inline_script_output();
        let current = self.tasks.get(&task.uid);
        if current.is_none_or(|c| {
            esup_kube_common::watch::newer(
                task.resource_version.as_deref(),
                c.resource_version.as_deref(),
            )
        }) {
            self.tasks.insert(task.uid.clone(), task);
        }
    }

    pub fn apply(&mut self, change: Change) {
        let mut seen = |source: Source, key: &str| {
            if let Some(keys) = self.relisting.get_mut(&source) {
                keys.insert(key.to_owned());
            }
        };
        match change {
            Change::Task(task) => {
                let source = match task.key.kind {
                    esup_api::task::TaskKind::Encoding => Source::EncodingTasks,
                    esup_api::task::TaskKind::Transcription => Source::TranscriptionTasks,
                };
                seen(source, &task.uid);
                self.put_task(*task);
            }
            Change::TaskGone(uid) => {
                self.tasks.remove(&uid);
            }
            Change::Pool(pool) => {
                seen(Source::Pools, &pool.name);
                self.pools.insert(pool.name.clone(), *pool);
            }
            Change::PoolGone(name) => {
                self.pools.remove(&name);
            }
            Change::Node(node) => {
                seen(Source::Nodes, &node.name);
                self.nodes.insert(node.name.clone(), node);
            }
            Change::NodeGone(name) => {
                self.nodes.remove(&name);
            }
            Change::Job(job) => {
                seen(Source::Jobs, &format!("{}/{}", job.namespace, job.name));
                self.jobs
                    .insert((job.namespace.clone(), job.name.clone()), job);
            }
            Change::JobGone(ns, name) => {
                self.jobs.remove(&(ns, name));
            }
            Change::Pod(pod) => {
                seen(Source::Pods, &format!("{}/{}", pod.namespace, pod.name));
                self.pods
                    .insert((pod.namespace.clone(), pod.job_name.clone()), pod);
            }
            Change::PodGone(pod) => {
                let key = (pod.namespace.clone(), pod.job_name.clone());
                if self.pods.get(&key).is_some_and(|p| p.name == pod.name) {
                    self.pods.remove(&key);
                }
            }
            Change::RunnerPolicy(ns, name) => {
                seen(Source::RunnerPolicies, &format!("{ns}/{name}"));
                self.runner_policies.insert((ns, name));
            }
            Change::RunnerPolicyGone(ns, name) => {
                self.runner_policies.remove(&(ns, name));
            }
            Change::Relist(source) => {
                self.relisting.insert(source, HashSet::new());
            }
            Change::Listed(source) => {
                if let Some(keys) = self.relisting.remove(&source) {
                    self.drop_unlisted(source, &keys);
                }
                self.synced.insert(source);
            }
        }
    }

    fn drop_unlisted(&mut self, source: Source, keys: &HashSet<String>) {
        use esup_api::task::TaskKind;
        let kind = match source {
            Source::EncodingTasks => Some(TaskKind::Encoding),
            Source::TranscriptionTasks => Some(TaskKind::Transcription),
            _ => None,
        };
        match source {
            Source::EncodingTasks | Source::TranscriptionTasks => self
                .tasks
                .retain(|uid, t| Some(t.key.kind) != kind || keys.contains(uid)),
            Source::Pools => self.pools.retain(|name, _| keys.contains(name)),
            Source::Nodes => self.nodes.retain(|name, _| keys.contains(name)),
            Source::Jobs => self
                .jobs
                .retain(|(ns, name), _| keys.contains(&format!("{ns}/{name}"))),
            Source::Pods => self
                .pods
                .retain(|_, p| keys.contains(&format!("{}/{}", p.namespace, p.name))),
            Source::RunnerPolicies => self
                .runner_policies
                .retain(|(ns, name)| keys.contains(&format!("{ns}/{name}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str) -> NodeInfo {
        NodeInfo {
            name: name.to_owned(),
            labels: Default::default(),
            allocatable: Default::default(),
            usable: true,
        }
    }

    #[test]
    fn relist_drops_what_it_does_not_mention_and_marks_synced() {
        let mut index = Index::default();
        index.apply(Change::Node(node("a")));
        index.apply(Change::Node(node("b")));
        assert!(!index.synced());
        index.apply(Change::Relist(Source::Nodes));
        index.apply(Change::Node(node("b")));
        index.apply(Change::Listed(Source::Nodes));
        assert_eq!(index.nodes.keys().collect::<Vec<_>>(), ["b"]);
        for source in ALL_SOURCES {
            index.apply(Change::Relist(source));
            index.apply(Change::Listed(source));
        }
        assert!(index.synced());
        assert!(index.nodes.is_empty(), "the last relist listed no node");
    }
}
