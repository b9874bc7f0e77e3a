//! The checks that need a *completed* TLS ≤ 1.2 handshake, which rustls cannot make with a
//! server that offers only CBC, DHE or other legacy suites: client-initiated renegotiation,
//! and `GET /` (HSTS) where no rustls handshake succeeded. Made with the system's OpenSSL
//! (crate `tlsward-legacy-tls`, cargo feature `legacy-tls`, on by default). A check that
//! cannot be made is reported with its reason: *inconclusive* when the server did not answer
//! (twice), *not checked* when the handshake is one this client cannot complete.

use std::net::SocketAddr;
use std::time::Duration;

use super::cert::HttpCheck;
use super::probe::Starttls;
use super::report::{Finding, Inconclusive, Severity};

/// What the legacy client is asked to do on one address.
#[cfg_attr(not(feature = "legacy-tls"), allow(dead_code))]
pub(super) struct Request {
    pub addr: SocketAddr,
    /// The SNI name, or the address when none is sent.
    pub sni: String,
    pub starttls: Option<Starttls>,
    pub timeout: Duration,
    /// The accepted protocols below TLS 1.3 (`TLSv1.0` …); empty on a TLS 1.3-only server.
    pub protocols: Vec<&'static str>,
    /// Send `GET /` (no rustls handshake got an answer to it, and the port is HTTPS).
    pub http: bool,
}

/// What the legacy client found, and what it could not determine.
#[derive(Default)]
pub(super) struct Outcome {
    /// Whether the server completed a renegotiation the client started; `false` on a TLS
    /// 1.3-only server (TLS 1.3 has no renegotiation); `None` when not determined.
    pub client_renegotiation: Option<bool>,
    /// What the renegotiation attempt showed (`the server answered: no renegotiation`, …).
    pub renegotiation_evidence: String,
    pub http: Option<HttpCheck>,
    pub inconclusive: Vec<Inconclusive>,
    pub not_checked: Vec<Inconclusive>,
}

const RENEGOTIATION: &str = "client-initiated renegotiation";
const HSTS: &str = "HSTS";

impl Outcome {
    fn not_checked(&mut self, property: &str, reason: String) {
        self.not_checked.push(Inconclusive {
            property: property.into(),
            reason,
        });
    }

    /// The finding, when the server renegotiated on the client's request.
    pub(super) fn findings(&self, out: &mut Vec<Finding>) {
        if self.client_renegotiation == Some(true) {
            out.push(Finding::new(
                "client_renegotiation",
                Severity::Medium,
                "client-initiated renegotiation accepted (a lever for handshake-CPU exhaustion)",
                self.renegotiation_evidence.clone(),
            ));
        }
    }
}

/// Runs the checks (blocking OpenSSL I/O, off the async workers).
/// A TLS 1.3-only server is judged here, for every build: it cannot renegotiate.
pub(super) async fn check(req: Request) -> Outcome {
    let tls13_only = req.protocols.is_empty();
    let mut o = if tls13_only && !req.http {
        Outcome::default()
    } else {
        tokio::task::spawn_blocking(move || run(&req))
            .await
            .unwrap_or_else(|e| {
                let mut o = Outcome::default();
                o.not_checked(RENEGOTIATION, format!("the legacy TLS client stopped: {e}"));
                o
            })
    };
    if tls13_only {
        o.client_renegotiation = Some(false);
        o.renegotiation_evidence = "TLS 1.3 only: the protocol has no renegotiation".into();
    }
    o
}

#[cfg(not(feature = "legacy-tls"))]
fn run(req: &Request) -> Outcome {
    let mut o = Outcome::default();
    let why = "this tlsward was built without the legacy-tls feature (the OpenSSL client that completes TLS <= 1.2 handshakes)";
    if !req.protocols.is_empty() {
        o.not_checked(RENEGOTIATION, why.into());
    }
    if req.http {
        o.not_checked(HSTS, why.into());
    }
    o
}

#[cfg(feature = "legacy-tls")]
fn run(req: &Request) -> Outcome {
    use tlsward_legacy_tls as legacy;
    let mut o = Outcome::default();
    let usable: Vec<&str> = req.protocols.iter().copied().filter(|p| legacy::supports(p)).collect();
    if !req.protocols.is_empty() && usable.is_empty() {
        o.not_checked(
            RENEGOTIATION,
            format!(
                "the server accepts only {}, which the OpenSSL this tlsward links does not have",
                req.protocols.join(", ")
            ),
        );
    }
    let target = legacy::Target {
        addr: req.addr,
        sni: req.sni.clone(),
        timeout: req.timeout,
        postgres_starttls: req.starttls.is_some(),
    };
    // GET / first: a server that handles one connection at a time may pause after refusing a
    // renegotiation (OpenSSL's s_server sleeps a second), which would delay the next one.
    if req.http {
        http(&target, &mut o);
    }
    if !usable.is_empty() {
        renegotiation(&target, &mut o);
    }
    o
}

/// One legacy exchange, tried a second time when the first got no answer.
#[cfg(feature = "legacy-tls")]
fn twice<T>(f: impl Fn() -> Result<T, tlsward_legacy_tls::Error>) -> Result<T, tlsward_legacy_tls::Error> {
    match f() {
        Err(tlsward_legacy_tls::Error::NoAnswer(_)) => f(),
        other => other,
    }
}

#[cfg(feature = "legacy-tls")]
fn record_failure(o: &mut Outcome, property: &str, e: tlsward_legacy_tls::Error) {
    match e {
        tlsward_legacy_tls::Error::NoAnswer(reason) => o.inconclusive.push(Inconclusive {
            property: property.into(),
            reason: format!("the legacy TLS client got no answer twice: {reason}"),
        }),
        tlsward_legacy_tls::Error::Failed(reason) => o.not_checked(
            property,
            format!("the legacy TLS client (OpenSSL) could not complete it: {reason}"),
        ),
    }
}

#[cfg(feature = "legacy-tls")]
fn renegotiation(target: &tlsward_legacy_tls::Target, o: &mut Outcome) {
    use tlsward_legacy_tls::{Renegotiation, connect};
    let attempt = || {
        let session = connect(target)?;
        let on = format!("{} ({})", session.protocol(), session.cipher().unwrap_or("?"));
        session.renegotiate().map(|r| (r, on))
    };
    match twice(attempt) {
        Ok((Renegotiation::Accepted, on)) => {
            o.client_renegotiation = Some(true);
            o.renegotiation_evidence = format!("the server completed a second handshake the client started on {on}");
        }
        Ok((Renegotiation::Refused(reason), on)) => {
            o.client_renegotiation = Some(false);
            o.renegotiation_evidence = format!("on {on}, {reason}");
        }
        Err(e) => record_failure(o, RENEGOTIATION, e),
    }
}

#[cfg(feature = "legacy-tls")]
fn http(target: &tlsward_legacy_tls::Target, o: &mut Outcome) {
    let attempt = || tlsward_legacy_tls::connect(target)?.get_root(&target.sni);
    match twice(attempt) {
        Ok(head) => match super::cert::parse_head(&head) {
            Some(h) => o.http = Some(h),
            None => o.not_checked(HSTS, "the answer to GET / was not an HTTP response".into()),
        },
        Err(e) => record_failure(o, HSTS, e),
    }
}
