//! [`CognitoJwks`]: the key source of a real Cognito user pool — the pool's JWKS fetched over
//! HTTPS from a configurable URL (the pool's `/.well-known/jwks.json`, or wherever a test server
//! serves it) and cached; and the verifier of the pool's tokens.

use std::sync::Arc;
use tarn_core::Clock;
use tarn_ingress::{AuthError, Claims, JwksVerifier, TokenVerifier, VerifierConfig};

/// A Cognito pool's key set: fetched from its JWKS URL and cached by the rules of
/// [`tarn_ingress::auth::RemoteJwks`] (a maximum age, failures cached briefly, a stale set used
/// up to a hard limit while the endpoint fails).
pub use tarn_ingress::auth::RemoteJwks as CognitoJwks;

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
