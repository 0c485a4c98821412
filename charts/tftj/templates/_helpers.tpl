{{- define "tftj.name" -}}tftj-operator{{- end -}}
{{- define "tftj.fullname" -}}{{ .Release.Name | trunc 40 | trimSuffix "-" }}-operator{{- end -}}
{{- define "tftj.webhookService" -}}{{ include "tftj.fullname" . }}-webhook{{- end -}}
{{- define "tftj.certSecret" -}}{{ .Values.webhook.existingSecret | default (printf "%s-webhook-cert" (include "tftj.fullname" .)) }}{{- end -}}
{{- define "tftj.webhookHost" -}}{{ include "tftj.webhookService" . }}.{{ .Release.Namespace }}.svc{{- end -}}
{{- define "tftj.labels" -}}
app.kubernetes.io/name: {{ include "tftj.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}
{{- define "tftj.selector" -}}
app.kubernetes.io/name: {{ include "tftj.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
