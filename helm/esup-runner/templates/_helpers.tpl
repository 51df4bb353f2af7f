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

{{- define "esup.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/part-of: esup-runner
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{/* Selector labels of one component: (dict "ctx" $ "component" "operator") */}}
{{- define "esup.selector" -}}
app.kubernetes.io/name: {{ include "esup.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "esup.componentLabels" -}}
{{ include "esup.labels" .ctx }}
{{ include "esup.selector" . }}
{{- end -}}

{{- define "esup.image" -}}
{{- printf "%s:%s" .image.repository (default .ctx.Chart.AppVersion .image.tag) -}}
{{- end -}}

{{/* The tenants with their defaults filled in. */}}
{{- define "esup.tenants" -}}
{{- $out := list -}}
{{- range .Values.tenants -}}
{{- /* Not sprig's merge: it treats false as unset and would turn createNamespace back on. */ -}}
{{- $t := deepCopy . -}}
{{- $defaults := dict "namespace" .name "createNamespace" true "tokens" (dict) "existingSecret" "" -}}
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

{{- define "esup.webhook.url" -}}
{{- if .Values.webhook.callbackBaseUrl -}}
{{- .Values.webhook.callbackBaseUrl -}}
{{- else -}}
{{- printf "http://%s.%s.svc:%v" (include "esup.webhook.name" .) .Release.Namespace .Values.webhook.service.port -}}
{{- end -}}
{{- end -}}

{{/* Restricted Pod Security: pod level. */}}
{{- define "esup.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Restricted Pod Security: container level. */}}
{{- define "esup.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
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
