//! What every cluster bench does first: a client from a kubeconfig, the project's CRDs
//! installed and Established, namespaces applied. Each call is bounded by [`CALL_TIMEOUT`],
//! so a dead control plane fails the bench instead of hanging it. I/O.

use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, ResourceExt};

/// Any single API call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

pub type Res<T> = Result<T, String>;

/// Awaits `fut` for at most [`CALL_TIMEOUT`]; errors say `what` failed.
pub async fn call<T, E: std::fmt::Display>(
    what: &str,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> Res<T> {
    match tokio::time::timeout(CALL_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: no answer within {CALL_TIMEOUT:?}")),
    }
}

/// A client of the cluster `kubeconfig` points at.
pub async fn client(kubeconfig: &Path) -> Res<Client> {
    let kc = Kubeconfig::read_from(kubeconfig)
        .map_err(|e| format!("cannot read {}: {e}", kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| format!("bad kubeconfig {}: {e}", kubeconfig.display()))?;
    Client::try_from(config).map_err(|e| format!("cannot build a client: {e}"))
}

/// Applies the project's CRDs and waits until each is Established (60 s at most).
pub async fn install_crds(client: &Client, field_manager: &str) -> Res<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(field_manager).force();
    let crds = esup_api::custom_resource_definitions();
    for crd in &crds {
        let name = crd.name_any();
        call(
            &format!("apply CRD {name}"),
            api.patch(&name, &params, &Patch::Apply(crd)),
        )
        .await?;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    for crd in &crds {
        let name = crd.name_any();
        loop {
            let current = call(&format!("get CRD {name}"), api.get(&name)).await?;
            let established = current
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| {
                    c.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                });
            if established {
                break;
            }
            if Instant::now() >= deadline {
                return Err(format!("CRD {name} not Established after 60 s"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

/// Applies the namespace `name`.
pub async fn apply_namespace(client: &Client, name: &str, field_manager: &str) -> Res<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns =
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    call(
        &format!("apply Namespace {name}"),
        api.patch(
            name,
            &PatchParams::apply(field_manager).force(),
            &Patch::Apply(&ns),
        ),
    )
    .await?;
    Ok(())
}
