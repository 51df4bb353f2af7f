#!/usr/bin/env python3
"""Checks one rendering of the chart. Usage: check.py SCENARIO MANIFEST.yaml

Scenarios (tests/run renders each with the values files of the same name):
  defaults     chart defaults, on a cluster that serves RunnerPool
  full         tenants, Ingress, S3, monitoring, NetworkPolicy peers, 2 webhook replicas
  first        defaults on a cluster that does not serve RunnerPool yet
  clusterwide  rbac.clusterWideTenantAccess
  kind         kind-config/values.yaml against kind-config/cluster.yaml
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
    for route in by_kind(docs, "HTTPRoute"):
        for rule in route["spec"].get("rules", []):
            for ref in rule.get("backendRefs", []):
                check(ref.get("name") == WEBHOOK, f"HTTPRoute routes {ref}: only the API Service may be routed")
    for monitor in by_kind(docs, "ServiceMonitor"):
        if monitor["metadata"]["name"] == WEBHOOK:
            labels = monitor["spec"]["selector"]["matchLabels"]
            check(
                all(metrics.get("metadata", {}).get("labels", {}).get(k) == v for k, v in labels.items())
                and any(services.get(WEBHOOK, {}).get("metadata", {}).get("labels", {}).get(k) != v for k, v in labels.items()),
                f"webhook ServiceMonitor selects {labels}: the metrics Service, not the API's",
            )
            check([e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"], "webhook ServiceMonitor scrapes the metrics port")


# ---- scenarios -------------------------------------------------------------------------------


def defaults(docs):
    operator = one(docs, "Deployment", "-operator")
    spec = operator["spec"]
    check(spec["replicas"] == 2, "operator replicas != 2")
    container = spec["template"]["spec"]["containers"][0]
    env = env_of(container)
    check(env.get("ESUP_RUNNER_IMAGE") == "esup.local/esup-runner:dev", f"runner image {env.get('ESUP_RUNNER_IMAGE')}")
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


def dashboard(configmap):
    """The dashboard parses and queries only metrics that the code defines."""
    text = configmap.get("data", {}).get("esup-runner.json", "")
    board = json.loads(text) if text else {}
    check(board.get("panels"), "dashboard has no panels")
    defined = set()
    for source in ("operator/src/metrics.rs", "webhook/src/metrics.rs"):
        defined |= set(re.findall(r'"(esup_[a-z_]+)"', (REPO / source).read_text()))
    used = set(re.findall(r"\b(esup_[a-z_]+)", text))
    suffixes = ("_bucket", "_total", "_seconds", "_bytes")
    for metric in sorted(used):
        base = metric
        while base not in defined and base.endswith(suffixes):
            base = next(base[: -len(s)] for s in suffixes if base.endswith(s))
        check(base in defined, f"dashboard uses {metric}, not defined in operator/webhook metrics.rs")


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
