//! The OpenAPI 3.1 document of the routes in [`super::routes`]. Bodies that have a Rust type
//! take their schema from it (schemars, JSON Schema 2020-12, the dialect of OpenAPI 3.1); the
//! few answers the handlers build ad hoc (`/api/tasks`, `/api/runners`, the stop and runner
//! acknowledgements, the root) are described here by hand.

use esup_api::runner::{Completion, ProgressReport, ResultFileEntry};
use esup_api::wire::{
    ErrorBody, ExecuteResponse, HealthBody, ManagerStatus, ManagerTask, Manifest, TaskRequest,
    VersionBody,
};
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

use super::routes::{Access, Route};

const SCHEMAS: &str = "#/components/schemas/";

/// The whole document.
pub fn document() -> Value {
    let mut generator = SchemaSettings::draft2020_12()
        .with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.meta_schema = None;
        })
        .into_generator();
    let mut paths = Map::new();
    for route in Route::ALL.into_iter().filter(|r| r.documented()) {
        let entry = paths.entry(route.template()).or_insert_with(|| json!({}));
        if let Value::Object(methods) = entry {
            methods.insert(
                route.method().to_ascii_lowercase(),
                operation(route, &mut generator),
            );
        }
    }
    let mut schemas = generator.take_definitions(true);
    for (name, schema) in hand_written_schemas() {
        schemas.insert(name.to_owned(), schema);
    }
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {
            "title": "esup-webhook",
            "version": env!("CARGO_PKG_VERSION"),
            "summary": "Esup-Pod's runner-manager API on Kubernetes",
            "description": "The runner-manager protocol Esup-Pod speaks (esup-runner manager 1.7.1), \
                served on top of EncodingTask and TranscriptionTask resources, and the callbacks \
                of the runners the operator starts. Errors answer `{\"detail\": \"...\"}`.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": [
            {"name": "esup-pod", "description": "What Esup-Pod calls, with a tenant's token."},
            {"name": "runner", "description": "What a task's runner calls, with the task's callback token."},
            {"name": "operations", "description": "Unauthenticated: service information and this description. \
                (Metrics and probes are on the separate metrics port, not in this API.)"},
        ],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer",
                    "description": "A tenant's token (the RunnerManager token in Esup-Pod)."},
                "apiTokenHeader": {"type": "apiKey", "in": "header", "name": "X-API-Token",
                    "description": "The same token; wins over Authorization when both are sent."},
                "callbackToken": {"type": "http", "scheme": "bearer",
                    "description": "The callback token of one launch of the task, `<launch>.<secret>` (ESUP_CALLBACK_TOKEN in its runner)."},
            },
        },
    })
}

fn schema_ref<T: JsonSchema>(generator: &mut SchemaGenerator) -> Value {
    generator.subschema_for::<T>().to_value()
}

fn named(name: &str) -> Value {
    json!({"$ref": format!("{SCHEMAS}{name}")})
}

fn json_body(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

fn error(description: &str) -> Value {
    json_body(description, named("ErrorBody"))
}

fn path_param(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": description, "schema": schema})
}

fn task_id_param() -> Value {
    path_param(
        "task_id",
        "The task id `/task/execute` answered.",
        json!({"type": "string"}),
    )
}

fn runner_params(extra: Option<Value>) -> Vec<Value> {
    let mut params = vec![
        path_param(
            "plural",
            "The task's kind.",
            json!({"type": "string", "enum": ["encodingtasks", "transcriptiontasks"]}),
        ),
        path_param(
            "namespace",
            "The task's namespace.",
            json!({"type": "string"}),
        ),
        path_param(
            "name",
            "The task's name (its id).",
            json!({"type": "string"}),
        ),
    ];
    params.extend(extra);
    params
}

/// The responses every route may give whatever it does.
fn common_responses(route: Route, responses: &mut Map<String, Value>) {
    responses
        .entry("400")
        .or_insert_with(|| error("A header or body that cannot be read."));
    let limit = match route.access() {
        Access::Public => "the client address's limit (`--anonymous-rate-limit-per-minute`)",
        Access::Tenant => {
            "the tenant's limit (`--rate-limit-per-minute`), or, without a valid token, the \
             client address's (`--anonymous-rate-limit-per-minute`)"
        }
        Access::Callback => {
            "the task's limit (`--callback-rate-limit-per-minute`), or, after failed \
             authentications, the client address's (`--anonymous-rate-limit-per-minute`)"
        }
    };
    responses.insert(
        "429".into(),
        json_body(&format!("Over {limit}."), named("RateLimited")),
    );
    if matches!(route.method(), "POST" | "PUT") {
        responses.insert(
            "408".into(),
            error(
                "The body stalled: no bytes for `--body-idle-timeout`, or slower than \
                 `--body-min-rate` on average.",
            ),
        );
    }
    match route.access() {
        Access::Public => {}
        Access::Tenant => {
            responses.insert(
                "401".into(),
                json!({
                    "description": "Missing, invalid or revoked token.",
                    "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
                    "content": {"application/json": {"schema": named("ErrorBody")}},
                }),
            );
        }
        Access::Callback => {
            responses.insert(
                "401".into(),
                json!({
                    "description": "No bearer token.",
                    "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
                    "content": {"application/json": {"schema": named("ErrorBody")}},
                }),
            );
            responses.insert(
                "403".into(),
                error("The token is not this task's callback token."),
            );
            responses.insert("404".into(), error("No such task."));
            responses.insert(
                "503".into(),
                error("The Kubernetes API or the result store is unavailable; retry."),
            );
        }
    }
}

fn task_id_header() -> Value {
    json!({"X-Task-ID": {"description": "The task id.", "schema": {"type": "string"}}})
}

/// One operation object.
fn operation(route: Route, g: &mut SchemaGenerator) -> Value {
    let mut parts = Parts::default();
    let (tag, summary) = match route {
        Route::Execute => submission(route, g, &mut parts),
        Route::Status | Route::Result | Route::ResultFile | Route::Stop => {
            task_reads(route, g, &mut parts)
        }
        Route::TaskList
        | Route::ManagerHealth
        | Route::ApiHealth
        | Route::ApiVersion
        | Route::ApiTasks
        | Route::ApiRunners => listings(route, g, &mut parts),
        Route::RunnerProgress | Route::RunnerCompletion | Route::RunnerUpload => {
            runner_calls(route, g, &mut parts)
        }
        Route::Root => {
            parts.responses.insert(
                "200".into(),
                json_body("Service information.", named("RootInfo")),
            );
            ("operations", "Service information")
        }
        Route::OpenApi | Route::SwaggerUi | Route::Redoc | Route::Admin | Route::AdminIndex => {
            ("operations", "Documentation")
        }
    };
    let Parts {
        mut op,
        params,
        mut responses,
    } = parts;
    schema_ref::<ErrorBody>(g);
    common_responses(route, &mut responses);
    op.insert("tags".into(), json!([tag]));
    op.insert("summary".into(), json!(summary));
    op.insert("operationId".into(), json!(format!("{route:?}")));
    if !params.is_empty() {
        op.insert("parameters".into(), Value::Array(params));
    }
    let security = match route.access() {
        Access::Public => json!([]),
        Access::Tenant => json!([{"bearerAuth": []}, {"apiTokenHeader": []}]),
        Access::Callback => json!([{"callbackToken": []}]),
    };
    op.insert("security".into(), security);
    op.insert("responses".into(), Value::Object(responses));
    Value::Object(op)
}

/// What an operation is made of, filled per route group.
#[derive(Default)]
struct Parts {
    op: Map<String, Value>,
    params: Vec<Value>,
    responses: Map<String, Value>,
}

/// What a group's function gives a route of another group (`operation` never asks it).
fn not_in_group(_: Route) -> (&'static str, &'static str) {
    ("operations", "Documentation")
}

/// `POST /task/execute`.
fn submission(
    route: Route,
    g: &mut SchemaGenerator,
    parts: &mut Parts,
) -> (&'static str, &'static str) {
    match route {
        Route::Execute => {
            parts.op.insert(
                "requestBody".into(),
                json!({"required": true, "content": {"application/json": {
                    "schema": schema_ref::<TaskRequest>(g),
                    "example": {
                        "etab_name": "Université X / Pod", "app_name": "Esup-Pod",
                        "app_version": "4.2.0", "task_type": "encoding",
                        "source_url": "https://pod.univ-x.example/media/videos/1234/source.mp4",
                        "notify_url": "https://pod.univ-x.example/runner/notify_task_end/",
                        "parameters": {"video_id": 1234, "video_slug": "1234-lecture"},
                    },
                }}}),
            );
            parts.responses.insert(
                "200".into(),
                json_body(
                    "Accepted; the same task id while the same request is in flight. A request whose only fault is in its `parameters` is accepted too: the task fails without running, `Invalid parameters for task type: ...`, as the reference runner fails it.",
                    schema_ref::<ExecuteResponse>(g),
                ),
            );
            parts.responses.insert(
                "400".into(),
                error("`notify_url` refused by the URL policy."),
            );
            parts
                .responses
                .insert("411".into(), error("No Content-Length."));
            parts
                .responses
                .insert("413".into(), error("Body over 1 MiB."));
            parts.responses.insert(
                "422".into(),
                error("Not a task request (body, top-level fields, `task_type`, URL form), or `source_url` or a dressing URL refused by the URL policy."),
            );
            parts.responses.insert(
                "503".into(),
                error("`No runners available`: the tenant's backlog is full, no RunnerPool takes the task type for the tenant, or (admission mode `immediate`) none can start it now; Esup-Pod then tries its next manager. Also when the Kubernetes API is unavailable."),
            );
            ("esup-pod", "Submit a task")
        }
        _ => not_in_group(route),
    }
}

/// The routes of one task: its status, result, files, cancellation.
fn task_reads(
    route: Route,
    g: &mut SchemaGenerator,
    parts: &mut Parts,
) -> (&'static str, &'static str) {
    match route {
        Route::Status => {
            parts.params.push(task_id_param());
            parts.responses.insert(
                "200".into(),
                json_body(
                    "The task, as the reference manager shows it.",
                    schema_ref::<ManagerTask>(g),
                ),
            );
            parts
                .responses
                .insert("404".into(), error("No such task for this tenant."));
            ("esup-pod", "A task's status")
        }
        Route::Result => {
            parts.params.push(task_id_param());
            parts.responses.insert(
                "200".into(),
                json!({
                    "description": "The manifest of the result files, each with its sha256. Fetching it (or a file) turns a `warning` task `completed`, as the reference manager does.",
                    "headers": task_id_header(),
                    "content": {"application/json": {"schema": schema_ref::<Manifest>(g)}},
                }),
            );
            parts
                .responses
                .insert("400".into(), error("`Task failed: ...`."));
            parts
                .responses
                .insert("404".into(), error("No such task for this tenant."));
            parts
                .responses
                .insert("425".into(), error("`Task not completed. Status: ...`."));
            ("esup-pod", "A completed task's manifest")
        }
        Route::ResultFile => {
            parts.params.push(task_id_param());
            parts.params.push(path_param(
                "path",
                "The file's path as the manifest lists it, percent-encoded; may contain `/`.",
                json!({"type": "string"}),
            ));
            parts.params.push(json!({"name": "Range", "in": "header", "required": false,
                "description": "One byte range, `bytes=start-end`.", "schema": {"type": "string"}}));
            let file_headers = json!({
                "X-Task-ID": {"schema": {"type": "string"}},
                "Content-Disposition": {"schema": {"type": "string"}},
                "Accept-Ranges": {"schema": {"type": "string"}},
            });
            let binary = json!({"application/octet-stream": {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}}});
            parts.responses.insert(
                "200".into(),
                json!({"description": "The file, streamed.", "headers": file_headers, "content": binary}),
            );
            parts.responses.insert(
                "206".into(),
                json!({"description": "The requested range.", "headers": file_headers, "content": binary}),
            );
            parts.responses.insert(
                "400".into(),
                error("An unsafe path (`..`, absolute) or a failed task."),
            );
            parts
                .responses
                .insert("404".into(), error("No such task or file."));
            parts.responses.insert(
                "416".into(),
                json!({"description": "The range is outside the file.",
                    "headers": {"Content-Range": {"schema": {"type": "string"}}}}),
            );
            parts
                .responses
                .insert("425".into(), error("The task has not completed."));
            parts
                .responses
                .insert("503".into(), error("The result store is unavailable."));
            ("esup-pod", "Download a result file")
        }
        Route::Stop => {
            parts.params.push(task_id_param());
            parts.responses.insert(
                "200".into(),
                json_body("The task had already ended.", named("StopAnswer")),
            );
            parts.responses.insert(
                "202".into(),
                json_body(
                    "Stop requested: the task ends `failed`, \"Cancelled by user.\", and is notified.",
                    named("StopAnswer"),
                ),
            );
            parts
                .responses
                .insert("404".into(), error("No such task for this tenant."));
            parts
                .responses
                .insert("503".into(), error("The Kubernetes API is unavailable."));
            ("esup-pod", "Cancel a task")
        }
        _ => not_in_group(route),
    }
}

/// The caller's tasks, the service's health, version and runners.
fn listings(
    route: Route,
    g: &mut SchemaGenerator,
    parts: &mut Parts,
) -> (&'static str, &'static str) {
    match route {
        Route::TaskList => {
            let task = schema_ref::<ManagerTask>(g);
            parts.responses.insert(
                "200".into(),
                json_body(
                    "The caller's tasks by id.",
                    json!({"type": "object", "additionalProperties": task}),
                ),
            );
            ("esup-pod", "The caller's tasks")
        }
        Route::ManagerHealth | Route::ApiHealth => {
            parts.responses.insert(
                "200".into(),
                json_body("Healthy.", schema_ref::<HealthBody>(g)),
            );
            let summary = if route == Route::ManagerHealth {
                "Health (the path Esup-Pod's admin checks)"
            } else {
                "Health (the path the reference runners check)"
            };
            ("esup-pod", summary)
        }
        Route::ApiVersion => {
            parts.responses.insert(
                "200".into(),
                json_body("The version.", schema_ref::<VersionBody>(g)),
            );
            ("esup-pod", "Version")
        }
        Route::ApiTasks => {
            schema_ref::<ManagerStatus>(g);
            parts.responses.insert(
                "200".into(),
                json_body("The caller's tasks, in brief.", named("TaskSummaries")),
            );
            ("esup-pod", "The caller's tasks, in brief")
        }
        Route::ApiRunners => {
            parts.responses.insert(
                "200".into(),
                json_body(
                    "The RunnerPools, as the reference manager lists runners.",
                    named("Runners"),
                ),
            );
            ("esup-pod", "Runners (RunnerPools)")
        }
        _ => not_in_group(route),
    }
}

/// The runners' callbacks.
fn runner_calls(
    route: Route,
    g: &mut SchemaGenerator,
    parts: &mut Parts,
) -> (&'static str, &'static str) {
    match route {
        Route::RunnerProgress => {
            parts.params.extend(runner_params(None));
            parts.op.insert(
                "requestBody".into(),
                json!({"required": true, "content": {"application/json": {"schema": schema_ref::<ProgressReport>(g)}}}),
            );
            parts
                .responses
                .insert("200".into(), json_body("Recorded.", named("Ack")));
            parts
                .responses
                .insert("400".into(), error("Not a progress report."));
            parts.responses.insert(
                "409".into(),
                error("An older launch than the task's latest, or the task has ended."),
            );
            parts
                .responses
                .insert("411".into(), error("No Content-Length."));
            parts
                .responses
                .insert("413".into(), error("Body over 64 KiB."));
            ("runner", "Report progress")
        }
        Route::RunnerCompletion => {
            parts.params.extend(runner_params(None));
            parts.op.insert(
                "requestBody".into(),
                json!({"required": true, "content": {"application/json": {"schema": schema_ref::<Completion>(g)}}}),
            );
            parts.responses.insert(
                "200".into(),
                json_body("Recorded; the notifier takes over.", named("Ack")),
            );
            parts.responses.insert(
                "400".into(),
                error("Not a completion, or a file not uploaded with that size."),
            );
            parts.responses.insert(
                "409".into(),
                error("An older launch than the task's latest, or the task has ended."),
            );
            parts
                .responses
                .insert("411".into(), error("No Content-Length."));
            parts
                .responses
                .insert("413".into(), error("Body over 1 MiB."));
            ("runner", "Report the end of the task")
        }
        Route::RunnerUpload => {
            parts.params.extend(runner_params(Some(path_param(
                "path",
                "The file's path in the task's results, percent-encoded; may contain `/`.",
                json!({"type": "string"}),
            ))));
            parts.op.insert(
                "requestBody".into(),
                json!({"required": true, "content": {"application/octet-stream": {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}}}}),
            );
            parts.responses.insert(
                "200".into(),
                json_body(
                    "Stored, with its sha256 and size.",
                    schema_ref::<ResultFileEntry>(g),
                ),
            );
            parts
                .responses
                .insert("400".into(), error("An unsafe path (`..`, absolute)."));
            parts.responses.insert(
                "409".into(),
                error("An older launch than the task's latest, or the task has ended; nothing is stored."),
            );
            parts.responses.insert(
                "413".into(),
                error("Over the largest file accepted (64 GiB)."),
            );
            ("runner", "Upload a result file")
        }
        _ => not_in_group(route),
    }
}

/// Schemas of the answers built with `json!` in the handlers, and of the rate-limit answer.
fn hand_written_schemas() -> Vec<(&'static str, Value)> {
    let status = named("ManagerStatus");
    vec![
        (
            "RootInfo",
            json!({"type": "object", "required": ["message", "version", "health_check", "api_docs_visibility"],
                "properties": {"message": {"type": "string"}, "version": {"type": "string"},
                    "health_check": {"type": "string"}, "api_docs_visibility": {"type": "string"}}}),
        ),
        (
            "RateLimited",
            json!({"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}},
                "description": "The reference manager's rate-limit answer (its only error without `detail`)."}),
        ),
        (
            "TaskSummaries",
            json!({"type": "object", "required": ["tasks"], "properties": {"tasks": {"type": "array", "items": {
                "type": "object", "required": ["id", "runner_id", "status"],
                "properties": {"id": {"type": "string"}, "runner_id": {"type": ["string", "null"],
                    "description": "The RunnerPool running it; null while queued."}, "status": status}}}}}),
        ),
        (
            "Runners",
            json!({"type": "object", "required": ["runners"], "properties": {"runners": {"type": "array", "items": {
                "type": "object",
                "required": ["id", "url", "status", "last_heartbeat", "age_seconds", "task_types", "slots", "running", "queued"],
                "properties": {
                    "id": {"type": ["string", "null"], "description": "The RunnerPool's name."},
                    "url": {"type": "string"},
                    "status": {"type": "string", "enum": ["online", "offline"]},
                    "last_heartbeat": {"type": "string"},
                    "age_seconds": {"type": "integer"},
                    "task_types": {"type": "array", "items": {"type": "string"}},
                    "slots": {"type": "integer"}, "running": {"type": "integer"}, "queued": {"type": "integer"}}}}}}),
        ),
        (
            "StopAnswer",
            json!({"type": "object", "required": ["task_id", "status"], "properties": {
                "task_id": {"type": "string"},
                "status": {"type": "string", "enum": ["stop_requested", "already_terminal"]},
                "runner_id": {"type": ["string", "null"]},
                "runner_status_code": {"type": "integer"}}}),
        ),
        (
            "Ack",
            json!({"type": "object", "required": ["status"], "properties": {"status": {"type": "string", "enum": ["ok", "acknowledged"]}}}),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    out.push(r);
                }
                map.values().for_each(|v| refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn the_document_is_consistent_openapi_3_1() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(!all.is_empty());
        for r in all {
            let name = r
                .strip_prefix(SCHEMAS)
                .unwrap_or_else(|| panic!("{r} outside components"));
            assert!(schemas.contains_key(name), "{r} dangles");
        }
        let text = doc.to_string();
        assert!(!text.contains("$defs") && !text.contains("\"$schema\""));
        let mut ids = std::collections::BTreeSet::new();
        for (path, methods) in doc["paths"].as_object().unwrap() {
            for (method, op) in methods.as_object().unwrap() {
                assert!(ids.insert(op["operationId"].as_str().unwrap().to_owned()));
                // Every template parameter is declared as a required path parameter.
                let declared: Vec<&str> = op["parameters"]
                    .as_array()
                    .map(|p| {
                        p.iter()
                            .filter(|p| p["in"] == "path" && p["required"] == true)
                            .filter_map(|p| p["name"].as_str())
                            .collect()
                    })
                    .unwrap_or_default();
                let in_template: Vec<&str> = path
                    .split('/')
                    .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                    .collect();
                assert_eq!(declared, in_template, "{method} {path}");
                for (code, response) in op["responses"].as_object().unwrap() {
                    assert!(code.parse::<u16>().is_ok(), "{method} {path} {code}");
                    assert!(
                        response["description"].is_string(),
                        "{method} {path} {code}"
                    );
                    if code.starts_with('4') && code != "429" && code != "416" {
                        assert_eq!(
                            response["content"]["application/json"]["schema"]["$ref"],
                            "#/components/schemas/ErrorBody",
                            "{method} {path} {code}: errors are {{\"detail\"}}"
                        );
                    }
                }
                for requirement in op["security"].as_array().unwrap() {
                    for scheme in requirement.as_object().unwrap().keys() {
                        assert!(schemes.contains_key(scheme), "{scheme}");
                    }
                }
            }
        }
        assert_eq!(
            ids.len(),
            Route::ALL.iter().filter(|r| r.documented()).count()
        );
    }

    #[test]
    fn bodies_come_from_the_wire_types() {
        let doc = document();
        let schemas = &doc["components"]["schemas"];
        let request = &schemas["TaskRequest"];
        let mut required: Vec<&str> = request["required"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        required.sort_unstable();
        assert_eq!(
            required,
            [
                "app_name",
                "etab_name",
                "notify_url",
                "source_url",
                "task_type"
            ]
        );
        // Variants with doc comments become `oneOf` items (a `const` each, the others an `enum`).
        let status = &schemas["ManagerStatus"];
        let mut values: Vec<&str> = status["oneOf"]
            .as_array()
            .unwrap_or_else(|| panic!("{status}"))
            .iter()
            .flat_map(|v| match v["enum"].as_array() {
                Some(values) => values.iter().filter_map(Value::as_str).collect(),
                None => v["const"].as_str().into_iter().collect::<Vec<_>>(),
            })
            .collect();
        values.sort_unstable();
        assert_eq!(
            values,
            ["completed", "failed", "running", "timeout", "warning"]
        );
        assert_eq!(schemas["ErrorBody"]["required"], json!(["detail"]));
        // The example a reader copies is a request the webhook parses.
        let example = &doc["paths"]["/task/execute"]["post"]["requestBody"]["content"]["application/json"]
            ["example"];
        serde_json::from_value::<TaskRequest>(example.clone()).unwrap();
        let execute = &doc["paths"]["/task/execute"]["post"];
        assert_eq!(
            execute["security"],
            json!([{"bearerAuth": []}, {"apiTokenHeader": []}])
        );
        assert_eq!(doc["paths"]["/"]["get"]["security"], json!([]));
        assert_eq!(
            doc["paths"]["/runner/v1/{plural}/{namespace}/{name}/completion"]["post"]["security"],
            json!([{"callbackToken": []}])
        );
    }
}
