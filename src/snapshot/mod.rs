//! One immutable snapshot of everything that reloads: the server certificate and key, the
//! cipher policy, the client CAs, the token keys and the database material (its CA bundle, the
//! client certificate and key), read in one pass, each material validated on its own.
//! The running server publishes it through one pointer; established connections keep the
//! `ServerConfig` they handshook with.
//!
//! Each material carries a digest of its parsed content (DER of certificates and keys, the
//! normalized policy, the token keys), so a reload can tell applied from unchanged, and a
//! rewrite that changes only comments or PEM line breaks is not a rotation.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;

pub(crate) mod store;
pub use store::{SnapshotStore, Snapshots};

use crate::db::dsn::DbTarget;
use crate::db::material::{ClientCert, DbCa, DbTls};
use crate::files::Files;
pub use crate::reloadable::Material;
use crate::tls::material::{self, CertInfo};
use crate::tls::policy::Policy;
use crate::tls::server::{self as tls_server, Resumption};
use crate::token::TokenKeys;

/// Where the reloadable inputs live: directories (mounted Secrets / ConfigMaps). Checked
/// configuration: the required ones are there (a missing flag is a configuration problem,
/// reported by `Config::load` before a snapshot is read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources {
    /// `tls.crt` + `tls.key`; `None` only for `db-proxy`, which serves no TLS itself.
    pub tls_dir: Option<PathBuf>,
    /// The policy YAML, if any.
    pub policy_file: Option<PathBuf>,
    /// `ca.crt` of client CAs, if any.
    pub client_ca_dir: Option<PathBuf>,
    /// Token keys: required by `serve` (its configuration checks that); `proxy` needs them
    /// only with `--require-token`.
    pub token_key_dir: Option<PathBuf>,
    /// SANs the server certificate must carry (empty: no check).
    pub expect_sans: Vec<String>,
    /// The database target, whose `sslrootcert`, `sslcert` and `sslkey` are reloaded too.
    pub db: Option<Arc<DbTarget>>,
}

fn parent_dir(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn show(p: Option<&Path>) -> String {
    p.map_or_else(|| "-".into(), |p| p.display().to_string())
}

/// The sources as given, before the required ones are known to be there: what
/// `check-config` reads when one is missing ([`check_given`]), so that the problems of every
/// other material are still reported in the same run. Serving only ever has [`Sources`].
#[derive(Debug, Clone, Copy)]
pub struct GivenSources<'a> {
    /// `--tls-dir`, if set.
    pub tls_dir: Option<&'a Path>,
    /// `--token-key-dir`, if set.
    pub token_key_dir: Option<&'a Path>,
    /// See [`Sources::policy_file`].
    pub policy_file: Option<&'a Path>,
    /// See [`Sources::client_ca_dir`].
    pub client_ca_dir: Option<&'a Path>,
    /// See [`Sources::expect_sans`].
    pub expect_sans: &'a [String],
    /// See [`Sources::db`].
    pub db: Option<&'a DbTarget>,
}

/// The problems of every given material (none for a required directory that is not set:
/// the configuration reports that).
pub fn check_given(given: &GivenSources<'_>, files: &Files) -> Vec<Problem> {
    let mut problems = Vec::new();
    let _ = read_parts(given, files, &mut problems);
    problems
}

impl Sources {
    /// The sources as [`GivenSources`].
    fn given(&self) -> GivenSources<'_> {
        GivenSources {
            tls_dir: self.tls_dir.as_deref(),
            token_key_dir: self.token_key_dir.as_deref(),
            policy_file: self.policy_file.as_deref(),
            client_ca_dir: self.client_ca_dir.as_deref(),
            expect_sans: &self.expect_sans,
            db: self.db.as_deref(),
        }
    }

    /// The required sources of a TLS server, and nothing optional.
    pub fn new(tls_dir: PathBuf) -> Self {
        Self {
            tls_dir: Some(tls_dir),
            ..Self::database(None)
        }
    }

    /// The sources of `db-proxy`: the database material alone.
    pub fn database(db: Option<Arc<DbTarget>>) -> Self {
        Self {
            tls_dir: None,
            token_key_dir: None,
            policy_file: None,
            client_ca_dir: None,
            expect_sans: Vec::new(),
            db,
        }
    }

    /// The directories to watch: the Secret / ConfigMap mounts.
    pub fn dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self.tls_dir.iter().cloned().collect();
        dirs.extend(self.token_key_dir.clone());
        dirs.extend(self.client_ca_dir.clone());
        dirs.extend(self.policy_file.as_deref().map(parent_dir));
        if let Some(db) = &self.db {
            let files = [&db.sslrootcert, &db.sslcert, &db.sslkey];
            dirs.extend(files.into_iter().flatten().map(|p| parent_dir(p)));
        }
        dirs.sort();
        dirs.dedup();
        dirs
    }
}

/// One problem with one material; `Display` names the file and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The material at fault.
    pub material: Material,
    /// What is wrong (starts with the file name where there is one).
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.material.describe(), self.message)
    }
}

/// A validated, ready-to-serve set of TLS and token material.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Increments with every published snapshot.
    pub generation: u64,
    /// The rustls config for new handshakes (`None` without a server certificate: `db-proxy`).
    pub server_config: Option<Arc<ServerConfig>>,
    /// The policy it was built from.
    pub policy: Policy,
    /// The served chain (leaf first; empty without a server certificate).
    pub server_chain: Vec<CertInfo>,
    /// Client CAs, when client authentication is on.
    pub client_cas: Option<Vec<CertInfo>>,
    /// Bearer-token keys (`None` when no `--token-key-dir` is given: the proxy without
    /// `--require-token`).
    pub token_keys: Option<TokenKeys>,
    /// Content digest per material.
    pub digests: BTreeMap<Material, String>,
    /// The database connections' TLS material (`None` with `sslmode=disable`).
    pub db_tls: Option<Arc<DbTls>>,
    /// The server certificate and key as loaded, for the next reload.
    server: Option<material::ServerMaterial>,
    /// The client CA bundle as loaded, for the next reload.
    client_roots: Option<Arc<material::Roots>>,
    /// TLS sessions, shared with the previous snapshot while the policy and client CAs stay.
    resumption: Resumption,
}

/// Each material as read: `Some(Ok)` a valid new value, `Some(Err(()))` a problem (recorded),
/// `None` not configured.
struct Parts {
    policy: Result<Policy, ()>,
    server: Option<Result<material::ServerMaterial, ()>>,
    client_roots: Option<Result<Arc<material::Roots>, ()>>,
    token_keys: Option<Result<TokenKeys, ()>>,
    db_ca: Option<Result<DbCa, ()>>,
    db_client: Option<Result<Option<ClientCert>, ()>>,
}

/// The materials a snapshot is built from, each the new value or the previous snapshot's.
struct Chosen {
    policy: Policy,
    server: Option<material::ServerMaterial>,
    client_roots: Option<Arc<material::Roots>>,
    token_keys: Option<TokenKeys>,
    db_tls: Option<Arc<DbTls>>,
}

/// The new value where it is valid, else the last good one (if there is one).
fn pick<T: Clone>(new: Result<T, ()>, last: Option<T>) -> Option<T> {
    new.ok().or(last)
}

/// [`pick`] for an optional material: `Some(None)` when it is not configured, `None` when it
/// is but has neither a valid new value nor a last good one.
fn pick_configured<T: Clone>(new: Option<Result<T, ()>>, last: Option<T>) -> Option<Option<T>> {
    match new {
        None => Some(None),
        Some(r) => pick(r, last).map(Some),
    }
}

impl Snapshot {
    /// Reads and validates every given source at start-up; all problems are returned, each
    /// naming its file. There is no last good material yet, so any problem is an error.
    pub fn load(src: &Sources, files: &Files, generation: u64) -> Result<Self, Vec<Problem>> {
        match Self::assemble(src, files, generation, None) {
            (Some(s), problems) if problems.is_empty() => Ok(s),
            (_, problems) => Err(problems),
        }
    }

    /// A reload: every material is read again and each one independently takes its new
    /// value where that is valid and keeps this snapshot's where it is not, so that one
    /// broken file never holds up the rotation of the others. Returns the new snapshot
    /// (equal digests to this one when nothing valid changed) and the problems.
    pub fn reload(&self, src: &Sources, files: &Files, generation: u64) -> (Self, Vec<Problem>) {
        let (next, problems) = Self::assemble(src, files, generation, Some(self));
        (next.unwrap_or_else(|| self.clone()), problems)
    }

    fn assemble(src: &Sources, files: &Files, generation: u64, last: Option<&Self>) -> (Option<Self>, Vec<Problem>) {
        let mut problems = Vec::new();
        let parts = read_parts(&src.given(), files, &mut problems);
        let Some(chosen) = choose(parts, last, src, &mut problems) else {
            return (None, problems);
        };
        match Self::build(chosen, generation, last) {
            Ok(s) => (Some(s), problems),
            Err(p) => {
                problems.push(p);
                (None, problems)
            }
        }
    }

    fn build(c: Chosen, generation: u64, last: Option<&Self>) -> Result<Self, Problem> {
        let digests = c.digests();
        // Sessions made under another policy or other client CAs are not resumed.
        let same_rules = |l: &&Self| {
            [Material::Policy, Material::ClientCa]
                .iter()
                .all(|m| l.digests.get(m) == digests.get(m))
        };
        let resumption = last
            .filter(same_rules)
            .map_or_else(Resumption::new, |l| l.resumption.clone());
        let server_config = c
            .server
            .as_ref()
            .map(|server| server_config(&c, server, &resumption))
            .transpose()?;
        Ok(Self {
            generation,
            server_config,
            server_chain: c.server.as_ref().map(|s| s.chain.clone()).unwrap_or_default(),
            policy: c.policy,
            client_cas: c.client_roots.as_ref().map(|r| r.infos.clone()),
            token_keys: c.token_keys,
            digests,
            db_tls: c.db_tls,
            server: c.server,
            client_roots: c.client_roots,
            resumption,
        })
    }

    /// Whether new handshakes of `self` may resume sessions made under `other`.
    pub fn shares_sessions_with(&self, other: &Self) -> bool {
        self.resumption.same(&other.resumption)
    }

    /// The served leaf certificate (`None` for `db-proxy`, which serves none).
    pub fn leaf(&self) -> Option<&CertInfo> {
        self.server_chain.first()
    }

    /// The certificate a material serves (the leaf), or the first CA of a bundle, if any.
    pub fn certificate(&self, m: Material) -> Option<&CertInfo> {
        self.certificates(m).first()
    }

    /// The certificates a material serves: the leaf, or every CA of a bundle.
    pub fn certificates(&self, m: Material) -> &[CertInfo] {
        match m {
            Material::Server => self.leaf().map_or(&[], std::slice::from_ref),
            Material::ClientCa => self.client_cas.as_deref().unwrap_or_default(),
            Material::DbCa => self.db_tls.as_ref().map_or(&[], |t| t.cas.as_slice()),
            Material::DbClient => self
                .db_tls
                .as_ref()
                .and_then(|t| t.client.as_ref())
                .map_or(&[], |c| std::slice::from_ref(&c.info)),
            Material::Policy | Material::TokenKeys => &[],
        }
    }

    /// The normalized TLS part of `check-config`.
    pub fn describe(&self, src: &Sources) -> String {
        let mut out = String::from("tls:\n");
        for line in self.policy.describe().lines() {
            out.push_str(&format!("  {line}\n"));
        }
        out.push_str(&format!("  versions: [{}]\n", self.policy.version_names().join(", ")));
        match &src.tls_dir {
            Some(dir) => out.push_str(&format!("server_certificate:  # {}\n", dir.display())),
            None => out.push_str("server_certificate: none\n"),
        }
        for c in &self.server_chain {
            out.push_str(&describe_cert(c));
        }
        match (&self.client_cas, &src.client_ca_dir) {
            (Some(cas), Some(dir)) => {
                out.push_str(&format!("client_cas:  # {}\n", dir.join(material::CA_CRT).display()));
                for c in cas {
                    out.push_str(&describe_cert(c));
                }
            }
            _ => out.push_str("client_cas: none\n"),
        }
        match (&self.token_keys, &src.token_key_dir) {
            (Some(keys), Some(dir)) => {
                let kids = keys.kids();
                out.push_str(&format!(
                    "token_keys:  # {}\n  accepted_kids: [{}]\n  signing_kid: {}\n",
                    dir.display(),
                    kids.join(", "),
                    kids.last().copied().unwrap_or("-")
                ));
            }
            _ => out.push_str("token_keys: none\n"),
        }
        out.push_str(&self.describe_db(src));
        out
    }

    /// The database material's part of [`Snapshot::describe`] (all of it for `db-proxy`).
    pub fn describe_db(&self, src: &Sources) -> String {
        let mut out = String::new();
        if let (Some(t), Some(db)) = (&self.db_tls, &src.db) {
            out.push_str(&format!("database_cas:  # {}\n", show(db.sslrootcert.as_deref())));
            for c in &t.cas {
                out.push_str(&describe_cert(c));
            }
            if let Some(c) = &t.client {
                out.push_str(&format!(
                    "database_client_certificate:  # {}\n",
                    show(db.sslcert.as_deref())
                ));
                out.push_str(&describe_cert(&c.info));
            }
        }
        out
    }
}

/// The rustls server configuration of the chosen policy, server pair and client CAs; a
/// configuration the policy or the client CAs cannot make is a problem of that material.
fn server_config(
    c: &Chosen,
    server: &material::ServerMaterial,
    resumption: &Resumption,
) -> Result<Arc<ServerConfig>, Problem> {
    let store = c.client_roots.as_ref().map(|r| r.store.clone());
    tls_server::build(&c.policy, server.certified.clone(), store, resumption).map_err(|e| {
        let material = match e {
            tls_server::ServerConfigError::ClientCa(_) => Material::ClientCa,
            _ => Material::Policy,
        };
        Problem {
            material,
            message: e.to_string(),
        }
    })
}

fn read_parts(src: &GivenSources<'_>, files: &Files, problems: &mut Vec<Problem>) -> Parts {
    let mut fail = |material: Material, message: String| problems.push(Problem { material, message });
    let policy = match src.policy_file {
        Some(p) => Policy::from_file(files, p).map_err(|e| {
            for p in e.0 {
                fail(Material::Policy, p.to_string());
            }
        }),
        None => Ok(Policy::default()),
    };
    let now = crate::util::now_unix();
    let server = src.tls_dir.map(|dir| {
        let crt = dir.join(material::TLS_CRT);
        material::load_pair(files, &crt, &dir.join(material::TLS_KEY), now)
            .and_then(|m| material::check_sans(&crt, &m.chain[0], src.expect_sans).map(|()| m))
            .map_err(|e| fail(Material::Server, e.to_string()))
    });
    let client_roots = src.client_ca_dir.map(|dir| {
        material::load_roots(files, &dir.join(material::CA_CRT))
            .map(Arc::new)
            .map_err(|e| fail(Material::ClientCa, e.to_string()))
    });
    let token_keys = src
        .token_key_dir
        .map(|dir| TokenKeys::read_dir(files, dir).map_err(|e| fail(Material::TokenKeys, e.to_string())));
    let tls_target = src.db.filter(|t| DbTls::wanted(t));
    let db_ca = tls_target.map(|t| DbCa::load(files, t).map_err(|e| fail(Material::DbCa, e.to_string())));
    let db_client =
        tls_target.map(|t| ClientCert::load(files, t, now).map_err(|e| fail(Material::DbClient, e.to_string())));
    Parts {
        policy,
        server,
        client_roots,
        token_keys,
        db_ca,
        db_client,
    }
}

/// Each material's new value, or the last good one where the new one failed; `None` when a
/// required material has neither (start-up). A policy that asks for client certificates
/// without a client CA bundle is a problem of the policy.
fn choose(parts: Parts, last: Option<&Snapshot>, src: &Sources, problems: &mut Vec<Problem>) -> Option<Chosen> {
    let policy = parts.policy.and_then(|p| {
        tls_server::check_client_ca(&p, src.client_ca_dir.is_some())
            .map(|()| p)
            .map_err(|e| {
                problems.push(Problem {
                    material: Material::Policy,
                    message: e.to_string(),
                })
            })
    });
    let policy = pick(policy, last.map(|l| l.policy.clone()));
    let server = pick_configured(parts.server, last.and_then(|l| l.server.clone()));
    let token_keys = pick_configured(parts.token_keys, last.and_then(|l| l.token_keys.clone()));
    let client_roots = pick_configured(parts.client_roots, last.and_then(|l| l.client_roots.clone()));
    let last_db = last.and_then(|l| l.db_tls.as_deref());
    let db_tls = match (parts.db_ca, parts.db_client) {
        (Some(ca), Some(client)) => {
            let ca = pick(ca, last_db.map(DbTls::ca));
            let client = pick(client, last_db.map(|t| t.client.clone()));
            ca.zip(client)
                .map(|(ca, client)| Some(Arc::new(DbTls::from_parts(ca, client))))
        }
        _ => Some(None),
    };
    Some(Chosen {
        policy: policy?,
        server: server?,
        client_roots: client_roots?,
        token_keys: token_keys?,
        db_tls: db_tls?,
    })
}

impl Chosen {
    /// The digest of each chosen material.
    fn digests(&self) -> BTreeMap<Material, String> {
        let mut digests = BTreeMap::new();
        // The policy shapes the server's TLS only: db-proxy, with no server certificate,
        // serves none.
        if let Some(s) = &self.server {
            digests.insert(Material::Server, s.digest.clone());
            digests.insert(
                Material::Policy,
                crate::util::sha256_hex(self.policy.describe().as_bytes()),
            );
        }
        if let Some(k) = &self.token_keys {
            digests.insert(Material::TokenKeys, k.digest.clone());
        }
        if let Some(r) = &self.client_roots {
            digests.insert(Material::ClientCa, r.digest.clone());
        }
        if let Some(t) = &self.db_tls {
            digests.insert(Material::DbCa, t.ca_digest.clone());
            if let Some(cl) = &t.client {
                digests.insert(Material::DbClient, cl.digest.clone());
            }
        }
        digests
    }
}

fn describe_cert(c: &CertInfo) -> String {
    format!(
        "  - subject: \"{}\"\n    issuer: \"{}\"\n    sans: [{}]\n    serial: {}\n    not_after: {}\n",
        c.subject,
        c.issuer,
        c.sans.join(", "),
        c.serial,
        c.not_after_rfc3339()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{Ca, KeyType, LeafSpec};

    struct Fixture {
        _dir: tempfile::TempDir,
        ca: Ca,
        sources: Sources,
    }

    fn write_pair(dir: &Path, ca: &Ca) -> String {
        let issued = ca.issue(&LeafSpec::server("localhost", &["localhost"])).unwrap();
        crate::pki::write_secret_dir(dir, &issued, &ca.cert_pem).unwrap();
        let der = material::parse_certs(dir, issued.cert_pem.as_bytes()).unwrap();
        CertInfo::from_der(&der[0]).unwrap().serial
    }

    /// A server pair, its CA as the client CA bundle, and one token key, on disk.
    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("snapshot test CA", KeyType::Ecdsa).unwrap();
        let tls = dir.path().join("tls");
        write_pair(&tls, &ca);
        let tokens = dir.path().join("tokens");
        crate::pki::write_file(&tokens.join("k1"), &crate::token::generate_key_text(), true).unwrap();
        let sources = Sources {
            client_ca_dir: Some(tls.clone()),
            token_key_dir: Some(tokens),
            ..Sources::new(tls)
        };
        Fixture { _dir: dir, ca, sources }
    }

    #[test]
    fn a_database_only_snapshot_has_no_server_configuration_and_says_so() {
        let f = fixture();
        let dir = f.sources.tls_dir.as_deref().unwrap().parent().unwrap().join("db");
        let client = f.ca.issue(&LeafSpec::client("app")).unwrap();
        crate::pki::write_secret_dir(&dir, &client, &f.ca.cert_pem).unwrap();
        let url = format!(
            "postgresql://app@db:26257/app?sslmode=verify-full&sslrootcert={0}/ca.crt&sslcert={0}/tls.crt&sslkey={0}/tls.key",
            dir.display()
        );
        let src = Sources::database(Some(Arc::new(DbTarget::parse(&url).unwrap())));
        let s = Snapshot::load(&src, &Files::disk(), 1).unwrap();
        assert!(s.server_config.is_none() && s.leaf().is_none());
        assert!(!s.digests.contains_key(&Material::Server));
        assert!(!s.digests.contains_key(&Material::Policy), "no TLS server, no policy");
        assert!(s.certificate(Material::DbClient).is_some());
        assert!(s.describe(&src).contains("server_certificate: none\n"));
        assert_eq!(src.dirs(), vec![dir]);
    }

    #[test]
    fn load_reads_every_given_material() {
        let f = fixture();
        let s = Snapshot::load(&f.sources, &Files::disk(), 1).unwrap();
        assert_eq!(s.generation, 1);
        assert!(
            s.leaf().unwrap().subject.ends_with("CN=localhost"),
            "{}",
            s.leaf().unwrap().subject
        );
        for m in [
            Material::Server,
            Material::ClientCa,
            Material::TokenKeys,
            Material::Policy,
        ] {
            assert!(s.digests.contains_key(&m), "{m:?} missing from {:?}", s.digests.keys());
        }
        assert!(s.db_tls.is_none());
    }

    #[test]
    fn load_reports_every_problem_at_once_naming_the_file() {
        let f = fixture();
        let tls = f.sources.tls_dir.clone().unwrap();
        std::fs::write(tls.join("tls.key"), "not a key").unwrap();
        let tokens = f.sources.token_key_dir.clone().unwrap();
        std::fs::write(tokens.join("k1"), "short").unwrap();
        let problems = Snapshot::load(&f.sources, &Files::disk(), 1).unwrap_err();
        let of = |m| problems.iter().find(|p| p.material == m).map(ToString::to_string);
        assert!(
            of(Material::Server).is_some_and(|p| p.contains("tls.key")),
            "{problems:?}"
        );
        assert!(
            of(Material::TokenKeys).is_some_and(|p| p.contains("k1")),
            "{problems:?}"
        );
    }

    #[test]
    fn what_is_given_is_checked_when_a_required_directory_is_missing() {
        let f = fixture();
        std::fs::write(f.sources.token_key_dir.as_ref().unwrap().join("k1"), "short").unwrap();
        let given = GivenSources {
            tls_dir: None,
            ..f.sources.given()
        };
        let problems = check_given(&given, &Files::disk());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].material, Material::TokenKeys);
    }

    #[test]
    fn reload_takes_each_valid_change_and_keeps_the_last_good_of_the_rest() {
        let f = fixture();
        let first = Snapshot::load(&f.sources, &Files::disk(), 1).unwrap();
        let new_serial = write_pair(f.sources.tls_dir.as_deref().unwrap(), &f.ca);
        std::fs::write(f.sources.token_key_dir.as_ref().unwrap().join("k1"), "short").unwrap();
        let (next, problems) = first.reload(&f.sources, &Files::disk(), 2);
        assert_eq!(next.generation, 2);
        assert_eq!(
            next.leaf().unwrap().serial,
            new_serial,
            "the valid certificate is taken"
        );
        assert_eq!(
            next.digests[&Material::TokenKeys],
            first.digests[&Material::TokenKeys],
            "the broken token key keeps the last good keys"
        );
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].material, Material::TokenKeys);
    }

    #[test]
    fn reload_reads_through_the_overlay_of_its_file_reader() {
        let f = fixture();
        let files = Files::disk();
        let first = Snapshot::load(&f.sources, &files, 1).unwrap();
        let issued = f.ca.issue(&LeafSpec::server("localhost", &["localhost"])).unwrap();
        let tls = f.sources.tls_dir.clone().unwrap();
        let data = [
            ("tls.crt", issued.cert_pem.as_bytes()),
            ("tls.key", issued.key_pem.as_bytes()),
            ("ca.crt", f.ca.cert_pem.as_bytes()),
        ]
        .map(|(k, v)| (k.to_string(), v.to_vec()));
        assert!(files.lay_over(&tls, data.into_iter().collect()));
        let (next, problems) = first.reload(&f.sources, &files, 2);
        assert!(problems.is_empty(), "{problems:?}");
        assert_ne!(
            next.leaf().unwrap().serial,
            first.leaf().unwrap().serial,
            "the overlay's certificate is served"
        );
        let (disk_only, _) = first.reload(&f.sources, &Files::disk(), 2);
        assert_eq!(
            disk_only.leaf().unwrap().serial,
            first.leaf().unwrap().serial,
            "another reader sees only the disk"
        );
    }

    #[test]
    fn a_policy_asking_for_client_certificates_without_a_bundle_is_a_policy_problem() {
        let f = fixture();
        let policy = f
            .sources
            .tls_dir
            .as_deref()
            .unwrap()
            .parent()
            .unwrap()
            .join("policy.yaml");
        std::fs::write(&policy, "profile: intermediate\nclient_auth: required\n").unwrap();
        let sources = Sources {
            policy_file: Some(policy),
            client_ca_dir: None,
            ..f.sources.clone()
        };
        let problems = Snapshot::load(&sources, &Files::disk(), 1).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].material, Material::Policy);
        assert!(problems[0].message.contains("--client-ca-dir"), "{}", problems[0]);
    }
}
