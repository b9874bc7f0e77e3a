//! The tokens one key set has verified, remembered with their claims, so that a client that
//! sends the same token on every request pays for its HMAC, base64 and JSON once instead of on
//! every request (Envoy's `jwt_authn` filter keeps such a cache, its `jwt_cache_config`).
//!
//! What keeps it safe:
//! - only a token whose signature, header and issuer verified, and whose times held when it
//!   was verified, is remembered; its times and lifetime limit are checked again on every use,
//!   so a remembered token expires on time and a smaller `--token-max-ttl` applies at once;
//! - the cache belongs to one [`super::TokenKeys`]: a reload of the key directory makes a new
//!   key set with an empty cache, so a removed key takes its tokens with it;
//! - a presented token is matched by the whole token, compared in constant time (aws-lc's
//!   `CRYPTO_memcmp`; the lookup hash is keyed at random per process), so its time to answer
//!   says nothing about how much of a remembered token it shares;
//! - at most [`CAPACITY`] tokens (quick_cache's S3-FIFO evicts the rest): many distinct valid
//!   tokens cost a bounded amount of memory, and invalid ones are never stored.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use quick_cache::Equivalent;
use quick_cache::sync::Cache;

use super::Claims;

/// The most tokens remembered per key set (each its text, about 200 bytes, and its claims:
/// under 2 MiB in all).
pub(super) const CAPACITY: usize = 4096;

/// A remembered token: the whole compact JWS.
struct Remembered(Box<str>);

/// A token as presented in a request, for the lookup.
struct Presented<'a>(&'a str);

impl Hash for Remembered {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.0.as_bytes());
    }
}

impl Hash for Presented<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.0.as_bytes());
    }
}

impl PartialEq for Remembered {
    fn eq(&self, other: &Self) -> bool {
        Presented(&other.0).equivalent(self)
    }
}

impl Eq for Remembered {}

impl Equivalent<Remembered> for Presented<'_> {
    fn equivalent(&self, key: &Remembered) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(self.0.as_bytes(), key.0.as_bytes()).is_ok()
    }
}

/// Tokens verified by one key set, and their claims.
pub(super) struct VerifiedTokens {
    cache: Cache<Remembered, Arc<Claims>>,
}

impl Default for VerifiedTokens {
    fn default() -> Self {
        Self {
            cache: Cache::new(CAPACITY),
        }
    }
}

impl VerifiedTokens {
    /// The claims of `token` if it was verified before.
    pub(super) fn get(&self, token: &str) -> Option<Arc<Claims>> {
        self.cache.get(&Presented(token))
    }

    /// Remembers that `token` verified, with its claims.
    pub(super) fn remember(&self, token: &str, claims: Arc<Claims>) {
        self.cache.insert(Remembered(token.into()), claims);
    }

    /// How many tokens are remembered.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.cache.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(sub: &str) -> Arc<Claims> {
        Arc::new(Claims {
            iss: "tlsward".into(),
            sub: sub.into(),
            iat: 1,
            exp: 2,
            nbf: None,
        })
    }

    #[test]
    fn a_token_is_found_only_by_its_whole_text() {
        let v = VerifiedTokens::default();
        v.remember("aaa.bbb.ccc", claims("alice"));
        assert_eq!(v.get("aaa.bbb.ccc").unwrap().sub, "alice");
        for other in ["aaa.bbb.cc", "aaa.bbb.ccd", "aaa.bbb.ccc ", ""] {
            assert!(v.get(other).is_none(), "{other:?}");
        }
    }

    #[test]
    fn the_cache_stays_within_its_capacity() {
        let v = VerifiedTokens::default();
        for i in 0..CAPACITY * 3 {
            v.remember(&format!("token-{i}"), claims("x"));
        }
        assert!(v.len() <= CAPACITY, "{} remembered", v.len());
        assert!(v.len() >= CAPACITY / 2, "{} remembered", v.len());
    }
}
