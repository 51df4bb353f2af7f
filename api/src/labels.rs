//! Every label and annotation key the components exchange, declared once: what the operator
//! puts on the Jobs and Secrets it creates, what the webhook puts on the tasks it creates, the
//! tenant Secrets' label, and the node labels the scheduler reads. Pure constants.

/// Recommended labels (`app.kubernetes.io/*`) on everything the operator launches.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "esup-operator";
pub const NAME: &str = "app.kubernetes.io/name";
pub const NAME_VALUE: &str = "esup-runner";
/// Selector of everything the operator launched.
pub const MANAGED_SELECTOR: &str = "app.kubernetes.io/managed-by=esup-operator";

/// On Jobs, pods and callback Secrets: the task and launch they belong to.
pub const TASK_UID: &str = "runner.esup-portail.org/task-uid";
pub const TASK_NAME: &str = "runner.esup-portail.org/task-name";
pub const TASK_KIND: &str = "runner.esup-portail.org/task-kind";
pub const POOL: &str = "runner.esup-portail.org/pool";
pub const LAUNCH: &str = "runner.esup-portail.org/launch";

/// The tenant (institution): on tasks and their Jobs, and on the tenant Secrets, where its
/// value names the tenant the Secret's tokens map to.
pub const TENANT: &str = "runner.esup-portail.org/tenant";

/// Marks the NetworkPolicy that confines runner pods in a namespace (the chart's
/// `esup-runner` policy). With `--require-runner-network-policy`, the operator launches no
/// task of a namespace without one.
pub const RUNNER_POLICY: &str = "runner.esup-portail.org/runner-policy";
pub const RUNNER_POLICY_SELECTOR: &str = "runner.esup-portail.org/runner-policy=true";

/// On tasks the webhook creates: the first 40 hex digits of the request's tenant
/// fingerprint, which finds the request's de-duplication chain.
pub const FINGERPRINT: &str = "runner.esup-portail.org/fingerprint";
/// On tasks the webhook creates: the de-duplication epoch their name was derived from.
pub const DEDUP_EPOCH: &str = "runner.esup-portail.org/dedup-epoch";

/// Annotation holding the Esup-Pod request as sent, so that `/task/status` answers with its
/// parameters.
pub const REQUEST_ANNOTATION: &str = "runner.esup-portail.org/request";
/// Annotation that asks for a task to be cancelled (Esup-Pod's `/task/stop`): the operator
/// stops its Job and ends it `Failed` with reason `Cancelled`.
pub const STOP_ANNOTATION: &str = "runner.esup-portail.org/stop-requested";
/// Annotation the webhook sets on a task it accepted with invalid parameters (the reference
/// manager accepts them and its runner fails the task): the message the task fails with. The
/// operator ends such a task `Failed`, reason `InvalidParameters`, before it is ever admitted.
pub const INVALID_PARAMETERS_ANNOTATION: &str = "runner.esup-portail.org/invalid-parameters";

/// Node label that NVIDIA GPU feature discovery sets to the GPU model.
pub const GPU_PRODUCT: &str = "nvidia.com/gpu.product";
/// Well-known node label holding the node name, for avoiding nodes that failed.
pub const HOSTNAME: &str = "kubernetes.io/hostname";

/// Longest label value, and longest DNS-1123 label (Job names, since the Job controller copies
/// them into a pod label).
pub const MAX_LABEL_LEN: usize = 63;

/// A DNS-1123 label: lower-case alphanumerics and inner dashes, 1 to 63 characters.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_LABEL_LEN
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A valid label value: empty, or up to 63 alphanumerics, `-`, `_`, `.`, alphanumeric at both
/// ends.
pub fn is_label_value(s: &str) -> bool {
    let edge_ok = |b: Option<u8>| b.is_none_or(|b| b.is_ascii_alphanumeric());
    s.len() <= MAX_LABEL_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && edge_ok(s.bytes().next())
        && edge_ok(s.bytes().last())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_checks() {
        for (s, label, value) in [
            ("enc-a-1", true, true),
            ("a", true, true),
            ("", false, true),
            ("-a", false, false),
            ("a-", false, false),
            ("a.b", false, true),
            ("A_b", false, true),
            ("a".repeat(63).as_str(), true, true),
            ("a".repeat(64).as_str(), false, false),
        ] {
            assert_eq!(is_dns_label(s), label, "{s:?}");
            assert_eq!(is_label_value(s), value, "{s:?}");
        }
    }
}
