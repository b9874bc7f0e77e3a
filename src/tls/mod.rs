//! Everything rustls: the cipher policy, certificate material, the config builders of the
//! product's own connections (the HTTPS server's and the database client's; the scanner builds
//! its probing clients in `scan`), and where a rustls error is found in an error chain. One
//! provider: aws-lc-rs.

pub(crate) mod client;
pub mod material;
pub(crate) mod policy;
pub(crate) mod server;

/// The rustls error somewhere in `err`'s source chain (also inside an `io::Error`, whose own
/// `source()` skips what it wraps).
pub fn rustls_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(t) = e.downcast_ref::<rustls::Error>() {
            return Some(t);
        }
        if let Some(t) = e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(t);
        }
        current = e.source();
    }
    None
}
