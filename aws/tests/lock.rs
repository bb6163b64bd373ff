//! The S3 lease ([`S3LakeLock`]) on moto: the lake lock's conformance suite, and its fencing
//! check when the lease is taken over while held or its renewals fail.

mod common;

use async_trait::async_trait;
use bytes::Bytes;
use common::*;
use futures::FutureExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tarn_aws::{S3LakeLock, S3ObjectStore};
use tarn_core::{GetResult, Metadata, ObjectInfo, ObjectStore};
use tarn_lake::lock::LakeLock;
use tarn_lake::lock::conformance::{self, assert_lost};

const TTL: Duration = Duration::from_secs(3);

async fn state_store(url: &str) -> Arc<S3ObjectStore> {
    create_bucket(url, "locks").await;
    Arc::new(S3ObjectStore::new(s3(url), "locks", None).with_prefix("state"))
}

fn lease_lock(store: Arc<dyn ObjectStore>) -> S3LakeLock {
    S3LakeLock::new(store).with_timing(TTL, Duration::from_millis(100), Duration::from_secs(60))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_lease_passes_the_lake_lock_conformance_suite() {
    let m = moto().await;
    let store = state_store(&m.url).await;
    // two handles on one state store stand for two Lambdas
    let a = lease_lock(store.clone());
    let b = lease_lock(store);
    // a holder that crashes: a runtime of its own (its client too) that takes the lock and is
    // shut down with the guard still alive, so the lease is neither renewed nor released
    let url = m.url.clone();
    let crash = move |name: String| {
        let url = url.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let rt = tokio::runtime::Runtime::new().unwrap();
                let guard = rt.block_on(async {
                    let store = S3ObjectStore::new(s3(&url), "locks", None).with_prefix("state");
                    lease_lock(Arc::new(store)).acquire(&name).await.unwrap()
                });
                std::mem::forget(guard);
                drop(rt);
            })
            .await
            .unwrap();
        }
        .boxed()
    };
    conformance::lake_lock(&a, &b, &crash, TTL * 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_taken_over_while_held_fails_the_old_holders_fencing_check() {
    let m = moto().await;
    let store = state_store(&m.url).await;
    let a = lease_lock(store.clone());
    let g = a.acquire("lake-write").await.unwrap();
    g.ensure_held().await.unwrap();

    // another holder's lease replaces it (as a takeover of a lease thought expired does)
    let foreign = serde_json::json!({"owner": "intruder", "expires_at": "2999-01-01T00:00:00Z"});
    store
        .put(
            "locks/lake-write.json",
            Bytes::from(foreign.to_string()),
            Metadata::new(),
        )
        .await
        .unwrap();
    let err = g.ensure_held().await.unwrap_err();
    assert!(err.to_string().contains("took it over"), "{err}");
    assert_lost(Err(err));
    // lost for good, and its release leaves the other holder's lease alone
    tokio::time::sleep(TTL).await;
    assert_lost(g.ensure_held().await);
    drop(g);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let left = store.get("locks/lake-write.json").await.unwrap();
    assert!(
        String::from_utf8_lossy(&left.body).contains("intruder"),
        "the old holder removed the new holder's lease"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewals_are_retried_and_a_lease_whose_renewals_keep_failing_is_lost_and_taken_over() {
    let m = moto().await;
    let store = state_store(&m.url).await;
    let cut = Arc::new(Cuttable {
        inner: store.clone(),
        cut: AtomicBool::new(false),
    });
    let a = lease_lock(cut.clone());
    let b = lease_lock(store.clone());
    let g = a.acquire("compaction").await.unwrap();

    // a short outage (less than the time to live): renewals fail, are retried, and the lease
    // stays held
    cut.cut.store(true, Ordering::SeqCst);
    tokio::time::sleep(TTL / 2).await;
    cut.cut.store(false, Ordering::SeqCst);
    tokio::time::sleep(TTL).await;
    g.ensure_held()
        .await
        .expect("a lease survives renewal errors shorter than its time to live");
    assert!(
        tokio::time::timeout(Duration::from_millis(500), b.acquire("compaction"))
            .await
            .is_err(),
        "a renewed lease was taken"
    );

    // a long one: the lease expires, another holder takes it over, and the old holder's fencing
    // check fails even once the store answers again
    cut.cut.store(true, Ordering::SeqCst);
    let taken = tokio::time::timeout(Duration::from_secs(60), b.acquire("compaction"))
        .await
        .expect("an expired lease is taken over")
        .unwrap();
    assert!(g.ensure_held().await.is_err());
    cut.cut.store(false, Ordering::SeqCst);
    assert_lost(g.ensure_held().await);
    taken.ensure_held().await.unwrap();
    drop(g);
    tokio::time::sleep(Duration::from_millis(500)).await;
    taken
        .ensure_held()
        .await
        .expect("the old holder's release leaves the new lease");
}

/// A store that fails every call while `cut` is set (a network partition).
#[derive(Debug)]
struct Cuttable {
    inner: Arc<S3ObjectStore>,
    cut: AtomicBool,
}

impl Cuttable {
    fn up(&self) -> tarn_core::Result<()> {
        if self.cut.load(Ordering::SeqCst) {
            Err(tarn_core::Error::Service("cut off".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl ObjectStore for Cuttable {
    fn bucket(&self) -> &str {
        self.inner.bucket()
    }
    fn url(&self, key: &str) -> String {
        self.inner.url(key)
    }
    async fn put(&self, key: &str, body: Bytes, m: Metadata) -> tarn_core::Result<()> {
        self.up()?;
        self.inner.put(key, body, m).await
    }
    async fn put_if_absent(&self, key: &str, body: Bytes, m: Metadata) -> tarn_core::Result<bool> {
        self.up()?;
        self.inner.put_if_absent(key, body, m).await
    }
    async fn put_if_match(
        &self,
        key: &str,
        body: Bytes,
        m: Metadata,
        etag: &str,
    ) -> tarn_core::Result<bool> {
        self.up()?;
        self.inner.put_if_match(key, body, m, etag).await
    }
    async fn get(&self, key: &str) -> tarn_core::Result<GetResult> {
        self.up()?;
        self.inner.get(key).await
    }
    async fn get_range(&self, key: &str, range: std::ops::Range<u64>) -> tarn_core::Result<Bytes> {
        self.up()?;
        self.inner.get_range(key, range).await
    }
    async fn head(&self, key: &str) -> tarn_core::Result<Option<ObjectInfo>> {
        self.up()?;
        self.inner.head(key).await
    }
    async fn list(&self, prefix: &str) -> tarn_core::Result<Vec<ObjectInfo>> {
        self.up()?;
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &str) -> tarn_core::Result<()> {
        self.up()?;
        self.inner.delete(key).await
    }
    async fn delete_if_match(&self, key: &str, etag: &str) -> tarn_core::Result<bool> {
        self.up()?;
        self.inner.delete_if_match(key, etag).await
    }
    async fn copy(&self, from: &str, to: &str) -> tarn_core::Result<()> {
        self.up()?;
        self.inner.copy(from, to).await
    }
}
