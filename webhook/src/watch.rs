//! The webhook's side of the guarded watches (`esup_operator::watch_guard`): what to do with
//! an object that does not decode — a log line, a Warning Event on it and the
//! `esup_watch_undecodable_objects_total` metric — so that it is skipped and the cache syncs.

use kube::Client;
use kube::Resource;
use kube::core::error_boundary::InvalidObject;
use kube::runtime::events::{Recorder, Reporter};

use crate::metrics::Undecodable;

/// Reporter of the webhook's watch Events.
pub const CONTROLLER: &str = "esup-webhook";

/// What every guarded watch of the webhook needs to report a skipped object.
#[derive(Clone)]
pub struct SkipReport {
    recorder: Recorder,
    undecodable: Undecodable,
}

impl std::fmt::Debug for SkipReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SkipReport").finish_non_exhaustive()
    }
}

impl SkipReport {
    pub fn new(client: Client, identity: &str, undecodable: Undecodable) -> Self {
        let reporter = Reporter {
            controller: CONTROLLER.to_owned(),
            instance: Some(identity.to_owned()),
        };
        Self {
            recorder: Recorder::new(client, reporter),
            undecodable,
        }
    }

    /// The `on_invalid` of a guarded watch of `K`.
    pub fn for_kind<K>(&self) -> impl Fn(&InvalidObject) + Send + Sync + 'static
    where
        K: Resource<DynamicType = ()>,
    {
        let report = self.clone();
        move |invalid: &InvalidObject| {
            report.undecodable.inc(&K::kind(&()));
            esup_operator::watch_guard::report::<K>(&report.recorder, invalid);
        }
    }
}
