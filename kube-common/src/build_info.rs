//! The `<component>_build_info` gauge every component exports: always 1, its labels name the
//! build (Kueue's `kueue_build_info`), so dashboards can show which version runs where.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    git_commit: &'static str,
}

/// The workspace version, and the commit the release pipeline passes as `ESUP_GIT_COMMIT`
/// at build time (`unknown` for local builds).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const GIT_COMMIT: &str = match option_env!("ESUP_GIT_COMMIT") {
    Some(commit) => commit,
    None => "unknown",
};

/// Registers `name` (e.g. `esup_runner_operator_build_info`) in `registry`.
pub fn register(registry: &mut Registry, name: &str) {
    let build = Family::<BuildLabels, Gauge>::default();
    build
        .get_or_create(&BuildLabels {
            version: VERSION,
            git_commit: GIT_COMMIT,
        })
        .set(1);
    registry.register(name, "Always 1; the labels say which build runs", build);
}
