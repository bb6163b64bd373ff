//! [`LocalLakeLock`]: the lake lock as OS file locks, one file per name in a directory (the data
//! dir's `locks/`). They work across processes, and a crashed holder's lock is released by the
//! kernel; a held file lock cannot be lost, so its guard's fencing check always passes.

use super::{Held, LakeLock, LockGuard, validate_name};
use crate::error::{LakeError, Result};
use async_trait::async_trait;
use std::fs::{File, OpenOptions};
use std::path::PathBuf;

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

/// The locked file: closing it releases the lock.
struct FileLock(#[allow(dead_code)] File);

#[async_trait]
impl Held for FileLock {
    async fn ensure_held(&self) -> Result<()> {
        Ok(())
    }
}

#[async_trait]
impl LakeLock for LocalLakeLock {
    async fn acquire(&self, name: &str) -> Result<LockGuard> {
        validate_name(name)?;
        let path = self.dir.join(format!("{name}.lock"));
        let name = name.to_string();
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
            Ok(LockGuard::new(name, FileLock(file)))
        })
        .await
        .map_err(|e| LakeError::Pipeline(format!("lock task failed: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::conformance;
    use futures::FutureExt;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn local_lock_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        // two handles on one directory stand for two processes
        let a = LocalLakeLock::open(dir.path()).unwrap();
        let b = LocalLakeLock::open(dir.path()).unwrap();
        // a holder that crashes: the kernel closes its file, which releases the lock
        let path = dir.path().to_path_buf();
        let crash = move |name: String| {
            let path = path.clone();
            async move {
                let holder = LocalLakeLock::open(path).unwrap();
                let guard = holder.acquire(&name).await.unwrap();
                drop(guard);
            }
            .boxed()
        };
        // a file lock does not expire
        conformance::lake_lock(&a, &b, &crash, std::time::Duration::ZERO).await;
    }
}
