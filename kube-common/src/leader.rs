//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several replicas (of the
//! operator, of the webhook's notifier) only one writes. I/O.
//!
//! Safety rests on three rules. Taking over replaces the Lease with the `resourceVersion` just
//! read, so of two contenders only one can win (the other gets a 409). The leader steps down
//! on its own clock when it has not renewed for `lease_duration - renew_period`, even when the
//! API server is unreachable, so it stops writing before another replica may consider the
//! Lease expired; the `renew_period` margin absorbs request latency. And a contender never
//! compares the holder's `renewTime` (the holder's wall clock) with its own wall clock: it
//! takes over only when it has itself watched the Lease record stay unchanged for
//! `lease_duration` on its monotonic clock, as client-go does, so clock skew between nodes
//! cannot make a live Lease look expired.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use crate::error::KubeError;

/// Why an election step failed. The category is a stable Event reason and metric label.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kube(#[from] KubeError),
    #[error("invalid leader election configuration: {0}")]
    Config(String),
}

impl Error {
    pub fn category(&self) -> &'static str {
        match self {
            Self::Kube(e) => e.category(),
            Self::Config(_) => "ConfigError",
        }
    }

    /// Wraps a client error; a conflict means another replica wrote the Lease first.
    fn api(verb: &'static str, what: impl Into<String>, source: kube::Error) -> Self {
        KubeError::new(verb, what, source).into()
    }

    fn is_conflict(&self) -> bool {
        matches!(self, Self::Kube(e) if e.is_conflict())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Clone, Debug)]
pub struct LeaderConfig {
    pub namespace: String,
    pub lease_name: String,
    /// Unique per replica; the pod name is the natural choice.
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_period: Duration,
}

impl LeaderConfig {
    /// A config with the default timings: 15 s lease, renewed every 5 s.
    pub fn new(
        namespace: impl Into<String>,
        lease_name: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        Self {
            namespace: namespace.into(),
            lease_name: lease_name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_period: Duration::from_secs(5),
        }
    }

    /// The leader needs at least one renewal attempt to fit before its step-down deadline
    /// (`lease_duration - renew_period`), or it would lose leadership after every renewal.
    pub fn validate(&self) -> Result<()> {
        if self.identity.is_empty() {
            return Err(Error::Config("leader election identity is empty".into()));
        }
        if self.renew_period.is_zero()
            || self
                .renew_period
                .checked_mul(2)
                .is_none_or(|twice| self.lease_duration <= twice)
        {
            return Err(Error::Config(format!(
                "lease duration ({:?}) must exceed twice the renew period ({:?}), \
                 which must be non-zero",
                self.lease_duration, self.renew_period
            )));
        }
        Ok(())
    }

    fn what(&self) -> String {
        format!("Lease {}/{}", self.namespace, self.lease_name)
    }

    /// How long after the start of a successful renewal the leader may keep writing.
    fn hold_for(&self) -> Duration {
        self.lease_duration.saturating_sub(self.renew_period)
    }
}

/// Whether this replica currently leads. Cheap to clone; every clone sees the same state.
#[derive(Clone, Debug)]
pub struct Leadership {
    rx: watch::Receiver<bool>,
}

impl Leadership {
    /// False once the election task has ended, whatever it last published.
    pub fn is_leader(&self) -> bool {
        self.rx.has_changed().is_ok() && *self.rx.borrow()
    }

    /// Waits for the next change and returns the new state; `None` once the election task
    /// has ended (this replica no longer leads).
    pub async fn changed(&mut self) -> Option<bool> {
        self.rx.changed().await.ok()?;
        Some(*self.rx.borrow_and_update())
    }
}

/// What to do with the Lease as read, given who we are and the time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// No Lease yet.
    Create,
    /// We hold it (even if it lapsed: nobody took it over, or our write would conflict).
    Renew,
    /// Unheld, or its holder has not renewed within its lease duration.
    TakeOver,
    /// Someone else holds a fresh Lease.
    Wait { holder: String },
}

/// What of a Lease shows its holder is alive: a renewal changes it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Record {
    holder: Option<String>,
    renew_time: Option<MicroTime>,
    duration: Option<i32>,
}

impl Record {
    fn of(spec: &LeaseSpec) -> Self {
        Self {
            holder: spec.holder_identity.clone(),
            renew_time: spec.renew_time.clone(),
            duration: spec.lease_duration_seconds,
        }
    }
}

/// The Lease record last read, and since when (on this replica's monotonic clock) it has not
/// changed.
#[derive(Default)]
struct Observation {
    last: Option<(Record, Instant)>,
}

impl Observation {
    /// How long the record `spec` shows has been seen unchanged, as of `now`.
    fn unchanged_for(&mut self, spec: &LeaseSpec, now: Instant) -> Duration {
        let record = Record::of(spec);
        match &self.last {
            Some((seen, since)) if *seen == record => now.saturating_duration_since(*since),
            _ => {
                self.last = Some((record, now));
                Duration::ZERO
            }
        }
    }
}

/// Pure decision logic. `unchanged_for` is how long this replica has watched the Lease record
/// stay as it is (its holder has not renewed in that time); `default_duration` applies when
/// the Lease does not state its own.
pub fn decide(
    lease: Option<&LeaseSpec>,
    me: &str,
    unchanged_for: Duration,
    default_duration: Duration,
) -> Decision {
    let Some(spec) = lease else {
        return Decision::Create;
    };
    let holder = match spec.holder_identity.as_deref() {
        None | Some("") => return Decision::TakeOver,
        Some(holder) if holder == me => return Decision::Renew,
        Some(holder) => holder,
    };
    let duration = spec
        .lease_duration_seconds
        .map_or(default_duration, |secs| {
            Duration::from_secs(u64::try_from(secs).unwrap_or(0))
        });
    // A holder that never stated a renewal cannot prove it is alive.
    let expired = spec.renew_time.is_none() || unchanged_for > duration;
    if expired {
        Decision::TakeOver
    } else {
        Decision::Wait {
            holder: holder.to_owned(),
        }
    }
}

/// The result of one election round.
enum Round {
    Leading,
    Following { holder: Option<String> },
}

fn seconds(d: Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX)
}

/// Reads the Lease and creates, renews or takes it over as `decide` says. A 409 means another
/// replica wrote first: we follow, and the next round re-reads.
async fn round(
    api: &Api<Lease>,
    config: &LeaderConfig,
    observation: &mut Observation,
) -> Result<Round> {
    let what = config.what();
    let current = api
        .get_opt(&config.lease_name)
        .await
        .map_err(|e| Error::api("get", what.clone(), e))?;
    // Written into the Lease for people and other tools; never compared across replicas.
    let now = Timestamp::now();
    // A Lease without a spec is unheld; deciding Create for it would conflict forever.
    let read = current.as_ref().map(|l| l.spec.clone().unwrap_or_default());
    let unchanged_for = read.as_ref().map_or(Duration::ZERO, |spec| {
        observation.unchanged_for(spec, Instant::now())
    });
    let decision = decide(
        read.as_ref(),
        &config.identity,
        unchanged_for,
        config.lease_duration,
    );
    let result = match (decision, current) {
        (Decision::Wait { holder }, _) => {
            return Ok(Round::Following {
                holder: Some(holder),
            });
        }
        (Decision::Create, _) => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(config.lease_name.clone()),
                    namespace: Some(config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(config.identity.clone()),
                    lease_duration_seconds: Some(seconds(config.lease_duration)),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            api.create(&PostParams::default(), &lease)
                .await
                .map_err(|e| Error::api("create", what, e))
        }
        (decision, Some(mut lease)) => {
            // Keeping the metadata as read keeps its resourceVersion: the replace is
            // conditional, which is what makes a takeover race-free.
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            if decision == Decision::TakeOver {
                spec.holder_identity = Some(config.identity.clone());
                spec.acquire_time = Some(MicroTime(now));
                spec.lease_transitions =
                    Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
            }
            spec.renew_time = Some(MicroTime(now));
            spec.lease_duration_seconds = Some(seconds(config.lease_duration));
            api.replace(&config.lease_name, &PostParams::default(), &lease)
                .await
                .map_err(|e| Error::api("replace", what, e))
        }
        // `decide` only answers Renew or TakeOver for a Lease that exists.
        (_, None) => return Ok(Round::Following { holder: None }),
    };
    match result {
        Ok(_) => Ok(Round::Leading),
        // Whoever wrote first is unknown until the next read.
        Err(e) if e.is_conflict() => Ok(Round::Following { holder: None }),
        Err(e) => Err(e),
    }
}

/// Starts the election loop. The returned task runs until aborted; aborting it ends
/// leadership for every `Leadership` clone (call [`release`] afterwards to hand over at once).
pub fn spawn(
    client: kube::Client,
    config: LeaderConfig,
) -> (Leadership, tokio::task::JoinHandle<()>) {
    let (tx, rx) = watch::channel(false);
    let handle = tokio::spawn(run(client, config, tx));
    (Leadership { rx }, handle)
}

async fn run(client: kube::Client, config: LeaderConfig, tx: watch::Sender<bool>) {
    let api: Api<Lease> = Api::namespaced(client, &config.namespace);
    let lease = config.what();
    let mut ticks = tokio::time::interval(config.renew_period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // While leading: the instant at which we must stop, unless a renewal succeeds first.
    let mut step_down_at: Option<Instant> = None;
    let mut observation = Observation::default();
    loop {
        ticks.tick().await;
        let started = Instant::now();
        // A hung request must not keep us leading past the deadline, nor stall the loop.
        let attempt =
            tokio::time::timeout(config.renew_period, round(&api, &config, &mut observation));
        let outcome = match step_down_at {
            Some(at) => tokio::select! {
                outcome = attempt => Some(outcome),
                () = tokio::time::sleep_until(at) => None,
            },
            None => Some(attempt.await),
        };
        let leading = match outcome {
            Some(Ok(Ok(Round::Leading))) => {
                if step_down_at.is_none() {
                    tracing::info!(%lease, identity = %config.identity, "became leader");
                }
                step_down_at = Some(started + config.hold_for());
                true
            }
            Some(Ok(Ok(Round::Following { holder }))) => {
                let holder = holder.as_deref().unwrap_or("");
                if step_down_at.is_some() {
                    tracing::info!(%lease, holder, "lost leadership to another replica");
                } else {
                    tracing::debug!(%lease, holder, "following");
                }
                step_down_at = None;
                false
            }
            Some(Ok(Err(e))) => {
                tracing::warn!(%lease, error = %e, "leader election round failed");
                step_down_at.is_some_and(|at| Instant::now() < at)
            }
            Some(Err(_elapsed)) => {
                tracing::warn!(%lease, "leader election round timed out");
                step_down_at.is_some_and(|at| Instant::now() < at)
            }
            None => false,
        };
        if !leading && step_down_at.take().is_some() {
            tracing::info!(%lease, "stepping down: lease not renewed in time");
        }
        tx.send_if_modified(|current| std::mem::replace(current, leading) != leading);
    }
}

/// Clears the holder if we hold the Lease, so another replica takes over at once instead of
/// waiting for it to expire. Abort the election task first, or it renews again. Returns
/// whether the Lease was released.
pub async fn release(client: kube::Client, config: &LeaderConfig) -> Result<bool> {
    let api: Api<Lease> = Api::namespaced(client, &config.namespace);
    let what = config.what();
    let Some(mut lease) = api
        .get_opt(&config.lease_name)
        .await
        .map_err(|e| Error::api("get", what.clone(), e))?
    else {
        return Ok(false);
    };
    let Some(spec) = lease
        .spec
        .as_mut()
        .filter(|s| s.holder_identity.as_deref() == Some(config.identity.as_str()))
    else {
        return Ok(false);
    };
    spec.holder_identity = None;
    api.replace(&config.lease_name, &PostParams::default(), &lease)
        .await
        .map_err(|e| Error::api("replace", what, e))?;
    tracing::info!(lease = %config.what(), "released leadership");
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DURATION: Duration = Duration::from_secs(15);

    fn at(secs: i64) -> Timestamp {
        match Timestamp::from_second(1_700_000_000 + secs) {
            Ok(ts) => ts,
            Err(e) => panic!("bad timestamp: {e}"),
        }
    }

    fn spec(holder: Option<&str>, renewed: Option<i64>, duration: Option<i32>) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_owned),
            renew_time: renewed.map(|s| MicroTime(at(s))),
            lease_duration_seconds: duration,
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn decisions() {
        let wait = |h: &str| Decision::Wait { holder: h.into() };
        // (case, lease, seconds this replica has seen the record unchanged, decision)
        let cases: Vec<(&str, Option<LeaseSpec>, u64, Decision)> = vec![
            ("no lease", None, 0, Decision::Create),
            (
                "own fresh lease",
                Some(spec(Some("me"), Some(0), Some(15))),
                1,
                Decision::Renew,
            ),
            (
                "own lapsed lease",
                Some(spec(Some("me"), Some(0), Some(15))),
                100,
                Decision::Renew,
            ),
            (
                "other's fresh lease",
                Some(spec(Some("b"), Some(0), Some(15))),
                10,
                wait("b"),
            ),
            (
                "other's lease at expiry",
                Some(spec(Some("b"), Some(0), Some(15))),
                15,
                wait("b"),
            ),
            (
                "other's expired lease",
                Some(spec(Some("b"), Some(0), Some(15))),
                16,
                Decision::TakeOver,
            ),
            (
                "own duration, not ours",
                Some(spec(Some("b"), Some(0), Some(60))),
                30,
                wait("b"),
            ),
            (
                "default duration",
                Some(spec(Some("b"), Some(0), None)),
                10,
                wait("b"),
            ),
            (
                "default duration, expired",
                Some(spec(Some("b"), Some(0), None)),
                16,
                Decision::TakeOver,
            ),
            (
                "no holder",
                Some(spec(None, Some(0), Some(15))),
                1,
                Decision::TakeOver,
            ),
            (
                "empty holder",
                Some(spec(Some(""), Some(0), Some(15))),
                1,
                Decision::TakeOver,
            ),
            (
                "no renew time",
                Some(spec(Some("b"), None, Some(15))),
                1,
                Decision::TakeOver,
            ),
            (
                "own, no renew time",
                Some(spec(Some("me"), None, None)),
                1,
                Decision::Renew,
            ),
        ];
        for (name, lease, unchanged, expected) in cases {
            assert_eq!(
                decide(
                    lease.as_ref(),
                    "me",
                    Duration::from_secs(unchanged),
                    DURATION
                ),
                expected,
                "{name}"
            );
        }
    }

    #[test]
    fn a_renewal_stamped_by_a_clock_far_behind_is_still_a_renewal() {
        // The holder's clock is an hour behind this replica's: its renewTime looks an hour
        // old, yet each renewal changes the record, so the Lease never looks expired.
        let t0 = Instant::now();
        let mut seen = Observation::default();
        let lease = |renewed: i64| spec(Some("b"), Some(renewed - 3600), Some(15));
        let mut decision = Decision::Create;
        for step in 0..10u64 {
            let now = t0 + Duration::from_secs(5 * step);
            let unchanged = seen.unchanged_for(&lease(5 * step as i64), now);
            decision = decide(Some(&lease(5 * step as i64)), "me", unchanged, DURATION);
            assert_eq!(
                decision,
                Decision::Wait { holder: "b".into() },
                "step {step}"
            );
        }
        // The holder stops renewing: after the lease's duration on this replica's own clock,
        // and only then, it is taken over.
        let last = lease(45);
        let stop = t0 + Duration::from_secs(45);
        for (after, expected) in [(10, false), (15, false), (16, true)] {
            let unchanged = seen.unchanged_for(&last, stop + Duration::from_secs(after));
            decision = decide(Some(&last), "me", unchanged, DURATION);
            assert_eq!(
                decision == Decision::TakeOver,
                expected,
                "{after} s after the last renewal"
            );
        }
        assert_eq!(decision, Decision::TakeOver);
    }

    #[test]
    fn config_validation() {
        let ok = LeaderConfig::new("ns", "esup-operator", "pod-a");
        assert!(ok.validate().is_ok());
        assert_eq!(ok.hold_for(), Duration::from_secs(10));
        let tight = LeaderConfig {
            lease_duration: Duration::from_secs(10),
            ..ok.clone()
        };
        assert!(tight.validate().is_err());
        let anonymous = LeaderConfig {
            identity: String::new(),
            ..ok
        };
        assert!(anonymous.validate().is_err());
    }

    #[tokio::test]
    async fn leadership_follows_the_task_and_ends_with_it() {
        let (tx, rx) = watch::channel(false);
        let mut leadership = Leadership { rx };
        let observer = leadership.clone();
        assert!(!leadership.is_leader());
        assert!(tx.send(true).is_ok());
        assert_eq!(leadership.changed().await, Some(true));
        assert!(observer.is_leader());
        drop(tx);
        assert!(!observer.is_leader());
        assert_eq!(leadership.changed().await, None);
    }
}
