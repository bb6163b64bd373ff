//! The local dev token issuer: a stand-in for a Cognito user pool on one machine.
//!
//! On first start it creates an RSA-2048 key pair in `<data_dir>/keys/issuer.der` (PKCS#8 DER,
//! mode 0600, created once and never overwritten: [`tarn_core::keyfile`]); its `kid` is the key's
//! RFC 7638 JWK thumbprint. Tokens are shaped as Cognito ID tokens, so the same [`JwksVerifier`]
//! checks them and a pool's.

use super::TOKEN_USE_ID;
use super::jwks::{Jwks, JwksVerifier, StaticJwks, VerifierConfig};
use crate::error::{IngressError, Result};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Header};
use serde::Serialize;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tarn_core::{Clock, SystemClock};
use zeroize::Zeroizing;

/// The `iss` of dev tokens.
pub const DEV_ISSUER: &str = "https://tarn.local/dev";
/// The app client id dev tokens are issued to (their `aud`).
pub const DEV_CLIENT_ID: &str = "tarn-local";

/// The local token issuer. Cheap to share behind an `Arc`.
pub struct DevIssuer {
    key: KeyPair,
    kid: String,
    n: Vec<u8>,
    e: Vec<u8>,
    path: PathBuf,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for DevIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevIssuer")
            .field("kid", &self.kid)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl DevIssuer {
    /// Where the issuer keeps its key in a data dir.
    pub fn key_path(data_dir: &Path) -> PathBuf {
        data_dir.join("keys").join("issuer.der")
    }

    /// Opens the issuer key of `data_dir`, creating it on first use.
    pub fn open_or_create(data_dir: &Path) -> Result<Self> {
        let path = Self::key_path(data_dir);
        Self::create(&path)?;
        Self::open(&path)
    }

    /// Generates a key and links it into place when none is there (see [`tarn_core::keyfile`]);
    /// a key already there (another process won the race) is kept.
    fn create(path: &Path) -> Result<()> {
        tarn_core::keyfile::create_once(path, || {
            let failed = |what: &str| tarn_core::Error::Crypto(format!("rsa key {what} failed"));
            let key = KeyPair::generate(KeySize::Rsa2048).map_err(|_| failed("generation"))?;
            let der = key.as_der().map_err(|_| failed("encoding"))?;
            Ok(der.as_ref().to_vec())
        })?;
        Ok(())
    }

    /// Opens an existing key file (PKCS#8 DER), refusing one others may read.
    pub fn open(path: &Path) -> Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let md = std::fs::metadata(path).map_err(IngressError::io("reading issuer key", path))?;
        if md.permissions().mode() & 0o077 != 0 {
            return Err(IngressError::Key {
                path: path.into(),
                reason: format!("readable by others; run `chmod 600 {}`", path.display()),
            });
        }
        let der = Zeroizing::new(
            std::fs::read(path).map_err(IngressError::io("reading issuer key", path))?,
        );
        let key = KeyPair::from_pkcs8(&der).map_err(|e| IngressError::Key {
            path: path.into(),
            reason: format!("not an rsa pkcs#8 key: {e}"),
        })?;
        if key.public_modulus_len() < 256 {
            return Err(IngressError::Key {
                path: path.into(),
                reason: "rsa keys must be at least 2048 bits".into(),
            });
        }
        let PublicKeyComponents { n, e } = PublicKeyComponents::<Vec<u8>>::from(key.public_key());
        let kid = thumbprint(&n, &e);
        Ok(Self {
            key,
            kid,
            n,
            e,
            path: path.into(),
            clock: Arc::new(SystemClock),
        })
    }

    /// Uses `clock` for `iat`/`exp` (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn issuer(&self) -> &'static str {
        DEV_ISSUER
    }

    pub fn client_id(&self) -> &'static str {
        DEV_CLIENT_ID
    }

    pub fn key_file(&self) -> &Path {
        &self.path
    }

    /// The public key as a DER `RSAPublicKey` (PKCS#1).
    pub fn public_key_der(&self) -> Vec<u8> {
        self.key.public_key().as_ref().to_vec()
    }

    /// The JWKS document that verifies this issuer's tokens (served at
    /// `/.well-known/jwks.json`).
    pub fn jwks(&self) -> Value {
        json!({"keys": [{
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(&self.n),
            "e": URL_SAFE_NO_PAD.encode(&self.e),
        }]})
    }

    /// A verifier that accepts this issuer's ID and access tokens.
    pub fn verifier(&self, clock: Arc<dyn Clock>) -> JwksVerifier {
        let jwks = Jwks::from_json(&self.jwks()).expect("the issuer's own jwks parses");
        let config = VerifierConfig::new(DEV_ISSUER, [DEV_CLIENT_ID]);
        JwksVerifier::new(config, Arc::new(StaticJwks::new(jwks)), clock)
    }

    /// The `sub` of `user`: a uuid derived from the issuer and the user name, so it is stable.
    pub fn subject(user: &str) -> String {
        let digest = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            format!("{DEV_ISSUER}\0{user}").as_bytes(),
        );
        let bytes: [u8; 16] = digest.as_ref()[..16].try_into().expect("16 bytes");
        uuid::Builder::from_custom_bytes(bytes)
            .into_uuid()
            .to_string()
    }

    /// The header of this issuer's tokens: `alg RS256`, `typ JWT`, its `kid`.
    pub fn header(&self) -> Header {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        header
    }

    /// Mints a Cognito-shaped ID token for `user` in `groups`, valid for `ttl`.
    pub fn mint(&self, user: &str, groups: &[String], ttl: Duration) -> Result<String> {
        if user.is_empty() || user.len() > 128 || user.chars().any(char::is_control) {
            return Err(IngressError::InvalidInput(
                "the user name must be 1 to 128 printable characters".into(),
            ));
        }
        if ttl.is_zero() || ttl > Duration::from_secs(366 * 24 * 3600) {
            return Err(IngressError::InvalidInput(
                "the token lifetime must be between 1 second and a year".into(),
            ));
        }
        if let Some(g) = groups
            .iter()
            .find(|g| g.is_empty() || g.chars().any(|c| c.is_control() || c == ','))
        {
            return Err(IngressError::InvalidInput(format!("bad group name {g:?}")));
        }
        let now = self.clock.now().timestamp();
        let claims = json!({
            "iss": DEV_ISSUER,
            "sub": Self::subject(user),
            "aud": DEV_CLIENT_ID,
            "token_use": TOKEN_USE_ID,
            "cognito:username": user,
            "cognito:groups": groups,
            "iat": now,
            "auth_time": now,
            "exp": now + ttl.as_secs() as i64,
        });
        self.sign(&self.header(), &claims)
    }

    /// Signs any header and claims with the issuer's key (RS256, whatever the header says).
    /// For tools and tests that need tokens `mint` does not make.
    pub fn sign(&self, header: &Header, claims: &impl Serialize) -> Result<String> {
        let header = serde_json::to_vec(header)
            .map_err(|e| IngressError::Internal(format!("encoding the jwt header: {e}")))?;
        let claims = serde_json::to_vec(claims)
            .map_err(|e| IngressError::Internal(format!("encoding the jwt claims: {e}")))?;
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let mut signature = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                message.as_bytes(),
                &mut signature,
            )
            .map_err(|_| IngressError::Internal("rsa signing failed".into()))?;
        Ok(format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

/// The RFC 7638 thumbprint of an RSA public key, base64url.
fn thumbprint(n: &[u8], e: &[u8]) -> String {
    let canonical = format!(
        r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(e),
        URL_SAFE_NO_PAD.encode(n)
    );
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        canonical.as_bytes(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn key_is_private_stable_and_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let a = DevIssuer::open_or_create(dir.path()).unwrap();
        let path = DevIssuer::key_path(dir.path());
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let before = std::fs::read(&path).unwrap();
        let b = DevIssuer::open_or_create(dir.path()).unwrap();
        assert_eq!(a.kid(), b.kid());
        assert_eq!(std::fs::read(&path).unwrap(), before);
        // a racing creator does not replace it either
        DevIssuer::create(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1,
            "no temp files left"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = DevIssuer::open(&path).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn tokens_and_jwks_are_cognito_shaped() {
        let dir = tempfile::tempdir().unwrap();
        let issuer = DevIssuer::open_or_create(dir.path()).unwrap();
        let token = issuer
            .mint("alice", &["tarn-writers".into()], Duration::from_secs(60))
            .unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["typ"], "JWT");
        assert_eq!(header["kid"], issuer.kid());
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        for k in [
            "iss",
            "sub",
            "aud",
            "token_use",
            "cognito:username",
            "cognito:groups",
            "iat",
            "exp",
            "auth_time",
        ] {
            assert!(claims.get(k).is_some(), "missing {k}");
        }
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            60
        );
        assert_eq!(DevIssuer::subject("alice"), claims["sub"]);
        assert_ne!(DevIssuer::subject("alice"), DevIssuer::subject("bob"));
        let jwks = issuer.jwks();
        let key = &jwks["keys"][0];
        assert_eq!(
            (
                key["kty"].as_str(),
                key["alg"].as_str(),
                key["use"].as_str()
            ),
            (Some("RSA"), Some("RS256"), Some("sig"))
        );
        assert_eq!(key["e"], "AQAB");
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(key["n"].as_str().unwrap())
                .unwrap()
                .len(),
            256
        );
        // the kid is the JWK thumbprint
        assert_eq!(issuer.kid(), thumbprint(&issuer.n, &issuer.e));
        assert!(issuer.mint("", &[], Duration::from_secs(60)).is_err());
        assert!(issuer.mint("a", &[], Duration::ZERO).is_err());
    }
}
