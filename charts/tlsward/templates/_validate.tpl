{{/* Contradictory values fail the render with a message that names the keys. */}}
{{- define "tlsward.validate" -}}
{{- $dev := .Values.certManager.devIssuer.enabled -}}
{{- if and (not .Values.tls.existingSecret) (not $dev) (not .Values.tls.issuerRef.name) -}}
{{- fail "tls: set tls.existingSecret, tls.issuerRef.name, or certManager.devIssuer.enabled=true" -}}
{{- end -}}
{{- if and (not .Values.db.existingSecret) (not $dev) (not .Values.db.issuerRef.name) -}}
{{- fail "db: set db.existingSecret or db.issuerRef.name (the issuer of the CockroachDB cluster), or certManager.devIssuer.enabled=true" -}}
{{- end -}}
{{- if and (ne .Values.policy.clientAuth "none") (not .Values.clientCa.existingSecret) -}}
{{- fail (printf "policy.clientAuth=%s needs clientCa.existingSecret (the Secret with the client CAs' ca.crt)" .Values.policy.clientAuth) -}}
{{- end -}}
{{- if and .Values.kube.watchSecrets (not .Values.kube.enabled) -}}
{{- fail "kube.watchSecrets=true needs kube.enabled=true (the service account token and the Role that may watch the Secrets)" -}}
{{- end -}}
{{- if and .Values.podDisruptionBudget.enabled (ge (int .Values.podDisruptionBudget.minAvailable) (int .Values.replicaCount)) -}}
{{- fail "podDisruptionBudget.minAvailable must be below replicaCount, or no node could ever be drained" -}}
{{- end -}}
{{- end -}}
