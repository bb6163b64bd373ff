//! [`LocalObjectStore`]: the object store port over a directory.

use super::commit::{Committer, Op};
use super::xattr;
use super::{
    GetResult, META_DIR, Metadata, ObjectInfo, ObjectStore, Part, TMP_DIR, UPLOADS_DIR,
    check_range, range_past_end, validate_key,
};
use crate::error::{Error, Result};
use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A bucket kept as a directory. Object bodies are plain files at their key's path, so other
/// tools (DuckDB, pyarrow) read the lake's Parquet directly. User metadata is an extended
/// attribute of the body's file (`user.tarn.meta`, JSON), set before the file is renamed into
/// place, so body and metadata appear together; on a filesystem without user xattrs it lives in
/// a sidecar under `.tarn-meta/`, written before the body is renamed into place (and sidecars
/// are still read, for data dirs written that way). Every write gives the file a new ETag
/// (`user.tarn.etag`; without xattrs the ETag is made of the file's inode, modification time and
/// size). Puts, deletes and copies are committed in groups by one thread ([`super::commit`]);
/// `copy` hard-links the source's file (body and xattrs at once), and copies it where a link
/// cannot be made; `get_range` reads only the range, at its offset in the file.
#[derive(Debug, Clone)]
pub struct LocalObjectStore {
    bucket: String,
    root: PathBuf,
    committer: Arc<Committer>,
    /// metadata in xattrs (else in sidecars)
    xattrs: bool,
    /// `copy` tries a hard link before copying the bytes (off only in tests of the fallback)
    links: bool,
}

impl LocalObjectStore {
    /// Opens (creating if needed) the bucket directory `root`.
    pub fn open(bucket: impl Into<String>, root: impl Into<PathBuf>) -> Result<Self> {
        Self::open_with(bucket, root, true)
    }

    /// [`Self::open`], with xattrs used only if `xattrs` and they work.
    fn open_with(
        bucket: impl Into<String>,
        root: impl Into<PathBuf>,
        xattrs: bool,
    ) -> Result<Self> {
        let root = root.into();
        for dir in [
            root.clone(),
            root.join(META_DIR),
            root.join(TMP_DIR),
            root.join(UPLOADS_DIR),
        ] {
            fs::create_dir_all(&dir).map_err(Error::io("creating bucket directory", &dir))?;
        }
        let root = root
            .canonicalize()
            .map_err(Error::io("resolving bucket directory", &root))?;
        let bucket = bucket.into();
        let xattrs = xattrs && xattr::work(&root.join(TMP_DIR));
        let committer = Arc::new(Committer::start(&bucket, &root, xattrs)?);
        Ok(Self {
            bucket,
            root,
            committer,
            xattrs,
            links: true,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether metadata and ETags live in xattrs.
    pub(super) fn xattrs(&self) -> bool {
        self.xattrs
    }

    /// The file that holds `key`'s body.
    pub fn path_of(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    fn meta_path(&self, key: &str) -> PathBuf {
        self.root.join(META_DIR).join(format!("{key}.json"))
    }

    pub(super) fn tmp_path(&self) -> PathBuf {
        self.root
            .join(TMP_DIR)
            .join(uuid::Uuid::new_v4().to_string())
    }

    pub(super) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&LocalObjectStore) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(&this))
            .await
            .map_err(|e| Error::Service(format!("blocking task failed: {e}")))?
    }

    /// A synced temp file holding `body` (a sidecar's).
    fn write_tmp(&self, body: &[u8]) -> Result<PathBuf> {
        self.write_tmp_with(body, None)
    }

    /// A synced temp file holding `body`; for an object's body (`metadata` given), with its
    /// metadata and a new ETag in xattrs (when they are used).
    pub(super) fn write_tmp_with(
        &self,
        body: &[u8],
        metadata: Option<&Metadata>,
    ) -> Result<PathBuf> {
        let tmp = self.tmp_path();
        let mut f = File::create(&tmp).map_err(Error::io("creating temp file", &tmp))?;
        f.write_all(body)
            .map_err(Error::io("writing temp file", &tmp))?;
        if self.xattrs
            && let Some(metadata) = metadata
        {
            self.set_xattrs(&f, &tmp, metadata)?;
        }
        f.sync_all().map_err(Error::io("syncing temp file", &tmp))?;
        Ok(tmp)
    }

    /// Sets an object file's metadata (when there is any) and a new ETag.
    pub(super) fn set_xattrs(&self, f: &File, path: &Path, metadata: &Metadata) -> Result<()> {
        if !metadata.is_empty() {
            let m = serde_json::to_vec(metadata).map_err(|e| Error::InvalidInput(e.to_string()))?;
            xattr::set(f, xattr::META, &m).map_err(Error::io("setting metadata", path))?;
        }
        xattr::set_new_etag(f).map_err(Error::io("setting the etag", path))
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
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(Error::io("removing metadata", &path)(e))
                }
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

    /// The metadata of `key`, whose body file is `of`.
    fn read_meta(&self, key: &str, of: xattr::Of<'_>) -> Result<Metadata> {
        if self.xattrs {
            let body = self.path_of(key);
            match xattr::get_of(of, xattr::META) {
                Ok(Some(b)) => {
                    return serde_json::from_slice(&b)
                        .map_err(|e| Error::Service(format!("corrupt metadata for {key}: {e}")));
                }
                Ok(None) => {} // none, or written as a sidecar
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Metadata::new()),
                Err(e) => return Err(Error::io("reading metadata", &body)(e)),
            }
        }
        let path = self.meta_path(key);
        match fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| Error::Service(format!("corrupt metadata for {key}: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Metadata::new()),
            Err(e) => Err(Error::io("reading metadata", &path)(e)),
        }
    }

    fn head_sync(&self, key: &str) -> Result<Option<ObjectInfo>> {
        let path = self.path_of(key);
        let md = match fs::metadata(&path) {
            Ok(md) if md.is_file() => md,
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("reading object", &path)(e)),
        };
        let of = xattr::Of::Path(&path);
        let metadata = self.read_meta(key, of)?;
        self.info(key, of, &md, metadata).map(Some)
    }

    /// Body, metadata and ETag from one open file: all of the same write.
    fn get_sync(&self, key: &str) -> Result<GetResult> {
        let path = self.path_of(key);
        let not_found = |e: &std::io::Error| {
            matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::IsADirectory
            )
        };
        let mut f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if not_found(&e) => return Err(Error::NotFound { key: key.into() }),
            Err(e) => return Err(Error::io("reading object", &path)(e)),
        };
        let md = f.metadata().map_err(Error::io("reading object", &path))?;
        if !md.is_file() {
            return Err(Error::NotFound { key: key.into() });
        }
        let mut body = Vec::with_capacity(md.len() as usize);
        match f.read_to_end(&mut body) {
            Ok(_) => {}
            Err(e) if not_found(&e) => return Err(Error::NotFound { key: key.into() }),
            Err(e) => return Err(Error::io("reading object", &path)(e)),
        }
        let of = xattr::Of::File(&f);
        let metadata = self.read_meta(key, of)?;
        let mut info = self.info(key, of, &md, metadata)?;
        info.size = body.len() as u64;
        Ok(GetResult {
            info,
            body: Bytes::from(body),
        })
    }

    /// The bytes `range` of `key`'s body, read at their offset (pread) from one open file.
    fn get_range_sync(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        let path = self.path_of(key);
        let f = match File::open(&path) {
            Ok(f) => f,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::IsADirectory
                ) =>
            {
                return Err(Error::NotFound { key: key.into() });
            }
            Err(e) => return Err(Error::io("reading object", &path)(e)),
        };
        let md = f.metadata().map_err(Error::io("reading object", &path))?;
        if !md.is_file() {
            return Err(Error::NotFound { key: key.into() });
        }
        if range.start >= md.len() {
            return Err(range_past_end(key, &range));
        }
        let end = range.end.min(md.len());
        let mut body = vec![0; (end - range.start) as usize];
        f.read_exact_at(&mut body, range.start)
            .map_err(Error::io("reading object", &path))?;
        Ok(Bytes::from(body))
    }

    fn info(
        &self,
        key: &str,
        of: xattr::Of<'_>,
        md: &fs::Metadata,
        metadata: Metadata,
    ) -> Result<ObjectInfo> {
        let last_modified = md
            .modified()
            .map(DateTime::<Utc>::from)
            .unwrap_or_else(|_| Utc::now());
        let etag = xattr::etag_of(of, md, self.xattrs)
            .map_err(Error::io("reading the etag", self.path_of(key)))?;
        Ok(ObjectInfo {
            key: key.to_string(),
            size: md.len(),
            last_modified,
            metadata,
            etag,
        })
    }

    /// A temp file holding `from`'s body and metadata: a hard link to its file, or where links
    /// cannot be made (another filesystem under the root, a filesystem without links), a
    /// synced copy with the same xattrs and a new ETag. With the metadata, for a sidecar.
    fn link_or_copy(&self, from: &str) -> Result<(PathBuf, Metadata)> {
        let src = self.path_of(from);
        match fs::metadata(&src) {
            Ok(md) if md.is_file() => {}
            Ok(_) => return Err(Error::NotFound { key: from.into() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound { key: from.into() });
            }
            Err(e) => return Err(Error::io("reading object", &src)(e)),
        }
        let tmp = self.tmp_path();
        let linked = if self.links {
            fs::hard_link(&src, &tmp)
        } else {
            Err(std::io::Error::from(std::io::ErrorKind::CrossesDevices))
        };
        match linked {
            Ok(()) => {
                // the link's own xattrs are the source's
                let metadata = if self.xattrs {
                    Metadata::new()
                } else {
                    self.read_meta(from, xattr::Of::Path(&tmp))?
                };
                return Ok((tmp, metadata));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound { key: from.into() });
            }
            Err(_) => {}
        }
        let got = self.get_sync(from)?;
        let metadata = got.info.metadata;
        let tmp = self.write_tmp_with(&got.body, Some(&metadata))?;
        Ok((
            tmp,
            if self.xattrs {
                Metadata::new()
            } else {
                metadata
            },
        ))
    }

    fn put_sync(
        &self,
        key: &str,
        body: &[u8],
        metadata: &Metadata,
        if_absent: bool,
    ) -> Result<bool> {
        validate_key(key)?;
        let dest = self.path_of(key);
        if if_absent && dest.exists() {
            return Ok(false);
        }
        let tmp = self.write_tmp_with(body, Some(metadata))?;
        self.place_tmp(key, tmp, metadata, if_absent)
    }

    /// Puts the synced temp file `tmp` (an object's body, with its metadata and ETag in xattrs
    /// when they are used) into place at `key`: renamed over any object there, or with
    /// `if_absent` linked only when there is none (`Ok(false)` then). The temp file is gone after.
    pub(super) fn place_tmp(
        &self,
        key: &str,
        tmp: PathBuf,
        metadata: &Metadata,
        if_absent: bool,
    ) -> Result<bool> {
        let dest = self.path_of(key);
        // with xattrs the metadata came with the body; an old sidecar must not outlive it
        let sidecar = if self.xattrs {
            &Metadata::new()
        } else {
            metadata
        };
        let parent = dest
            .parent()
            .expect("object path has a parent")
            .to_path_buf();
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
            self.write_meta(key, sidecar)?;
        } else {
            // the metadata goes first, so that whoever sees the new body sees its metadata
            self.write_meta(key, sidecar)?;
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
        let start = if dir_part.is_empty() {
            self.root.clone()
        } else {
            self.root.join(dir_part)
        };
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
                let rel = path
                    .strip_prefix(&self.root)
                    .expect("under root")
                    .to_string_lossy()
                    .replace('\\', "/");
                // an object deleted while the listing runs is simply not listed
                let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
                let ft = match entry.file_type() {
                    Ok(ft) => ft,
                    Err(e) if gone(&e) => continue,
                    Err(e) => return Err(Error::io("listing directory", &path)(e)),
                };
                if ft.is_dir() {
                    // descend only where keys can still match the prefix
                    let as_dir = format!("{rel}/");
                    if as_dir.starts_with(prefix) || prefix.starts_with(&as_dir) {
                        stack.push(path);
                    }
                } else if ft.is_file() && rel.starts_with(prefix) {
                    let md = match entry.metadata() {
                        Ok(md) => md,
                        Err(e) if gone(&e) => continue,
                        Err(e) => return Err(Error::io("listing directory", &path)(e)),
                    };
                    let info = match self.info(&rel, xattr::Of::Path(&path), &md, Metadata::new()) {
                        Ok(info) => info,
                        Err(Error::Io { source, .. }) if gone(&source) => continue,
                        Err(e) => return Err(e),
                    };
                    out.push(info);
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}

pub(super) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("syncing directory", dir))
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
        validate_key(key)?;
        let key = key.to_string();
        self.committer
            .submit(move |done| Op::Put {
                key,
                body,
                metadata,
                if_match: None,
                done,
            })
            .await
            .map(|_| ())
    }

    async fn put_if_absent(&self, key: &str, body: Bytes, metadata: Metadata) -> Result<bool> {
        let key = key.to_string();
        self.blocking(move |s| s.put_sync(&key, &body, &metadata, true))
            .await
    }

    async fn put_if_match(
        &self,
        key: &str,
        body: Bytes,
        metadata: Metadata,
        etag: &str,
    ) -> Result<bool> {
        validate_key(key)?;
        let (key, etag) = (key.to_string(), etag.to_string());
        self.committer
            .submit(move |done| Op::Put {
                key,
                body,
                metadata,
                if_match: Some(etag),
                done,
            })
            .await
    }

    async fn get(&self, key: &str) -> Result<GetResult> {
        validate_key(key)?;
        let key = key.to_string();
        self.blocking(move |s| s.get_sync(&key)).await
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        validate_key(key)?;
        check_range(key, &range)?;
        let key = key.to_string();
        self.blocking(move |s| s.get_range_sync(&key, range)).await
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        validate_key(key)?;
        let key = key.to_string();
        self.blocking(move |s| s.head_sync(&key)).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let prefix = prefix.to_string();
        self.blocking(move |s| s.list_sync(&prefix)).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        let key = key.to_string();
        self.committer
            .submit(move |done| Op::Delete {
                key,
                if_match: None,
                done,
            })
            .await
            .map(|_| ())
    }

    async fn delete_if_match(&self, key: &str, etag: &str) -> Result<bool> {
        validate_key(key)?;
        let (key, etag) = (key.to_string(), etag.to_string());
        self.committer
            .submit(move |done| Op::Delete {
                key,
                if_match: Some(etag),
                done,
            })
            .await
    }

    async fn copy(&self, from: &str, to: &str) -> Result<()> {
        validate_key(from)?;
        validate_key(to)?;
        if from == to {
            // onto itself: nothing changes (a link would not replace its own file)
            return match self.head(from).await? {
                Some(_) => Ok(()),
                None => Err(Error::NotFound { key: from.into() }),
            };
        }
        let from_key = from.to_string();
        let (tmp, metadata) = self.blocking(move |s| s.link_or_copy(&from_key)).await?;
        let key = to.to_string();
        self.committer
            .submit(move |done| Op::Place {
                key,
                tmp,
                metadata,
                done,
            })
            .await
            .map(|_| ())
    }

    async fn create_multipart(&self, key: &str, metadata: Metadata) -> Result<String> {
        validate_key(key)?;
        let key = key.to_string();
        self.blocking(move |s| s.create_multipart_sync(&key, &metadata))
            .await
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        body: Bytes,
    ) -> Result<String> {
        validate_key(key)?;
        let (key, upload_id) = (key.to_string(), upload_id.to_string());
        self.blocking(move |s| s.upload_part_sync(&key, &upload_id, number, &body))
            .await
    }

    async fn list_parts(&self, key: &str, upload_id: &str) -> Result<Vec<Part>> {
        validate_key(key)?;
        let (key, upload_id) = (key.to_string(), upload_id.to_string());
        self.blocking(move |s| s.list_parts_sync(&key, &upload_id))
            .await
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[Part],
        if_absent: bool,
    ) -> Result<bool> {
        validate_key(key)?;
        let (k, id, parts) = (key.to_string(), upload_id.to_string(), parts.to_vec());
        let (tmp, metadata) = self
            .blocking(move |s| s.assemble_sync(&k, &id, &parts))
            .await?;
        let placed = if if_absent {
            let (k, m) = (key.to_string(), metadata.clone());
            self.blocking(move |s| s.place_tmp(&k, tmp, &m, true))
                .await?
        } else {
            // through the committer, as every replacing write
            let key = key.to_string();
            let sidecar = if self.xattrs {
                Metadata::new()
            } else {
                metadata
            };
            self.committer
                .submit(move |done| Op::Place {
                    key,
                    tmp,
                    metadata: sidecar,
                    done,
                })
                .await?
        };
        if placed {
            let id = upload_id.to_string();
            self.blocking(move |s| s.remove_upload_sync(&id)).await?;
        }
        Ok(placed)
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<()> {
        validate_key(key)?;
        let (key, upload_id) = (key.to_string(), upload_id.to_string());
        self.blocking(move |s| s.abort_multipart_sync(&key, &upload_id))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn metadata_lives_with_the_body_and_old_sidecars_are_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalObjectStore::open("b", dir.path().join("b")).unwrap();
        let meta = Metadata::from([("table".to_string(), "events".to_string())]);
        store
            .put("id=1", Bytes::from_static(b"x"), meta.clone())
            .await
            .unwrap();
        assert!(
            store
                .put_if_absent("id=2", Bytes::from_static(b"y"), meta.clone())
                .await
                .unwrap()
        );
        for key in ["id=1", "id=2"] {
            assert_eq!(store.head(key).await.unwrap().unwrap().metadata, meta);
            // no sidecar where xattrs work (ext4, xfs, btrfs, tmpfs)
            assert_eq!(
                store.meta_path(key).exists(),
                !store.xattrs,
                "a sidecar exactly when xattrs are not used"
            );
        }
        // a data dir written with sidecars: still read; replaced by a put, sidecar and all
        store
            .put("id=3", Bytes::from_static(b"z"), Metadata::new())
            .await
            .unwrap();
        let old = Metadata::from([("producer".to_string(), "alice".to_string())]);
        std::fs::create_dir_all(store.meta_path("id=3").parent().unwrap()).unwrap();
        std::fs::write(store.meta_path("id=3"), serde_json::to_vec(&old).unwrap()).unwrap();
        assert_eq!(store.get("id=3").await.unwrap().info.metadata, old);
        store
            .put("id=3", Bytes::from_static(b"z2"), Metadata::new())
            .await
            .unwrap();
        assert!(
            store
                .head("id=3")
                .await
                .unwrap()
                .unwrap()
                .metadata
                .is_empty()
        );
        assert!(!store.meta_path("id=3").exists());
        store
            .put("id=3", Bytes::from_static(b"z3"), meta.clone())
            .await
            .unwrap();
        std::fs::write(store.meta_path("id=3"), serde_json::to_vec(&old).unwrap()).unwrap();
        store.delete("id=3").await.unwrap();
        assert!(
            !store.meta_path("id=3").exists(),
            "a delete takes an old sidecar too"
        );
        // an empty put over metadata leaves none
        store
            .put("id=1", Bytes::from_static(b"x2"), Metadata::new())
            .await
            .unwrap();
        assert!(
            store
                .head("id=1")
                .await
                .unwrap()
                .unwrap()
                .metadata
                .is_empty()
        );
    }

    #[tokio::test]
    async fn local_store_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalObjectStore::open("test", dir.path()).unwrap();
        crate::conformance::object_store(&store).await;
        // refused conditional writes and copies leave no temp file behind
        assert_eq!(fs::read_dir(dir.path().join(TMP_DIR)).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn with_sidecars_and_copied_bytes_the_store_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LocalObjectStore::open_with("test", dir.path(), false).unwrap();
        assert!(!store.xattrs);
        store.links = false;
        crate::conformance::object_store(&store).await;
        assert_eq!(fs::read_dir(dir.path().join(TMP_DIR)).unwrap().count(), 0);
        // a copy made of bytes gets its metadata's sidecar and no link to its source
        let m = Metadata::from([("table".to_string(), "t".to_string())]);
        store
            .put("a", Bytes::from_static(b"body"), m.clone())
            .await
            .unwrap();
        store.copy("a", "b").await.unwrap();
        assert!(store.meta_path("b").exists());
        assert_eq!(store.get("b").await.unwrap().info.metadata, m);
        use std::os::unix::fs::MetadataExt;
        assert_eq!(fs::metadata(store.path_of("b")).unwrap().nlink(), 1);
    }

    #[tokio::test]
    async fn a_copy_is_a_hard_link_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalObjectStore::open("test", dir.path()).unwrap();
        store
            .put("a/x", Bytes::from_static(b"body"), Metadata::new())
            .await
            .unwrap();
        store.copy("a/x", "b/y").await.unwrap();
        use std::os::unix::fs::MetadataExt;
        let (a, b) = (
            fs::metadata(store.path_of("a/x")).unwrap(),
            fs::metadata(store.path_of("b/y")).unwrap(),
        );
        assert_eq!(a.ino(), b.ino(), "one file, two names");
        assert_eq!(fs::read_dir(dir.path().join(TMP_DIR)).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn bodies_are_plain_files_under_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalObjectStore::open("test", dir.path()).unwrap();
        store
            .put("a/b/c.txt", Bytes::from_static(b"hello"), Metadata::new())
            .await
            .unwrap();
        assert_eq!(fs::read(dir.path().join("a/b/c.txt")).unwrap(), b"hello");
        // no temp files are left behind
        assert_eq!(fs::read_dir(dir.path().join(TMP_DIR)).unwrap().count(), 0);
    }
}
