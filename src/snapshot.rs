//! One immutable snapshot of everything that reloads: the server certificate and key, the
//! cipher policy, the client CAs and the token keys, read in one pass and validated together.
//! The running server publishes it through one pointer; established connections keep the
//! `ServerConfig` they handshook with.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;

use crate::tls::material::{self, CertInfo};
use crate::tls::policy::{ClientAuth, Policy};
use crate::tls::server as tls_server;
use crate::token::TokenKeys;

/// Where the reloadable inputs live: directories (mounted Secrets / ConfigMaps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources {
    /// `tls.crt` + `tls.key`.
    pub tls_dir: PathBuf,
    /// The policy YAML, if any.
    pub policy_file: Option<PathBuf>,
    /// `ca.crt` of client CAs, if any.
    pub client_ca_dir: Option<PathBuf>,
    /// Token keys.
    pub token_key_dir: PathBuf,
}

/// A validated, ready-to-serve set of TLS and token material.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Increments with every published snapshot.
    pub generation: u64,
    /// The rustls config for new handshakes.
    pub server_config: Arc<ServerConfig>,
    /// The policy it was built from.
    pub policy: Policy,
    /// The served chain (leaf first).
    pub server_chain: Vec<CertInfo>,
    /// Client CAs, when client authentication is on.
    pub client_cas: Option<Vec<CertInfo>>,
    /// Bearer-token keys.
    pub token_keys: TokenKeys,
}

impl Snapshot {
    /// Reads and validates every source; all problems are returned, each naming its file.
    pub fn load(src: &Sources, generation: u64) -> Result<Self, Vec<String>> {
        Self::load_parts(
            Some(&src.tls_dir),
            src.policy_file.as_deref(),
            src.client_ca_dir.as_deref(),
            Some(&src.token_key_dir),
            generation,
        )
    }

    /// Like [`Snapshot::load`], but checks whatever parts are given, so a configuration that
    /// misses one directory still has every other problem reported. A missing required part
    /// (already reported by the caller) makes the result an error.
    pub fn load_parts(
        tls_dir: Option<&Path>,
        policy_file: Option<&Path>,
        client_ca_dir: Option<&Path>,
        token_key_dir: Option<&Path>,
        generation: u64,
    ) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let policy = match policy_file {
            Some(p) => Policy::from_file(p)
                .map_err(|e| problems.extend(e.0.iter().map(|p| format!("policy {p}"))))
                .ok(),
            None => Some(Policy::default()),
        };
        let now = material::now_unix();
        let server = tls_dir.and_then(|dir| {
            material::load_pair(
                &dir.join(material::TLS_CRT),
                &dir.join(material::TLS_KEY),
                now,
            )
            .map_err(|e| problems.push(format!("server certificate {e}")))
            .ok()
        });
        let client_roots = match client_ca_dir {
            Some(dir) => material::load_roots(&dir.join(material::CA_CRT))
                .map_err(|e| problems.push(format!("client CA {e}")))
                .ok(),
            None => None,
        };
        let token_keys = token_key_dir.and_then(|dir| {
            TokenKeys::load_dir(dir)
                .map_err(|e| problems.push(format!("token keys {e}")))
                .ok()
        });
        let (Some(policy), Some(server), Some(token_keys)) = (policy, server, token_keys) else {
            return Err(problems);
        };
        if policy.client_auth != ClientAuth::None && client_ca_dir.is_none() {
            problems.push(format!(
                "policy client_auth is {}: set --client-ca-dir (TLSWARD_CLIENT_CA_DIR) to the directory with the client CAs' ca.crt",
                policy.client_auth.as_str()
            ));
            return Err(problems);
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let (roots, client_cas) = match client_roots {
            Some((r, i)) => (Some(r), Some(i)),
            None => (None, None),
        };
        let server_config = tls_server::build(&policy, server.certified.clone(), roots)
            .map_err(|e| vec![e.to_string()])?;
        Ok(Self {
            generation,
            server_config,
            policy,
            server_chain: server.chain,
            client_cas,
            token_keys,
        })
    }

    /// The normalized TLS part of `check-config`.
    pub fn describe(&self, src: &Sources) -> String {
        let mut out = String::from("tls:\n");
        for line in self.policy.describe().lines() {
            out.push_str(&format!("  {line}\n"));
        }
        out.push_str(&format!(
            "  versions: [{}]\n",
            self.policy.version_names().join(", ")
        ));
        out.push_str(&format!(
            "server_certificate:  # {}\n",
            src.tls_dir.display()
        ));
        for c in &self.server_chain {
            out.push_str(&describe_cert(c));
        }
        match (&self.client_cas, &src.client_ca_dir) {
            (Some(cas), Some(dir)) => {
                out.push_str(&format!(
                    "client_cas:  # {}\n",
                    dir.join(material::CA_CRT).display()
                ));
                for c in cas {
                    out.push_str(&describe_cert(c));
                }
            }
            _ => out.push_str("client_cas: none\n"),
        }
        let kids = self.token_keys.kids();
        out.push_str(&format!(
            "token_keys:  # {}\n  accepted_kids: [{}]\n  signing_kid: {}\n",
            src.token_key_dir.display(),
            kids.join(", "),
            kids.last().copied().unwrap_or("-")
        ));
        out
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
