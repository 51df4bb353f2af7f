//! What to do, from the command line: the task spec the operator passes (`--spec`, an
//! `EncodingTaskSpec`), or Esup-Pod's raw parameters (`--params`) given by hand, which go
//! through the same validation as the webhook's (`esup_api::params::to_spec`). Pure.

use esup_api::common::{SecretKeyRef, TaskPriority};
use esup_api::encoding::{Dressing, EncodingTaskSpec, StudioOptions};
use esup_api::params::{SpecContext, to_spec};
use esup_api::task::TaskSpec;
use esup_api::wire::TaskRequest;

use crate::error::RunnerError;
use crate::ladder::{Rung, ladder};

/// Esup-Pod's video identification, echoed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VideoIds {
    pub id: Option<String>,
    pub slug: Option<String>,
    pub title: Option<String>,
}

/// A resolved encoding job.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub ladder: Vec<Rung>,
    /// (start, end, initial duration), seconds.
    pub cut: Option<(f64, f64, Option<f64>)>,
    pub dressing: Option<Dressing>,
    /// Esup-Pod's `presenter` and `studio_*` parameters (studio tasks).
    pub studio: Option<StudioOptions>,
    pub ids: VideoIds,
}

impl Job {
    fn from_spec(spec: &EncodingTaskSpec) -> Self {
        Self {
            ladder: ladder(&spec.renditions),
            cut: spec.cut.as_ref().map(|c| {
                (
                    c.start.as_secs_f64(),
                    c.end.as_secs_f64(),
                    c.initial_duration.map(|d| d.as_secs_f64()),
                )
            }),
            dressing: spec.dressing.clone(),
            studio: spec.studio.clone(),
            ids: VideoIds {
                id: spec.common.video.id.map(|i| i.to_string()),
                slug: spec.common.video.slug.clone(),
                title: spec.common.video.title.clone(),
            },
        }
    }
}

/// From `--spec`: the JSON the operator writes into the Job's arguments.
pub fn from_spec_json(json: &str) -> Result<Job, RunnerError> {
    let spec: EncodingTaskSpec = serde_json::from_str(json)
        .map_err(|e| RunnerError::Usage(format!("invalid --spec: {e}")))?;
    Ok(Job::from_spec(&spec))
}

/// From `--params`: Esup-Pod's `parameters` object, checked exactly as the webhook checks a
/// `POST /task/execute`. `studio` selects the studio whitelist.
pub fn from_params_json(json: &str, source: &str, studio: bool) -> Result<Job, RunnerError> {
    let task_type = if studio { "studio" } else { "encoding" };
    match spec_from_params(json, source, task_type)? {
        TaskSpec::Encoding(spec) => Ok(Job::from_spec(&spec)),
        TaskSpec::Transcription(_) => Err(RunnerError::Usage("not an encoding task".into())),
    }
}

/// Esup-Pod's `parameters` for a task of `task_type` (`encoding`, `studio`, `transcription`)
/// through the webhook's own validation, `esup_api::params::to_spec`.
pub fn spec_from_params(
    json: &str,
    source: &str,
    task_type: &str,
) -> Result<TaskSpec, RunnerError> {
    let parameters: serde_json::Map<String, serde_json::Value> = serde_json::from_str(json)
        .map_err(|e| RunnerError::Usage(format!("invalid --params (a JSON object): {e}")))?;
    // The webhook only accepts http(s) URLs; a local file stands for one here.
    let source_url = if crate::naming::is_http_url(source) {
        source.to_owned()
    } else {
        "http://localhost/source".to_owned()
    };
    let request = TaskRequest {
        etab_name: "local".into(),
        app_name: "esup-runner".into(),
        app_version: None,
        task_type: task_type.into(),
        source_url,
        affiliation: None,
        parameters,
        notify_url: String::new(),
    };
    let ctx = SpecContext {
        tenant: "local".into(),
        notify_token: SecretKeyRef {
            name: "none".into(),
            key: "token".into(),
            namespace: None,
        },
        retention: None,
        priority: TaskPriority::Normal,
    };
    to_spec(&request, &ctx).map_err(|e| RunnerError::Usage(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_validated_and_merged() {
        let job = from_params_json(
            r#"{"rendition": "{\"720\": {\"encode_mp4\": false}, \"1080\": null}",
                "cut": "{\"start\":\"00:00:01\",\"end\":\"00:00:04\",\"initial_duration\":\"00:00:06\"}",
                "video_id": 12}"#,
            "/tmp/a.mp4",
            false,
        )
        .unwrap();
        assert_eq!(
            job.ladder.iter().map(|r| r.height).collect::<Vec<_>>(),
            [360, 720]
        );
        assert!(!job.ladder[1].encode_mp4);
        assert_eq!(job.cut, Some((1.0, 4.0, Some(6.0))));
        assert_eq!(job.ids.id.as_deref(), Some("12"));
        let err = from_params_json(r#"{"bogus": 1}"#, "x.mp4", false).unwrap_err();
        assert_eq!(err.exit_code(), 64);
        assert!(err.to_string().contains("invalid fields: bogus"), "{err}");
        assert!(from_params_json("[]", "x.mp4", false).is_err());
        assert_eq!(
            from_params_json("{}", "x.mp4", false).unwrap().ladder.len(),
            3
        );
    }

    #[test]
    fn spec_from_the_operator() {
        let spec = serde_json::json!({
            "source": {"url": "http://pod.test/a.mp4"},
            "renditions": [{"height": 360, "width": 640, "encodeMp4": true}],
            "requester": {"tenant": "t", "etabName": "U", "appName": "Esup-Pod"},
            "video": {"slug": "12-a"}
        });
        let job = from_spec_json(&spec.to_string()).unwrap();
        assert_eq!(job.ladder.len(), 1);
        assert_eq!(job.ladder[0].video_bitrate, 750_000);
        assert_eq!(job.ids.slug.as_deref(), Some("12-a"));
        assert_eq!(from_spec_json("{}").unwrap_err().exit_code(), 64);
    }
}
