//! [`S3LakeLock`]: the lake's named locks ([`tarn_lake::compact::LakeLock`], shared by normalize
//! and compaction) as leases in the state store, built on S3 conditional writes.
//!
//! - acquire: `put_if_absent("locks/<name>.json", {owner, expires_at})`; while another holder's
//!   lease is live, wait and retry; a lease past `expires_at` (its holder crashed) is removed and
//!   the claim retried;
//! - while held, the lease is renewed every third of its time to live;
//! - dropping the guard stops the renewal and removes the lease (if still ours).
//!
//! Limits (documented, not hidden): S3 has no conditional delete on general-purpose buckets here,
//! so taking over an expired lease re-reads it just before removing it, leaving a small window in
//! which two waiters could both take over; a DynamoDB lease would close it. The lease's time to
//! live must be longer than a pause of the holder (a frozen Lambda does not renew).

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tarn_core::{ErrorKind, Metadata, ObjectStore};
use tarn_lake::LakeError;
use tarn_lake::compact::{LakeLock, LockGuard};
use tracing::{debug, warn};

#[derive(Debug, Clone)]
pub struct S3LakeLock {
    store: Arc<dyn ObjectStore>,
    ttl: Duration,
    poll: Duration,
    /// give up waiting after this long
    wait: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Lease {
    owner: String,
    expires_at: DateTime<Utc>,
}

fn lock_key(name: &str) -> String {
    format!("locks/{name}.json")
}

fn lease_body(owner: &str, ttl: Duration) -> Bytes {
    let lease = Lease {
        owner: owner.to_string(),
        expires_at: Utc::now() + chrono::Duration::from_std(ttl).unwrap_or_default(),
    };
    Bytes::from(serde_json::to_vec(&lease).expect("a lease serializes"))
}

struct Held {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

impl S3LakeLock {
    /// Leases under `locks/` in `store` (the pipeline's state store).
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self {
            store,
            ttl: Duration::from_secs(120),
            poll: Duration::from_millis(500),
            wait: Duration::from_secs(600),
        }
    }

    pub fn with_timing(mut self, ttl: Duration, poll: Duration, wait: Duration) -> Self {
        (self.ttl, self.poll, self.wait) = (ttl, poll, wait);
        self
    }

    async fn read(&self, key: &str) -> Result<Option<Lease>, LakeError> {
        match self.store.get(key).await {
            Ok(o) => Ok(serde_json::from_slice(&o.body).ok()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

#[async_trait]
impl LakeLock for S3LakeLock {
    async fn acquire(&self, name: &str) -> Result<LockGuard, LakeError> {
        let key = lock_key(name);
        let owner = uuid::Uuid::new_v4().to_string();
        let started = std::time::Instant::now();
        loop {
            if self
                .store
                .put_if_absent(&key, lease_body(&owner, self.ttl), Metadata::new())
                .await?
            {
                break;
            }
            match self.read(&key).await? {
                Some(l) if l.expires_at < Utc::now() => {
                    // the holder stopped renewing: take over, unless it changed meanwhile
                    if let Some(again) = self.read(&key).await?
                        && again.owner == l.owner
                    {
                        warn!(lock = name, stale_owner = %l.owner, "removing an expired lease");
                        self.store.delete(&key).await?;
                    }
                    continue;
                }
                None => continue,
                Some(_) => {}
            }
            if started.elapsed() > self.wait {
                return Err(LakeError::Pipeline(format!(
                    "lock {name} still held after {:?}",
                    self.wait
                )));
            }
            tokio::time::sleep(self.poll).await;
        }
        debug!(lock = name, %owner, "lease taken");
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let (store, ttl) = (self.store.clone(), self.ttl);
        let name = name.to_string();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(ttl / 3);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = &mut rx => break,
                    _ = tick.tick() => {
                        let ours = match store.get(&key).await {
                            Ok(o) => serde_json::from_slice::<Lease>(&o.body).map(|l| l.owner == owner).unwrap_or(false),
                            Err(_) => false,
                        };
                        if !ours {
                            warn!(lock = %name, "the lease was lost while held");
                            return;
                        }
                        if let Err(e) = store.put(&key, lease_body(&owner, ttl), Metadata::new()).await {
                            warn!(lock = %name, error = %e, "renewing the lease failed");
                        }
                    }
                }
            }
            if let Ok(o) = store.get(&key).await
                && serde_json::from_slice::<Lease>(&o.body)
                    .map(|l| l.owner == owner)
                    .unwrap_or(false)
            {
                let _ = store.delete(&key).await;
            }
            debug!(lock = %name, "lease released");
        });
        Ok(LockGuard::new(Held { stop: Some(tx) }))
    }
}
