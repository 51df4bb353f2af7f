//! Watches that one bad object cannot stall, and the version check of the caches they feed. A typed watch decodes every object of a list
//! page: one object that no longer decodes (stored under an older version, an enum value a
//! newer release narrowed, a hand-edited status) fails the whole list, the watcher retries
//! for ever and its cache never syncs, so no scheduling pass runs. Watches here decode each
//! object behind kube's [`DeserializeGuard`]; an object that fails is reported (log, metric,
//! Warning Event) and skipped, and the rest of the stream goes on.

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use kube::core::DeserializeGuard;
use kube::core::error_boundary::InvalidObject;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::watcher;

/// Whether a watch event at resourceVersion `incoming` may replace a cached object at
/// `current`: never go back, so that a writer's own write (its answer cached at once) is not
/// undone by the late watch event of an older version. resourceVersions are opaque, but the
/// API server hands out etcd revisions; compare them when both parse, and otherwise take the
/// newer event on trust.
pub fn newer(incoming: Option<&str>, current: Option<&str>) -> bool {
    match (
        incoming.and_then(|v| v.parse::<u64>().ok()),
        current.and_then(|v| v.parse::<u64>().ok()),
    ) {
        (Some(i), Some(c)) => i >= c,
        _ => true,
    }
}

/// Event reason and metric label of an object a watch had to skip.
pub const UNDECODABLE_REASON: &str = "UndecodableObject";

/// Unwraps one guarded watch event: a decodable object passes on; one that does not is given
/// to `on_invalid` and dropped. A dropped update leaves a cache with the object's last
/// decodable version until the next relist, where the object is absent (so skipped).
pub fn unguard<K>(
    event: watcher::Event<DeserializeGuard<K>>,
    on_invalid: &impl Fn(&InvalidObject),
) -> Option<watcher::Event<K>> {
    let object = |guard: DeserializeGuard<K>| match guard.0 {
        Ok(object) => Some(object),
        Err(invalid) => {
            on_invalid(&invalid);
            None
        }
    };
    match event {
        watcher::Event::Apply(g) => object(g).map(watcher::Event::Apply),
        watcher::Event::InitApply(g) => object(g).map(watcher::Event::InitApply),
        watcher::Event::Delete(g) => object(g).map(watcher::Event::Delete),
        watcher::Event::Init => Some(watcher::Event::Init),
        watcher::Event::InitDone => Some(watcher::Event::InitDone),
    }
}

/// A watch of `K` whose undecodable objects are reported to `on_invalid` and skipped.
pub fn guarded_watcher<K>(
    api: kube::Api<DeserializeGuard<K>>,
    config: watcher::Config,
    on_invalid: impl Fn(&InvalidObject) + Send + Sync + 'static,
) -> impl Stream<Item = watcher::Result<watcher::Event<K>>> + Send
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default,
{
    watcher(api, config).filter_map(move |event| {
        let out = match event {
            Ok(event) => unguard(event, &on_invalid).map(Ok),
            Err(e) => Some(Err(e)),
        };
        futures::future::ready(out)
    })
}

/// What a cluster operator reads about a skipped object: the decoding error, on the object.
pub fn describe(invalid: &InvalidObject) -> String {
    format!(
        "this object cannot be read by this release and is ignored until fixed or deleted: {}",
        invalid.error
    )
}

/// Logs the skipped object and publishes a Warning Event on it (from a spawned task: the
/// watch must not wait on the API server).
pub fn report<K>(recorder: &Recorder, invalid: &InvalidObject)
where
    K: Resource<DynamicType = ()>,
{
    let meta = &invalid.metadata;
    tracing::warn!(
        kind = %K::kind(&()),
        namespace = meta.namespace.as_deref().unwrap_or(""),
        name = meta.name.as_deref().unwrap_or(""),
        error = %invalid.error,
        "skipping an object that does not decode"
    );
    let reference = ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        ..ObjectReference::default()
    };
    let event = Event {
        type_: EventType::Warning,
        reason: UNDECODABLE_REASON.to_owned(),
        note: Some(describe(invalid)),
        action: "Watch".to_owned(),
        secondary: None,
    };
    let recorder = recorder.clone();
    tokio::spawn(async move {
        if let Err(e) = recorder.publish(&event, &reference).await {
            tracing::debug!(object = ?reference.name, error = %e, "cannot publish Event");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use esup_api::EncodingTask;
    use std::sync::Mutex;

    fn guarded(json: serde_json::Value) -> DeserializeGuard<EncodingTask> {
        serde_json::from_value(json).unwrap()
    }

    fn task(name: &str, priority: &str) -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "runner.esup-portail.org/v1alpha1", "kind": "EncodingTask",
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}")},
            "spec": {
                "source": {"url": "https://pod.example/v.mp4"},
                "requester": {"tenant": "univ-x", "etabName": "Univ", "appName": "Esup-Pod"},
                "priority": priority,
            },
        })
    }

    #[test]
    fn resource_versions_never_go_back() {
        assert!(newer(Some("12"), Some("11")));
        assert!(newer(Some("12"), Some("12")));
        assert!(!newer(Some("9"), Some("11")));
        assert!(newer(Some("x"), Some("11")));
        assert!(newer(Some("3"), None));
    }

    #[test]
    fn a_bad_object_is_reported_and_skipped_and_the_list_goes_on() {
        let skipped = Mutex::new(Vec::new());
        let on_invalid = |i: &InvalidObject| {
            skipped
                .lock()
                .unwrap()
                .push(i.metadata.name.clone().unwrap_or_default())
        };
        let events = [
            watcher::Event::Init,
            watcher::Event::InitApply(guarded(task("good-1", "High"))),
            watcher::Event::InitApply(guarded(task("narrowed", "Urgent"))),
            watcher::Event::InitApply(guarded(task("good-2", "Low"))),
            watcher::Event::InitDone,
            watcher::Event::Apply(guarded(task("narrowed", "Urgent"))),
            watcher::Event::Delete(guarded(task("good-1", "High"))),
        ];
        let out: Vec<String> = events
            .into_iter()
            .filter_map(|e| unguard(e, &on_invalid))
            .map(|e| match e {
                watcher::Event::Init => "init".to_owned(),
                watcher::Event::InitDone => "done".to_owned(),
                watcher::Event::InitApply(t) => format!("list {}", t.metadata.name.unwrap()),
                watcher::Event::Apply(t) => format!("apply {}", t.metadata.name.unwrap()),
                watcher::Event::Delete(t) => format!("delete {}", t.metadata.name.unwrap()),
            })
            .collect();
        assert_eq!(
            out,
            [
                "init",
                "list good-1",
                "list good-2",
                "done",
                "delete good-1"
            ]
        );
        assert_eq!(*skipped.lock().unwrap(), ["narrowed", "narrowed"]);
    }
}
