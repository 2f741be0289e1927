{{/*
Chart name, truncated to the 63 characters a DNS label allows.
*/}}
{{- define "modstream.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name. A release already named after the chart is not
repeated (release "modstream" gives "modstream", not "modstream-modstream").
*/}}
{{- define "modstream.fullname" -}}
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

{{- define "modstream.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "modstream.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modstream.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "modstream.labels" -}}
helm.sh/chart: {{ include "modstream.chart" . }}
{{ include "modstream.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: worker
app.kubernetes.io/part-of: modstream
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "modstream.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "modstream.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image reference. An explicit tag wins verbatim; otherwise appVersion, with
"-gpu" for the CUDA flavour so one repository serves both.
*/}}
{{- define "modstream.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if and (not .Values.image.tag) .Values.gpu.enabled -}}
{{- $tag = printf "%s-gpu" $tag -}}
{{- end -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end }}

{{/*
Execution providers: explicit values win; GPU pods try CUDA and fall back to CPU.
*/}}
{{- define "modstream.providers" -}}
{{- if .Values.worker.providers -}}
{{- join "," .Values.worker.providers -}}
{{- else if .Values.gpu.enabled -}}
CUDAExecutionProvider,CPUExecutionProvider
{{- else -}}
CPUExecutionProvider
{{- end -}}
{{- end }}

{{- define "modstream.saslEnabled" -}}
{{- if hasPrefix "SASL_" .Values.kafka.securityProtocol }}true{{ end -}}
{{- end }}

{{- define "modstream.tlsEnabled" -}}
{{- if has .Values.kafka.securityProtocol (list "SSL" "SASL_SSL") }}true{{ end -}}
{{- end }}

{{/* Where the Kafka TLS Secret is mounted. */}}
{{- define "modstream.tlsDir" -}}/etc/modstream/kafka-tls{{- end }}

{{/* Where the policy ConfigMap is mounted. */}}
{{- define "modstream.policyDir" -}}/etc/modstream/policy{{- end }}

{{/*
Cross-field checks JSON Schema cannot express. Each message names the
values to change. Included from the Deployment so every render runs them.
*/}}
{{- define "modstream.validate" -}}
{{- $a := .Values.autoscaling -}}
{{- if and (ne $a.mode "none") (gt (int $a.maxReplicas) (int .Values.kafka.partitions)) -}}
{{- fail (printf "autoscaling.maxReplicas (%d) must not exceed kafka.partitions (%d): workers beyond the input topic's partition count get no partition and sit idle. Lower autoscaling.maxReplicas or raise kafka.partitions (after adding partitions to the topic)." (int $a.maxReplicas) (int .Values.kafka.partitions)) -}}
{{- end -}}
{{- if and (ne $a.mode "none") (gt (int $a.minReplicas) (int $a.maxReplicas)) -}}
{{- fail (printf "autoscaling.minReplicas (%d) must not exceed autoscaling.maxReplicas (%d)." (int $a.minReplicas) (int $a.maxReplicas)) -}}
{{- end -}}
{{- if and (eq $a.mode "hpa") (lt (int $a.minReplicas) 1) -}}
{{- fail "autoscaling.minReplicas must be at least 1 with autoscaling.mode=hpa (scale to zero needs autoscaling.mode=keda)." -}}
{{- end -}}
{{- if and (eq $a.mode "hpa") (kindIs "invalid" $a.hpa.targetCPUUtilizationPercentage) (not $a.hpa.customMetrics) -}}
{{- fail "autoscaling.mode=hpa needs a metric: set autoscaling.hpa.targetCPUUtilizationPercentage or autoscaling.hpa.customMetrics." -}}
{{- end -}}
{{- if and (include "modstream.saslEnabled" .) (not .Values.kafka.sasl.existingSecret) -}}
{{- fail (printf "kafka.securityProtocol=%s needs kafka.sasl.existingSecret: the name of an existing Secret holding the SASL password (key kafka.sasl.passwordKey)." .Values.kafka.securityProtocol) -}}
{{- end -}}
{{- if and (include "modstream.saslEnabled" .) (not .Values.kafka.sasl.username) (not .Values.kafka.sasl.usernameKey) -}}
{{- fail "SASL needs a username: set kafka.sasl.username, or kafka.sasl.usernameKey to read it from kafka.sasl.existingSecret." -}}
{{- end -}}
{{- if and .Values.kafka.tls.existingSecret (not (include "modstream.tlsEnabled" .)) -}}
{{- fail (printf "kafka.tls.existingSecret is set but kafka.securityProtocol=%s does not use TLS: choose SSL or SASL_SSL." .Values.kafka.securityProtocol) -}}
{{- end -}}
{{- if ne (empty .Values.kafka.tls.certKey) (empty .Values.kafka.tls.keyKey) -}}
{{- fail "kafka.tls.certKey and kafka.tls.keyKey go together: mutual TLS needs both the client certificate and its key." -}}
{{- end -}}
{{- end }}
