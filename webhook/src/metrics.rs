//! Prometheus metrics of the webhook, encoded as OpenMetrics text for `/metrics` on the metrics
//! port (`server::ops_routes`), never on the API port.
//!
//! Label values come from small fixed vocabularies: route templates (never raw paths), HTTP
//! methods and status classes, error categories, tenants (one per configured Secret) and
//! task types that passed validation. Nothing a caller makes up becomes a label value.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::notifier::NotifierStats;
use crate::openapi::Route;

/// From a cached lookup (sub-millisecond) to a task creation against a slow API server.
const DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Label of requests that match no route.
pub const UNMATCHED: &str = "unmatched";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: &'static str,
    method: &'static str,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SubmitLabels {
    tenant: String,
    task_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CategoryLabels {
    category: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// The webhook's metric families; share it as `Arc<Metrics>`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<HttpLabels, Counter>,
    duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    submitted: Family<SubmitLabels, Counter>,
    rejections: Family<ReasonLabels, Counter>,
    errors: Family<CategoryLabels, Counter>,
    result_bytes: Family<DirectionLabels, Counter>,
    connections: Gauge,
}

/// One open connection, counted until dropped.
#[derive(Debug)]
pub struct OpenConnection(Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    /// The families, and the notifier's counters read at each scrape.
    pub fn new(notifier: Arc<NotifierStats>) -> Self {
        let mut metrics = Self {
            registry: Registry::default(),
            requests: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
            submitted: Family::default(),
            rejections: Family::default(),
            errors: Family::default(),
            result_bytes: Family::default(),
            connections: Gauge::default(),
        };
        let registry = &mut metrics.registry;
        // Counters get `_total` and unit-registered metrics their unit from the encoder.
        registry.register(
            "esup_runner_webhook_http_requests",
            "HTTP requests by route template, method and status class",
            metrics.requests.clone(),
        );
        registry.register_with_unit(
            "esup_runner_webhook_http_request_duration",
            "Time from a request's arrival to its response head, by route template",
            Unit::Seconds,
            metrics.duration.clone(),
        );
        registry.register(
            "esup_runner_webhook_tasks_submitted",
            "Tasks accepted by /task/execute (a de-duplicated resubmission included), by tenant and task type",
            metrics.submitted.clone(),
        );
        registry.register(
            "esup_runner_webhook_rejections",
            "Requests refused, by reason: auth, rate_limit, url_policy, backlog, \
             no_eligible_pool, no_free_runner (admission mode immediate), invalid, timeout (a request head or body not received in time)",
            metrics.rejections.clone(),
        );
        registry.register(
            "esup_runner_webhook_errors",
            "Error answers, by category (the detail's kind)",
            metrics.errors.clone(),
        );
        registry.register_with_unit(
            "esup_runner_webhook_result",
            "Bytes of result files uploaded by runners and downloaded by Esup-Pod",
            Unit::Bytes,
            metrics.result_bytes.clone(),
        );
        registry.register(
            "esup_runner_webhook_http_connections",
            "Connections open on the API port (at most --max-connections)",
            metrics.connections.clone(),
        );
        registry.register_with_unit(
            "esup_runner_webhook_notification_delay",
            "Time from a task's end to Esup-Pod's acknowledgement of its notification",
            Unit::Seconds,
            notifier.delay.clone(),
        );
        esup_kube_common::build_info::register(registry, "esup_runner_webhook_build_info");
        registry.register_collector(Box::new(NotificationCollector(notifier)));
        metrics
    }

    /// Exposes each tenant's backlog and bound, computed at each scrape.
    pub fn register_backlogs(
        &mut self,
        tasks: crate::tasks::Tasks,
        tokens: Arc<std::sync::RwLock<crate::tenants::TokenTable>>,
    ) {
        self.registry
            .register_collector(Box::new(BacklogCollector { tasks, tokens }));
    }

    pub fn register_undecodable(&mut self, undecodable: &crate::watch::Undecodable) {
        self.registry.register(
            "esup_runner_webhook_watch_undecodable_objects",
            "Objects a watch skipped because they do not decode, by kind (each also gets a Warning Event)",
            undecodable.family(),
        );
    }

    /// OpenMetrics text exposition, terminated by `# EOF`.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    /// One answered request. `route` is None when no route matched; `category` is the error
    /// category of an error answer.
    pub fn observe_request(
        &self,
        route: Option<Route>,
        method: &str,
        status: u16,
        category: Option<&'static str>,
        seconds: f64,
    ) {
        let route_label = route.map_or(UNMATCHED, Route::template);
        self.requests
            .get_or_create(&HttpLabels {
                route: route_label,
                method: method_label(method),
                status: status_class(status),
            })
            .inc();
        self.duration
            .get_or_create(&RouteLabels { route: route_label })
            .observe(seconds);
        if let Some(category) = category {
            self.errors
                .get_or_create(&CategoryLabels { category })
                .inc();
        }
        if let Some(reason) = rejection_reason(status, category) {
            self.rejections
                .get_or_create(&ReasonLabels { reason })
                .inc();
        }
    }

    /// A connection accepted on the API port; counted as open until the guard drops.
    pub fn connection_opened(&self) -> OpenConnection {
        self.connections.inc();
        OpenConnection(self.connections.clone())
    }

    /// Connections open on the API port now.
    pub fn open_connections(&self) -> i64 {
        self.connections.get()
    }

    /// A connection closed because its request head did not arrive in time (no answer is
    /// sent, so it is counted here rather than by `observe_request`).
    pub fn header_timeout(&self) {
        self.rejections
            .get_or_create(&ReasonLabels { reason: "timeout" })
            .inc();
    }

    pub fn task_submitted(&self, tenant: &str, task_type: &str) {
        self.submitted
            .get_or_create(&SubmitLabels {
                tenant: tenant.to_owned(),
                task_type: task_type.to_owned(),
            })
            .inc();
    }

    pub fn bytes_uploaded(&self, n: u64) {
        self.result_bytes
            .get_or_create(&DirectionLabels {
                direction: "uploaded",
            })
            .inc_by(n);
    }

    pub fn bytes_downloaded(&self, n: u64) {
        self.result_bytes
            .get_or_create(&DirectionLabels {
                direction: "downloaded",
            })
            .inc_by(n);
    }
}

/// `2xx`, `4xx`...: five values instead of every status code.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// The method as a label; anything unusual is `other`, so a caller cannot invent values.
fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

/// Why a request was refused, from its error category and status; None for answers that are
/// not refusals (not found, too early, a failed task, server errors).
pub fn rejection_reason(status: u16, category: Option<&str>) -> Option<&'static str> {
    let category = category?;
    match category {
        "MissingToken" | "InvalidToken" | "WrongCallbackToken" => Some("auth"),
        "RateLimited" | "TenantRateLimited" | "TaskRateLimited" => Some("rate_limit"),
        "BodyTimeout" => Some("timeout"),
        // The URL policy's categories (`UrlRefusal::category`).
        "InvalidUrl" | "HostNotAllowed" | "Unresolvable" | "PrivateAddress" => Some("url_policy"),
        "BacklogFull" => Some("backlog"),
        "NoEligiblePool" => Some("no_eligible_pool"),
        "NoFreeRunner" => Some("no_free_runner"),
        "TaskFailed" => None,
        _ if matches!(status, 400 | 411 | 413 | 422) => Some("invalid"),
        _ => None,
    }
}

/// Each tenant's backlog (its unfinished tasks, as admission counts them) and bound, read from
/// the caches at each scrape.
struct BacklogCollector {
    tasks: crate::tasks::Tasks,
    tokens: Arc<std::sync::RwLock<crate::tenants::TokenTable>>,
}

impl std::fmt::Debug for BacklogCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BacklogCollector")
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabels {
    tenant: String,
}

impl Collector for BacklogCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let tenants: Vec<(String, String, u32)> = {
            let table = self
                .tokens
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            table
                .tenants()
                .into_iter()
                .map(|t| (t.name.clone(), t.namespace.clone(), t.max_backlog))
                .collect()
        };
        let backlogs: Vec<(&str, i64, i64)> = tenants
            .iter()
            .map(|(name, namespace, bound)| {
                let view = self.tasks.submission_view(namespace, name, "");
                (
                    name.as_str(),
                    i64::try_from(view.backlog).unwrap_or(i64::MAX),
                    i64::from(*bound),
                )
            })
            .collect();
        for (metric, help, pick) in [
            (
                "esup_runner_webhook_tenant_backlog",
                "A tenant's unfinished tasks, as its submissions' backlog check counts them",
                (|b: &(&str, i64, i64)| b.1) as fn(&(&str, i64, i64)) -> i64,
            ),
            (
                "esup_runner_webhook_tenant_backlog_limit",
                "A tenant's backlog bound (maxBacklog): submissions past it get 503",
                |b| b.2,
            ),
        ] {
            let mut family = encoder.encode_descriptor(metric, help, None, MetricType::Gauge)?;
            for b in &backlogs {
                let labels = TenantLabels {
                    tenant: b.0.to_owned(),
                };
                ConstGauge::new(pick(b)).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// The notifier's counters (`NotifierStats`), read at each scrape.
#[derive(Debug)]
struct NotificationCollector(Arc<NotifierStats>);

impl Collector for NotificationCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (delivered, read_timeouts, failed, exhausted, not_requested) = self.0.snapshot();
        let outcomes = [
            // Acknowledged by Esup-Pod; read timeouts are counted apart.
            ("delivered", delivered.saturating_sub(read_timeouts)),
            ("read_timeout", read_timeouts),
            // Each failed send; it is retried until the delays are spent.
            ("retry", failed),
            ("gave_up", exhausted),
            ("not_requested", not_requested),
        ];
        let mut family = encoder.encode_descriptor(
            "esup_runner_webhook_notifications",
            "Notifications to Esup-Pod by outcome: delivered, read_timeout (counts as delivered), \
             retry (a failed send), gave_up (retries spent or URL refused), not_requested",
            None,
            MetricType::Counter,
        )?;
        for (outcome, value) in outcomes {
            ConstCounter::new(value).encode(family.encode_family(&OutcomeLabels { outcome })?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    fn sample_value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn requests_are_counted_by_template_and_class() {
        let metrics = Metrics::new(Arc::default());
        metrics.observe_request(Some(Route::Status), "GET", 404, Some("TaskNotFound"), 0.002);
        metrics.observe_request(Some(Route::Status), "GET", 200, None, 0.001);
        metrics.observe_request(None, "BREW", 404, Some("NotFound"), 0.0001);
        metrics.observe_request(
            Some(Route::Execute),
            "POST",
            401,
            Some("InvalidToken"),
            0.001,
        );
        metrics.observe_request(
            Some(Route::Execute),
            "POST",
            422,
            Some("HostNotAllowed"),
            0.001,
        );
        metrics.observe_request(
            Some(Route::Execute),
            "POST",
            503,
            Some("BacklogFull"),
            0.001,
        );
        metrics.observe_request(
            Some(Route::Execute),
            "POST",
            503,
            Some("NoEligiblePool"),
            0.001,
        );
        metrics.observe_request(
            Some(Route::Execute),
            "POST",
            422,
            Some("UnknownParameter"),
            0.001,
        );
        metrics.observe_request(Some(Route::Execute), "POST", 429, Some("RateLimited"), 0.0);
        let text = metrics.encode().unwrap();
        let get = |s: &str| sample_value(&text, s);
        assert_eq!(
            get(
                r#"esup_runner_webhook_http_requests_total{route="/task/status/{task_id}",method="GET",status="4xx"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            get(
                r#"esup_runner_webhook_http_requests_total{route="/task/status/{task_id}",method="GET",status="2xx"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            get(
                r#"esup_runner_webhook_http_requests_total{route="unmatched",method="other",status="4xx"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            get(
                r#"esup_runner_webhook_http_request_duration_seconds_count{route="/task/status/{task_id}"}"#
            ),
            Some(2.0)
        );
        for (reason, n) in [
            ("auth", 1.0),
            ("url_policy", 1.0),
            ("backlog", 1.0),
            ("no_eligible_pool", 1.0),
            ("invalid", 1.0),
            ("rate_limit", 1.0),
        ] {
            assert_eq!(
                get(&format!(
                    r#"esup_runner_webhook_rejections_total{{reason="{reason}"}}"#
                )),
                Some(n),
                "{reason}"
            );
        }
        assert_eq!(
            get(r#"esup_runner_webhook_errors_total{category="TaskNotFound"}"#),
            Some(1.0)
        );
        assert!(
            !text.contains("BREW"),
            "a method a caller made up is no label"
        );
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn submissions_bytes_and_notifications() {
        let stats = Arc::new(NotifierStats::default());
        let metrics = Metrics::new(stats.clone());
        metrics.task_submitted("univ-x", "encoding");
        metrics.task_submitted("univ-x", "encoding");
        metrics.task_submitted("univ-y", "transcription");
        metrics.bytes_uploaded(1000);
        metrics.bytes_uploaded(24);
        metrics.bytes_downloaded(512);
        stats.delivered.store(5, Ordering::Relaxed);
        stats.read_timeouts.store(2, Ordering::Relaxed);
        stats.failed.store(7, Ordering::Relaxed);
        stats.exhausted.store(1, Ordering::Relaxed);
        let text = metrics.encode().unwrap();
        let get = |s: &str| sample_value(&text, s);
        assert_eq!(
            get(
                r#"esup_runner_webhook_tasks_submitted_total{tenant="univ-x",task_type="encoding"}"#
            ),
            Some(2.0)
        );
        assert_eq!(
            get(r#"esup_runner_webhook_result_bytes_total{direction="uploaded"}"#),
            Some(1024.0)
        );
        assert_eq!(
            get(r#"esup_runner_webhook_result_bytes_total{direction="downloaded"}"#),
            Some(512.0)
        );
        for (outcome, n) in [
            ("delivered", 3.0),
            ("read_timeout", 2.0),
            ("retry", 7.0),
            ("gave_up", 1.0),
            ("not_requested", 0.0),
        ] {
            assert_eq!(
                get(&format!(
                    r#"esup_runner_webhook_notifications_total{{outcome="{outcome}"}}"#
                )),
                Some(n),
                "{outcome}"
            );
        }
        assert!(text.contains("# TYPE esup_runner_webhook_notifications counter"));
        assert!(text.contains("# UNIT esup_runner_webhook_result_bytes bytes"));
    }

    #[test]
    fn rejection_reasons() {
        assert_eq!(rejection_reason(404, Some("TaskNotFound")), None);
        assert_eq!(rejection_reason(400, Some("TaskFailed")), None);
        assert_eq!(rejection_reason(425, Some("TaskNotCompleted")), None);
        assert_eq!(rejection_reason(503, Some("ApiServerUnavailable")), None);
        assert_eq!(
            rejection_reason(403, Some("WrongCallbackToken")),
            Some("auth")
        );
        assert_eq!(
            rejection_reason(413, Some("PayloadTooLarge")),
            Some("invalid")
        );
        assert_eq!(
            rejection_reason(400, Some("InvalidUrl")),
            Some("url_policy")
        );
        assert_eq!(rejection_reason(200, None), None);
        assert_eq!(
            rejection_reason(429, Some("TenantRateLimited")),
            Some("rate_limit")
        );
        assert_eq!(rejection_reason(408, Some("BodyTimeout")), Some("timeout"));
        assert_eq!(status_class(206), "2xx");
        assert_eq!(status_class(599), "5xx");
    }
}
