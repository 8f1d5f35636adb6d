{{/*
Names, labels and the pieces every pod shares. Objects are named
<release>-<component>: the Ingress (from routes.yaml) reaches <release>-<service>.
*/}}

{{- define "studio.name" -}}
{{ .Release.Name | trunc 40 | trimSuffix "-" }}
{{- end }}

{{/* The route table: services with their ports, and the routes. */}}
{{- define "studio.routes" -}}
{{ .Files.Get "routes.yaml" }}
{{- end }}

{{- define "studio.labels" -}}
app.kubernetes.io/name: studio
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: studio-anime
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{/* Selector labels of one component: include "studio.selector" (list $ "catalog") */}}
{{- define "studio.selector" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: studio
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/*
A NetworkPolicy peer from {namespaceSelector, podSelector} values; a selector set
to null is left out (no namespaceSelector: the release's own namespace).
include "studio.networkPeer" (list "networkPolicy.gateway" $np.gateway)
*/}}
{{- define "studio.networkPeer" -}}
{{- $what := index . 0 -}}
{{- $values := index . 1 | default dict -}}
{{- $peer := dict -}}
{{- with $values.namespaceSelector }}{{ $_ := set $peer "namespaceSelector" . }}{{ end -}}
{{- with $values.podSelector }}{{ $_ := set $peer "podSelector" . }}{{ end -}}
{{- if not $peer }}{{ fail (printf "%s needs a podSelector or a namespaceSelector" $what) }}{{ end -}}
{{- toYaml $peer -}}
{{- end }}

{{/*
The edge proxy in front of the APIs, the player and the HLS edge, as a
NetworkPolicy peer: the Gateway's data plane (networkPolicy.gateway) for
ingress.kind gateway, the Ingress controller (networkPolicy.ingressController)
for ingress.kind ingress.
*/}}
{{- define "studio.edgePeer" -}}
{{- $np := .Values.networkPolicy -}}
{{- $gateway := $np.gateway | default dict -}}
{{- if and (eq .Values.ingress.kind "gateway") (or $gateway.namespaceSelector $gateway.podSelector) -}}
{{ include "studio.networkPeer" (list "networkPolicy.gateway" $gateway) }}
{{- else if eq .Values.ingress.kind "gateway" -}}
{{- /* Envoy Gateway's proxies, in its controller's namespace. Defaults here rather
than in values.yaml: selectors given in values replace them instead of merging. */}}
namespaceSelector:
  matchLabels:
    kubernetes.io/metadata.name: envoy-gateway-system
podSelector:
  matchLabels:
    app.kubernetes.io/name: envoy
    app.kubernetes.io/component: proxy
    app.kubernetes.io/managed-by: envoy-gateway
{{- else -}}
{{ include "studio.networkPeer" (list "networkPolicy.ingressController" $np.ingressController) }}
{{- end -}}
{{- end }}

{{/*
A component's image: <image.registry>/<image.repository>/studio-<name>:<tag>[@<digest>]
(no registry: <image.repository>/studio-<name>). The tag defaults to the chart's
appVersion; image.digests.<name> pins the exact image. A component's own
image.repository/tag/digest wins. include "studio.image" (list $ "catalog" $override)
*/}}
{{- define "studio.image" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- $override := index . 2 | default dict -}}
{{- $i := $root.Values.image -}}
{{- $prefix := trimSuffix "/" (join "/" (compact (list $i.registry $i.repository))) -}}
{{- $repository := $override.repository | default (printf "%s/studio-%s" $prefix $name) -}}
{{- $tag := $override.tag | default $i.tag | default $root.Chart.AppVersion -}}
{{- $digest := $override.digest | default (index ($i.digests | default dict) $name) -}}
{{- printf "%s:%s" $repository (toString $tag) -}}
{{- with $digest }}@{{ . }}{{ end -}}
{{- end }}

{{- define "studio.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "studio.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end }}

{{/* A backing server's security context: its own user id, read-only root. */}}
{{- define "studio.backendSecurityContext" -}}
pod:
  runAsNonRoot: true
  runAsUser: {{ . }}
  runAsGroup: {{ . }}
  fsGroup: {{ . }}
  seccompProfile:
    type: RuntimeDefault
container:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: ["ALL"]
{{- end }}

{{- define "studio.natsUrl" -}}
{{- if .Values.nats.enabled -}}
nats://{{ include "studio.name" . }}-nats:4222
{{- else -}}
{{ required "nats.url is required when nats.enabled is false" .Values.nats.url }}
{{- end }}
{{- end }}

{{/*
The settings every service shares (STUDIO_*), as a map: the ConfigMap holds
them, and the migration Jobs (helm hooks, which may run before the ConfigMap
exists) get the same values inline. Never a credential: those are secretEnv.
*/}}
{{- define "studio.config" -}}
{{- $name := include "studio.name" . -}}
{{- $identityPort := 8102 -}}
{{- $table := include "studio.routes" . | fromYaml -}}
{{- with $table.services.identity }}{{ $identityPort = .port }}{{ end -}}
{{- $identity := printf "http://%s-identity:%v" $name $identityPort -}}
STUDIO_ENVIRONMENT: {{ .Values.environment | quote }}
STUDIO_LOG_LEVEL: {{ .Values.logLevel | quote }}
STUDIO_LOG_JSON: "true"
STUDIO_NATS_URL: {{ include "studio.natsUrl" . | quote }}
{{- if and .Values.nats.enabled (not (hasKey .Values.config "STUDIO_NATS_STREAM_REPLICAS")) }}
STUDIO_NATS_STREAM_REPLICAS: {{ .Values.nats.streamReplicas | quote }}
{{- end }}
STUDIO_S3_BUCKET: {{ .Values.s3.bucket | quote }}
STUDIO_S3_REGION: {{ .Values.s3.region | quote }}
{{- if .Values.s3.endpointUrl }}
STUDIO_S3_ENDPOINT_URL: {{ .Values.s3.endpointUrl | quote }}
{{- else if .Values.minio.enabled }}
{{- /* By its full name: the HLS edge's nginx fetches the URLs media presigns for it. */}}
STUDIO_S3_ENDPOINT_URL: {{ printf "http://%s-minio.%s.svc.%s:9000" $name .Release.Namespace .Values.clusterDomain | quote }}
{{- end }}
{{- if .Values.s3.publicEndpointUrl }}
STUDIO_S3_PUBLIC_ENDPOINT_URL: {{ .Values.s3.publicEndpointUrl | quote }}
{{- end }}
{{- if .Values.redis.enabled }}
STUDIO_REDIS_URL: {{ printf "redis://%s-redis:6379/0" $name | quote }}
{{- else if .Values.redis.url }}
STUDIO_REDIS_URL: {{ .Values.redis.url | quote }}
{{- end }}
STUDIO_JWKS_URL: {{ .Values.auth.jwksUrl | default (printf "%s/.well-known/jwks.json" $identity) | quote }}
STUDIO_JWT_ISSUER: {{ .Values.auth.issuer | default $identity | quote }}
{{- if and .Values.auth.audience (not (hasKey .Values.config "STUDIO_JWT_AUDIENCE")) }}
STUDIO_JWT_AUDIENCE: {{ .Values.auth.audience | quote }}
{{- end }}
{{- if and .Values.ingress.enabled .Values.ingress.trustedProxies (not (hasKey .Values.config "STUDIO_TRUSTED_PROXIES")) }}
STUDIO_TRUSTED_PROXIES: {{ join "," .Values.ingress.trustedProxies | quote }}
{{- end }}
{{- if and .Values.ingress.enabled (not (hasKey .Values.config "MEDIA_PUBLIC_BASE_URL")) }}
{{- /* Playback URLs name the configured host, never a request's Host header. */}}
MEDIA_PUBLIC_BASE_URL: {{ printf "%s://%s" (ternary "https" "http" (not (empty .Values.ingress.tlsSecret))) .Values.ingress.host | quote }}
{{- end }}
{{- range $key, $value := .Values.config }}
{{ $key }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/* env entries for secretEnv maps: NAME: {secret, key, optional} */}}
{{- define "studio.secretEnv" -}}
{{- range $env, $ref := . }}
- name: {{ $env }}
  valueFrom:
    secretKeyRef:
      name: {{ $ref.secret }}
      key: {{ $ref.key }}
      {{- if $ref.optional }}
      optional: true
      {{- end }}
{{- end }}
{{- end }}

{{/* env entries for a plain map of non-secret settings */}}
{{- define "studio.plainEnv" -}}
{{- range $env, $value := . }}
- name: {{ $env }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/* A service's values: serviceDefaults deep-merged with services.<name>. */}}
{{- define "studio.serviceValues" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- $own := index $root.Values.services $name | default dict -}}
{{- toYaml (mergeOverwrite (deepCopy $root.Values.serviceDefaults) (deepCopy $own)) -}}
{{- end }}

{{/*
Migrations run before the new code: pre-install/pre-upgrade. With the chart's
own Postgres the first install has no database before its resources exist, so
the first migration runs post-install (the API pods wait on readiness only for
reachability, and the Job retries until Postgres answers).
*/}}
{{- define "studio.migrationHook" -}}
{{- if .Values.postgres.enabled -}}
post-install,pre-upgrade
{{- else -}}
pre-install,pre-upgrade
{{- end }}
{{- end }}

{{/* The player image's port and config directory (deploy/player/nginx_conf.py). */}}
{{- define "studio.playerPort" -}}
8080
{{- end }}

{{- define "studio.playerConfigDir" -}}
/etc/studio/player
{{- end }}

{{/*
The Clerk Frontend API origin a publishable key names, pk_test_<base64("host$")>,
decoded as studio_devstack.gateway.clerk_frontend_host does: the player's CSP
allows it. include "studio.clerkOrigin" $key
*/}}
{{- define "studio.clerkOrigin" -}}
{{- $encoded := regexReplaceAll "^pk_(test|live)_" . "" -}}
{{- $padding := repeat (int (mod (sub 4 (mod (len $encoded) 4)) 4)) "=" -}}
{{- $decoded := b64dec (printf "%s%s" $encoded $padding) -}}
{{- $host := trimSuffix "$" $decoded | trim | lower -}}
{{- if not (and (regexMatch "^pk_(test|live)_" .) (hasSuffix "$" $decoded) (regexMatch "^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$" $host)) -}}
{{- fail "player.clerkPublishableKey does not name a Clerk Frontend API host (pk_test_<base64 of host$>)" -}}
{{- end -}}
https://{{ $host }}
{{- end }}

{{/* The in-cluster HLS edge's port (deploy/helm/hls_edge_conf.py LISTEN_PORT). */}}
{{- define "studio.hlsEdgePort" -}}
8080
{{- end }}

{{/* The route table's /hls/ prefix route, as YAML (the edge takes it in front of its service). */}}
{{- define "studio.hlsRoute" -}}
{{- $table := include "studio.routes" . | fromYaml -}}
{{- range $table.routes -}}
{{- if and (eq .path "/hls/") (eq .match "prefix") -}}
{{ toYaml . }}
{{- end -}}
{{- end -}}
{{- end }}

{{/*
Where the edge (Ingress or HTTPRoute) sends a route of the table, as YAML
{service, port}: the HLS edge for /hls/ when it is enabled, else the route's
own service. include "studio.routeBackend" (list $ $route)
*/}}
{{- define "studio.routeBackend" -}}
{{- $root := index . 0 -}}
{{- $route := index . 1 -}}
{{- $name := include "studio.name" $root -}}
{{- $table := include "studio.routes" $root | fromYaml -}}
{{- if and $root.Values.hlsEdge.enabled (eq $route.path "/hls/") (eq $route.match "prefix") -}}
service: {{ $name }}-hls-edge
port: {{ include "studio.hlsEdgePort" $root }}
{{- else -}}
service: {{ $name }}-{{ $route.service }}
port: {{ (index $table.services $route.service).port }}
{{- end -}}
{{- end }}

{{/* A ServiceAccount's annotations (IRSA, Workload Identity): global, then the component's. */}}
{{- define "studio.serviceAccountAnnotations" -}}
{{- $root := index . 0 -}}
{{- $own := index . 1 -}}
{{- $annotations := mergeOverwrite (deepCopy ($root.Values.serviceAccount.annotations | default dict)) (deepCopy ($own.serviceAccountAnnotations | default dict)) -}}
{{- with $annotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
An HTTPRoute rule's filters: CORS for ingress.corsOrigins (the Gateway API CORS
filter, experimental channel v1.3+), the same policy as the Ingress annotations
and the local gateway.
*/}}
{{- define "studio.httpRouteFilters" -}}
{{- with .Values.ingress.corsOrigins -}}
filters:
  - type: CORS
    cors:
      allowOrigins: {{ toJson . }}
      allowCredentials: true
      allowMethods: ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
      allowHeaders: ["Authorization", "Content-Type", "X-Request-ID", "Range", "If-None-Match"]
      exposeHeaders: ["X-Request-ID", "Content-Length", "Content-Range", "ETag", "Location", "Retry-After"]
      maxAge: 600
{{- end }}
{{- end }}

{{/* "true" when something else owns the workers' replicas (the operator or KEDA). */}}
{{- define "studio.workerAutoscaled" -}}
{{- $a := .Values.transcoderWorker.autoscaler -}}
{{- if and $a.enabled (or (eq $a.engine "keda") (and (eq $a.engine "operator") .Values.operator.enabled)) -}}
true
{{- end -}}
{{- end }}
