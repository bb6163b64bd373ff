//! [`S3LakeLock`]: the lake lock ([`tarn_lake::lock::LakeLock`], shared by normalize and
//! compaction) as leases in the state store, built on S3's conditional writes.
//!
//! A lease is the object `locks/<name>.json`, `{owner, expires_at}`, the owner a fresh id per
//! acquisition. Every change is conditional on what the writer last saw, so no step can undo
//! another holder's:
//! - acquire: `put_if_absent`; while another holder's lease is live, wait and retry; a lease past
//!   `expires_at` (its holder stopped renewing) is taken over with `put_if_match` on the ETag read
//!   with it: of several waiters exactly one takes it, and a holder that renewed meanwhile keeps
//!   it;
//! - renew: every third of the time to live, `put_if_match` on the ETag of its own last write.
//!   An error is retried with backoff until the lease would expire (then it is lost); a refused
//!   renewal means the lease was taken over or removed (lost), unless the lease read back is
//!   still this owner's (an earlier renewal whose answer went missing did land): then its ETag
//!   is adopted and the renewal retried;
//! - fencing ([`LockGuard::ensure_held`]): `Ok` while the lease was not lost, its last renewal's
//!   expiry is more than a safety margin (a quarter of the time to live) away by the holder's
//!   own clock, and the lease in the store is still this owner's;
//! - release: dropping the guard stops the renewal and removes the lease with `delete_if_match`
//!   on its ETag, only while it is still this owner's.
//!
//! Limits: the time to live must be longer than a pause of the holder (a frozen Lambda does not
//! renew; its fencing check fails once it wakes past the margin) plus the clock skew between
//! holders (expiry is compared with each waiter's clock).

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tarn_core::{ErrorKind, Metadata, ObjectStore};
use tarn_lake::LakeError;
use tarn_lake::lock::{Held, LakeLock, LockGuard, validate_name};
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

/// Where the leases are, under the state store's prefix.
pub const LOCKS_PREFIX: &str = "locks/";

fn lock_key(name: &str) -> String {
    format!("{LOCKS_PREFIX}{name}.json")
}

fn lease_body(owner: &str, ttl: Duration) -> Bytes {
    let lease = Lease {
        owner: owner.to_string(),
        expires_at: Utc::now() + chrono::Duration::from_std(ttl).unwrap_or_default(),
    };
    Bytes::from(serde_json::to_vec(&lease).expect("a lease serializes"))
}

/// The lease at `key` with its ETag (its body `None` when unreadable); `None` when there is none.
async fn read(
    store: &dyn ObjectStore,
    key: &str,
) -> Result<Option<(Option<Lease>, String)>, LakeError> {
    match store.get(key).await {
        Ok(o) => Ok(Some((serde_json::from_slice(&o.body).ok(), o.info.etag))),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// One held lease, shared by its guard and its renewal task.
struct Holding {
    store: Arc<dyn ObjectStore>,
    name: String,
    key: String,
    owner: String,
    ttl: Duration,
    state: Mutex<State>,
}

struct State {
    /// the ETag of this owner's last write (empty until known)
    etag: String,
    /// when the lease written last expires, by this process's clock (measured from before the
    /// write was sent, so never later than the store's view)
    deadline: Instant,
    /// why the lease was lost, once it was
    lost: Option<String>,
}

impl Holding {
    /// Within this much of its deadline a lease no longer counts as held.
    fn margin(&self) -> Duration {
        self.ttl / 4
    }

    fn lost(&self, reason: String) -> LakeError {
        let mut st = self.state.lock().expect("lease state");
        let reason = st.lost.get_or_insert(reason).clone();
        LakeError::LockLost {
            name: self.name.clone(),
            reason,
        }
    }

    /// The lease as read back after a write sent at `sent`: `Ok(true)` when it is this
    /// owner's (its ETag and deadline are taken), `Ok(false)` when it is another's or gone.
    async fn adopt(&self, sent: Option<Instant>) -> Result<bool, LakeError> {
        match read(self.store.as_ref(), &self.key).await? {
            Some((Some(l), etag)) if l.owner == self.owner => {
                let mut st = self.state.lock().expect("lease state");
                st.etag = etag;
                if let Some(sent) = sent {
                    st.deadline = sent + self.ttl;
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// One renewal: retried on errors until the lease would expire; `Err` once it is lost.
    async fn renew(&self) -> Result<(), LakeError> {
        let mut backoff = Duration::from_millis(100).min(self.ttl / 8);
        loop {
            let (etag, deadline) = {
                let st = self.state.lock().expect("lease state");
                (st.etag.clone(), st.deadline)
            };
            if Instant::now() >= deadline {
                return Err(self.lost(format!(
                    "it expired: no renewal succeeded within its time to live of {:?}",
                    self.ttl
                )));
            }
            if etag.is_empty() {
                // the ETag of the write that took the lease is not known yet
                match self.adopt(None).await {
                    Ok(true) => continue,
                    Ok(false) => {
                        return Err(self.lost(
                            "another holder took it over, or it was removed, while held".into(),
                        ));
                    }
                    Err(e) => {
                        warn!(lock = %self.name, error = %e, retry_in = ?backoff, "reading the lease failed");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(self.ttl / 8);
                        continue;
                    }
                }
            }
            let sent = Instant::now();
            let result = self
                .store
                .put_if_match(
                    &self.key,
                    lease_body(&self.owner, self.ttl),
                    Metadata::new(),
                    &etag,
                )
                .await;
            let failure = match result {
                Ok(true) => {
                    self.state.lock().expect("lease state").deadline = sent + self.ttl;
                    // the new ETag, for the next renewal (if this read fails, the next renewal
                    // is refused and reads it then)
                    match self.adopt(Some(sent)).await {
                        Ok(true) => return Ok(()),
                        Ok(false) => {
                            return Err(self.lost("another holder took it over".into()));
                        }
                        Err(e) => {
                            warn!(lock = %self.name, error = %e, "reading the renewed lease failed");
                            return Ok(());
                        }
                    }
                }
                Ok(false) => match self.adopt(None).await {
                    // an earlier renewal landed though its answer was lost: retry with its ETag
                    Ok(true) => continue,
                    Ok(false) => {
                        return Err(self.lost(
                            "another holder took it over, or it was removed, while held".into(),
                        ));
                    }
                    Err(e) => e.to_string(),
                },
                Err(e) => e.to_string(),
            };
            warn!(lock = %self.name, error = %failure, retry_in = ?backoff, "renewing the lease failed");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.ttl / 8);
        }
    }

    /// Removes the lease while it is still this owner's.
    async fn release(&self) {
        match read(self.store.as_ref(), &self.key).await {
            Ok(Some((Some(l), etag))) if l.owner == self.owner => {
                match self.store.delete_if_match(&self.key, &etag).await {
                    Ok(true) => debug!(lock = %self.name, "lease released"),
                    Ok(false) => debug!(lock = %self.name, "the lease changed before its release"),
                    Err(e) => {
                        warn!(lock = %self.name, error = %e, "releasing the lease failed; it expires")
                    }
                }
            }
            Ok(_) => debug!(lock = %self.name, "the lease was no longer ours to release"),
            Err(e) => {
                warn!(lock = %self.name, error = %e, "reading the lease to release it failed")
            }
        }
    }

    async fn ensure_held(&self) -> Result<(), LakeError> {
        let check = |st: &State| match &st.lost {
            Some(reason) => Err(LakeError::LockLost {
                name: self.name.clone(),
                reason: reason.clone(),
            }),
            None if Instant::now() + self.margin() >= st.deadline => Err(LakeError::LockLost {
                name: self.name.clone(),
                reason: format!(
                    "it expires within the safety margin of {:?}: its renewals are failing",
                    self.margin()
                ),
            }),
            None => Ok(()),
        };
        check(&self.state.lock().expect("lease state"))?;
        match read(self.store.as_ref(), &self.key).await? {
            Some((Some(l), _)) if l.owner == self.owner => {}
            Some(_) => return Err(self.lost("another holder took it over".into())),
            None => return Err(self.lost("it was removed while held".into())),
        }
        // the read may have taken a while
        check(&self.state.lock().expect("lease state"))
    }
}

/// The guard's part: stopping the renewal (which then releases) when dropped.
struct HeldLease {
    lease: Arc<Holding>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for HeldLease {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

#[async_trait]
impl Held for HeldLease {
    async fn ensure_held(&self) -> Result<(), LakeError> {
        self.lease.ensure_held().await
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

    /// A lease lives `ttl` unless renewed; waiters look again every `poll`, and give up after
    /// `wait`.
    pub fn with_timing(mut self, ttl: Duration, poll: Duration, wait: Duration) -> Self {
        (self.ttl, self.poll, self.wait) = (ttl, poll, wait);
        self
    }

    /// Writes a lease for `owner`, conditional on `etag` (a takeover) or on there being none;
    /// the lease when it is then this owner's.
    async fn claim(
        &self,
        name: &str,
        owner: &str,
        etag: Option<&str>,
    ) -> Result<Option<Arc<Holding>>, LakeError> {
        let key = lock_key(name);
        let body = lease_body(owner, self.ttl);
        let sent = Instant::now();
        let written = match etag {
            None => {
                self.store
                    .put_if_absent(&key, body, Metadata::new())
                    .await?
            }
            Some(e) => {
                self.store
                    .put_if_match(&key, body, Metadata::new(), e)
                    .await?
            }
        };
        if !written {
            return Ok(None);
        }
        let lease = Arc::new(Holding {
            store: self.store.clone(),
            name: name.to_string(),
            key,
            owner: owner.to_string(),
            ttl: self.ttl,
            state: Mutex::new(State {
                etag: String::new(),
                deadline: sent + self.ttl,
                lost: None,
            }),
        });
        match lease.adopt(Some(sent)).await {
            Ok(ours) => Ok(ours.then_some(lease)),
            // written, so ours; its ETag is read before the first renewal
            Err(e) => {
                warn!(lock = name, error = %e, "reading the lease just taken failed");
                Ok(Some(lease))
            }
        }
    }
}

#[async_trait]
impl LakeLock for S3LakeLock {
    async fn acquire(&self, name: &str) -> Result<LockGuard, LakeError> {
        validate_name(name)?;
        let key = lock_key(name);
        let owner = uuid::Uuid::new_v4().to_string();
        let started = Instant::now();
        let lease = loop {
            if let Some(lease) = self.claim(name, &owner, None).await? {
                break lease;
            }
            match read(self.store.as_ref(), &key).await? {
                None => continue,
                Some((lease, etag)) if lease.as_ref().is_none_or(|l| l.expires_at < Utc::now()) => {
                    // the holder stopped renewing: take over, unless it changed meanwhile
                    let stale = lease.map(|l| l.owner).unwrap_or_default();
                    warn!(lock = name, stale_owner = %stale, "taking over an expired lease");
                    if let Some(lease) = self.claim(name, &owner, Some(&etag)).await? {
                        break lease;
                    }
                    continue;
                }
                Some(_) => {}
            }
            if started.elapsed() > self.wait {
                return Err(LakeError::Pipeline(format!(
                    "lock {name} still held after {:?}: if its holder is gone, the lease expires within {:?}",
                    self.wait, self.ttl
                )));
            }
            tokio::time::sleep(self.poll).await;
        };
        debug!(lock = name, %owner, "lease taken");
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let renewing = lease.clone();
        tokio::spawn(async move {
            let lease = renewing;
            loop {
                tokio::select! {
                    _ = &mut rx => break,
                    _ = tokio::time::sleep(lease.ttl / 3) => {
                        if let Err(e) = lease.renew().await {
                            warn!(lock = %lease.name, error = %e, "the lease was lost while held");
                            return;
                        }
                    }
                }
            }
            lease.release().await;
        });
        Ok(LockGuard::new(
            name,
            HeldLease {
                lease,
                stop: Some(tx),
            },
        ))
    }
}
