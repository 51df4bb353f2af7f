//! The API of either task kind, chosen at run time from a [`TaskKind`]: status applies,
//! annotation patches, reads and deletes are written once over `DynamicObject` instead of once
//! per kind. The one place that maps a kind to its resource. I/O handle, no request made here.

use esup_api::task::{TaskKind, TaskResource};
use esup_api::{EncodingTask, TranscriptionTask};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject};

/// The resource of a task kind, for dynamic requests.
pub fn resource(kind: TaskKind) -> ApiResource {
    match kind {
        TaskKind::Encoding => ApiResource::erase::<EncodingTask>(&()),
        TaskKind::Transcription => ApiResource::erase::<TranscriptionTask>(&()),
    }
}

/// The tasks of `kind` in `namespace`.
pub fn api(client: Client, kind: TaskKind, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client, namespace, &resource(kind))
}

/// The typed task an API answer holds, when it is of kind `K` and decodes.
pub fn typed<K: TaskResource>(object: DynamicObject) -> Option<K> {
    let is_kind = object.types.as_ref().is_none_or(|t| t.kind == K::kind(&()));
    if !is_kind {
        return None;
    }
    object.try_parse::<K>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_maps_to_its_resource() {
        for kind in TaskKind::ALL {
            let resource = resource(kind);
            assert_eq!(resource.kind, kind.kind_name());
            assert_eq!(resource.plural, kind.plural());
            assert_eq!(resource.group, esup_api::GROUP);
            assert_eq!(resource.version, esup_api::VERSION);
        }
    }

    #[test]
    fn answers_decode_as_their_kind_only() {
        let object: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "runner.esup-portail.org/v1alpha1", "kind": "TranscriptionTask",
            "metadata": {"name": "t", "namespace": "ns", "uid": "u"},
            "spec": {"source": {"url": "https://pod.example/a.mp3"}, "language": "fr",
                     "requester": {"tenant": "univ-x", "etabName": "U", "appName": "Esup-Pod"}},
        }))
        .expect("object");
        assert!(typed::<EncodingTask>(object.clone()).is_none());
        let task = typed::<TranscriptionTask>(object).expect("decodes");
        assert_eq!(task.spec.language, "fr");
    }
}
