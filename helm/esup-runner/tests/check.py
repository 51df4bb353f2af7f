#!/usr/bin/env python3
"""Checks one rendering of the chart. Usage: check.py SCENARIO MANIFEST.yaml

Scenarios (tests/run renders each with the values files of the same name):
  defaults     chart defaults, on a cluster that serves RunnerPool
  full         tenants, Ingress, S3, monitoring, NetworkPolicy peers, 2 webhook replicas
  first        defaults on a cluster that does not serve RunnerPool yet
  clusterwide  rbac.clusterWideTenantAccess
  kind         kind-config/values.yaml against kind-config/cluster.yaml
  openshift    security contexts without UIDs (restricted-v2), `helm test` with an existingSecret
Every scenario also gets the invariants of `common`.
"""

import json
import re
import sys
from pathlib import Path

import yaml

CHART = Path(__file__).resolve().parent.parent
REPO = CHART.parent.parent
RESTRICTED_POD = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
APP_VERSION = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
# The defaults of values.yaml (operator/webhook podSecurityContext, containerSecurityContext).
DEFAULT_POD_SC = {
    "runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532,
    "fsGroupChangePolicy": "OnRootMismatch", "seccompProfile": {"type": "RuntimeDefault"},
}
DEFAULT_CONTAINER_SC = {
    "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
}
FAILURES = []


def check(condition, message):
    if not condition:
        FAILURES.append(message)


def by_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def one(docs, kind, name_suffix=""):
    found = [d for d in by_kind(docs, kind) if d["metadata"]["name"].endswith(name_suffix)]
    check(len(found) == 1, f"expected one {kind} *{name_suffix}, found {len(found)}")
    return found[0] if found else {}


def env_of(container):
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


# ---- invariants of every rendering ----------------------------------------------------------


def common(docs):
    crds_match(docs)
    pods_restricted(docs)
    rbac_least_privilege(docs)
    runner_service_accounts(docs)
    webhook_endpoints(docs)
    user_roles(docs)
    health_test(docs)
    names = [(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs]
    check(len(names) == len(set(names)), "duplicate objects in the rendering")


def crds_match(docs):
    """The rendered CRDs are crdgen's output plus our keep annotation and labels."""
    rendered = {d["metadata"]["name"]: d for d in by_kind(docs, "CustomResourceDefinition")}
    sources = sorted((REPO / "crds").glob("*.yaml"))
    check(len(sources) == 3, f"expected 3 CRDs in crds/, found {len(sources)}")
    for path in sources:
        source = yaml.safe_load(path.read_text())
        name = source["metadata"]["name"]
        got = rendered.get(name)
        check(got is not None, f"CRD {name} not rendered")
        if got is None:
            continue
        annotations = got["metadata"].get("annotations", {})
        check(annotations.get("helm.sh/resource-policy") == "keep", f"CRD {name} lacks keep")
        check(got["spec"] == source["spec"], f"CRD {name}: spec differs from crds/{path.name}")


def pod_specs(docs):
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield d["metadata"]["name"], d["spec"]["template"]["spec"]
        elif d["kind"] == "Pod":
            yield d["metadata"]["name"], d["spec"]


def pods_restricted(docs):
    """Pod Security "restricted" for every pod of the chart."""
    for name, spec in pod_specs(docs):
        psc = spec.get("securityContext", {})
        for key, value in RESTRICTED_POD.items():
            check(psc.get(key) == value, f"{name}: pod securityContext.{key} != {value}")
        check(not spec.get("hostNetwork") and not spec.get("hostPID"), f"{name}: host namespaces")
        for volume in spec.get("volumes", []):
            check("hostPath" not in volume, f"{name}: hostPath volume")
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            sc = c.get("securityContext", {})
            check(sc.get("allowPrivilegeEscalation") is False, f"{name}/{c['name']}: privilege escalation")
            check(sc.get("capabilities", {}).get("drop") == ["ALL"], f"{name}/{c['name']}: capabilities")
            check(sc.get("readOnlyRootFilesystem") is True, f"{name}/{c['name']}: writable root")
            check(sc.get("runAsNonRoot") is True, f"{name}/{c['name']}: may run as root")
            check("ports" not in c or all("hostPort" not in p for p in c["ports"]), f"{name}: hostPort")


def rbac_least_privilege(docs):
    for role in by_kind(docs, "ClusterRole") + by_kind(docs, "Role"):
        for rule in role.get("rules", []):
            where = f"{role['kind']} {role['metadata']['name']}"
            for field in ("apiGroups", "resources", "verbs"):
                check("*" not in rule.get(field, []), f"{where}: wildcard in {field}")
            check("escalate" not in rule["verbs"] and "bind" not in rule["verbs"], f"{where}: escalate/bind")
            if "secrets" in rule.get("resources", []) and role["kind"] == "ClusterRole":
                check(
                    set(rule["verbs"]) <= {"get", "create"},
                    f"{where}: Secrets beyond get/create in a cluster-wide role: {rule['verbs']}",
                )
    # Every rule in the RBAC templates carries a comment with its reason.
    for path in sorted((CHART / "templates").glob("rbac-*.yaml")):
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if line.strip().startswith("- apiGroups:"):
                j = i - 1
                while j >= 0 and lines[j].strip().startswith("#"):
                    j -= 1
                check(j < i - 1, f"{path.name}:{i + 1}: RBAC rule without a comment")


def runner_service_accounts(docs):
    sas = [d for d in by_kind(docs, "ServiceAccount") if d["metadata"]["name"] == "esup-runner"]
    for sa in sas:
        check(sa.get("automountServiceAccountToken") is False, "runner ServiceAccount mounts a token")
    for binding in by_kind(docs, "RoleBinding") + by_kind(docs, "ClusterRoleBinding"):
        for subject in binding.get("subjects", []):
            check(subject["name"] != "esup-runner", f"{binding['metadata']['name']} binds the runner")


def tenant_secrets_apart(docs, namespace):
    """Tenant Secrets live in their own namespace, the only one where the webhook lists Secrets."""
    for secret in by_kind(docs, "Secret"):
        if "runner.esup-portail.org/tenant" in secret["metadata"].get("labels", {}):
            check(secret["metadata"]["namespace"] == namespace, f"tenant Secret {secret['metadata']['name']} outside {namespace}")
    for role in by_kind(docs, "Role"):
        for rule in role.get("rules", []):
            if "secrets" in rule.get("resources", []) and {"list", "watch"} & set(rule["verbs"]):
                where = (role["metadata"]["namespace"], role["metadata"]["name"])
                check(where[0] == namespace, f"Role {where} lists Secrets outside {namespace}")
    roles = [r["metadata"]["namespace"] for r in by_kind(docs, "Role") if r["metadata"]["name"].endswith("-webhook-tenant-secrets")]
    check(roles == [namespace], f"webhook tenant-Secret Role in {roles}")
    webhook = one(docs, "Deployment", "-webhook")
    wenv = env_of(webhook.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [{}])[0])
    check(wenv.get("ESUP_TENANT_SECRETS_NAMESPACE") == namespace, f"webhook tenant-Secret namespace {wenv.get('ESUP_TENANT_SECRETS_NAMESPACE')}")


def admission_policy(docs, release_namespace, exempt_users=(), exempt_groups=()):
    """Only the webhook's ServiceAccount sets a task's tenant and notify; status is not matched."""
    policy = one(docs, "ValidatingAdmissionPolicy")
    binding = one(docs, "ValidatingAdmissionPolicyBinding")
    spec = policy.get("spec", {})
    check(spec.get("failurePolicy") == "Fail", "admission policy must fail closed")
    rules = spec.get("matchConstraints", {}).get("resourceRules", [])
    check(
        rules == [{
            "apiGroups": ["runner.esup-portail.org"], "apiVersions": ["*"], "operations": ["CREATE", "UPDATE"],
            "resources": ["encodingtasks", "transcriptiontasks"],
        }],
        f"admission policy rules {rules}",
    )
    trusted = next((v["expression"] for v in spec.get("variables", []) if v["name"] == "trusted"), "")
    sa = f"system:serviceaccount:{release_namespace}:esup-h-esup-runner-webhook"
    check(f'request.userInfo.username == "{sa}"' in trusted, f"admission policy trusts {trusted}")
    check(f"in {json.dumps(list(exempt_users))}".replace(", ", ",") in trusted.replace(", ", ","), f"exempt users in {trusted}")
    check(f"in {json.dumps(list(exempt_groups))}".replace(", ", ",") in trusted.replace(", ", ","), f"exempt groups in {trusted}")
    bspec = binding.get("spec", {})
    check(bspec.get("policyName") == policy.get("metadata", {}).get("name"), "binding names the policy")
    check(bspec.get("validationActions") == ["Deny"], "binding denies")
    check("matchResources" not in bspec, "binding covers every namespace")


WEBHOOK = "esup-h-esup-runner-webhook"


def webhook_endpoints(docs):
    """The webhook's API port serves Esup-Pod and the runners; /metrics and the probes are on
    the metrics port only, which no Ingress or HTTPRoute routes and the probes never confuse
    with /metrics."""
    webhook = one(docs, "Deployment", "-webhook")
    containers = webhook.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [{}])
    container = containers[0] if containers else {}
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    check(set(ports) == {"http", "metrics"} and ports["http"] != ports["metrics"], f"webhook ports {ports}")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container.get(probe, {}).get("httpGet", {})
        check(get == {"path": path, "port": "metrics"}, f"webhook {probe} {get}: must be {path} on the metrics port")
    env = env_of(container)
    check(env.get("ESUP_LISTEN") == f"0.0.0.0:{ports.get('http')}", f"ESUP_LISTEN {env.get('ESUP_LISTEN')}")
    check(env.get("ESUP_METRICS_LISTEN") == f"0.0.0.0:{ports.get('metrics')}", f"ESUP_METRICS_LISTEN {env.get('ESUP_METRICS_LISTEN')}")
    services = {s["metadata"]["name"]: s for s in by_kind(docs, "Service")}
    api = services.get(WEBHOOK, {}).get("spec", {})
    check([p.get("targetPort") for p in api.get("ports", [])] == ["http"], f"webhook API Service ports {api.get('ports')}")
    metrics = services.get(f"{WEBHOOK}-metrics", {})
    mspec = metrics.get("spec", {})
    check(mspec.get("type") == "ClusterIP", "webhook metrics Service must stay ClusterIP")
    check([p.get("targetPort") for p in mspec.get("ports", [])] == ["metrics"], f"webhook metrics Service ports {mspec.get('ports')}")
    for ingress in by_kind(docs, "Ingress"):
        for rule in ingress["spec"].get("rules", []):
            for path in rule.get("http", {}).get("paths", []):
                backend = path.get("backend", {}).get("service", {})
                check(
                    backend.get("name") == WEBHOOK and backend.get("port") == {"name": "http"},
                    f"Ingress {ingress['metadata']['name']} routes {backend}: only the API port may be routed",
                )
    api_port = [p.get("port") for p in api.get("ports", [])]
    for route in by_kind(docs, "HTTPRoute"):
        check(route["apiVersion"] == "gateway.networking.k8s.io/v1", f"HTTPRoute {route['apiVersion']}")
        for rule in route["spec"].get("rules", []):
            for ref in rule.get("backendRefs", []):
                check(
                    ref.get("name") == WEBHOOK and [ref.get("port")] == api_port,
                    f"HTTPRoute routes {ref}: only the API Service's port {api_port} may be routed",
                )
    for monitor in by_kind(docs, "ServiceMonitor"):
        if monitor["metadata"]["name"] == WEBHOOK:
            labels = monitor["spec"]["selector"]["matchLabels"]
            check(
                all(metrics.get("metadata", {}).get("labels", {}).get(k) == v for k, v in labels.items())
                and any(services.get(WEBHOOK, {}).get("metadata", {}).get("labels", {}).get(k) != v for k, v in labels.items()),
                f"webhook ServiceMonitor selects {labels}: the metrics Service, not the API's",
            )
            check([e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"], "webhook ServiceMonitor scrapes the metrics port")


def user_roles(docs):
    """The aggregated view/edit/admin roles: reads for view, task writes for edit, pool writes for
    admin only; tenants' adminGroups bound to edit in their namespace only."""
    roles = {r["metadata"]["name"]: r for r in by_kind(docs, "ClusterRole")}
    present = [f"esup-h-esup-runner-{k}" in roles for k in ("view", "edit", "admin")]
    check(all(present) or not any(present), f"user roles partly rendered: {present}")
    if not all(present):
        return

    def grants(role, resource):
        return {v for r in roles[f"esup-h-esup-runner-{role}"]["rules"] if resource in r["resources"] for v in r["verbs"]}

    read = {"get", "list", "watch"}
    for role, label in (("view", "view"), ("edit", "edit"), ("admin", "admin")):
        labels = roles[f"esup-h-esup-runner-{role}"]["metadata"]["labels"]
        check(labels.get(f"rbac.authorization.k8s.io/aggregate-to-{label}") == "true", f"{role} role not aggregated")
        for res in ("encodingtasks", "transcriptiontasks", "runnerpools"):
            check(read <= grants(role, res), f"{role} role cannot read {res}")
    for res in ("encodingtasks", "transcriptiontasks", "runnerpools"):
        check(grants("view", res) == read, f"view role writes {res}: {grants('view', res)}")
    for res in ("encodingtasks", "transcriptiontasks"):
        check({"create", "update", "patch", "delete"} <= grants("edit", res), f"edit role on {res}")
    check(grants("edit", "runnerpools") == read, f"edit role writes pools: {grants('edit', 'runnerpools')}")
    check({"create", "update", "patch", "delete"} <= grants("admin", "runnerpools"), "admin role on pools")
    for role in roles.values():
        if role["metadata"]["name"].endswith(("-view", "-edit", "-admin")):
            for rule in role["rules"]:
                check(rule["apiGroups"] == ["runner.esup-portail.org"], f"user role {role['metadata']['name']} beyond our kinds")
    for binding in by_kind(docs, "RoleBinding"):
        if binding["metadata"]["name"].endswith("-admins"):
            check(binding["roleRef"]["name"] == "esup-h-esup-runner-edit", f"adminGroups bound to {binding['roleRef']}")
            check(all(s["kind"] == "Group" for s in binding["subjects"]), "adminGroups subjects are groups")
    check(
        not [b for b in by_kind(docs, "ClusterRoleBinding") if b["roleRef"]["name"].endswith(("-view", "-edit", "-admin"))],
        "the chart binds user roles cluster-wide",
    )


def health_test(docs):
    """The `helm test` pod: a hook, the webhook image's health-check against the API Service,
    the token from a Secret of its own namespace; admitted by the webhook's NetworkPolicy."""
    pods = [p for p in by_kind(docs, "Pod") if p["metadata"]["name"].endswith("-health-test")]
    peer_ns = [
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for np in by_kind(docs, "NetworkPolicy") if np["metadata"]["name"] == WEBHOOK
        for rule in np["spec"].get("ingress", []) for peer in rule.get("from", [])
        if peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component") == "health-test"
    ]
    if not pods:
        check(not peer_ns, f"the webhook policy admits a health-test pod that is not rendered: {peer_ns}")
        return
    pod = pods[0]
    meta = pod["metadata"]
    check(meta["annotations"].get("helm.sh/hook") == "test", "health-test pod is not a test hook")
    webhook = one(docs, "Deployment", "-webhook")["spec"]["template"]["spec"]["containers"][0]
    container = pod["spec"]["containers"][0]
    check(container["image"] == webhook["image"], f"health-test image {container['image']} != the webhook's")
    api = next(s for s in by_kind(docs, "Service") if s["metadata"]["name"] == WEBHOOK)
    url = f"http://{WEBHOOK}.{api['metadata']['namespace']}.svc:{api['spec']['ports'][0]['port']}"
    check(container.get("args") == ["health-check", "--url", url], f"health-test args {container.get('args')}")
    ref = env_of(container).get("ESUP_HEALTH_TOKEN", {}).get("secretKeyRef", {})
    secrets = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in by_kind(docs, "Secret")}
    own = secrets.get((meta["namespace"], ref.get("name")))
    if own is not None:
        check(ref.get("key") in own.get("stringData", {}), f"health-test token key {ref.get('key')} not in {ref.get('name')}")
    check(pod["spec"].get("automountServiceAccountToken") is False, "health-test pod mounts a token")
    check(peer_ns == [meta["namespace"]], f"webhook policy admits health-test pods from {peer_ns}, the pod is in {meta['namespace']}")


def common_labels(docs, labels, except_names=()):
    for d in docs:
        if d["metadata"]["name"] in except_names:
            continue
        got = d["metadata"].get("labels", {})
        for key, value in labels.items():
            check(got.get(key) == value, f"{d['kind']} {d['metadata']['name']}: commonLabels {key}={got.get(key)}")


def deployment(docs, component):
    return one(docs, "Deployment", f"-{component}").get("spec", {}).get("template", {})


# ---- scenarios -------------------------------------------------------------------------------


def defaults(docs):
    operator = one(docs, "Deployment", "-operator")
    spec = operator["spec"]
    check(spec["replicas"] == 2, "operator replicas != 2")
    container = spec["template"]["spec"]["containers"][0]
    env = env_of(container)
    check(
        env.get("ESUP_RUNNER_IMAGE") == f"ghcr.io/esupportail/esup-runner:{APP_VERSION}",
        f"runner image {env.get('ESUP_RUNNER_IMAGE')}: the published one, tagged with appVersion",
    )
    for component in ("operator", "webhook"):
        template = deployment(docs, component)
        pod = template.get("spec", {})
        image = pod.get("containers", [{}])[0].get("image")
        check(image == f"ghcr.io/esupportail/esup-{component}:{APP_VERSION}", f"{component} image {image}")
        check(pod.get("securityContext") == DEFAULT_POD_SC, f"{component} pod securityContext {pod.get('securityContext')}")
        check(pod["containers"][0].get("securityContext") == DEFAULT_CONTAINER_SC, f"{component} container securityContext")
        for key in ("priorityClassName", "topologySpreadConstraints", "imagePullSecrets"):
            check(key not in pod, f"{component}: {key} without a value")
    check(not by_kind(docs, "HTTPRoute"), "HTTPRoute rendered while disabled")
    check(not by_kind(docs, "Pod"), "helm test pod without a tenant token")
    check(not [b for b in by_kind(docs, "RoleBinding") if b["metadata"]["name"].endswith("-admins")], "adminGroups bindings")
    check(len([r for r in by_kind(docs, "ClusterRole") if r["metadata"]["name"].endswith(("-view", "-edit", "-admin"))]) == 3, "user roles")
    check(env.get("ESUP_RUNNER_IMAGE_PULL_POLICY") == "IfNotPresent", "runner pull policy")
    check(env.get("ESUP_LEASE_NAME") == "esup-operator", "lease name")
    check("ESUP_PRIVATE_NETWORKS" not in env, "no URL policy set: no policy variables")
    check(env.get("POD_NAME") == {"fieldRef": {"fieldPath": "metadata.name"}}, "POD_NAME from the downward API")
    check(env.get("POD_NAMESPACE") == {"fieldRef": {"fieldPath": "metadata.namespace"}}, "POD_NAMESPACE")
    check(
        env.get("ESUP_CALLBACK_BASE_URL") == "http://esup-h-esup-runner-webhook.esup-test.svc:8080",
        f"callback URL {env.get('ESUP_CALLBACK_BASE_URL')}",
    )
    check(container["livenessProbe"]["httpGet"]["path"] == "/healthz", "operator liveness /healthz")
    check(container["readinessProbe"]["httpGet"]["path"] == "/readyz", "operator readiness /readyz")
    check(container["ports"][0]["containerPort"] == 8080, "operator metrics port")
    pdb = one(docs, "PodDisruptionBudget", "-operator")
    check(pdb.get("spec", {}).get("minAvailable") == 1, "operator PDB minAvailable")
    webhook = one(docs, "Deployment", "-webhook")
    check(webhook["spec"]["strategy"]["type"] == "Recreate", "RWO PVC webhook must Recreate")
    wenv = env_of(webhook["spec"]["template"]["spec"]["containers"][0])
    check(wenv.get("ESUP_RESULTS_DIR") == "/var/lib/esup-webhook/results", "results dir")
    check("ESUP_S3_BUCKET" not in wenv, "S3 without resultStore.type=s3")
    pvc = one(docs, "PersistentVolumeClaim", "-results")
    check(pvc["metadata"]["annotations"].get("helm.sh/resource-policy") == "keep", "PVC not kept")
    check(not by_kind(docs, "Ingress"), "Ingress rendered while disabled")
    check(not by_kind(docs, "ServiceMonitor"), "ServiceMonitor rendered while disabled")
    pools = {p["metadata"]["name"]: p for p in by_kind(docs, "RunnerPool")}
    check(set(pools) == {"cpu", "gpu-l4"}, f"default pools {sorted(pools)}")
    if "gpu-l4" in pools:
        gpu = pools["gpu-l4"]["spec"]
        check(gpu["gpu"]["products"] == ["NVIDIA-L4"] and gpu["gpu"]["nvenc"], "GPU pool GPU settings")
        check("gpu" not in pools["cpu"]["spec"], "CPU pool with GPUs")
    check(len(by_kind(docs, "NetworkPolicy")) == 2, "webhook and operator NetworkPolicies")
    check(not by_kind(docs, "Secret"), "Secrets without tenants or S3")
    namespaces = {n["metadata"]["name"]: n for n in by_kind(docs, "Namespace")}
    check(set(namespaces) == {"esup-test-tenants"}, f"created namespaces {sorted(namespaces)}")
    tenant_secrets_apart(docs, "esup-test-tenants")
    admission_policy(docs, "esup-test")


def full(docs):
    secrets = {s["metadata"]["name"]: s for s in by_kind(docs, "Secret")}
    tenant = secrets.get("esup-h-esup-runner-tenant-univ-x", {})
    check(tenant.get("metadata", {}).get("namespace") == "esup-tokens", "tenant Secret in tenantSecrets.namespace")
    check(secrets.get("esup-h-esup-runner-webhook-s3", {}).get("metadata", {}).get("namespace") == "esup-test", "S3 Secret")
    tenant_secrets_apart(docs, "esup-tokens")
    admission_policy(
        docs, "esup-test", ["system:serviceaccount:flux-system:kustomize-controller"], ["system:masters"]
    )
    check(tenant.get("metadata", {}).get("labels", {}).get("runner.esup-portail.org/tenant") == "univ-x", "tenant label")
    data = tenant.get("stringData", {})
    check(data.get("token") == "tok-univ-x-1" and data.get("token-2027") == "tok-univ-x-2", "tenant tokens")
    check(data.get("namespace") == "pod-univ-x" and data.get("maxBacklog") == "300", "tenant settings")
    check(data.get("priority") == "High" and data.get("retention") == "720h", "tenant priority/retention")
    check("esup-h-esup-runner-tenant-univ-y" not in secrets, "existingSecret tenant got a Secret")
    s3 = secrets.get("esup-h-esup-runner-webhook-s3", {}).get("stringData", {})
    check(s3.get("AWS_ACCESS_KEY_ID") == "AKIATEST", "S3 Secret")
    namespaces = {n["metadata"]["name"]: n for n in by_kind(docs, "Namespace")}
    check(set(namespaces) == {"pod-univ-x", "esup-tokens"}, f"created namespaces {sorted(namespaces)}")
    for ns in namespaces.values():
        labels = ns["metadata"]["labels"]
        check(labels.get("pod-security.kubernetes.io/enforce") == "restricted", "namespace PSS label")
        check(ns["metadata"]["annotations"].get("helm.sh/resource-policy") == "keep", "tenant namespace kept")
    tenant_bindings = {
        (b["metadata"]["namespace"], b["roleRef"]["name"])
        for b in by_kind(docs, "RoleBinding")
        if b["roleRef"]["name"].endswith("-tenant")
    }
    expected = {
        (ns, f"esup-h-esup-runner-{c}-tenant") for ns in ("pod-univ-x", "univ-y", "extra-ns") for c in ("operator", "webhook")
    }
    check(tenant_bindings == expected, f"tenant RoleBindings {sorted(tenant_bindings)}")
    check(
        not [b for b in by_kind(docs, "ClusterRoleBinding") if b["roleRef"]["name"].endswith("-tenant")],
        "tenant roles bound cluster-wide",
    )
    webhook = one(docs, "Deployment", "-webhook")
    check(webhook["spec"]["replicas"] == 2, "webhook replicas")
    check("strategy" not in webhook["spec"], "S3 webhook should roll")
    wenv = env_of(webhook["spec"]["template"]["spec"]["containers"][0])
    check(wenv.get("ESUP_S3_BUCKET") == "esup-results" and wenv.get("ESUP_S3_ENDPOINT") == "http://minio.storage.svc:9000", "S3 env")
    check(
        wenv.get("AWS_SECRET_ACCESS_KEY", {}).get("secretKeyRef", {}).get("name") == "esup-h-esup-runner-webhook-s3",
        "S3 key from the Secret",
    )
    check(wenv.get("ESUP_PRIVATE_NETWORKS") == "10.96.0.0/12,10.244.0.0/16", "private networks joined")
    oenv = env_of(one(docs, "Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0])
    for name in ("ESUP_ALLOWED_HOSTS", "ESUP_PRIVATE_HOSTS", "ESUP_PRIVATE_NETWORKS"):
        check(oenv.get(name) == wenv.get(name), f"the operator (for runners) gets the webhook's {name}")
    check("ESUP_RESULTS_DIR" not in wenv and not by_kind(docs, "PersistentVolumeClaim"), "PVC with S3")
    ingress = one(docs, "Ingress")
    check(ingress.get("spec", {}).get("rules", [{}])[0].get("host") == "runners.univ-x.fr", "Ingress host")
    monitors = by_kind(docs, "ServiceMonitor")
    check(len(monitors) == 2, "two ServiceMonitors")
    for m in monitors:
        check(m["metadata"]["labels"].get("release") == "prometheus", "ServiceMonitor labels")
    dashboard(one(docs, "ConfigMap", "-dashboard"))
    policies = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in by_kind(docs, "NetworkPolicy")}
    webhook_policy = policies.get(("esup-test", "esup-h-esup-runner-webhook"), {})
    rules = webhook_policy.get("spec", {}).get("ingress", [])
    peers = rules[0].get("from", []) if rules else []
    monitoring = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    by_port = {tuple(p["port"] for p in r.get("ports", [])): r.get("from", []) for r in rules}
    check(set(by_port) == {("http",), ("metrics",)}, f"webhook policy ports {sorted(by_port)}")
    check(monitoring not in by_port.get(("http",), []), "metricsFrom peers reach the webhook's API port")
    check(by_port.get(("metrics",)) == [monitoring], "metricsFrom peers, and only they, reach the metrics port")
    check({"ipBlock": {"cidr": "192.0.2.10/32"}} in peers, "Esup-Pod CIDR allowed to the webhook")
    check(
        any(p.get("podSelector", {}).get("matchLabels") == {"app.kubernetes.io/managed-by": "esup-operator"} for p in peers),
        "runner pods allowed to the webhook",
    )
    runner = policies.get(("pod-univ-x", "esup-runner"), {}).get("spec", {})
    check(set(runner.get("policyTypes", [])) == {"Ingress", "Egress"} and runner.get("ingress") == [], "runner policy")
    egress_ports = sorted(p["port"] for rule in runner.get("egress", []) for p in rule.get("ports", []))
    check(egress_ports == [53, 53, 80, 443, 8080], f"runner egress ports {egress_ports}")
    pools = {p["metadata"]["name"] for p in by_kind(docs, "RunnerPool")}
    check(pools == {"gpu-l4", "shared-h100"}, f"pools replaced by values: {sorted(pools)}")
    full_extensions(docs)


def full_extensions(docs):
    """Registry mirror and digests, pull secrets, scheduling, labels, ServiceAccount annotations,
    extra env, extra objects, the HTTPRoute, adminGroups and the `helm test` pod."""
    mirror = "registry.example.org/mirror/esupportail"
    images = {
        "operator": f"{mirror}/esup-operator@sha256:{'a' * 64}",
        "webhook": f"{mirror}/esup-webhook:1.2.3",
    }
    oenv = env_of(deployment(docs, "operator")["spec"]["containers"][0])
    runner_image = f"{mirror}/esup-runner@sha256:{'b' * 64}"
    check(oenv.get("ESUP_RUNNER_IMAGE") == runner_image, f"runner image {oenv.get('ESUP_RUNNER_IMAGE')}")
    for component, image in images.items():
        template = deployment(docs, component)
        pod = template["spec"]
        container = pod["containers"][0]
        check(container["image"] == image, f"{component} image {container['image']} != {image}")
        check(pod.get("imagePullSecrets") == [{"name": "mirror-pull"}], f"{component} imagePullSecrets")
        labels = template["metadata"]["labels"]
        check(labels.get("cost-center") == "video", f"{component} podLabels")
        check(labels.get("app.kubernetes.io/component") == component, f"{component} podLabels replaced a selector label")
        check(pod.get("priorityClassName") == {"operator": "esup-critical", "webhook": "esup-high"}[component], f"{component} priorityClassName")
        names = [e["name"] for e in container["env"]]
        check(len(names) == len(set(names)), f"{component} env names repeat")
    ospec = deployment(docs, "operator")["spec"]
    spread = ospec.get("topologySpreadConstraints", [])
    check(
        spread == [{
            "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {
                "app.kubernetes.io/name": "esup-runner", "app.kubernetes.io/instance": "esup-h",
                "app.kubernetes.io/component": "operator"}},
        }],
        f"operator topologySpreadConstraints {spread}: the operator's own pods by default",
    )
    wspread = deployment(docs, "webhook")["spec"].get("topologySpreadConstraints", [])
    check(
        [c.get("labelSelector") for c in wspread] == [{"matchLabels": {"app.kubernetes.io/component": "webhook"}}],
        f"webhook topologySpreadConstraints {wspread}: a given labelSelector is kept",
    )
    oenv_list = ospec["containers"][0]["env"]
    check(
        oenv_list[-2:] == [
            {"name": "ESUP_EXTRA_FLAG", "value": "1"},
            {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "extra", "key": "value"}}},
        ],
        f"operator extraEnv after the chart's: {oenv_list[-2:]}",
    )
    wenv = deployment(docs, "webhook")["spec"]["containers"][0]["env"]
    check(wenv[-1] == {"name": "HTTPS_PROXY", "value": "http://proxy.example.org:3128"}, f"webhook extraEnv {wenv[-1]}")
    sas = {s["metadata"]["name"]: s for s in by_kind(docs, "ServiceAccount") if s["metadata"]["namespace"] == "esup-test"}
    check(
        sas.get(f"{WEBHOOK}", {}).get("metadata", {}).get("annotations")
        == {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/esup-results"},
        "webhook ServiceAccount annotations (workload identity)",
    )
    check(
        sas.get("esup-h-esup-runner-operator", {}).get("metadata", {}).get("annotations") == {"example.org/identity": "operator"},
        "operator ServiceAccount annotations",
    )
    runners = [s for s in by_kind(docs, "ServiceAccount") if s["metadata"]["name"] == "esup-runner"]
    check(len(runners) == 3, f"runner ServiceAccounts {len(runners)}")
    for sa in runners:
        check(sa.get("imagePullSecrets") == [{"name": "runner-pull"}], f"runner SA {sa['metadata']['namespace']}: imagePullSecrets")
    extra = {c["metadata"]["name"]: c for c in by_kind(docs, "ConfigMap")}
    check(extra.get("esup-h-esup-runner-extra", {}).get("data") == {"release": "esup-h"}, "extraObjects item rendered with tpl")
    check(extra.get("esup-h-extra-text", {}).get("data") == {"webhook": WEBHOOK}, "extraObjects string rendered with tpl")
    common_labels(docs, {"team": "video", "app.kubernetes.io/part-of": "esup-runner"},
                  except_names=("esup-h-esup-runner-extra", "esup-h-extra-text"))
    route = one(docs, "HTTPRoute")
    rspec = route.get("spec", {})
    check(rspec.get("parentRefs") == [{"name": "public", "namespace": "gateway-system", "sectionName": "https"}], "HTTPRoute parentRefs")
    check(rspec.get("hostnames") == ["runners.univ-x.fr"], "HTTPRoute hostnames")
    check(route.get("metadata", {}).get("labels", {}).get("gateway") == "public", "HTTPRoute labels")
    check(route.get("metadata", {}).get("annotations") == {"example.org/route": "yes"}, "HTTPRoute annotations")
    admins = [b for b in by_kind(docs, "RoleBinding") if b["metadata"]["name"].endswith("-admins")]
    check(
        [(b["metadata"]["namespace"], [s["name"] for s in b["subjects"]]) for b in admins]
        == [("pod-univ-x", ["univ-x-staff", "oidc:video-team"])],
        f"adminGroups RoleBindings {[(b['metadata']['namespace'], b['subjects']) for b in admins]}",
    )
    pod = one(docs, "Pod", "-health-test")
    check(pod.get("metadata", {}).get("namespace") == "esup-tokens", "health-test pod in the tenant-Secret namespace")
    ref = env_of(pod["spec"]["containers"][0])["ESUP_HEALTH_TOKEN"]["secretKeyRef"]
    check(ref == {"name": "esup-h-esup-runner-tenant-univ-x", "key": "token"}, f"health-test token {ref}")
    check(pod["spec"].get("imagePullSecrets") == [{"name": "mirror-pull"}], "health-test imagePullSecrets")


def openshift(docs):
    """restricted-v2: no UID, GID or fsGroup from the chart; the rest of restricted stays."""
    for component in ("operator", "webhook"):
        pod = deployment(docs, component)["spec"]
        psc = pod.get("securityContext", {})
        for key in ("runAsUser", "runAsGroup", "fsGroup"):
            check(key not in psc, f"{component}: {key} set under OpenShift values")
        check(psc.get("runAsNonRoot") is True and psc.get("seccompProfile") == {"type": "RuntimeDefault"}, f"{component} {psc}")
        check(pod["containers"][0].get("securityContext") == DEFAULT_CONTAINER_SC, f"{component} container securityContext")
    pod = one(docs, "Pod", "-health-test")
    check("runAsUser" not in pod.get("spec", {}).get("securityContext", {}), "health-test pod sets a UID")
    ref = env_of(pod["spec"]["containers"][0])["ESUP_HEALTH_TOKEN"]["secretKeyRef"]
    check(ref == {"name": "tenant-univ-o", "key": "token-2026"}, f"health-test token from tests.tenant's existingSecret: {ref}")


def dashboard(configmap):
    """The dashboard (dashboards/esup-runner.json, as the ConfigMap carries it): every query
    parses (promtool check rules, the queries written as recording rules) and names only metrics
    the code exposes (histograms by _bucket/_sum/_count, counters by _total); every selector
    names the release ($namespace and the component's job); pool gauges (leader only) are taken
    with max, never summed over operator replicas; the rows, variables, descriptions and units."""
    import os
    import subprocess
    import tempfile

    text = configmap.get("data", {}).get("esup-runner.json", "")
    board = json.loads(text) if text else {}
    check(board.get("panels"), "dashboard has no panels")
    source = json.loads((CHART / "dashboards" / "esup-runner.json").read_text())
    check(board == source, "dashboard ConfigMap differs from dashboards/esup-runner.json")

    variables = {v["name"]: v for v in board.get("templating", {}).get("list", [])}
    for name in ("datasource", "namespace", "operator_job", "webhook_job", "pool", "tenant", "task_type"):
        check(name in variables, f"dashboard lacks the variable ${name}")
    for name in ("pool", "tenant", "task_type"):
        v = variables.get(name, {})
        check(v.get("multi") and v.get("includeAll") and v.get("allValue") == ".*", f"dashboard ${name}: multi, All = .*")

    panels = []
    for p in board.get("panels", []):
        panels.append(p)
        panels.extend(p.get("panels", []))  # a collapsed row holds its panels
    rows = [p["title"] for p in panels if p["type"] == "row"]
    expected_rows = ["Health", "Queues & capacity", "Latency", "Outcomes", "Tenants", "Esup-Pod link", "Internals"]
    check(rows == expected_rows, f"dashboard rows {rows}, expected {expected_rows}")

    queries = []  # (where, expr, is_variable)
    for p in panels:
        if p["type"] == "row":
            continue
        where = f"panel {p.get('title')!r}"
        check(p.get("description"), f"dashboard {where} has no description")
        unit = p.get("fieldConfig", {}).get("defaults", {}).get("unit")
        check(unit, f"dashboard {where} has no unit")
        check(p.get("datasource", {}).get("uid") == "${datasource}", f"dashboard {where}: datasource not $datasource")
        check(p.get("targets"), f"dashboard {where} has no query")
        if p["type"] == "stat":
            steps = p.get("fieldConfig", {}).get("defaults", {}).get("thresholds", {}).get("steps", [])
            check(steps, f"dashboard {where}: stat without thresholds")
        for t in p.get("targets", []):
            expr = t.get("expr", "")
            check(expr, f"dashboard {where} target {t.get('refId')} has no expr")
            queries.append((f"{where} {t.get('refId')}", expr, False))
            # Units that follow from the query.
            if expr.startswith("histogram_quantile(") and "_seconds_bucket" in expr and p["type"] == "timeseries":
                check(unit == "s", f"dashboard {where}: quantiles of seconds shown as {unit}, not s")
            if re.search(r"rate\([a-z_]+_bytes_total", expr):
                check(unit == "Bps", f"dashboard {where}: bytes per second shown as {unit}, not Bps")
        if p["type"] == "heatmap":
            check(p.get("options", {}).get("yAxis", {}).get("unit") == "s", f"dashboard {where}: heatmap axis not in s")
    for a in board.get("annotations", {}).get("list", []):
        if a.get("expr"):
            queries.append((f"annotation {a.get('name')!r}", a["expr"], False))
    for name, v in variables.items():
        q = v.get("query")
        q = q.get("query", "") if isinstance(q, dict) else (q or "")
        m = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", q, re.S)
        if v.get("type") == "query":
            check(m, f"dashboard variable ${name}: not label_values(selector, label)")
            check(v.get("definition", q) == q, f"dashboard variable ${name}: definition is not its query")
            if m:
                queries.append((f"variable ${name}", m.group(1), True))

    exposed = _exposed_metrics()
    builtin = {"__rate_interval": "5m", "__interval": "1m", "__range": "1d"}
    rules = []
    for i, (where, expr, is_variable) in enumerate(queries):
        def substitute(m):
            name = m.group(1) or m.group(2) or m.group(3)
            if name in builtin:
                return builtin[name]
            check(name in variables, f"dashboard {where}: unknown variable ${name}")
            return ".*"

        promql = re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]", substitute, expr)
        rules.append({"record": f"dashboard:query_{i}", "expr": promql})
        for m in re.finditer(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}", expr):
            metric, matchers = m.group(1), m.group(2)
            if metric in ("by", "without", "on", "ignoring", "group_left", "group_right"):
                continue
            check(metric in exposed or metric in DASHBOARD_FOREIGN_METRICS,
                  f"dashboard {where} uses {metric}, which operator/webhook metrics do not expose")
            # Every query is the release's: its namespace and the component's job (the job
            # variables themselves are listed by namespace).
            job = "$webhook_job" if metric.startswith("esup_runner_webhook_") else "$operator_job"
            scope = ['namespace="$namespace"'] + ([] if where.endswith("_job") else [f'job="{job}"'])
            check(all(s in matchers for s in scope),
                  f"dashboard {where}: {metric} without {', '.join(scope)}")
            if re.match(r"esup_runner_(pool_|tasks_pending$)", metric):
                check('replica_role="leader"' in matchers, f"dashboard {where}: {metric} without replica_role=\"leader\"")
                before = expr[: m.start()]
                check(is_variable or re.search(r"\bmax\s*(by\s*\([^)]*\)\s*)?\(\s*$", before),
                      f"dashboard {where}: {metric} not under max (a sum would count replicas twice)")
        # Names outside a selector too (a bare name, or one in a string).
        for metric in set(re.findall(r"\b(esup_[a-z_]+)(?![a-z_])(?!\s*\{)", expr)):
            check(metric in exposed, f"dashboard {where} uses {metric}, which operator/webhook metrics do not expose")

    promtool = os.environ.get("PROMTOOL")
    check(promtool, "PROMTOOL not set (tests/run sets it): the dashboard's queries cannot be parsed")
    if promtool and rules:
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
            yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
            f.flush()
            run = subprocess.run([promtool, "check", "rules", f.name], capture_output=True, text=True)
            detail = run.stdout + run.stderr
            detail = re.sub(r"dashboard:query_(\d+)\b", lambda m: queries[int(m.group(1))][0], detail)
            check(run.returncode == 0, f"promtool refuses the dashboard's queries:\n{detail}")


# Metrics of other exporters the dashboard may use.
DASHBOARD_FOREIGN_METRICS = {"up"}


def _exposed_metrics():
    """Names the operator and webhook expose, from their registrations in the code:
    registry.register[_with_unit]("name", help, [Unit::X,] metric) and collectors'
    encode_descriptor("name", help, unit, MetricType::X). The type (counter: _total,
    histogram: _bucket/_sum/_count, gauge: as is) comes from the metric's declaration."""
    sources = {}
    for crate in ("operator", "webhook", "kube-common"):
        for path in sorted((REPO / crate / "src").rglob("*.rs")):
            sources[path] = path.read_text()
    every = "\n".join(sources.values())
    aliases = dict(re.findall(r"\btype\s+(\w+)(?:<[^>]*>)?\s*=\s*([^;]+);", every))
    kinds = (("Histogram", "histogram"), ("Counter", "counter"), ("Gauge", "gauge"), ("Info", "info"))
    units = {"Seconds": "seconds", "Bytes": "bytes", "Joules": "joules", "Grams": "grams",
             "Meters": "meters", "Ratios": "ratios", "Volts": "volts", "Amperes": "amperes",
             "Celsius": "celsius"}

    def kind_of(type_text):
        for alias, expansion in aliases.items():
            type_text = re.sub(rf"\b{alias}\b", expansion, type_text)
        return next((k for word, k in kinds if word in type_text), None)

    def declared_kind(expr, code):
        """The kind of the metric expr (a field, a binding or a method's result), from its
        declaration: in its file first."""
        expr = re.sub(r"\.clone\(\)$", "", expr)
        ident = re.sub(r"\(\)$", "", expr).split(".")[-1]
        if expr.endswith("()"):
            patterns = (rf"\bfn\s+{ident}\s*\([^)]*\)\s*->\s*([^{{]+)",)
        else:
            patterns = (rf"\b{ident}\s*:\s*([^\n]+)", rf"\blet\s+(?:mut\s+)?{ident}\s*=\s*([^;]+);")
        for text in (code, every):
            for pattern in patterns:
                for m in re.finditer(pattern, text):
                    kind = kind_of(m.group(1))
                    if kind:
                        return kind
        return None

    def names(base, unit, kind):
        full = f"{base}_{unit}" if unit else base
        return {"counter": [f"{full}_total"], "gauge": [full], "info": [f"{base}_info"],
                "histogram": [f"{full}_bucket", f"{full}_sum", f"{full}_count"]}[kind]

    exposed, seen = set(), set()
    for path, code in sources.items():
        for m in re.finditer(r"\.register(?:_with_unit)?\(\s*\"(\w+)\"\s*,(.*?)\);", code, re.S):
            base, args = m.group(1), re.sub(r'"(?:[^"\\]|\\.)*"', "", m.group(2), flags=re.S)
            unit = re.search(r"Unit::(\w+)", args)
            args = re.sub(r"Unit::\w+\s*,", "", args).strip().strip(",").strip()
            kind = declared_kind(args, code)
            check(kind, f"{path.name}: cannot tell the type of metric {base} ({args}): teach check.py")
            if kind:
                exposed.update(names(base, unit and units.get(unit.group(1), unit.group(1).lower()), kind))
            seen.add(base)
        for m in re.finditer(r"encode_descriptor\(\s*(\"(\w+)\"|\w+)\s*,[^;]*?,\s*(None|Some\(&?Unit::(\w+)\))\s*,\s*MetricType::(\w+)", code, re.S):
            kind = m.group(5).lower()
            unit = m.group(4) and units.get(m.group(4), m.group(4).lower())
            # A name in a variable: the names of the loop above it.
            bases = [m.group(2)] if m.group(2) else re.findall(r"\"(esup_\w+)\"", code[max(0, m.start() - 1500): m.start()])
            for base in bases:
                if kind in ("counter", "gauge", "histogram", "info"):
                    exposed.update(names(base, unit, kind))
                seen.add(base)
        # esup_kube_common::build_info::register(registry, "name"): a gauge, always 1.
        for m in re.finditer(r"build_info::register\(\s*\w+\s*,\s*\"(\w+)\"\s*\)", code):
            exposed.add(m.group(1))
            seen.add(m.group(1))
        for base in re.findall(r"\"(esup_[a-z_]+)\"", code):
            check(base in seen or base in exposed, f"{path.name}: metric {base} is registered in a way check.py cannot read")
    return exposed


def first(docs):
    check(not by_kind(docs, "RunnerPool"), "RunnerPools rendered before the API serves the kind")
    check(len(by_kind(docs, "CustomResourceDefinition")) == 3, "CRDs on first install")


def clusterwide(docs):
    check(
        not [b for b in by_kind(docs, "RoleBinding") if b["roleRef"]["name"].endswith("-tenant")],
        "per-namespace tenant bindings with clusterWideTenantAccess",
    )
    bound = {b["roleRef"]["name"] for b in by_kind(docs, "ClusterRoleBinding")}
    for c in ("operator", "webhook"):
        check(f"esup-h-esup-runner-{c}-tenant" in bound, f"{c} tenant role not bound cluster-wide")
    tenant_secrets_apart(docs, "esup-test-tenants")


def kind(docs):
    """kind-config/values.yaml: its pools select the labels kind-config/cluster.yaml sets."""
    nodes = [n for n in yaml.safe_load((REPO / "kind-config" / "cluster.yaml").read_text())["nodes"]]
    products = {n.get("labels", {}).get("nvidia.com/gpu.product") for n in nodes} - {None}
    pools = {p["metadata"]["name"]: p["spec"] for p in by_kind(docs, "RunnerPool")}
    check(set(pools) == {"gpu-l4", "gpu-h100", "cpu"}, f"kind pools {sorted(pools)}")
    for name, spec in pools.items():
        for product in spec.get("gpu", {}).get("products", []):
            check(product in products, f"pool {name} selects {product}, which no kind node has")
        for key, value in spec.get("placement", {}).get("nodeSelector", {}).items():
            check(
                any(n.get("labels", {}).get(key) == value for n in nodes),
                f"pool {name}: no kind node labelled {key}={value}",
            )
    check(pools.get("gpu-h100", {}).get("gpu", {}).get("nvenc") is False, "H100 has no NVENC")


def main(scenario, manifest):
    docs = [d for d in yaml.safe_load_all(Path(manifest).read_text()) if d]
    common(docs)
    globals()[scenario](docs)
    for failure in FAILURES:
        print(f"FAIL [{scenario}] {failure}", file=sys.stderr)
    if not FAILURES:
        print(f"ok   [{scenario}] {len(docs)} objects")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
