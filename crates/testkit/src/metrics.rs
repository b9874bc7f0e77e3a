//! Reading a server's admin listener: `/metrics` samples and `/reload-status`.

/// The text of `/metrics` on the admin listener `admin` (`http://127.0.0.1:PORT`).
pub async fn metrics_of(admin: &str) -> String {
    reqwest::get(format!("{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Failed TLS handshakes counted with `reason` in a `/metrics` text, or with any reason when
/// it is `*`.
pub fn handshake_failures(metrics: &str, reason: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("tlsward_tls_handshake_failures_total{"))
        .filter(|l| reason == "*" || l.contains(&format!("reason=\"{reason}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The value of one metric sample line (`name{labels}`), or 0 when absent.
pub fn metric(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(sample)
                .and_then(|rest| rest.trim().split(' ').next()?.parse().ok())
        })
        .unwrap_or(0.0)
}

/// The JSON of `/reload-status`.
pub async fn reload_status(admin: &str) -> serde_json::Value {
    reqwest::get(format!("{admin}/reload-status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
