//! The protocol versions as the wire writes them: what the ClientHellos offer, the suite table
//! is filtered by and the report names. Their own module, so that the hello codec and the suite
//! table (which the codec reads) do not import each other.

/// SSLv3.
pub(crate) const SSL3: u16 = 0x0300;
/// TLS 1.0.
pub(crate) const TLS10: u16 = 0x0301;
/// TLS 1.1.
pub(crate) const TLS11: u16 = 0x0302;
/// TLS 1.2.
pub(crate) const TLS12: u16 = 0x0303;
/// TLS 1.3.
pub(crate) const TLS13: u16 = 0x0304;
