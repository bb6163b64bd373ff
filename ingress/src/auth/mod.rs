//! Who is calling: the token verifier port, the claims it yields, and the group rules of
//! docs/contract.md (Tokens and groups).
//!
//! - [`TokenVerifier`] is the port: [`JwksVerifier`] implements it against any [`JwksSource`]:
//!   a fixed set ([`StaticJwks`]) or one fetched from a URL and cached ([`RemoteJwks`], a Cognito
//!   pool's).
//! - [`DevIssuer`] is the local dev token issuer: an RSA key in the data dir, Cognito-shaped ID
//!   tokens, and the JWKS that verifies them.
//!
//! Tokens are secrets: nothing here logs them, and no error message quotes them.

mod cache;
mod issuer;
mod jwks;
mod remote;

pub use cache::{TOKEN_CACHE_ENTRIES, TokenCache};
pub use issuer::{DEV_CLIENT_ID, DEV_ISSUER, DevIssuer};
pub use jwks::{DEFAULT_LEEWAY_SECS, Jwks, JwksSource, JwksVerifier, StaticJwks, VerifierConfig};
pub use remote::{JwksCachePolicy, RemoteJwks};

use async_trait::async_trait;

/// Group that may write every table.
pub const WRITERS_GROUP: &str = "tarn-writers";
/// Group that may read every table's contents.
pub const READERS_GROUP: &str = "tarn-readers";

/// The `token_use` values Cognito puts in its tokens.
pub const TOKEN_USE_ID: &str = "id";
pub const TOKEN_USE_ACCESS: &str = "access";

/// What a verified token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// the user's stable id (`sub`)
    pub sub: String,
    /// `cognito:username` (ID tokens) or `username` (access tokens), else `sub`
    pub username: String,
    /// `cognito:groups`, empty when absent
    pub groups: Vec<String>,
    /// `id` or `access`
    pub token_use: String,
    /// expiry, seconds since the Unix epoch
    pub exp: i64,
    /// the issuer the token was checked against
    pub iss: String,
    /// the client id the token was issued to (`aud` of ID tokens, `client_id` of access tokens)
    pub client_id: String,
}

impl Claims {
    /// The bearer may write table `table`: it holds `tarn-writers` or `tarn-writers-<table>`.
    pub fn can_write(&self, table: &str) -> bool {
        self.in_group(WRITERS_GROUP, table)
    }

    /// The bearer may read the contents of table `table`: it holds `tarn-readers` or
    /// `tarn-readers-<table>`.
    pub fn can_read(&self, table: &str) -> bool {
        self.in_group(READERS_GROUP, table)
    }

    fn in_group(&self, base: &str, table: &str) -> bool {
        self.groups.iter().any(|g| {
            g == base
                || g.strip_prefix(base)
                    .and_then(|rest| rest.strip_prefix('-'))
                    .is_some_and(|t| t == table)
        })
    }
}

/// Why a token was refused. Messages are lowercase and never contain the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing token")]
    Missing,
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("unsupported token algorithm {0}; only RS256 is accepted")]
    UnsupportedAlgorithm(String),
    #[error("unknown signing key")]
    UnknownKey,
    #[error("invalid token signature")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("token issuer not accepted")]
    WrongIssuer,
    #[error("token audience not accepted")]
    WrongAudience,
    #[error("token use not accepted")]
    WrongTokenUse,
    #[error("token lacks the {0} claim")]
    MissingClaim(&'static str),
    /// the keys could not be had (a JWKS endpoint down); not the caller's fault
    #[error("token keys unavailable: {0}")]
    KeysUnavailable(String),
}

/// The coarse classes of [`AuthError`] the HTTP layer answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthErrorKind {
    /// no token at all (401 `missing_token`)
    Missing,
    /// a token that fails any check but expiry (401 `invalid_token`)
    Invalid,
    /// a genuine token past its `exp` (401 `token_expired`)
    Expired,
    /// the verifier could not get its keys (503)
    Unavailable,
}

impl AuthError {
    pub fn kind(&self) -> AuthErrorKind {
        match self {
            AuthError::Missing => AuthErrorKind::Missing,
            AuthError::Expired => AuthErrorKind::Expired,
            AuthError::KeysUnavailable(_) => AuthErrorKind::Unavailable,
            _ => AuthErrorKind::Invalid,
        }
    }
}

/// The token verifier port.
///
/// Guarantees every implementation gives:
/// - `Ok` only for a token whose signature checks against a key of the trusted set with RS256
///   (no other algorithm, never `none`, never HMAC), whose `iss` is the configured issuer, whose
///   `aud` (ID tokens) or `client_id` (access tokens) is a configured client id, whose
///   `token_use` is allowed, and that is within `nbf`/`exp` give or take a small leeway;
/// - claims are checked only after the signature, so an unsigned token never learns more than
///   "invalid";
/// - a token signed with an unknown `kid` is refused with [`AuthError::UnknownKey`] (after at
///   most one refresh of the key set);
/// - it never logs the token nor puts it in an error.
#[async_trait]
pub trait TokenVerifier: Send + Sync + std::fmt::Debug {
    async fn verify(&self, raw: &str) -> Result<Claims, AuthError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(groups: &[&str]) -> Claims {
        Claims {
            sub: "s".into(),
            username: "u".into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            token_use: "id".into(),
            exp: 0,
            iss: "i".into(),
            client_id: "c".into(),
        }
    }

    #[test]
    fn group_rules() {
        assert!(claims(&["tarn-writers"]).can_write("events"));
        assert!(claims(&["tarn-writers-events"]).can_write("events"));
        assert!(!claims(&["tarn-writers-events"]).can_write("photos"));
        assert!(!claims(&["tarn-writers-events"]).can_read("events"));
        assert!(!claims(&["tarn-writersevents", "tarn-writers-", "writers"]).can_write("events"));
        assert!(!claims(&["tarn-writers-events_x"]).can_write("events"));
        assert!(claims(&["tarn-readers"]).can_read("photos"));
        assert!(claims(&["x", "tarn-readers-photos"]).can_read("photos"));
        assert!(!claims(&[]).can_read("photos"));
        assert!(!claims(&["tarn-readers"]).can_write("photos"));
    }

    #[test]
    fn error_kinds_and_messages() {
        assert_eq!(AuthError::Expired.kind(), AuthErrorKind::Expired);
        assert_eq!(AuthError::Missing.kind(), AuthErrorKind::Missing);
        assert_eq!(AuthError::UnknownKey.kind(), AuthErrorKind::Invalid);
        assert_eq!(AuthError::Expired.to_string(), "token expired");
        assert_eq!(AuthError::UnknownKey.to_string(), "unknown signing key");
    }
}
