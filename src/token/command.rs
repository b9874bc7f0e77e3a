//! `tlsward token issue` and `token new-key`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::{MAX_TTL, TokenKeys, generate_key_text};
use crate::util::EXIT_CONFIG;

/// Arguments of `token issue`.
#[derive(Debug, Args)]
pub struct TokenIssueArgs {
    /// Subject of the token.
    #[arg(long)]
    pub sub: String,
    /// Lifetime (e.g. 15m, 1h; at most 24h).
    #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
    pub ttl: std::time::Duration,
    /// Directory of token keys (the mounted Secret).
    #[arg(long, env = "TLSWARD_TOKEN_KEY_DIR")]
    pub token_key_dir: PathBuf,
}

/// Arguments of `token new-key`.
#[derive(Debug, Args)]
pub struct TokenNewKeyArgs {
    /// Directory of token keys.
    #[arg(long, env = "TLSWARD_TOKEN_KEY_DIR")]
    pub token_key_dir: PathBuf,
    /// Key id (file name); it must sort after the current ones to become the signing key.
    #[arg(long)]
    pub kid: String,
}

/// Runs `token issue`: prints a token, or says why not (exit 64).
pub fn issue(a: &TokenIssueArgs) -> ExitCode {
    if a.ttl.is_zero() || a.ttl > MAX_TTL {
        eprintln!("--ttl must be between 1s and 24h: tokens are short-lived");
        return ExitCode::from(EXIT_CONFIG as u8);
    }
    match TokenKeys::load_dir(&a.token_key_dir) {
        Ok(keys) => {
            println!("{}", keys.issue(&a.sub, a.ttl, crate::util::now_unix()));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("--token-key-dir (TLSWARD_TOKEN_KEY_DIR): {e}");
            ExitCode::from(EXIT_CONFIG as u8)
        }
    }
}

/// Runs `token new-key`: writes a new key (never over an existing one); its path.
pub fn new_key(a: &TokenNewKeyArgs) -> std::io::Result<PathBuf> {
    let path = a.token_key_dir.join(&a.kid);
    if path.exists() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{} exists; choose a new --kid", path.display()),
        ));
    }
    crate::util::write_file(&path, &generate_key_text(), true)?;
    Ok(path)
}
