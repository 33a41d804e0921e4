{{/*
The Deployment every muzero component runs in: one container of the muzero image whose
arguments pick the service (the image's entrypoint is `muzero`), the shared environment,
the experiment ConfigMap, /tmp, the security context and the component's pod settings.

Args (a dict):
  root        the top context ($)
  component   replay | learner | actor | reanalyze | autoscaler
  values      the component's values
  args        container arguments, e.g. (list "serve" "replay")
  replicas    an int, or nil to leave it to someone else (the autoscaler)
  ports       container ports (list of dicts); "metrics" is added
  probe       the probe handler (e.g. a grpc check); startupProbe only if values.startupProbe
  env         the component's own environment (list of EnvVar dicts)
  volumes, volumeMounts   the component's own (lists)
  strategy    the Deployment strategy (dict) or nil
  serviceAccountName      or nil: no service account token is mounted
  withConfig  whether the service reads the experiment config
*/}}
{{- define "muzero.deployment" -}}
{{- $root := .root }}
{{- $values := .values }}
{{- $name := include "muzero.componentName" (list $root .component) }}
{{- $gpu := and $values.gpu $values.gpu.enabled }}
{{- $env := list }}
{{- $experiment := include "muzero.componentName" (list $root "experiment") }}
{{- if .withConfig }}
{{- $env = append $env (dict "name" "MUZERO_CONFIG" "valueFrom" (dict "configMapKeyRef" (dict "name" $experiment "key" "config"))) }}
{{- $env = append $env (dict "name" "MUZERO_SET" "valueFrom" (dict "configMapKeyRef" (dict "name" $experiment "key" (printf "set-%s" .component)))) }}
{{- $env = append $env (dict "name" "MUZERO_HOST" "value" "0.0.0.0") }}
{{- $env = append $env (dict "name" "MUZERO_LOG_LEVEL" "value" $root.Values.logLevel) }}
{{- if $values.torchThreads }}
{{- $env = append $env (dict "name" "MUZERO_TORCH_THREADS" "value" (toString $values.torchThreads)) }}
{{- end }}
{{- end }}
{{- $env = append $env (dict "name" "MUZERO_METRICS_PORT" "value" (toString $root.Values.metricsPort)) }}
{{- $probe := deepCopy .probe }}
{{- $ports := .ports | default list }}
{{- if .withConfig }}
{{- $env = concat $env (include "muzero.grpcEnv" $root | fromYamlArray) }}
{{- if and $root.Values.tls.enabled $probe.grpc }}
{{- /* Kubernetes' gRPC probes speak neither TLS nor tokens: they check the plaintext health-only port. */}}
{{- $_ := set $probe "grpc" (dict "port" (int $root.Values.grpc.probePort) "service" $probe.grpc.service) }}
{{- $ports = append $ports (dict "name" "probe" "containerPort" (int $root.Values.grpc.probePort) "protocol" "TCP") }}
{{- end }}
{{- end }}
{{- $env = concat $env (.env | default list) ($values.extraEnv | default list) }}
{{- $ports = concat $ports (list (dict "name" "metrics" "containerPort" (int $root.Values.metricsPort) "protocol" "TCP")) }}
{{- $volumes := list (dict "name" "tmp" "emptyDir" (dict "sizeLimit" $root.Values.tmpVolume.sizeLimit)) }}
{{- $mounts := list (dict "name" "tmp" "mountPath" "/tmp") }}
{{- if .withConfig }}
{{- $volumes = append $volumes (dict "name" "experiment" "configMap" (dict "name" $experiment)) }}
{{- $mounts = append $mounts (dict "name" "experiment" "mountPath" "/etc/muzero" "readOnly" true) }}
{{- end }}
{{- if .withConfig }}
{{- $volumes = concat $volumes (include "muzero.grpcVolumes" $root | fromYamlArray) }}
{{- $mounts = concat $mounts (include "muzero.grpcMounts" $root | fromYamlArray) }}
{{- end }}
{{- $volumes = concat $volumes (.volumes | default list) ($values.extraVolumes | default list) }}
{{- $mounts = concat $mounts (.volumeMounts | default list) ($values.extraVolumeMounts | default list) }}
{{- $resources := deepCopy ($values.resources | default dict) }}
{{- if $gpu }}
{{- $limits := $resources.limits | default dict }}
{{- $_ := set $limits $values.gpu.resourceName (int $values.gpu.count) }}
{{- $_ := set $resources "limits" $limits }}
{{- end }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "muzero.componentLabels" (list $root .component) | nindent 4 }}
spec:
  {{- if not (kindIs "invalid" .replicas) }}
  replicas: {{ .replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  {{- with .strategy }}
  strategy:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "muzero.componentSelectorLabels" (list $root .component) | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "muzero.componentLabels" (list $root .component) | nindent 8 }}
        {{- with $values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        {{- if .withConfig }}
        checksum/config: {{ include "muzero.configChecksum" $root }}
        {{- end }}
        {{- with $values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      {{- if .serviceAccountName }}
      serviceAccountName: {{ .serviceAccountName }}
      {{- else }}
      automountServiceAccountToken: false
      {{- end }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      terminationGracePeriodSeconds: {{ $values.terminationGracePeriodSeconds }}
      {{- with $values.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      {{- with $values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.topologySpreadConstraints }}
      topologySpreadConstraints:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: {{ .component }}
          image: {{ include "muzero.image" (list $root $values) }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          args:
            {{- toYaml .args | nindent 12 }}
          ports:
            {{- toYaml $ports | nindent 12 }}
          env:
            {{- toYaml $env | nindent 12 }}
          {{- with $values.extraEnvFrom }}
          envFrom:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- if $values.startupProbe }}
          startupProbe:
            {{- toYaml (merge (deepCopy $probe) $values.startupProbe) | nindent 12 }}
          {{- end }}
          readinessProbe:
            {{- toYaml (merge (deepCopy $probe) $values.readinessProbe) | nindent 12 }}
          livenessProbe:
            {{- toYaml (merge (deepCopy $probe) $values.livenessProbe) | nindent 12 }}
          resources:
            {{- toYaml $resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.containerSecurityContext | nindent 12 }}
          volumeMounts:
            {{- toYaml $mounts | nindent 12 }}
      volumes:
        {{- toYaml $volumes | nindent 8 }}
{{- end }}

{{/* A Service in front of a component: its gRPC port (if any) and metrics. Args: dict root, component, values, grpcPort, headless. */}}
{{- define "muzero.service" -}}
{{- $root := .root }}
{{- $service := (.values.service | default dict) }}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "muzero.componentName" (list $root .component) }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "muzero.componentLabels" (list $root .component) | nindent 4 }}
  {{- with $service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  {{- if .headless }}
  clusterIP: None
  {{- else }}
  type: {{ $service.type | default "ClusterIP" }}
  {{- end }}
  selector:
    {{- include "muzero.componentSelectorLabels" (list $root .component) | nindent 4 }}
  ports:
    {{- if .grpcPort }}
    - name: grpc
      port: {{ .grpcPort }}
      targetPort: grpc
      protocol: TCP
      appProtocol: grpc
    {{- end }}
    - name: metrics
      port: {{ $root.Values.metricsPort }}
      targetPort: metrics
      protocol: TCP
      appProtocol: http
{{- end }}
