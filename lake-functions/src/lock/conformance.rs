//! The lake lock's conformance suite: one async function any [`LakeLock`] must pass, run in the
//! local lock's unit tests and against the S3 lease on moto (compiled for tests and with the
//! `testsuite` feature only). It panics (asserts) on the first broken guarantee.

use super::{COMPACTION_LOCK, LakeLock, LockGuard, WRITE_LOCK};
use crate::error::{ErrorKind, LakeError};
use futures::future::BoxFuture;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// How long the suite waits for what must happen (a lock freed, a crashed holder's lock taken
/// over): a bound on a hang, not a timing requirement.
const HANG: Duration = Duration::from_secs(120);
/// How long the suite watches for what must not happen (a second holder).
const WATCH: Duration = Duration::from_millis(300);

/// Leaves the lock `name` held by a holder that then crashes: it stops without releasing (a
/// killed process, a frozen Lambda).
pub type Crash = dyn Fn(String) -> BoxFuture<'static, ()> + Send + Sync;

/// Lake lock guarantees. `a` and `b` are two handles on one lock store (two processes);
/// `crash` leaves a lock held by a crashed holder; `outlive` is how long a held lock must stay
/// held and unlost while its guard lives (longer than a lease's time to live; zero for locks
/// that do not expire). Lock names used: [`WRITE_LOCK`], [`COMPACTION_LOCK`] and names starting
/// with `conformance-`.
pub async fn lake_lock(a: &dyn LakeLock, b: &dyn LakeLock, crash: &Crash, outlive: Duration) {
    // bad names are refused, by both handles
    for bad in ["", "../x", "a/b", "a b", "x.json", "é"] {
        for l in [a, b] {
            match l.acquire(bad).await {
                Err(LakeError::BadLockName { .. }) => {}
                other => panic!("lock name {bad:?} should be refused: {other:?}"),
            }
        }
    }

    // mutual exclusion across the two handles
    let inside = AtomicUsize::new(0);
    let holders = (0..6).map(|i| {
        let (l, inside) = (if i % 2 == 0 { a } else { b }, &inside);
        async move {
            let g = within(l.acquire(WRITE_LOCK), "a contended lock").await;
            assert_eq!(
                inside.fetch_add(1, Ordering::SeqCst),
                0,
                "two holders at once"
            );
            g.ensure_held()
                .await
                .expect("a fresh holder holds its lock");
            tokio::time::sleep(Duration::from_millis(20)).await;
            inside.fetch_sub(1, Ordering::SeqCst);
        }
    });
    futures::future::join_all(holders).await;

    // names are independent
    let w = within(a.acquire(WRITE_LOCK), "a free lock").await;
    assert_eq!(w.name(), WRITE_LOCK);
    let c = within(b.acquire(COMPACTION_LOCK), "another name than the held one").await;
    w.ensure_held().await.unwrap();
    c.ensure_held().await.unwrap();
    drop(c);

    // while held, the other handle waits; dropping the guard releases to it
    let mut waiting = Box::pin(b.acquire(WRITE_LOCK));
    assert!(
        tokio::time::timeout(WATCH, &mut waiting).await.is_err(),
        "the lock was taken while held"
    );
    drop(w);
    let w = within(waiting, "a lock its holder dropped").await;
    w.ensure_held().await.unwrap();
    drop(w);

    // re-acquired after release, by the same handle and the other
    for l in [a, a, b, a] {
        let g = within(l.acquire("conformance-again"), "a released lock").await;
        g.ensure_held().await.unwrap();
    }

    // a held lock stays held (renewed) past its first expiry, and still excludes
    let held = within(a.acquire("conformance-long"), "a free lock").await;
    tokio::time::sleep(outlive).await;
    held.ensure_held()
        .await
        .expect("a lock whose guard lives stays held");
    assert!(
        tokio::time::timeout(WATCH, b.acquire("conformance-long"))
            .await
            .is_err(),
        "a lock held past its first expiry was taken"
    );
    held.ensure_held().await.unwrap();
    drop(held);

    // a crashed holder's lock is released or taken over
    crash("conformance-crash".to_string()).await;
    let g = within(b.acquire("conformance-crash"), "a crashed holder's lock").await;
    g.ensure_held()
        .await
        .expect("the lock taken over from a crashed holder is held");
    drop(g);
    within(
        a.acquire("conformance-crash"),
        "a lock released after a takeover",
    )
    .await;
}

/// Asserts that `f` (an acquire) gives a guard within [`HANG`].
async fn within(
    f: impl std::future::Future<Output = crate::Result<LockGuard>>,
    what: &str,
) -> LockGuard {
    tokio::time::timeout(HANG, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: not acquired within {HANG:?}"))
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Asserts that `r` is the fencing check's failure: [`ErrorKind::LockLost`].
pub fn assert_lost(r: crate::Result<()>) {
    match r {
        Err(e) => assert_eq!(e.kind(), ErrorKind::LockLost, "{e}"),
        Ok(()) => panic!("ensure_held passed on a lost lock"),
    }
}
