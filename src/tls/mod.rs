//! Everything rustls: the cipher policy, certificate material, and the only two config
//! builders (the HTTPS server's and the database client's). One provider: aws-lc-rs.

pub mod client;
pub mod material;
pub mod policy;
pub mod server;
