//! The notifier's decisions, free of I/O: what a task needs next, what to record before and
//! after a send, the retry delays, and the body and condition that describe it.
//!
//! Numbering: `attempts` counts sends made (the first one included). Send `k` that fails is
//! followed by send `k + 1` after `retry_delays[k - 1]`; with the default five delays there are
//! at most six sends (the first plus Esup-Pod manager's five retries), then `Exhausted`.

use std::time::Duration;

use esup_api::conditions::set_condition;
use esup_api::conditions::{reason, task as cond};
use esup_api::status::{NotificationState, NotificationStatus, TaskOutcome, TaskPhase, TaskStatus};
use esup_api::task::TaskKey;
use esup_api::wire::NotifyBody;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// Longest `lastError` kept, in characters (the CRD schema's limit).
pub const MAX_LAST_ERROR_CHARS: usize = 1024;

/// What the notifier keeps of a task between events: enough to decide, nothing to send.
/// The body (with its up to 64 KiB of `script_output`) is read from the API at send time.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskView {
    pub key: TaskKey,
    pub uid: String,
    pub resource_version: Option<String>,
    pub generation: Option<i64>,
    pub phase: TaskPhase,
    /// `spec.requester.tenant`: sends are bounded per tenant.
    pub tenant: String,
    /// `spec.notify` is set.
    pub has_notify: bool,
    pub notification: Option<NotificationStatus>,
}

/// What a task needs now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing, now or later (not terminal, or delivery settled).
    Skip,
    /// Record once that Esup-Pod asked for no notification.
    MarkNotRequested { outcome: TaskOutcome },
    /// Make send number `attempt` (1-based).
    Send { attempt: u32, outcome: TaskOutcome },
    /// The last allowed send was recorded but its result never was (the sender died): give up.
    GiveUp,
    /// The next send is due then.
    WaitUntil(Timestamp),
}

/// Sends allowed: the first plus one per retry delay.
pub fn max_sends(retry_delays: &[Duration]) -> u32 {
    u32::try_from(retry_delays.len())
        .unwrap_or(u32::MAX)
        .saturating_add(1)
}

/// `base × factor^n` truncated to whole seconds, for n in 0..retries: the manager's
/// `int(COMPLETION_NOTIFY_RETRY_DELAY_SECONDS * BACKOFF_FACTOR ** n)`.
pub fn backoff_delays(base: Duration, factor: f64, retries: usize) -> Vec<Duration> {
    let mut delay = base.as_secs_f64();
    let mut delays = Vec::with_capacity(retries);
    for _ in 0..retries {
        delays.push(Duration::from_secs_f64(delay.trunc().max(0.0)));
        delay *= factor;
    }
    delays
}

/// The reference manager's schedule: 60, 90, 135, 202, 303 s.
pub fn default_retry_delays() -> Vec<Duration> {
    backoff_delays(Duration::from_secs(60), 1.5, 5)
}

pub fn later(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(d).unwrap_or(Timestamp::MAX)
}

pub fn next_step(view: &TaskView, max_sends: u32, now: Timestamp) -> Step {
    let Some(outcome) = view.phase.outcome() else {
        return Step::Skip;
    };
    if !view.has_notify {
        return match view.notification {
            None => Step::MarkNotRequested { outcome },
            Some(_) => Step::Skip,
        };
    }
    let Some(n) = &view.notification else {
        return Step::Send {
            attempt: 1,
            outcome,
        };
    };
    if n.outcome != outcome {
        // The task ended again, differently: what Esup-Pod was told is stale.
        return Step::Send {
            attempt: 1,
            outcome,
        };
    }
    match n.state {
        NotificationState::Delivered
        | NotificationState::Exhausted
        | NotificationState::NotRequested => Step::Skip,
        NotificationState::Pending | NotificationState::Retrying => {
            if let Some(next) = &n.next_attempt_time
                && next.0 > now
            {
                Step::WaitUntil(next.0)
            } else if n.attempts >= max_sends {
                Step::GiveUp
            } else {
                Step::Send {
                    attempt: n.attempts.saturating_add(1),
                    outcome,
                }
            }
        }
    }
}

/// How one send ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendOutcome {
    /// Esup-Pod answered 2xx, e.g. "200 OK".
    Accepted(String),
    /// No answer within the read timeout after the request went out. Esup-Pod imports the
    /// results inside the request, so this counts as delivered: a resend would import twice.
    ReadTimeout,
    /// Non-2xx, or no usable connection: retried.
    Failed(String),
    /// The URL policy refuses the notify URL: retrying cannot help.
    Refused(String),
    /// The task's `tokenSecretRef` names no token of its tenant (see `token.rs`): nothing is
    /// sent, and retrying cannot help.
    TokenRefused(String),
}

impl SendOutcome {
    pub fn is_delivered(&self) -> bool {
        matches!(self, Self::Accepted(_) | Self::ReadTimeout)
    }
}

/// A notification nothing was recorded for yet.
pub fn fresh(outcome: TaskOutcome) -> NotificationStatus {
    NotificationStatus {
        state: NotificationState::Pending,
        outcome,
        attempts: 0,
        last_attempt_time: None,
        next_attempt_time: None,
        delivered_time: None,
        last_error: None,
    }
}

pub fn not_requested(outcome: TaskOutcome) -> NotificationStatus {
    NotificationStatus {
        state: NotificationState::NotRequested,
        ..fresh(outcome)
    }
}

/// The record written before send `attempt`. Its `nextAttemptTime` is when the following send
/// would be due if this one failed, and at least `in_flight_bound` away (how long a send can
/// take), so that if the sender dies mid-send the next leader retries only once this send is
/// certainly over.
pub fn before_send(
    previous: Option<&NotificationStatus>,
    outcome: TaskOutcome,
    attempt: u32,
    retry_delays: &[Duration],
    in_flight_bound: Duration,
    now: Timestamp,
) -> NotificationStatus {
    let index = usize::try_from(attempt.saturating_sub(1)).unwrap_or(usize::MAX);
    let wait = retry_delays
        .get(index)
        .copied()
        .unwrap_or_default()
        .max(in_flight_bound);
    NotificationStatus {
        state: if attempt <= 1 {
            NotificationState::Pending
        } else {
            NotificationState::Retrying
        },
        outcome,
        attempts: attempt,
        last_attempt_time: Some(Time(now)),
        next_attempt_time: Some(Time(later(now, wait))),
        delivered_time: None,
        last_error: previous
            .filter(|p| p.outcome == outcome)
            .and_then(|p| p.last_error.clone()),
    }
}

/// The record written once a send ended (or, for `Refused`, instead of sending).
pub fn after_send(
    recorded: &NotificationStatus,
    outcome: &SendOutcome,
    retry_delays: &[Duration],
    now: Timestamp,
) -> NotificationStatus {
    let base = NotificationStatus {
        next_attempt_time: None,
        delivered_time: None,
        ..recorded.clone()
    };
    match outcome {
        SendOutcome::Accepted(_) | SendOutcome::ReadTimeout => NotificationStatus {
            state: NotificationState::Delivered,
            delivered_time: Some(Time(now)),
            last_error: None,
            ..base
        },
        SendOutcome::Refused(why) | SendOutcome::TokenRefused(why) => NotificationStatus {
            state: NotificationState::Exhausted,
            last_error: Some(esup_api::truncate_chars(why, MAX_LAST_ERROR_CHARS)),
            ..base
        },
        SendOutcome::Failed(why) => {
            let index = usize::try_from(recorded.attempts.saturating_sub(1)).unwrap_or(usize::MAX);
            let last_error = Some(esup_api::truncate_chars(why, MAX_LAST_ERROR_CHARS));
            match retry_delays.get(index) {
                Some(delay) => NotificationStatus {
                    state: NotificationState::Retrying,
                    next_attempt_time: Some(Time(later(now, *delay))),
                    last_error,
                    ..base
                },
                _ => NotificationStatus {
                    state: NotificationState::Exhausted,
                    last_error,
                    ..base
                },
            }
        }
    }
}

/// The record of [`Step::GiveUp`]: the last send's result was never recorded, and it counts as
/// failed, like any send a crash interrupted.
pub fn interrupted(recorded: &NotificationStatus) -> NotificationStatus {
    let why = format!(
        "send {} was interrupted (the notifier stopped during it); its outcome is unknown",
        recorded.attempts
    );
    NotificationStatus {
        state: NotificationState::Exhausted,
        next_attempt_time: None,
        last_error: Some(esup_api::truncate_chars(&why, MAX_LAST_ERROR_CHARS)),
        ..recorded.clone()
    }
}

/// The `Notified` condition that goes with a notification, or none (pending, not requested).
/// `how` is the send that produced the record, if one just did.
pub fn notified_condition(
    n: &NotificationStatus,
    how: Option<&SendOutcome>,
    existing: Option<&Condition>,
    generation: Option<i64>,
    now: Timestamp,
) -> Option<Condition> {
    let error = n.last_error.as_deref().unwrap_or("unknown error");
    let (status, why, message) = match n.state {
        NotificationState::Pending | NotificationState::NotRequested => return None,
        NotificationState::Delivered => {
            let message = match how {
                Some(SendOutcome::ReadTimeout) => {
                    "Esup-Pod did not answer within the read timeout while importing the \
                     results; counted as delivered so that the import is not repeated"
                        .to_owned()
                }
                Some(SendOutcome::Accepted(answer)) => format!("Esup-Pod answered {answer}"),
                _ => "Esup-Pod acknowledged the notification".to_owned(),
            };
            (true, reason::DELIVERED, message)
        }
        NotificationState::Retrying => (
            false,
            reason::DELIVERY_FAILED,
            format!("send {} failed: {error}; retrying", n.attempts),
        ),
        NotificationState::Exhausted if matches!(how, Some(SendOutcome::TokenRefused(_))) => (
            false,
            super::token::NOTIFY_TOKEN_REFUSED,
            format!("not sent: {error}"),
        ),
        NotificationState::Exhausted => (
            false,
            reason::DELIVERY_FAILED,
            format!(
                "gave up after {} send(s): {error}; Esup-Pod can still poll /task/status",
                n.attempts
            ),
        ),
    };
    let mut conditions: Vec<Condition> = existing.cloned().into_iter().collect();
    set_condition(
        &mut conditions,
        cond::NOTIFIED,
        status,
        why,
        &message,
        now,
        generation,
    );
    conditions.pop()
}

/// `error_message` of the notify body ([`TaskStatus::error_message`]): null on success, and
/// a string for every failure, since Esup-Pod shows one.
fn error_message(phase: TaskPhase, status: Option<&TaskStatus>) -> Option<String> {
    match status {
        Some(status) if status.phase == phase => status.error_message(),
        Some(status) => TaskStatus {
            phase,
            ..status.clone()
        }
        .error_message(),
        None => TaskStatus {
            phase,
            ..TaskStatus::default()
        }
        .error_message(),
    }
}

/// The notify body of a terminal task; `None` before the end.
pub fn notify_body(
    task_id: &str,
    phase: TaskPhase,
    status: Option<&TaskStatus>,
) -> Option<NotifyBody> {
    let outcome = phase.outcome()?;
    Some(NotifyBody {
        task_id: task_id.to_owned(),
        status: outcome.into(),
        error_message: error_message(phase, status),
        script_output: status
            .and_then(|s| s.result.as_ref())
            .and_then(|r| r.script_output.clone()),
    })
}

/// The server-side apply body of a notification write: only `status.notification` and the
/// `Notified` condition, the fields the notifier's field manager owns. A condition left out
/// is removed (it was ours). `resource_version` makes the write conditional.
pub fn status_patch(
    key: &TaskKey,
    resource_version: Option<&str>,
    notification: &NotificationStatus,
    condition: Option<&Condition>,
) -> serde_json::Value {
    let mut metadata = serde_json::json!({"name": key.name, "namespace": key.namespace});
    if let Some(rv) = resource_version {
        metadata["resourceVersion"] = serde_json::Value::String(rv.to_owned());
    }
    let mut status = serde_json::json!({ "notification": notification });
    if let Some(condition) = condition {
        status["conditions"] = serde_json::json!([condition]);
    }
    serde_json::json!({
        "apiVersion": format!("{}/{}", esup_api::GROUP, esup_api::VERSION),
        "kind": key.kind.kind_name(),
        "metadata": metadata,
        "status": status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use esup_api::status::TaskResult;
    use esup_api::task::TaskKind;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).expect("valid timestamp")
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn key() -> TaskKey {
        TaskKey {
            kind: TaskKind::Encoding,
            namespace: "univ-x".into(),
            name: "2f53b18a".into(),
        }
    }

    fn view(phase: TaskPhase, has_notify: bool, n: Option<NotificationStatus>) -> TaskView {
        TaskView {
            key: key(),
            uid: "uid-1".into(),
            resource_version: Some("42".into()),
            generation: Some(1),
            phase,
            tenant: "univ-x".into(),
            has_notify,
            notification: n,
        }
    }

    fn record(
        state: NotificationState,
        outcome: TaskOutcome,
        attempts: u32,
        next: Option<i64>,
    ) -> NotificationStatus {
        NotificationStatus {
            state,
            attempts,
            next_attempt_time: next.map(|s| Time(at(s))),
            ..fresh(outcome)
        }
    }

    #[test]
    fn delay_table_is_the_managers() {
        assert_eq!(
            default_retry_delays(),
            [60, 90, 135, 202, 303].map(secs).to_vec()
        );
        assert_eq!(max_sends(&default_retry_delays()), 6);
        assert_eq!(
            backoff_delays(secs(1), 2.0, 4),
            [1, 2, 4, 8].map(secs).to_vec()
        );
        assert!(backoff_delays(secs(60), 1.5, 0).is_empty());
        assert_eq!(max_sends(&[]), 1);
    }

    #[test]
    fn next_steps() {
        use NotificationState as N;
        use TaskOutcome as O;
        use TaskPhase as P;
        let send = |attempt, outcome| Step::Send { attempt, outcome };
        let cases: Vec<(&str, TaskView, Step)> = vec![
            ("running", view(P::Running, true, None), Step::Skip),
            (
                "queued, no notify",
                view(P::Queued, false, None),
                Step::Skip,
            ),
            (
                "succeeded, no notify",
                view(P::Succeeded, false, None),
                Step::MarkNotRequested {
                    outcome: O::Completed,
                },
            ),
            (
                "timed out, no notify",
                view(P::TimedOut, false, None),
                Step::MarkNotRequested {
                    outcome: O::Timeout,
                },
            ),
            (
                "already marked",
                view(
                    P::Succeeded,
                    false,
                    Some(record(N::NotRequested, O::Completed, 0, None)),
                ),
                Step::Skip,
            ),
            (
                "succeeded",
                view(P::Succeeded, true, None),
                send(1, O::Completed),
            ),
            ("failed", view(P::Failed, true, None), send(1, O::Failed)),
            (
                "timed out",
                view(P::TimedOut, true, None),
                send(1, O::Timeout),
            ),
            (
                "first send in flight or pending retry",
                view(
                    P::Succeeded,
                    true,
                    Some(record(N::Pending, O::Completed, 1, Some(60))),
                ),
                Step::WaitUntil(at(60)),
            ),
            (
                "retry due",
                view(
                    P::Failed,
                    true,
                    Some(record(N::Retrying, O::Failed, 1, Some(0))),
                ),
                send(2, O::Failed),
            ),
            (
                "retry overdue",
                view(
                    P::Failed,
                    true,
                    Some(record(N::Retrying, O::Failed, 3, Some(-500))),
                ),
                send(4, O::Failed),
            ),
            (
                "no next time recorded",
                view(
                    P::Failed,
                    true,
                    Some(record(N::Retrying, O::Failed, 2, None)),
                ),
                send(3, O::Failed),
            ),
            (
                "last send interrupted",
                view(
                    P::Failed,
                    true,
                    Some(record(N::Retrying, O::Failed, 6, Some(0))),
                ),
                Step::GiveUp,
            ),
            (
                "last send in flight",
                view(
                    P::Failed,
                    true,
                    Some(record(N::Retrying, O::Failed, 6, Some(20))),
                ),
                Step::WaitUntil(at(20)),
            ),
            (
                "delivered",
                view(
                    P::Succeeded,
                    true,
                    Some(record(N::Delivered, O::Completed, 2, None)),
                ),
                Step::Skip,
            ),
            (
                "exhausted",
                view(
                    P::TimedOut,
                    true,
                    Some(record(N::Exhausted, O::Timeout, 6, None)),
                ),
                Step::Skip,
            ),
            (
                "ended again, differently",
                view(
                    P::Succeeded,
                    true,
                    Some(record(N::Delivered, O::Failed, 1, None)),
                ),
                send(1, O::Completed),
            ),
        ];
        for (name, v, expected) in cases {
            assert_eq!(next_step(&v, 6, at(0)), expected, "{name}");
        }
    }

    #[test]
    fn records_before_and_after_sends() {
        use NotificationState::*;
        let delays = default_retry_delays();
        let bound = secs(25);
        let first = before_send(None, TaskOutcome::Completed, 1, &delays, bound, at(0));
        assert_eq!(
            first,
            NotificationStatus {
                state: Pending,
                attempts: 1,
                last_attempt_time: Some(Time(at(0))),
                next_attempt_time: Some(Time(at(60))),
                ..fresh(TaskOutcome::Completed)
            }
        );
        // With short delays the in-flight bound wins, so a crash never overlaps a live send.
        let quick = before_send(None, TaskOutcome::Completed, 1, &[secs(1)], bound, at(0));
        assert_eq!(quick.next_attempt_time, Some(Time(at(25))));
        let last = before_send(
            Some(&first),
            TaskOutcome::Completed,
            6,
            &delays,
            bound,
            at(0),
        );
        assert_eq!((last.state, last.attempts), (Retrying, 6));
        assert_eq!(last.next_attempt_time, Some(Time(at(25))));

        /// (case, attempts recorded, send outcome, state, next send at, lastError)
        type Case = (&'static str, u32, SendOutcome, NotificationState);
        let cases: Vec<(Case, Option<i64>, Option<&str>)> = vec![
            (
                ("2xx", 1, SendOutcome::Accepted("200 OK".into()), Delivered),
                None,
                None,
            ),
            (
                ("read timeout", 3, SendOutcome::ReadTimeout, Delivered),
                None,
                None,
            ),
            (
                (
                    "503 on the first send",
                    1,
                    SendOutcome::Failed("503 Service Unavailable".into()),
                    Retrying,
                ),
                Some(10 + 60),
                Some("503 Service Unavailable"),
            ),
            (
                (
                    "connection refused on the fifth send",
                    5,
                    SendOutcome::Failed("connection refused".into()),
                    Retrying,
                ),
                Some(10 + 303),
                Some("connection refused"),
            ),
            (
                (
                    "sixth send fails",
                    6,
                    SendOutcome::Failed("403 Forbidden".into()),
                    Exhausted,
                ),
                None,
                Some("403 Forbidden"),
            ),
            (
                (
                    "token refusal",
                    1,
                    SendOutcome::TokenRefused("key aws-secret-access-key".into()),
                    Exhausted,
                ),
                None,
                Some("key aws-secret-access-key"),
            ),
            (
                (
                    "policy refusal",
                    2,
                    SendOutcome::Refused("notify_url host not allowed".into()),
                    Exhausted,
                ),
                None,
                Some("notify_url host not allowed"),
            ),
        ];
        for ((name, attempts, outcome, state), next, error) in cases {
            let recorded = NotificationStatus {
                last_error: Some("earlier".into()),
                ..before_send(None, TaskOutcome::Failed, attempts, &delays, bound, at(0))
            };
            let after = after_send(&recorded, &outcome, &delays, at(10));
            assert_eq!(after.state, state, "{name}");
            assert_eq!(after.attempts, attempts, "{name}");
            assert_eq!(after.next_attempt_time, next.map(|s| Time(at(s))), "{name}");
            assert_eq!(after.last_error.as_deref(), error, "{name}");
            assert_eq!(after.last_attempt_time, Some(Time(at(0))), "{name}");
            assert_eq!(
                after.delivered_time.is_some(),
                outcome.is_delivered(),
                "{name}"
            );
        }
    }

    /// Drives the pure functions through a notify_url that always fails.
    #[test]
    fn a_dead_endpoint_gets_six_sends_then_exhausted() {
        let delays = default_retry_delays();
        let mut v = view(TaskPhase::Succeeded, true, None);
        let mut now = at(0);
        let mut gaps = Vec::new();
        let mut last_send: Option<Timestamp> = None;
        for _ in 0..20 {
            match next_step(&v, max_sends(&delays), now) {
                Step::Send { attempt, outcome } => {
                    if let Some(t) = last_send {
                        gaps.push(now.duration_since(t).as_secs());
                    }
                    last_send = Some(now);
                    let rec = before_send(
                        v.notification.as_ref(),
                        outcome,
                        attempt,
                        &delays,
                        secs(20),
                        now,
                    );
                    let failed = SendOutcome::Failed("502 Bad Gateway".into());
                    v.notification = Some(after_send(&rec, &failed, &delays, now));
                }
                Step::WaitUntil(t) => now = t,
                Step::Skip => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(gaps, vec![60, 90, 135, 202, 303]);
        let n = v.notification.expect("recorded");
        assert_eq!((n.state, n.attempts), (NotificationState::Exhausted, 6));
    }

    #[test]
    fn an_interrupted_last_send_is_given_up() {
        let delays = default_retry_delays();
        let rec = before_send(None, TaskOutcome::Failed, 6, &delays, secs(20), at(0));
        let v = view(TaskPhase::Failed, true, Some(rec.clone()));
        assert_eq!(next_step(&v, 6, at(19)), Step::WaitUntil(at(20)));
        assert_eq!(next_step(&v, 6, at(21)), Step::GiveUp);
        let gave_up = interrupted(&rec);
        assert_eq!(gave_up.state, NotificationState::Exhausted);
        assert_eq!(gave_up.attempts, 6);
        assert_eq!(gave_up.next_attempt_time, None);
        assert!(gave_up.last_error.is_some_and(|e| e.contains("send 6")));
    }

    fn status_with(
        result_error: Option<&str>,
        conditions: &[(&str, &str, &str)],
        script: Option<&str>,
    ) -> TaskStatus {
        TaskStatus {
            result: Some(TaskResult {
                outcome: TaskOutcome::Failed,
                error_message: result_error.map(str::to_owned),
                files: vec![],
                hardware: None,
                launch: None,
                script_output_ref: None,
                script_output: script.map(str::to_owned),
                report_time: Time(at(0)),
            }),
            conditions: conditions
                .iter()
                .map(|(t, s, m)| Condition {
                    type_: (*t).into(),
                    status: (*s).into(),
                    reason: "X".into(),
                    message: (*m).into(),
                    last_transition_time: Time(at(0)),
                    observed_generation: None,
                })
                .collect(),
            ..TaskStatus::default()
        }
    }

    #[test]
    fn error_messages() {
        use TaskPhase::*;
        let oom = "OOMKilled after 3 attempts";
        let cases: Vec<(&str, TaskPhase, Option<TaskStatus>, Option<&str>)> = vec![
            (
                "success is null",
                Succeeded,
                Some(status_with(Some("ignored"), &[], None)),
                None,
            ),
            (
                "runner's report first",
                Failed,
                Some(status_with(
                    Some("Encoding failed: see encoding.log"),
                    &[("Failed", "True", oom)],
                    None,
                )),
                Some("Encoding failed: see encoding.log"),
            ),
            (
                "then the Failed condition",
                Failed,
                Some(status_with(None, &[("Failed", "True", oom)], None)),
                Some(oom),
            ),
            (
                "a blank report does not count",
                Failed,
                Some(status_with(Some("  "), &[("Failed", "True", oom)], None)),
                Some(oom),
            ),
            (
                "TimedOut reads its own condition",
                TimedOut,
                Some(status_with(
                    None,
                    &[
                        ("Failed", "True", "not this one"),
                        ("TimedOut", "True", "waited 24h"),
                    ],
                    None,
                )),
                Some("waited 24h"),
            ),
            (
                "a False condition does not count",
                Failed,
                Some(status_with(None, &[("Failed", "False", "old")], None)),
                Some("Task failed."),
            ),
            ("no status at all", TimedOut, None, Some("Task timed out.")),
        ];
        for (name, phase, status, expected) in cases {
            assert_eq!(
                error_message(phase, status.as_ref()).as_deref(),
                expected,
                "{name}"
            );
        }
    }

    #[test]
    fn bodies() {
        let failed = status_with(
            Some("Cancelled by user."),
            &[],
            Some("[info_script.log]\nété"),
        );
        let body = notify_body("t-1", TaskPhase::Failed, Some(&failed)).expect("terminal");
        assert_eq!(
            String::from_utf8(serde_json::to_vec(&body).expect("ser")).expect("utf8"),
            r#"{"task_id":"t-1","status":"failed","error_message":"Cancelled by user.","script_output":"[info_script.log]\nété"}"#
        );
        let body = notify_body("t-2", TaskPhase::Succeeded, None).expect("terminal");
        assert_eq!(
            serde_json::to_string(&body).expect("ser"),
            r#"{"task_id":"t-2","status":"completed","error_message":null,"script_output":null}"#
        );
        assert_eq!(notify_body("t-3", TaskPhase::Running, None), None);
    }

    #[test]
    fn conditions_follow_the_state() {
        use NotificationState::*;
        let n = |state, error: Option<&str>| NotificationStatus {
            state,
            attempts: 2,
            last_error: error.map(str::to_owned),
            ..fresh(TaskOutcome::Completed)
        };
        let accepted = SendOutcome::Accepted("200 OK".into());
        let token_refused =
            SendOutcome::TokenRefused("Secret esup/s3 is not a tenant Secret".into());
        /// (status, reason, words of the message)
        type Expected = Option<(&'static str, &'static str, &'static str)>;
        let cases: Vec<(NotificationStatus, Option<&SendOutcome>, Expected)> = vec![
            (n(Pending, None), None, None),
            (n(NotRequested, None), None, None),
            (
                n(Delivered, None),
                Some(&accepted),
                Some(("True", "Delivered", "Esup-Pod answered 200 OK")),
            ),
            (
                n(Delivered, None),
                Some(&SendOutcome::ReadTimeout),
                Some(("True", "Delivered", "read timeout")),
            ),
            (
                n(Retrying, Some("503 Service Unavailable")),
                None,
                Some((
                    "False",
                    "DeliveryFailed",
                    "503 Service Unavailable; retrying",
                )),
            ),
            (
                n(Exhausted, Some("403 Forbidden")),
                None,
                Some((
                    "False",
                    "DeliveryFailed",
                    "gave up after 2 send(s): 403 Forbidden",
                )),
            ),
            (
                n(Exhausted, Some("Secret esup/s3 is not a tenant Secret")),
                Some(&token_refused),
                Some((
                    "False",
                    "NotifyTokenRefused",
                    "not sent: Secret esup/s3 is not a tenant Secret",
                )),
            ),
        ];
        for (record, how, expected) in cases {
            let got = notified_condition(&record, how, None, Some(3), at(5));
            match (got, expected) {
                (None, None) => {}
                (Some(c), Some((status, why, text))) => {
                    assert_eq!(c.type_, "Notified");
                    assert_eq!((c.status.as_str(), c.reason.as_str()), (status, why));
                    assert!(c.message.contains(text), "{} lacks {text}", c.message);
                    assert_eq!(c.observed_generation, Some(3));
                    assert_eq!(c.last_transition_time, Time(at(5)));
                }
                (got, expected) => panic!("{:?}: got {got:?}, expected {expected:?}", record.state),
            }
        }
        // A retry that fails again keeps the time the condition turned False.
        let earlier = notified_condition(&n(Retrying, Some("a")), None, None, None, at(1));
        let again =
            notified_condition(&n(Retrying, Some("b")), None, earlier.as_ref(), None, at(9))
                .expect("condition");
        assert_eq!(again.last_transition_time, Time(at(1)));
        let delivered =
            notified_condition(&n(Delivered, None), None, earlier.as_ref(), None, at(9))
                .expect("condition");
        assert_eq!(delivered.last_transition_time, Time(at(9)));
    }

    #[test]
    fn patches_touch_only_the_notifiers_fields() {
        let n = before_send(
            None,
            TaskOutcome::Completed,
            1,
            &[secs(60)],
            secs(20),
            at(0),
        );
        let c = notified_condition(
            &after_send(&n, &SendOutcome::ReadTimeout, &[], at(3)),
            Some(&SendOutcome::ReadTimeout),
            None,
            None,
            at(3),
        );
        let patch = status_patch(&key(), Some("42"), &n, c.as_ref());
        assert_eq!(patch["apiVersion"], "runner.esup-portail.org/v1alpha1");
        assert_eq!(patch["kind"], "EncodingTask");
        assert_eq!(
            patch["metadata"],
            serde_json::json!({"name": "2f53b18a", "namespace": "univ-x", "resourceVersion": "42"})
        );
        let status = patch["status"].as_object().expect("object");
        let mut keys: Vec<&str> = status.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["conditions", "notification"]);
        assert_eq!(status["notification"]["state"], "Pending");
        assert_eq!(status["notification"]["attempts"], 1);
        assert_eq!(status["conditions"][0]["type"], "Notified");

        let bare = status_patch(&key(), None, &not_requested(TaskOutcome::Failed), None);
        assert!(bare["metadata"].get("resourceVersion").is_none());
        assert!(bare["status"].get("conditions").is_none());
        assert_eq!(
            bare["status"]["notification"],
            serde_json::json!({"state": "NotRequested", "outcome": "Failed", "attempts": 0})
        );
    }

    #[test]
    fn truncation_counts_characters() {
        assert_eq!(esup_api::truncate_chars("abc", 3), "abc");
        assert_eq!(esup_api::truncate_chars("abcd", 3), "ab…");
        assert_eq!(esup_api::truncate_chars("ééé", 2), "é…");
        let long = "x".repeat(5000);
        let rec = after_send(
            &fresh(TaskOutcome::Failed),
            &SendOutcome::Refused(long),
            &[],
            at(0),
        );
        assert_eq!(
            rec.last_error.map(|e| e.chars().count()),
            Some(MAX_LAST_ERROR_CHARS)
        );
    }
}
