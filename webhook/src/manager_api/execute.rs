//! `POST /task/execute` (§1.2), in the order its checks answer: parse the body, apply the URL
//! policy, turn the request into a task spec, decide whether it may be created now, then claim
//! its de-duplication name by creating it. I/O: DNS (URL policy), the API server (create).

use esup_api::labels;
use esup_api::params::{self, SpecContext, Submission};
use esup_api::task::TaskSpec;
use esup_api::wire::{ExecuteResponse, ManagerStatus, TaskRequest};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use warp::http::StatusCode;
use warp::reply::Response;

use super::json;
use crate::admission::Refusal;
use crate::dedup::Submitted;
use crate::error::ApiError;
use crate::state::App;
use crate::tenants::{Caller, Tenant};
use crate::url_policy::{Resolve, UrlPolicy};

/// A request `/task/execute` accepted (a new task, or the one in flight for the same request):
/// the answer, and the request's task type for the metric (bounded: it passed validation).
pub struct Accepted {
    pub response: Response,
    pub task_type: String,
}

/// `POST /task/execute` (§1.2).
pub async fn execute(app: &App, caller: Caller, body: &[u8]) -> Result<Accepted, ApiError> {
    let request = parse(body)?;
    check_urls(&app.policy, &request).await?;
    let submission = validate(&request, &caller)?;
    check_asset_urls(&app.policy, &submission.spec).await?;
    let plan = decide(app, &caller.tenant, &request, submission.spec.clone())?;
    let invalid_parameters = submission
        .invalid_parameters
        // Cut to what a condition message and an annotation hold well: the list of invalid
        // keys comes from the request and has no bound of its own.
        .map(|e| esup_api::truncate_chars(&e.to_string(), 1024));
    let tenant = &caller.tenant;
    let task_name = match create(app, tenant, &plan, invalid_parameters.as_deref()).await? {
        Submitted::Existing(task) => {
            let body = ExecuteResponse {
                task_id: task.name().to_owned(),
                status: task.manager_status(),
            };
            return Ok(accepted(json(StatusCode::OK, &body), request));
        }
        Submitted::New(task) => task.name().to_owned(),
    };
    match &invalid_parameters {
        None => {
            tracing::info!(tenant = %tenant.name, task = %task_name, task_type = %request.task_type, "task submitted");
        }
        Some(why) => {
            tracing::info!(tenant = %tenant.name, task = %task_name, task_type = %request.task_type, why, "task submitted with invalid parameters: it fails without running");
        }
    }
    let body = ExecuteResponse {
        task_id: task_name,
        status: ManagerStatus::Running,
    };
    Ok(accepted(json(StatusCode::OK, &body), request))
}

fn accepted(response: Response, request: TaskRequest) -> Accepted {
    Accepted {
        response,
        task_type: request.task_type,
    }
}

fn unprocessable(category: &'static str, detail: String) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, category, detail)
}

fn parse(body: &[u8]) -> Result<TaskRequest, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        unprocessable(
            "InvalidBody",
            format!("request body is not a task request: {e}"),
        )
    })
}

/// URL policy first, with the reference manager's codes: 422 for the source, 400 for the
/// notify URL.
async fn check_urls(policy: &UrlPolicy, request: &TaskRequest) -> Result<(), ApiError> {
    policy
        .check("source_url", &request.source_url)
        .await
        .map_err(|e| unprocessable(e.category(), e.to_string()))?;
    if !request.notify_url.is_empty() {
        policy
            .check("notify_url", &request.notify_url)
            .await
            .map_err(|e| ApiError::bad_request(e.category(), e.to_string()))?;
    }
    Ok(())
}

/// The task spec of the request. A request whose only fault is in its parameters is accepted,
/// as a task that fails at once: the reference manager accepts it and its runner fails it, and
/// a refusal would make Esup-Pod resubmit it (and re-run its pre-store) on every cron run.
fn validate(request: &TaskRequest, caller: &Caller) -> Result<Submission, ApiError> {
    let tenant = &caller.tenant;
    let context = SpecContext {
        tenant: tenant.name.clone(),
        notify_token: caller.token_ref.clone(),
        retention: tenant.retention.map(kube::core::Duration::from),
        priority: tenant.priority,
    };
    params::to_submission(request, &context).map_err(|e| unprocessable(e.category(), e.to_string()))
}

/// Every other URL a runner will fetch (watermark, credits) passes the same policy as the
/// source, with the source's code. The runner checks them again when it fetches.
async fn check_asset_urls(policy: &UrlPolicy, spec: &TaskSpec) -> Result<(), ApiError> {
    for (field, url) in spec.asset_urls() {
        policy
            .check(field, url)
            .await
            .map_err(|e| unprocessable(e.category(), e.to_string()))?;
    }
    Ok(())
}

/// What was decided before the create: the task's de-duplication identity, and whether a new
/// task may be created now.
struct Plan {
    spec: TaskSpec,
    fingerprint: String,
    /// The tasks of the same fingerprint: the de-duplication chain.
    chain: Vec<crate::tasks::AnyTask>,
    /// The request as received, kept on the task.
    raw: String,
    /// No pool takes the task (or, in `immediate` mode, can start it now).
    refusal: Option<Refusal>,
    /// The tenant is over its backlog bound.
    over_backlog: bool,
}

impl Plan {
    fn fingerprint_label(&self) -> &str {
        &self.fingerprint[..40]
    }
}

/// 503 when no pool takes this task type for the tenant, so that Esup-Pod tries its next
/// manager, as the reference manager answers when no runner can take the task; for a tenant
/// in `immediate` mode, also when none can start it now; and when the tenant is over its
/// backlog bound. Decided here, applied at the create only: an identical request in flight is
/// still answered with its task.
fn decide(
    app: &App,
    tenant: &Tenant,
    request: &TaskRequest,
    spec: TaskSpec,
) -> Result<Plan, ApiError> {
    let fingerprint = crate::dedup::tenant_fingerprint(&tenant.name, &params::fingerprint(request));
    let view = app
        .tasks
        .submission_view(&tenant.namespace, &tenant.name, &fingerprint[..40]);
    let pools = app.pools.state();
    let refusal = crate::admission::decide(
        &crate::admission::Request {
            mode: tenant.admission,
            task_type: spec.task_type(),
            tenant: &tenant.name,
            wanted: &spec.common().pools,
            unseen: u32::try_from(view.unseen).unwrap_or(u32::MAX),
            holding: &view.holding,
        },
        pools.iter().map(|p| p.as_ref()),
    )
    .err();
    let raw = serde_json::to_string(request)
        .map_err(|e| ApiError::internal("SerializationError", e.to_string()))?;
    Ok(Plan {
        spec,
        fingerprint,
        chain: view.chain,
        raw,
        refusal,
        over_backlog: view.backlog >= tenant.max_backlog as usize,
    })
}

/// The create is the de-duplication claim: the name comes from the fingerprint (dedup.rs).
async fn create(
    app: &App,
    tenant: &Tenant,
    plan: &Plan,
    invalid_parameters: Option<&str>,
) -> Result<Submitted, ApiError> {
    let namespace = &tenant.namespace;
    let create = |name: String, epoch: u64| {
        let metadata = task_metadata(tenant, plan, epoch, invalid_parameters);
        async move {
            if let Some(refusal) = &plan.refusal {
                return Err(ApiError::unavailable(
                    refusal.category(),
                    refusal.to_string(),
                ));
            }
            if plan.over_backlog {
                return Err(ApiError::unavailable("BacklogFull", "No runners available"));
            }
            app.tasks
                .create(namespace, &name, plan.spec.clone(), metadata)
                .await
        }
    };
    app.dedup
        .submit(namespace, &plan.fingerprint, &plan.chain, create)
        .await
}

/// The labels the de-duplication and the tenant's views find the task by, and the request
/// (and why its parameters are invalid) as annotations.
fn task_metadata(
    tenant: &Tenant,
    plan: &Plan,
    epoch: u64,
    invalid_parameters: Option<&str>,
) -> ObjectMeta {
    let labels = [
        (labels::TENANT.to_owned(), tenant.name.clone()),
        (
            labels::FINGERPRINT.to_owned(),
            plan.fingerprint_label().to_owned(),
        ),
        (labels::DEDUP_EPOCH.to_owned(), epoch.to_string()),
    ];
    let annotations = std::iter::once((labels::REQUEST_ANNOTATION.to_owned(), plan.raw.clone()))
        .chain(invalid_parameters.map(|message| {
            (
                labels::INVALID_PARAMETERS_ANNOTATION.to_owned(),
                message.to_owned(),
            )
        }))
        .collect();
    ObjectMeta {
        labels: Some(labels.into()),
        annotations: Some(annotations),
        ..ObjectMeta::default()
    }
}
