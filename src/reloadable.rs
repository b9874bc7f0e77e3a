//! The kinds of material tlsward reloads ([`Material`]), named once for the metrics' labels,
//! the logs, `/reload-status` and the Kubernetes Events. Below every module that reports on
//! them, so that each takes a `Material`, never a free-form string.

/// A reloadable material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Material {
    /// The server certificate chain and key.
    Server,
    /// The cipher policy.
    Policy,
    /// The client CA bundle.
    ClientCa,
    /// The token keys.
    TokenKeys,
    /// The database's CA bundle (`sslrootcert`).
    DbCa,
    /// The database client certificate and key (`sslcert`, `sslkey`).
    DbClient,
}

impl Material {
    /// Every material, in report order.
    pub const ALL: [Material; 6] = [
        Self::Server,
        Self::Policy,
        Self::ClientCa,
        Self::TokenKeys,
        Self::DbCa,
        Self::DbClient,
    ];

    /// The label used in metrics, logs and `/reload-status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Server => "server",
            Self::Policy => "policy",
            Self::ClientCa => "client_ca",
            Self::TokenKeys => "token_keys",
            Self::DbCa => "db_ca",
            Self::DbClient => "db_client",
        }
    }

    /// The human-readable name.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Server => "server certificate",
            Self::Policy => "policy",
            Self::ClientCa => "client CA",
            Self::TokenKeys => "token keys",
            Self::DbCa => "database CA",
            Self::DbClient => "database client certificate",
        }
    }
}
