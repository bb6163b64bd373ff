//! [`CognitoJwks`]: a [`JwksSource`] for a real Cognito user pool — the pool's JWKS fetched over
//! HTTPS from a configurable URL (the pool's `/.well-known/jwks.json`, or wherever a test server
//! serves it), cached, and fetched again on an unknown `kid` at most once per `min_refresh`.

use async_trait::async_trait;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tarn_core::Clock;
use tarn_ingress::{
    AuthError, Claims, Jwks, JwksSource, JwksVerifier, TokenVerifier, VerifierConfig,
};
use tracing::{info, warn};

/// The least time between two fetches caused by unknown `kid`s.
pub const DEFAULT_MIN_REFRESH: Duration = Duration::from_secs(60);

pub struct CognitoJwks {
    url: String,
    http: reqwest::Client,
    min_refresh: Duration,
    cache: RwLock<Option<Arc<Jwks>>>,
    /// held while fetching (one fetch at a time); the time of the last fetch attempt
    fetching: tokio::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for CognitoJwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CognitoJwks")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl CognitoJwks {
    pub fn new(url: impl Into<String>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .expect("an HTTP client builds");
        Self {
            url: url.into(),
            http,
            min_refresh: DEFAULT_MIN_REFRESH,
            cache: RwLock::new(None),
            fetching: tokio::sync::Mutex::new(None),
        }
    }

    pub fn with_min_refresh(mut self, min_refresh: Duration) -> Self {
        self.min_refresh = min_refresh;
        self
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn cached(&self) -> Option<Arc<Jwks>> {
        self.cache.read().expect("jwks cache lock").clone()
    }

    async fn fetch(&self) -> Result<Arc<Jwks>, AuthError> {
        let unavailable =
            |e: String| AuthError::KeysUnavailable(format!("fetching {}: {e}", self.url));
        let resp = self
            .http
            .get(&self.url)
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(unavailable(format!("HTTP {}", resp.status())));
        }
        let doc: serde_json::Value = resp.json().await.map_err(|e| unavailable(e.to_string()))?;
        let jwks = Arc::new(Jwks::from_json(&doc)?);
        if jwks.is_empty() {
            return Err(unavailable("no RS256 signing keys in the document".into()));
        }
        info!(url = %self.url, kids = ?jwks.kids().collect::<Vec<_>>(), "fetched the user pool's keys");
        *self.cache.write().expect("jwks cache lock") = Some(jwks.clone());
        Ok(jwks)
    }
}

#[async_trait]
impl JwksSource for CognitoJwks {
    async fn keys(&self) -> Result<Arc<Jwks>, AuthError> {
        if let Some(k) = self.cached() {
            return Ok(k);
        }
        let mut last = self.fetching.lock().await;
        if let Some(k) = self.cached() {
            return Ok(k);
        }
        *last = Some(Instant::now());
        self.fetch().await
    }

    async fn refresh(&self) -> Result<Arc<Jwks>, AuthError> {
        let before = self.cached();
        let mut last = self.fetching.lock().await;
        // someone else refreshed while we waited
        if let (Some(now), Some(b)) = (self.cached(), &before)
            && !Arc::ptr_eq(&now, b)
        {
            return Ok(now);
        }
        if let (Some(t), Some(k)) = (*last, self.cached())
            && t.elapsed() < self.min_refresh
        {
            return Ok(k);
        }
        *last = Some(Instant::now());
        match self.fetch().await {
            Ok(k) => Ok(k),
            Err(e) => match self.cached() {
                Some(k) => {
                    warn!(error = %e, "refreshing the user pool's keys failed; keeping the cached set");
                    Ok(k)
                }
                None => Err(e),
            },
        }
    }
}

/// A verifier for the pool's tokens: `iss` = `issuer`, `aud`/`client_id` one of `client_ids`.
pub fn cognito_verifier(
    issuer: &str,
    jwks_url: &str,
    client_ids: &[String],
    clock: Arc<dyn Clock>,
) -> JwksVerifier {
    JwksVerifier::new(
        VerifierConfig::new(issuer, client_ids.iter().cloned()),
        Arc::new(CognitoJwks::new(jwks_url)),
        clock,
    )
}

/// Verifies `raw` (a bare JWT or `Bearer <jwt>`).
pub async fn verify_bearer(verifier: &dyn TokenVerifier, raw: &str) -> Result<Claims, AuthError> {
    let raw = raw.trim();
    let token = raw
        .strip_prefix("Bearer ")
        .or_else(|| raw.strip_prefix("bearer "))
        .unwrap_or(raw)
        .trim();
    if token.is_empty() {
        return Err(AuthError::Missing);
    }
    verifier.verify(token).await
}
