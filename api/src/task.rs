//! The two task kinds as every component names them: the kind, the [`TaskResource`] trait
//! both resources implement, a task's key across kinds, and the names of the objects made for
//! each of its launches (Job, callback Secret), which the operator creates and the webhook
//! looks up. Pure.

use k8s_openapi::NamespaceResourceScope;
use kube::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::common::{TaskCommon, TaskType};
use crate::labels::{MAX_LABEL_LEN, is_dns_label};
use crate::{
    EncodingTask, EncodingTaskSpec, TaskPhase, TaskStatus, TranscriptionTask, TranscriptionTaskSpec,
};

/// The two namespaced task kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TaskKind {
    Encoding,
    Transcription,
}

impl TaskKind {
    pub const ALL: [Self; 2] = [Self::Encoding, Self::Transcription];

    /// The resource's kind (`EncodingTask`); the same as kube's `Resource::kind`.
    pub const fn kind_name(self) -> &'static str {
        match self {
            Self::Encoding => "EncodingTask",
            Self::Transcription => "TranscriptionTask",
        }
    }

    /// The resource's plural, as in its API path; the same as kube's `Resource::plural`.
    pub const fn plural(self) -> &'static str {
        match self {
            Self::Encoding => "encodingtasks",
            Self::Transcription => "transcriptiontasks",
        }
    }

    /// Short prefix of the names of what is made for a task ("enc-…", "trans-…").
    pub const fn object_prefix(self) -> &'static str {
        match self {
            Self::Encoding => "enc",
            Self::Transcription => "trans",
        }
    }

    pub fn from_kind_name(kind: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.kind_name() == kind)
    }

    pub fn from_plural(plural: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.plural() == plural)
    }
}

/// What both task resources are, so that code over tasks is written once, generic over the
/// kind, instead of matching on it: kube's `Resource` (kind, plural, metadata) plus the parts
/// every task has.
pub trait TaskResource:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Serialize
    + DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    const KIND: TaskKind;
    /// What every task's spec holds: requester, notify, video, scheduling policy.
    fn common(&self) -> &TaskCommon;
    /// Its status, once the operator or the webhook wrote one.
    fn task_status(&self) -> Option<&TaskStatus>;
    /// Its spec, as the kind-agnostic enum.
    fn task_spec(&self) -> TaskSpec;
    /// Its phase (`Pending` before any status).
    fn phase(&self) -> TaskPhase {
        self.task_status().map(|s| s.phase).unwrap_or_default()
    }
}

impl TaskResource for EncodingTask {
    const KIND: TaskKind = TaskKind::Encoding;
    fn common(&self) -> &TaskCommon {
        &self.spec.common
    }
    fn task_spec(&self) -> TaskSpec {
        TaskSpec::Encoding(self.spec.clone())
    }
    fn task_status(&self) -> Option<&TaskStatus> {
        self.status.as_ref()
    }
}

impl TaskResource for TranscriptionTask {
    const KIND: TaskKind = TaskKind::Transcription;
    fn common(&self) -> &TaskCommon {
        &self.spec.common
    }
    fn task_spec(&self) -> TaskSpec {
        TaskSpec::Transcription(self.spec.clone())
    }
    fn task_status(&self) -> Option<&TaskStatus> {
        self.status.as_ref()
    }
}

/// The spec of either kind, kept whole: what a request becomes (studio requests are encodings
/// of a studio source), what the scheduler reads and the Job builder hands to the runner.
#[derive(Clone, Debug, PartialEq)]
pub enum TaskSpec {
    Encoding(EncodingTaskSpec),
    Transcription(TranscriptionTaskSpec),
}

impl TaskSpec {
    pub const fn kind(&self) -> TaskKind {
        match self {
            Self::Encoding(_) => TaskKind::Encoding,
            Self::Transcription(_) => TaskKind::Transcription,
        }
    }

    pub fn common(&self) -> &TaskCommon {
        match self {
            Self::Encoding(spec) => &spec.common,
            Self::Transcription(spec) => &spec.common,
        }
    }

    pub fn task_type(&self) -> TaskType {
        match self {
            Self::Encoding(spec) => spec.task_type(),
            Self::Transcription(_) => TaskType::Transcription,
        }
    }

    /// The URL the runner downloads.
    pub fn source_url(&self) -> &str {
        match self {
            Self::Encoding(spec) => &spec.source.url,
            Self::Transcription(spec) => &spec.source.url,
        }
    }

    /// Every URL of the spec that a runner fetches besides the source, with the name used in
    /// messages: the webhook applies its URL policy to each, as to `source_url`.
    pub fn asset_urls(&self) -> Vec<(&'static str, &str)> {
        match self {
            Self::Encoding(spec) => spec
                .dressing
                .as_ref()
                .map(crate::encoding::Dressing::urls)
                .unwrap_or_default(),
            Self::Transcription(_) => Vec::new(),
        }
    }

    /// Media duration known before the runner probes it, for ETAs.
    pub fn declared_media_seconds(&self) -> Option<f64> {
        match self {
            Self::Encoding(spec) => spec.cut.as_ref().map(|cut| {
                let end = cut.end.as_secs_f64();
                let end = cut
                    .initial_duration
                    .as_ref()
                    .map_or(end, |d| end.min(d.as_secs_f64()));
                (end - cut.start.as_secs_f64()).max(0.0)
            }),
            Self::Transcription(spec) => spec.duration_seconds,
        }
    }
}

/// Identifies a task across kinds.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskKey {
    pub kind: TaskKind,
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for TaskKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.kind.kind_name(),
            self.namespace,
            self.name
        )
    }
}

/// What the names of a task's objects derive from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskIdentity<'a> {
    pub kind: TaskKind,
    pub name: &'a str,
    pub uid: &'a str,
}

/// Hex digits of sha256(uid) in shortened names: enough to tell apart tasks whose names
/// shorten alike within one namespace.
const HASH_LEN: usize = 8;

impl TaskIdentity<'_> {
    /// Name of the task's `launch`-th Job.
    pub fn job_name(&self, launch: u32) -> String {
        self.object_name(&launch.to_string())
    }

    /// Name of the callback Secret of the task's `launch`-th Job. One per launch, so that a
    /// token fences its own attempt: the webhook refuses the reports of any launch but the
    /// latest (`runner::fence`).
    pub fn callback_secret_name(&self, launch: u32) -> String {
        self.object_name(&format!("cb{launch}"))
    }

    /// Name of the one callback Secret per task that releases before per-launch tokens
    /// created. Never created any more; the webhook still accepts its token for the task's
    /// current launch, so a runner that was running across the upgrade can deliver.
    pub fn legacy_callback_secret_name(&self) -> String {
        self.object_name("cb")
    }

    /// `{prefix}-{name}-{suffix}` when that is a DNS-1123 label (Job names must be, since the
    /// Job controller copies them into a pod label); otherwise a shortened, sanitised name
    /// made unique again by a hash of the uid. Plain names are injective (the suffix has no
    /// dash), and a shortened one could only clash with a task deliberately named after
    /// another's uid.
    fn object_name(&self, suffix: &str) -> String {
        let prefix = self.kind.object_prefix();
        let plain = format!("{prefix}-{}-{suffix}", self.name);
        if is_dns_label(&plain) {
            return plain;
        }
        let hash = uid_hash(self.uid);
        let budget = MAX_LABEL_LEN.saturating_sub(prefix.len() + hash.len() + suffix.len() + 3);
        let name = sanitise(self.name, budget);
        if name.is_empty() {
            format!("{prefix}-{hash}-{suffix}")
        } else {
            format!("{prefix}-{name}-{hash}-{suffix}")
        }
    }
}

fn uid_hash(uid: &str) -> String {
    let digest = Sha256::digest(uid.as_bytes());
    let mut hex = crate::lower_hex(&digest);
    hex.truncate(HASH_LEN);
    hex
}

/// Lower-case alphanumerics with single inner dashes, at most `max` bytes.
fn sanitise(name: &str, max: usize) -> String {
    let mut out = String::with_capacity(name.len().min(max));
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.truncate(max);
    out.trim_end_matches('-').to_owned()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    const UID: &str = "6f1c2a3b-0000-4000-8000-000000000001";

    fn encoding(name: &str, uid: &'static str) -> TaskIdentity<'static> {
        TaskIdentity {
            kind: TaskKind::Encoding,
            name: Box::leak(name.to_owned().into_boxed_str()),
            uid,
        }
    }

    #[test]
    fn kinds_name_as_kube_does() {
        assert_eq!(TaskKind::Encoding.kind_name(), EncodingTask::kind(&()));
        assert_eq!(TaskKind::Encoding.plural(), EncodingTask::plural(&()));
        assert_eq!(
            TaskKind::Transcription.kind_name(),
            TranscriptionTask::kind(&())
        );
        assert_eq!(
            TaskKind::Transcription.plural(),
            TranscriptionTask::plural(&())
        );
        for kind in TaskKind::ALL {
            assert_eq!(TaskKind::from_kind_name(kind.kind_name()), Some(kind));
            assert_eq!(TaskKind::from_plural(kind.plural()), Some(kind));
        }
        assert_eq!(TaskKind::from_plural("runnerpools"), None);
    }

    #[test]
    fn names_are_valid_unique_and_stable() {
        let long = "a".repeat(253);
        let dotted = "video.1234.lecture";
        let long_dotted = format!("{}.{}", "b".repeat(120), "c".repeat(120));
        let uuid = "2f53b18a-1c09-4cdb-b31d-6a68f3e6a761";
        // (name, uid, launch, expected name when it is predictable)
        let cases: Vec<(&str, &'static str, u32, Option<String>)> = vec![
            (uuid, UID, 1, Some(format!("enc-{uuid}-1"))),
            (uuid, UID, 12, Some(format!("enc-{uuid}-12"))),
            ("x", UID, u32::MAX, Some(format!("enc-x-{}", u32::MAX))),
            (dotted, UID, 1, None),
            (long.as_str(), UID, 1, None),
            (long.as_str(), "other-uid", 1, None),
            (long.as_str(), UID, 2, None),
            (long.as_str(), UID, u32::MAX, None),
            (long_dotted.as_str(), UID, 3, None),
            ("...", UID, 1, None),
        ];
        let mut seen = BTreeSet::new();
        for (name, uid, launch, expected) in &cases {
            let task = encoding(name, uid);
            let job = task.job_name(*launch);
            assert!(is_dns_label(&job), "{job:?} from {name:?}");
            assert!(job.len() <= 63);
            assert!(job.starts_with("enc-"), "{job}");
            assert!(job.ends_with(&format!("-{launch}")), "{job}");
            assert_eq!(job, task.job_name(*launch), "stable");
            if let Some(expected) = expected {
                assert_eq!(&job, expected);
            }
            assert!(seen.insert(job.clone()), "{job} repeated");
            let secret = task.callback_secret_name(*launch);
            assert!(
                is_dns_label(&secret) && secret.ends_with(&format!("-cb{launch}")),
                "{secret}"
            );
            assert!(seen.insert(secret.clone()), "{secret} repeated");
        }
        // A shortened name keeps the readable part and the hash.
        let task = encoding(dotted, UID);
        assert_eq!(
            task.job_name(1),
            format!("enc-video-1234-lecture-{}-1", uid_hash(UID))
        );
        assert_eq!(uid_hash(UID).len(), 8);
        assert_eq!(
            task.callback_secret_name(2),
            format!("enc-video-1234-lecture-{}-cb2", uid_hash(UID))
        );
        assert_eq!(
            task.legacy_callback_secret_name(),
            format!("enc-video-1234-lecture-{}-cb", uid_hash(UID))
        );
        let transcription = TaskIdentity {
            kind: TaskKind::Transcription,
            name: "9a1c5e2e-0d7b-4f0e-9d43-0f6f7b2a1c11",
            uid: UID,
        };
        assert_eq!(
            transcription.job_name(3),
            "trans-9a1c5e2e-0d7b-4f0e-9d43-0f6f7b2a1c11-3"
        );
    }

    #[test]
    fn sanitised_names() {
        assert_eq!(sanitise("Video..1234--x.", 63), "video-1234-x");
        assert_eq!(sanitise("abc.def", 4), "abc");
        assert_eq!(sanitise("...", 10), "");
    }
}
