//! [`AuditedStore`]: an [`ObjectStore`] that records every call, with its outcome, to an
//! [`AuditSink`]; and the per-request context ([`RequestScope`]) through which a server
//! attributes the store calls it makes for a request to the caller.

use super::record::{Actor, AuditEvent, EventName, table_of_key};
use super::sink::AuditSink;
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::store::{GetResult, Metadata, ObjectInfo, ObjectStore, Part};
use async_trait::async_trait;
use bytes::Bytes;
use serde_json::{Map, Value, json};
use std::sync::{Arc, Mutex};

/// Who is calling, for the store calls made while serving one request.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// set once the caller is authenticated
    pub actor: Option<Actor>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    /// one id for every record of the request
    pub request_id: Option<String>,
}

tokio::task_local! {
    static REQUEST: Arc<Mutex<RequestContext>>;
}

/// Runs a request's future with its [`RequestContext`]: every [`AuditedStore`] call made by
/// that future (in the same task) is attributed to the context's actor, address and agent.
#[derive(Debug, Clone, Default)]
pub struct RequestScope(Arc<Mutex<RequestContext>>);

impl RequestScope {
    pub fn new(ctx: RequestContext) -> Self {
        Self(Arc::new(Mutex::new(ctx)))
    }
    pub async fn run<F: Future>(&self, f: F) -> F::Output {
        REQUEST.scope(self.0.clone(), f).await
    }
    /// The context as it is now (with the actor, once the request set it).
    pub fn snapshot(&self) -> RequestContext {
        self.0.lock().expect("request context").clone()
    }
}

/// Inside a [`RequestScope`], attributes the rest of the request's store calls to `actor`
/// (e.g. once its token is verified). Does nothing outside one.
pub fn set_request_actor(actor: Actor) {
    let _ = REQUEST.try_with(|c| c.lock().expect("request context").actor = Some(actor));
}

/// The current request's context, inside a [`RequestScope`].
pub fn current_request() -> Option<RequestContext> {
    REQUEST
        .try_with(|c| c.lock().expect("request context").clone())
        .ok()
}

/// Wraps a store: every call is passed through unchanged and recorded (name, bucket, key or
/// prefix, outcome, bytes, who) to the sink. Cheap to clone.
///
/// Attribution, first that applies: the identity given with [`AuditedStore::with_identity`];
/// the actor of the current [`RequestScope`] (with the request's address and user agent);
/// else the component itself (`{"type": "AWSService", "invokedBy": "<component>"}`).
#[derive(Debug, Clone)]
pub struct AuditedStore {
    inner: Arc<dyn ObjectStore>,
    sink: Arc<dyn AuditSink>,
    component: String,
    identity: Option<Actor>,
    clock: Arc<dyn Clock>,
    empty_lists: bool,
}

impl AuditedStore {
    /// `component`: who tarn is in these calls (`tarn-ingress`, `tarn-pipeline`,
    /// `tarn-compaction`, `tarn-query`).
    pub fn new(
        inner: Arc<dyn ObjectStore>,
        sink: Arc<dyn AuditSink>,
        component: impl Into<String>,
    ) -> Self {
        Self {
            inner,
            sink,
            component: component.into(),
            identity: None,
            clock: Arc::new(SystemClock),
            empty_lists: true,
        }
    }

    /// The same store, its calls attributed to `actor`.
    pub fn with_identity(&self, actor: Actor) -> Self {
        Self {
            identity: Some(actor),
            ..self.clone()
        }
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// `false`: lists that find nothing and succeed are not recorded (a poller's idle lists).
    pub fn record_empty_lists(mut self, yes: bool) -> Self {
        self.empty_lists = yes;
        self
    }

    pub fn inner(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    fn event(&self, name: EventName) -> AuditEvent {
        let req = current_request();
        let mut e = AuditEvent::new(
            name,
            self.inner.bucket(),
            Actor::Service(self.component.clone()),
            self.component.clone(),
        );
        e.time = self.clock.now();
        e.user_agent = format!("tarn/{} ({})", env!("CARGO_PKG_VERSION"), self.component);
        let actor = self
            .identity
            .clone()
            .or_else(|| req.as_ref().and_then(|r| r.actor.clone()));
        if let Some(r) = &req {
            if let Some(ip) = &r.source_ip {
                e.source_ip = ip.clone();
            }
            if let Some(ua) = &r.user_agent {
                e.user_agent = ua.clone();
            }
            e.request_id = r.request_id.clone();
        }
        if let Some(actor) = actor {
            if !matches!(actor, Actor::Service(_)) {
                e.invoked_by = Some(self.component.clone());
            }
            e.actor = actor;
        }
        e
    }

    fn object_event(&self, name: EventName, key: &str) -> AuditEvent {
        let mut e = self.event(name);
        e.key = Some(key.to_string());
        if let Some(t) = table_of_key(key) {
            e.additional.insert("tarnTable".into(), json!(t));
        }
        e
    }

    fn finish<T>(&self, mut e: AuditEvent, result: &Result<T>) {
        if let Err(err) = result {
            e.error = Some(error_of(err));
        }
        self.sink.record(e);
    }
}

fn table_from_meta(e: &mut AuditEvent, m: &Metadata) {
    if let Some(t) = m.get(crate::document::meta::TABLE) {
        e.additional.insert("tarnTable".into(), json!(t));
    }
}

fn bytes(e: &mut AuditEvent, inn: u64, out: u64) {
    e.additional.insert("bytesTransferredIn".into(), json!(inn));
    e.additional
        .insert("bytesTransferredOut".into(), json!(out));
}

/// S3's error code and a message for a store error (never content).
fn error_of(err: &Error) -> (String, String) {
    let code = match err {
        Error::NotFound { .. } => "NoSuchKey",
        Error::AlreadyExists { .. } => "PreconditionFailed",
        Error::InvalidKey { .. } => "InvalidArgument",
        Error::InvalidInput(_) => "InvalidRequest",
        Error::Crypto(_) | Error::Config(_) => "AccessDenied",
        Error::Io { .. } | Error::Service(_) => "InternalError",
    };
    let msg = match err {
        Error::NotFound { .. } => "The specified key does not exist.".to_string(),
        other => other.to_string(),
    };
    (code.to_string(), msg)
}

#[async_trait]
impl ObjectStore for AuditedStore {
    fn bucket(&self) -> &str {
        self.inner.bucket()
    }

    fn url(&self, key: &str) -> String {
        self.inner.url(key)
    }

    fn encrypts_at_rest(&self) -> bool {
        self.inner.encrypts_at_rest()
    }

    /// Not an access itself: the read through the URL is the store's to record (S3 data events)
    async fn presign_get(
        &self,
        key: &str,
        expires_in: std::time::Duration,
        content_type: &str,
    ) -> Result<Option<String>> {
        self.inner.presign_get(key, expires_in, content_type).await
    }

    async fn create_multipart(&self, key: &str, metadata: Metadata) -> Result<String> {
        let mut e = self.object_event(EventName::CreateMultipartUpload, key);
        table_from_meta(&mut e, &metadata);
        let r = self.inner.create_multipart(key, metadata).await;
        if let Ok(id) = &r {
            e.request_extra.insert("uploadId".into(), json!(id));
        }
        self.finish(e, &r);
        r
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        body: Bytes,
    ) -> Result<String> {
        let mut e = self.object_event(EventName::UploadPart, key);
        e.request_extra.insert("uploadId".into(), json!(upload_id));
        e.request_extra.insert("partNumber".into(), json!(number));
        bytes(&mut e, body.len() as u64, 0);
        let r = self.inner.upload_part(key, upload_id, number, body).await;
        self.finish(e, &r);
        r
    }

    async fn list_parts(&self, key: &str, upload_id: &str) -> Result<Vec<Part>> {
        let mut e = self.object_event(EventName::ListParts, key);
        e.request_extra.insert("uploadId".into(), json!(upload_id));
        let r = self.inner.list_parts(key, upload_id).await;
        self.finish(e, &r);
        r
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[Part],
        if_absent: bool,
    ) -> Result<bool> {
        let mut e = self.object_event(EventName::CompleteMultipartUpload, key);
        e.request_extra.insert("uploadId".into(), json!(upload_id));
        if if_absent {
            e.request_extra.insert("If-None-Match".into(), json!("*"));
        }
        let r = self
            .inner
            .complete_multipart(key, upload_id, parts, if_absent)
            .await;
        if let Ok(false) = r {
            e.error = Some(precondition_failed());
        }
        self.finish(e, &r);
        r
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<()> {
        let mut e = self.object_event(EventName::AbortMultipartUpload, key);
        e.request_extra.insert("uploadId".into(), json!(upload_id));
        let r = self.inner.abort_multipart(key, upload_id).await;
        self.finish(e, &r);
        r
    }

    /// Not an access itself: the PUT through the URL is the store's to record
    async fn presign_upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        expires_in: std::time::Duration,
    ) -> Result<Option<String>> {
        self.inner
            .presign_upload_part(key, upload_id, number, expires_in)
            .await
    }

    async fn put(&self, key: &str, body: Bytes, metadata: Metadata) -> Result<()> {
        let mut e = self.object_event(EventName::PutObject, key);
        table_from_meta(&mut e, &metadata);
        bytes(&mut e, body.len() as u64, 0);
        let r = self.inner.put(key, body, metadata).await;
        self.finish(e, &r);
        r
    }

    async fn put_if_absent(&self, key: &str, body: Bytes, metadata: Metadata) -> Result<bool> {
        let mut e = self.object_event(EventName::PutObject, key);
        e.request_extra.insert("If-None-Match".into(), json!("*"));
        table_from_meta(&mut e, &metadata);
        bytes(&mut e, body.len() as u64, 0);
        let r = self.inner.put_if_absent(key, body, metadata).await;
        if let Ok(false) = r {
            e.error = Some(precondition_failed());
        }
        self.finish(e, &r);
        r
    }

    async fn put_if_match(
        &self,
        key: &str,
        body: Bytes,
        metadata: Metadata,
        etag: &str,
    ) -> Result<bool> {
        let mut e = self.object_event(EventName::PutObject, key);
        e.request_extra.insert("If-Match".into(), json!(etag));
        table_from_meta(&mut e, &metadata);
        bytes(&mut e, body.len() as u64, 0);
        let r = self.inner.put_if_match(key, body, metadata, etag).await;
        if let Ok(false) = r {
            e.error = Some(precondition_failed());
        }
        self.finish(e, &r);
        r
    }

    async fn get(&self, key: &str) -> Result<GetResult> {
        let mut e = self.object_event(EventName::GetObject, key);
        let r = self.inner.get(key).await;
        match &r {
            Ok(g) => {
                table_from_meta(&mut e, &g.info.metadata);
                bytes(&mut e, 0, g.body.len() as u64);
            }
            Err(_) => bytes(&mut e, 0, 0),
        }
        self.finish(e, &r);
        r
    }

    /// A `GetObject` record with its `Range` header (`bytes=first-last`, as S3 takes it) and the
    /// bytes it gave
    async fn get_range(&self, key: &str, range: std::ops::Range<u64>) -> Result<Bytes> {
        let mut e = self.object_event(EventName::GetObject, key);
        e.request_extra.insert(
            "Range".into(),
            json!(format!(
                "bytes={}-{}",
                range.start,
                range.end.saturating_sub(1)
            )),
        );
        let r = self.inner.get_range(key, range).await;
        bytes(&mut e, 0, r.as_ref().map_or(0, |b| b.len() as u64));
        self.finish(e, &r);
        r
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        let mut e = self.object_event(EventName::HeadObject, key);
        let r = self.inner.head(key).await;
        match &r {
            Ok(Some(i)) => table_from_meta(&mut e, &i.metadata),
            Ok(None) => {
                e.error = Some((
                    "NoSuchKey".into(),
                    "The specified key does not exist.".into(),
                ))
            }
            Err(_) => {}
        }
        self.finish(e, &r);
        r
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let mut e = self.event(EventName::ListObjects);
        e.prefix = Some(prefix.to_string());
        if let Some(t) = table_of_key(&format!("{prefix}/x")) {
            e.additional.insert("tarnTable".into(), json!(t));
        }
        let r = self.inner.list(prefix).await;
        if let Ok(found) = &r {
            if found.is_empty() && !self.empty_lists {
                return r;
            }
            e.additional
                .insert("keyCount".into(), Value::from(found.len()));
        }
        self.finish(e, &r);
        r
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let e = self.object_event(EventName::DeleteObject, key);
        let r = self.inner.delete(key).await;
        self.finish(e, &r);
        r
    }

    /// One `DeleteObject` record with `allVersions: true` in its request parameters
    async fn delete_all_versions(&self, key: &str) -> Result<()> {
        let mut e = self.object_event(EventName::DeleteObject, key);
        e.request_extra.insert("allVersions".into(), json!(true));
        let r = self.inner.delete_all_versions(key).await;
        self.finish(e, &r);
        r
    }

    async fn delete_if_match(&self, key: &str, etag: &str) -> Result<bool> {
        let mut e = self.object_event(EventName::DeleteObject, key);
        e.request_extra.insert("If-Match".into(), json!(etag));
        let r = self.inner.delete_if_match(key, etag).await;
        if let Ok(false) = r {
            e.error = Some(precondition_failed());
        }
        self.finish(e, &r);
        r
    }

    /// One `CopyObject` record, under the target key, naming the source as S3 does
    /// (`x-amz-copy-source`)
    async fn copy(&self, from: &str, to: &str) -> Result<()> {
        let mut e = self.object_event(EventName::CopyObject, to);
        e.request_extra.insert(
            "x-amz-copy-source".into(),
            json!(format!("{}/{from}", self.inner.bucket())),
        );
        let r = self.inner.copy(from, to).await;
        self.finish(e, &r);
        r
    }
}

/// The error a conditional request that did not hold records, as S3 gives it.
fn precondition_failed() -> (String, String) {
    (
        "PreconditionFailed".into(),
        "At least one of the pre-conditions you specified did not hold".into(),
    )
}

/// An event for a request refused before any store call (the ingress's 401/403/404/413/415...):
/// what it asked for, why it failed, who asked when known.
pub fn denied_event(
    name: EventName,
    bucket: &str,
    key: Option<&str>,
    ctx: &RequestContext,
    component: &str,
    code: &str,
    message: &str,
    additional: Map<String, Value>,
) -> AuditEvent {
    let actor = ctx.actor.clone().unwrap_or(Actor::Anonymous);
    let mut e = AuditEvent::new(
        name,
        bucket,
        actor,
        ctx.source_ip.clone().unwrap_or_else(|| "unknown".into()),
    );
    e.invoked_by = Some(component.to_string());
    e.key = key.map(str::to_string);
    if let Some(ua) = &ctx.user_agent {
        e.user_agent = ua.clone();
    }
    e.request_id = ctx.request_id.clone();
    e.error = Some((code.to_string(), message.to_string()));
    e.additional = additional;
    e
}
