//! Small helpers every module may use: the clock in Unix seconds, RFC 3339 rendering,
//! SHA-256 digests in hex, an error's source chain, writing a (secret) file, the configuration
//! exit code. They depend
//! on nothing in the crate.

/// The current time in Unix seconds.
pub fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Unix seconds as RFC 3339 (UTC).
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// SHA-256 of some bytes, lowercase hex (for digests of material).
pub fn sha256_hex(data: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The full `source()` chain of an error, joined with ": " (a source already named by an
/// earlier message is left out).
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut src = err.source();
    while let Some(e) = src {
        let s = e.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        src = e.source();
    }
    parts.join(": ")
}

/// Exit code for configuration errors (EX_USAGE).
pub const EXIT_CONFIG: i32 = 64;

/// Writes a file, creating its directory; `secret` files get mode 0600. Errors name the path.
pub fn write_file(path: &std::path::Path, contents: &str, secret: bool) -> std::io::Result<()> {
    let named = |e: std::io::Error| std::io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(named)?;
    }
    std::fs::write(path, contents).map_err(named)?;
    if secret {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(named)?;
    }
    Ok(())
}
