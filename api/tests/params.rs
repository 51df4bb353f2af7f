//! Esup-Pod requests → task specs: the protocol's example requests, the parameter rules of
//! the reference runner, the dedup fingerprint against Python's, and every accepted spec
//! checked against the CRD schema (bounds, patterns, CEL rules) as the API server would.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests fail loudly by design

use esup_api::common::{
    MediaSource, NotifySpec, Requester, RetryPolicy, SecretKeyRef, TaskCommon, TaskPriority,
    Timeouts, VideoMetadata,
};
use esup_api::encoding::{
    Credits, Cut, Dressing, EncodingSource, EncodingTaskSpec, Rendition, SourceKind, StudioLayout,
    StudioOptions, Watermark, WatermarkPosition,
};
use esup_api::params::canonical_json;
use esup_api::task::TaskSpec;
use esup_api::transcription::{SubtitleFormat, TranscriptionTaskSpec};
use esup_api::{
    EncodingTask, ParamError, SpecContext, TaskRequest, TranscriptionTask, fingerprint, to_spec,
    to_submission,
};
use kube::CustomResourceExt;
use kube::core::cel::validate_cel;
use serde_json::{Value, json};

/// §1.2's encoding example, verbatim.
const ENCODING: &str = r#"{"etab_name": "Université X / Pod", "app_name": "Esup-Pod", "app_version": "4.2.0",
 "task_type": "encoding",
 "source_url": "https://pod.univ.fr/media/videos/3f1c…/my_lecture.mp4",
 "notify_url": "https://pod.univ.fr/runner/notify_task_end/",
 "parameters": {
   "rendition": "{\"360\": {\"resolution\": \"640x360\", \"video_bitrate\": \"750k\", \"audio_bitrate\": \"96k\", \"encode_mp4\": true}, \"720\": {\"resolution\": \"1280x720\", \"video_bitrate\": \"2000k\", \"audio_bitrate\": \"128k\", \"encode_mp4\": true}, \"1080\": {\"resolution\": \"1920x1080\", \"video_bitrate\": \"3000k\", \"audio_bitrate\": \"192k\", \"encode_mp4\": false}}",
   "cut": "{\"start\": \"00:00:07\", \"end\": \"00:00:17\", \"initial_duration\": \"00:17:00\"}",
   "dressing": "{\"watermark\": \"https://pod.univ.fr/media/…/logo.png\", \"watermark_position\": \"top_right\", \"watermark_opacity\": \"80\", \"opening_credits\": \"intro-slug\", \"opening_credits_video\": \"https://pod.univ.fr/media/…/intro.mp4\", \"opening_credits_video_duration\": \"00:00:05\"}",
   "video_id": 1234, "video_slug": "1234-my-lecture", "video_title": "My lecture"}}"#;

/// §1.2's transcription example, verbatim.
const TRANSCRIPTION: &str = r#"{"etab_name":"Université X / Pod","app_name":"Esup-Pod","app_version":"4.2.0",
 "task_type":"transcription",
 "source_url":"https://pod.univ.fr/media/videos/3f1c…/1234/audio_192k_my_lecture.mp3",
 "notify_url":"https://pod.univ.fr/runner/notify_task_end/",
 "parameters":{"language":"fr","source_language":"fr","duration":612.0,"normalize":false,
               "video_id":1234,"video_slug":"1234-my-lecture","video_title":"My lecture",
               "model_type":"WHISPER"}}"#;

/// Pod's default ladder as the `rendition` string it sends.
const POD_LADDER: &str = r#"{"360": {"resolution": "640x360", "video_bitrate": "750k", "audio_bitrate": "96k", "encode_mp4": true}, "720": {"resolution": "1280x720", "video_bitrate": "2000k", "audio_bitrate": "128k", "encode_mp4": true}, "1080": {"resolution": "1920x1080", "video_bitrate": "3000k", "audio_bitrate": "192k", "encode_mp4": false}}"#;

fn ctx() -> SpecContext {
    SpecContext {
        tenant: "univ-x".into(),
        notify_token: SecretKeyRef {
            name: "esup-tenant-univ-x".into(),
            key: "token".into(),
            namespace: None,
        },
        retention: Some("720h".parse().unwrap()),
        priority: TaskPriority::High,
    }
}

fn request(text: &str) -> TaskRequest {
    serde_json::from_str(text).expect("request parses")
}

/// A request of `task_type` from the example's requester, with these parameters.
fn with_params(task_type: &str, parameters: Value) -> TaskRequest {
    serde_json::from_value(json!({
        "etab_name": "Université X / Pod", "app_name": "Esup-Pod", "app_version": "4.2.0",
        "task_type": task_type, "source_url": "https://pod.univ.fr/media/videos/a/my_lecture.mp4",
        "notify_url": "https://pod.univ.fr/runner/notify_task_end/", "parameters": parameters
    }))
    .unwrap()
}

fn common(video: VideoMetadata) -> TaskCommon {
    TaskCommon {
        requester: Requester {
            tenant: "univ-x".into(),
            etab_name: "Université X / Pod".into(),
            app_name: "Esup-Pod".into(),
            app_version: Some("4.2.0".into()),
            affiliation: None,
        },
        notify: Some(NotifySpec {
            url: "https://pod.univ.fr/runner/notify_task_end/".into(),
            token_secret_ref: ctx().notify_token,
        }),
        video,
        priority: TaskPriority::High,
        pools: Vec::new(),
        timeouts: Timeouts::default(),
        retry: RetryPolicy::default(),
        retention: Some("720h".parse().unwrap()),
    }
}

fn lecture() -> VideoMetadata {
    VideoMetadata {
        id: Some(1234),
        slug: Some("1234-my-lecture".into()),
        title: Some("My lecture".into()),
    }
}

fn rung(height: u32, width: u32, video: &str, audio: &str, encode_mp4: bool) -> Rendition {
    Rendition {
        height,
        width,
        video_bitrate: Some(video.into()),
        audio_bitrate: Some(audio.into()),
        encode_mp4,
    }
}

fn pod_ladder() -> Vec<Rendition> {
    vec![
        rung(360, 640, "750k", "96k", true),
        rung(720, 1280, "2000k", "128k", true),
        rung(1080, 1920, "3000k", "192k", false),
    ]
}

fn tc(text: &str) -> esup_api::Timecode {
    text.parse().unwrap()
}

/// Converts and checks the result against the CRD as the API server would.
fn accept(request: &TaskRequest) -> TaskSpec {
    let spec = to_spec(request, &ctx()).unwrap_or_else(|e| panic!("accepted: {e}"));
    assert_fits_crd(&spec);
    spec
}

fn encoding(request: &TaskRequest) -> EncodingTaskSpec {
    match accept(request) {
        TaskSpec::Encoding(spec) => spec,
        other => panic!("expected an encoding spec, got {other:?}"),
    }
}

fn transcription(request: &TaskRequest) -> TranscriptionTaskSpec {
    match accept(request) {
        TaskSpec::Transcription(spec) => spec,
        other => panic!("expected a transcription spec, got {other:?}"),
    }
}

/// An edit of a request, for tables of variations.
type Change = Box<dyn Fn(&mut TaskRequest)>;

fn reject(request: &TaskRequest) -> ParamError {
    to_spec(request, &ctx()).expect_err("refused")
}

#[test]
fn encoding_example_maps_to_the_expected_spec() {
    let spec = encoding(&request(ENCODING));
    let expected = EncodingTaskSpec {
        source: EncodingSource {
            url: "https://pod.univ.fr/media/videos/3f1c…/my_lecture.mp4".into(),
            kind: SourceKind::Media,
        },
        renditions: pod_ladder(),
        cut: Some(Cut {
            start: tc("00:00:07"),
            end: tc("00:00:17"),
            initial_duration: Some(tc("00:17:00")),
        }),
        dressing: Some(Dressing {
            watermark: Some(Watermark {
                url: "https://pod.univ.fr/media/…/logo.png".into(),
                position: WatermarkPosition::TopRight,
                opacity: 80,
            }),
            opening_credits: Some(Credits {
                url: "https://pod.univ.fr/media/…/intro.mp4".into(),
                duration: Some(tc("00:00:05")),
                slug: Some("intro-slug".into()),
            }),
            ending_credits: None,
        }),
        studio: None,
        common: common(lecture()),
    };
    assert_eq!(spec, expected);
}

#[test]
fn transcription_example_maps_to_the_expected_spec() {
    let spec = transcription(&request(TRANSCRIPTION));
    let expected = TranscriptionTaskSpec {
        source: MediaSource {
            url: "https://pod.univ.fr/media/videos/3f1c…/1234/audio_192k_my_lecture.mp3".into(),
        },
        language: "fr".into(),
        source_language: "fr".into(),
        duration_seconds: Some(612.0),
        normalize: false,
        model: None,
        model_type: Some("WHISPER".into()),
        format: SubtitleFormat::Vtt,
        common: common(lecture()),
    };
    assert_eq!(spec, expected);
}

#[test]
fn studio_example_maps_to_a_studio_encoding() {
    let mut req = with_params("studio", json!({"rendition": POD_LADDER}));
    req.source_url = "https://pod.univ.fr/media/opencast-files/abcd-efgh/abcd-efgh.xml".into();
    let spec = encoding(&req);
    assert_eq!(spec.source.kind, SourceKind::StudioMediapackage);
    assert_eq!(spec.task_type(), esup_api::TaskType::Studio);
    assert_eq!(spec.renditions, pod_ladder());
    assert_eq!((spec.cut, spec.dressing, spec.studio), (None, None, None));
    assert_eq!(spec.common, common(VideoMetadata::default()));
}

#[test]
fn studio_keys_become_studio_options_from_strings_or_scalars() {
    let cases = [
        json!({"presenter": "piph", "force_cpu": "true", "studio_crf": "23", "studio_preset": "Medium",
               "studio_audio_bitrate": "128k", "studio_allow_nvenc": 1}),
        json!({"presenter": "piph", "force_cpu": true, "studio_crf": 23, "studio_preset": "medium",
               "studio_audio_bitrate": "128k", "studio_allow_nvenc": "True"}),
    ];
    for params in cases {
        let spec = encoding(&with_params("studio", params));
        assert_eq!(
            spec.studio,
            Some(StudioOptions {
                layout: Some(StudioLayout::PresenterTopRight),
                force_cpu: true,
                crf: Some(23),
                preset: Some("medium".into()),
                audio_bitrate: Some("128k".into()),
                allow_nvenc: true,
            })
        );
    }
    for (presenter, layout) in [
        ("mid", StudioLayout::SideBySide),
        ("pipb", StudioLayout::PresenterBottomRight),
    ] {
        let spec = encoding(&with_params("studio", json!({"presenter": presenter})));
        assert_eq!(spec.studio.unwrap().layout, Some(layout));
    }
    for bad in [
        json!({"presenter": "left"}),
        json!({"studio_crf": 52}),
        json!({"studio_crf": "-1"}),
        json!({"studio_preset": "placebo"}),
        json!({"studio_audio_bitrate": "lots"}),
        json!({"force_cpu": "maybe"}),
    ] {
        let err = reject(&with_params("studio", bad.clone()));
        assert_eq!(err.category(), "InvalidParameterValue", "{bad}: {err}");
    }
}

#[test]
fn transcription_accepts_the_legacy_lang_key() {
    let spec = transcription(&with_params(
        "transcription",
        json!({"lang": "fr", "source_language": "en", "video_id": 1234}),
    ));
    assert_eq!(spec.language, "fr");
    assert_eq!(spec.source_language, "en");
    // `language` wins over `lang`.
    let spec = transcription(&with_params(
        "transcription",
        json!({"language": "en", "lang": "fr"}),
    ));
    assert_eq!(spec.language, "en");
    assert_eq!(spec.source_language, "auto", "default source language");
    // Case and subtags as the CRD accepts them.
    let spec = transcription(&with_params("transcription", json!({"language": "PT-BR"})));
    assert_eq!(spec.language, "pt-BR");
    let spec = transcription(&with_params("transcription", json!({"language": "AUTO"})));
    assert_eq!(spec.language, "auto");
}

#[test]
fn transcription_needs_a_language() {
    for params in [
        json!({}),
        json!({"language": ""}),
        json!({"language": null, "lang": null}),
    ] {
        let err = reject(&with_params("transcription", params));
        assert_eq!(err.category(), "MissingParameter");
        assert_eq!(
            err.to_string(),
            "Missing parameter for task type transcription: language"
        );
    }
    for bad in ["french", "f", "fr-", "fr-B", "12", "fr-BR-x"] {
        let err = reject(&with_params("transcription", json!({"language": bad})));
        assert_eq!(err.category(), "InvalidParameterValue", "{bad}");
    }
}

#[test]
fn unknown_parameter_keys_are_refused_with_the_runner_message() {
    let cases = [
        (
            "encoding",
            json!({"zeta": 1, "lang": "fr", "alpha": 2, "video_id": 1}),
            "Invalid parameters for task type: encoding (invalid fields: alpha, lang, zeta)",
        ),
        (
            "transcription",
            json!({"language": "fr", "rendition": POD_LADDER}),
            "Invalid parameters for task type: transcription (invalid fields: rendition)",
        ),
        (
            "encoding",
            json!({"presenter": "mid", "force_cpu": true}),
            "Invalid parameters for task type: encoding (invalid fields: force_cpu, presenter)",
        ),
        (
            "studio",
            json!({"language": "fr", "Rendition": POD_LADDER}),
            "Invalid parameters for task type: studio (invalid fields: Rendition, language)",
        ),
    ];
    for (task_type, params, message) in cases {
        let err = reject(&with_params(task_type, params));
        assert_eq!(err.category(), "InvalidParameters");
        assert_eq!(err.to_string(), message);
    }
}

#[test]
fn requests_with_invalid_parameters_become_tasks_that_fail() {
    // Only the parameters are wrong: accepted, as a spec without them (keeping the video's
    // identification when it is valid) and the error the task fails with.
    let cases = [
        (
            with_params(
                "encoding",
                json!({"zeta": 1, "video_id": 1234, "video_slug": "1234-my-lecture", "video_title": "My lecture"}),
            ),
            "Invalid parameters for task type: encoding (invalid fields: zeta)",
            Some(lecture()),
        ),
        (
            with_params(
                "transcription",
                json!({"language": "fr", "rendition": POD_LADDER}),
            ),
            "Invalid parameters for task type: transcription (invalid fields: rendition)",
            Some(VideoMetadata::default()),
        ),
        (
            with_params("transcription", json!({"video_id": 7})),
            "Missing parameter for task type transcription: language",
            None,
        ),
        (
            with_params("encoding", json!({"rendition": "{\"abc\": {}}"})),
            "Invalid rendition",
            None,
        ),
        (
            with_params("studio", json!({"video_id": "not a number", "cut": 5})),
            "Invalid",
            Some(VideoMetadata::default()),
        ),
    ];
    for (request, message, video) in cases {
        let submission = to_submission(&request, &ctx()).expect("accepted");
        let error = submission.invalid_parameters.expect("fails");
        assert!(error.is_in_parameters());
        assert!(error.to_string().starts_with(message), "{error}");
        assert_eq!(
            submission.spec.task_type().protocol_name(),
            request.task_type
        );
        if let Some(video) = video {
            assert_eq!(submission.spec.common().video, video);
        }
        assert_fits_crd(&submission.spec);
    }
    if let TaskSpec::Encoding(spec) = to_submission(
        &with_params("encoding", json!({"rendition": "{}", "zeta": 1})),
        &ctx(),
    )
    .unwrap()
    .spec
    {
        assert!(spec.renditions.is_empty() && spec.cut.is_none() && spec.dressing.is_none());
    } else {
        panic!("an encoding");
    }
    // A valid request has no error; a request that is not a task request is still refused.
    let valid = to_submission(&request(ENCODING), &ctx()).unwrap();
    assert_eq!(
        (valid.spec, valid.invalid_parameters),
        (accept(&request(ENCODING)), None)
    );
    for (bad, category) in [
        (
            with_params("transcript", json!({"zeta": 1})),
            "InvalidTaskType",
        ),
        (
            TaskRequest {
                source_url: "ftp://pod/a.mp4".into(),
                ..with_params("encoding", json!({"zeta": 1}))
            },
            "InvalidUrl",
        ),
        (
            TaskRequest {
                etab_name: " ".into(),
                ..with_params("encoding", json!({}))
            },
            "InvalidRequest",
        ),
    ] {
        let err = to_submission(&bad, &ctx()).expect_err("refused");
        assert_eq!(err.category(), category);
        assert!(!err.is_in_parameters());
    }
}

#[test]
fn unknown_task_types_are_refused() {
    for task_type in ["Encoding", "transcript", ""] {
        let err = reject(&with_params(task_type, json!({})));
        assert_eq!(err.category(), "InvalidTaskType");
        assert!(
            err.to_string()
                .contains("expected encoding, studio or transcription")
        );
    }
}

#[test]
fn rendition_null_removes_a_rung_and_partial_rungs_inherit_the_default() {
    let spec = encoding(&with_params(
        "encoding",
        json!({"rendition": {
            "1080": null,
            "720": {"encode_mp4": "false", "video_bitrate": "2500k"},
            "480": {"resolution": "854x480", "audio_bitrate": null},
            "2160": {"resolution": "3840x2160", "video_bitrate": 12_000_000, "encode_mp4": true}
        }}),
    ));
    assert_eq!(
        spec.renditions,
        vec![
            rung(360, 640, "750k", "96k", true),
            Rendition {
                height: 480,
                width: 854,
                video_bitrate: None,
                audio_bitrate: None,
                encode_mp4: false,
            },
            rung(720, 1280, "2500k", "128k", false),
            Rendition {
                height: 2160,
                width: 3840,
                video_bitrate: Some("12000000".into()),
                audio_bitrate: None,
                encode_mp4: true,
            },
        ]
    );
    // An empty ladder object asks for the default ladder: no rung in the spec.
    assert!(
        encoding(&with_params("encoding", json!({"rendition": "{}"})))
            .renditions
            .is_empty()
    );
    // A JSON `null` parameter is absent.
    assert!(
        encoding(&with_params("encoding", json!({"rendition": null})))
            .renditions
            .is_empty()
    );
}

#[test]
fn bad_renditions_are_refused() {
    let cases = [
        json!("not json"),
        json!("[1, 2]"),
        json!(42),
        json!({"720": {"resolution": "1280x721"}}),
        json!({"720": {"resolution": "1281x720"}}),
        json!({"721": {"resolution": "1280x721"}}),
        json!({"abc": {"resolution": "1280x720"}}),
        json!({"720": {"resolution": "1280*720"}}),
        json!({"720": {"resolution": 720}}),
        json!({"2000": {"encode_mp4": true}}),
        json!({"720": {"video_bitrate": "fast"}}),
        json!({"720": {"audio_bitrate": "3G"}}),
        json!({"720": {"encode_mp4": "sometimes"}}),
        json!({"720": "1280x720"}),
        json!({"8": {"resolution": "14x8"}}),
        json!({"360": null, "720": null, "1080": null}),
        json!({"720": {}, "0720": {}}),
        json!({
            "100": {"resolution": "178x100"}, "200": {"resolution": "356x200"},
            "300": {"resolution": "534x300"}, "400": {"resolution": "712x400"},
            "500": {"resolution": "890x500"}, "600": {"resolution": "1068x600"}
        }),
    ];
    for rendition in cases {
        let err = reject(&with_params(
            "encoding",
            json!({"rendition": rendition.clone()}),
        ));
        assert_eq!(err.category(), "InvalidRendition", "{rendition}: {err}");
    }
}

#[test]
fn cuts_in_every_form_esup_pod_writes() {
    let cases = [
        (
            json!("{\"start\": \"00:00:07\", \"end\": \"00:00:17\"}"),
            "00:00:07",
            "00:00:17",
            None,
        ),
        (
            json!({"start": "0:00:07.500000", "end": 17, "initial_duration": "00:17:00"}),
            "00:00:07.500",
            "00:00:17",
            Some("00:17:00"),
        ),
        (
            json!({"start": "7.25", "end": "00:01:00", "initial_duration": ""}),
            "00:00:07.250",
            "00:01:00",
            None,
        ),
    ];
    for (value, start, end, initial) in cases {
        let spec = encoding(&with_params("encoding", json!({"cut": value})));
        assert_eq!(
            spec.cut,
            Some(Cut {
                start: tc(start),
                end: tc(end),
                initial_duration: initial.map(tc),
            })
        );
    }
}

#[test]
fn bad_cuts_are_refused() {
    for cut in [
        json!("{\"start\": \"00:00:17\", \"end\": \"00:00:07\"}"),
        json!({"start": "00:00:07", "end": "00:00:07"}),
        json!({"start": "00:00:07"}),
        json!({"end": "00:00:07"}),
        json!({"start": "7 s", "end": "00:00:17"}),
        json!({"start": "00:61:00", "end": "01:00:00"}),
        json!({"start": -1, "end": 5}),
        json!({"start": "00:00:01", "end": "1000000:00:00"}),
        json!("{start: 1}"),
        json!(true),
    ] {
        let err = reject(&with_params("encoding", json!({"cut": cut.clone()})));
        assert_eq!(err.category(), "InvalidCut", "{cut}: {err}");
    }
}

#[test]
fn dressing_forms() {
    let spec = encoding(&with_params(
        "encoding",
        json!({"dressing": {
            "watermark": "https://pod.univ.fr/media/wm.png",
            "watermark_position": "En bas à gauche",
            "watermark_opacity": 35,
            "ending_credits": "outro",
            "ending_credits_video": "https://pod.univ.fr/media/outro.mp4",
            "ending_credits_video_duration": "0:00:08",
            "opening_credits": "orphan-slug-without-video"
        }}),
    ));
    assert_eq!(
        spec.dressing,
        Some(Dressing {
            watermark: Some(Watermark {
                url: "https://pod.univ.fr/media/wm.png".into(),
                position: WatermarkPosition::BottomLeft,
                opacity: 35,
            }),
            opening_credits: None,
            ending_credits: Some(Credits {
                url: "https://pod.univ.fr/media/outro.mp4".into(),
                duration: Some(tc("00:00:08")),
                slug: Some("outro".into()),
            }),
        })
    );
    // `watermark_position_orig` (what current Esup-Pod sends) wins over the label.
    let spec = encoding(&with_params(
        "encoding",
        json!({"dressing": "{\"watermark\": \"https://pod.univ.fr/wm.png\", \"watermark_position_orig\": \"top_left\", \"watermark_position\": \"Oben rechts\"}"}),
    ));
    let watermark = spec.dressing.unwrap().watermark.unwrap();
    assert_eq!(watermark.position, WatermarkPosition::TopLeft);
    assert_eq!(watermark.opacity, 100, "default opacity");
    // Nothing to do: no dressing.
    let spec = encoding(&with_params(
        "encoding",
        json!({"dressing": {"watermark": "", "watermark_opacity": "80"}}),
    ));
    assert_eq!(spec.dressing, None);
}

#[test]
fn bad_dressings_are_refused() {
    for dressing in [
        json!({"watermark": "file:///etc/passwd"}),
        json!({"watermark": "https://pod.univ.fr/wm.png", "watermark_position": "centre"}),
        json!({"watermark": "https://pod.univ.fr/wm.png", "watermark_opacity": "150"}),
        json!({"watermark": "https://pod.univ.fr/wm.png", "watermark_opacity": "opaque"}),
        json!({"opening_credits_video": "https://pod.univ.fr/o.mp4", "opening_credits_video_duration": "five seconds"}),
        json!({"ending_credits_video": "pod.univ.fr/e.mp4"}),
        json!("{\"watermark\": "),
        json!({"opening_credits_video": "https://pod.univ.fr/o.mp4", "opening_credits": "s".repeat(513)}),
    ] {
        let err = reject(&with_params(
            "encoding",
            json!({"dressing": dressing.clone()}),
        ));
        assert_eq!(err.category(), "InvalidDressing", "{dressing}: {err}");
    }
}

#[test]
fn scalars_may_come_as_strings() {
    let spec = transcription(&with_params(
        "transcription",
        json!({"language": "fr", "duration": "612.5", "normalize": "True", "video_id": "1234",
               "format": "VTT", "model": "large-v3", "video_slug": 1234}),
    ));
    assert_eq!(spec.duration_seconds, Some(612.5));
    assert!(spec.normalize);
    assert_eq!(spec.common.video.id, Some(1234));
    assert_eq!(spec.common.video.slug.as_deref(), Some("1234"));
    assert_eq!(spec.model.as_deref(), Some("large-v3"));
    for (normalize, expected) in [
        (json!("1"), true),
        (json!("0"), false),
        (json!("false"), false),
        (json!(1), true),
        (json!(false), false),
    ] {
        let spec = transcription(&with_params(
            "transcription",
            json!({"language": "fr", "normalize": normalize}),
        ));
        assert_eq!(spec.normalize, expected);
    }
    // Empty strings are absent values.
    let spec = transcription(&with_params(
        "transcription",
        json!({"language": "fr", "duration": "", "video_id": "", "video_title": " "}),
    ));
    assert_eq!(spec.duration_seconds, None);
    assert_eq!(spec.common.video, VideoMetadata::default());
}

#[test]
fn bad_scalars_are_refused() {
    let cases = [
        json!({"duration": "abc"}),
        json!({"duration": -1}),
        json!({"duration": "NaN"}),
        json!({"duration": "inf"}),
        json!({"duration": [1]}),
        json!({"normalize": "yes please"}),
        json!({"normalize": 2}),
        json!({"video_id": -1}),
        json!({"video_id": "12a"}),
        json!({"video_id": 1.5}),
        json!({"video_id": "18446744073709551615"}),
        json!({"video_slug": true}),
        json!({"video_title": "x".repeat(1025)}),
        json!({"format": "srt"}),
        json!({"model": "../../etc"}),
        json!({"model_type": "x".repeat(65)}),
        json!({"source_language": "klingon"}),
    ];
    for mut params in cases {
        params["language"] = json!("fr");
        let err = reject(&with_params("transcription", params.clone()));
        assert_eq!(err.category(), "InvalidParameterValue", "{params}: {err}");
    }
}

#[test]
fn requester_and_urls_are_bounded_like_the_crd() {
    let mut req = with_params("encoding", json!({}));
    req.notify_url = String::new();
    req.app_version = Some(String::new());
    req.etab_name = "é".repeat(512);
    let spec = encoding(&req);
    assert_eq!(
        spec.common.notify, None,
        "empty notify_url: no notification"
    );
    assert_eq!(spec.common.requester.app_version, None);

    let cases: Vec<(Change, &str)> = vec![
        (Box::new(|r| r.etab_name = String::new()), "InvalidRequest"),
        (
            Box::new(|r| r.etab_name = "é".repeat(513)),
            "InvalidRequest",
        ),
        (Box::new(|r| r.app_name = "  ".into()), "InvalidRequest"),
        (Box::new(|r| r.app_name = "a".repeat(129)), "InvalidRequest"),
        (
            Box::new(|r| r.app_version = Some("v".repeat(65))),
            "InvalidRequest",
        ),
        (
            Box::new(|r| r.affiliation = Some("a".repeat(129))),
            "InvalidRequest",
        ),
        (Box::new(|r| r.source_url = String::new()), "InvalidUrl"),
        (
            Box::new(|r| r.source_url = "ftp://pod.univ.fr/a.mp4".into()),
            "InvalidUrl",
        ),
        (
            Box::new(|r| r.source_url = format!("https://pod.univ.fr/{}", "a".repeat(4080))),
            "InvalidUrl",
        ),
        (
            Box::new(|r| r.notify_url = "https://user@pod.univ.fr/n/".into()),
            "InvalidUrl",
        ),
        (
            Box::new(|r| r.notify_url = format!("https://pod.univ.fr/{}", "n".repeat(2030))),
            "InvalidUrl",
        ),
    ];
    for (change, category) in cases {
        let mut req = with_params("encoding", json!({}));
        change(&mut req);
        let err = reject(&req);
        assert_eq!(err.category(), category, "{err}");
    }

    let mut req = with_params("encoding", json!({}));
    req.source_url = "https://pod.univ.fr/media/my lecture (1).mp4".into();
    req.affiliation = Some("employee".into());
    let spec = encoding(&req);
    assert_eq!(
        spec.source.url,
        "https://pod.univ.fr/media/my%20lecture%20(1).mp4"
    );
    assert_eq!(
        spec.common.requester.affiliation.as_deref(),
        Some("employee")
    );
}

// --- fingerprint ---------------------------------------------------------------------------

#[test]
fn fingerprints_match_the_reference_manager() {
    // Digests computed with CPython 3: sha256(json.dumps({task_type, source_url, parameters,
    // notify_url, app_name, etab_name}, sort_keys=True, separators=(",", ":"))).
    assert_eq!(
        fingerprint(&request(ENCODING)),
        "8c790788d3b8e3c1f8527c51b3f038593e7271bb7551693d14416241ee632801"
    );
    assert_eq!(
        fingerprint(&request(TRANSCRIPTION)),
        "16c99e4e8995417fec7753ac39fb63ee4c664c7707905bcbd99e7148c2986ec4"
    );
}

#[test]
fn fingerprints_escape_non_ascii_like_python() {
    let req = request(
        r#"{"etab_name":"Universit\u00e9 \"X\" / P\u00f4d","app_name":"Esup-Pod","task_type":"transcription",
 "source_url":"https://pod.example/m\u00e9dia/a b.mp3","notify_url":"",
 "parameters":{"video_title":"Cours d'\u00e9t\u00e9 \ud83c\udf93\n\ttab\\slash\u007f\u0001","z":[1,2.5,1e-05,1e16,true,null],"a":{"y":0.0,"b":-3}}}"#,
    );
    // Written by hand from Python's rules: keys sorted at every level, `ensure_ascii` escapes
    // (lowercase hex, UTF-16 surrogate pairs, DEL and other controls as \u00XX), float reprs.
    let expected = concat!(
        r#"{"app_name":"Esup-Pod","etab_name":"Universit\u00e9 \"X\" / P\u00f4d","notify_url":"","#,
        r#""parameters":{"a":{"b":-3,"y":0.0},"video_title":"Cours d'\u00e9t\u00e9 \ud83c\udf93\n\ttab\\slash\u007f\u0001","#,
        r#""z":[1,2.5,1e-05,1e+16,true,null]},"source_url":"https://pod.example/m\u00e9dia/a b.mp3","task_type":"transcription"}"#
    );
    let doc = json!({
        "task_type": req.task_type, "source_url": req.source_url, "parameters": req.parameters,
        "notify_url": req.notify_url, "app_name": req.app_name, "etab_name": req.etab_name,
    });
    assert_eq!(canonical_json(&doc), expected);
    assert_eq!(
        fingerprint(&req),
        "351ccbcb05a0440311d232fbe56847766e1bbb675836f903f2c3ceee383e2947"
    );
}

#[test]
fn fingerprints_ignore_key_order_and_fields_outside_the_key() {
    let a = with_params(
        "transcription",
        json!({"language": "fr", "duration": 612.0, "video_id": 1}),
    );
    let b: TaskRequest = serde_json::from_str(
        r#"{"parameters": {"video_id": 1, "duration": 612.0, "language": "fr"},
            "notify_url": "https://pod.univ.fr/runner/notify_task_end/",
            "source_url": "https://pod.univ.fr/media/videos/a/my_lecture.mp4",
            "task_type": "transcription", "app_name": "Esup-Pod",
            "etab_name": "Université X / Pod", "affiliation": "staff", "app_version": "9"}"#,
    )
    .unwrap();
    assert_eq!(fingerprint(&a), fingerprint(&b));
    assert_eq!(fingerprint(&a), fingerprint(&a.clone()));

    let changes: Vec<Change> = vec![
        Box::new(|r| {
            r.parameters.insert("language".into(), json!("en"));
        }),
        // 612 (int) and 612.0 (float) differ for Python too.
        Box::new(|r| {
            r.parameters.insert("duration".into(), json!(612));
        }),
        Box::new(|r| r.source_url.push('x')),
        Box::new(|r| r.notify_url = String::new()),
        Box::new(|r| r.etab_name.push('!')),
        Box::new(|r| r.app_name.push('!')),
        Box::new(|r| r.task_type = "encoding".into()),
    ];
    for change in changes {
        let mut other = a.clone();
        change(&mut other);
        assert_ne!(fingerprint(&a), fingerprint(&other));
    }
    let digest = fingerprint(&a);
    assert_eq!(digest.len(), 64);
    assert!(
        digest
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    );
}

// --- the CRD, as the API server checks it --------------------------------------------------

fn spec_schema<K: CustomResourceExt>() -> Value {
    let crd = serde_json::to_value(K::crd()).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].clone()
}

/// Structural checks of the OpenAPI schema: required, enum, lengths, patterns, ranges, items.
fn check(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        errors.push(format!("{path}: {value} not in {allowed:?}"));
    }
    match value {
        Value::String(s) => {
            let chars = s.chars().count() as u64;
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
                && chars > max
            {
                errors.push(format!("{path}: {chars} characters > {max}"));
            }
            if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
                && chars < min
            {
                errors.push(format!("{path}: {chars} characters < {min}"));
            }
            if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
                && !regex::Regex::new(pattern).unwrap().is_match(s)
            {
                errors.push(format!("{path}: {s:?} does not match {pattern}"));
            }
        }
        Value::Number(n) => {
            let n = n.as_f64().unwrap();
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
                && n > max
            {
                errors.push(format!("{path}: {n} > {max}"));
            }
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
                && n < min
            {
                errors.push(format!("{path}: {n} < {min}"));
            }
        }
        Value::Array(items) => {
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && items.len() as u64 > max
            {
                errors.push(format!("{path}: {} items > {max}", items.len()));
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(item_schema, item, &format!("{path}[{i}]"), errors);
                }
            }
        }
        Value::Object(object) => {
            for required in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !object.contains_key(required) {
                    errors.push(format!("{path}: missing {required}"));
                }
            }
            if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                for (name, item) in object {
                    match properties.get(name) {
                        Some(sub) => check(sub, item, &format!("{path}.{name}"), errors),
                        None => errors.push(format!("{path}: unknown field {name}")),
                    }
                }
            }
        }
        Value::Null | Value::Bool(_) => {}
    }
}

fn assert_fits_crd(spec: &TaskSpec) {
    let mut errors = Vec::new();
    match spec {
        TaskSpec::Encoding(spec) => {
            let task = EncodingTask::new("t", spec.clone());
            let value = serde_json::to_value(&task).unwrap();
            check(
                &spec_schema::<EncodingTask>(),
                &value["spec"],
                "spec",
                &mut errors,
            );
            validate_cel(&task).unwrap_or_else(|e| panic!("CEL rules refuse {spec:?}: {e:?}"));
        }
        TaskSpec::Transcription(spec) => {
            let task = TranscriptionTask::new("t", spec.clone());
            let value = serde_json::to_value(&task).unwrap();
            check(
                &spec_schema::<TranscriptionTask>(),
                &value["spec"],
                "spec",
                &mut errors,
            );
            validate_cel(&task).unwrap_or_else(|e| panic!("CEL rules refuse {spec:?}: {e:?}"));
        }
    }
    assert!(
        errors.is_empty(),
        "the API server would refuse: {errors:#?}"
    );
}

#[test]
fn the_schema_check_itself_catches_violations() {
    // Guard against a checker that passes everything.
    let mut spec = encoding(&request(ENCODING));
    spec.renditions[0].video_bitrate = Some("3G".into());
    spec.common.requester.etab_name = "x".repeat(600);
    let task = EncodingTask::new("t", spec);
    let mut errors = Vec::new();
    check(
        &spec_schema::<EncodingTask>(),
        &serde_json::to_value(&task).unwrap()["spec"],
        "spec",
        &mut errors,
    );
    assert_eq!(errors.len(), 2, "{errors:#?}");
}
