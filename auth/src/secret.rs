use std::{fmt, net::IpAddr};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::AuthError;

/// The prefix of every token Drover makes (so secret scanners and a person can tell one).
pub const TOKEN_PREFIX: &str = "drover_";

/// 32 random bytes from the operating system.
pub(crate) fn random_32() -> Result<[u8; 32], AuthError> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| AuthError::Random(e.to_string()))?;
    Ok(b)
}

/// A new token: `drover_` and 64 hex digits (256 random bits).
pub fn new_token() -> Result<String, AuthError> {
    Ok(format!("{TOKEN_PREFIX}{}", hex::encode(random_32()?)))
}

/// A new opaque random value (session IDs, CSRF tokens): 64 hex digits.
pub(crate) fn new_opaque() -> Result<String, AuthError> {
    Ok(hex::encode(random_32()?))
}

/// The SHA-256 of a secret: what is stored and compared, never the secret itself.
pub(crate) fn digest(secret: &str) -> [u8; 32] {
    let d = Sha256::digest(secret.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(&d);
    out
}

/// Constant-time equality of two byte strings (the length is not secret).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// A secret held in memory as its SHA-256 only (the cluster token), compared in constant
/// time. Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct Secret {
    digest: [u8; 32],
}

impl Secret {
    /// Keep `secret` (at least 32 characters: it is the only thing between the network and
    /// the cluster's API).
    pub fn new(secret: &str) -> Result<Self, AuthError> {
        let len = secret.chars().count();
        if len < 32 {
            return Err(AuthError::WeakClusterToken(len));
        }
        Ok(Self {
            digest: digest(secret),
        })
    }

    /// Whether `presented` is this secret (constant time).
    pub fn matches(&self, presented: &str) -> bool {
        ct_eq(&digest(presented), &self.digest)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Whether `ip` is a loopback address (127.0.0.0/8, ::1, and ::ffff:127.0.0.0/104).
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_256_bit_and_distinct() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 64);
        assert_ne!(a, b);
    }

    #[test]
    fn secret_matches_only_itself_and_hides_in_debug() {
        let s = Secret::new("0123456789abcdef0123456789abcdef").unwrap();
        assert!(s.matches("0123456789abcdef0123456789abcdef"));
        assert!(!s.matches("0123456789abcdef0123456789abcdeF"));
        assert!(!s.matches(""));
        assert_eq!(format!("{s:?}"), "Secret(..)");
        assert!(matches!(
            Secret::new("short"),
            Err(AuthError::WeakClusterToken(5))
        ));
    }

    #[test]
    fn loopback_addresses() {
        for a in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"] {
            assert!(is_loopback(a.parse().unwrap()), "{a}");
        }
        for a in [
            "0.0.0.0",
            "10.0.0.1",
            "::",
            "192.168.1.2",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_loopback(a.parse().unwrap()), "{a}");
        }
    }
}
