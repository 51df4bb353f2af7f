//! The CRD schemas against full fixtures: every field is exercised, and the CEL rules accept
//! the fixtures and refuse what they are meant to refuse (evaluated locally, no API server).

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests fail loudly by design

use esup_api::{EncodingTask, RunnerPool, TranscriptionTask};
use kube::CustomResourceExt;
use kube::core::cel::{validate_cel, validate_cel_update};
use serde_json::Value;

fn fixture<T: serde::de::DeserializeOwned>(name: &str) -> T {
    // Read when the test runs (cargo sets it), not when it was built: a build cache shared
    // with a checkout elsewhere would otherwise point at that checkout.
    let dir = std::env::var("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
    let path = format!("{dir}/tests/fixtures/{name}");
    let text = std::fs::read_to_string(&path).expect("fixture readable");
    serde_yaml::from_str(&text).expect("fixture parses as its kind")
}

/// Upstream Kubernetes types whose own fields we do not require the fixtures to cover.
const UPSTREAM: &[&str] = &[
    "spec.placement.affinity",
    "spec.placement.tolerations",
    "spec.resources",
];

/// Lists schema properties under `path` that `value` leaves unset.
fn missing_fields(schema: &Value, value: &Value, path: &str, missing: &mut Vec<String>) {
    if UPSTREAM.contains(&path) {
        return;
    }
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, sub) in properties {
            let sub_path = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            match value.get(name) {
                Some(v) if !v.is_null() => missing_fields(sub, v, &sub_path, missing),
                _ => missing.push(sub_path),
            }
        }
    }
    if let (Some(items), Some(first)) = (
        schema.get("items"),
        value.as_array().and_then(|a| a.first()),
    ) {
        missing_fields(items, first, path, missing);
    }
}

fn spec_schema<K: CustomResourceExt>() -> Value {
    let crd = serde_json::to_value(K::crd()).expect("crd serializes");
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].clone()
}

fn assert_covers_every_spec_field<K: CustomResourceExt + serde::Serialize>(object: &K) {
    let value = serde_json::to_value(object).expect("serializes");
    let mut missing = Vec::new();
    missing_fields(&spec_schema::<K>(), &value["spec"], "spec", &mut missing);
    assert!(
        missing.is_empty(),
        "fixture of {} leaves unset: {missing:?}",
        K::crd_name()
    );
}

#[test]
fn fixtures_set_every_spec_field() {
    assert_covers_every_spec_field(&fixture::<EncodingTask>("encodingtask-full.yaml"));
    assert_covers_every_spec_field(&fixture::<TranscriptionTask>("transcriptiontask-full.yaml"));
    assert_covers_every_spec_field(&fixture::<RunnerPool>("runnerpool-full.yaml"));
}

#[test]
fn fixtures_pass_every_cel_rule() {
    validate_cel(&fixture::<EncodingTask>("encodingtask-full.yaml"))
        .expect("encoding fixture valid");
    validate_cel(&fixture::<TranscriptionTask>("transcriptiontask-full.yaml"))
        .expect("transcription fixture valid");
    validate_cel(&fixture::<RunnerPool>("runnerpool-full.yaml")).expect("pool fixture valid");
}

#[test]
fn task_spec_is_immutable() {
    let old: EncodingTask = fixture("encodingtask-full.yaml");
    let mut new = old.clone();
    new.spec.common.priority = esup_api::TaskPriority::Low;
    let err = validate_cel_update(&new, &old).expect_err("a spec change must be refused");
    assert!(format!("{err:?}").contains("spec is immutable"), "{err:?}");
    validate_cel_update(&old, &old).expect("an unchanged spec is accepted");
}

#[test]
fn studio_options_need_a_studio_source() {
    let mut task: EncodingTask = fixture("encodingtask-full.yaml");
    task.spec.source.kind = esup_api::encoding::SourceKind::Media;
    let err = validate_cel(&task).expect_err("studio options on a media source");
    assert!(format!("{err:?}").contains("StudioMediapackage"), "{err:?}");
}

#[test]
fn odd_rendition_sizes_are_refused() {
    let mut task: EncodingTask = fixture("encodingtask-full.yaml");
    task.spec.renditions[0].width = 641;
    let err = validate_cel(&task).expect_err("odd width");
    assert!(format!("{err:?}").contains("must be even"), "{err:?}");
}

#[test]
fn backoff_bounds_must_be_ordered() {
    let mut task: TranscriptionTask = fixture("transcriptiontask-full.yaml");
    task.spec.common.retry.max_backoff = "1s".parse().expect("duration");
    let err = validate_cel(&task).expect_err("maxBackoff < initialBackoff");
    assert!(format!("{err:?}").contains("maxBackoff"), "{err:?}");
}

#[test]
fn encoding_needs_nvenc_on_a_gpu_pool() {
    let mut pool: RunnerPool = fixture("runnerpool-full.yaml");
    pool.spec.gpu.as_mut().expect("gpu pool").nvenc = false;
    let err = validate_cel(&pool).expect_err("H100-like pool running encoding");
    assert!(format!("{err:?}").contains("NVENC"), "{err:?}");
    pool.spec.task_types = vec![esup_api::TaskType::Transcription];
    validate_cel(&pool).expect("a GPU pool without NVENC may transcribe");
}

#[test]
fn minimal_objects_get_the_documented_defaults() {
    let pool: RunnerPool = serde_yaml::from_str(
        "apiVersion: runner.esup-portail.org/v1alpha1\nkind: RunnerPool\nmetadata: {name: cpu}\nspec: {taskTypes: [Transcription], maxConcurrency: 2}\n",
    )
    .expect("minimal pool");
    assert_eq!(pool.spec.priority, 100);
    assert_eq!(pool.spec.scratch_size.0, "20Gi");
    assert!(pool.spec.preemption.reclaim);
    let task: TranscriptionTask = serde_yaml::from_str(
        "apiVersion: runner.esup-portail.org/v1alpha1\nkind: TranscriptionTask\nmetadata: {name: t}\nspec:\n  source: {url: 'https://pod.example/a.mp3'}\n  language: fr\n  requester: {tenant: univ-x, etabName: X, appName: Esup-Pod}\n",
    )
    .expect("minimal task");
    assert_eq!(task.spec.source_language, "auto");
    assert_eq!(task.spec.common.retry.max_attempts, 3);
    assert_eq!(
        task.spec.common.timeouts.execution,
        "5h".parse::<kube::core::Duration>().expect("duration")
    );
}
