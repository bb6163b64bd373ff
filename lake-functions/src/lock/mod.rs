//! The lake lock port: named exclusive locks shared by the ingestion runner and compaction.
//!
//! - [`WRITE_LOCK`] is held by a pipeline flush from its manifest to its commit, and by
//!   compaction for its last step (late files, location swap). So a flush never writes into a
//!   location that is being swapped away, and compaction sees every committed file.
//! - [`COMPACTION_LOCK`] is held by a whole compaction run: one at a time, so whatever job
//!   record a run finds was left by a crash, never by a running peer.
//!
//! Guarantees every implementation gives (checked by [`conformance::lake_lock`]):
//! - of all handles on one lock directory or state store, at most one holds a name at a time;
//!   other names are independent;
//! - dropping the [`LockGuard`] releases the lock; a crashed holder's lock is released (locally
//!   by the kernel) or taken over once it expires (the S3 lease);
//! - [`LockGuard::ensure_held`] is `Ok` only while the lock is still this guard's and not about
//!   to be lost; it fails with [`ErrorKind::LockLost`] while the lock is about to expire, and
//!   for good once it was lost (expired, taken over). Work done under a lock calls it right
//!   before the step that must not happen without the lock (a batch's commit, compaction's
//!   location swap): a fencing check;
//! - lock names are ASCII letters, digits, `-` and `_`; others are refused.
//!
//! Locally the locks are OS file locks ([`LocalLakeLock`]): they work across processes (`tarn
//! serve` and a `tarn compact`) and a crashed holder's lock is released by the kernel. On AWS the
//! same port is a lease in the state store built on S3's conditional writes (`tarn_aws`'s
//! `S3LakeLock`).
//!
//! [`ErrorKind::LockLost`]: crate::error::ErrorKind::LockLost

#[cfg(any(test, feature = "testsuite"))]
pub mod conformance;
mod local;

pub use local::LocalLakeLock;

use crate::error::{LakeError, Result};
use async_trait::async_trait;

pub const WRITE_LOCK: &str = "lake-write";
pub const COMPACTION_LOCK: &str = "compaction";

#[async_trait]
pub trait LakeLock: Send + Sync + std::fmt::Debug {
    /// Waits for the lock `name` and holds it until the guard is dropped.
    async fn acquire(&self, name: &str) -> Result<LockGuard>;
}

/// What an implementation keeps for a held lock: alive as long as the guard, dropped with it
/// (releasing the lock).
#[async_trait]
pub trait Held: Send + Sync {
    /// `Ok` while the lock is still held and not within a safety margin of being lost;
    /// [`LakeError::LockLost`] otherwise.
    async fn ensure_held(&self) -> Result<()>;
}

/// A held lock; dropping it releases the lock.
pub struct LockGuard {
    name: String,
    held: Box<dyn Held>,
}

impl LockGuard {
    pub fn new(name: impl Into<String>, held: impl Held + 'static) -> Self {
        Self {
            name: name.into(),
            held: Box::new(held),
        }
    }

    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The fencing check: `Ok` while the lock is still this guard's and not within a safety
    /// margin of expiring; [`LakeError::LockLost`] (kind [`crate::error::ErrorKind::LockLost`])
    /// while it is that close to expiring, and for good once it was lost, taken over or
    /// expired. A store error (the check could not be made) is returned as it is. Call it right
    /// before a step that must not happen without the lock.
    pub async fn ensure_held(&self) -> Result<()> {
        self.held.ensure_held().await
    }
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Checks a lock name: ASCII letters, digits, `-` and `_`.
pub fn validate_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 128
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(LakeError::BadLockName {
            name: name.to_string(),
        });
    }
    Ok(())
}
