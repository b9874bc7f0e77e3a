{{/* Contradictory values fail the render with a message that names the keys. */}}
{{- define "tlsward.validate" -}}
{{- $dev := .Values.certManager.devIssuer.enabled -}}
{{- if and (eq .Values.mode "sidecar") (not .Values.app.image) -}}
{{- fail "mode=sidecar needs app.image: the image of the app tlsward runs in front of" -}}
{{- end -}}
{{- if and (eq .Values.mode "sidecar") (has (int .Values.app.port) (list (int .Values.tlsPort) (int .Values.adminPort))) -}}
{{- fail (printf "app.port %v is tlsward's tlsPort or adminPort; the app needs a port of its own on 127.0.0.1" .Values.app.port) -}}
{{- end -}}
{{- if and (not .Values.tls.existingSecret) (not $dev) (not .Values.tls.issuerRef.name) -}}
{{- fail "tls: set tls.existingSecret, tls.issuerRef.name, or certManager.devIssuer.enabled=true" -}}
{{- end -}}
{{- if and (include "tlsward.usesDb" .) (not .Values.db.existingSecret) (not $dev) (not .Values.db.issuerRef.name) -}}
{{- fail "db: set db.existingSecret or db.issuerRef.name (the issuer of the CockroachDB cluster), or certManager.devIssuer.enabled=true" -}}
{{- end -}}
{{- if and (ne .Values.policy.clientAuth "none") (not .Values.clientCa.existingSecret) -}}
{{- fail (printf "policy.clientAuth=%s needs clientCa.existingSecret (the Secret with the client CAs' ca.crt)" .Values.policy.clientAuth) -}}
{{- end -}}
{{- if and .Values.kube.watchSecrets (not .Values.kube.enabled) -}}
{{- fail "kube.watchSecrets=true needs kube.enabled=true (the service account token and the Role that may watch the Secrets)" -}}
{{- end -}}
{{- if le (int .Values.terminationGracePeriodSeconds) (add (int .Values.drainDelaySeconds) (int .Values.shutdownGraceSeconds)) -}}
{{- fail (printf "terminationGracePeriodSeconds (%v) must exceed drainDelaySeconds + shutdownGraceSeconds (%v): otherwise the kubelet kills the pod before it has drained" .Values.terminationGracePeriodSeconds (add .Values.drainDelaySeconds .Values.shutdownGraceSeconds)) -}}
{{- end -}}
{{- include "tlsward.validatePolicy" . -}}
{{- if and .Values.podDisruptionBudget.enabled (ge (int .Values.podDisruptionBudget.minAvailable) (int .Values.replicaCount)) -}}
{{- fail "podDisruptionBudget.minAvailable must be below replicaCount, or no node could ever be drained" -}}
{{- end -}}
{{- end -}}


{{/* The policy, refused with the binary's reasons (src/tls/policy.rs) before it reaches a pod. */}}
{{- define "tlsward.validatePolicy" -}}
{{- $p := .Values.policy -}}
{{- $v := $p.minVersion | toString | lower | replace "tlsv" "" | replace "tls" "" | replace "_" "." | trim -}}
{{- if and $p.minVersion (has $v (list "1.0" "1" "1.1")) -}}
{{- fail (printf "policy.minVersion %v: TLS 1.0/1.1 allow BEAST-class downgrades; the floor is 1.2" $p.minVersion) -}}
{{- else if and $p.minVersion (contains "ssl" $v) -}}
{{- fail (printf "policy.minVersion %v: SSL 2/3 are broken (POODLE, DROWN); the floor is 1.2" $p.minVersion) -}}
{{- else if and $p.minVersion (not (has $v (list "1.2" "1.3"))) -}}
{{- fail (printf "policy.minVersion %v: unknown version; use 1.2 or 1.3" $p.minVersion) -}}
{{- end -}}
{{- $tls13 := list "TLS_AES_128_GCM_SHA256" "TLS_AES_256_GCM_SHA384" "TLS_CHACHA20_POLY1305_SHA256" -}}
{{- $tls12 := list "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" -}}
{{- $modern := or (eq $p.profile "modern") (eq $v "1.3") -}}
{{- range $p.cipherSuites -}}
{{- $n := . | upper | trim -}}
{{- if has $n $tls13 -}}
{{- else if has $n $tls12 -}}
{{- if $modern -}}{{- fail (printf "policy.cipherSuites %s: a TLS 1.2 suite cannot be used with min_version 1.3; remove it or lower min_version" .) -}}{{- end -}}
{{- else if or (contains "NULL" $n) (contains "EXPORT" $n) (contains "_ANON_" $n) (contains "RC4" $n) (contains "3DES" $n) (contains "_DES_" $n) (contains "IDEA" $n) (contains "CBC" $n) (hasPrefix "TLS_RSA_" $n) (hasPrefix "TLS_DHE_" $n) (hasPrefix "TLS_DH_" $n) -}}
{{- $why := "" -}}
{{- if contains "NULL" $n -}}{{- $why = "NULL suites send data unencrypted; not allowed" -}}
{{- else if contains "EXPORT" $n -}}{{- $why = "EXPORT suites use 40/56-bit keys (FREAK, Logjam); not allowed" -}}
{{- else if contains "_ANON_" $n -}}{{- $why = "anonymous suites do not authenticate the server (trivial MITM); not allowed" -}}
{{- else if contains "RC4" $n -}}{{- $why = "RC4 has exploitable keystream biases (RFC 7465); not allowed" -}}
{{- else if or (contains "3DES" $n) (contains "_DES_" $n) (contains "IDEA" $n) -}}{{- $why = "64-bit block ciphers are open to SWEET32; not allowed" -}}
{{- else if contains "CBC" $n -}}{{- $why = "CBC suites are open to BEAST/Lucky13; not allowed" -}}
{{- else if hasPrefix "TLS_RSA_" $n -}}{{- $why = "static RSA key exchange has no forward secrecy (and ROBOT); not allowed" -}}
{{- else -}}{{- $why = "finite-field DH suites are open to weak-group attacks (Logjam) and are not offered; use ECDHE" -}}
{{- end -}}
{{- fail (printf "policy.cipherSuites %s: %s" . $why) -}}
{{- else -}}
{{- fail (printf "policy.cipherSuites %s: unknown cipher suite; use IANA names, one of: %s" . (join ", " (concat $tls13 $tls12))) -}}
{{- end -}}
{{- end -}}
{{- if $p.cipherSuites -}}
{{- $has13 := false -}}
{{- range $p.cipherSuites -}}{{- if has (. | upper | trim) $tls13 -}}{{- $has13 = true -}}{{- end -}}{{- end -}}
{{- if not $has13 -}}{{- fail "policy.cipherSuites: no TLS 1.3 suite listed; TLS 1.3 must stay enabled (add TLS_AES_128_GCM_SHA256)" -}}{{- end -}}
{{- end -}}
{{- $groups := list "x25519mlkem768" "x25519" "secp256r1" "secp384r1" -}}
{{- range $p.kxGroups -}}
{{- if hasPrefix "ffdhe" (. | lower) -}}
{{- fail (printf "policy.kxGroups %s: finite-field groups are not offered (slow, Logjam-class risk); use X25519MLKEM768, X25519, secp256r1 or secp384r1" .) -}}
{{- else if not (has (. | lower | trim) $groups) -}}
{{- fail (printf "policy.kxGroups %s: unknown key-exchange group; one of: X25519MLKEM768, X25519, secp256r1, secp384r1" .) -}}
{{- end -}}
{{- end -}}
{{- range $p.alpn -}}
{{- if not (has . (list "h2" "http/1.1")) -}}
{{- fail (printf "policy.alpn %s: unknown protocol; use h2 and/or http/1.1" .) -}}
{{- end -}}
{{- end -}}
{{- end -}}
