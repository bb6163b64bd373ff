//! Named exclusive locks shared by the ingestion runner and compaction.
//!
//! - [`WRITE_LOCK`] is held by a pipeline flush from its manifest to its commit, and by
//!   compaction for its last step (late files, location swap). So a flush never writes into a
//!   location that is being swapped away, and compaction sees every committed file.
//! - [`COMPACTION_LOCK`] is held by a whole compaction run: one at a time, so whatever job
//!   record a run finds was left by a crash, never by a running peer.
//!
//! Locally the locks are OS file locks ([`LocalLakeLock`]): they work across processes (`tarn
//! serve` and a `tarn compact`) and a crashed holder's lock is released by the kernel. On AWS the
//! same port is a DynamoDB lease.

use crate::error::{LakeError, Result};
use async_trait::async_trait;
use std::fs::OpenOptions;
use std::path::PathBuf;

pub const WRITE_LOCK: &str = "lake-write";
pub const COMPACTION_LOCK: &str = "compaction";

/// Held while alive; dropping it releases the lock.
pub struct LockGuard(#[allow(dead_code)] Box<dyn Send + Sync>);

impl LockGuard {
    pub fn new(inner: impl Send + Sync + 'static) -> Self {
        Self(Box::new(inner))
    }
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LockGuard")
    }
}

#[async_trait]
pub trait LakeLock: Send + Sync + std::fmt::Debug {
    /// Waits for the lock `name` and holds it until the guard is dropped.
    async fn acquire(&self, name: &str) -> Result<LockGuard>;
}

/// File locks in a directory (the data dir's `locks/`), one file per lock name.
#[derive(Debug, Clone)]
pub struct LocalLakeLock {
    dir: PathBuf,
}

impl LocalLakeLock {
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| {
            LakeError::Pipeline(format!(
                "creating the lock directory {}: {e}",
                dir.display()
            ))
        })?;
        Ok(Self { dir })
    }
}

#[async_trait]
impl LakeLock for LocalLakeLock {
    async fn acquire(&self, name: &str) -> Result<LockGuard> {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(LakeError::Pipeline(format!("bad lock name {name:?}")));
        }
        let path = self.dir.join(format!("{name}.lock"));
        tokio::task::spawn_blocking(move || {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|e| {
                    LakeError::Pipeline(format!("opening lock {}: {e}", path.display()))
                })?;
            file.lock()
                .map_err(|e| LakeError::Pipeline(format!("locking {}: {e}", path.display())))?;
            Ok(LockGuard::new(file))
        })
        .await
        .map_err(|e| LakeError::Pipeline(format!("lock task failed: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn holders_exclude_each_other_and_names_are_independent() {
        let dir = tempfile::tempdir().unwrap();
        // two handles on one directory stand for two processes
        let a = LocalLakeLock::open(dir.path()).unwrap();
        let b = LocalLakeLock::open(dir.path()).unwrap();
        let inside = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..6 {
            let l = if i % 2 == 0 { a.clone() } else { b.clone() };
            let inside = inside.clone();
            tasks.push(tokio::spawn(async move {
                let _g = l.acquire(WRITE_LOCK).await.unwrap();
                assert_eq!(
                    inside.fetch_add(1, Ordering::SeqCst),
                    0,
                    "two holders at once"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let _w = a.acquire(WRITE_LOCK).await.unwrap();
        // another name is not blocked
        tokio::time::timeout(Duration::from_secs(5), b.acquire(COMPACTION_LOCK))
            .await
            .unwrap()
            .unwrap();
        assert!(a.acquire("../x").await.is_err());
    }
}
