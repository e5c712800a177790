{{/* Names and labels shared by every template. */}}

{{- define "ponder.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ponder.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ponder.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ponder.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ponder.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "ponder.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: server
{{- end }}

{{- define "ponder.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ponder.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image: `-gpu` or `-cpu` after the appVersion unless a tag is given. */}}
{{- define "ponder.image" -}}
{{- $flavor := ternary "gpu" "cpu" (gt (int .Values.gpu.count) 0) }}
{{- $tag := default (printf "%s-%s" .Chart.AppVersion $flavor) .Values.image.tag }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}

{{- define "ponder.apiKeySecretName" -}}
{{- default (printf "%s-api-key" (include "ponder.fullname" .)) .Values.apiKey.existingSecret }}
{{- end }}

{{- define "ponder.policyConfigMapName" -}}
{{- default (printf "%s-policy" (include "ponder.fullname" .)) .Values.policyTable.existingConfigMap }}
{{- end }}

{{/* Where the policy ConfigMap is mounted: a folder, never a subPath, so updates reach the pod. */}}
{{- define "ponder.policyDir" -}}/etc/ponder/policy{{- end }}
