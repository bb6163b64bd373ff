//! The local store's group commit: puts, deletes and placed copies queue here; one thread
//! writes every queued body to a temp file, syncs them all at once, renames them all into place,
//! and syncs the directories that changed once more before answering them all. Under load a
//! group holds everything that arrived during the previous commit, so the cost of a durable write
//! is two journal commits per group, not per object.
//!
//! The thread is the only writer of existing objects (`put_if_absent` only creates), so the
//! conditional operations' check of the current ETag and their rename or removal are atomic.

use super::xattr;
use super::{META_DIR, Metadata, TMP_DIR};
use crate::error::{Error, Result};
use bytes::Bytes;
use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Answers an operation: `Ok(false)` when its condition did not hold.
pub(super) type Done = tokio::sync::oneshot::Sender<Result<bool>>;

pub(super) enum Op {
    Put {
        key: String,
        body: Bytes,
        metadata: Metadata,
        /// only while the object's ETag is this
        if_match: Option<String>,
        done: Done,
    },
    Delete {
        key: String,
        /// only while the object's ETag is this
        if_match: Option<String>,
        done: Done,
    },
    /// A body file already in the temp directory (a link to another object's file, or a copy
    /// of it, with its xattrs) renamed into place at `key`; `metadata` goes into a sidecar where
    /// xattrs are not used.
    Place {
        key: String,
        tmp: PathBuf,
        metadata: Metadata,
        done: Done,
    },
}

/// The most operations one group commits.
const MAX_GROUP: usize = 1024;

/// The queue in front of the commit thread.
#[derive(Debug)]
pub(super) struct Committer {
    tx: std::sync::Mutex<std::sync::mpsc::Sender<Op>>,
}

impl Committer {
    /// Starts the commit thread for the bucket at `root`.
    pub(super) fn start(bucket: &str, root: &Path, xattrs: bool) -> Result<Self> {
        let (tx, rx) = std::sync::mpsc::channel::<Op>();
        let worker = Worker {
            root: root.to_path_buf(),
            xattrs,
        };
        std::thread::Builder::new()
            .name(format!("commit-{bucket}"))
            .spawn(move || worker.run(rx))
            .map_err(Error::io("starting the commit thread", root))?;
        Ok(Self {
            tx: std::sync::Mutex::new(tx),
        })
    }

    /// Queues an operation and waits for its group to be committed.
    pub(super) async fn submit(&self, op: impl FnOnce(Done) -> Op) -> Result<bool> {
        let (done, wait) = tokio::sync::oneshot::channel();
        self.tx
            .lock()
            .expect("commit queue lock")
            .send(op(done))
            .map_err(|_| Error::Service("the commit thread stopped".into()))?;
        wait.await
            .map_err(|_| Error::Service("the commit thread stopped".into()))?
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
    /// the sidecar's path, and its new content's temp file (none: the sidecar is removed)
    meta: (PathBuf, Option<PathBuf>),
}

impl Prepared {
    fn temps(&self) -> impl Iterator<Item = &PathBuf> {
        std::iter::once(&self.body_tmp).chain(self.meta.1.as_ref())
    }
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

    /// Phase 1 of a put: the body in a temp file (with its metadata and a new ETag in xattrs,
    /// when they are used), the sidecar's content in another (when they are not).
    fn prepare(&self, key: &str, body: &[u8], metadata: &Metadata) -> Result<Prepared> {
        let body_tmp = self.tmp();
        let f = self.write(&body_tmp, body)?;
        if self.xattrs {
            if !metadata.is_empty() {
                let m =
                    serde_json::to_vec(metadata).map_err(|e| Error::InvalidInput(e.to_string()))?;
                xattr::set(&f, xattr::META, &m)
                    .map_err(Error::io("setting metadata", &body_tmp))?;
            }
            xattr::set_new_etag(&f).map_err(Error::io("setting the etag", &body_tmp))?;
        }
        Ok(Prepared {
            dest: self.root.join(key),
            body_tmp,
            meta: self.prepare_meta(key, metadata)?,
        })
    }

    /// Phase 1 of a placed copy: its sidecar's content.
    fn prepare_place(&self, key: &str, tmp: &Path, metadata: &Metadata) -> Result<Prepared> {
        Ok(Prepared {
            dest: self.root.join(key),
            body_tmp: tmp.to_path_buf(),
            meta: self.prepare_meta(key, metadata)?,
        })
    }

    /// The sidecar's path and its new content in a temp file; with xattrs (the metadata comes
    /// with the body) or no metadata, none: an old sidecar must not outlive the body it was for.
    fn prepare_meta(&self, key: &str, metadata: &Metadata) -> Result<(PathBuf, Option<PathBuf>)> {
        let meta_path = self.root.join(META_DIR).join(format!("{key}.json"));
        if self.xattrs || metadata.is_empty() {
            return Ok((meta_path, None));
        }
        let t = self.tmp();
        self.write(
            &t,
            &serde_json::to_vec(metadata).map_err(|e| Error::InvalidInput(e.to_string()))?,
        )?;
        Ok((meta_path, Some(t)))
    }

    /// Whether the object at `path` has the ETag `etag` now.
    fn matches(&self, path: &Path, etag: &str) -> Result<bool> {
        Ok(xattr::etag(path, self.xattrs)
            .map_err(Error::io("reading the etag", path))?
            .is_some_and(|e| e == etag))
    }

    /// Phase 2 of a put: the metadata, then the body, renamed into place; `Ok(false)` (nothing
    /// renamed) when `if_match` does not hold.
    fn publish(
        &self,
        p: &Prepared,
        if_match: Option<&str>,
        dirs: &mut BTreeSet<PathBuf>,
    ) -> Result<bool> {
        if let Some(etag) = if_match
            && !self.matches(&p.dest, etag)?
        {
            return Ok(false);
        }
        let (meta_path, tmp) = &p.meta;
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
        let parent = p.dest.parent().expect("object path has a parent");
        create_dirs(parent, dirs)?;
        fs::rename(&p.body_tmp, &p.dest).map_err(Error::io("renaming object", &p.dest))?;
        dirs.insert(parent.to_path_buf());
        Ok(true)
    }

    /// Removes the object at `key`; `Ok(false)` when `if_match` does not hold.
    fn delete(
        &self,
        key: &str,
        if_match: Option<&str>,
        dirs: &mut BTreeSet<PathBuf>,
    ) -> Result<bool> {
        let path = self.root.join(key);
        if let Some(etag) = if_match
            && !self.matches(&path, etag)?
        {
            return Ok(false);
        }
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(if_match.is_none()),
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
        Ok(true)
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
                Op::Place {
                    key, tmp, metadata, ..
                } => Some(self.prepare_place(key, tmp, metadata)),
                Op::Delete { .. } => None,
            })
            .collect();
        let temps: Vec<PathBuf> = prepared
            .iter()
            .flatten()
            .flatten()
            .flat_map(|p| p.temps().cloned())
            .collect();
        let synced = fsync_all(&temps);
        for p in prepared.iter_mut().flatten() {
            if let Ok(prep) = p {
                let failed = prep.temps().find_map(|t| {
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
        let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
        let mut results: Vec<Result<bool>> = Vec::with_capacity(ops.len());
        for (op, prep) in ops.iter().zip(&prepared) {
            results.push(match (op, prep) {
                (_, Some(Err(e))) => Err(Error::Service(format!("writing {}: {e}", op_key(op)))),
                (Op::Put { if_match, .. }, Some(Ok(p))) => {
                    self.publish(p, if_match.as_deref(), &mut dirs)
                }
                (Op::Place { .. }, Some(Ok(p))) => self.publish(p, None, &mut dirs),
                (Op::Delete { key, if_match, .. }, None) => {
                    self.delete(key, if_match.as_deref(), &mut dirs)
                }
                (Op::Put { .. } | Op::Place { .. }, None) | (Op::Delete { .. }, Some(Ok(_))) => {
                    unreachable!("exactly the puts and placed copies were prepared")
                }
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
                && !matches!(result, Ok(true))
            {
                for t in p.temps() {
                    let _ = fs::remove_file(t);
                }
            }
            let result = match (&dir_error, result) {
                (Some(e), Ok(true)) => Err(Error::Service(format!("syncing directories: {e}"))),
                (_, r) => r,
            };
            let done = match op {
                Op::Put { done, .. } | Op::Delete { done, .. } | Op::Place { done, .. } => done,
            };
            let _ = done.send(result);
        }
    }
}

/// Creates `dir` and missing parents, recording every directory whose entries changed.
fn create_dirs(dir: &Path, changed: &mut BTreeSet<PathBuf>) -> Result<()> {
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
fn fsync_all(paths: &[PathBuf]) -> HashMap<PathBuf, Result<(), std::io::Error>> {
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
        Op::Put { key, .. } | Op::Delete { key, .. } | Op::Place { key, .. } => key,
    }
}
