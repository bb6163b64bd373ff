//! Verifying Cognito-shaped JWTs against a JSON Web Key Set.

use super::{AuthError, Claims, TOKEN_USE_ACCESS, TOKEN_USE_ID, TokenCache, TokenVerifier};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use tarn_core::Clock;

/// Clock skew tolerated on `exp` and `nbf`.
pub const DEFAULT_LEEWAY_SECS: i64 = 30;

/// The RSA signing keys of a JWKS document, by `kid`. Keys that cannot verify RS256 (other key
/// types, `use` other than `sig`, `alg` other than `RS256`) are left out.
#[derive(Clone, Default)]
pub struct Jwks {
    keys: BTreeMap<String, DecodingKey>,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwks")
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Deserialize)]
struct JwkDoc {
    keys: Vec<Value>,
}

impl Jwks {
    /// Parses a JWKS document (`{"keys": [...]}`).
    pub fn from_json(doc: &Value) -> Result<Self, AuthError> {
        let doc: JwkDoc = serde_json::from_value(doc.clone())
            .map_err(|e| AuthError::KeysUnavailable(format!("not a jwks document: {e}")))?;
        let mut keys = BTreeMap::new();
        for key in doc.keys {
            let field = |name: &str| key.get(name).and_then(Value::as_str);
            if field("kty") != Some("RSA") {
                continue;
            }
            if field("use").is_some_and(|u| u != "sig")
                || field("alg").is_some_and(|a| a != "RS256")
            {
                continue;
            }
            let (Some(kid), Some(n), Some(e)) = (field("kid"), field("n"), field("e")) else {
                continue;
            };
            let (Ok(n), Ok(e)) = (URL_SAFE_NO_PAD.decode(n), URL_SAFE_NO_PAD.decode(e)) else {
                continue;
            };
            keys.insert(
                kid.to_string(),
                DecodingKey::from_rsa_raw_components(&n, &e),
            );
        }
        Ok(Self { keys })
    }

    pub fn get(&self, kid: &str) -> Option<&DecodingKey> {
        self.keys.get(kid)
    }

    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Where a verifier gets its keys.
///
/// Guarantees: `keys` is cheap (a cached set) and never blocks on the network once a set was
/// had; `refresh` fetches the set again (an implementation may rate-limit refreshes and return
/// the cached set instead) and is what a verifier calls on an unknown `kid`, so that a rotated
/// pool key is picked up without a restart.
#[async_trait]
pub trait JwksSource: Send + Sync + std::fmt::Debug {
    async fn keys(&self) -> Result<Arc<Jwks>, AuthError>;
    async fn refresh(&self) -> Result<Arc<Jwks>, AuthError>;
}

/// A fixed key set (the local dev issuer's, or one given in a test).
#[derive(Debug, Clone)]
pub struct StaticJwks(Arc<Jwks>);

impl StaticJwks {
    pub fn new(jwks: Jwks) -> Self {
        Self(Arc::new(jwks))
    }
}

#[async_trait]
impl JwksSource for StaticJwks {
    async fn keys(&self) -> Result<Arc<Jwks>, AuthError> {
        Ok(self.0.clone())
    }
    async fn refresh(&self) -> Result<Arc<Jwks>, AuthError> {
        Ok(self.0.clone())
    }
}

/// What a [`JwksVerifier`] accepts.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// the exact `iss` (a Cognito pool: `https://cognito-idp.<region>.amazonaws.com/<pool id>`)
    pub issuer: String,
    /// app client ids accepted in `aud` (ID tokens) or `client_id` (access tokens)
    pub client_ids: Vec<String>,
    /// accepted `token_use` values
    pub token_uses: Vec<String>,
    /// tolerated clock skew on `exp` and `nbf`, in seconds
    pub leeway_secs: i64,
}

impl VerifierConfig {
    /// Accepts ID and access tokens of `issuer` for `client_ids`, with the default leeway.
    pub fn new(
        issuer: impl Into<String>,
        client_ids: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            issuer: issuer.into(),
            client_ids: client_ids.into_iter().map(Into::into).collect(),
            token_uses: vec![TOKEN_USE_ID.into(), TOKEN_USE_ACCESS.into()],
            leeway_secs: DEFAULT_LEEWAY_SECS,
        }
    }
}

/// Verifies RS256 JWTs against the keys of a [`JwksSource`]; see [`TokenVerifier`] for what it
/// guarantees. A token it accepted is accepted again without the RSA check while it is
/// unexpired and the source still serves the same key set ([`TokenCache`]).
#[derive(Debug)]
pub struct JwksVerifier {
    config: VerifierConfig,
    source: Arc<dyn JwksSource>,
    clock: Arc<dyn Clock>,
    cache: TokenCache,
}

/// `aud` is a string or an array of strings.
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct RawClaims {
    sub: Option<String>,
    iss: Option<String>,
    aud: Option<Audience>,
    client_id: Option<String>,
    token_use: Option<String>,
    exp: Option<Value>,
    nbf: Option<Value>,
    #[serde(rename = "cognito:username")]
    cognito_username: Option<String>,
    username: Option<String>,
    #[serde(rename = "cognito:groups", default)]
    groups: Vec<String>,
}

fn numeric_date(v: &Value, claim: &'static str) -> Result<i64, AuthError> {
    v.as_i64()
        .or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
        .ok_or(AuthError::Malformed(match claim {
            "exp" => "exp is not a number",
            _ => "nbf is not a number",
        }))
}

/// An algorithm name fit for an error message: what the header said, cut short and stripped to
/// letters and digits.
fn printable_alg(alg: &Value) -> String {
    let s = match alg {
        Value::String(s) => s.as_str(),
        _ => "(not a string)",
    };
    let clean: String = s
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "()- ".contains(*c))
        .take(20)
        .collect();
    if clean.is_empty() {
        "(empty)".into()
    } else {
        clean
    }
}

impl JwksVerifier {
    pub fn new(config: VerifierConfig, source: Arc<dyn JwksSource>, clock: Arc<dyn Clock>) -> Self {
        Self {
            config,
            source,
            clock,
            cache: TokenCache::default(),
        }
    }

    pub fn config(&self) -> &VerifierConfig {
        &self.config
    }

    /// The header's `kid`, once its `alg` is RS256. Parsed by hand so that `alg: none` and other
    /// names jsonwebtoken has no variant for are named in the error.
    fn check_header(raw: &str) -> Result<String, AuthError> {
        let mut parts = raw.split('.');
        let (Some(header), Some(_), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed("not three dot-separated parts"));
        };
        let header = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| AuthError::Malformed("header is not base64url"))?;
        let header: Value = serde_json::from_slice(&header)
            .map_err(|_| AuthError::Malformed("header is not json"))?;
        let alg = header
            .get("alg")
            .ok_or(AuthError::Malformed("header has no alg"))?;
        if alg.as_str() != Some("RS256") {
            return Err(AuthError::UnsupportedAlgorithm(printable_alg(alg)));
        }
        // a key given or pointed at by the token itself is never trusted; only the kid is used
        match header.get("kid").and_then(Value::as_str) {
            Some(kid) if !kid.is_empty() => Ok(kid.to_string()),
            _ => Err(AuthError::UnknownKey),
        }
    }

    /// The key `kid` names, and the set it is from.
    async fn key_for(&self, kid: &str) -> Result<(DecodingKey, Arc<Jwks>), AuthError> {
        let keys = self.source.keys().await?;
        if let Some(key) = keys.get(kid) {
            return Ok((key.clone(), keys));
        }
        let keys = self.source.refresh().await?;
        match keys.get(kid) {
            Some(key) => Ok((key.clone(), keys.clone())),
            None => Err(AuthError::UnknownKey),
        }
    }

    fn check_claims(&self, raw: RawClaims) -> Result<Claims, AuthError> {
        let now = self.clock.now().timestamp();
        let leeway = self.config.leeway_secs;
        let exp = numeric_date(
            raw.exp.as_ref().ok_or(AuthError::MissingClaim("exp"))?,
            "exp",
        )?;
        if now > exp.saturating_add(leeway) {
            return Err(AuthError::Expired);
        }
        if let Some(nbf) = &raw.nbf {
            let nbf = numeric_date(nbf, "nbf")?;
            if now.saturating_add(leeway) < nbf {
                return Err(AuthError::NotYetValid);
            }
        }
        let iss = raw.iss.ok_or(AuthError::MissingClaim("iss"))?;
        if iss != self.config.issuer {
            return Err(AuthError::WrongIssuer);
        }
        let token_use = raw.token_use.ok_or(AuthError::MissingClaim("token_use"))?;
        if !self.config.token_uses.contains(&token_use) {
            return Err(AuthError::WrongTokenUse);
        }
        let accepted = |c: &String| self.config.client_ids.contains(c);
        let client_id = match (&raw.aud, &raw.client_id) {
            (None, None) => return Err(AuthError::MissingClaim("aud")),
            (aud, client_id) => {
                let from_aud = match aud {
                    Some(Audience::One(a)) => Some(a).filter(|a| accepted(a)),
                    Some(Audience::Many(all)) => all.iter().find(|a| accepted(a)),
                    None => None,
                };
                from_aud
                    .or(client_id.as_ref().filter(|c| accepted(c)))
                    .cloned()
                    .ok_or(AuthError::WrongAudience)?
            }
        };
        let sub = raw
            .sub
            .filter(|s| !s.is_empty())
            .ok_or(AuthError::MissingClaim("sub"))?;
        let username = raw
            .cognito_username
            .or(raw.username)
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| sub.clone());
        Ok(Claims {
            sub,
            username,
            groups: raw.groups,
            token_use,
            exp,
            iss,
            client_id,
        })
    }
}

#[async_trait]
impl TokenVerifier for JwksVerifier {
    async fn verify(&self, raw: &str) -> Result<Claims, AuthError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(AuthError::Missing);
        }
        let leeway = self.config.leeway_secs;
        if let Some((claims, by)) = self.cache.get(raw, self.clock.now().timestamp(), leeway)
            && Arc::ptr_eq(&by, &self.source.keys().await?)
        {
            return Ok(claims);
        }
        let kid = Self::check_header(raw)?;
        let (key, keys) = self.key_for(&kid).await?;
        // jsonwebtoken checks the signature (RS256 only); every claim is checked below, against
        // the injected clock
        let mut validation = Validation::new(Algorithm::RS256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        let data = jsonwebtoken::decode::<RawClaims>(raw, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::InvalidSignature => AuthError::BadSignature,
                K::InvalidAlgorithm | K::InvalidAlgorithmName | K::UnsupportedAlgorithm => {
                    AuthError::UnsupportedAlgorithm("(mismatch)".into())
                }
                K::Json(_) => AuthError::Malformed("claims are not the expected json"),
                K::Base64(_) | K::Utf8(_) => AuthError::Malformed("not base64url"),
                K::InvalidRsaKey(_) | K::InvalidKeyFormat => {
                    AuthError::KeysUnavailable("a jwks key is not a usable rsa key".into())
                }
                _ => AuthError::Malformed("rejected by the jwt decoder"),
            }
        })?;
        let claims = self.check_claims(data.claims)?;
        self.cache
            .put(raw, &claims, keys, self.clock.now().timestamp(), leeway);
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{AuthErrorKind, DEV_CLIENT_ID, DEV_ISSUER, DevIssuer};
    use chrono::{TimeZone, Utc};
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;
    use std::time::Duration;
    use tarn_core::ManualClock;

    struct Fixture {
        _dir: tempfile::TempDir,
        issuer: DevIssuer,
        clock: Arc<ManualClock>,
        verifier: JwksVerifier,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(
            Utc.with_ymd_and_hms(2030, 1, 2, 3, 4, 5).unwrap(),
        ));
        let issuer = DevIssuer::open_or_create(dir.path())
            .unwrap()
            .with_clock(clock.clone());
        let verifier = issuer.verifier(clock.clone());
        Fixture {
            _dir: dir,
            issuer,
            clock,
            verifier,
        }
    }

    impl Fixture {
        fn now(&self) -> i64 {
            self.clock.now().timestamp()
        }
        fn claims(&self) -> Value {
            let now = self.now();
            json!({
                "sub": "3f8a2b1c-0000-4000-8000-000000000001", "iss": DEV_ISSUER, "aud": DEV_CLIENT_ID,
                "token_use": "id", "cognito:username": "alice", "cognito:groups": ["tarn-writers"],
                "iat": now, "exp": now + 600, "auth_time": now,
            })
        }
        fn signed(&self, claims: &Value) -> String {
            self.issuer.sign(&self.issuer.header(), claims).unwrap()
        }
        async fn refused(&self, token: &str) -> AuthError {
            self.verifier
                .verify(token)
                .await
                .expect_err("the token must be refused")
        }
    }

    fn with(mut v: Value, key: &str, val: Value) -> Value {
        v[key] = val;
        v
    }

    fn without(mut v: Value, key: &str) -> Value {
        v.as_object_mut().unwrap().remove(key);
        v
    }

    #[tokio::test]
    async fn a_minted_token_verifies() {
        let f = fixture();
        let token = f
            .issuer
            .mint(
                "alice",
                &["tarn-writers".into(), "x".into()],
                Duration::from_secs(3600),
            )
            .unwrap();
        let c = f.verifier.verify(&token).await.unwrap();
        assert_eq!(c.username, "alice");
        assert_eq!(c.groups, ["tarn-writers", "x"]);
        assert_eq!(c.token_use, "id");
        assert_eq!(c.iss, DEV_ISSUER);
        assert_eq!(c.client_id, DEV_CLIENT_ID);
        assert_eq!(c.exp, f.now() + 3600);
        assert!(uuid::Uuid::parse_str(&c.sub).is_ok());
    }

    #[tokio::test]
    async fn access_tokens_use_client_id_and_username() {
        let f = fixture();
        let claims = with(
            without(without(f.claims(), "aud"), "cognito:username"),
            "client_id",
            json!(DEV_CLIENT_ID),
        );
        let claims = with(
            with(claims, "token_use", json!("access")),
            "username",
            json!("bob"),
        );
        let c = f.verifier.verify(&f.signed(&claims)).await.unwrap();
        assert_eq!(
            (c.username.as_str(), c.token_use.as_str()),
            ("bob", "access")
        );
        // no username at all: sub stands in
        let c = f
            .verifier
            .verify(&f.signed(&without(claims, "username")))
            .await
            .unwrap();
        assert_eq!(c.username, c.sub);
        // aud as an array
        let c = f
            .verifier
            .verify(&f.signed(&with(f.claims(), "aud", json!(["other", DEV_CLIENT_ID]))))
            .await
            .unwrap();
        assert_eq!(c.client_id, DEV_CLIENT_ID);
    }

    #[tokio::test]
    async fn claims_are_checked() {
        let f = fixture();
        let now = f.now();
        let c = f.claims();
        let cases = [
            (
                with(c.clone(), "iss", json!("https://evil.example")),
                AuthError::WrongIssuer,
            ),
            (without(c.clone(), "iss"), AuthError::MissingClaim("iss")),
            (
                with(c.clone(), "aud", json!("other-client")),
                AuthError::WrongAudience,
            ),
            (
                with(c.clone(), "aud", json!(["a", "b"])),
                AuthError::WrongAudience,
            ),
            (
                with(
                    without(c.clone(), "aud"),
                    "client_id",
                    json!("other-client"),
                ),
                AuthError::WrongAudience,
            ),
            (without(c.clone(), "aud"), AuthError::MissingClaim("aud")),
            (
                with(c.clone(), "token_use", json!("refresh")),
                AuthError::WrongTokenUse,
            ),
            (
                without(c.clone(), "token_use"),
                AuthError::MissingClaim("token_use"),
            ),
            (with(c.clone(), "exp", json!(now - 31)), AuthError::Expired),
            (without(c.clone(), "exp"), AuthError::MissingClaim("exp")),
            (
                with(c.clone(), "exp", json!("tomorrow")),
                AuthError::Malformed("exp is not a number"),
            ),
            (
                with(c.clone(), "nbf", json!(now + 31)),
                AuthError::NotYetValid,
            ),
            (without(c.clone(), "sub"), AuthError::MissingClaim("sub")),
        ];
        for (claims, want) in cases {
            assert_eq!(f.refused(&f.signed(&claims)).await, want, "{claims}");
        }
        // within the leeway
        f.verifier
            .verify(&f.signed(&with(c.clone(), "exp", json!(now - 29))))
            .await
            .unwrap();
        f.verifier
            .verify(&f.signed(&with(c.clone(), "nbf", json!(now + 29))))
            .await
            .unwrap();
        // expiry follows the injected clock
        let token = f.signed(&c);
        f.clock.advance(chrono::Duration::seconds(600 + 31));
        assert_eq!(f.refused(&token).await.kind(), AuthErrorKind::Expired);
    }

    /// A key set that a test can replace, counting what the verifier asks of it.
    #[derive(Debug)]
    struct Swappable(std::sync::Mutex<Arc<Jwks>>);

    #[async_trait]
    impl JwksSource for Swappable {
        async fn keys(&self) -> Result<Arc<Jwks>, AuthError> {
            Ok(self.0.lock().unwrap().clone())
        }
        async fn refresh(&self) -> Result<Arc<Jwks>, AuthError> {
            self.keys().await
        }
    }

    #[tokio::test]
    async fn verified_tokens_are_cached_until_exp_and_while_their_key_set_is_current() {
        let f = fixture();
        let own = Jwks::from_json(&f.issuer.jwks()).unwrap();
        let source = Arc::new(Swappable(std::sync::Mutex::new(Arc::new(own.clone()))));
        let verifier = JwksVerifier::new(
            VerifierConfig::new(DEV_ISSUER, [DEV_CLIENT_ID]),
            source.clone(),
            f.clock.clone(),
        );
        let token = f.signed(&f.claims());
        let first = verifier.verify(&token).await.unwrap();
        assert_eq!(verifier.cache.len(), 1);
        // a hit gives the same claims, whatever the whitespace around the token
        assert_eq!(verifier.verify(&format!(" {token} ")).await.unwrap(), first);
        assert_eq!(verifier.cache.len(), 1);
        // refused tokens are never cached
        let forged = format!("{}x", &token[..token.len() - 1]);
        assert!(verifier.verify(&forged).await.is_err());
        assert_eq!(verifier.cache.len(), 1);

        // a rotation that drops the key: the cached token is checked again, and refused
        *source.0.lock().unwrap() = Arc::new(Jwks::default());
        assert_eq!(verifier.verify(&token).await, Err(AuthError::UnknownKey));
        // the same keys in a new set: verified again, then cached against the new set
        *source.0.lock().unwrap() = Arc::new(own);
        assert_eq!(verifier.verify(&token).await.unwrap(), first);
        assert_eq!(verifier.verify(&token).await.unwrap(), first);

        // expiry: within the leeway still accepted, past it refused as without the cache
        f.clock.advance(chrono::Duration::seconds(600 + 30));
        assert_eq!(verifier.verify(&token).await.unwrap(), first);
        f.clock.advance(chrono::Duration::seconds(1));
        assert_eq!(verifier.verify(&token).await, Err(AuthError::Expired));
        assert!(verifier.cache.is_empty(), "the expired entry is dropped");
    }

    #[test]
    fn the_token_cache_is_bounded() {
        let cache = TokenCache::default();
        let keys = Arc::new(Jwks::default());
        let claims = |exp: i64| Claims {
            sub: "s".into(),
            username: "u".into(),
            groups: vec![],
            token_use: "id".into(),
            exp,
            iss: "i".into(),
            client_id: "c".into(),
        };
        for i in 0..crate::auth::TOKEN_CACHE_ENTRIES {
            // half of them expired at 100
            let exp = if i % 2 == 0 { 50 } else { 1000 };
            cache.put(&format!("t{i}"), &claims(exp), keys.clone(), 10, 0);
        }
        assert_eq!(cache.len(), crate::auth::TOKEN_CACHE_ENTRIES);
        cache.put("new", &claims(1000), keys.clone(), 100, 0);
        assert_eq!(cache.len(), crate::auth::TOKEN_CACHE_ENTRIES / 2 + 1);
        assert!(cache.get("t0", 100, 0).is_none() && cache.get("t1", 100, 0).is_some());
        assert!(format!("{cache:?}").contains("entries") && !format!("{cache:?}").contains("t1"));
    }

    #[tokio::test]
    async fn only_rs256_with_a_known_key() {
        let f = fixture();
        let claims = f.claims();
        let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());

        // alg none, with and without a signature
        let none = format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT", "kid": f.issuer.kid()})),
            b64(&claims)
        );
        assert_eq!(
            f.refused(&none).await,
            AuthError::UnsupportedAlgorithm("none".into())
        );
        let good = f.signed(&claims);
        let sig = good.rsplit('.').next().unwrap();
        assert!(matches!(
            f.refused(&format!("{none}{sig}")).await,
            AuthError::UnsupportedAlgorithm(_)
        ));

        // HS256 with the public key (DER and JWKS text) as the HMAC secret
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(f.issuer.kid().to_string());
        for secret in [
            f.issuer.public_key_der(),
            serde_json::to_vec(&f.issuer.jwks()).unwrap(),
        ] {
            let hs =
                jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&secret)).unwrap();
            assert_eq!(
                f.refused(&hs).await,
                AuthError::UnsupportedAlgorithm("HS256".into())
            );
        }

        // another RSA algorithm in the header over an RS256 signature
        let mut header = f.issuer.header();
        header.alg = Algorithm::RS512;
        assert!(matches!(
            f.refused(&f.issuer.sign(&header, &claims).unwrap()).await,
            AuthError::UnsupportedAlgorithm(_)
        ));

        // unknown or missing kid
        let mut header = f.issuer.header();
        header.kid = Some("not-a-key".into());
        assert_eq!(
            f.refused(&f.issuer.sign(&header, &claims).unwrap()).await,
            AuthError::UnknownKey
        );
        header.kid = None;
        assert_eq!(
            f.refused(&f.issuer.sign(&header, &claims).unwrap()).await,
            AuthError::UnknownKey
        );

        // another key under our kid
        let other_dir = tempfile::tempdir().unwrap();
        let other = DevIssuer::open_or_create(other_dir.path()).unwrap();
        assert_ne!(other.kid(), f.issuer.kid());
        assert_eq!(
            f.refused(&other.sign(&f.issuer.header(), &claims).unwrap())
                .await,
            AuthError::BadSignature
        );
        assert_eq!(
            f.refused(&other.sign(&other.header(), &claims).unwrap())
                .await,
            AuthError::UnknownKey
        );

        // a tampered payload
        let parts: Vec<&str> = good.split('.').collect();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            b64(&with(
                claims.clone(),
                "cognito:groups",
                json!(["tarn-readers"])
            )),
            parts[2]
        );
        assert_eq!(f.refused(&forged).await, AuthError::BadSignature);

        // garbage
        for junk in [
            "x",
            "a.b",
            "a.b.c",
            "a.b.c.d",
            "....",
            "eyJhbGciOiJSUzI1NiJ9.e30",
            "é.é.é",
        ] {
            assert!(
                matches!(
                    f.refused(junk).await,
                    AuthError::Malformed(_) | AuthError::UnknownKey
                ),
                "{junk}"
            );
        }
        assert_eq!(f.refused("  ").await, AuthError::Missing);
    }

    #[tokio::test]
    async fn unknown_kid_triggers_one_refresh() {
        #[derive(Debug)]
        struct Rotating {
            old: Arc<Jwks>,
            new: Arc<Jwks>,
            refreshed: std::sync::atomic::AtomicUsize,
        }
        #[async_trait]
        impl JwksSource for Rotating {
            async fn keys(&self) -> Result<Arc<Jwks>, AuthError> {
                Ok(
                    if self.refreshed.load(std::sync::atomic::Ordering::SeqCst) > 0 {
                        self.new.clone()
                    } else {
                        self.old.clone()
                    },
                )
            }
            async fn refresh(&self) -> Result<Arc<Jwks>, AuthError> {
                self.refreshed
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(self.new.clone())
            }
        }
        let f = fixture();
        let source = Arc::new(Rotating {
            old: Arc::new(Jwks::default()),
            new: Arc::new(Jwks::from_json(&f.issuer.jwks()).unwrap()),
            refreshed: Default::default(),
        });
        let verifier = JwksVerifier::new(
            VerifierConfig::new(DEV_ISSUER, [DEV_CLIENT_ID]),
            source.clone(),
            f.clock.clone(),
        );
        verifier.verify(&f.signed(&f.claims())).await.unwrap();
        verifier.verify(&f.signed(&f.claims())).await.unwrap();
        assert_eq!(
            source.refreshed.load(std::sync::atomic::Ordering::SeqCst),
            1
        );
    }

    #[test]
    fn jwks_parsing_skips_unusable_keys() {
        let doc = json!({"keys": [
            {"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "kid": "ps", "alg": "PS256", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "kid": "nokey"},
            {"kty": "RSA", "kid": "ok", "alg": "RS256", "use": "sig", "n": "AQAB", "e": "AQAB"},
        ]});
        let jwks = Jwks::from_json(&doc).unwrap();
        assert_eq!(jwks.kids().collect::<Vec<_>>(), ["ok"]);
        assert!(Jwks::from_json(&json!({"nokeys": []})).is_err());
    }
}
