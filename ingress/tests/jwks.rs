//! A key set fetched over HTTP from a real local JWKS server that fails (and hangs), then
//! recovers, then drops a key: failures are cached (the endpoint is asked at a bounded rate,
//! requests in between are answered at once, none waits on a hanging fetch but the one fetching),
//! recovery is picked up, a dropped key is refused once the set's maximum
//! age has passed, and an old set is used while the endpoint fails up to a hard limit.

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tarn_core::SystemClock;
use tarn_ingress::auth::{JwksCachePolicy, RemoteJwks};
use tarn_ingress::{
    AuthError, AuthErrorKind, DEV_CLIENT_ID, DEV_ISSUER, DevIssuer, JwksVerifier, TokenVerifier,
    VerifierConfig,
};
use tokio::sync::Notify;

/// What the JWKS server answers.
#[derive(Clone)]
enum Mode {
    Fail,
    Serve(Value),
    /// answers 500 once released
    Hang,
}

/// A JWKS server; every request is counted.
struct Server {
    url: String,
    mode: Arc<Mutex<Mode>>,
    release: Arc<Notify>,
    hits: Arc<AtomicUsize>,
}

impl Server {
    async fn start() -> Self {
        let mode = Arc::new(Mutex::new(Mode::Fail));
        let release = Arc::new(Notify::new());
        let hits = Arc::new(AtomicUsize::new(0));
        let (m, r, h) = (mode.clone(), release.clone(), hits.clone());
        let app = Router::new().route(
            "/jwks.json",
            get(move || {
                let (m, r, h) = (m.clone(), r.clone(), h.clone());
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    let mode = m.lock().unwrap().clone();
                    match mode {
                        Mode::Serve(doc) => axum::Json(doc).into_response(),
                        Mode::Fail => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                        Mode::Hang => {
                            r.notified().await;
                            StatusCode::INTERNAL_SERVER_ERROR.into_response()
                        }
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            url,
            mode,
            release,
            hits,
        }
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

fn issuer() -> (tempfile::TempDir, DevIssuer) {
    let dir = tempfile::tempdir().unwrap();
    let issuer = DevIssuer::open_or_create(dir.path()).unwrap();
    (dir, issuer)
}

fn jwks_of(issuers: &[&DevIssuer]) -> Value {
    let keys: Vec<Value> = issuers
        .iter()
        .map(|i| i.jwks()["keys"][0].clone())
        .collect();
    json!({ "keys": keys })
}

fn token(issuer: &DevIssuer) -> String {
    issuer
        .mint("alice", &["tarn-writers".into()], Duration::from_secs(3600))
        .unwrap()
}

/// The most fetches a phase of `elapsed` may cause when at most one fetch is made per `every`
/// (one at the start, one per `every` after it, one for a fetch running at the end).
fn at_most(elapsed: Duration, every: Duration) -> usize {
    (elapsed.as_micros() / every.as_micros()) as usize + 2
}

#[tokio::test]
async fn a_failing_then_recovering_endpoint_and_a_dropped_key() {
    let server = Server::start().await;
    let ((_a_dir, a), (_b_dir, b), (_c_dir, c)) = (issuer(), issuer(), issuer());
    let policy = JwksCachePolicy {
        max_age: Duration::from_millis(500),
        max_stale: Duration::from_millis(2000),
        retry_after_failure: Duration::from_millis(200),
        min_refresh: Duration::from_millis(200),
        timeout: Duration::from_secs(5),
    };
    let verifier = Arc::new(JwksVerifier::new(
        VerifierConfig::new(DEV_ISSUER, [DEV_CLIENT_ID]),
        Arc::new(RemoteJwks::with_policy(&server.url, policy.clone())),
        Arc::new(SystemClock),
    ));
    let (token_a, token_b, token_c) = (token(&a), token(&b), token(&c));

    // 1. the endpoint fails: 50 requests at once cause one fetch and all get a 503-class error
    let started = Instant::now();
    let answers = futures::future::join_all((0..50).map(|i| {
        let (v, t) = (verifier.clone(), [&token_a, &token_c][i % 2].clone());
        async move { v.verify(&t).await }
    }))
    .await;
    for answer in answers {
        let e = answer.unwrap_err();
        assert_eq!(e.kind(), AuthErrorKind::Unavailable, "{e}");
        assert!(e.to_string().contains("HTTP 500"), "{e}");
    }
    assert!(server.hits() >= 1);
    assert!(
        server.hits() <= at_most(started.elapsed(), policy.retry_after_failure),
        "{} fetches in {:?}",
        server.hits(),
        started.elapsed()
    );
    // ...and a stream of requests asks the endpoint at most once per retry_after_failure
    let mut requests = 0;
    while started.elapsed() < Duration::from_millis(600) {
        let e = verifier.verify(&token_a).await.unwrap_err();
        assert!(matches!(e, AuthError::KeysUnavailable(_)), "{e}");
        requests += 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let fetches = server.hits();
    assert!(
        fetches <= at_most(started.elapsed(), policy.retry_after_failure),
        "{fetches} fetches for {requests} requests in {:?}",
        started.elapsed()
    );
    assert!(requests > fetches, "{requests} requests, {fetches} fetches");

    // the endpoint hangs: the request that fetches waits for it; every other one gets the last
    // failure at once instead of queueing behind it
    server.set(Mode::Hang);
    tokio::time::sleep(policy.retry_after_failure).await;
    let before = server.hits();
    let fetching = tokio::spawn({
        let (v, t) = (verifier.clone(), token_a.clone());
        async move { v.verify(&t).await }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.hits() == before {
        assert!(
            Instant::now() < deadline,
            "the fetch never reached the server"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for _ in 0..20 {
        let e = verifier.verify(&token_c).await.unwrap_err();
        assert_eq!(e.kind(), AuthErrorKind::Unavailable, "{e}");
    }
    assert!(
        !fetching.is_finished(),
        "the fetch still hangs: the others did not wait for it"
    );
    assert_eq!(server.hits(), before + 1);
    server.release.notify_one();
    let e = fetching.await.unwrap().unwrap_err();
    assert_eq!(e.kind(), AuthErrorKind::Unavailable, "{e}");

    // 2. it recovers: the next request after retry_after_failure fetches the set and verifies
    server.set(Mode::Serve(jwks_of(&[&a, &b])));
    tokio::time::sleep(policy.retry_after_failure).await;
    let before = server.hits();
    let fetched = Instant::now();
    assert_eq!(verifier.verify(&token_a).await.unwrap().username, "alice");
    assert_eq!(verifier.verify(&token_b).await.unwrap().username, "alice");
    assert!(
        server.hits() == before + 1 || fetched.elapsed() >= policy.max_age,
        "one fetch, then the cached set: {} fetches",
        server.hits() - before
    );

    // unknown kids cannot make it fetch more than once per min_refresh
    let flood = Instant::now();
    for _ in 0..100 {
        assert_eq!(
            verifier.verify(&token_c).await.unwrap_err(),
            AuthError::UnknownKey
        );
    }
    let fetches = server.hits() - before;
    assert!(
        fetches <= at_most(fetched.elapsed(), policy.min_refresh),
        "{fetches} fetches for 100 unknown kids in {:?}",
        flood.elapsed()
    );

    // 3. the pool drops key b: refused once the set is older than max_age; a still verifies
    server.set(Mode::Serve(jwks_of(&[&a])));
    tokio::time::sleep(policy.max_age).await;
    assert_eq!(
        verifier.verify(&token_b).await.unwrap_err(),
        AuthError::UnknownKey
    );
    assert_eq!(verifier.verify(&token_a).await.unwrap().username, "alice");
    let refetched = Instant::now();

    // 4. it fails again: the last set is used, the endpoint asked at a bounded rate...
    server.set(Mode::Fail);
    tokio::time::sleep(policy.max_age).await;
    let before = server.hits();
    let phase = Instant::now();
    while phase.elapsed() < Duration::from_millis(300) {
        assert_eq!(verifier.verify(&token_a).await.unwrap().username, "alice");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let fetches = server.hits() - before;
    assert!(fetches >= 1, "an expired set is fetched again");
    assert!(
        fetches <= at_most(phase.elapsed(), policy.retry_after_failure),
        "{fetches} fetches in {:?}",
        phase.elapsed()
    );
    // ...up to max_stale: then tokens are refused as keys unavailable
    tokio::time::sleep(policy.max_stale.saturating_sub(refetched.elapsed())).await;
    tokio::time::sleep(policy.retry_after_failure).await;
    let e = verifier.verify(&token_a).await.unwrap_err();
    assert_eq!(e.kind(), AuthErrorKind::Unavailable, "{e}");
}
