//! Keeps the token table current: a watch on the tenant Secrets of the tenant-Secret namespace
//! (`--tenant-secrets-namespace`, by default the webhook's own) rebuilds it on every change, so
//! adding, rotating or revoking a token needs no restart. The tokens' references therefore name
//! that namespace, which is the only one the notifier reads a notify token from.

use std::sync::{Arc, RwLock};

use esup_kube_common::watch::guarded_watcher;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};

use esup_api::labels::TENANT as TENANT_LABEL;

use crate::tenants::{TenantSecret, TokenTable};

fn reduce(secret: &Secret) -> Option<TenantSecret> {
    let tenant = secret.metadata.labels.as_ref()?.get(TENANT_LABEL)?.clone();
    let data = secret
        .data
        .iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), String::from_utf8(v.0.clone()).ok()?)))
        .collect();
    Some(TenantSecret {
        name: secret.metadata.name.clone()?,
        namespace: secret.metadata.namespace.clone()?,
        tenant,
        data,
    })
}

fn rebuild(store: &Store<Secret>, table: &RwLock<TokenTable>) {
    let secrets: Vec<TenantSecret> = store.state().iter().filter_map(|s| reduce(s)).collect();
    let (built, errors) = TokenTable::build(&secrets);
    for e in &errors {
        tracing::warn!(category = e.category(), "{e}");
    }
    tracing::info!(
        tokens = built.len(),
        tenants = built.tenants().len(),
        "tenant tokens loaded"
    );
    *table
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = built;
}

/// Starts the watch of `namespace`'s tenant Secrets; the table is filled once the first list
/// arrives.
pub fn spawn(
    client: Client,
    namespace: &str,
    table: Arc<RwLock<TokenTable>>,
    skip: &crate::watch::SkipReport,
) -> Store<Secret> {
    let api: Api<DeserializeGuard<Secret>> = Api::namespaced(client, namespace);
    let (reader, writer) = reflector::store();
    let config = watcher::Config::default().labels(TENANT_LABEL);
    let events = guarded_watcher(api, config, skip.for_kind::<Secret>());
    let stream = reflector::reflector(writer, events).default_backoff();
    let store = reader.clone();
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::InitApply(_)) | Ok(watcher::Event::Init) => {}
                Ok(_) => rebuild(&store, &table),
                Err(e) => tracing::warn!(error = %e, "tenant Secret watch failed; retrying"),
            }
        }
    });
    reader
}
