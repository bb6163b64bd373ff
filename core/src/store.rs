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
//! - `encrypts_at_rest` is true only when the store itself encrypts every put under the platform's
//!   KMS key (S3 with SSE-KMS); callers seal what they keep themselves otherwise.
//! - `presign_get`, when it gives a URL, lets whoever holds it read the object (decrypted, with
//!   the given content type) until the expiry passes, and not after.

use crate::error::{Error, Result};
use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    /// Whether the store encrypts every object it keeps under the platform's KMS key by itself
    /// (S3 with SSE-KMS). Such objects need no envelope of their own, which is what lets a
    /// presigned URL serve them; the default is `false` (local directories).
    fn encrypts_at_rest(&self) -> bool {
        false
    }
    /// A URL that reads `key` without credentials until `expires_in` has passed, its answer
    /// carrying `content_type`; `Ok(None)` when the store has no such URLs (the default).
    async fn presign_get(
        &self,
        key: &str,
        expires_in: std::time::Duration,
        content_type: &str,
    ) -> Result<Option<String>> {
        let _ = (key, expires_in, content_type);
        Ok(None)
    }
}

/// Checks a key against the rules every store enforces.
pub fn validate_key(key: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidKey {
            key: key.to_string(),
            reason,
        })
    };
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
/// tools (DuckDB, pyarrow) read the lake's Parquet directly. User metadata is an extended
/// attribute of the body's file (`user.tarn.meta`, JSON), set before the file is renamed into
/// place, so body and metadata appear together; on a filesystem without user xattrs it lives in
/// a sidecar under `.tarn-meta/`, written before the body is renamed into place (and sidecars
/// are still read, for data dirs written that way).
#[derive(Debug, Clone)]
pub struct LocalObjectStore {
    bucket: String,
    root: PathBuf,
    committer: Arc<Committer>,
    /// metadata in xattrs (else in sidecars)
    xattrs: bool,
}

/// The extended attribute that holds an object's user metadata.
const META_XATTR: &std::ffi::CStr = c"user.tarn.meta";

/// Sets `user.tarn.meta` on an open file.
fn set_meta_xattr(file: &File, value: &[u8]) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: the fd is open for the call; name is NUL-terminated; value/len describe a live slice
    let r = unsafe {
        libc::fsetxattr(
            file.as_raw_fd(),
            META_XATTR.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// `user.tarn.meta` of the file at `path`: `Ok(None)` when it has none.
fn get_meta_xattr(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: c and META_XATTR are NUL-terminated; buf/len describe a live, writable buffer
        let n = unsafe {
            libc::getxattr(
                c.as_ptr(),
                META_XATTR.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n >= 0 {
            buf.truncate(n as usize);
            return Ok(Some(buf));
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ENODATA) => return Ok(None),
            Some(libc::ERANGE) if buf.len() < 1 << 20 => buf.resize(buf.len() * 4, 0),
            _ => return Err(e),
        }
    }
}

/// Whether files in `dir` take user xattrs (ext4, xfs, btrfs, tmpfs on recent kernels do).
fn xattrs_work(dir: &Path) -> bool {
    let probe = dir.join(format!(".probe-{}", uuid::Uuid::new_v4()));
    let ok = File::create(&probe)
        .and_then(|f| set_meta_xattr(&f, b"{}"))
        .is_ok()
        && matches!(get_meta_xattr(&probe), Ok(Some(v)) if v == b"{}");
    let _ = fs::remove_file(&probe);
    ok
}

/// Group commit: puts and deletes queue here; one thread writes every queued body to a temp
/// file, syncs the filesystem once, renames them all into place, and syncs once more before
/// answering them all. Under load a group holds everything that arrived during the previous
/// commit, so the cost of a durable write is two journal commits per group, not per object.
#[derive(Debug)]
struct Committer {
    tx: std::sync::Mutex<std::sync::mpsc::Sender<Op>>,
}

enum Op {
    Put {
        key: String,
        body: Bytes,
        metadata: Metadata,
        done: tokio::sync::oneshot::Sender<Result<()>>,
    },
    Delete {
        key: String,
        done: tokio::sync::oneshot::Sender<Result<()>>,
    },
}

/// The most operations one group commits.
const MAX_GROUP: usize = 1024;

impl LocalObjectStore {
    /// Opens (creating if needed) the bucket directory `root`.
    pub fn open(bucket: impl Into<String>, root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        for dir in [root.clone(), root.join(META_DIR), root.join(TMP_DIR)] {
            fs::create_dir_all(&dir).map_err(Error::io("creating bucket directory", &dir))?;
        }
        let root = root
            .canonicalize()
            .map_err(Error::io("resolving bucket directory", &root))?;
        let (tx, rx) = std::sync::mpsc::channel::<Op>();
        let bucket = bucket.into();
        let xattrs = xattrs_work(&root.join(TMP_DIR));
        let worker = Worker {
            root: root.clone(),
            xattrs,
        };
        std::thread::Builder::new()
            .name(format!("commit-{bucket}"))
            .spawn(move || worker.run(rx))
            .map_err(Error::io("starting the commit thread", &root))?;
        Ok(Self {
            bucket,
            root,
            committer: Arc::new(Committer {
                tx: std::sync::Mutex::new(tx),
            }),
            xattrs,
        })
    }

    async fn submit(
        &self,
        op: impl FnOnce(tokio::sync::oneshot::Sender<Result<()>>) -> Op,
    ) -> Result<()> {
        let (done, wait) = tokio::sync::oneshot::channel();
        self.committer
            .tx
            .lock()
            .expect("commit queue lock")
            .send(op(done))
            .map_err(|_| Error::Service("the commit thread stopped".into()))?;
        wait.await
            .map_err(|_| Error::Service("the commit thread stopped".into()))?
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
        self.root
            .join(TMP_DIR)
            .join(uuid::Uuid::new_v4().to_string())
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
        self.write_tmp_with(body, &Metadata::new())
    }

    /// A synced temp file holding `body`, with `metadata` in its xattr (when they are used).
    fn write_tmp_with(&self, body: &[u8], metadata: &Metadata) -> Result<PathBuf> {
        let tmp = self.tmp_path();
        let mut f = File::create(&tmp).map_err(Error::io("creating temp file", &tmp))?;
        f.write_all(body)
            .map_err(Error::io("writing temp file", &tmp))?;
        if self.xattrs && !metadata.is_empty() {
            let m = serde_json::to_vec(metadata).map_err(|e| Error::InvalidInput(e.to_string()))?;
            set_meta_xattr(&f, &m).map_err(Error::io("setting metadata", &tmp))?;
        }
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

    fn read_meta(&self, key: &str) -> Result<Metadata> {
        if self.xattrs {
            let body = self.path_of(key);
            match get_meta_xattr(&body) {
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

    fn info(&self, key: &str, with_meta: bool) -> Result<Option<ObjectInfo>> {
        let path = self.path_of(key);
        let md = match fs::metadata(&path) {
            Ok(md) if md.is_file() => md,
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("reading object", &path)(e)),
        };
        let last_modified = md
            .modified()
            .map(DateTime::<Utc>::from)
            .unwrap_or_else(|_| Utc::now());
        let metadata = if with_meta {
            self.read_meta(key)?
        } else {
            Metadata::new()
        };
        Ok(Some(ObjectInfo {
            key: key.to_string(),
            size: md.len(),
            last_modified,
            metadata,
        }))
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
        let tmp = self.write_tmp_with(body, metadata)?;
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
                    let last_modified = md
                        .modified()
                        .map(DateTime::<Utc>::from)
                        .unwrap_or_else(|_| Utc::now());
                    out.push(ObjectInfo {
                        key: rel,
                        size: md.len(),
                        last_modified,
                        metadata: Metadata::new(),
                    });
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
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
        self.submit(move |done| Op::Put {
            key,
            body,
            metadata,
            done,
        })
        .await
    }

    async fn put_if_absent(&self, key: &str, body: Bytes, metadata: Metadata) -> Result<bool> {
        let key = key.to_string();
        self.blocking(move |s| s.put_sync(&key, &body, &metadata, true))
            .await
    }

    async fn get(&self, key: &str) -> Result<GetResult> {
        validate_key(key)?;
        let key = key.to_string();
        self.blocking(move |s| {
            let path = s.path_of(&key);
            let body = match fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(Error::NotFound { key });
                }
                Err(e) if e.kind() == std::io::ErrorKind::IsADirectory => {
                    return Err(Error::NotFound { key });
                }
                Err(e) => return Err(Error::io("reading object", &path)(e)),
            };
            let info = s
                .info(&key, true)?
                .ok_or_else(|| Error::NotFound { key: key.clone() })?;
            Ok(GetResult {
                info,
                body: Bytes::from(body),
            })
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
        self.submit(move |done| Op::Delete { key, done }).await
    }
}

struct Worker {
    root: PathBuf,
    /// metadata in xattrs (else in sidecars)
    xattrs: bool,
}

struct Prepared {
    dest: PathBuf,
    body_tmp: PathBuf,
    meta: Option<(PathBuf, Option<PathBuf>)>,
}

impl Worker {
    fn run(self, rx: std::sync::mpsc::Receiver<Op>) {
        while let Ok(first) = rx.recv() {
            let mut ops = vec![first];
            while ops.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(op) => ops.push(op),
                    Err(_) => break,
                }
            }
            self.commit(ops);
        }
    }

    fn tmp(&self) -> PathBuf {
        self.root
            .join(TMP_DIR)
            .join(uuid::Uuid::new_v4().to_string())
    }

    fn write(&self, path: &Path, body: &[u8]) -> Result<File> {
        let mut f = File::create(path).map_err(Error::io("creating temp file", path))?;
        f.write_all(body)
            .map_err(Error::io("writing temp file", path))?;
        Ok(f)
    }

    /// Phase 1 of a put: bodies and metadata in temp files.
    fn prepare(&self, key: &str, body: &[u8], metadata: &Metadata) -> Result<Prepared> {
        let body_tmp = self.tmp();
        let f = self.write(&body_tmp, body)?;
        let meta_path = self.root.join(META_DIR).join(format!("{key}.json"));
        let meta = if self.xattrs {
            // the metadata comes with the body; an old sidecar must not outlive it
            if !metadata.is_empty() {
                let m =
                    serde_json::to_vec(metadata).map_err(|e| Error::InvalidInput(e.to_string()))?;
                set_meta_xattr(&f, &m).map_err(Error::io("setting metadata", &body_tmp))?;
            }
            Some((meta_path, None))
        } else if metadata.is_empty() {
            Some((meta_path, None))
        } else {
            let t = self.tmp();
            self.write(
                &t,
                &serde_json::to_vec(metadata).map_err(|e| Error::InvalidInput(e.to_string()))?,
            )?;
            Some((meta_path, Some(t)))
        };
        Ok(Prepared {
            dest: self.root.join(key),
            body_tmp,
            meta,
        })
    }

    /// Phase 2 of a put: the metadata, then the body, renamed into place.
    fn publish(&self, p: &Prepared, dirs: &mut std::collections::BTreeSet<PathBuf>) -> Result<()> {
        if let Some((meta_path, tmp)) = &p.meta {
            let parent = meta_path.parent().expect("meta path has a parent");
            match tmp {
                Some(t) => {
                    create_dirs(parent, dirs)?;
                    fs::rename(t, meta_path).map_err(Error::io("renaming metadata", meta_path))?;
                    dirs.insert(parent.to_path_buf());
                }
                None => match fs::remove_file(meta_path) {
                    Ok(()) => {
                        dirs.insert(parent.to_path_buf());
                    }
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(Error::io("removing metadata", meta_path)(e));
                    }
                    _ => {}
                },
            }
        }
        let parent = p.dest.parent().expect("object path has a parent");
        create_dirs(parent, dirs)?;
        fs::rename(&p.body_tmp, &p.dest).map_err(Error::io("renaming object", &p.dest))?;
        dirs.insert(parent.to_path_buf());
        Ok(())
    }

    fn delete(&self, key: &str, dirs: &mut std::collections::BTreeSet<PathBuf>) -> Result<()> {
        let path = self.root.join(key);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io("deleting object", &path)(e)),
        }
        dirs.insert(
            path.parent()
                .expect("object path has a parent")
                .to_path_buf(),
        );
        let meta = self.root.join(META_DIR).join(format!("{key}.json"));
        if fs::remove_file(&meta).is_ok() {
            dirs.insert(meta.parent().expect("meta path has a parent").to_path_buf());
        }
        Ok(())
    }

    fn commit(&self, ops: Vec<Op>) {
        // phase 1: temp files, then every one fsynced at once (the journal merges them)
        let mut prepared: Vec<Option<Result<Prepared>>> = ops
            .iter()
            .map(|op| match op {
                Op::Put {
                    key,
                    body,
                    metadata,
                    ..
                } => Some(self.prepare(key, body, metadata)),
                Op::Delete { .. } => None,
            })
            .collect();
        let temps: Vec<PathBuf> = prepared
            .iter()
            .flatten()
            .flatten()
            .flat_map(|p| {
                std::iter::once(p.body_tmp.clone())
                    .chain(p.meta.as_ref().and_then(|(_, t)| t.clone()))
            })
            .collect();
        let synced = fsync_all(&temps);
        for p in prepared.iter_mut().flatten() {
            if let Ok(prep) = p {
                let failed = std::iter::once(&prep.body_tmp)
                    .chain(prep.meta.as_ref().and_then(|(_, t)| t.as_ref()))
                    .find_map(|t| {
                        synced
                            .get(t)
                            .and_then(|r| r.as_ref().err())
                            .map(|e| e.to_string())
                    });
                if let Some(e) = failed {
                    *p = Err(Error::Service(format!("syncing a temp file: {e}")));
                }
            }
        }
        // phase 2: into place (or deleted); then the directories that changed, fsynced at once
        let mut dirs: std::collections::BTreeSet<PathBuf> = std::collections::BTreeSet::new();
        let mut results: Vec<Result<()>> = Vec::with_capacity(ops.len());
        for (op, prep) in ops.iter().zip(&prepared) {
            results.push(match (op, prep) {
                (_, Some(Err(e))) => Err(Error::Service(format!("writing {}: {e}", op_key(op)))),
                (_, Some(Ok(p))) => self.publish(p, &mut dirs),
                (Op::Delete { key, .. }, None) => self.delete(key, &mut dirs),
                (Op::Put { .. }, None) => unreachable!("every put was prepared"),
            });
        }
        let dirs: Vec<PathBuf> = dirs.into_iter().collect();
        let dir_sync = fsync_all(&dirs);
        let dir_error = dir_sync
            .values()
            .find_map(|r| r.as_ref().err())
            .map(|e| e.to_string());
        for ((op, prep), result) in ops.into_iter().zip(prepared).zip(results) {
            if let Some(Ok(p)) = &prep
                && result.is_err()
            {
                let _ = fs::remove_file(&p.body_tmp);
                if let Some((_, Some(t))) = &p.meta {
                    let _ = fs::remove_file(t);
                }
            }
            let result = match (&dir_error, result) {
                (Some(e), Ok(())) => Err(Error::Service(format!("syncing directories: {e}"))),
                (_, r) => r,
            };
            let done = match op {
                Op::Put { done, .. } | Op::Delete { done, .. } => done,
            };
            let _ = done.send(result);
        }
    }
}

/// Creates `dir` and missing parents, recording every directory whose entries changed.
fn create_dirs(dir: &Path, changed: &mut std::collections::BTreeSet<PathBuf>) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dirs(parent, changed)?;
        changed.insert(parent.to_path_buf());
    }
    match fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io("creating directory", dir)(e)),
    }
}

/// fsyncs every path, many at once: concurrent fsyncs share journal commits.
fn fsync_all(paths: &[PathBuf]) -> std::collections::HashMap<PathBuf, Result<(), std::io::Error>> {
    const THREADS: usize = 32;
    if paths.is_empty() {
        return Default::default();
    }
    let chunk = paths.len().div_ceil(THREADS).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = paths
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|p| (p.clone(), File::open(p).and_then(|f| f.sync_all())))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("fsync thread"))
            .collect()
    })
}

fn op_key(op: &Op) -> &str {
    match op {
        Op::Put { key, .. } | Op::Delete { key, .. } => key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        for bad in [
            "",
            "/a",
            "a/",
            "a//b",
            "a/../b",
            "..",
            ".",
            "a/./b",
            ".tarn-meta/x",
            "a\\b",
        ] {
            assert!(validate_key(bad).is_err(), "{bad:?} should be refused");
        }
        for good in ["id=1", "tables/t/dt=2024-01-01/part-1.parquet", "a.b/c..d"] {
            validate_key(good).unwrap();
        }
    }

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
