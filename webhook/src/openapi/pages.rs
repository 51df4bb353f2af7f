//! The Swagger UI (`/docs`) and ReDoc (`/redoc`) pages, as FastAPI serves them: small HTML
//! pages that load the viewers from a CDN (or from `--docs-assets-url`) and read
//! `/openapi.json`. Nothing of the viewers is compiled in.

/// `GET /admin` when no console is configured: where to look instead. Esup-Pod's manager
/// list links here; the admin console is a separate component (`console.enabled` in the chart).
pub fn admin_page() -> String {
    let version = env!("CARGO_PKG_VERSION");
    format!(
        r##"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>esup-webhook {version} - administration</title>
</head>
<body>
<main>
<h1>esup-runner-operator</h1>
<p>This runner manager (esup-webhook {version}) runs Esup-Pod's tasks as Kubernetes resources.
No admin console is configured for it (the chart's <code>webhook.consoleUrl</code>).</p>
<ul>
<li>API reference: <a href="../docs">Swagger UI</a>, <a href="../redoc">ReDoc</a>,
<a href="../openapi.json">OpenAPI document</a></li>
<li>Tasks, pools and their status: <code>kubectl get encodingtasks,transcriptiontasks,runnerpools -A</code></li>
<li>Documentation: <a href="https://github.com/EsupPortail/esup-runner-operator/tree/main/docs">docs/</a>
(operations guide, webhook, security)</li>
</ul>
</main>
</body>
</html>
"##
    )
}

/// jsdelivr's npm mirror, FastAPI's default. Below it, `swagger-ui-dist@5/` and `redoc@2/`.
pub const DEFAULT_ASSETS_URL: &str = "https://cdn.jsdelivr.net/npm";

/// Where the viewers' files are: `<base>/swagger-ui-dist@5/` holds the `swagger-ui-dist`
/// package, `<base>/redoc@2/` the `redoc` package, as on jsdelivr.
#[derive(Clone, Debug)]
pub struct DocsAssets {
    base: String,
}

impl Default for DocsAssets {
    fn default() -> Self {
        Self::new(DEFAULT_ASSETS_URL)
    }
}

impl DocsAssets {
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    /// The Swagger UI page.
    pub fn swagger_ui(&self, spec_url: &str) -> String {
        let base = escape(&self.base);
        let spec = escape(spec_url);
        format!(
            r##"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>esup-webhook - Swagger UI</title>
<link type="text/css" rel="stylesheet" href="{base}/swagger-ui-dist@5/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{base}/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({{
  url: "{spec}",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
}});
</script>
</body>
</html>
"##
        )
    }

    /// The ReDoc page.
    pub fn redoc(&self, spec_url: &str) -> String {
        let base = escape(&self.base);
        let spec = escape(spec_url);
        format!(
            r##"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>esup-webhook - ReDoc</title>
<style>body {{ margin: 0; padding: 0; }}</style>
</head>
<body>
<redoc spec-url="{spec}"></redoc>
<script src="{base}/redoc@2/bundles/redoc.standalone.js"></script>
</body>
</html>
"##
        )
    }
}

/// Escapes for an HTML attribute or a double-quoted JavaScript string inside a script: the
/// assets URL comes from configuration, but a stray quote must not break the page.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\\' => out.push_str("&#92;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_load_the_viewers_from_the_configured_base() {
        let cdn = DocsAssets::default();
        let page = cdn.swagger_ui("/openapi.json");
        assert!(page.contains(
            r#"src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js""#
        ));
        assert!(page.contains(r#"url: "/openapi.json""#));
        let local = DocsAssets::new("http://127.0.0.1:9000/assets/");
        let page = local.redoc("/openapi.json");
        assert!(
            page.contains(
                r#"src="http://127.0.0.1:9000/assets/redoc@2/bundles/redoc.standalone.js""#
            )
        );
        assert!(page.contains(r#"<redoc spec-url="/openapi.json">"#));
    }

    #[test]
    fn a_hostile_base_cannot_break_out_of_the_attribute() {
        let page = DocsAssets::new(r#"x"><script>alert(1)</script>"#).swagger_ui("/openapi.json");
        assert!(!page.contains("<script>alert"));
        assert!(page.contains("x&quot;&gt;&lt;script&gt;"));
    }
}
