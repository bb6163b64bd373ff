//! [`RemoteJwks`]: a [`JwksSource`] fetched over HTTP(S) from a key set's URL (a Cognito user
//! pool's `/.well-known/jwks.json`, or wherever a test serves one), with a cache whose rules
//! contain the endpoint's failures:
//!
//! - a fetched set is used for [`JwksCachePolicy::max_age`], then fetched again, so a key the
//!   pool dropped stops being trusted;
//! - when fetching fails, the last set is still used up to [`JwksCachePolicy::max_stale`] (a hard
//!   limit: past it, tokens are refused as keys unavailable);
//! - after a failed fetch, nothing is fetched for [`JwksCachePolicy::retry_after_failure`]:
//!   requests in between get the failure at once (a 503), not another wait on a dead endpoint;
//! - one fetch at a time: while one runs, other requests answer at once with the set still
//!   usable or the last failure; only the very first fetch is waited for;
//! - an unknown `kid` fetches again at most once per [`JwksCachePolicy::min_refresh`].

use super::AuthError;
use super::jwks::{Jwks, JwksSource};
use async_trait::async_trait;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// How a [`RemoteJwks`] caches; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksCachePolicy {
    /// a set older than this is fetched again before it is used
    pub max_age: Duration,
    /// while fetching fails, a set is still used up to this age
    pub max_stale: Duration,
    /// after a failed fetch, no fetch for this long
    pub retry_after_failure: Duration,
    /// the least time between two fetches caused by unknown `kid`s
    pub min_refresh: Duration,
    /// one fetch's time limit
    pub timeout: Duration,
}

impl Default for JwksCachePolicy {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(15 * 60),
            max_stale: Duration::from_secs(60 * 60),
            retry_after_failure: Duration::from_secs(5),
            min_refresh: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Default)]
struct Cache {
    /// the last set fetched, and when
    keys: Option<(Arc<Jwks>, Instant)>,
    /// when the last fetch was tried
    tried: Option<Instant>,
    /// the last fetch's failure and when it ended, while no fetch has succeeded since
    failure: Option<(AuthError, Instant)>,
}

/// A key set fetched from a URL and cached; see the module documentation.
pub struct RemoteJwks {
    url: String,
    http: reqwest::Client,
    policy: JwksCachePolicy,
    cache: Mutex<Cache>,
    /// held while fetching: one fetch at a time
    fetching: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteJwks")
            .field("url", &self.url)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// What the cache can answer without fetching.
enum Cached {
    /// a set younger than `max_age`
    Fresh(Arc<Jwks>),
    /// a set to fetch again; `Some` while it may still be used (younger than `max_stale`)
    Expired(Option<Arc<Jwks>>),
}

/// Whether a request fetches the set, or answers without waiting for the fetch running.
enum Turn<'a> {
    /// it fetches (it holds the fetch lock)
    Fetch(tokio::sync::MutexGuard<'a, ()>),
    /// another request is fetching: the answer
    Answer(Result<Arc<Jwks>, AuthError>),
}

impl RemoteJwks {
    /// The key set at `url`, with the default [`JwksCachePolicy`].
    pub fn new(url: impl Into<String>) -> Self {
        Self::with_policy(url, JwksCachePolicy::default())
    }

    pub fn with_policy(url: impl Into<String>, policy: JwksCachePolicy) -> Self {
        let http = reqwest::Client::builder()
            .timeout(policy.timeout)
            .connect_timeout(policy.timeout.min(Duration::from_secs(5)))
            .build()
            .expect("an HTTP client builds");
        Self {
            url: url.into(),
            http,
            policy,
            cache: Mutex::new(Cache::default()),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// Sets [`JwksCachePolicy::min_refresh`].
    pub fn with_min_refresh(mut self, min_refresh: Duration) -> Self {
        self.policy.min_refresh = min_refresh;
        self
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn policy(&self) -> &JwksCachePolicy {
        &self.policy
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cached(&self) -> Cached {
        let cache = self.cache();
        match &cache.keys {
            Some((k, at)) if at.elapsed() < self.policy.max_age => Cached::Fresh(k.clone()),
            Some((k, at)) if at.elapsed() < self.policy.max_stale => {
                Cached::Expired(Some(k.clone()))
            }
            _ => Cached::Expired(None),
        }
    }

    /// The answer while the last fetch failed less than `retry_after_failure` ago: a set still
    /// usable, else that failure. `None` when a fetch may be tried.
    fn while_failing(&self, usable: &Option<Arc<Jwks>>) -> Option<Result<Arc<Jwks>, AuthError>> {
        let cache = self.cache();
        let (e, at) = cache.failure.as_ref()?;
        if at.elapsed() >= self.policy.retry_after_failure {
            return None;
        }
        Some(usable.clone().ok_or_else(|| e.clone()))
    }

    /// Whether this request fetches: when no other one is fetching, or when there is nothing
    /// else to answer with (the first fetch: it waits for the one running). Otherwise it answers
    /// at once, with the set still usable or the last failure: while the endpoint is known to
    /// fail, no request waits on it but the one fetching.
    async fn turn(&self, usable: Option<Arc<Jwks>>) -> Turn<'_> {
        if let Ok(guard) = self.fetching.try_lock() {
            return Turn::Fetch(guard);
        }
        if let Some(k) = usable {
            return Turn::Answer(Ok(k));
        }
        if let Some((e, _)) = &self.cache().failure {
            return Turn::Answer(Err(e.clone()));
        }
        Turn::Fetch(self.fetching.lock().await)
    }

    /// Fetches the set (the caller holds `fetching`); on failure, a set still usable.
    async fn fetch_now(&self) -> Result<Arc<Jwks>, AuthError> {
        self.cache().tried = Some(Instant::now());
        match self.fetch().await {
            Ok(keys) => {
                let mut cache = self.cache();
                cache.keys = Some((keys.clone(), Instant::now()));
                cache.failure = None;
                Ok(keys)
            }
            Err(e) => {
                self.cache().failure = Some((e.clone(), Instant::now()));
                match self.cached() {
                    Cached::Fresh(k) | Cached::Expired(Some(k)) => {
                        warn!(url = %self.url, error = %e, "fetching the token keys failed; using the last set fetched");
                        Ok(k)
                    }
                    Cached::Expired(None) => {
                        warn!(url = %self.url, error = %e, "fetching the token keys failed");
                        Err(e)
                    }
                }
            }
        }
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
        info!(url = %self.url, kids = ?jwks.kids().collect::<Vec<_>>(), "fetched the token keys");
        Ok(jwks)
    }
}

#[async_trait]
impl JwksSource for RemoteJwks {
    async fn keys(&self) -> Result<Arc<Jwks>, AuthError> {
        let usable = match self.cached() {
            Cached::Fresh(k) => return Ok(k),
            Cached::Expired(usable) => usable,
        };
        if let Some(answer) = self.while_failing(&usable) {
            return answer;
        }
        let _fetching = match self.turn(usable).await {
            Turn::Fetch(guard) => guard,
            Turn::Answer(answer) => return answer,
        };
        // what the fetch we may have waited for left
        let usable = match self.cached() {
            Cached::Fresh(k) => return Ok(k),
            Cached::Expired(usable) => usable,
        };
        if let Some(answer) = self.while_failing(&usable) {
            return answer;
        }
        self.fetch_now().await
    }

    async fn refresh(&self) -> Result<Arc<Jwks>, AuthError> {
        let before = match self.cached() {
            Cached::Fresh(k) | Cached::Expired(Some(k)) => Some(k),
            Cached::Expired(None) => None,
        };
        let _fetching = match self.turn(before.clone()).await {
            Turn::Fetch(guard) => guard,
            Turn::Answer(answer) => return answer,
        };
        let usable = match self.cached() {
            Cached::Fresh(k) | Cached::Expired(Some(k)) => Some(k),
            Cached::Expired(None) => None,
        };
        // a fetch ran while we waited
        if let (Some(now), Some(b)) = (&usable, &before)
            && !Arc::ptr_eq(now, b)
        {
            return Ok(now.clone());
        }
        if let Some(answer) = self.while_failing(&usable) {
            return answer;
        }
        let recently = self
            .cache()
            .tried
            .is_some_and(|t| t.elapsed() < self.policy.min_refresh);
        match usable {
            Some(k) if recently => Ok(k),
            _ => self.fetch_now().await,
        }
    }
}
