//! The database DSN in CockroachDB's form:
//! `postgresql://app@host:26257/app?sslmode=verify-full&sslrootcert=…&sslcert=…&sslkey=…`.
//!
//! tokio-postgres does not understand `verify-full` or the `ssl*` file parameters, so the URL
//! is parsed here into a [`DbTarget`], and TLS is configured from it by `tls::client`.
//! `options` (e.g. `--cluster=name` for CockroachDB Serverless) is passed through verbatim.

use std::path::PathBuf;
use std::time::Duration;

use percent_encoding::percent_decode_str;

/// `sslmode` values, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SslMode {
    /// No TLS at all.
    Disable,
    /// TLS, server not authenticated.
    Require,
    /// TLS, chain checked, name not checked.
    VerifyCa,
    /// TLS, chain and name checked.
    VerifyFull,
}

impl SslMode {
    /// The DSN spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

/// A parsed database target.
#[derive(Clone, PartialEq, Eq)]
pub struct DbTarget {
    /// Host name or address (also the name checked by `verify-full`).
    pub host: String,
    /// TCP port (CockroachDB default 26257).
    pub port: u16,
    /// SQL user (the client certificate's CN).
    pub user: String,
    /// Password, if any (client-certificate auth needs none).
    pub password: Option<String>,
    /// Database name.
    pub dbname: String,
    /// TLS mode.
    pub sslmode: SslMode,
    /// CA bundle of the cluster.
    pub sslrootcert: Option<PathBuf>,
    /// Client certificate.
    pub sslcert: Option<PathBuf>,
    /// Client key.
    pub sslkey: Option<PathBuf>,
    /// Passed through as the startup `options` parameter (e.g. `--cluster=name`).
    pub options: Option<String>,
    /// `application_name`.
    pub application_name: Option<String>,
    /// `connect_timeout`, if set in the DSN.
    pub connect_timeout: Option<Duration>,
}

impl std::fmt::Debug for DbTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

const KNOWN: [&str; 7] = [
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "options",
    "application_name",
    "connect_timeout",
];

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().to_string()
}

impl DbTarget {
    /// Parses a DSN; every problem is listed.
    pub fn parse(dsn: &str) -> Result<Self, Vec<String>> {
        let url = url::Url::parse(dsn.trim()).map_err(|e| {
            vec![format!(
                "not a URL ({e}); expected postgresql://user@host:26257/db?sslmode=verify-full&…"
            )]
        })?;
        let mut problems = Vec::new();
        if !matches!(url.scheme(), "postgresql" | "postgres") {
            problems.push(format!("scheme {}: use postgresql://", url.scheme()));
        }
        let host = match url.host_str() {
            Some(h) if !h.is_empty() => h.trim_start_matches('[').trim_end_matches(']').to_string(),
            _ => {
                problems.push("no host; expected postgresql://user@host:26257/db".to_string());
                String::new()
            }
        };
        if url.username().is_empty() {
            problems.push("no user; put the SQL user before @ (it must equal the client certificate's CN)".into());
        }
        let dbname = decode(url.path().trim_start_matches('/'));
        let mut t = Self {
            host,
            port: url.port().unwrap_or(26257),
            user: decode(url.username()),
            password: url.password().map(decode),
            dbname: if dbname.is_empty() { "defaultdb".into() } else { dbname },
            sslmode: SslMode::VerifyFull,
            sslrootcert: None,
            sslcert: None,
            sslkey: None,
            options: None,
            application_name: None,
            connect_timeout: None,
        };
        for (k, v) in url.query_pairs() {
            let v = v.to_string();
            match k.as_ref() {
                "sslmode" => match v.as_str() {
                    "disable" => t.sslmode = SslMode::Disable,
                    "require" => t.sslmode = SslMode::Require,
                    "verify-ca" => t.sslmode = SslMode::VerifyCa,
                    "verify-full" => t.sslmode = SslMode::VerifyFull,
                    "allow" | "prefer" => problems.push(format!(
                        "sslmode={v} may silently fall back to plaintext; use verify-full"
                    )),
                    _ => problems.push(format!("sslmode={v}: unknown; use verify-full")),
                },
                "sslrootcert" => t.sslrootcert = Some(PathBuf::from(v)),
                "sslcert" => t.sslcert = Some(PathBuf::from(v)),
                "sslkey" => t.sslkey = Some(PathBuf::from(v)),
                "options" => t.options = Some(v),
                "application_name" => t.application_name = Some(v),
                "connect_timeout" => match v.parse::<u64>() {
                    Ok(s) if s > 0 => t.connect_timeout = Some(Duration::from_secs(s)),
                    _ => problems.push(format!("connect_timeout={v}: expected whole seconds > 0")),
                },
                other => problems.push(format!("parameter {other}: not supported; known: {}", KNOWN.join(", "))),
            }
        }
        if t.sslmode >= SslMode::VerifyCa && t.sslrootcert.is_none() {
            problems.push(format!(
                "sslmode={} needs sslrootcert=<the cluster's ca.crt>",
                t.sslmode.as_str()
            ));
        }
        if t.sslcert.is_some() != t.sslkey.is_some() {
            problems.push("sslcert and sslkey go together; give both or neither".into());
        }
        if problems.is_empty() { Ok(t) } else { Err(problems) }
    }

    /// The DSN without its password, for logs and `check-config`.
    pub fn redacted(&self) -> String {
        let mut q = vec![format!("sslmode={}", self.sslmode.as_str())];
        let mut push = |k: &str, v: &Option<PathBuf>| {
            if let Some(p) = v {
                q.push(format!("{k}={}", p.display()));
            }
        };
        push("sslrootcert", &self.sslrootcert);
        push("sslcert", &self.sslcert);
        push("sslkey", &self.sslkey);
        if let Some(o) = &self.options {
            q.push(format!("options={o}"));
        }
        let pw = if self.password.is_some() { ":***" } else { "" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!(
            "postgresql://{}{pw}@{host}:{}/{}?{}",
            self.user,
            self.port,
            self.dbname,
            q.join("&")
        )
    }

    /// A tokio-postgres config for this target (TLS is configured separately).
    pub fn pg_config(
        &self,
        connect_timeout: Duration,
        statement_timeout: Duration,
        generation: u64,
    ) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host(&self.host).port(self.port).user(&self.user).dbname(&self.dbname);
        if let Some(p) = &self.password {
            c.password(p);
        }
        let app = self.application_name.clone().unwrap_or_else(|| "tlsward".into());
        c.application_name(format!("{app}/g{generation}"));
        c.connect_timeout(self.connect_timeout.unwrap_or(connect_timeout));
        c.keepalives(true).keepalives_idle(Duration::from_secs(30));
        let mut options = self.options.clone().unwrap_or_default();
        if !statement_timeout.is_zero() {
            if !options.is_empty() {
                options.push(' ');
            }
            options.push_str(&format!("-c statement_timeout={}", statement_timeout.as_millis()));
        }
        if !options.is_empty() {
            c.options(&options);
        }
        c.ssl_mode(if self.sslmode == SslMode::Disable {
            tokio_postgres::config::SslMode::Disable
        } else {
            tokio_postgres::config::SslMode::Require
        });
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cockroach_form() {
        let t = DbTarget::parse("postgresql://app@db.example:26257/app?sslmode=verify-full&sslrootcert=/c/ca.crt&sslcert=/c/client.app.crt&sslkey=/c/client.app.key&options=--cluster%3Dblue-42").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.user.as_str(), t.dbname.as_str()),
            ("db.example", 26257, "app", "app")
        );
        assert_eq!(t.sslmode, SslMode::VerifyFull);
        assert_eq!(t.options.as_deref(), Some("--cluster=blue-42"));
        let c = t.pg_config(Duration::from_secs(3), Duration::from_secs(5), 7);
        assert_eq!(c.get_options(), Some("--cluster=blue-42 -c statement_timeout=5000"));
        assert_eq!(c.get_application_name(), Some("tlsward/g7"));
    }

    #[test]
    fn defaults_port_and_mode() {
        let t = DbTarget::parse("postgres://app@localhost/app?sslrootcert=ca.crt").unwrap();
        assert_eq!(t.port, 26257);
        assert_eq!(t.sslmode, SslMode::VerifyFull);
    }

    #[test]
    fn lists_every_problem() {
        let e = DbTarget::parse("postgresql://localhost/app?sslmode=prefer&sslcert=a&foo=1").unwrap_err();
        assert_eq!(e.len(), 5, "{e:?}");
        assert!(e.iter().any(|p| p.contains("needs sslrootcert")));
        assert!(e.iter().any(|p| p.contains("fall back to plaintext")));
        assert!(e.iter().any(|p| p.contains("parameter foo")));
        assert!(e.iter().any(|p| p.contains("no user")));
        assert!(e.iter().any(|p| p.contains("go together")));
        assert!(
            DbTarget::parse("postgresql://app@h/app?sslmode=verify-full").unwrap_err()[0].contains("needs sslrootcert")
        );
    }

    #[test]
    fn redacts_password() {
        let t = DbTarget::parse("postgresql://app:s3cret@h:1/app?sslmode=require").unwrap();
        assert!(!t.redacted().contains("s3cret"));
        assert!(!format!("{t:?}").contains("s3cret"));
    }
}
