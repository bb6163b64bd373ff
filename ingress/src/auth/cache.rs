//! The verified-token cache of [`super::JwksVerifier`]: a token whose signature and claims were
//! checked once is not checked with RSA again while it is unexpired and the key set it was
//! checked against is still the verifier's current one.

use super::Claims;
use super::jwks::Jwks;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How many tokens the cache holds at most; when full, expired entries go first, then all.
pub const TOKEN_CACHE_ENTRIES: usize = 4096;

/// Tokens verified earlier: their claims, and the key set (by identity) that verified them.
/// Holds no token longer than its `exp` plus the leeway.
#[derive(Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<String, (Claims, Arc<Jwks>)>>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // never the tokens
        f.debug_struct("TokenCache")
            .field("entries", &self.lock().len())
            .finish()
    }
}

impl TokenCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Claims, Arc<Jwks>)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The claims of `token` and the key set that verified it, while `now` is at most
    /// `exp + leeway`; an expired entry is dropped. The caller accepts them only when that set
    /// is still its source's current one (the same set, not an equal one).
    pub fn get(&self, token: &str, now: i64, leeway: i64) -> Option<(Claims, Arc<Jwks>)> {
        let mut entries = self.lock();
        let (claims, by) = entries.get(token)?;
        if now > claims.exp.saturating_add(leeway) {
            entries.remove(token);
            return None;
        }
        Some((claims.clone(), by.clone()))
    }

    /// Remembers that `keys` verified `token` into `claims`.
    pub fn put(&self, token: &str, claims: &Claims, keys: Arc<Jwks>, now: i64, leeway: i64) {
        let mut entries = self.lock();
        if entries.len() >= TOKEN_CACHE_ENTRIES {
            entries.retain(|_, (c, _)| now <= c.exp.saturating_add(leeway));
            if entries.len() >= TOKEN_CACHE_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(token.to_string(), (claims.clone(), keys));
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
