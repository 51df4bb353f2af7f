//! In-flight de-duplication that holds across webhook replicas and restarts, with no write
//! beyond the task itself. The reference manager answers an identical request (same
//! fingerprint) with the task already in flight. Here a task's name is derived from its
//! request's fingerprint and an *epoch*, so the task's create is itself the claim: of two
//! replicas creating the same name, the API server lets exactly one succeed, and the other
//! gets 409 and answers with the winner's task.
//!
//! A fingerprint's tasks form a chain of epochs: once the task of epoch `e` has ended, the
//! same request creates epoch `e + 1`. A new chain starts at [`root_epoch`], from the UTC day:
//! so a task id never comes back after its task has been deleted (retention is at least a
//! day), which Esup-Pod, keeping its own task rows, relies on.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::tasks::{AnyTask, Created};

/// Names tried before giving up: each step past the first means that the previous epoch's
/// task had ended, so this is only reached by a chain changing under heavy contention.
const MAX_STEPS: u32 = 20;

/// How long this replica remembers the name it last tried for a fingerprint, for an identical
/// request that arrives before the task cache has seen the task.
const RECENT_FOR: Duration = Duration::from_secs(60);

/// Epochs a chain may advance within one day before reaching the next day's root.
const EPOCHS_PER_DAY: u64 = 1 << 16;

/// The de-duplication key of a request: the reference manager's fingerprint of the request,
/// scoped to the tenant, so that two tenants sharing a namespace never get each other's task
/// for an identical request.
pub fn tenant_fingerprint(tenant: &str, request_fingerprint: &str) -> String {
    esup_api::lower_hex(&Sha256::digest(format!("{tenant}\n{request_fingerprint}")))
}

/// The task name for `fingerprint`'s epoch `epoch` in `namespace`: a UUID-shaped string
/// (version 8, RFC 9562's custom version) made of a SHA-256 of the three.
pub fn task_name(namespace: &str, fingerprint: &str, epoch: u64) -> String {
    let mut b: [u8; 32] = Sha256::digest(format!("{namespace}\n{fingerprint}\n{epoch}")).into();
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = esup_api::lower_hex(&b[..16]);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Where a new chain starts: the UTC day, so that a chain started on a later day never
/// meets the names of a deleted one.
pub fn root_epoch(now: Timestamp) -> u64 {
    (now.as_second().max(0) as u64 / 86_400) * EPOCHS_PER_DAY
}

/// A task of the chain as the cache shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    pub epoch: u64,
    /// Not ended and not being deleted.
    pub in_flight: bool,
}

/// The first step for a request, from what this replica knows of its chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// The task of this epoch is in flight: answer with it, write nothing.
    InFlight(u64),
    /// Create this epoch's task.
    Create(u64),
}

/// Plans the first step: the newest known link decides; with none, a new chain at `root`.
/// `recent` is an epoch this replica created lately that the cache may not show yet: its
/// create will answer 409 and the task will be looked at.
pub fn start(links: &[Link], recent: Option<u64>, root: u64) -> Start {
    let newest = links.iter().max_by_key(|l| l.epoch);
    let from_cache = match newest {
        Some(l) if l.in_flight => return Start::InFlight(l.epoch),
        Some(l) => Some(l.epoch + 1),
        None => None,
    };
    match (from_cache, recent) {
        (Some(c), Some(r)) => Start::Create(c.max(r)),
        (Some(c), None) => Start::Create(c),
        (None, Some(r)) => Start::Create(r),
        (None, None) => Start::Create(root),
    }
}

/// The outcome of a submission.
pub enum Submitted {
    New(AnyTask),
    /// An identical task is in flight: answer with it.
    Existing(AnyTask),
}

fn in_flight(task: &AnyTask) -> bool {
    !task.phase().is_terminal() && task.meta().deletion_timestamp.is_none()
}

/// The epoch of a task created by this module, from its label.
pub fn epoch_of(task: &AnyTask) -> Option<u64> {
    task.meta()
        .labels
        .as_ref()?
        .get(esup_api::labels::DEDUP_EPOCH)?
        .parse()
        .ok()
}

/// The chain links among `tasks` (those of one fingerprint).
pub fn links(tasks: &[AnyTask]) -> Vec<Link> {
    tasks
        .iter()
        .filter_map(|t| {
            Some(Link {
                epoch: epoch_of(t)?,
                in_flight: in_flight(t),
            })
        })
        .collect()
}

/// This replica's memory of the tasks it created lately (see [`RECENT_FOR`]).
#[derive(Default)]
pub struct Dedup {
    recent: Mutex<HashMap<(String, String), (u64, Instant)>>,
}

impl Dedup {
    pub fn new() -> Self {
        Self::default()
    }

    fn recent(&self, namespace: &str, fingerprint: &str) -> Option<u64> {
        let mut recent = self
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        recent.retain(|_, (_, at)| now.duration_since(*at) < RECENT_FOR);
        recent
            .get(&(namespace.to_owned(), fingerprint.to_owned()))
            .map(|(e, _)| *e)
    }

    fn remember(&self, namespace: &str, fingerprint: &str, epoch: u64) {
        let mut recent = self
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        recent.insert(
            (namespace.to_owned(), fingerprint.to_owned()),
            (epoch, Instant::now()),
        );
    }

    /// Finds the in-flight task of `fingerprint` or creates the next one of its chain.
    /// `chain` is what the cache shows of the fingerprint's tasks; `create(name, epoch)`
    /// creates the task under that name, labelled with that epoch.
    pub async fn submit<F, Fut>(
        &self,
        namespace: &str,
        fingerprint: &str,
        chain: &[AnyTask],
        create: F,
    ) -> Result<Submitted, ApiError>
    where
        F: Fn(String, u64) -> Fut,
        Fut: std::future::Future<Output = Result<Created, ApiError>>,
    {
        let recent = self.recent(namespace, fingerprint);
        let mut epoch = match start(&links(chain), recent, root_epoch(Timestamp::now())) {
            Start::InFlight(e) => {
                if let Some(task) = chain.iter().find(|t| epoch_of(t) == Some(e)) {
                    return Ok(Submitted::Existing(task.clone()));
                }
                e
            }
            Start::Create(e) => e,
        };
        for _ in 0..MAX_STEPS {
            // Remembered before the create, so that an identical request arriving meanwhile
            // tries the same name even across midnight.
            self.remember(namespace, fingerprint, epoch);
            match create(task_name(namespace, fingerprint, epoch), epoch).await? {
                Created::New(task) => return Ok(Submitted::New(task)),
                Created::Taken(Some(task)) if in_flight(&task) => {
                    return Ok(Submitted::Existing(task));
                }
                // Ended (or deleted between the create and the read): the next epoch.
                Created::Taken(_) => epoch += 1,
            }
        }
        Err(ApiError::unavailable(
            "DedupContention",
            "could not settle a duplicate request; retry later",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(epoch: u64, in_flight: bool) -> Link {
        Link { epoch, in_flight }
    }

    #[test]
    fn names_are_uuid_shaped_and_differ_by_each_input() {
        let n = task_name("ns", "ab12", 7);
        assert_eq!(n.len(), 36);
        assert_eq!(&n[14..15], "8");
        assert!(matches!(&n[19..20], "8" | "9" | "a" | "b"));
        assert_eq!(n, task_name("ns", "ab12", 7), "deterministic");
        for other in [
            task_name("ns2", "ab12", 7),
            task_name("ns", "ab13", 7),
            task_name("ns", "ab12", 8),
        ] {
            assert_ne!(n, other);
        }
    }

    #[test]
    fn roots_follow_the_utc_day() {
        let day = |s: &str| root_epoch(s.parse().unwrap());
        assert_eq!(day("1970-01-01T23:59:59Z"), 0);
        assert_eq!(day("1970-01-02T00:00:00Z"), EPOCHS_PER_DAY);
        assert_eq!(day("2026-11-30T12:00:00Z"), day("2026-11-30T00:00:01Z"));
        assert!(day("2026-12-01T00:00:00Z") > day("2026-11-30T23:59:59Z"));
    }

    #[test]
    fn the_newest_link_decides_the_first_step() {
        let root = 5 * EPOCHS_PER_DAY;
        let table = [
            // A new request: a new chain at today's root.
            (vec![], None, Start::Create(root)),
            // In flight in the cache: no write at all.
            (
                vec![link(3, false), link(4, true)],
                None,
                Start::InFlight(4),
            ),
            // Ended: the next epoch of the same chain, even from an older day.
            (vec![link(3, false), link(4, false)], None, Start::Create(5)),
            // Only the newest matters (older links may be gone or out of order).
            (vec![link(9, false), link(2, true)], None, Start::Create(10)),
            // Created here lately, not in the cache yet: its name is tried (and will 409).
            (vec![], Some(root - 1), Start::Create(root - 1)),
            (vec![link(3, false)], Some(7), Start::Create(7)),
            (vec![link(8, false)], Some(7), Start::Create(9)),
        ];
        for (links, recent, expected) in table {
            assert_eq!(
                start(&links, recent, root),
                expected,
                "{links:?} {recent:?}"
            );
        }
    }
}
