//! `tlsward certs dev`: writes the dev PKI and says where.

use std::path::PathBuf;

use clap::Args;

use super::{DevPkiOptions, KeyType, PkiError, generate_dev};

/// Arguments of `certs dev`.
#[derive(Debug, Args)]
pub struct CertsDevArgs {
    /// Output directory (created; existing files are replaced).
    #[arg(long, env = "TLSWARD_CERTS_OUT")]
    pub out: PathBuf,
    /// Extra subjectAltName for the HTTPS server certificate (repeatable).
    #[arg(long = "san")]
    pub sans: Vec<String>,
    /// SQL user: the DB client certificate's CN.
    #[arg(long, default_value = "app")]
    pub db_user: String,
    /// Key algorithm.
    #[arg(long, value_enum, default_value = "ecdsa")]
    pub key_type: KeyType,
}

/// Runs `certs dev`; the text to print.
pub fn dev(a: CertsDevArgs) -> Result<String, PkiError> {
    let opts = DevPkiOptions {
        extra_sans: a.sans,
        db_user: a.db_user,
        key_type: a.key_type,
    };
    let layout = generate_dev(&a.out, &opts)?;
    Ok(format!(
        "dev PKI written:\n  {}/ca.crt (CA)\n  {}/ (HTTPS server: tls.crt, tls.key, ca.crt)\n  {}/ (DB server)\n  {}/ (DB client: tls.*, client.{}.*)\n  {}/ (token keys)",
        layout.ca.display(),
        layout.server.display(),
        layout.db_server.display(),
        layout.db_client.display(),
        opts.db_user,
        layout.tokens.display()
    ))
}
