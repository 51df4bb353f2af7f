//! Whether `/task/execute` takes a task now, from the RunnerPools as last seen: 503 when no
//! pool takes its type for the tenant (as the reference manager answers when no runner can
//! take it), and, for a tenant in `immediate` admission mode, also when no such pool can start
//! it now, so that the task waits in Esup-Pod's own ranked queue instead of the cluster's
//! (docs/operations.md, "Admission modes"). Pure: the handler passes what its caches hold.

use std::collections::BTreeMap;

use esup_api::{RunnerPool, TaskType};

/// How a tenant's tasks wait for a runner (tenant Secret key `admission`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AdmissionMode {
    /// Accept up to `maxBacklog` and queue in the cluster: fair share between tenants,
    /// overflow between pools, position and ETA.
    #[default]
    Queue,
    /// Accept only what an eligible pool can start now; otherwise 503, and Esup-Pod keeps the
    /// task in its own queue, ranked by its own priorities, and submits it again later.
    Immediate,
}

impl AdmissionMode {
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim() {
            "queue" => Some(Self::Queue),
            "immediate" => Some(Self::Immediate),
            _ => None,
        }
    }
}

/// Why a task is not taken now.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("No runners available: no RunnerPool runs {task_type} tasks for tenant {tenant}")]
    NoEligiblePool { task_type: String, tenant: String },
    #[error(
        "No runners available: every RunnerPool that runs {task_type} tasks for tenant {tenant} is busy (admission mode immediate)"
    )]
    NoFreeRunner { task_type: String, tenant: String },
}

impl Refusal {
    /// The error category, also the rejection reason's source (`metrics::rejection_reason`).
    pub const fn category(&self) -> &'static str {
        match self {
            Self::NoEligiblePool { .. } => "NoEligiblePool",
            Self::NoFreeRunner { .. } => "NoFreeRunner",
        }
    }
}

/// What a submission is checked against.
pub struct Request<'a> {
    pub mode: AdmissionMode,
    pub task_type: TaskType,
    pub tenant: &'a str,
    /// The pools the task names (empty: any).
    pub wanted: &'a [String],
    /// The tenant's tasks accepted but not yet seen by the operator (phase Pending): they
    /// take the free slots the pools' statuses still show.
    pub unseen: u32,
    /// The tenant's tasks holding a slot, by pool, as the task caches show them: a pool's
    /// status can lag them (the operator writes it after the tasks' statuses), and must then
    /// count at least these.
    pub holding: &'a BTreeMap<String, u32>,
}

/// Takes the task, or says why not.
pub fn decide<'p>(
    request: &Request<'_>,
    pools: impl IntoIterator<Item = &'p RunnerPool>,
) -> Result<(), Refusal> {
    let eligible: Vec<&RunnerPool> = pools
        .into_iter()
        .filter(|pool| {
            pool.metadata.name.as_deref().is_some_and(|name| {
                pool.spec
                    .takes(name, request.task_type, request.tenant, request.wanted)
            })
        })
        .collect();
    let task_type = || request.task_type.protocol_name().to_owned();
    if eligible.is_empty() {
        return Err(Refusal::NoEligiblePool {
            task_type: task_type(),
            tenant: request.tenant.to_owned(),
        });
    }
    match request.mode {
        AdmissionMode::Queue => Ok(()),
        AdmissionMode::Immediate if eligible.iter().any(|pool| starts_now(pool, request)) => Ok(()),
        AdmissionMode::Immediate => Err(Refusal::NoFreeRunner {
            task_type: task_type(),
            tenant: request.tenant.to_owned(),
        }),
    }
}

/// Whether `pool`, as its status last said, has a slot for one more task of the request's
/// tenant that no task already queued there would take first. The tenant's own tasks that
/// hold a slot there count even when the status does not show them yet.
fn starts_now(pool: &RunnerPool, request: &Request<'_>) -> bool {
    if pool.spec.suspend {
        return false;
    }
    let Some(status) = &pool.status else {
        return false;
    };
    let (tenant, unseen) = (request.tenant, request.unseen);
    let holding = pool
        .metadata
        .name
        .as_ref()
        .and_then(|name| request.holding.get(name))
        .copied()
        .unwrap_or(0);
    let free = status.slots.saturating_sub(status.running.max(holding));
    if free <= status.queued.saturating_add(unseen) {
        return false;
    }
    let cap = pool
        .spec
        .tenants
        .iter()
        .find(|t| t.name == tenant)
        .and_then(|t| t.max_concurrency);
    let running = status
        .tenants
        .iter()
        .find(|t| t.name == tenant)
        .map_or(0, |t| t.running)
        .max(holding);
    cap.is_none_or(|cap| running.saturating_add(unseen) < cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pool of transcriptions for univ-x (cap 2) and univ-y: `slots`, `running`, `queued`,
    /// and univ-x's running tasks.
    fn transcription_pool(
        name: &str,
        suspend: bool,
        (slots, running, queued, x_running): (u32, u32, u32, u32),
    ) -> RunnerPool {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "runner.esup-portail.org/v1alpha1", "kind": "RunnerPool",
            "metadata": {"name": name},
            "spec": {"taskTypes": ["Transcription"], "priority": 1, "maxConcurrency": 4,
                     "suspend": suspend,
                     "tenants": [{"name": "univ-x", "maxConcurrency": 2}, {"name": "univ-y"}]},
            "status": {"slots": slots, "running": running, "queued": queued,
                       "tenants": [{"name": "univ-x", "running": x_running, "queued": 0,
                                    "weightedUsage": 0.0}]},
        }))
        .expect("pool")
    }

    const NONE_HOLDING: &BTreeMap<String, u32> = &BTreeMap::new();

    fn request(mode: AdmissionMode, tenant: &str, unseen: u32) -> Request<'_> {
        Request {
            mode,
            task_type: TaskType::Transcription,
            tenant,
            wanted: &[],
            unseen,
            holding: NONE_HOLDING,
        }
    }

    /// The operator has written the first task's Admitted status but not yet its pool's
    /// status: the task caches already show the slot taken, and a second immediate-mode
    /// task must not be promised it.
    #[test]
    fn a_slot_the_caches_show_taken_is_taken_before_the_pool_status_says_so() {
        let immediate = AdmissionMode::Immediate;
        let stale = transcription_pool("p", false, (1, 0, 0, 0));
        assert_eq!(decide(&request(immediate, "univ-x", 0), [&stale]), Ok(()));
        let holding = BTreeMap::from([("p".to_owned(), 1)]);
        let seen = Request {
            holding: &holding,
            ..request(immediate, "univ-x", 0)
        };
        assert_eq!(
            decide(&seen, [&stale]).unwrap_err().category(),
            "NoFreeRunner"
        );
        // The tenant's cap counts them too (univ-x: 2 on a pool with room).
        let roomy = transcription_pool("p", false, (4, 0, 0, 0));
        let two = BTreeMap::from([("p".to_owned(), 2)]);
        let capped = Request {
            holding: &two,
            ..request(immediate, "univ-x", 0)
        };
        assert!(decide(&capped, [&roomy]).is_err());
        // Tasks held in another pool leave this one's slots alone.
        let elsewhere = BTreeMap::from([("q".to_owned(), 1)]);
        let other_pool = Request {
            holding: &elsewhere,
            ..request(immediate, "univ-x", 0)
        };
        assert_eq!(decide(&other_pool, [&stale]), Ok(()));
    }

    #[test]
    fn queue_mode_takes_whatever_a_pool_runs() {
        let busy = transcription_pool("p", true, (4, 4, 30, 2));
        assert_eq!(
            decide(&request(AdmissionMode::Queue, "univ-x", 9), [&busy]),
            Ok(())
        );
        let refusal = decide(&request(AdmissionMode::Queue, "univ-z", 0), [&busy]).unwrap_err();
        assert_eq!(refusal.category(), "NoEligiblePool");
        assert_eq!(
            refusal.to_string(),
            "No runners available: no RunnerPool runs transcription tasks for tenant univ-z"
        );
        let encoding = Request {
            task_type: TaskType::Encoding,
            ..request(AdmissionMode::Queue, "univ-x", 0)
        };
        assert!(decide(&encoding, [&busy]).is_err());
        assert!(decide(&request(AdmissionMode::Queue, "univ-x", 0), []).is_err());
    }

    #[test]
    fn immediate_mode_takes_only_what_a_pool_can_start_now() {
        let immediate = AdmissionMode::Immediate;
        let free = transcription_pool("p", false, (4, 1, 0, 0));
        assert_eq!(decide(&request(immediate, "univ-x", 0), [&free]), Ok(()));
        // Free slots, but as many tasks are already waiting for them, or were just accepted.
        let waiting = transcription_pool("p", false, (4, 1, 3, 0));
        let refusal = decide(&request(immediate, "univ-x", 0), [&waiting]).unwrap_err();
        assert_eq!(refusal.category(), "NoFreeRunner");
        assert!(refusal.to_string().starts_with("No runners available"));
        assert!(decide(&request(immediate, "univ-x", 3), [&free]).is_err());
        assert_eq!(decide(&request(immediate, "univ-y", 2), [&free]), Ok(()));
        // Full, suspended, or never reported.
        for busy in [
            transcription_pool("p", false, (4, 4, 0, 0)),
            transcription_pool("p", true, (4, 0, 0, 0)),
            transcription_pool("p", false, (0, 0, 0, 0)),
        ] {
            assert!(decide(&request(immediate, "univ-x", 0), [&busy]).is_err());
        }
        let mut unreported = transcription_pool("p", false, (4, 0, 0, 0));
        unreported.status = None;
        assert!(decide(&request(immediate, "univ-x", 0), [&unreported]).is_err());
        // The tenant's own cap on the pool (univ-x: 2), counting its unseen tasks.
        let capped = transcription_pool("p", false, (4, 2, 0, 2));
        assert!(decide(&request(immediate, "univ-x", 0), [&capped]).is_err());
        assert_eq!(decide(&request(immediate, "univ-y", 0), [&capped]), Ok(()));
        let one_left = transcription_pool("p", false, (4, 1, 0, 1));
        assert!(decide(&request(immediate, "univ-x", 1), [&one_left]).is_err());
        // Any eligible pool that can start it will do; a pool the task does not name will not.
        assert_eq!(
            decide(&request(immediate, "univ-x", 0), [&waiting, &free]),
            Ok(())
        );
        let named = ["other".to_owned()];
        let elsewhere = Request {
            wanted: &named,
            ..request(immediate, "univ-x", 0)
        };
        assert_eq!(
            decide(&elsewhere, [&free]).unwrap_err().category(),
            "NoEligiblePool"
        );
    }

    #[test]
    fn modes_parse_from_the_tenant_secret() {
        assert_eq!(AdmissionMode::parse("queue"), Some(AdmissionMode::Queue));
        assert_eq!(
            AdmissionMode::parse(" immediate\n"),
            Some(AdmissionMode::Immediate)
        );
        assert_eq!(AdmissionMode::parse("Immediate"), None);
        assert_eq!(AdmissionMode::default(), AdmissionMode::Queue);
    }
}
