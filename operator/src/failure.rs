//! Why an attempt ended. The class decides whether the attempt is charged to the task and
//! whether it is retried; the message is what the task's user reads in its status and Events.

use std::time::Duration;

use esup_api::conditions::reason;
use esup_api::runner::exit_code;

use crate::model::{JobInfo, PodInfo};

/// Longest failure message, in bytes (so also in characters). A runner's log tail can be
/// long, and the message lands in conditions, Events and Esup-Pod's notification.
pub const MAX_MESSAGE_LEN: usize = 1024;

/// Evictions and node losses a task gets retried without charge; later ones are charged.
pub const FREE_DISRUPTIONS: u32 = 2;

const ELLIPSIS: &str = "…";

/// What ended an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailureClass {
    /// The runner declared the media or the request unusable.
    InvalidInput,
    /// A failure that may pass on another try: network, disk, a crash.
    Transient,
    /// The runner outgrew its memory limit.
    OomKilled,
    /// The attempt ran longer than `timeouts.execution`.
    ExecutionDeadline,
    /// The runner image cannot be pulled.
    ImagePull,
    /// The pod was evicted: node pressure, drain, admission rejection.
    Evicted,
    /// The scheduler gave the slot to a higher-priority pod.
    Preempted,
    /// The node went away or shut down.
    NodeLost,
    /// The runner stopped reporting progress (detected by the operator, not here).
    NoProgress,
    /// The pod vanished without telling how it ended.
    Lost,
}

impl FailureClass {
    pub const ALL: [Self; 10] = [
        Self::InvalidInput,
        Self::Transient,
        Self::OomKilled,
        Self::ExecutionDeadline,
        Self::ImagePull,
        Self::Evicted,
        Self::Preempted,
        Self::NodeLost,
        Self::NoProgress,
        Self::Lost,
    ];

    /// Condition and Event reason, and metric label.
    pub const fn reason(self) -> &'static str {
        match self {
            Self::InvalidInput => reason::INVALID_INPUT,
            Self::Transient => reason::RUNNER_FAILED,
            Self::OomKilled => reason::OOM_KILLED,
            Self::ExecutionDeadline => reason::EXECUTION_DEADLINE_EXCEEDED,
            Self::ImagePull => reason::IMAGE_PULL_FAILED,
            Self::Evicted => reason::EVICTED,
            Self::Preempted => reason::PREEMPTED,
            Self::NodeLost => reason::NODE_LOST,
            Self::NoProgress => reason::NO_PROGRESS,
            Self::Lost => reason::POD_LOST,
        }
    }

    /// Whether the attempt counts against `retry.maxAttempts`: not when the infrastructure
    /// took the slot away from a task that did nothing wrong — within [`FREE_DISRUPTIONS`]
    /// for the classes the task itself may have caused (see [`Self::free_disruption`]).
    pub const fn charged(self) -> bool {
        !matches!(self, Self::Evicted | Self::Preempted | Self::NodeLost)
    }

    /// Whether this uncharged class draws on the task's allowance of [`FREE_DISRUPTIONS`]:
    /// node-pressure evictions and node losses may be the media's doing (a file that makes the
    /// runner fill the node's memory or disk), so past the allowance they are charged.
    /// Preemption is the scheduler's choice alone and stays free.
    pub const fn free_disruption(self) -> bool {
        matches!(self, Self::Evicted | Self::NodeLost)
    }

    /// Whether another attempt may succeed. Bad input stays bad, and an attempt that used its
    /// whole execution timeout would most likely use it again: hours of slot for nothing.
    pub const fn retryable(self) -> bool {
        !matches!(self, Self::InvalidInput | Self::ExecutionDeadline)
    }
}

/// A failed attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub class: FailureClass,
    /// For humans; at most [`MAX_MESSAGE_LEN`] bytes.
    pub message: String,
}

impl Failure {
    pub fn new(class: FailureClass, message: impl Into<String>) -> Self {
        Self {
            class,
            message: truncate(message.into()),
        }
    }
}

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptEnd {
    Succeeded,
    Failed(Failure),
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// Cuts to [`MAX_MESSAGE_LEN`] bytes on a character boundary, marking the cut.
fn truncate(mut message: String) -> String {
    if message.len() > MAX_MESSAGE_LEN {
        let end = floor_boundary(&message, MAX_MESSAGE_LEN - ELLIPSIS.len());
        message.truncate(end);
        message.push_str(ELLIPSIS);
    }
    message
}

/// `head: detail`, shortened from the front of the detail: a log tail ends with the error.
fn with_detail(head: &str, detail: Option<&str>) -> String {
    let Some(detail) = detail.map(str::trim).filter(|d| !d.is_empty()) else {
        return head.to_owned();
    };
    let full = format!("{head}: {detail}");
    if full.len() <= MAX_MESSAGE_LEN {
        return full;
    }
    let room = MAX_MESSAGE_LEN.saturating_sub(head.len() + ": ".len() + ELLIPSIS.len());
    if room == 0 {
        return truncate(head.to_owned());
    }
    let start = ceil_boundary(detail, detail.len() - room);
    format!("{head}: {ELLIPSIS}{}", &detail[start..])
}

fn failed(class: FailureClass, head: &str, detail: Option<&str>) -> AttemptEnd {
    AttemptEnd::Failed(Failure::new(class, with_detail(head, detail)))
}

fn on_node(pod: &PodInfo) -> String {
    pod.node_name
        .as_deref()
        .map_or_else(String::new, |node| format!(" on node {node}"))
}

/// " NAME" after the word "node", or nothing when the pod never got one.
fn node_name(pod: &PodInfo) -> String {
    pod.node_name
        .as_deref()
        .map_or_else(String::new, |node| format!(" {node}"))
}

fn is_image_pull_error(reason: &str) -> bool {
    matches!(
        reason,
        "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" | "ErrImageNeverPull"
    )
}

/// Kubelet evictions for exceeding the pod's own storage limits (scratch or /tmp full):
/// the task's doing, unlike node pressure, so charged; they carry no disruption condition,
/// and as plain evictions they would be retried for free, forever.
fn own_storage_limit(message: &str) -> bool {
    message.contains("Usage of EmptyDir volume")
        || message.contains("exceeded its local ephemeral storage limit")
        || message.contains("Pod ephemeral local storage usage exceeds")
}

/// One rule of [`classify_finished`]: how the attempt ended, or `None` to ask the next rule.
type Rule = fn(&JobInfo, Option<&PodInfo>) -> Option<AttemptEnd>;

/// The rules of [`classify_finished`], first match wins. Infrastructure causes come before
/// the exit code: a pod killed by a drain exits non-zero too, and must not be charged for it.
const RULES: &[Rule] = &[
    job_completed,
    pod_disrupted,
    pod_turned_away,
    execution_deadline,
    pod_lost,
    out_of_memory,
    runner_exit_code,
    image_pull_failed,
];

/// How a finished Job ended (`job.finished()` is Some), with the pod of the attempt if still
/// known: the first of [`RULES`] that applies, else what the Job's failure condition says.
pub fn classify_finished(job: &JobInfo, pod: Option<&PodInfo>) -> AttemptEnd {
    RULES
        .iter()
        .find_map(|rule| rule(job, pod))
        .unwrap_or_else(|| job_failed(job))
}

fn job_completed(job: &JobInfo, _: Option<&PodInfo>) -> Option<AttemptEnd> {
    job.conditions
        .iter()
        .any(|c| c.status && c.type_ == "Complete")
        .then_some(AttemptEnd::Succeeded)
}

/// The pod's `DisruptionTarget` condition says who took it away.
fn pod_disrupted(_: &JobInfo, pod: Option<&PodInfo>) -> Option<AttemptEnd> {
    use FailureClass::*;
    let pod = pod?;
    let disruption = pod.disruption.as_deref()?;
    let node = on_node(pod);
    let named = node_name(pod);
    let (class, head) = match disruption {
        "PreemptionByScheduler" => (
            Preempted,
            format!("the scheduler preempted the runner pod{node} for a higher-priority pod"),
        ),
        "EvictionByEvictionAPI" => (
            Evicted,
            format!("the runner pod was evicted{node} (node drain or eviction request)"),
        ),
        "TerminationByKubelet" => (
            Evicted,
            format!("the kubelet terminated the runner pod{node} (node pressure or shutdown)"),
        ),
        "DeletionByTaintManager" => (
            NodeLost,
            format!(
                "the runner pod was deleted because its node{named} became unreachable or tainted"
            ),
        ),
        "DeletionByPodGC" => (
            NodeLost,
            format!("the runner pod was garbage-collected because its node{named} is gone"),
        ),
        other => (
            Evicted,
            format!("the runner pod was disrupted{node} ({other})"),
        ),
    };
    Some(failed(class, &head, pod.message.as_deref()))
}

/// The pod's reason: evicted, its node gone, or refused at admission by the kubelet.
fn pod_turned_away(_: &JobInfo, pod: Option<&PodInfo>) -> Option<AttemptEnd> {
    use FailureClass::*;
    let pod = pod?;
    let node = on_node(pod);
    let named = node_name(pod);
    let pod_message = pod.message.as_deref();
    let (class, head) = match pod.reason.as_deref()? {
        "Evicted" if pod_message.is_some_and(own_storage_limit) => (
            Transient,
            format!("the runner used more local disk than its pod allows{node}"),
        ),
        "Evicted" => (Evicted, format!("the kubelet evicted the runner pod{node}")),
        r @ ("NodeLost" | "Shutdown" | "NodeShutdown" | "Terminated") => (
            NodeLost,
            format!("the runner pod's node{named} went away ({r})"),
        ),
        // Admission rejections: the kubelet refused the pod before it ran. NodeAffinity is
        // one too, when the node's labels changed after scheduling.
        r @ ("UnexpectedAdmissionError" | "NodeAffinity" | "InvalidNodeInfo") => (
            Evicted,
            format!("the node{named} refused the runner pod ({r})"),
        ),
        r if r.starts_with("OutOf") => (
            Evicted,
            format!("the node{named} refused the runner pod ({r})"),
        ),
        _ => return None,
    };
    Some(failed(class, &head, pod_message))
}

fn execution_deadline(job: &JobInfo, pod: Option<&PodInfo>) -> Option<AttemptEnd> {
    let job_deadline = job
        .finished()
        .is_some_and(|c| c.type_ == "Failed" && c.reason.as_deref() == Some("DeadlineExceeded"));
    let pod_deadline = pod.is_some_and(|p| p.reason.as_deref() == Some("DeadlineExceeded"));
    (job_deadline || pod_deadline).then(|| {
        failed(
            FailureClass::ExecutionDeadline,
            "the runner ran longer than the task's execution timeout (spec.timeouts.execution)",
            None,
        )
    })
}

/// Without its pod, nothing tells more; the rules after this one all read the pod.
fn pod_lost(_: &JobInfo, pod: Option<&PodInfo>) -> Option<AttemptEnd> {
    pod.is_none().then(|| {
        failed(
            FailureClass::Lost,
            "the runner pod disappeared before reporting how it ended",
            None,
        )
    })
}

fn out_of_memory(_: &JobInfo, pod: Option<&PodInfo>) -> Option<AttemptEnd> {
    let pod = pod?;
    let container = &pod.container;
    (container.terminated_reason.as_deref() == Some("OOMKilled")).then(|| {
        failed(
            FailureClass::OomKilled,
            &format!(
                "the runner ran out of memory{} (OOMKilled): the pool's memory limit is too small for this media",
                on_node(pod)
            ),
            container.terminated_message.as_deref(),
        )
    })
}

/// The runner's exit code: its contract (`esup_api::runner::exit_code`), or a signal.
fn runner_exit_code(_: &JobInfo, pod: Option<&PodInfo>) -> Option<AttemptEnd> {
    use FailureClass::*;
    let container = &pod?.container;
    let code = container.exit_code.filter(|&c| c != exit_code::SUCCESS)?;
    let (class, what) = if exit_code::is_invalid_input(code) {
        let what = if code == exit_code::USAGE {
            " (invalid request)"
        } else {
            " (invalid input)"
        };
        (InvalidInput, what.to_owned())
    } else if code == exit_code::TRANSIENT {
        (Transient, " (temporary failure)".to_owned())
    } else if (129..=192).contains(&code) {
        (Transient, format!(" (killed by signal {})", code - 128))
    } else {
        match container.terminated_reason.as_deref() {
            Some(r) if r != "Error" && r != "Completed" => (Transient, format!(" ({r})")),
            _ => (Transient, String::new()),
        }
    };
    Some(failed(
        class,
        &format!("runner exited with code {code}{what}"),
        container.terminated_message.as_deref(),
    ))
}

fn image_pull_failed(_: &JobInfo, pod: Option<&PodInfo>) -> Option<AttemptEnd> {
    let container = &pod?.container;
    let waiting = container
        .waiting_reason
        .as_deref()
        .filter(|r| is_image_pull_error(r))?;
    Some(failed(
        FailureClass::ImagePull,
        &format!("cannot pull the runner image ({waiting})"),
        container.waiting_message.as_deref(),
    ))
}

/// When no rule applies: what the Job's own failure condition says.
fn job_failed(job: &JobInfo) -> AttemptEnd {
    let (why, detail) = job.finished().map_or(("ended", None), |c| {
        (
            c.reason.as_deref().unwrap_or("failed"),
            c.message.as_deref(),
        )
    });
    failed(
        FailureClass::Transient,
        &format!("the runner's Job failed ({why})"),
        detail,
    )
}

/// Go-style duration for messages: "5m0s".
fn human(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

/// A pod that cannot start, once waiting longer is hopeless. Pull errors may be a registry
/// hiccup, so they get a grace period; a malformed or never-pull image name gets none.
pub fn stuck(pod: &PodInfo, pending_for: Duration, image_pull_grace: Duration) -> Option<Failure> {
    let waiting = pod.container.waiting_reason.as_deref()?;
    let detail = pod.container.waiting_message.as_deref();
    let past_grace = pending_for >= image_pull_grace;
    let (class, head) = match waiting {
        "InvalidImageName" | "ErrImageNeverPull" => (
            FailureClass::ImagePull,
            format!("cannot pull the runner image ({waiting})"),
        ),
        "ErrImagePull" | "ImagePullBackOff" if past_grace => (
            FailureClass::ImagePull,
            format!(
                "cannot pull the runner image ({waiting}) for {}",
                human(pending_for)
            ),
        ),
        "CreateContainerConfigError" if past_grace => (
            FailureClass::Transient,
            format!(
                "cannot configure the runner container for {} ({waiting})",
                human(pending_for)
            ),
        ),
        _ => return None,
    };
    Some(Failure::new(class, with_detail(&head, detail)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ContainerInfo, JobCondition};
    use k8s_openapi::api::batch::v1::Job;
    use k8s_openapi::api::core::v1::Pod;

    use FailureClass::*;

    fn job(conditions: &[(&str, Option<&str>)]) -> JobInfo {
        JobInfo {
            namespace: "ns".to_owned(),
            name: "enc-t-1".to_owned(),
            task_uid: "uid".to_owned(),
            active: 0,
            succeeded: 0,
            failed: 1,
            conditions: conditions
                .iter()
                .map(|(type_, reason)| JobCondition {
                    type_: (*type_).to_owned(),
                    status: true,
                    reason: reason.map(str::to_owned),
                    message: reason.map(|r| format!("job says {r}")),
                })
                .collect(),
            deleting: false,
        }
    }

    fn failed_job() -> JobInfo {
        job(&[("Failed", Some("BackoffLimitExceeded"))])
    }

    fn pod() -> PodInfo {
        PodInfo {
            namespace: "ns".to_owned(),
            name: "enc-t-1-abcde".to_owned(),
            job_name: "enc-t-1".to_owned(),
            task_uid: "uid".to_owned(),
            node_name: Some("gpu-1".to_owned()),
            phase: "Failed".to_owned(),
            reason: None,
            message: None,
            disruption: None,
            container: ContainerInfo::default(),
            started: None,
            deleting: false,
        }
    }

    fn exited(code: i32, reason: &str, message: Option<&str>) -> PodInfo {
        PodInfo {
            container: ContainerInfo {
                exit_code: Some(code),
                terminated_reason: Some(reason.to_owned()),
                terminated_message: message.map(str::to_owned),
                ..ContainerInfo::default()
            },
            ..pod()
        }
    }

    fn disrupted(reason: &str, code: i32) -> PodInfo {
        PodInfo {
            disruption: Some(reason.to_owned()),
            ..exited(code, "Error", None)
        }
    }

    fn with_reason(reason: &str, message: Option<&str>, code: i32) -> PodInfo {
        PodInfo {
            reason: Some(reason.to_owned()),
            message: message.map(str::to_owned),
            ..exited(code, "Error", None)
        }
    }

    fn waiting(reason: &str) -> PodInfo {
        PodInfo {
            phase: "Pending".to_owned(),
            container: ContainerInfo {
                waiting_reason: Some(reason.to_owned()),
                waiting_message: Some(format!("kubelet says {reason}")),
                ..ContainerInfo::default()
            },
            ..pod()
        }
    }

    fn class_of(end: &AttemptEnd) -> Option<FailureClass> {
        match end {
            AttemptEnd::Succeeded => None,
            AttemptEnd::Failed(f) => Some(f.class),
        }
    }

    /// (case, job, pod, expected class (None: succeeded), expected message fragment)
    type Case = (
        &'static str,
        JobInfo,
        Option<PodInfo>,
        Option<FailureClass>,
        &'static str,
    );

    #[test]
    fn classify_finished_rules() {
        let emptydir = r#"Usage of EmptyDir volume "scratch" exceeds the limit "50Gi". "#;
        let cases: Vec<Case> = vec![
            (
                "complete",
                job(&[("Complete", None)]),
                Some(exited(0, "Completed", None)),
                None,
                "",
            ),
            (
                "complete even if the pod is gone",
                job(&[("SuccessCriteriaMet", None), ("Complete", None)]),
                None,
                None,
                "",
            ),
            (
                "preempted beats exit code",
                failed_job(),
                Some(disrupted("PreemptionByScheduler", 143)),
                Some(Preempted),
                "preempted the runner pod on node gpu-1",
            ),
            (
                "eviction API",
                failed_job(),
                Some(disrupted("EvictionByEvictionAPI", 65)),
                Some(Evicted),
                "evicted on node gpu-1",
            ),
            (
                "kubelet termination",
                failed_job(),
                Some(disrupted("TerminationByKubelet", 137)),
                Some(Evicted),
                "kubelet terminated",
            ),
            (
                "taint manager",
                failed_job(),
                Some(disrupted("DeletionByTaintManager", 1)),
                Some(NodeLost),
                "its node gpu-1 became unreachable",
            ),
            (
                "pod GC",
                failed_job(),
                Some(disrupted("DeletionByPodGC", 1)),
                Some(NodeLost),
                "garbage-collected",
            ),
            (
                "unknown disruption",
                failed_job(),
                Some(disrupted("SomethingNew", 1)),
                Some(Evicted),
                "(SomethingNew)",
            ),
            (
                "disruption beats deadline",
                job(&[("Failed", Some("DeadlineExceeded"))]),
                Some(disrupted("PreemptionByScheduler", 143)),
                Some(Preempted),
                "",
            ),
            (
                "node-pressure eviction",
                failed_job(),
                Some(with_reason(
                    "Evicted",
                    Some("The node was low on resource: memory."),
                    137,
                )),
                Some(Evicted),
                "evicted the runner pod on node gpu-1: The node was low on resource: memory.",
            ),
            (
                "scratch over its limit is the task's doing",
                failed_job(),
                Some(with_reason("Evicted", Some(emptydir), 137)),
                Some(Transient),
                "more local disk than its pod allows on node gpu-1: Usage of EmptyDir volume",
            ),
            (
                "node lost",
                failed_job(),
                Some(with_reason("NodeLost", None, 1)),
                Some(NodeLost),
                "(NodeLost)",
            ),
            (
                "shutdown",
                failed_job(),
                Some(with_reason("Shutdown", None, 143)),
                Some(NodeLost),
                "",
            ),
            (
                "node shutdown",
                failed_job(),
                Some(with_reason("NodeShutdown", None, 143)),
                Some(NodeLost),
                "",
            ),
            (
                "terminated",
                failed_job(),
                Some(with_reason("Terminated", None, 143)),
                Some(NodeLost),
                "",
            ),
            (
                "admission error",
                failed_job(),
                Some(with_reason("UnexpectedAdmissionError", None, 0)),
                Some(Evicted),
                "refused",
            ),
            (
                "out of GPUs",
                failed_job(),
                Some(with_reason(
                    "OutOfnvidia.com/gpu",
                    Some("Node didn't have enough resource"),
                    0,
                )),
                Some(Evicted),
                "(OutOfnvidia.com/gpu): Node didn't have enough resource",
            ),
            (
                "out of cpu",
                failed_job(),
                Some(with_reason("OutOfcpu", None, 0)),
                Some(Evicted),
                "",
            ),
            (
                "job deadline beats exit code",
                job(&[("Failed", Some("DeadlineExceeded"))]),
                Some(exited(143, "Error", None)),
                Some(ExecutionDeadline),
                "execution timeout",
            ),
            (
                "job deadline without pod",
                job(&[("Failed", Some("DeadlineExceeded"))]),
                None,
                Some(ExecutionDeadline),
                "",
            ),
            (
                "pod deadline",
                failed_job(),
                Some(with_reason("DeadlineExceeded", None, 137)),
                Some(ExecutionDeadline),
                "",
            ),
            (
                "OOM with exit 137",
                failed_job(),
                Some(exited(137, "OOMKilled", Some("decoding frame 1234"))),
                Some(OomKilled),
                "out of memory on node gpu-1 (OOMKilled): the pool's memory limit is too small for this media: decoding frame 1234",
            ),
            (
                "invalid input",
                failed_job(),
                Some(exited(65, "Error", Some("not a media file\n"))),
                Some(InvalidInput),
                "runner exited with code 65 (invalid input): not a media file",
            ),
            (
                "usage",
                failed_job(),
                Some(exited(64, "Error", None)),
                Some(InvalidInput),
                "runner exited with code 64 (invalid request)",
            ),
            (
                "temporary failure",
                failed_job(),
                Some(exited(75, "Error", Some("webhook unreachable"))),
                Some(Transient),
                "runner exited with code 75 (temporary failure): webhook unreachable",
            ),
            (
                "other code",
                failed_job(),
                Some(exited(1, "Error", None)),
                Some(Transient),
                "runner exited with code 1",
            ),
            (
                "killed without OOM",
                failed_job(),
                Some(exited(137, "Error", None)),
                Some(Transient),
                "runner exited with code 137 (killed by signal 9)",
            ),
            (
                "cannot run",
                failed_job(),
                Some(exited(128, "StartError", Some("exec: no such file"))),
                Some(Transient),
                "runner exited with code 128 (StartError): exec: no such file",
            ),
            (
                "image pull",
                failed_job(),
                Some(waiting("ErrImagePull")),
                Some(ImagePull),
                "cannot pull the runner image (ErrImagePull): kubelet says ErrImagePull",
            ),
            (
                "image backoff",
                failed_job(),
                Some(waiting("ImagePullBackOff")),
                Some(ImagePull),
                "",
            ),
            (
                "invalid image",
                failed_job(),
                Some(waiting("InvalidImageName")),
                Some(ImagePull),
                "",
            ),
            (
                "never pull",
                failed_job(),
                Some(waiting("ErrImageNeverPull")),
                Some(ImagePull),
                "",
            ),
            (
                "pod gone",
                failed_job(),
                None,
                Some(Lost),
                "the runner pod disappeared before reporting how it ended",
            ),
            (
                "otherwise the Job's reason",
                failed_job(),
                Some(exited(0, "Completed", None)),
                Some(Transient),
                "the runner's Job failed (BackoffLimitExceeded): job says BackoffLimitExceeded",
            ),
            (
                "config error at the end is not an image pull",
                failed_job(),
                Some(waiting("CreateContainerConfigError")),
                Some(Transient),
                "BackoffLimitExceeded",
            ),
        ];
        for (case, job, pod, class, fragment) in cases {
            let end = classify_finished(&job, pod.as_ref());
            assert_eq!(class_of(&end), class, "{case}: {end:?}");
            if let AttemptEnd::Failed(failure) = &end {
                assert!(
                    failure.message.contains(fragment),
                    "{case}: {:?} lacks {fragment:?}",
                    failure.message
                );
                assert!(failure.message.len() <= MAX_MESSAGE_LEN);
            }
        }
    }

    #[test]
    fn stuck_pods() {
        let grace = Duration::from_secs(300);
        let before = Duration::from_secs(60);
        let after = Duration::from_secs(300);
        // (waiting reason, pending for, expected class)
        let cases = [
            ("InvalidImageName", before, Some(ImagePull)),
            ("ErrImageNeverPull", before, Some(ImagePull)),
            ("ErrImagePull", before, None),
            ("ErrImagePull", after, Some(ImagePull)),
            ("ImagePullBackOff", before, None),
            ("ImagePullBackOff", after, Some(ImagePull)),
            ("CreateContainerConfigError", before, None),
            ("CreateContainerConfigError", after, Some(Transient)),
            ("ContainerCreating", after, None),
            ("PodInitializing", after, None),
        ];
        for (reason, pending, class) in cases {
            let failure = stuck(&waiting(reason), pending, grace);
            assert_eq!(
                failure.as_ref().map(|f| f.class),
                class,
                "{reason} {pending:?}"
            );
            if let Some(failure) = failure {
                assert!(failure.message.contains(reason), "{}", failure.message);
                assert!(failure.message.contains(&format!("kubelet says {reason}")));
            }
        }
        let failure = stuck(
            &waiting("ImagePullBackOff"),
            Duration::from_secs(3725),
            grace,
        );
        assert!(failure.unwrap().message.contains("for 1h2m5s"));
        // Running or never scheduled: nothing to say.
        assert_eq!(stuck(&pod(), after, grace), None);
    }

    #[test]
    fn charged_and_retryable() {
        // (class, reason, charged, retryable)
        let cases = [
            (InvalidInput, "InvalidInput", true, false),
            (Transient, "RunnerFailed", true, true),
            (OomKilled, "OOMKilled", true, true),
            (ExecutionDeadline, "ExecutionDeadlineExceeded", true, false),
            (ImagePull, "ImagePullFailed", true, true),
            (Evicted, "Evicted", false, true),
            (Preempted, "Preempted", false, true),
            (NodeLost, "NodeLost", false, true),
            (NoProgress, "NoProgress", true, true),
            (Lost, "PodLost", true, true),
        ];
        assert_eq!(cases.map(|c| c.0), FailureClass::ALL);
        for (class, reason, charged, retryable) in cases {
            assert_eq!(class.reason(), reason);
            assert_eq!(class.charged(), charged, "{class:?}");
            assert_eq!(class.retryable(), retryable, "{class:?}");
        }
    }

    #[test]
    fn messages_are_truncated_on_char_boundaries() {
        // 3-byte characters never line up with the limit.
        let long = "é€".repeat(400);
        let failure = Failure::new(Transient, long.clone());
        assert!(failure.message.len() <= MAX_MESSAGE_LEN);
        assert!(failure.message.len() > MAX_MESSAGE_LEN - 8);
        assert!(failure.message.ends_with(ELLIPSIS));
        assert!(long.starts_with(failure.message.trim_end_matches(ELLIPSIS)));

        // A long log tail keeps the head and the end of the log.
        let logs = format!(
            "{}\nfatal: not a media file",
            "ffmpeg noise ü\n".repeat(200)
        );
        let end = classify_finished(&failed_job(), Some(&exited(65, "Error", Some(&logs))));
        let AttemptEnd::Failed(failure) = end else {
            panic!("not failed")
        };
        assert_eq!(failure.class, InvalidInput);
        assert!(failure.message.len() <= MAX_MESSAGE_LEN);
        assert!(
            failure
                .message
                .starts_with("runner exited with code 65 (invalid input): …")
        );
        assert!(failure.message.ends_with("fatal: not a media file"));

        // Short messages are kept whole.
        assert_eq!(Failure::new(Lost, "ü").message, "ü");
        assert_eq!(
            Failure::new(Lost, "x".repeat(MAX_MESSAGE_LEN))
                .message
                .len(),
            MAX_MESSAGE_LEN
        );
    }

    fn pod_json(state: serde_json::Value, conditions: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "enc-t-1-x7k2p",
                "namespace": "ns",
                "labels": {
                    "job-name": "enc-t-1",
                    "batch.kubernetes.io/job-name": "enc-t-1",
                    "runner.esup-portail.org/task-uid": "uid",
                },
            },
            "spec": {"nodeName": "gpu-1", "containers": [{"name": "runner", "image": "r"}]},
            "status": {
                "phase": "Failed",
                "conditions": conditions,
                "containerStatuses": [{
                    "name": "runner",
                    "image": "r",
                    "imageID": "",
                    "ready": false,
                    "restartCount": 0,
                    "state": state,
                }],
            },
        }))
        .unwrap()
    }

    fn job_json(reason: &str) -> Job {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": "enc-t-1",
                "namespace": "ns",
                "labels": {"runner.esup-portail.org/task-uid": "uid"},
            },
            "spec": {"template": {"spec": {"containers": []}}},
            "status": {
                "failed": 1,
                "conditions": [
                    {"type": "FailureTarget", "status": "True", "reason": reason},
                    {"type": "Failed", "status": "True", "reason": reason, "message": "Job has reached the specified backoff limit"},
                ],
            },
        }))
        .unwrap()
    }

    #[test]
    fn from_objects_exit_code_and_oom() {
        let job = JobInfo::from_object(&job_json("BackoffLimitExceeded")).unwrap();
        assert!(job.finished().is_some());

        let oom = pod_json(
            serde_json::json!({"terminated": {"exitCode": 137, "reason": "OOMKilled", "message": "frame 12"}}),
            serde_json::json!([{"type": "Ready", "status": "False"}]),
        );
        let oom = PodInfo::from_object(&oom).unwrap();
        assert_eq!(oom.container.exit_code, Some(137));
        assert_eq!(
            oom.container.terminated_reason.as_deref(),
            Some("OOMKilled")
        );
        assert_eq!(oom.disruption, None);
        assert_eq!(
            class_of(&classify_finished(&job, Some(&oom))),
            Some(OomKilled)
        );

        let invalid = pod_json(
            serde_json::json!({"terminated": {"exitCode": 65, "reason": "Error", "message": "not a media file"}}),
            serde_json::json!([]),
        );
        let invalid = PodInfo::from_object(&invalid).unwrap();
        let AttemptEnd::Failed(failure) = classify_finished(&job, Some(&invalid)) else {
            panic!("not failed")
        };
        assert_eq!(failure.class, InvalidInput);
        assert_eq!(
            failure.message,
            "runner exited with code 65 (invalid input): not a media file"
        );
    }

    #[test]
    fn the_runner_container_is_classified_not_a_sidecar() {
        // A mesh injects its proxy first; it is still running when the runner was OOM-killed.
        let mut pod = pod_json(
            serde_json::json!({"terminated": {"exitCode": 137, "reason": "OOMKilled"}}),
            serde_json::json!([]),
        );
        let statuses = pod
            .status
            .as_mut()
            .and_then(|s| s.container_statuses.as_mut())
            .unwrap();
        let sidecar: k8s_openapi::api::core::v1::ContainerStatus =
            serde_json::from_value(serde_json::json!({
                "name": "istio-proxy", "image": "proxy", "imageID": "", "ready": true,
                "restartCount": 0,
                "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
            }))
            .unwrap();
        statuses.insert(0, sidecar);
        let info = PodInfo::from_object(&pod).unwrap();
        assert_eq!(info.container.exit_code, Some(137));
        assert!(!info.container.running);
        let job = JobInfo::from_object(&job_json("BackoffLimitExceeded")).unwrap();
        assert_eq!(
            class_of(&classify_finished(&job, Some(&info))),
            Some(OomKilled)
        );
    }

    #[test]
    fn from_objects_disruption_and_waiting() {
        let job = JobInfo::from_object(&job_json("BackoffLimitExceeded")).unwrap();
        let preempted = pod_json(
            serde_json::json!({"terminated": {"exitCode": 143, "reason": "Error"}}),
            serde_json::json!([
                {"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler"},
            ]),
        );
        let preempted = PodInfo::from_object(&preempted).unwrap();
        assert_eq!(
            preempted.disruption.as_deref(),
            Some("PreemptionByScheduler")
        );
        assert_eq!(
            class_of(&classify_finished(&job, Some(&preempted))),
            Some(Preempted)
        );

        // A false DisruptionTarget is no disruption.
        let not_disrupted = pod_json(
            serde_json::json!({"terminated": {"exitCode": 1, "reason": "Error"}}),
            serde_json::json!([
                {"type": "DisruptionTarget", "status": "False", "reason": "PreemptionByScheduler"},
            ]),
        );
        let not_disrupted = PodInfo::from_object(&not_disrupted).unwrap();
        assert_eq!(not_disrupted.disruption, None);
        assert_eq!(
            class_of(&classify_finished(&job, Some(&not_disrupted))),
            Some(Transient)
        );

        let pulling = pod_json(
            serde_json::json!({"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"r\""}}),
            serde_json::json!([]),
        );
        let pulling = PodInfo::from_object(&pulling).unwrap();
        assert_eq!(
            pulling.container.waiting_reason.as_deref(),
            Some("ImagePullBackOff")
        );
        let failure = stuck(&pulling, Duration::from_secs(600), Duration::from_secs(300)).unwrap();
        assert_eq!(failure.class, ImagePull);
        assert!(failure.message.contains("Back-off pulling image"));
    }
}
