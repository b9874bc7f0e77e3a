{{/* Name of the chart. */}}
{{- define "tlsward.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Fully qualified name: the release name, with the chart name unless it already has it. */}}
{{- define "tlsward.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Selector labels: stable across upgrades. */}}
{{- define "tlsward.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tlsward.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of every object: the release's, without the selector's name. */}}
{{- define "tlsward.releaseLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tlsward
{{- end -}}

{{/* Labels of the server's objects. */}}
{{- define "tlsward.labels" -}}
{{ include "tlsward.releaseLabels" . }}
app.kubernetes.io/name: {{ include "tlsward.name" . }}
app.kubernetes.io/component: server
{{- end -}}

{{/* The server pods, as Services, the NetworkPolicy and the PDB select them. The Deployment's
own selector stays the two selector labels (a selector cannot change on upgrade). */}}
{{- define "tlsward.serverSelector" -}}
{{ include "tlsward.selectorLabels" . }}
app.kubernetes.io/component: server
{{- end -}}

{{/* What selects this release's `helm test` Pod. */}}
{{- define "tlsward.testSelector" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: test
{{- end -}}

{{/* Labels of the `helm test` Pod: not the selector labels, so that neither the ReplicaSet
(which would adopt it), the Services nor the NetworkPolicy select it. */}}
{{- define "tlsward.testLabels" -}}
{{ include "tlsward.releaseLabels" . }}
app.kubernetes.io/name: {{ include "tlsward.name" . }}-test
app.kubernetes.io/component: test
{{- end -}}

{{/* Secret names: existing or created. */}}
{{- define "tlsward.tlsSecret" -}}
{{- .Values.tls.existingSecret | default (printf "%s-tls" (include "tlsward.fullname" .)) -}}
{{- end -}}
{{- define "tlsward.dbSecret" -}}
{{- .Values.db.existingSecret | default (printf "%s-db-client" (include "tlsward.fullname" .)) -}}
{{- end -}}
{{- define "tlsward.tokenSecret" -}}
{{- .Values.tokens.existingSecret | default (printf "%s-tokens" (include "tlsward.fullname" .)) -}}
{{- end -}}

{{/* The DSN: CockroachDB form, verify-full, the client certificate of the mounted Secret. */}}
{{- define "tlsward.dbUrl" -}}
{{- $q := "sslmode=verify-full&sslrootcert=/etc/tlsward/db/ca.crt&sslcert=/etc/tlsward/db/tls.crt&sslkey=/etc/tlsward/db/tls.key" -}}
{{- if .Values.db.options -}}{{- $q = printf "%s&options=%s" $q (.Values.db.options | urlquery) -}}{{- end -}}
{{- printf "postgresql://%s@%s:%v/%s?%s" .Values.db.user .Values.db.host .Values.db.port .Values.db.database $q -}}
{{- end -}}

{{/* The issuer of the server and DB client certificates when the dev chain is on. */}}
{{- define "tlsward.devIssuer" -}}
{{- printf "%s-dev-ca" (include "tlsward.fullname" .) -}}
{{- end -}}

{{/* The image: by digest when image.digest is set, else by tag (default: appVersion). */}}
{{- define "tlsward.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{/* SECRET=DIR for each mounted Secret, for --watch-secrets api. */}}
{{- define "tlsward.kubeSecrets" -}}
{{- $list := list (printf "%s=/etc/tlsward/tls" (include "tlsward.tlsSecret" .)) -}}
{{- if include "tlsward.usesDb" . -}}
{{- $list = append $list (printf "%s=/etc/tlsward/db" (include "tlsward.dbSecret" .)) -}}
{{- end -}}
{{- if include "tlsward.usesTokens" . -}}
{{- $list = append $list (printf "%s=/etc/tlsward/tokens" (include "tlsward.tokenSecret" .)) -}}
{{- end -}}
{{- if ne .Values.policy.clientAuth "none" -}}
{{- $list = append $list (printf "%s=/etc/tlsward/client-ca" .Values.clientCa.existingSecret) -}}
{{- end -}}
{{- join "," $list -}}
{{- end -}}
