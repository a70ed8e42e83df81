{{- define "intentgate.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "intentgate.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "intentgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "intentgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "intentgate.labels" -}}
{{ include "intentgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The Secret the chart creates from `.value` fields. */}}
{{- define "intentgate.secretName" -}}
{{- printf "%s-secrets" (include "intentgate.fullname" .) -}}
{{- end -}}

{{/* Secret name for one secret value: its existingSecret, else the chart's Secret. */}}
{{- define "intentgate.secretFor" -}}
{{- if .value.existingSecret -}}
{{- .value.existingSecret -}}
{{- else -}}
{{- include "intentgate.secretName" .root -}}
{{- end -}}
{{- end -}}
