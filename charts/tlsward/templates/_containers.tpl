{{/* Whether the pods use token keys: serve's API always, the sidecar with app.requireToken. */}}
{{- define "tlsward.usesTokens" -}}
{{- if or (ne .Values.mode "sidecar") .Values.app.requireToken -}}true{{- end -}}
{{- end -}}

{{/* Whether the pods open the database: serve's pool always, the sidecar with app.dbProxy. */}}
{{- define "tlsward.usesDb" -}}
{{- if or (ne .Values.mode "sidecar") .Values.app.dbProxy -}}true{{- end -}}
{{- end -}}

{{/* The tlsward container: `serve` (mode api) or `proxy` in front of the app (mode sidecar,
where it runs as a native sidecar). */}}
{{- define "tlsward.container" -}}
{{- $sidecar := eq .Values.mode "sidecar" -}}
name: tlsward
image: {{ include "tlsward.image" . | quote }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
args:
  - {{ ternary "proxy" "serve" $sidecar }}
  {{- range .Values.extraArgs }}
  - {{ . | quote }}
  {{- end }}
env:
  - { name: TLSWARD_LISTEN, value: "0.0.0.0:{{ .Values.tlsPort }}" }
  - { name: TLSWARD_ADMIN_LISTEN, value: "0.0.0.0:{{ .Values.adminPort }}" }
  - { name: TLSWARD_TLS_DIR, value: /etc/tlsward/tls }
  - { name: TLSWARD_POLICY_FILE, value: /etc/tlsward/policy/policy.yaml }
  {{- if include "tlsward.usesTokens" . }}
  - { name: TLSWARD_TOKEN_KEY_DIR, value: /etc/tlsward/tokens }
  - { name: TLSWARD_TOKEN_MAX_TTL, value: {{ .Values.tokens.maxTtl | quote }} }
  {{- end }}
  {{- if include "tlsward.usesDb" . }}
  - { name: TLSWARD_DB_URL, value: {{ include "tlsward.dbUrl" . | quote }} }
  {{- end }}
  {{- if $sidecar }}
  - { name: TLSWARD_UPSTREAM, value: "http://127.0.0.1:{{ .Values.app.port }}" }
  {{- with .Values.app.healthPath }}
  - { name: TLSWARD_UPSTREAM_HEALTH_PATH, value: {{ . | quote }} }
  {{- end }}
  {{- if .Values.app.requireToken }}
  - { name: TLSWARD_REQUIRE_TOKEN, value: "true" }
  {{- end }}
  {{- if .Values.app.dbProxy }}
  - { name: TLSWARD_DB_PROXY_LISTEN, value: unix:/run/tlsward }
  - { name: TLSWARD_DB_MAX_SESSION_AGE, value: {{ .Values.app.dbMaxSessionAge | quote }} }
  {{- end }}
  # The app's preStop sleep keeps the pod serving while the endpoints drop it; tlsward gets
  # SIGTERM only after the app has stopped, so it has nothing left to drain.
  - { name: TLSWARD_DRAIN_DELAY, value: "0s" }
  {{- else }}
  - { name: TLSWARD_DB_POOL_SIZE, value: {{ .Values.db.poolSize | quote }} }
  - { name: TLSWARD_DRAIN_DELAY, value: "{{ .Values.drainDelaySeconds }}s" }
  {{- end }}
  - { name: TLSWARD_SHUTDOWN_GRACE, value: "{{ .Values.shutdownGraceSeconds }}s" }
  - { name: TLSWARD_MAX_CONNECTION_AGE, value: {{ .Values.maxConnectionAge | quote }} }
  - { name: TLSWARD_LOG_FORMAT, value: json }
  {{- if ne .Values.policy.clientAuth "none" }}
  - { name: TLSWARD_CLIENT_CA_DIR, value: /etc/tlsward/client-ca }
  {{- end }}
  # Events on every reload (kube.enabled) regard this Pod.
  - { name: TLSWARD_KUBE_EVENTS, value: {{ ternary "on" "off" .Values.kube.enabled | quote }} }
  {{- if .Values.kube.watchSecrets }}
  - { name: TLSWARD_WATCH_SECRETS, value: api }
  - { name: TLSWARD_KUBE_SECRETS, value: {{ include "tlsward.kubeSecrets" . | quote }} }
  {{- end }}
  - name: POD_NAME
    valueFrom: { fieldRef: { fieldPath: metadata.name } }
  - name: POD_NAMESPACE
    valueFrom: { fieldRef: { fieldPath: metadata.namespace } }
  - name: POD_UID
    valueFrom: { fieldRef: { fieldPath: metadata.uid } }
  {{- with .Values.extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
ports:
  - { name: https, containerPort: {{ .Values.tlsPort }}, protocol: TCP }
  - { name: admin, containerPort: {{ .Values.adminPort }}, protocol: TCP }
livenessProbe:
  httpGet: { path: /livez, port: admin }
  periodSeconds: 10
readinessProbe:
  httpGet: { path: /readyz, port: admin }
  periodSeconds: 5
startupProbe:
  httpGet: { path: /livez, port: admin }
  periodSeconds: 1
  failureThreshold: 30
resources:
  {{- toYaml .Values.resources | nindent 2 }}
{{- with .Values.securityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
# Every Secret and ConfigMap is mounted as a whole directory: kubelet updates those by
# swapping the ..data symlink; a subPath mount would never see a rotation.
volumeMounts:
  - { name: tls, mountPath: /etc/tlsward/tls, readOnly: true }
  - { name: policy, mountPath: /etc/tlsward/policy, readOnly: true }
  {{- if include "tlsward.usesTokens" . }}
  - { name: tokens, mountPath: /etc/tlsward/tokens, readOnly: true }
  {{- end }}
  {{- if include "tlsward.usesDb" . }}
  - { name: db, mountPath: /etc/tlsward/db, readOnly: true }
  {{- end }}
  {{- if ne .Values.policy.clientAuth "none" }}
  - { name: client-ca, mountPath: /etc/tlsward/client-ca, readOnly: true }
  {{- end }}
  {{- if and $sidecar .Values.app.dbProxy }}
  - { name: run, mountPath: /run/tlsward }
  {{- end }}
  {{- if and $sidecar .Values.kube.enabled }}
  - { name: kube-api-access, mountPath: /var/run/secrets/kubernetes.io/serviceaccount, readOnly: true }
  {{- end }}
  {{- with .Values.extraVolumeMounts }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}

{{/* The app's container in mode sidecar: on loopback (only tlsward reaches it), its database
URL pointing at tlsward's socket, serving on through the drain delay. */}}
{{- define "tlsward.appContainer" -}}
name: app
image: {{ .Values.app.image | quote }}
imagePullPolicy: {{ .Values.app.pullPolicy }}
{{- with .Values.app.command }}
command:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.app.args }}
args:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if or .Values.app.dbProxy .Values.app.env }}
env:
  {{- if .Values.app.dbProxy }}
  # The database through tlsward's socket: libpq/psycopg `host=/run/tlsward port=26257`, no TLS
  # setting (tlsward opens the database with verify-full and the client certificate).
  - { name: DATABASE_URL, value: {{ printf "postgresql+psycopg2://%s@/%s?host=/run/tlsward&port=26257" .Values.db.user .Values.db.database | quote }} }
  - { name: PGHOST, value: /run/tlsward }
  - { name: PGPORT, value: "26257" }
  - { name: PGUSER, value: {{ .Values.db.user | quote }} }
  - { name: PGDATABASE, value: {{ .Values.db.database | quote }} }
  {{- end }}
  {{- with .Values.app.env }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}
{{- with .Values.app.livenessProbe }}
livenessProbe:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.app.readinessProbe }}
readinessProbe:
  {{- toYaml . | nindent 2 }}
{{- end }}
# Keep serving while Endpoints, kube-proxy and ingresses drop the pod (tlsward in front stays up
# until the app has stopped).
lifecycle:
  preStop:
    sleep: { seconds: {{ .Values.drainDelaySeconds }} }
resources:
  {{- toYaml .Values.app.resources | nindent 2 }}
{{- with .Values.app.securityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumeMounts:
  - { name: tmp, mountPath: /tmp }
  {{- if .Values.app.dbProxy }}
  - { name: run, mountPath: /run/tlsward, readOnly: true }
  {{- end }}
{{- end -}}
