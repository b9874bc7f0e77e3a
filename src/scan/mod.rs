//! `tlsward scan`: proves, for any TLS endpoint on the path (ingress, load balancer, the
//! database with `--starttls postgres`), which protocols and suites it accepts and what that
//! exposes: POODLE, BEAST, RC4, SWEET32, NULL/EXPORT/anonymous suites, no forward secrecy,
//! weak DH, missing downgrade protection or secure renegotiation, certificate problems and a
//! missing HSTS header.
//!
//! Legacy protocols and suites are probed with hand-built ClientHellos ([`hello`]) over plain
//! TCP ([`probe`]); TLS 1.3, the certificate and `GET /` go through rustls ([`cert`]). Probes
//! run concurrently under a bound. Only the given host is resolved, once.

pub(crate) mod cert;
pub mod command;
pub mod export;
mod findings;
pub(crate) mod groups;
pub(crate) mod hello;
mod legacy;
pub(crate) mod policy;
pub(crate) mod probe;
pub mod report;
pub(crate) mod suites;
pub(crate) mod version;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use hello::{Answer, Hello, ServerHello, TLS10, TLS11, TLS12, TLS13};
use probe::{ProbeError, Starttls};
use report::{AcceptedSuite, Finding, PROTOCOLS, Report, SCHEMA, Severity};
use suites::{Kx, Suite};

/// What to scan and how.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// `host:port` (IPv6 as `[::1]:443`).
    pub target: String,
    /// SNI (default: the host, when it is a name).
    pub sni: Option<String>,
    /// STARTTLS preamble.
    pub starttls: Option<Starttls>,
    /// Per-probe time limit.
    pub timeout: Duration,
    /// Trust anchors for the chain check (default: the system's).
    pub ca: Option<PathBuf>,
    /// Probes in flight at once.
    pub concurrency: usize,
    /// Tell on stderr which phase the scan is in (when stderr is a terminal).
    pub progress: bool,
    /// Judge the endpoint against this policy too (`--policy`), and its name.
    pub policy: Option<(String, crate::tls::policy::Policy)>,
}

/// Writes the current phase over the previous one on stderr, when asked to.
fn progress(opts: &ScanOptions, phase: &str) {
    if opts.progress {
        eprint!("\rtlsward scan {}: {phase}\x1b[K", opts.target);
    }
}

/// Why a scan could not be made (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The target is not `host:port`.
    #[error("{0}: expected HOST:PORT (IPv6 as [::1]:443)")]
    Target(String),
    /// The host did not resolve.
    #[error("cannot resolve {0}: {1}")]
    Resolve(String, String),
    /// Nothing listens, or the preamble failed.
    #[error("{0}")]
    Unreachable(String),
    /// The peer never completed a TLS handshake.
    #[error("no TLS handshake with {0} succeeded: {1}")]
    NotTls(String, String),
    /// `--ca` is unusable.
    #[error("--ca {0}")]
    Ca(String),
}

struct Ctx {
    addr: SocketAddr,
    starttls: Option<Starttls>,
    sni: String,
    sni_in_hello: Option<String>,
    timeout: Duration,
    permits: Semaphore,
    inconclusive: std::sync::Mutex<Vec<report::Inconclusive>>,
}

/// A probe that got no answer at all (it timed out, or the connection could not be made):
/// it says nothing about the server, so the property it was for is not determined.
fn unanswered(e: &ProbeError) -> bool {
    matches!(e, ProbeError::Timeout | ProbeError::Connect(..))
}

impl Ctx {
    /// The probes' context for `addr`: the SNI is `--sni`, else the host when it is a name.
    fn new(opts: &ScanOptions, host: &str, addr: SocketAddr) -> Self {
        let is_ip = host.parse::<std::net::IpAddr>().is_ok();
        let sni = opts.sni.clone().unwrap_or_else(|| host.to_string());
        Self {
            addr,
            starttls: opts.starttls,
            sni_in_hello: (opts.sni.is_some() || !is_ip).then(|| sni.clone()),
            sni,
            timeout: opts.timeout,
            permits: Semaphore::new(opts.concurrency.max(1)),
            inconclusive: Default::default(),
        }
    }

    /// What could not be determined so far.
    fn take_inconclusive(&self) -> Vec<report::Inconclusive> {
        std::mem::take(
            &mut *self
                .inconclusive
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// One probe, tried a second time when the first got no answer.
    async fn legacy(&self, hello: &Hello) -> Result<Answer, ProbeError> {
        let _p = self.permits.acquire().await.expect("semaphore open");
        match probe::probe(self.addr, self.starttls, hello, true, self.timeout).await {
            Err(e) if unanswered(&e) => probe::probe(self.addr, self.starttls, hello, true, self.timeout).await,
            other => other,
        }
    }

    /// Records that `property` could not be determined, and why.
    fn inconclude(&self, property: impl Into<String>, e: &ProbeError) {
        self.inconclusive
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(report::Inconclusive {
                property: property.into(),
                reason: format!("a probe got no answer twice: {e}"),
            });
    }

    fn hello(&self, version: u16, suites: Vec<u16>, ffdhe: bool) -> Hello {
        Hello {
            version,
            suites,
            sni: self.sni_in_hello.clone(),
            groups: hello::default_groups(ffdhe),
            shares: vec![hello::X25519],
        }
    }
}

/// Accepted suites of one legacy version, in the order the server chose them, with the
/// ServerHello of the first (server-preferred) choice.
async fn enumerate(ctx: &Ctx, version: u16) -> Result<(Vec<AcceptedSuite>, Option<ServerHello>), ProbeError> {
    let mut offer: Vec<Suite> = suites::legacy(version).copied().collect();
    let mut accepted = Vec::new();
    let mut first = None;
    while !offer.is_empty() {
        let mut ids: Vec<u16> = offer.iter().map(|s| s.id).collect();
        ids.push(suites::RENEGOTIATION_SCSV);
        match ctx.legacy(&ctx.hello(version, ids, true)).await {
            Ok(Answer::Hello(h)) if h.version == version => {
                let Some(pos) = offer.iter().position(|s| s.id == h.suite) else {
                    break;
                };
                let suite = offer.remove(pos);
                accepted.push(AcceptedSuite {
                    suite,
                    dh_bits: h.dh_bits,
                });
                first.get_or_insert(h);
            }
            Ok(_) | Err(ProbeError::Closed) => break,
            Err(e) if unanswered(&e) => {
                let name = protocol_name(version);
                if accepted.is_empty() {
                    ctx.inconclude(format!("protocol {name}"), &e);
                    return Err(e);
                }
                ctx.inconclude(format!("{name} cipher suites (the list may be incomplete)"), &e);
                break;
            }
            Err(e) if accepted.is_empty() => return Err(e),
            Err(_) => break,
        }
    }
    // DHE and DH_anon without the FFDHE groups of RFC 7919: the group a server uses for
    // older clients.
    let dhe: Vec<u16> = accepted.iter().filter(|a| a.suite.ffdh).map(|a| a.suite.id).collect();
    if !dhe.is_empty()
        && let Ok(Answer::Hello(h)) = ctx.legacy(&ctx.hello(version, dhe, false)).await
        && let Some(bits) = h.dh_bits
        && let Some(a) = accepted.iter_mut().find(|a| a.suite.id == h.suite)
    {
        a.dh_bits = Some(a.dh_bits.map_or(bits, |b| b.min(bits)));
    }
    Ok((accepted, first))
}

/// TLS 1.3 suites the server accepts, in its order: hand-built hellos offering every TLS 1.3
/// suite of the registry (CCM, CCM_8, SM4 and the integrity-only ones included, which rustls
/// cannot offer) with an X25519 share; a HelloRetryRequest names the suite as well.
async fn enumerate_tls13(ctx: &Ctx) -> Result<(Vec<AcceptedSuite>, Option<ServerHello>), ProbeError> {
    let mut offer: Vec<Suite> = suites::tls13().copied().collect();
    let mut accepted = Vec::new();
    let mut first = None;
    while !offer.is_empty() {
        let hello = Hello {
            version: TLS13,
            suites: offer.iter().map(|s| s.id).collect(),
            sni: ctx.sni_in_hello.clone(),
            groups: groups::tls13_candidates(),
            shares: vec![hello::X25519],
        };
        match ctx.legacy(&hello).await {
            Ok(Answer::Hello(h)) if h.version == TLS13 => {
                let Some(pos) = offer.iter().position(|s| s.id == h.suite) else {
                    break;
                };
                accepted.push(AcceptedSuite {
                    suite: offer.remove(pos),
                    dh_bits: None,
                });
                first.get_or_insert(h);
            }
            Ok(_) | Err(ProbeError::Closed) => break,
            Err(e) if unanswered(&e) => {
                if accepted.is_empty() {
                    ctx.inconclude("protocol TLSv1.3", &e);
                    return Err(e);
                }
                ctx.inconclude("TLSv1.3 cipher suites (the list may be incomplete)", &e);
                break;
            }
            Err(e) if accepted.is_empty() => return Err(e),
            Err(_) => break,
        }
    }
    Ok((accepted, first))
}

fn protocol_name(version: u16) -> &'static str {
    PROTOCOLS.iter().find(|(_, v)| *v == version).map_or("?", |(n, _)| n)
}

/// What one group probe found.
enum Pick {
    /// The server chose this group.
    Chose(u16),
    /// It chose none of those offered (an alert, a close, another answer).
    Refused,
    /// The probe got no answer.
    Unanswered(ProbeError),
}

impl Pick {
    fn of(answer: Result<Answer, ProbeError>, version: u16) -> Self {
        match answer {
            Ok(Answer::Hello(h)) if h.version == version => h.group.map_or(Pick::Refused, Pick::Chose),
            Err(e) if unanswered(&e) => Pick::Unanswered(e),
            _ => Pick::Refused,
        }
    }
}

/// A group a server accepts.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AcceptedGroup {
    /// IANA id (hex), or null for a TLS 1.2 finite-field group (named by its prime only).
    pub id: Option<String>,
    /// IANA name, or `DH` for an unnamed TLS 1.2 finite-field prime.
    pub name: &'static str,
    /// `EC`, `FF` or `PQ`.
    pub kind: groups::Kind,
    /// EC field bits, FF prime bits.
    pub bits: u16,
}

impl From<&groups::Group> for AcceptedGroup {
    fn from(g: &groups::Group) -> Self {
        Self {
            id: Some(format!("0x{:04x}", g.id)),
            name: g.name,
            kind: g.kind,
            bits: g.bits,
        }
    }
}

/// The groups of one protocol in the order the server picks them, and whose preference
/// that order is.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GroupList {
    /// `server`: the server picks by its own preference; `client`: it takes the first group
    /// of the client's that it supports (the list is then in the scanner's offer order);
    /// `unknown`: a single group, or the second probe got no answer.
    pub preference: &'static str,
    /// The groups, in that order.
    pub groups: Vec<AcceptedGroup>,
}

/// Removes the groups the server picks from `offer`, one hello at a time, and returns them
/// in the order picked; `pick` sends a hello offering its argument and tells which group
/// the server chose, or `None` when it chose none. A second probe with the accepted groups
/// reversed tells whether the order is the server's or the client's.
///
/// A refusal is asked once more with the groups already picked offered last: a TLS 1.2 server
/// with an ECDSA certificate refuses a hello whose groups lack its certificate's curve, which
/// says nothing about the other groups.
async fn in_pick_order<F, Fut>(ctx: &Ctx, property: &str, mut offer: Vec<u16>, mut pick: F) -> GroupList
where
    F: FnMut(Vec<u16>) -> Fut,
    Fut: std::future::Future<Output = Pick>,
{
    let mut picked: Vec<u16> = Vec::new();
    let mut unanswered = None;
    while !offer.is_empty() {
        let first = match pick(offer.clone()).await {
            Pick::Refused if !picked.is_empty() => pick([offer.clone(), picked.clone()].concat()).await,
            other => other,
        };
        let chosen = match first {
            Pick::Chose(id) if !picked.contains(&id) => id,
            Pick::Unanswered(e) => {
                unanswered = Some(e);
                break;
            }
            _ => break,
        };
        let Some(pos) = offer.iter().position(|g| *g == chosen) else {
            break;
        };
        picked.push(offer.remove(pos));
    }
    if let Some(e) = unanswered {
        ctx.inconclude(format!("{property} (the list may be incomplete)"), &e);
    }
    let preference = if picked.len() < 2 {
        "unknown"
    } else {
        let reversed: Vec<u16> = picked.iter().rev().copied().collect();
        match pick(reversed).await {
            Pick::Chose(id) if Some(&id) == picked.first() => "server",
            Pick::Chose(id) if Some(&id) == picked.last() => "client",
            _ => "unknown",
        }
    };
    GroupList {
        preference,
        groups: picked
            .iter()
            .filter_map(|id| groups::by_id(*id))
            .map(AcceptedGroup::from)
            .collect(),
    }
}

/// TLS 1.3 groups in server order: hellos without a key share, which the server must answer
/// with a HelloRetryRequest naming its preferred group among those offered.
async fn enumerate_groups13(ctx: &Ctx, suites: &[AcceptedSuite]) -> GroupList {
    let ids: Vec<u16> = suites.iter().map(|a| a.suite.id).collect();
    in_pick_order(ctx, "TLSv1.3 groups", groups::tls13_candidates(), |offer| {
        let hello = Hello {
            version: TLS13,
            suites: ids.clone(),
            sni: ctx.sni_in_hello.clone(),
            groups: offer,
            shares: Vec::new(),
        };
        async move { Pick::of(ctx.legacy(&hello).await, TLS13) }
    })
    .await
}

/// TLS 1.2 ECDHE curves in server order (from the ServerKeyExchange), and the finite-field
/// primes of its DHE suites by size.
async fn enumerate_groups12(ctx: &Ctx, suites: &[AcceptedSuite]) -> GroupList {
    let ecdhe: Vec<u16> = suites
        .iter()
        .filter(|a| a.suite.kx == Kx::Ecdhe)
        .map(|a| a.suite.id)
        .collect();
    let mut out = GroupList {
        preference: "unknown",
        groups: Vec::new(),
    };
    if !ecdhe.is_empty() {
        out = in_pick_order(ctx, "TLSv1.2 curves", groups::tls12_curves(), |offer| {
            let mut hello = ctx.hello(TLS12, ecdhe.clone(), false);
            hello.groups = offer;
            async move { Pick::of(ctx.legacy(&hello).await, TLS12) }
        })
        .await;
    }
    let mut sizes: Vec<usize> = suites.iter().filter_map(|a| a.dh_bits).collect();
    sizes.sort_unstable();
    sizes.dedup();
    out.groups.extend(sizes.into_iter().map(|bits| AcceptedGroup {
        id: None,
        name: "DH",
        kind: groups::Kind::Ff,
        bits: u16::try_from(bits).unwrap_or(u16::MAX),
    }));
    out
}

fn parse_target(target: &str) -> Result<(String, u16), ScanError> {
    let bad = || ScanError::Target(target.to_string());
    let (host, port) = target.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

fn roots(ca: Option<&PathBuf>) -> Result<rustls::RootCertStore, ScanError> {
    match ca {
        Some(p) => crate::tls::material::load_roots(&crate::files::Files::disk(), p)
            .map(|r| r.store)
            .map_err(|e| ScanError::Ca(e.to_string())),
        None => {
            let mut store = rustls::RootCertStore::empty();
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = store.add(c);
            }
            Ok(store)
        }
    }
}

/// Runs a scan.
pub async fn scan(opts: &ScanOptions) -> Result<Report, ScanError> {
    let (host, addrs) = resolve(opts).await?;
    scan_address(opts, &host, addrs[0]).await
}

/// The target's host and every address it resolves to (A and AAAA), in the resolver's order.
pub async fn resolve(opts: &ScanOptions) -> Result<(String, Vec<SocketAddr>), ScanError> {
    let (host, port) = parse_target(&opts.target)?;
    let mut addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| ScanError::Resolve(host.clone(), e.to_string()))?
        .collect();
    addrs.dedup();
    if addrs.is_empty() {
        return Err(ScanError::Resolve(host, "no address".into()));
    }
    Ok((host, addrs))
}

/// `--all-addresses`: every address of the target, one after the other, and what differs.
pub async fn scan_all(opts: &ScanOptions) -> Result<report::MultiReport, ScanError> {
    let (host, addrs) = resolve(opts).await?;
    Ok(scan_addresses(opts, &host, &addrs).await)
}

/// Scans each of `addrs` as `host` (SNI, certificate name) and compares the results.
pub async fn scan_addresses(opts: &ScanOptions, host: &str, addrs: &[SocketAddr]) -> report::MultiReport {
    let mut results = Vec::new();
    for addr in addrs {
        let r = scan_address(opts, host, *addr).await;
        results.push(report::AddressResult {
            address: addr.to_string(),
            error: r.as_ref().err().map(ToString::to_string),
            report: r.ok(),
        });
    }
    report::MultiReport::new(opts.target.clone(), results)
}

/// Scans one address of the target.
async fn scan_address(opts: &ScanOptions, host: &str, addr: SocketAddr) -> Result<Report, ScanError> {
    let started = Instant::now();
    let roots = roots(opts.ca.as_ref())?;
    let ctx = Arc::new(Ctx::new(opts, host, addr));
    probe::connect(addr, opts.starttls, opts.timeout)
        .await
        .map_err(|e| ScanError::Unreachable(format!("{}: {e}", opts.target)))?;
    progress(opts, "protocols and cipher suites");
    let offered = Offered::enumerate(&ctx).await;
    progress(opts, "key-exchange groups");
    let groups = offered.groups(&ctx).await;
    if !offered.protocols.values().any(|on| *on) {
        return Err(ScanError::NotTls(opts.target.clone(), offered.last_error));
    }
    progress(opts, "certificate, HSTS and downgrade protection");
    let modern = modern_handshake(&ctx, &offered).await;
    let chain = served_chain(modern.as_ref(), &offered.hellos);
    let certificate = cert::check_chain(&chain, &ctx.sni, &roots, crate::util::now_unix());
    let http = modern.and_then(|m| m.hsts);
    let mut legacy = legacy_check(&ctx, &offered.protocols, http.is_none()).await;
    let http = http.or_else(|| legacy.http.take());
    let mut found = Vec::new();
    findings::protocol_findings(&offered.protocols, &offered.cipher_suites, &offered.hellos, &mut found);
    findings::group_findings(&groups, &mut found);
    fallback_findings(
        &ctx,
        &offered.protocols,
        &offered.cipher_suites,
        &offered.hellos,
        &mut found,
    )
    .await;
    if let Some(c) = &certificate {
        findings::cert_findings(c, &ctx.sni, &mut found);
    }
    if let Some(h) = &http {
        findings::hsts_findings(h, &mut found);
    }
    legacy.findings(&mut found);
    if opts.progress {
        eprint!("\r\x1b[K");
    }
    let report = Report {
        schema: SCHEMA,
        target: opts.target.clone(),
        address: addr.to_string(),
        sni: ctx.sni.clone(),
        starttls: opts.starttls,
        duration_ms: started.elapsed().as_millis() as u64,
        protocols: offered.protocols,
        cipher_suites: offered.cipher_suites,
        groups,
        certificate,
        http,
        client_renegotiation: legacy.client_renegotiation,
        findings: found,
        max_severity: None,
        inconclusive: ctx.take_inconclusive().into_iter().chain(legacy.inconclusive).collect(),
        policy: opts.policy.as_ref().map(|(name, _)| name.clone()),
        not_checked: legacy.not_checked,
    };
    Ok(judged(report, opts))
}

/// `report` with its policy deviations (`--policy`) added and its findings ordered, most
/// severe first.
fn judged(mut report: Report, opts: &ScanOptions) -> Report {
    if let Some((_, p)) = &opts.policy {
        let deviations = policy::deviations(&report, p);
        report.findings.extend(deviations);
    }
    report
        .findings
        .sort_by(|a, b| b.severity.cmp(&a.severity).then(a.id.cmp(b.id)));
    report.max_severity = report.findings.first().map(|f| f.severity);
    report
}

/// What the protocol phase found: which protocols the server accepts, their suites, the
/// ServerHello of each legacy version's first suite and whether TLS 1.3 answered.
struct Offered {
    protocols: BTreeMap<&'static str, bool>,
    cipher_suites: BTreeMap<&'static str, Vec<AcceptedSuite>>,
    hellos: BTreeMap<u16, ServerHello>,
    tls13: bool,
    /// Why the last protocol was refused (the error when none is accepted).
    last_error: String,
}

impl Offered {
    /// Every protocol's suites, the legacy versions and TLS 1.3 at once.
    async fn enumerate(ctx: &Ctx) -> Self {
        let legacy_versions = [hello::SSL3, TLS10, TLS11, TLS12];
        let (legacy, tls13) = tokio::join!(
            futures_util::future::join_all(legacy_versions.iter().map(|v| enumerate(ctx, *v))),
            enumerate_tls13(ctx)
        );
        let mut offered = Self {
            protocols: BTreeMap::new(),
            cipher_suites: BTreeMap::new(),
            hellos: BTreeMap::new(),
            tls13: false,
            last_error: String::from("no protocol accepted"),
        };
        for ((name, v), result) in PROTOCOLS.iter().zip(legacy) {
            if let Some(hello) = offered.record(name, result) {
                offered.hellos.insert(*v, hello);
            }
        }
        offered.tls13 = offered.record("TLSv1.3", tls13).is_some();
        offered
    }

    /// Records one protocol's enumeration; the ServerHello of its first suite, if accepted.
    fn record(
        &mut self,
        name: &'static str,
        result: Result<(Vec<AcceptedSuite>, Option<ServerHello>), ProbeError>,
    ) -> Option<ServerHello> {
        match result {
            Ok((accepted, first)) if !accepted.is_empty() => {
                self.protocols.insert(name, true);
                self.cipher_suites.insert(name, accepted);
                first
            }
            other => {
                if let Err(e) = other {
                    self.last_error = e.to_string();
                }
                self.protocols.insert(name, false);
                None
            }
        }
    }

    /// The key-exchange groups of TLS 1.3 and TLS 1.2, each with its accepted suites.
    async fn groups(&self, ctx: &Ctx) -> BTreeMap<&'static str, GroupList> {
        let no_suites = Vec::new();
        let (groups13, groups12) = tokio::join!(
            enumerate_groups13(ctx, self.cipher_suites.get("TLSv1.3").unwrap_or(&no_suites)),
            enumerate_groups12(ctx, self.cipher_suites.get("TLSv1.2").unwrap_or(&no_suites))
        );
        [("TLSv1.3", groups13), ("TLSv1.2", groups12)]
            .into_iter()
            .filter(|(_, list)| !list.groups.is_empty())
            .collect()
    }
}

/// The certificate and `GET /` through one full rustls handshake (TLS 1.3, else 1.2), when
/// the server speaks either.
async fn modern_handshake(ctx: &Ctx, offered: &Offered) -> Option<cert::Modern> {
    let tls13 = if offered.tls13 {
        true
    } else if offered.hellos.contains_key(&TLS12) {
        false
    } else {
        return None;
    };
    let suites = rustls::crypto::aws_lc_rs::default_provider().cipher_suites;
    let http_get = ctx.starttls.is_none();
    cert::handshake(ctx.addr, ctx.starttls, &ctx.sni, tls13, suites, http_get, ctx.timeout)
        .await
        .ok()
}

/// The chain the server sent: the full handshake's, else (a legacy-only server) the newest
/// legacy Certificate message's.
fn served_chain(
    modern: Option<&cert::Modern>,
    hellos: &BTreeMap<u16, ServerHello>,
) -> Vec<rustls_pki_types::CertificateDer<'static>> {
    if let Some(m) = modern.filter(|m| !m.chain.is_empty()) {
        return m.chain.clone();
    }
    hellos
        .values()
        .rev()
        .find(|h| !h.certificates.is_empty())
        .map(|h| {
            h.certificates
                .iter()
                .map(|c| rustls_pki_types::CertificateDer::from(c.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Renegotiation (and `GET /` when `want_http` and the port is HTTPS) over the legacy
/// protocols the server accepts.
async fn legacy_check(ctx: &Ctx, protocols: &BTreeMap<&'static str, bool>, want_http: bool) -> legacy::Outcome {
    legacy::check(legacy::Request {
        addr: ctx.addr,
        sni: ctx.sni_in_hello.clone().unwrap_or_else(|| ctx.addr.ip().to_string()),
        starttls: ctx.starttls,
        timeout: ctx.timeout,
        protocols: PROTOCOLS
            .iter()
            .filter(|(p, _)| *p != "TLSv1.3" && protocols.get(p).copied().unwrap_or(false))
            .map(|(p, _)| *p)
            .collect(),
        http: want_http && ctx.starttls.is_none(),
    })
    .await
}

async fn fallback_findings(
    ctx: &Ctx,
    protocols: &BTreeMap<&'static str, bool>,
    suites: &BTreeMap<&'static str, Vec<AcceptedSuite>>,
    hellos: &BTreeMap<u16, ServerHello>,
    out: &mut Vec<Finding>,
) {
    let accepted: Vec<(&str, u16)> = PROTOCOLS
        .iter()
        .filter(|(n, _)| protocols.get(n).copied().unwrap_or(false))
        .copied()
        .collect();
    let Some(&(_, max)) = accepted.last() else { return };
    // A downgrade below TLS 1.2 is possible: TLS_FALLBACK_SCSV must make the server refuse it.
    if let Some(&(name, low)) = accepted.iter().find(|(_, v)| *v < TLS12 && *v < max) {
        let mut ids: Vec<u16> = suites
            .get(name)
            .map(|l| l.iter().map(|a| a.suite.id).collect())
            .unwrap_or_default();
        ids.push(suites::FALLBACK_SCSV);
        match ctx.legacy(&ctx.hello(low, ids, true)).await {
            Ok(Answer::Hello(_)) => out.push(Finding {
                id: "no_fallback_scsv",
                severity: Severity::Medium,
                title: "TLS_FALLBACK_SCSV not honoured (downgrade possible)",
                evidence: format!("a {name} hello with TLS_FALLBACK_SCSV was answered with a ServerHello; the server supports a higher version"),
            }),
            Err(e) if unanswered(&e) => ctx.inconclude("downgrade protection (TLS_FALLBACK_SCSV)", &e),
            // An alert (inappropriate_fallback) or a close: the downgrade is refused.
            _ => {}
        }
        // RFC 8446 §4.1.3: a server that supports TLS 1.2 (or 1.3) and negotiates 1.1 or
        // below marks its random with DOWNGRD\x00, so that a TLS 1.2 client detects the
        // downgrade even without the SCSV.
        if max >= TLS12
            && let Some(h) = hellos.get(&low)
            && h.random.len() == 32
            && h.random[24..] != hello::DOWNGRADE_TLS11
        {
            out.push(Finding::new(
                "no_downgrade_sentinel",
                Severity::Low,
                "no downgrade sentinel (RFC 8446 §4.1.3)",
                format!(
                    "a server that supports a higher version answered a {name} hello without DOWNGRD in its random"
                ),
            ));
        }
        return;
    }
    // Floor TLS 1.2 with TLS 1.3: the TLS 1.2 ServerHello must carry the RFC 8446 sentinel.
    if max == TLS13
        && let Some(h) = hellos.get(&TLS12)
        && !h.downgrade_sentinel()
    {
        out.push(Finding {
            id: "no_downgrade_sentinel",
            severity: Severity::Low,
            title: "no TLS 1.3 downgrade sentinel (RFC 8446 §4.1.3)",
            evidence: "a TLS 1.3 server answered a TLS 1.2 hello without DOWNGRD in its random".into(),
        });
    }
}
