//! The object store port, shaped after S3, and its local-filesystem implementation.
//!
//! Guarantees every implementation gives (checked by [`crate::conformance::object_store`]):
//! - `put` returns only once the object is durable; readers see either the old object or the
//!   whole new one, never a part.
//! - `put_if_absent` is atomic: of two concurrent calls for one key, exactly one wins (its
//!   metadata may become visible just after its body).
//! - `list` returns every object under a prefix in lexicographic key order, without metadata
//!   (as S3's ListObjectsV2); `head`/`get` return the user metadata given at `put`.
//! - `delete` is idempotent: deleting a missing key succeeds.
//! - keys are `/`-separated relative paths with no empty, `.` or `..` segments.

use crate::error::{Error, Result};
use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// User metadata of an object (S3's `x-amz-meta-*`), keys lowercase.
pub type Metadata = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    pub last_modified: DateTime<Utc>,
    /// empty in `list` results
    pub metadata: Metadata,
}

#[derive(Debug, Clone)]
pub struct GetResult {
    pub info: ObjectInfo,
    pub body: Bytes,
}

#[async_trait]
pub trait ObjectStore: Send + Sync + std::fmt::Debug {
    /// The bucket's name, as it appears in audit records.
    fn bucket(&self) -> &str;
    /// Where a query engine finds the key: `file:///...` locally, `s3://bucket/key` on AWS.
    fn url(&self, key: &str) -> String;
    async fn put(&self, key: &str, body: Bytes, metadata: Metadata) -> Result<()>;
    /// Writes only when no object exists at `key`; `Ok(false)` when one did.
    async fn put_if_absent(&self, key: &str, body: Bytes, metadata: Metadata) -> Result<bool>;
    /// `Error::NotFound` when the key does not exist.
    async fn get(&self, key: &str) -> Result<GetResult>;
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>>;
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>>;
    async fn delete(&self, key: &str) -> Result<()>;
}

/// Checks a key against the rules every store enforces.
pub fn validate_key(key: &str) -> Result<()> {
    let bad = |reason| Err(Error::InvalidKey { key: key.to_string(), reason });
    if key.is_empty() {
        return bad("empty");
    }
    if key.len() > 1024 {
        return bad("longer than 1024 bytes");
    }
    if key.starts_with('/') || key.ends_with('/') {
        return bad("leading or trailing slash");
    }
    for seg in key.split('/') {
        if seg.is_empty() || seg == "." || seg == ".." {
            return bad("empty, . or .. segment");
        }
        if seg.starts_with(".tarn") {
            return bad("segments starting with .tarn are reserved");
        }
    }
    if key.contains('\0') || key.contains('\\') {
        return bad("nul or backslash");
    }
    Ok(())
}

const META_DIR: &str = ".tarn-meta";
const TMP_DIR: &str = ".tarn-tmp";

/// A bucket kept as a directory. Object bodies are plain files at their key's path, so other
/// tools (DuckDB, pyarrow) read the lake's Parquet directly; user metadata lives in a sidecar
/// under `.tarn-meta/`, written before the body is renamed into place.
#[derive(Debug, Clone)]
pub struct LocalObjectStore {
    bucket: String,
    root: PathBuf,
}

impl LocalObjectStore {
    /// Opens (creating if needed) the bucket directory `root`.
    pub fn open(bucket: impl Into<String>, root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        for dir in [root.clone(), root.join(META_DIR), root.join(TMP_DIR)] {
            fs::create_dir_all(&dir).map_err(Error::io("creating bucket directory", &dir))?;
        }
        let root = root.canonicalize().map_err(Error::io("resolving bucket directory", &root))?;
        Ok(Self { bucket: bucket.into(), root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file that holds `key`'s body.
    pub fn path_of(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    fn meta_path(&self, key: &str) -> PathBuf {
        self.root.join(META_DIR).join(format!("{key}.json"))
    }

    fn tmp_path(&self) -> PathBuf {
        self.root.join(TMP_DIR).join(uuid::Uuid::new_v4().to_string())
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&LocalObjectStore) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(&this))
            .await
            .map_err(|e| Error::Service(format!("blocking task failed: {e}")))?
    }

    fn write_tmp(&self, body: &[u8]) -> Result<PathBuf> {
        let tmp = self.tmp_path();
        let mut f = File::create(&tmp).map_err(Error::io("creating temp file", &tmp))?;
        f.write_all(body).map_err(Error::io("writing temp file", &tmp))?;
        f.sync_all().map_err(Error::io("syncing temp file", &tmp))?;
        Ok(tmp)
    }

    /// Creates `dir` and its missing parents, syncing each new entry's parent.
    fn ensure_dir(&self, dir: &Path) -> Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        if let Some(parent) = dir.parent() {
            self.ensure_dir(parent)?;
        }
        match fs::create_dir(dir) {
            Ok(()) => {
                if let Some(parent) = dir.parent() {
                    sync_dir(parent)?;
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(Error::io("creating directory", dir)(e)),
        }
    }

    fn write_meta(&self, key: &str, metadata: &Metadata) -> Result<()> {
        let path = self.meta_path(key);
        if metadata.is_empty() {
            return match fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("removing metadata", &path)(e)),
                _ => Ok(()),
            };
        }
        let body = serde_json::to_vec(metadata).map_err(|e| Error::InvalidInput(e.to_string()))?;
        let tmp = self.write_tmp(&body)?;
        let parent = path.parent().expect("meta path has a parent");
        self.ensure_dir(parent)?;
        fs::rename(&tmp, &path).map_err(Error::io("renaming metadata", &path))?;
        sync_dir(parent)
    }

    fn read_meta(&self, key: &str) -> Result<Metadata> {
        let path = self.meta_path(key);
        match fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| Error::Service(format!("corrupt metadata for {key}: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Metadata::new()),
            Err(e) => Err(Error::io("reading metadata", &path)(e)),
        }
    }

    fn info(&self, key: &str, with_meta: bool) -> Result<Option<ObjectInfo>> {
        let path = self.path_of(key);
        let md = match fs::metadata(&path) {
            Ok(md) if md.is_file() => md,
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("reading object", &path)(e)),
        };
        let last_modified = md.modified().map(DateTime::<Utc>::from).unwrap_or_else(|_| Utc::now());
        let metadata = if with_meta { self.read_meta(key)? } else { Metadata::new() };
        Ok(Some(ObjectInfo { key: key.to_string(), size: md.len(), last_modified, metadata }))
    }

    fn put_sync(&self, key: &str, body: &[u8], metadata: &Metadata, if_absent: bool) -> Result<bool> {
        validate_key(key)?;
        let dest = self.path_of(key);
        if if_absent && dest.exists() {
            return Ok(false);
        }
        let tmp = self.write_tmp(body)?;
        let parent = dest.parent().expect("object path has a parent").to_path_buf();
        self.ensure_dir(&parent)?;
        if if_absent {
            // the link claims the key atomically; only the winner writes metadata
            let res = fs::hard_link(&tmp, &dest);
            let _ = fs::remove_file(&tmp);
            match res {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
                Err(e) => return Err(Error::io("linking object", &dest)(e)),
            }
            self.write_meta(key, metadata)?;
        } else {
            // the metadata goes first, so that whoever sees the new body sees its metadata
            self.write_meta(key, metadata)?;
            fs::rename(&tmp, &dest).map_err(Error::io("renaming object", &dest))?;
        }
        sync_dir(&parent)?;
        Ok(true)
    }

    fn list_sync(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        // walk from the deepest directory the prefix names
        let dir_part = match prefix.rfind('/') {
            Some(i) => &prefix[..i],
            None => "",
        };
        let start = if dir_part.is_empty() { self.root.clone() } else { self.root.join(dir_part) };
        let mut out = Vec::new();
        let mut stack = vec![start];
        while let Some(dir) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("listing directory", &dir)(e)),
            };
            for entry in entries {
                let entry = entry.map_err(Error::io("listing directory", &dir))?;
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with(".tarn") {
                    continue;
                }
                let path = entry.path();
                let rel = path.strip_prefix(&self.root).expect("under root").to_string_lossy().replace('\\', "/");
                let ft = entry.file_type().map_err(Error::io("listing directory", &path))?;
                if ft.is_dir() {
                    // descend only where keys can still match the prefix
                    let as_dir = format!("{rel}/");
                    if as_dir.starts_with(prefix) || prefix.starts_with(&as_dir) {
                        stack.push(path);
                    }
                } else if ft.is_file() && rel.starts_with(prefix) {
                    let md = entry.metadata().map_err(Error::io("listing directory", &path))?;
                    let last_modified = md.modified().map(DateTime::<Utc>::from).unwrap_or_else(|_| Utc::now());
                    out.push(ObjectInfo { key: rel, size: md.len(), last_modified, metadata: Metadata::new() });
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(Error::io("syncing directory", dir))
}

#[async_trait]
impl ObjectStore for LocalObjectStore {
    fn bucket(&self) -> &str {
        &self.bucket
    }

    fn url(&self, key: &str) -> String {
        format!("file://{}", self.root.join(key).display())
    }

    async fn put(&self, key: &str, body: Bytes, metadata: Metadata) -> Result<()> {
        let key = key.to_string();
        self.blocking(move |s| s.put_sync(&key, &body, &metadata, false).map(|_| ())).await
    }

    async fn put_if_absent(&self, key: &str, body: Bytes, metadata: Metadata) -> Result<bool> {
        let key = key.to_string();
        self.blocking(move |s| s.put_sync(&key, &body, &metadata, true)).await
    }

    async fn get(&self, key: &str) -> Result<GetResult> {
        validate_key(key)?;
        let key = key.to_string();
        self.blocking(move |s| {
            let path = s.path_of(&key);
            let body = match fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::NotFound { key }),
                Err(e) if e.kind() == std::io::ErrorKind::IsADirectory => return Err(Error::NotFound { key }),
                Err(e) => return Err(Error::io("reading object", &path)(e)),
            };
            let info = s.info(&key, true)?.ok_or_else(|| Error::NotFound { key: key.clone() })?;
            Ok(GetResult { info, body: Bytes::from(body) })
        })
        .await
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        validate_key(key)?;
        let key = key.to_string();
        self.blocking(move |s| s.info(&key, true)).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let prefix = prefix.to_string();
        self.blocking(move |s| s.list_sync(&prefix)).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        let key = key.to_string();
        self.blocking(move |s| {
            let path = s.path_of(&key);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(Error::io("deleting object", &path)(e)),
            }
            let meta = s.meta_path(&key);
            let _ = fs::remove_file(meta);
            sync_dir(path.parent().expect("object path has a parent"))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        for bad in ["", "/a", "a/", "a//b", "a/../b", "..", ".", "a/./b", ".tarn-meta/x", "a\\b"] {
            assert!(validate_key(bad).is_err(), "{bad:?} should be refused");
        }
        for good in ["id=1", "tables/t/dt=2024-01-01/part-1.parquet", "a.b/c..d"] {
            validate_key(good).unwrap();
        }
    }

    #[tokio::test]
    async fn local_store_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalObjectStore::open("test", dir.path()).unwrap();
        crate::conformance::object_store(&store).await;
    }

    #[tokio::test]
    async fn bodies_are_plain_files_under_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalObjectStore::open("test", dir.path()).unwrap();
        store.put("a/b/c.txt", Bytes::from_static(b"hello"), Metadata::new()).await.unwrap();
        assert_eq!(fs::read(dir.path().join("a/b/c.txt")).unwrap(), b"hello");
        // no temp files are left behind
        assert_eq!(fs::read_dir(dir.path().join(TMP_DIR)).unwrap().count(), 0);
    }
}
