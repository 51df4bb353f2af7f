//! The webhook's side of the guarded watches (`esup_kube_common::watch`): what to do with
//! an object that does not decode — a log line, a Warning Event on it and the
//! `esup_runner_webhook_watch_undecodable_objects_total` metric — so that it is skipped and the cache syncs.

use kube::Client;
use kube::Resource;
use kube::core::error_boundary::InvalidObject;
use kube::runtime::events::{Recorder, Reporter};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    kind: String,
}

/// Objects the webhook's watches skipped because they do not decode, by kind
/// (`esup_runner_webhook_watch_undecodable_objects_total`, as the operator counts its own). Made before the
/// watches start; `Metrics::register_undecodable` exposes it.
#[derive(Clone, Debug, Default)]
pub struct Undecodable(Family<KindLabels, Counter>);

impl Undecodable {
    pub fn inc(&self, kind: &str) {
        self.0
            .get_or_create(&KindLabels { kind: kind.into() })
            .inc();
    }

    /// The counters, for a registry (a `Family` is a shared handle).
    pub fn family(&self) -> Family<KindLabels, Counter> {
        self.0.clone()
    }
}

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

    /// The `on_invalid` of a guarded watch of `K`, reported through `report` when there is one
    /// (the binary), else only logged (tests and tools that start the caches alone).
    pub fn or_log<K>(report: Option<&Self>) -> Box<dyn Fn(&InvalidObject) + Send + Sync>
    where
        K: Resource<DynamicType = ()>,
    {
        match report {
            Some(report) => Box::new(report.for_kind::<K>()),
            None => Box::new(
                |invalid: &InvalidObject| tracing::warn!(kind = %K::kind(&()), error = %invalid.error, "skipping an object that does not decode"),
            ),
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
            esup_kube_common::watch::report::<K>(&report.recorder, invalid);
        }
    }
}
