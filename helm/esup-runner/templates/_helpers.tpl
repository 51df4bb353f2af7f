{{/* Names, labels and shared fragments. */}}

{{- define "esup.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "esup.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "esup.operator.name" -}}{{ include "esup.fullname" . | trunc 54 | trimSuffix "-" }}-operator{{- end -}}
{{- define "esup.webhook.name" -}}{{ include "esup.fullname" . | trunc 55 | trimSuffix "-" }}-webhook{{- end -}}

{{/* Labels of every object: the chart's, then `commonLabels` (which cannot replace them). */}}
{{- define "esup.labels" -}}
{{- $own := dict
  "helm.sh/chart" (printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_")
  "app.kubernetes.io/part-of" "esup-runner"
  "app.kubernetes.io/instance" .Release.Name
  "app.kubernetes.io/managed-by" .Release.Service
  "app.kubernetes.io/version" .Chart.AppVersion -}}
{{- toYaml (merge $own (deepCopy (default (dict) .Values.commonLabels))) -}}
{{- end -}}

{{/* Selector labels of one component: (dict "ctx" $ "component" "operator") */}}
{{- define "esup.selector" -}}
app.kubernetes.io/name: {{ include "esup.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "esup.componentLabels" -}}
{{- toYaml (merge (include "esup.selector" . | fromYaml) (include "esup.labels" .ctx | fromYaml)) -}}
{{- end -}}

{{/* Labels of a component's pods: its labels, then `<component>.podLabels` (which cannot
replace them: the selector depends on them). (dict "ctx" $ "component" "operator") */}}
{{- define "esup.podLabels" -}}
{{- $extra := deepCopy (default (dict) (index .ctx.Values .component).podLabels) -}}
{{- toYaml (merge (include "esup.componentLabels" . | fromYaml) $extra) -}}
{{- end -}}

{{/* An image reference: (dict "ctx" $ "image" .Values.operator.image).
`imageRegistry` replaces the registry part of the repository (its first path element when that
names a host: it holds a dot or a colon, or is localhost), or prefixes a repository that has
none. A digest wins over the tag; an empty tag is the chart's appVersion. */}}
{{- define "esup.image" -}}
{{- $repo := .image.repository -}}
{{- with .ctx.Values.imageRegistry -}}
{{- $parts := splitList "/" $repo -}}
{{- $first := first $parts -}}
{{- if and (gt (len $parts) 1) (or (contains "." $first) (contains ":" $first) (eq $first "localhost")) -}}
{{- $repo = join "/" (rest $parts) -}}
{{- end -}}
{{- $repo = printf "%s/%s" (trimSuffix "/" .) $repo -}}
{{- end -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $repo .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default .ctx.Chart.AppVersion .image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The tenants with their defaults filled in. */}}
{{- define "esup.tenants" -}}
{{- $out := list -}}
{{- range .Values.tenants -}}
{{- /* Not sprig's merge: it treats false as unset and would turn createNamespace back on. */ -}}
{{- $t := deepCopy . -}}
{{- $defaults := dict "namespace" .name "createNamespace" true "tokens" (dict) "existingSecret" "" "adminGroups" (list) -}}
{{- range $k, $v := $defaults -}}
{{- if not (hasKey $t $k) -}}{{- $_ := set $t $k $v -}}{{- end -}}
{{- end -}}
{{- $out = append $out $t -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* Every namespace where tasks (and so Jobs, Secrets, claims, Events) live. */}}
{{- define "esup.tenantNamespaces" -}}
{{- $ns := list -}}
{{- range (include "esup.tenants" . | fromJsonArray) -}}
{{- $ns = append $ns .namespace -}}
{{- end -}}
{{- $ns = concat $ns .Values.rbac.extraTenantNamespaces | uniq | sortAlpha -}}
{{- toJson $ns -}}
{{- end -}}

{{/* Namespace of the tenant token Secrets (docs/webhook.md, "Tenants and tokens"). */}}
{{- define "esup.tenantSecretsNamespace" -}}
{{- default (printf "%s-tenants" .Release.Namespace | trunc 63 | trimSuffix "-") .Values.tenantSecrets.namespace -}}
{{- end -}}

{{/* The tenant token `helm test` sends: {"tenant", "secret", "key"} of `tests.tenant`, else of
the first tenant given with inline tokens; {} when there is none. */}}
{{- define "esup.testToken" -}}
{{- $found := dict -}}
{{- $want := .Values.tests.tenant -}}
{{- range (include "esup.tenants" . | fromJsonArray) -}}
{{- if and (not $found) (or (eq .name $want) (and (not $want) .tokens)) -}}
{{- $key := $.Values.tests.tokenKey -}}
{{- if not $key -}}
{{- $key = "token" -}}
{{- if and .tokens (not (hasKey .tokens "token")) }}{{ $key = first (sortAlpha (keys .tokens)) }}{{ end -}}
{{- end -}}
{{- $secret := default (printf "%s-tenant-%s" (include "esup.fullname" $) .name) .existingSecret -}}
{{- $found = dict "tenant" .name "secret" $secret "key" $key -}}
{{- end -}}
{{- end -}}
{{- if and $want (not $found) -}}
{{- fail (printf "tests.tenant: no tenant named %s in tenants" $want) -}}
{{- end -}}
{{- toJson $found -}}
{{- end -}}

{{/* The webhook's API Service, as pods of this cluster reach it. */}}
{{- define "esup.webhook.serviceUrl" -}}
{{- printf "http://%s.%s.svc:%v" (include "esup.webhook.name" .) .Release.Namespace .Values.webhook.service.port -}}
{{- end -}}

{{- define "esup.webhook.url" -}}
{{- if .Values.webhook.callbackBaseUrl -}}
{{- .Values.webhook.callbackBaseUrl -}}
{{- else -}}
{{- include "esup.webhook.serviceUrl" . -}}
{{- end -}}
{{- end -}}

{{- define "esup.podSecurityLabels" -}}
pod-security.kubernetes.io/enforce: {{ .Values.podSecurity.level }}
pod-security.kubernetes.io/warn: {{ .Values.podSecurity.level }}
pod-security.kubernetes.io/audit: {{ .Values.podSecurity.level }}
{{- end -}}

{{/* Binds a "<component>-tenant" ClusterRole in each tenant namespace, or cluster-wide. */}}
{{- define "esup.tenantBindings" -}}
{{- $ctx := .ctx -}}
{{- if $ctx.Values.rbac.clusterWideTenantAccess }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {{ .name }}
  labels:
    {{- include "esup.componentLabels" (dict "ctx" $ctx "component" .component) | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: {{ .name }}
subjects:
  - kind: ServiceAccount
    name: {{ .sa }}
    namespace: {{ $ctx.Release.Namespace }}
{{- else }}
{{- range $ns := (include "esup.tenantNamespaces" $ctx | fromJsonArray) }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ $.name }}
  namespace: {{ $ns }}
  labels:
    {{- include "esup.componentLabels" (dict "ctx" $ctx "component" $.component) | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: {{ $.name }}
subjects:
  - kind: ServiceAccount
    name: {{ $.sa }}
    namespace: {{ $ctx.Release.Namespace }}
{{- end }}
{{- end }}
{{- end -}}


{{/* A component's topologySpreadConstraints; an item without labelSelector spreads the
component's own pods. (dict "ctx" $ "component" "operator") */}}
{{- define "esup.topologySpread" -}}
{{- $out := list -}}
{{- range (index .ctx.Values .component).topologySpreadConstraints -}}
{{- $c := deepCopy . -}}
{{- if not (hasKey $c "labelSelector") -}}
{{- $_ := set $c "labelSelector" (dict "matchLabels" (include "esup.selector" $ | fromYaml)) -}}
{{- end -}}
{{- $out = append $out $c -}}
{{- end -}}
{{- with $out }}{{ toYaml . }}{{ end -}}
{{- end -}}

{{/* Fails when `<component>.extraEnv` names a variable the chart sets:
(dict "env" LIST "extra" LIST "where" "operator.extraEnv") */}}
{{- define "esup.checkExtraEnv" -}}
{{- $own := list -}}
{{- range .env }}{{ $own = append $own .name }}{{ end -}}
{{- range .extra -}}
{{- if has .name $own -}}
{{- fail (printf "%s: %s is set by the chart; use the chart's value for it" $.where .name) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Whether an image reference names a registry host (its first path element holds a dot or
a colon, or is localhost) other than the local builds' esup.local. */}}
{{- define "esup.publishedImage" -}}
{{- $parts := splitList "/" . -}}
{{- $first := first $parts -}}
{{- if and (gt (len $parts) 1) (ne $first "esup.local") (or (contains "." $first) (contains ":" $first) (eq $first "localhost")) -}}true{{- end -}}
{{- end -}}
