//! Short-lived signed bearer tokens: compact JWS (JWT) with HMAC-SHA256 and a `kid` header.
//!
//! Keys are the files of one directory (a mounted Secret): the file name is the key id, the
//! trimmed contents (at least 32 bytes) the secret. Several keys verify at once so keys can
//! rotate; the key whose id sorts last signs, so name keys by date (`k20261129`). Hidden
//! entries (kubelet's `..data`, `..2026_…`) are skipped.

pub mod command;
mod verified;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};

/// The `iss` claim of every token.
const ISSUER: &str = "tlsward";
/// The longest lifetime a token may be issued with.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// Clock skew tolerated on `exp` and `iat`.
const LEEWAY_SECS: i64 = 30;
const MIN_KEY_BYTES: usize = 32;

/// Why a token directory cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct KeyError {
    /// The directory or file at fault.
    pub path: String,
    /// Why.
    pub reason: String,
}

/// Why a token is refused; the `Display` text is safe to send to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No `Authorization: Bearer` header.
    #[error("missing bearer token")]
    Missing,
    /// Not a well-formed token.
    #[error("malformed token")]
    Malformed,
    /// Signed with a key id that is not (or no longer) accepted.
    #[error("token signed with an unknown key id")]
    UnknownKid,
    /// The signature does not verify.
    #[error("bad token signature")]
    BadSignature,
    /// Past its `exp`.
    #[error("token expired")]
    Expired,
    /// Issued for longer than the server accepts (or with a lifetime that does not compute).
    #[error("token lifetime exceeds the server's limit")]
    TooLong,
    /// Its `nbf` is still in the future.
    #[error("token not valid yet")]
    NotYetValid,
    /// Its header lists a critical extension (`crit`) this server does not implement.
    #[error("token uses an unsupported critical header extension")]
    UnsupportedCrit,
}

/// The claims of a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer, always [`ISSUER`].
    pub iss: String,
    /// Subject: who the token was issued to.
    pub sub: String,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds.
    pub exp: i64,
    /// Not before, Unix seconds (optional; tlsward does not issue it, but honours it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    typ: Option<String>,
    kid: Option<String>,
    /// RFC 7515 §4.1.11: extensions the recipient must understand. None are implemented,
    /// so any entry refuses the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    crit: Option<Vec<String>>,
}

/// The accepted keys, sorted by id; the last one signs.
#[derive(Clone)]
pub struct TokenKeys {
    keys: Vec<(String, hmac::Key)>,
    /// The tokens these keys have verified (shared by the clones of this key set only).
    verified: Arc<verified::VerifiedTokens>,
    /// Identifies the key set without revealing it: SHA-256 over each key id and its key
    /// check value ([`key_check_value`]), never over the secrets themselves. Shown in
    /// `/reload-status` and Events, and compared to detect a change.
    pub digest: String,
}

/// A key's check value: the first 8 bytes (hex) of HMAC-SHA256(secret, a fixed label). It
/// tells two keys apart (and the same key on two replicas) but, HMAC being a PRF, says
/// nothing about the secret, unlike a plain hash that can be checked against guesses.
fn key_check_value(key: &hmac::Key) -> String {
    let tag = hmac::sign(key, b"tlsward token key check value v1");
    tag.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys").field("kids", &self.kids()).finish()
    }
}

/// A new random key, as the text of a key file.
pub fn generate_key_text() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{}\n", B64.encode(bytes))
}

fn valid_kid(kid: &str) -> bool {
    !kid.is_empty() && kid.len() <= 64 && kid.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

impl TokenKeys {
    /// Reads every key of a directory on disk.
    pub fn load_dir(dir: &Path) -> Result<Self, KeyError> {
        Self::read_dir(&crate::files::Files::disk(), dir)
    }

    /// Reads every key of a directory through `files` (which may hold the Secret's newer data).
    pub fn read_dir(files: &crate::files::Files, dir: &Path) -> Result<Self, KeyError> {
        let err = |path: &Path, reason: String| KeyError {
            path: path.display().to_string(),
            reason,
        };
        let entries = files
            .read_dir(dir)
            .map_err(|e| err(dir, format!("cannot read the token-key directory: {e}")))?;
        let mut found = Vec::new();
        for (name, bytes) in entries {
            let path = dir.join(&name);
            if !valid_kid(&name) {
                return Err(err(&path, "key file names are key ids: 1-64 of [A-Za-z0-9_.-]".into()));
            }
            let secret = bytes.trim_ascii();
            if secret.len() < MIN_KEY_BYTES {
                return Err(err(
                    &path,
                    format!(
                        "key is {} bytes; at least {MIN_KEY_BYTES} are needed (make one with `tlsward token new-key`)",
                        secret.len()
                    ),
                ));
            }
            found.push((name, secret.to_vec()));
        }
        if found.is_empty() {
            return Err(err(
                dir,
                "no key files; add one (e.g. `tlsward certs dev` writes tokens/k<date>)".into(),
            ));
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        let keys: Vec<(String, hmac::Key)> = found
            .into_iter()
            .map(|(kid, s)| (kid, hmac::Key::new(hmac::HMAC_SHA256, &s)))
            .collect();
        let listing: String = keys
            .iter()
            .map(|(kid, key)| format!("{kid}:{}\n", key_check_value(key)))
            .collect();
        Ok(Self {
            digest: crate::util::sha256_hex(listing.as_bytes()),
            keys,
            verified: Arc::default(),
        })
    }

    /// The accepted key ids, sorted; the last one signs.
    pub fn kids(&self) -> Vec<&str> {
        self.keys.iter().map(|(k, _)| k.as_str()).collect()
    }

    /// Issues a token for `sub` valid for `ttl` from `now` (Unix seconds).
    pub fn issue(&self, sub: &str, ttl: Duration, now: i64) -> String {
        let (kid, key) = self.keys.last().expect("load_dir never returns an empty set");
        let header = Header {
            alg: "HS256".into(),
            typ: Some("JWT".into()),
            kid: Some(kid.clone()),
            crit: None,
        };
        let claims = Claims {
            iss: ISSUER.into(),
            sub: sub.into(),
            iat: now,
            exp: now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)),
            nbf: None,
        };
        let signing_input = format!(
            "{}.{}",
            B64.encode(serde_json::to_vec(&header).expect("header serializes")),
            B64.encode(serde_json::to_vec(&claims).expect("claims serialize"))
        );
        let sig = hmac::sign(key, signing_input.as_bytes());
        format!("{signing_input}.{}", B64.encode(sig.as_ref()))
    }

    /// Verifies a token at `now` (Unix seconds) and returns its claims. Tokens issued for
    /// longer than `max_ttl` are refused, so a leaked long-lived token is worthless; so are
    /// tokens issued in the future (beyond the clock-skew leeway), not valid yet (`nbf`), or
    /// with a critical header extension. Time arithmetic is checked: no claim value, however
    /// large, wraps around a limit. A token these keys verified before is not verified again
    /// (its times are: [`verified`]).
    pub fn verify(&self, token: &str, now: i64, max_ttl: Duration) -> Result<Arc<Claims>, TokenError> {
        if let Some(claims) = self.verified.get(token) {
            check_times(&claims, now, max_ttl)?;
            return Ok(claims);
        }
        let claims = self.verify_signed(token)?;
        check_times(&claims, now, max_ttl)?;
        let claims = Arc::new(claims);
        self.verified.remember(token, claims.clone());
        Ok(claims)
    }

    /// The claims of a well-formed token signed by one of these keys for this issuer, its
    /// times not checked.
    fn verify_signed(&self, token: &str) -> Result<Claims, TokenError> {
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(TokenError::Malformed);
        };
        let header: Header = decode_json(h)?;
        if header.alg != "HS256" {
            return Err(TokenError::Malformed);
        }
        if header.crit.is_some() {
            return Err(TokenError::UnsupportedCrit);
        }
        let kid = header.kid.ok_or(TokenError::UnknownKid)?;
        let (_, key) = self
            .keys
            .iter()
            .find(|(k, _)| *k == kid)
            .ok_or(TokenError::UnknownKid)?;
        let sig = B64.decode(s).map_err(|_| TokenError::Malformed)?;
        let signing_input = &token[..h.len() + 1 + c.len()];
        hmac::verify(key, signing_input.as_bytes(), &sig).map_err(|_| TokenError::BadSignature)?;
        let claims: Claims = decode_json(c)?;
        if claims.iss != ISSUER {
            return Err(TokenError::Malformed);
        }
        Ok(claims)
    }
}

/// `iat` not in the future, `exp` not past, `nbf` reached, and `exp - iat` within `max_ttl`,
/// all with [`LEEWAY_SECS`] of clock skew and checked arithmetic.
fn check_times(claims: &Claims, now: i64, max_ttl: Duration) -> Result<(), TokenError> {
    let late = now.saturating_add(LEEWAY_SECS);
    if claims.iat > late {
        return Err(TokenError::Malformed);
    }
    if claims.exp.saturating_add(LEEWAY_SECS) <= now {
        return Err(TokenError::Expired);
    }
    if claims.nbf.is_some_and(|nbf| nbf > late) {
        return Err(TokenError::NotYetValid);
    }
    let max = i64::try_from(max_ttl.as_secs()).unwrap_or(i64::MAX);
    match claims.exp.checked_sub(claims.iat) {
        Some(lifetime) if lifetime <= max => Ok(()),
        _ => Err(TokenError::TooLong),
    }
}

fn decode_json<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, TokenError> {
    let bytes = B64.decode(part).map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn refuses_tokens_issued_for_longer_than_allowed() {
        let (_d, k) = keys(&["k1"]);
        let t = k.issue("alice", Duration::from_secs(7200), 1000);
        assert_eq!(k.verify(&t, 1001, HOUR), Err(TokenError::TooLong));
        assert!(k.verify(&t, 1001, 2 * HOUR).is_ok());
    }

    fn keys(names: &[&str]) -> (tempfile::TempDir, TokenKeys) {
        let dir = tempfile::tempdir().unwrap();
        for n in names {
            std::fs::write(dir.path().join(n), generate_key_text()).unwrap();
        }
        std::fs::create_dir(dir.path().join("..2026_11_29")).unwrap();
        let k = TokenKeys::load_dir(dir.path()).unwrap();
        (dir, k)
    }

    #[test]
    fn newest_kid_signs_and_older_still_verify() {
        let (dir, both) = keys(&["k1", "k2"]);
        let t = both.issue("alice", Duration::from_secs(60), 1000);
        assert!(t.starts_with(&B64.encode(br#"{"alg":"HS256","typ":"JWT","kid":"k2"}"#)));
        assert_eq!(both.verify(&t, 1010, HOUR).unwrap().sub, "alice");
        std::fs::remove_file(dir.path().join("k2")).unwrap();
        let only_k1 = TokenKeys::load_dir(dir.path()).unwrap();
        assert_eq!(only_k1.verify(&t, 1010, HOUR), Err(TokenError::UnknownKid));
        let old = only_k1.issue("bob", Duration::from_secs(60), 1000);
        std::fs::write(dir.path().join("k2"), generate_key_text()).unwrap();
        let again = TokenKeys::load_dir(dir.path()).unwrap();
        assert_eq!(again.verify(&old, 1010, HOUR).unwrap().sub, "bob");
    }

    #[test]
    fn refuses_expired_tampered_and_malformed() {
        let (_d, k) = keys(&["k1"]);
        let t = k.issue("alice", Duration::from_secs(60), 1000);
        assert_eq!(k.verify(&t, 1000 + 60 + LEEWAY_SECS, HOUR), Err(TokenError::Expired));
        // Change the signature's first character: every bit of it is signature (the last
        // character of 32 bytes in base64url carries padding bits, so changing it may only
        // make the encoding malformed).
        let at = t.rfind('.').unwrap() + 1;
        let mut forged = t.clone();
        let flipped = if t[at..].starts_with('A') { "B" } else { "A" };
        forged.replace_range(at..at + 1, flipped);
        assert_eq!(k.verify(&forged, 1001, HOUR), Err(TokenError::BadSignature));
        assert_eq!(k.verify("a.b", 1001, HOUR), Err(TokenError::Malformed));
        let none_alg = format!(
            "{}.{}.",
            B64.encode(br#"{"alg":"none","kid":"k1"}"#),
            t.split('.').nth(1).unwrap()
        );
        assert_eq!(k.verify(&none_alg, 1001, HOUR), Err(TokenError::Malformed));
    }

    /// Signs arbitrary header and claims JSON with `k`'s signing key, as a forger holding
    /// the key (or a buggy issuer) could.
    fn sign_raw(dir: &Path, kid: &str, header: &str, claims: &str) -> String {
        let secret = std::fs::read(dir.join(kid)).unwrap();
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret.trim_ascii());
        let input = format!("{}.{}", B64.encode(header), B64.encode(claims));
        let sig = hmac::sign(&key, input.as_bytes());
        format!("{input}.{}", B64.encode(sig.as_ref()))
    }

    const HS256_K1: &str = r#"{"alg":"HS256","typ":"JWT","kid":"k1"}"#;

    #[test]
    fn refuses_a_lifetime_that_overflows_instead_of_wrapping_under_the_limit() {
        let (d, k) = keys(&["k1"]);
        let claims = format!(
            r#"{{"iss":"tlsward","sub":"x","iat":{},"exp":{}}}"#,
            -i64::MAX,
            i64::MAX - 100
        );
        let t = sign_raw(d.path(), "k1", HS256_K1, &claims);
        assert_eq!(k.verify(&t, 1000, HOUR), Err(TokenError::TooLong));
    }

    #[test]
    fn refuses_iat_in_the_future_beyond_the_skew() {
        let (d, k) = keys(&["k1"]);
        let claims = |iat: i64| format!(r#"{{"iss":"tlsward","sub":"x","iat":{iat},"exp":{}}}"#, iat + 60);
        let early = sign_raw(d.path(), "k1", HS256_K1, &claims(1000 + LEEWAY_SECS + 1));
        assert_eq!(k.verify(&early, 1000, HOUR), Err(TokenError::Malformed));
        let within = sign_raw(d.path(), "k1", HS256_K1, &claims(1000 + LEEWAY_SECS));
        assert!(k.verify(&within, 1000, HOUR).is_ok());
    }

    #[test]
    fn honours_nbf() {
        let (d, k) = keys(&["k1"]);
        let claims = r#"{"iss":"tlsward","sub":"x","iat":1000,"exp":1600,"nbf":1300}"#;
        let t = sign_raw(d.path(), "k1", HS256_K1, claims);
        assert_eq!(k.verify(&t, 1200, HOUR), Err(TokenError::NotYetValid));
        assert_eq!(k.verify(&t, 1300, HOUR).unwrap().nbf, Some(1300));
    }

    #[test]
    fn refuses_unknown_critical_header_extensions() {
        let (d, k) = keys(&["k1"]);
        let header = r#"{"alg":"HS256","kid":"k1","crit":["exp"],"exp":1}"#;
        let claims = r#"{"iss":"tlsward","sub":"x","iat":1000,"exp":1060}"#;
        let t = sign_raw(d.path(), "k1", header, claims);
        assert_eq!(k.verify(&t, 1001, HOUR), Err(TokenError::UnsupportedCrit));
        let plain = sign_raw(d.path(), "k1", HS256_K1, claims);
        assert!(k.verify(&plain, 1001, HOUR).is_ok());
    }

    #[test]
    fn a_remembered_token_still_expires_and_still_obeys_the_lifetime_limit() {
        let (_d, k) = keys(&["k1"]);
        let t = k.issue("alice", Duration::from_secs(600), 1000);
        assert_eq!(k.verify(&t, 1001, HOUR).unwrap().sub, "alice");
        assert_eq!(k.verified.len(), 1);
        assert_eq!(k.verify(&t, 1000 + 600 + LEEWAY_SECS, HOUR), Err(TokenError::Expired));
        assert_eq!(k.verify(&t, 1001, Duration::from_secs(60)), Err(TokenError::TooLong));
        assert!(k.verify(&t, 1002, HOUR).is_ok());
    }

    #[test]
    fn a_token_refused_at_first_is_not_remembered() {
        let (d, k) = keys(&["k1"]);
        let t = k.issue("alice", Duration::from_secs(60), 1000);
        assert_eq!(k.verify(&t, 5000, HOUR), Err(TokenError::Expired));
        let wrong_iss = r#"{"iss":"other","sub":"x","iat":1000,"exp":1060}"#;
        let other = sign_raw(d.path(), "k1", HS256_K1, wrong_iss);
        assert_eq!(k.verify(&other, 1001, HOUR), Err(TokenError::Malformed));
        assert_eq!(k.verified.len(), 0);
    }

    #[test]
    fn a_forgery_of_a_remembered_token_is_still_refused() {
        let (_d, k) = keys(&["k1"]);
        let t = k.issue("alice", Duration::from_secs(60), 1000);
        assert!(k.verify(&t, 1001, HOUR).is_ok());
        let at = t.rfind('.').unwrap() + 1;
        let mut forged = t.clone();
        let flipped = if t[at..].starts_with('A') { "B" } else { "A" };
        forged.replace_range(at..at + 1, flipped);
        assert_eq!(k.verify(&forged, 1001, HOUR), Err(TokenError::BadSignature));
        let mut longer = t.clone();
        longer.push_str("AAAA");
        assert_eq!(k.verify(&longer, 1001, HOUR), Err(TokenError::BadSignature));
    }

    #[test]
    fn a_reloaded_key_set_forgets_the_tokens_of_a_removed_key() {
        let (dir, both) = keys(&["k1", "k2"]);
        let t = both.issue("alice", Duration::from_secs(60), 1000);
        assert!(both.verify(&t, 1001, HOUR).is_ok());
        std::fs::remove_file(dir.path().join("k2")).unwrap();
        let reloaded = TokenKeys::load_dir(dir.path()).unwrap();
        assert_eq!(reloaded.verify(&t, 1001, HOUR), Err(TokenError::UnknownKid));
    }

    #[test]
    fn digest_is_not_a_plain_hash_of_the_secrets_and_follows_a_change() {
        let (d, k) = keys(&["k1"]);
        let secret = std::fs::read(d.path().join("k1")).unwrap();
        let mut plain = b"k1\0".to_vec();
        plain.extend_from_slice(secret.trim_ascii());
        plain.push(0);
        assert_ne!(k.digest, crate::util::sha256_hex(&plain));
        assert_ne!(k.digest, crate::util::sha256_hex(secret.trim_ascii()));
        assert_eq!(TokenKeys::load_dir(d.path()).unwrap().digest, k.digest);
        std::fs::write(d.path().join("k1"), generate_key_text()).unwrap();
        assert_ne!(TokenKeys::load_dir(d.path()).unwrap().digest, k.digest);
    }

    #[test]
    fn key_directory_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let e = TokenKeys::load_dir(dir.path()).unwrap_err();
        assert!(e.reason.contains("no key files"), "{e}");
        std::fs::write(dir.path().join("short"), "abc").unwrap();
        let e = TokenKeys::load_dir(dir.path()).unwrap_err();
        assert!(e.path.ends_with("short") && e.reason.contains("at least 32"), "{e}");
        assert!(TokenKeys::load_dir(&dir.path().join("nope")).is_err());
    }
}
