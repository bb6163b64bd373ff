//! [`AuditedFiles`]: the local filesystem as DataFusion reads it, with every read recorded to the
//! access trail, so a local query leaves the same trace an Athena query leaves in CloudTrail
//! (`GetObject` per read, `ListObjects` per listing, attributed to the person querying).
//!
//! Paths under a known store's root are recorded as that store's bucket and key
//! (`tarn-lake`, `tables/events/dt=2024-05-06/part-....parquet`); others as bucket `local` and
//! the absolute path.

use async_trait::async_trait;
use datafusion::object_store::local::LocalFileSystem;
use datafusion::object_store::path::Path;
use datafusion::object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use futures::stream::BoxStream;
use serde_json::json;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use tarn_core::audit::{Actor, AuditEvent, AuditSink, EventName, component, table_of_key};

/// The local filesystem, audited.
#[derive(Debug)]
pub struct AuditedFiles {
    inner: Arc<dyn ObjectStore>,
    sink: Arc<dyn AuditSink>,
    actor: Actor,
    /// (root directory, bucket name), longest root first
    roots: Vec<(PathBuf, String)>,
}

impl std::fmt::Display for AuditedFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditedFiles({})", self.inner)
    }
}

impl AuditedFiles {
    /// Reads of the whole filesystem, recorded to `sink` as `actor`'s; `roots` name the stores
    /// (a directory and its bucket) whose files are recorded by bucket and key.
    pub fn new(
        sink: Arc<dyn AuditSink>,
        actor: Actor,
        roots: impl IntoIterator<Item = (PathBuf, String)>,
    ) -> Self {
        let mut roots: Vec<(PathBuf, String)> = roots
            .into_iter()
            .map(|(p, b)| (std::fs::canonicalize(&p).unwrap_or(p), b))
            .collect();
        roots.sort_by_key(|(p, _)| std::cmp::Reverse(p.as_os_str().len()));
        Self {
            inner: Arc::new(LocalFileSystem::new()),
            sink,
            actor,
            roots,
        }
    }

    /// Bucket and key of a filesystem path (object_store paths are relative to `/`).
    fn locate(&self, location: &Path) -> (String, String) {
        let abs = PathBuf::from(format!("/{location}"));
        for (root, bucket) in &self.roots {
            if let Ok(rel) = abs.strip_prefix(root) {
                return (bucket.clone(), rel.to_string_lossy().into_owned());
            }
        }
        ("local".into(), abs.to_string_lossy().into_owned())
    }

    fn event(&self, name: EventName, location: Option<&Path>, is_prefix: bool) -> AuditEvent {
        let (bucket, key) = match location {
            Some(l) => self.locate(l),
            None => ("local".into(), "/".into()),
        };
        let mut e = AuditEvent::new(name, bucket, self.actor.clone(), "127.0.0.1");
        e.invoked_by = Some(component::QUERY.into());
        e.user_agent = format!("tarn/{} ({})", env!("CARGO_PKG_VERSION"), component::QUERY);
        if let Some(t) = table_of_key(&key) {
            e.additional.insert("tarnTable".into(), json!(t));
        }
        if is_prefix {
            e.prefix = Some(key);
        } else {
            e.key = Some(key);
        }
        e
    }

    fn finish<T>(&self, mut e: AuditEvent, r: &Result<T>, bytes_out: u64) {
        e.additional.insert("bytesTransferredIn".into(), json!(0));
        e.additional
            .insert("bytesTransferredOut".into(), json!(bytes_out));
        if let Err(err) = r {
            let code = match err {
                datafusion::object_store::Error::NotFound { .. } => "NoSuchKey",
                datafusion::object_store::Error::AlreadyExists { .. } => "PreconditionFailed",
                _ => "InternalError",
            };
            e.error = Some((code.into(), err.to_string()));
        }
        self.sink.record(e);
    }
}

#[async_trait]
impl ObjectStore for AuditedFiles {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let e = self.event(EventName::PutObject, Some(location), false);
        let r = self.inner.put_opts(location, payload, opts).await;
        self.finish(e, &r, 0);
        r
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let e = self.event(EventName::PutObject, Some(location), false);
        let r = self.inner.put_multipart_opts(location, opts).await;
        self.finish(e, &r, 0);
        r
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let name = if options.head {
            EventName::HeadObject
        } else {
            EventName::GetObject
        };
        let head = options.head;
        let e = self.event(name, Some(location), false);
        let r = self.inner.get_opts(location, options).await;
        let out = match &r {
            Ok(g) if !head => g.range.end - g.range.start,
            _ => 0,
        };
        self.finish(e, &r, out);
        r
    }

    /// One `GetObject` per call (the inner store reads the ranges its own way)
    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> Result<Vec<bytes::Bytes>> {
        let mut e = self.event(EventName::GetObject, Some(location), false);
        if let (Some(first), Some(last)) = (
            ranges.iter().map(|r| r.start).min(),
            ranges.iter().map(|r| r.end).max(),
        ) {
            e.request_extra.insert(
                "Range".into(),
                json!(format!("bytes={first}-{}", last.saturating_sub(1))),
            );
        }
        let r = self.inner.get_ranges(location, ranges).await;
        let out = r
            .as_ref()
            .map(|v| v.iter().map(|b| b.len() as u64).sum())
            .unwrap_or(0);
        self.finish(e, &r, out);
        r
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let e = self.event(EventName::ListObjects, prefix, true);
        self.sink.record(e);
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let e = self.event(EventName::ListObjects, prefix, true);
        let r = self.inner.list_with_delimiter(prefix).await;
        self.finish(e, &r, 0);
        r
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        let e = self.event(EventName::PutObject, Some(to), false);
        let r = self.inner.copy_opts(from, to, options).await;
        self.finish(e, &r, 0);
        r
    }
}
