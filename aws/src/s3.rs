//! [`S3ObjectStore`]: the object store port on S3.
//!
//! - every put is encrypted with SSE-KMS under the platform key (`x-amz-server-side-encryption:
//!   aws:kms` with the key id), and carries the user metadata (`x-amz-meta-*`);
//! - `put_if_absent` is S3's conditional write (`If-None-Match: *`): `412 PreconditionFailed`
//!   means another writer won; `409 ConditionalRequestConflict` (a concurrent conditional write
//!   still in flight) is retried;
//! - `put_if_match` and `delete_if_match` are S3's conditional write and delete (`If-Match` on
//!   the ETag): `412 PreconditionFailed` (the object changed) and `404 NoSuchKey` (it is gone)
//!   answer `false`; a `409 ConditionalRequestConflict` is retried;
//! - `copy` is `CopyObject` (metadata copied with the body, SSE-KMS under the platform key as a
//!   put), for objects up to 5 GiB;
//! - multipart uploads are S3's own ([`multipart`]), presigned part URLs included; bodies above
//!   [`MULTIPART_THRESHOLD`] go up through them (aborted on failure);
//!   conditional writes are always one PUT (S3 takes up to 5 GiB in one), so their atomicity is
//!   S3's own;
//! - `get_range` is `GetObject` with a `Range: bytes=first-last` header (`416 InvalidRange`: the
//!   range starts at or past the end); a server that ignores the header (`200` with the whole
//!   body, no `Content-Range`) is answered by slicing that body;
//! - `list` pages through `ListObjectsV2`;
//! - an optional key prefix lets one bucket hold several stores (the state under `state/`).

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{MetadataDirective, ServerSideEncryption};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::ops::Range;
use std::time::Duration;
use tarn_core::store::{Part, check_range, range_past_end};

mod multipart;
use tarn_core::{Error, GetResult, Metadata, ObjectInfo, ObjectStore, Result, validate_key};

/// What a put requires of the object already at its key.
#[derive(Clone, Copy)]
enum Condition<'a> {
    None,
    /// no object (`If-None-Match: *`)
    Absent,
    /// the object with this ETag (`If-Match`)
    Matches(&'a str),
}

/// Bodies larger than this are uploaded in parts of this size.
pub const MULTIPART_THRESHOLD: usize = 8 << 20;
const PART_SIZE: usize = 8 << 20;

#[derive(Clone)]
pub struct S3ObjectStore {
    client: Client,
    bucket: String,
    prefix: String,
    kms_key_id: Option<String>,
}

impl std::fmt::Debug for S3ObjectStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3ObjectStore")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// The service error's code and message, or the transport error's text.
pub(crate) fn describe<
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
>(
    e: &SdkError<E, R>,
) -> String {
    match e {
        SdkError::ServiceError(se) => {
            let err = se.err();
            format!(
                "{}: {}",
                err.code().unwrap_or("error"),
                err.message().unwrap_or("(no message)")
            )
        }
        other => {
            let mut s = other.to_string();
            let mut src = std::error::Error::source(other);
            while let Some(e) = src {
                s.push_str(": ");
                s.push_str(&e.to_string());
                src = e.source();
            }
            s
        }
    }
}

fn code<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Option<&str> {
    match e {
        SdkError::ServiceError(se) => se.err().code(),
        _ => None,
    }
}

fn precondition_failed<E: ProvideErrorMetadata, R: HttpStatus>(e: &SdkError<E, R>) -> bool {
    code(e) == Some("PreconditionFailed") || status(e) == Some(412)
}

fn not_found<E: ProvideErrorMetadata, R: HttpStatus>(e: &SdkError<E, R>) -> bool {
    code(e) == Some("NoSuchKey") || code(e) == Some("NotFound") || status(e) == Some(404)
}

fn status<E, R: HttpStatus>(e: &SdkError<E, R>) -> Option<u16> {
    match e {
        SdkError::ServiceError(se) => Some(se.raw().status_code()),
        _ => None,
    }
}

pub(crate) trait HttpStatus {
    fn status_code(&self) -> u16;
}
impl HttpStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

fn to_chrono(t: Option<&aws_sdk_s3::primitives::DateTime>) -> DateTime<Utc> {
    t.and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos()))
        .unwrap_or_else(Utc::now)
}

fn to_metadata(m: Option<&HashMap<String, String>>) -> Metadata {
    m.map(|m| {
        m.iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), decode_value(v)))
            .collect()
    })
    .unwrap_or_default()
}

/// S3 carries user metadata in HTTP headers, ASCII only: a value with other characters (a
/// producer's name) is sent as an RFC 2047 encoded word, `=?UTF-8?B?<base64>?=`, as S3 itself
/// returns such values.
pub fn encode_value(v: &str) -> String {
    use base64::Engine;
    if v.bytes().all(|b| (0x20..0x7f).contains(&b)) && !v.starts_with("=?") {
        v.to_string()
    } else {
        format!(
            "=?UTF-8?B?{}?=",
            base64::engine::general_purpose::STANDARD.encode(v)
        )
    }
}

/// Inverse of [`encode_value`].
pub fn decode_value(v: &str) -> String {
    use base64::Engine;
    v.strip_prefix("=?UTF-8?B?")
        .or_else(|| v.strip_prefix("=?utf-8?b?"))
        .and_then(|r| r.strip_suffix("?="))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_else(|| v.to_string())
}

fn to_headers(m: Metadata) -> HashMap<String, String> {
    m.into_iter().map(|(k, v)| (k, encode_value(&v))).collect()
}

impl S3ObjectStore {
    /// A store over `bucket`; `kms_key_id` encrypts every put with SSE-KMS (None: the bucket's
    /// default encryption).
    pub fn new(client: Client, bucket: impl Into<String>, kms_key_id: Option<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
            prefix: String::new(),
            kms_key_id,
        }
    }

    /// Keys are kept under `prefix` (empty, or ending in `/`) in the bucket.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        let mut p = prefix.into();
        if !p.is_empty() && !p.ends_with('/') {
            p.push('/');
        }
        self.prefix = p;
        self
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The object's key in the bucket.
    pub fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn svc(&self, op: &str, key: &str, detail: String) -> Error {
        Error::Service(format!(
            "s3 {op} s3://{}/{}: {detail}",
            self.bucket,
            self.full_key(key)
        ))
    }

    /// Puts the body; `Ok(false)` when `condition` did not hold.
    async fn put_inner(
        &self,
        key: &str,
        body: Bytes,
        metadata: Metadata,
        condition: Condition<'_>,
    ) -> Result<bool> {
        validate_key(key)?;
        let conditional = !matches!(condition, Condition::None);
        // conditional writes stay single PUTs (up to 5 GiB): atomic by themselves, with nothing
        // to abort
        if body.len() > MULTIPART_THRESHOLD && !conditional {
            return self.put_multipart(key, body, metadata).await;
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(self.full_key(key))
                .body(ByteStream::from(body.clone()))
                .set_metadata(Some(to_headers(metadata.clone())));
            if let Some(k) = &self.kms_key_id {
                req = req
                    .server_side_encryption(ServerSideEncryption::AwsKms)
                    .ssekms_key_id(k);
            }
            req = match condition {
                Condition::None => req,
                Condition::Absent => req.if_none_match("*"),
                Condition::Matches(etag) => req.if_match(etag),
            };
            match req.send().await {
                Ok(_) => return Ok(true),
                Err(e) if conditional && precondition_failed(&e) => return Ok(false),
                Err(e) if matches!(condition, Condition::Matches(_)) && not_found(&e) => {
                    return Ok(false);
                }
                Err(e) if conditional && status(&e) == Some(409) && attempt < 5 => {
                    tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                }
                Err(e) => return Err(self.svc("PutObject", key, describe(&e))),
            }
        }
    }

    /// A large body as a multipart upload of [`PART_SIZE`] parts through the port's own
    /// operations, aborted when any step fails.
    async fn put_multipart(&self, key: &str, body: Bytes, metadata: Metadata) -> Result<bool> {
        let upload_id = self.mp_create(key, metadata).await?;
        let result = async {
            let mut parts = Vec::new();
            for (i, chunk) in body.chunks(PART_SIZE).enumerate() {
                let number = i as u32 + 1;
                let etag = self
                    .mp_upload_part(key, &upload_id, number, body.slice_ref(chunk))
                    .await?;
                parts.push(Part {
                    number,
                    etag,
                    size: chunk.len() as u64,
                });
            }
            self.mp_complete_parts(key, &upload_id, &parts, false)
                .await?;
            let n_parts = body.len().div_ceil(PART_SIZE);
            match self
                .client
                .head_object()
                .bucket(&self.bucket)
                .key(self.full_key(key))
                .send()
                .await
            {
                Ok(h)
                    if h.content_length() == Some(body.len() as i64)
                        && h.e_tag().is_some_and(|t| {
                            t.trim_matches('"').ends_with(&format!("-{n_parts}"))
                        }) =>
                {
                    Ok(true)
                }
                Ok(h) => Err(self.svc(
                    "CompleteMultipartUpload",
                    key,
                    format!(
                        "the completed object is not the upload (size {:?}, etag {:?})",
                        h.content_length(),
                        h.e_tag()
                    ),
                )),
                Err(e) => Err(self.svc(
                    "HeadObject after CompleteMultipartUpload",
                    key,
                    describe(&e),
                )),
            }
        }
        .await;
        if !matches!(result, Ok(true)) {
            let _ = self.mp_abort(key, &upload_id).await;
        }
        result
    }
}

#[async_trait]
impl ObjectStore for S3ObjectStore {
    fn bucket(&self) -> &str {
        &self.bucket
    }

    fn url(&self, key: &str) -> String {
        format!("s3://{}/{}{key}", self.bucket, self.prefix)
    }

    /// Every put carries SSE-KMS under the configured key (and the bucket policy refuses any
    /// other), so S3 itself encrypts at rest; without a key the bucket's default applies, which
    /// this store cannot vouch for.
    fn encrypts_at_rest(&self) -> bool {
        self.kms_key_id.is_some()
    }

    /// A SigV4 presigned GetObject URL, signed with this client's credentials (the reader of the
    /// URL acts as this principal: it needs `s3:GetObject` and `kms:Decrypt`), answering with
    /// `content_type`, `no-store` caching and `attachment` disposition.
    async fn presign_get(
        &self,
        key: &str,
        expires_in: std::time::Duration,
        content_type: &str,
    ) -> Result<Option<String>> {
        validate_key(key)?;
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(expires_in)
            .map_err(|e| Error::InvalidInput(format!("presigned url expiry: {e}")))?;
        let name = key.rsplit('/').next().unwrap_or(key);
        let req = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .response_content_type(content_type)
            .response_cache_control("no-store")
            .response_content_disposition(format!("attachment; filename=\"{name}\""))
            .presigned(config)
            .await
            .map_err(|e| self.svc("GetObject (presign)", key, describe(&e)))?;
        Ok(Some(req.uri().to_string()))
    }

    async fn create_multipart(&self, key: &str, metadata: Metadata) -> Result<String> {
        self.mp_create(key, metadata).await
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        body: Bytes,
    ) -> Result<String> {
        self.mp_upload_part(key, upload_id, number, body).await
    }

    async fn list_parts(&self, key: &str, upload_id: &str) -> Result<Vec<Part>> {
        self.mp_list_parts(key, upload_id).await
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[Part],
        if_absent: bool,
    ) -> Result<bool> {
        self.mp_complete(key, upload_id, parts, if_absent).await
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<()> {
        self.mp_abort(key, upload_id).await
    }

    async fn presign_upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        expires_in: Duration,
    ) -> Result<Option<String>> {
        self.mp_presign_part(key, upload_id, number, expires_in)
            .await
    }

    async fn put(&self, key: &str, body: Bytes, metadata: Metadata) -> Result<()> {
        self.put_inner(key, body, metadata, Condition::None)
            .await
            .map(|_| ())
    }

    async fn put_if_absent(&self, key: &str, body: Bytes, metadata: Metadata) -> Result<bool> {
        self.put_inner(key, body, metadata, Condition::Absent).await
    }

    async fn put_if_match(
        &self,
        key: &str,
        body: Bytes,
        metadata: Metadata,
        etag: &str,
    ) -> Result<bool> {
        self.put_inner(key, body, metadata, Condition::Matches(etag))
            .await
    }

    async fn get(&self, key: &str) -> Result<GetResult> {
        validate_key(key)?;
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
        {
            Ok(o) => o,
            Err(e) if code(&e) == Some("NoSuchKey") || status(&e) == Some(404) => {
                return Err(Error::NotFound {
                    key: key.to_string(),
                });
            }
            Err(e) => return Err(self.svc("GetObject", key, describe(&e))),
        };
        let metadata = to_metadata(out.metadata());
        let last_modified = to_chrono(out.last_modified());
        let etag = out.e_tag().unwrap_or_default().to_string();
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| self.svc("GetObject", key, format!("reading the body: {e}")))?
            .into_bytes();
        Ok(GetResult {
            info: ObjectInfo {
                key: key.to_string(),
                size: body.len() as u64,
                last_modified,
                metadata,
                etag,
            },
            body,
        })
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        validate_key(key)?;
        check_range(key, &range)?;
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .range(format!("bytes={}-{}", range.start, range.end - 1))
            .send()
            .await
        {
            Ok(o) => o,
            Err(e) if not_found(&e) => {
                return Err(Error::NotFound {
                    key: key.to_string(),
                });
            }
            Err(e) if code(&e) == Some("InvalidRange") || status(&e) == Some(416) => {
                return Err(range_past_end(key, &range));
            }
            Err(e) => return Err(self.svc("GetObject", key, describe(&e))),
        };
        let partial = out.content_range().is_some();
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| self.svc("GetObject", key, format!("reading the body: {e}")))?
            .into_bytes();
        if partial {
            return Ok(body);
        }
        // the whole object: the server did not apply the range
        let len = body.len() as u64;
        if range.start >= len {
            return Err(range_past_end(key, &range));
        }
        Ok(body.slice(range.start as usize..range.end.min(len) as usize))
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        validate_key(key)?;
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
        {
            Ok(out) => Ok(Some(ObjectInfo {
                key: key.to_string(),
                size: out.content_length().unwrap_or(0).max(0) as u64,
                last_modified: to_chrono(out.last_modified()),
                metadata: to_metadata(out.metadata()),
                etag: out.e_tag().unwrap_or_default().to_string(),
            })),
            Err(e)
                if status(&e) == Some(404)
                    || code(&e) == Some("NotFound")
                    || code(&e) == Some("NoSuchKey") =>
            {
                Ok(None)
            }
            Err(e) => Err(self.svc("HeadObject", key, describe(&e))),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let full_prefix = self.full_key(prefix);
        let mut out = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&full_prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.svc("ListObjectsV2", prefix, describe(&e)))?;
            for o in page.contents() {
                let Some(k) = o.key() else { continue };
                let Some(rel) = k.strip_prefix(&self.prefix) else {
                    continue;
                };
                out.push(ObjectInfo {
                    key: rel.to_string(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                    last_modified: to_chrono(o.last_modified()),
                    metadata: Metadata::new(),
                    etag: o.e_tag().unwrap_or_default().to_string(),
                });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        match self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if status(&e) == Some(404) => Ok(()),
            Err(e) => Err(self.svc("DeleteObject", key, describe(&e))),
        }
    }

    /// Every version and delete marker of `key` (ListObjectVersions), each deleted by its
    /// version id: on a versioned bucket nothing of the object is left to restore.
    async fn delete_all_versions(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        let full = self.full_key(key);
        let mut versions: Vec<String> = Vec::new();
        let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
        loop {
            let out = self
                .client
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(&full)
                .set_key_marker(key_marker.clone())
                .set_version_id_marker(version_marker.clone())
                .send()
                .await
                .map_err(|e| self.svc("ListObjectVersions", key, describe(&e)))?;
            for v in out.versions() {
                if v.key() == Some(full.as_str()) {
                    versions.extend(v.version_id().map(String::from));
                }
            }
            for m in out.delete_markers() {
                if m.key() == Some(full.as_str()) {
                    versions.extend(m.version_id().map(String::from));
                }
            }
            if out.is_truncated() != Some(true) {
                break;
            }
            key_marker = out.next_key_marker().map(String::from);
            version_marker = out.next_version_id_marker().map(String::from);
        }
        for v in versions {
            match self
                .client
                .delete_object()
                .bucket(&self.bucket)
                .key(&full)
                .version_id(&v)
                .send()
                .await
            {
                Ok(_) => {}
                Err(e) if status(&e) == Some(404) => {}
                Err(e) => return Err(self.svc("DeleteObject", key, describe(&e))),
            }
        }
        Ok(())
    }

    async fn delete_if_match(&self, key: &str, etag: &str) -> Result<bool> {
        validate_key(key)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .client
                .delete_object()
                .bucket(&self.bucket)
                .key(self.full_key(key))
                .if_match(etag)
                .send()
                .await
            {
                Ok(_) => return Ok(true),
                Err(e) if precondition_failed(&e) || not_found(&e) => return Ok(false),
                Err(e) if status(&e) == Some(409) && attempt < 5 => {
                    tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                }
                Err(e) => return Err(self.svc("DeleteObject", key, describe(&e))),
            }
        }
    }

    async fn copy(&self, from: &str, to: &str) -> Result<()> {
        validate_key(from)?;
        validate_key(to)?;
        if from == to {
            // onto itself: nothing changes (S3 refuses such a copy unless something does)
            return match self.head(from).await? {
                Some(_) => Ok(()),
                None => Err(Error::NotFound {
                    key: from.to_string(),
                }),
            };
        }
        // the source is `bucket/key`, URL-encoded (slashes kept)
        let source = format!(
            "{}/{}",
            self.bucket,
            percent_encoding::utf8_percent_encode(&self.full_key(from), COPY_SOURCE)
        );
        let mut req = self
            .client
            .copy_object()
            .bucket(&self.bucket)
            .key(self.full_key(to))
            .copy_source(source)
            .metadata_directive(MetadataDirective::Copy);
        if let Some(k) = &self.kms_key_id {
            req = req
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(k);
        }
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) if not_found(&e) => Err(Error::NotFound {
                key: from.to_string(),
            }),
            Err(e) => Err(self.svc("CopyObject", to, format!("from {from}: {}", describe(&e)))),
        }
    }
}

/// What a copy source's key escapes: everything but unreserved characters and `/`.
const COPY_SOURCE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
