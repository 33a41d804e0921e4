{{/* Names, labels, images and the experiment config shared by every template. */}}

{{- define "muzero.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "muzero.fullname" -}}
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

{{/* The name of a component's objects: "<fullname>-<component>". Args: (list $ "replay"). */}}
{{- define "muzero.componentName" -}}
{{- $root := index . 0 }}
{{- printf "%s-%s" (include "muzero.fullname" $root | trunc 52 | trimSuffix "-") (index . 1) }}
{{- end }}

{{- define "muzero.selectorLabels" -}}
app.kubernetes.io/name: {{ include "muzero.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "muzero.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "muzero.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: muzero
{{- end }}

{{/* Selector labels of one component (what `muzero status` and the NetworkPolicies select by). Args: (list $ "replay"). */}}
{{- define "muzero.componentSelectorLabels" -}}
{{ include "muzero.selectorLabels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "muzero.componentLabels" -}}
{{ include "muzero.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* The image of a component: its own override, else the chart's (the CUDA tag with gpu.enabled). Args: (list $ .Values.actor). */}}
{{- define "muzero.image" -}}
{{- $root := index . 0 }}
{{- $values := index . 1 }}
{{- $own := $values.image | default dict }}
{{- $tag := $root.Values.image.tag | default $root.Chart.AppVersion }}
{{- if and $values.gpu $values.gpu.enabled }}
{{- $tag = $root.Values.image.gpuTag | default (printf "%s-cuda" $tag) }}
{{- end }}
{{- printf "%s:%s" ($own.repository | default $root.Values.image.repository) ($own.tag | default $tag) }}
{{- end }}

{{- define "muzero.redisSecretName" -}}
{{- .Values.redis.auth.existingSecret | default (printf "%s-redis" (include "muzero.fullname" .)) }}
{{- end }}

{{/* One URL per shard: each StatefulSet pod by its stable name under the headless Service. */}}
{{- define "muzero.redisUrls" -}}
{{- $name := include "muzero.componentName" (list . "redis") }}
{{- $urls := list }}
{{- range $i := until (int .Values.redis.shards) }}
{{- $urls = append $urls (printf "redis://%s-%d.%s.%s.svc.%s:%d/0" $name $i $name $.Release.Namespace $.Values.clusterDomain (int $.Values.redis.port)) }}
{{- end }}
{{- join "," $urls }}
{{- end }}

{{/* host:port of a component's gRPC Service. Args: (list $ "replay" port). */}}
{{- define "muzero.grpcAddr" -}}
{{- printf "%s:%d" (include "muzero.componentName" (list (index . 0) (index . 1))) (int (index . 2)) }}
{{- end }}

{{- define "muzero.metricsUrl" -}}
{{- printf "http://%s:%d/metrics" (include "muzero.componentName" (list (index . 0) (index . 1))) (int (index . 0).Values.metricsPort) }}
{{- end }}

{{/* The experiment config as TOML. Helm reads numbers from values files as floats, so whole
numbers are written as integers: the config's int fields need them, its float fields take them. */}}
{{- define "muzero.experimentToml" -}}
# Rendered by the muzero chart from .Values.experiment.config
{{ include "muzero.toml.table" (dict "path" "" "table" .Values.experiment.config) }}
{{- end }}

{{- define "muzero.toml.table" -}}
{{- $path := .path }}
{{- range $key, $value := .table }}
{{- if not (kindIs "map" $value) }}
{{ $key }} = {{ include "muzero.toml.value" (dict "key" (ternary $key (printf "%s.%s" $path $key) (eq $path "")) "value" $value) }}
{{- end }}
{{- end }}
{{- range $key, $value := .table }}
{{- if kindIs "map" $value }}
{{- $sub := ternary $key (printf "%s.%s" $path $key) (eq $path "") }}

[{{ $sub }}]
{{- include "muzero.toml.table" (dict "path" $sub "table" $value) }}
{{- end }}
{{- end }}
{{- end }}

{{- define "muzero.toml.value" -}}
{{- $v := .value }}
{{- if kindIs "string" $v }}{{ toJson $v }}
{{- else if kindIs "bool" $v }}{{ $v }}
{{- else if kindIs "slice" $v }}[{{ range $i, $item := $v }}{{ if $i }}, {{ end }}{{ include "muzero.toml.value" (dict "key" (printf "%s[%d]" $.key $i) "value" $item) }}{{ end }}]
{{- else if kindIs "float64" $v }}{{ if eq $v (floor $v) }}{{ int64 $v }}{{ else }}{{ $v }}{{ end }}
{{- else if or (kindIs "int" $v) (kindIs "int64" $v) }}{{ $v }}
{{- else }}{{ fail (printf "experiment.config.%s: cannot be written as TOML (%s)" .key (kindOf $v)) }}
{{- end }}
{{- end }}

{{/* MUZERO_CONFIG: the mounted file rendered from experiment.config, else the preset's name. */}}
{{- define "muzero.configSource" -}}
{{- if .Values.experiment.config }}/etc/muzero/experiment.toml{{ else }}{{ required "experiment.preset or experiment.config: give one" .Values.experiment.preset }}{{ end }}
{{- end }}

{{/* MUZERO_SET of a component: the experiment's overrides, then the component's own, then
training.device=cuda for a GPU pod. Args: (list $ .Values.learner). */}}
{{- define "muzero.configSet" -}}
{{- $root := index . 0 }}
{{- $values := index . 1 }}
{{- $overrides := concat ($root.Values.experiment.overrides | default list) ($values.configOverrides | default list) }}
{{- if and $values.gpu $values.gpu.enabled }}{{ $overrides = append $overrides "training.device=cuda" }}{{ end }}
{{- join ";" $overrides }}
{{- end }}

{{- define "muzero.configChecksum" -}}
{{- include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- end }}

{{/* The TLS Secret: the one named, or the one the chart's cert-manager Certificate writes. */}}
{{- define "muzero.tlsSecretName" -}}
{{- if .Values.tls.secretName }}{{ .Values.tls.secretName }}{{ else }}{{ include "muzero.componentName" (list . "tls") }}{{ end }}
{{- end }}

{{- define "muzero.tokensSecretName" -}}
{{- .Values.auth.existingSecret | default (include "muzero.componentName" (list . "tokens")) }}
{{- end }}

{{/* Every DNS name a client may dial a gRPC Service by, for the certificate. */}}
{{- define "muzero.tlsDnsNames" -}}
{{- $names := list }}
{{- range $component := list "replay" "learner" "actor" "reanalyze" }}
{{- $short := include "muzero.componentName" (list $ $component) }}
{{- $names = concat $names (list $short (printf "%s.%s" $short $.Release.Namespace) (printf "%s.%s.svc" $short $.Release.Namespace) (printf "%s.%s.svc.%s" $short $.Release.Namespace $.Values.clusterDomain)) }}
{{- end }}
{{- toYaml (concat $names (.Values.tls.extraDnsNames | default list)) }}
{{- end }}

{{/* Environment of a gRPC client (the services, the test pod): the CA to verify servers by,
the certificate to present (mTLS), the services' token. A YAML list. */}}
{{- define "muzero.grpcClientEnv" -}}
{{- $env := list }}
{{- if .Values.tls.enabled }}
{{- $env = append $env (dict "name" "MUZERO_TLS_CA" "value" "/etc/muzero/tls/ca.crt") }}
{{- if .Values.tls.requireClientCerts }}
{{- $env = concat $env (list
  (dict "name" "MUZERO_TLS_CLIENT_CERT" "value" "/etc/muzero/tls/tls.crt")
  (dict "name" "MUZERO_TLS_CLIENT_KEY" "value" "/etc/muzero/tls/tls.key")) }}
{{- end }}
{{- end }}
{{- if .Values.auth.enabled }}
{{- $env = append $env (dict "name" "MUZERO_TOKEN" "valueFrom" (dict "secretKeyRef" (dict "name" (include "muzero.tokensSecretName" .) "key" "token"))) }}
{{- end }}
{{- toYaml $env }}
{{- end }}

{{/* Environment of a process that serves gRPC and calls it: stream limits, TLS files, tokens. */}}
{{- define "muzero.grpcEnv" -}}
{{- $env := list
  (dict "name" "MUZERO_GRPC_MAX_STREAMS" "value" (toString (int .Values.grpc.maxStreams)))
  (dict "name" "MUZERO_GRPC_UNARY_WORKERS" "value" (toString (int .Values.grpc.unaryWorkers)))
  (dict "name" "MUZERO_GRPC_STREAM_IDLE_S" "value" (toString .Values.grpc.streamIdleSeconds)) }}
{{- if .Values.tls.enabled }}
{{- $env = concat $env (list
  (dict "name" "MUZERO_TLS_CERT" "value" "/etc/muzero/tls/tls.crt")
  (dict "name" "MUZERO_TLS_KEY" "value" "/etc/muzero/tls/tls.key")
  (dict "name" "MUZERO_PROBE_PORT" "value" (toString (int .Values.grpc.probePort)))) }}
{{- if .Values.tls.requireClientCerts }}
{{- $env = append $env (dict "name" "MUZERO_TLS_CLIENT_CA" "value" "/etc/muzero/tls/ca.crt") }}
{{- end }}
{{- end }}
{{- if .Values.auth.enabled }}
{{- $env = append $env (dict "name" "MUZERO_TOKENS_FILE" "value" "/etc/muzero/auth/tokens") }}
{{- end }}
{{- toYaml (concat $env (include "muzero.grpcClientEnv" . | fromYamlArray)) }}
{{- end }}

{{- define "muzero.grpcVolumes" -}}
{{- $volumes := list }}
{{- if .Values.tls.enabled }}
{{- $volumes = append $volumes (dict "name" "tls" "secret" (dict "secretName" (include "muzero.tlsSecretName" .) "defaultMode" 288)) }}
{{- end }}
{{- if .Values.auth.enabled }}
{{- $volumes = append $volumes (dict "name" "auth" "secret" (dict "secretName" (include "muzero.tokensSecretName" .) "defaultMode" 288 "items" (list (dict "key" "tokens" "path" "tokens")))) }}
{{- end }}
{{- toYaml $volumes }}
{{- end }}

{{- define "muzero.grpcMounts" -}}
{{- $mounts := list }}
{{- if .Values.tls.enabled }}
{{- $mounts = append $mounts (dict "name" "tls" "mountPath" "/etc/muzero/tls" "readOnly" true) }}
{{- end }}
{{- if .Values.auth.enabled }}
{{- $mounts = append $mounts (dict "name" "auth" "mountPath" "/etc/muzero/auth" "readOnly" true) }}
{{- end }}
{{- toYaml $mounts }}
{{- end }}
