//! The webhook's API routes as data: method, path template and who may call. One list serves
//! the OpenAPI document, the route labels of the metrics (templates, never raw paths, so that
//! label values stay bounded) and the test that every served route is documented. `/metrics`
//! and the probes are not API routes: they are served on the metrics port only
//! (`server::ops_routes`).

use esup_api::runner::callback_path;

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No token: the root and the API's description.
    Public,
    /// A tenant's token, `Authorization: Bearer` or `X-API-Token` (Esup-Pod).
    Tenant,
    /// The task's own callback token, `Authorization: Bearer` (its runner).
    Callback,
}

/// Every route of the API port. Keep `Redoc` last: `Route::ALL` is checked against it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    Root,
    Execute,
    Status,
    Result,
    ResultFile,
    Stop,
    TaskList,
    ManagerHealth,
    ApiHealth,
    ApiVersion,
    ApiTasks,
    ApiRunners,
    Admin,
    AdminIndex,
    RunnerProgress,
    RunnerCompletion,
    RunnerUpload,
    OpenApi,
    SwaggerUi,
    Redoc,
}

impl Route {
    pub const ALL: [Route; 20] = [
        Route::Root,
        Route::Execute,
        Route::Status,
        Route::Result,
        Route::ResultFile,
        Route::Stop,
        Route::TaskList,
        Route::ManagerHealth,
        Route::ApiHealth,
        Route::ApiVersion,
        Route::ApiTasks,
        Route::ApiRunners,
        Route::Admin,
        Route::AdminIndex,
        Route::RunnerProgress,
        Route::RunnerCompletion,
        Route::RunnerUpload,
        Route::OpenApi,
        Route::SwaggerUi,
        Route::Redoc,
    ];

    /// The HTTP method, upper case.
    pub const fn method(self) -> &'static str {
        match self {
            Route::Execute | Route::Stop | Route::RunnerProgress | Route::RunnerCompletion => {
                "POST"
            }
            Route::RunnerUpload => "PUT",
            _ => "GET",
        }
    }

    /// The path template, OpenAPI style. A `{path}` last segment takes the rest of the path,
    /// slashes included.
    pub const fn template(self) -> &'static str {
        match self {
            Route::Root => "/",
            Route::Execute => "/task/execute",
            Route::Status => "/task/status/{task_id}",
            Route::Result => "/task/result/{task_id}",
            Route::ResultFile => "/task/result/{task_id}/file/{path}",
            Route::Stop => "/task/stop/{task_id}",
            Route::TaskList => "/task/list",
            Route::ManagerHealth => "/manager/health",
            Route::ApiHealth => "/api/health",
            Route::ApiVersion => "/api/version",
            Route::ApiTasks => "/api/tasks",
            Route::ApiRunners => "/api/runners",
            Route::Admin => "/admin",
            Route::AdminIndex => "/admin/",
            // The runner routes, as the operator hands them to runners.
            Route::RunnerProgress => callback_path::PROGRESS,
            Route::RunnerCompletion => callback_path::COMPLETION,
            Route::RunnerUpload => callback_path::FILES,
            Route::OpenApi => "/openapi.json",
            Route::SwaggerUi => "/docs",
            Route::Redoc => "/redoc",
        }
    }

    pub const fn access(self) -> Access {
        match self {
            Route::Root
            | Route::Admin
            | Route::AdminIndex
            | Route::OpenApi
            | Route::SwaggerUi
            | Route::Redoc => Access::Public,
            Route::RunnerProgress | Route::RunnerCompletion | Route::RunnerUpload => {
                Access::Callback
            }
            _ => Access::Tenant,
        }
    }

    /// Whether the route belongs in the OpenAPI document. As in FastAPI, the document and
    /// its two viewers leave themselves out, and so do the admin pages (HTML for people).
    pub const fn documented(self) -> bool {
        !matches!(
            self,
            Route::OpenApi | Route::SwaggerUi | Route::Redoc | Route::Admin | Route::AdminIndex
        )
    }

    /// The route a request is for, by method and raw path; `None`: no route.
    pub fn classify(method: &str, path: &str) -> Option<Route> {
        Route::ALL
            .into_iter()
            .find(|r| r.method() == method && matches_template(r.template(), path))
    }

    /// The route whose path matches, whatever the method (to tell 404 from 405).
    pub fn any_for_path(path: &str) -> Option<Route> {
        Route::ALL
            .into_iter()
            .find(|r| matches_template(r.template(), path))
    }
}

/// Whether `path` fits `template`: literal segments equal, `{x}` one non-empty segment, and a
/// final `{path}` the (possibly empty) rest.
pub fn matches_template(template: &str, path: &str) -> bool {
    let mut pattern = template.split('/').skip(1).peekable();
    let mut segments = path.split('/').skip(1);
    while let Some(p) = pattern.next() {
        if p == "{path}" && pattern.peek().is_none() {
            return segments.next().is_some();
        }
        let Some(s) = segments.next() else {
            return false;
        };
        let is_param = p.starts_with('{') && p.ends_with('}');
        if (is_param && s.is_empty()) || (!is_param && p != s) {
            return false;
        }
    }
    segments.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_route_once() {
        assert_eq!(Route::ALL.len(), Route::Redoc as usize + 1);
        for (i, r) in Route::ALL.into_iter().enumerate() {
            assert_eq!(r as usize, i, "{r:?} out of order in Route::ALL");
        }
        let templates: std::collections::BTreeSet<(&str, &str)> = Route::ALL
            .iter()
            .map(|r| (r.method(), r.template()))
            .collect();
        assert_eq!(
            templates.len(),
            Route::ALL.len(),
            "a method and template twice"
        );
    }

    #[test]
    fn requests_are_classified_by_template() {
        let cases = [
            ("GET", "/", Some(Route::Root)),
            ("POST", "/task/execute", Some(Route::Execute)),
            ("GET", "/task/execute", None),
            ("GET", "/task/status/abc", Some(Route::Status)),
            ("GET", "/task/status/", None),
            ("GET", "/task/status/a/b", None),
            ("GET", "/task/result/abc", Some(Route::Result)),
            (
                "GET",
                "/task/result/abc/file/a/b%20c.mp4",
                Some(Route::ResultFile),
            ),
            ("GET", "/task/result/abc/file/", Some(Route::ResultFile)),
            ("GET", "/task/result/abc/file", None),
            (
                "PUT",
                "/runner/v1/encodingtasks/ns/t/files/x/y.ts",
                Some(Route::RunnerUpload),
            ),
            (
                "POST",
                "/runner/v1/encodingtasks/ns/t/progress",
                Some(Route::RunnerProgress),
            ),
            ("POST", "/runner/v1/encodingtasks/ns/progress", None),
            ("GET", "/metrics", None),
            ("GET", "/healthz", None),
            ("GET", "/admin", Some(Route::Admin)),
            ("GET", "/admin/", Some(Route::AdminIndex)),
            ("GET", "/nothing", None),
        ];
        for (method, path, expected) in cases {
            assert_eq!(Route::classify(method, path), expected, "{method} {path}");
        }
        assert_eq!(Route::any_for_path("/task/execute"), Some(Route::Execute));
    }

    /// The operator hands runners their callback URLs from `esup_api::runner::TaskCallbacks`;
    /// the runner routes must serve exactly those, for both kinds.
    #[test]
    fn runner_routes_serve_the_contracts_callback_urls() {
        use esup_api::runner::TaskCallbacks;
        for kind in esup_api::task::TaskKind::ALL {
            let callbacks = TaskCallbacks::new("http://webhook:8080", kind, "pod-univ-x", "t-1");
            let path = |url: String| url.trim_start_matches("http://webhook:8080").to_owned();
            for (method, url, route) in [
                ("POST", callbacks.progress(), Route::RunnerProgress),
                ("POST", callbacks.completion(), Route::RunnerCompletion),
                (
                    "PUT",
                    callbacks.file("sub/cours d'été.mp4"),
                    Route::RunnerUpload,
                ),
            ] {
                assert_eq!(
                    Route::classify(method, &path(url.clone())),
                    Some(route),
                    "{method} {url}"
                );
            }
        }
    }
}
