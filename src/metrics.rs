//! Prometheus metrics (prometheus-client), rendered by the admin listener's `/metrics`.
//!
//! Label values are bounded: versions, suite names, fixed reasons, route templates (never raw
//! paths) and status codes.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::reloadable::Material;

/// `{material}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MaterialLabel {
    /// `server`, `client_ca`, `db_client`, `db_ca`.
    pub material: String,
}

/// `{version,suite}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HandshakeLabels {
    /// `TLSv1_3` or `TLSv1_2`.
    pub version: String,
    /// IANA suite name.
    pub suite: String,
}

/// `{reason}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// A fixed reason word.
    pub reason: String,
}

/// `{route,method,status}`: every value from a closed set, whatever a client sends.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The matched route template, or `unmatched`.
    pub route: &'static str,
    /// A standard method, or `other`.
    pub method: &'static str,
    /// A registered status code, or `other`.
    pub status: StatusLabel,
}

/// A status code that IANA registers, or `other` for any other number.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct StatusLabel(Option<u16>);

impl StatusLabel {
    /// The label of a response status.
    pub fn of(status: http::StatusCode) -> Self {
        Self(status.canonical_reason().map(|_| status.as_u16()))
    }
}

impl prometheus_client::encoding::EncodeLabelValue for StatusLabel {
    fn encode(&self, encoder: &mut prometheus_client::encoding::LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        match self.0 {
            Some(code) => write!(encoder, "{code}"),
            None => encoder.write_str("other"),
        }
    }
}

/// The `method` label: the method if it is one of RFC 9110's (plus PATCH), else `other`.
pub fn method_label(method: &http::Method) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT",
    ];
    KNOWN.into_iter().find(|m| *m == method.as_str()).unwrap_or("other")
}

/// `{material,outcome}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// Which material.
    pub material: String,
    /// `applied`, `rejected` or `unchanged`.
    pub outcome: String,
}

/// `{material,serial}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SerialLabels {
    /// Which material.
    pub material: String,
    /// Serial of the served certificate.
    pub serial: String,
}

/// `{route}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    /// The matched route template, or `unmatched`.
    pub route: &'static str,
}

/// The `reason` values of `tlsward_tls_handshake_failures_total`
/// (`crate::server::handshake_failure_reason`, and `timeout`).
const HANDSHAKE_FAILURE_REASONS: [&str; 12] = [
    "protocol_version",
    "no_shared_cipher",
    "no_shared_group",
    "incompatible",
    "client_certificate",
    "invalid_message",
    "alert_received",
    "no_alpn",
    "other",
    "eof",
    "io",
    "timeout",
];

/// All metrics of the process.
pub struct Metrics {
    registry: Registry,
    /// `tlsward_cert_not_after_seconds{material}`.
    pub cert_not_after: Family<MaterialLabel, Gauge<i64, std::sync::atomic::AtomicI64>>,
    /// `tlsward_tls_handshakes_total{version,suite}`.
    pub handshakes: Family<HandshakeLabels, Counter<u64, AtomicU64>>,
    /// `tlsward_tls_handshake_failures_total{reason}`.
    pub handshake_failures: Family<ReasonLabel, Counter<u64, AtomicU64>>,
    /// `tlsward_http_requests_total{route,method,status}`.
    pub http_requests: Family<HttpLabels, Counter<u64, AtomicU64>>,
    /// `tlsward_http_request_duration_seconds{route}`.
    pub http_duration: Family<RouteLabel, Histogram>,
    /// `tlsward_db_pool_connections` (size), `_available`, `_waiting`.
    pub db_pool_size: Gauge,
    /// Idle connections ready for checkout.
    pub db_pool_available: Gauge,
    /// Requests waiting for a connection.
    pub db_pool_waiting: Gauge,
    /// `tlsward_db_retries_total{reason}`.
    pub db_retries: Family<ReasonLabel, Counter<u64, AtomicU64>>,
    /// `tlsward_reload_total{material,outcome}`.
    pub reloads: Family<ReloadLabels, Counter<u64, AtomicU64>>,
    /// `tlsward_reload_last_success_timestamp_seconds`.
    pub reload_last_success: Gauge,
    /// `tlsward_snapshot_generation`.
    pub generation: Gauge,
    /// `tlsward_cert_info{material,serial}` = 1 for the served serial.
    pub cert_info: Family<SerialLabels, Gauge>,
    /// `tlsward_cert_expiring_soon{material}`: 1 within `--expiry-warning` of expiry.
    pub expiring_soon: Family<MaterialLabel, Gauge>,
    /// `tlsward_db_pool_generation`.
    pub db_pool_generation: Gauge,
    /// `tlsward_db_pool_rebuild_total{outcome}`.
    pub db_pool_rebuilds: Family<OutcomeLabel, Counter<u64, AtomicU64>>,
    /// `tlsward_db_checkout_wait_seconds`.
    pub db_checkout_wait: Histogram,
    /// `tlsward_kube_events_total{outcome}`: Events published, failed or dropped.
    pub kube_events: Family<OutcomeLabel, Counter<u64, AtomicU64>>,
    /// `tlsward_kube_secret_updates_total{outcome}`: Secret data seen through the API
    /// (`applied`: laid over its directory; `unchanged`; `error`: the watch failed).
    pub kube_secret_updates: Family<OutcomeLabel, Counter<u64, AtomicU64>>,
    /// `tlsward_connections_open{listener}`.
    pub connections_open: Family<ListenerLabel, Gauge>,
    /// `tlsward_connections_refused_total{listener,reason}`: closed at accept (`max_connections`).
    pub connections_refused: Family<ListenerReasonLabels, Counter<u64, AtomicU64>>,
    /// `tlsward_connections_closed_total{listener,reason}`: closed by the server
    /// (`first_request_timeout`, `header_timeout`, `idle_timeout`, `max_age`, `shutdown`).
    pub connections_closed: Family<ListenerReasonLabels, Counter<u64, AtomicU64>>,
    /// `tlsward_accept_errors_total{listener,reason}` (`out_of_fds`, `other`).
    pub accept_errors: Family<ListenerReasonLabels, Counter<u64, AtomicU64>>,
    /// `tlsward_ready`: 1 while `/readyz` answers 200 (set at each scrape).
    pub ready: Gauge,
    /// `tlsward_reload_rejected{material}`: 1 while the last reload of the material was
    /// rejected (the last good one is served).
    pub reload_rejected: Family<MaterialLabel, Gauge>,
    /// `tlsward_db_proxy_sessions_active`: sessions the database proxy relays now.
    pub db_proxy_active: Gauge,
    /// `tlsward_db_proxy_sessions_total`: sessions opened to the database.
    pub db_proxy_sessions: Counter,
    /// `tlsward_db_proxy_sessions_closed_total{reason}`: closed by the proxy while idle
    /// (`max_age`, `shutdown`).
    pub db_proxy_closed: Family<ReasonLabel, Counter<u64, AtomicU64>>,
    /// `tlsward_db_proxy_upstream_failures_total{reason}`: connections to the database that
    /// failed (`connect`, `timeout`, `tls_refused`, `server_name`, `server_certificate`,
    /// `client_certificate`, `handshake`, `material`).
    pub db_proxy_upstream_failures: Family<ReasonLabel, Counter<u64, AtomicU64>>,
    /// `tlsward_db_proxy_bytes_total{direction}` (`to_db`, `to_app`).
    pub db_proxy_bytes: Family<DirectionLabel, Counter<u64, AtomicU64>>,
    /// `tlsward_db_proxy_upstream_connect_seconds`: TCP + TLS to the database.
    pub db_proxy_connect: Histogram,
    served_serials: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

/// `{direction}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabel {
    /// `to_db` or `to_app`.
    pub direction: &'static str,
}

/// Decrements `tlsward_db_proxy_sessions_active` when the session ends.
#[derive(Debug)]
pub struct OpenSession(Gauge);

impl Drop for OpenSession {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// `{listener}`: `tls` or `admin`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabel {
    /// Which listener.
    pub listener: &'static str,
}

/// `{listener,reason}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerReasonLabels {
    /// Which listener.
    pub listener: &'static str,
    /// A fixed reason word.
    pub reason: &'static str,
}

/// `{outcome}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// `applied` or `failed`.
    pub outcome: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Buckets of `tlsward_http_request_duration_seconds`, seconds.
const HTTP_BUCKETS: [f64; 13] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// Buckets of `tlsward_db_checkout_wait_seconds`, seconds.
const DB_CHECKOUT_BUCKETS: [f64; 13] = [
    0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Builds [`Metrics`]: creates each metric, registers it under its name and help (in order),
/// and keeps it in its field.
macro_rules! metrics {
    ($($field:ident: $init:expr, $name:literal, $help:literal;)*) => {{
        let mut registry = Registry::default();
        $(
            let $field = $init;
            registry.register($name, $help, $field.clone());
        )*
        Metrics {
            $($field,)*
            served_serials: Default::default(),
            registry,
        }
    }};
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        // One line per metric: field, its initial value, name, help.
        metrics! {
            cert_not_after: Family::default(), "tlsward_cert_not_after_seconds", "Expiry of the loaded certificate, Unix seconds";
            handshakes: Family::default(), "tlsward_tls_handshakes", "Completed TLS handshakes";
            handshake_failures: Family::default(), "tlsward_tls_handshake_failures", "Failed TLS handshakes by reason (protocol_version = a client offered only TLS < 1.2)";
            http_requests: Family::default(), "tlsward_http_requests", "HTTP requests on the TLS listener";
            http_duration: Family::<RouteLabel, Histogram>::new_with_constructor(|| Histogram::new(HTTP_BUCKETS)), "tlsward_http_request_duration_seconds", "HTTP request latency on the TLS listener";
            db_pool_size: Gauge::default(), "tlsward_db_pool_connections", "Open connections of the current DB pool";
            db_pool_available: Gauge::default(), "tlsward_db_pool_available", "Idle connections of the current DB pool";
            db_pool_waiting: Gauge::default(), "tlsward_db_pool_waiting", "Requests waiting for a DB connection";
            db_retries: Family::default(), "tlsward_db_retries", "Database retries by reason";
            reloads: Family::default(), "tlsward_reload", "Reloads by material and outcome";
            reload_last_success: Gauge::default(), "tlsward_reload_last_success_timestamp_seconds", "When a reload last succeeded: every material read valid (applied or unchanged), none rejected";
            generation: Gauge::default(), "tlsward_snapshot_generation", "Generation of the served snapshot";
            kube_events: Family::default(), "tlsward_kube_events", "Kubernetes Events about reloads by outcome (published, failed, dropped)";
            kube_secret_updates: Family::default(), "tlsward_kube_secret_updates", "Secret data seen through the Kubernetes API by outcome (applied, unchanged, error)";
            cert_info: Family::default(), "tlsward_cert_info", "The served certificate's serial (value 1)";
            expiring_soon: Family::default(), "tlsward_cert_expiring_soon", "1 when the served certificate expires within --expiry-warning";
            db_pool_generation: Gauge::default(), "tlsward_db_pool_generation", "Generation of the serving DB pool";
            db_pool_rebuilds: Family::default(), "tlsward_db_pool_rebuild", "DB pool rebuilds by outcome";
            db_checkout_wait: Histogram::new(DB_CHECKOUT_BUCKETS), "tlsward_db_checkout_wait_seconds", "Time to check a connection out of the DB pool (pre-ping included)";
            connections_open: Family::default(), "tlsward_connections_open", "Open client connections by listener";
            connections_refused: Family::default(), "tlsward_connections_refused", "Connections closed at accept because the listener was at --max-connections";
            connections_closed: Family::default(), "tlsward_connections_closed", "Connections the server closed: first_request_timeout, header_timeout, idle_timeout, max_age, shutdown";
            accept_errors: Family::default(), "tlsward_accept_errors", "Failed accepts by reason (out_of_fds: EMFILE/ENFILE)";
            ready: Gauge::default(), "tlsward_ready", "1 while /readyz answers 200";
            reload_rejected: Family::default(), "tlsward_reload_rejected", "1 while the last reload of the material was rejected (the last good one is served)";
            db_proxy_active: Gauge::default(), "tlsward_db_proxy_sessions_active", "Sessions the database proxy relays now";
            db_proxy_sessions: Counter::default(), "tlsward_db_proxy_sessions", "Sessions the database proxy opened to the database";
            db_proxy_closed: Family::default(), "tlsward_db_proxy_sessions_closed", "Sessions the database proxy closed while idle between transactions (max_age, shutdown)";
            db_proxy_upstream_failures: Family::default(), "tlsward_db_proxy_upstream_failures", "Connections from the database proxy to the database that failed, by reason";
            db_proxy_bytes: Family::default(), "tlsward_db_proxy_bytes", "Bytes the database proxy relayed, by direction (to_db, to_app)";
            db_proxy_connect: Histogram::new(DB_CHECKOUT_BUCKETS), "tlsward_db_proxy_upstream_connect_seconds", "TCP + SSLRequest + TLS handshake time of the database proxy's connections";
        }
    }

    /// Creates every series of a closed label set at zero, so that each is exposed from
    /// the start (a rate or an alert over it needs no first event) and dashboards see it.
    pub fn init_series(&self) {
        for reason in HANDSHAKE_FAILURE_REASONS {
            let _ = self
                .handshake_failures
                .get_or_create(&ReasonLabel { reason: reason.into() });
        }
        for listener in ["tls", "admin"] {
            self.connections_open(listener, 0);
            let _ = self.connections_refused.get_or_create(&ListenerReasonLabels {
                listener,
                reason: "max_connections",
            });
            for reason in [
                "first_request_timeout",
                "header_timeout",
                "idle_timeout",
                "max_age",
                "shutdown",
            ] {
                let _ = self
                    .connections_closed
                    .get_or_create(&ListenerReasonLabels { listener, reason });
            }
            for reason in ["out_of_fds", "other"] {
                let _ = self
                    .accept_errors
                    .get_or_create(&ListenerReasonLabels { listener, reason });
            }
        }
        for outcome in ["applied", "failed"] {
            let _ = self.db_pool_rebuilds.get_or_create(&OutcomeLabel {
                outcome: outcome.into(),
            });
        }
        for outcome in ["published", "failed", "dropped"] {
            let _ = self.kube_events.get_or_create(&OutcomeLabel {
                outcome: outcome.into(),
            });
        }
    }

    /// Sets the open connections of a listener.
    pub fn connections_open(&self, listener: &'static str, open: usize) {
        self.connections_open
            .get_or_create(&ListenerLabel { listener })
            .set(i64::try_from(open).unwrap_or(i64::MAX));
    }

    /// Counts a connection closed at accept.
    pub fn connection_refused(&self, listener: &'static str, reason: &'static str) {
        self.connections_refused
            .get_or_create(&ListenerReasonLabels { listener, reason })
            .inc();
    }

    /// Counts a connection the server asked to close.
    pub fn connection_closed(&self, listener: &'static str, reason: &'static str) {
        self.connections_closed
            .get_or_create(&ListenerReasonLabels { listener, reason })
            .inc();
    }

    /// Counts a failed accept.
    pub fn accept_error(&self, listener: &'static str, reason: &'static str) {
        self.accept_errors
            .get_or_create(&ListenerReasonLabels { listener, reason })
            .inc();
    }

    /// The bytes counter of one direction of the database proxy.
    pub fn db_proxy_bytes(&self, direction: &'static str) -> Counter {
        self.db_proxy_bytes.get_or_create(&DirectionLabel { direction }).clone()
    }

    /// Counts a failed connection from the database proxy.
    pub fn db_proxy_upstream_failed(&self, reason: &str) {
        self.db_proxy_upstream_failures
            .get_or_create(&ReasonLabel { reason: reason.into() })
            .inc();
    }

    /// Records the connect time of a database proxy connection.
    pub fn db_proxy_connected(&self, took: std::time::Duration) {
        self.db_proxy_connect.observe(took.as_secs_f64());
    }

    /// Counts a session opened; it stays active until the guard is dropped.
    pub fn db_proxy_session_opened(&self) -> OpenSession {
        self.db_proxy_sessions.inc();
        self.db_proxy_active.inc();
        OpenSession(self.db_proxy_active.clone())
    }

    /// Counts a session the proxy closed.
    pub fn db_proxy_session_closed(&self, reason: &str) {
        self.db_proxy_closed
            .get_or_create(&ReasonLabel { reason: reason.into() })
            .inc();
    }

    /// Counts one retry.
    pub fn db_retry(&self, reason: &str) {
        self.db_retries
            .get_or_create(&ReasonLabel { reason: reason.into() })
            .inc();
    }

    /// Counts one failed handshake.
    pub fn handshake_failed(&self, reason: &str) {
        self.handshake_failures
            .get_or_create(&ReasonLabel { reason: reason.into() })
            .inc();
    }

    /// Records a certificate's expiry.
    pub fn set_not_after(&self, material: Material, not_after: i64) {
        self.cert_not_after
            .get_or_create(&MaterialLabel {
                material: material.as_str().into(),
            })
            .set(not_after);
    }

    /// Counts a DB pool rebuild and sets the serving generation.
    pub fn db_pool_rebuilt(&self, outcome: &str, serving_generation: u64) {
        Self::count(&self.db_pool_rebuilds, outcome);
        self.db_pool_generation
            .set(i64::try_from(serving_generation).unwrap_or(i64::MAX));
    }

    /// Counts one outcome in a `{outcome}` family.
    pub fn count(family: &Family<OutcomeLabel, Counter<u64, AtomicU64>>, outcome: &str) {
        family
            .get_or_create(&OutcomeLabel {
                outcome: outcome.into(),
            })
            .inc();
    }

    /// Counts one reload outcome, and sets whether the material stands rejected.
    pub fn reload_outcome(&self, material: Material, outcome: &str) {
        self.reloads
            .get_or_create(&ReloadLabels {
                material: material.as_str().into(),
                outcome: outcome.into(),
            })
            .inc();
        self.reload_rejected_is(material, outcome == "rejected");
    }

    /// Creates a material's reload series at zero (not rejected, no outcome counted yet).
    pub fn init_material(&self, material: Material) {
        for outcome in ["applied", "rejected", "unchanged"] {
            let _ = self.reloads.get_or_create(&ReloadLabels {
                material: material.as_str().into(),
                outcome: outcome.into(),
            });
        }
        self.reload_rejected_is(material, false);
    }

    /// Sets `tlsward_reload_rejected{material}`.
    fn reload_rejected_is(&self, material: Material, rejected: bool) {
        self.reload_rejected
            .get_or_create(&MaterialLabel {
                material: material.as_str().into(),
            })
            .set(i64::from(rejected));
    }

    /// Sets `tlsward_cert_expiring_soon{material}`.
    pub fn set_expiring_soon(&self, material: Material, soon: bool) {
        self.expiring_soon
            .get_or_create(&MaterialLabel {
                material: material.as_str().into(),
            })
            .set(i64::from(soon));
    }

    /// Sets `tlsward_cert_info` for `material` to `serial` (the previous serial's series goes).
    pub fn set_serial(&self, material: Material, serial: &str) {
        let mut served = self.served_serials.lock().expect("serials lock");
        if let Some(old) = served.insert(material.as_str().to_string(), serial.to_string()) {
            self.cert_info.remove(&SerialLabels {
                material: material.as_str().into(),
                serial: old,
            });
        }
        self.cert_info
            .get_or_create(&SerialLabels {
                material: material.as_str().into(),
                serial: serial.into(),
            })
            .set(1);
    }

    /// The OpenMetrics text of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
