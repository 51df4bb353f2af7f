//! What every handler shares: the task cache, the tenant tokens, the URL policy, the
//! de-duplication claims, the RunnerPools, the result store and the callback tokens read
//! lately. Plain state, no I/O of its own; both APIs (`manager_api`, `runner_api`) take it.

use std::sync::{Arc, RwLock};

use crate::callback_tokens::CallbackTokens;
use crate::dedup::Dedup;
use crate::tasks::Tasks;
use crate::tenants::TokenTable;
use crate::url_policy::UrlPolicy;

/// What the handlers share.
pub struct App {
    pub tasks: Tasks,
    pub tokens: Arc<RwLock<TokenTable>>,
    pub policy: UrlPolicy,
    pub dedup: Dedup,
    /// RunnerPools, listed for `/api/runners` and the health body.
    pub pools: kube::runtime::reflector::Store<esup_api::RunnerPool>,
    /// Where runners' result files live.
    pub store: crate::store::ResultStore,
    /// The launches' callback tokens, as last read from their Secrets.
    pub callback_tokens: CallbackTokens,
}

/// An App for tests, whose Kubernetes client points at a closed loopback port: the routes
/// answer from empty caches, and a request that passed every check fails at the create, so
/// a refusal is told apart. `tenants`: (tenant, token) pairs.
#[cfg(test)]
pub(crate) fn offline_app(
    results: &std::path::Path,
    tenants: &[(&str, &str)],
    policy: UrlPolicy,
) -> App {
    use crate::tenants::TenantSecret;
    let config = kube::Config::new(
        "http://127.0.0.1:9"
            .parse()
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let client = kube::Client::try_from(config).unwrap_or_else(|e| panic!("{e}"));
    let (pools, _writer) = kube::runtime::reflector::store();
    let store = crate::store::ResultStore::new(&crate::store::StoreConfig::Filesystem {
        root: results.to_owned(),
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let secrets: Vec<TenantSecret> = tenants
        .iter()
        .map(|(tenant, token)| TenantSecret {
            name: format!("tenant-{tenant}"),
            namespace: "esup-system".into(),
            tenant: (*tenant).into(),
            data: [("token".to_owned(), (*token).to_owned())].into(),
        })
        .collect();
    let (table, errors) = TokenTable::build(&secrets);
    assert!(errors.is_empty(), "{errors:?}");
    App {
        tasks: Tasks::start(client),
        tokens: Arc::new(RwLock::new(table)),
        policy,
        dedup: Dedup::new(),
        pools,
        store,
        callback_tokens: CallbackTokens::default(),
    }
}
