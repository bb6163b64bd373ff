//! The object store port, shaped after S3, and its local-filesystem implementation
//! ([`LocalObjectStore`]: [`local`], its group-commit worker in [`commit`], its extended
//! attributes in [`xattr`]).
//!
//! Guarantees every implementation gives (checked by [`crate::conformance::object_store`]):
//! - `put` returns only once the object is durable; readers see either the old object or the
//!   whole new one, never a part.
//! - `put_if_absent` is atomic: of two concurrent calls for one key, exactly one wins (its
//!   metadata may become visible just after its body).
//! - every object has an ETag (`ObjectInfo::etag`), an opaque token that changes whenever the
//!   object is written (S3: the ETag, which is the body's MD5 for a plain PUT, so two writes of
//!   identical bytes may share it; locally: a random token given at every write).
//!   `put_if_match` and `delete_if_match` act only while the object's ETag is still the given
//!   one, atomically: of two writers holding the same ETag at most one succeeds; both answer
//!   `Ok(false)` when the object changed or is gone.
//! - `copy` copies an object's body and metadata to another key of the same store without the
//!   bytes passing through the caller (S3 CopyObject, a hard link locally), replacing the
//!   target; `Error::NotFound` when the source does not exist.
//! - `get_range` reads part of an object's body (a Parquet footer without the rest): the bytes
//!   `start..end`, fewer when the object ends before `end`; an empty range, or one that starts at
//!   or past the object's end, is `Error::InvalidInput`; a missing key is `Error::NotFound`.
//! - `list` returns every object under a prefix in lexicographic key order, without metadata
//!   (as S3's ListObjectsV2); `head`/`get` return the user metadata given at `put`.
//! - `delete` is idempotent: deleting a missing key succeeds.
//! - keys are `/`-separated relative paths with no empty, `.` or `..` segments.
//! - `encrypts_at_rest` is true only when the store itself encrypts every put under the platform's
//!   KMS key (S3 with SSE-KMS); callers seal what they keep themselves otherwise.
//! - `presign_get`, when it gives a URL, lets whoever holds it read the object (decrypted, with
//!   the given content type) until the expiry passes, and not after.
//! - multipart uploads ([`multipart`]): `create_multipart` starts one for a key with the object's
//!   metadata and gives its upload id; `upload_part` stores part `number` (1 to 10000), replacing
//!   an earlier part of that number, and gives its ETag; `list_parts` gives the stored parts by
//!   number; `complete_multipart` assembles the named parts, in order, into the object at the key
//!   (durably, as `put`; with `if_absent`, only when no object is there: `Ok(false)` then, the
//!   upload left to abort), after which the upload is gone; `abort_multipart` drops the upload
//!   and its parts and succeeds when it is already gone. An unknown upload is `Error::NotFound`;
//!   a completion naming no part, a part not stored with the named ETag, parts out of order or a
//!   part but the last under [`MIN_PART_SIZE`] is `Error::InvalidInput`. Nothing of an upload is
//!   visible at its key before it completes. `presign_upload_part`, when it gives a URL, lets
//!   whoever holds it PUT that part until the expiry passes. A store without multipart uploads
//!   answers `Error::Config` (the default).

mod commit;
mod local;
mod local_multipart;
pub mod multipart;
mod xattr;

pub use local::LocalObjectStore;
pub use multipart::{MAX_PARTS, MIN_PART_SIZE, Part};

use crate::error::{Error, Result};
use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::ops::Range;

/// The local store's directory of metadata sidecars (for filesystems without user xattrs).
const META_DIR: &str = ".tarn-meta";
/// The local store's directory of files not yet renamed into place.
const TMP_DIR: &str = ".tarn-tmp";
/// The local store's directory of multipart uploads in progress (one directory per upload).
const UPLOADS_DIR: &str = ".tarn-uploads";

/// User metadata of an object (S3's `x-amz-meta-*`), keys lowercase.
pub type Metadata = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    pub last_modified: DateTime<Utc>,
    /// empty in `list` results
    pub metadata: Metadata,
    /// the object's version token, for `put_if_match` and `delete_if_match` (opaque: compare it,
    /// never parse it)
    pub etag: String,
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
    /// Replaces the object at `key` only while its ETag is `etag`; `Ok(false)` when it changed
    /// or is gone (nothing is written then).
    async fn put_if_match(
        &self,
        key: &str,
        body: Bytes,
        metadata: Metadata,
        etag: &str,
    ) -> Result<bool>;
    /// `Error::NotFound` when the key does not exist.
    async fn get(&self, key: &str) -> Result<GetResult>;
    /// The bytes `range` of the object at `key` (start included, end excluded; S3's `Range:
    /// bytes=start-(end-1)`), without the rest of the body: up to the object's end when `range`
    /// goes past it. `Error::InvalidInput` ([`check_range`]) when `range` is empty, checked before
    /// the store is asked, or starts at or past the object's end ([`range_past_end`]);
    /// `Error::NotFound` when the key does not exist.
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes>;
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>>;
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>>;
    async fn delete(&self, key: &str) -> Result<()>;
    /// Deletes the object at `key` and every older version and delete marker a versioned store
    /// keeps of it (S3 with versioning): nothing of it is left to restore. A store without
    /// versions deletes the object (the default). Erasure and the vacuum use it.
    async fn delete_all_versions(&self, key: &str) -> Result<()> {
        self.delete(key).await
    }
    /// Deletes the object at `key` only while its ETag is `etag`; `Ok(false)` when it changed
    /// or is gone.
    async fn delete_if_match(&self, key: &str, etag: &str) -> Result<bool>;
    /// Copies the object at `from` (body and metadata) to `to` in this store, replacing any
    /// object there, durably as `put`; `Error::NotFound` when `from` does not exist. A copy onto
    /// itself changes nothing.
    async fn copy(&self, from: &str, to: &str) -> Result<()>;
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
    /// Starts a multipart upload of the object at `key`, which will carry `metadata`; its upload
    /// id (S3's CreateMultipartUpload).
    async fn create_multipart(&self, key: &str, metadata: Metadata) -> Result<String> {
        let _ = (key, metadata);
        Err(multipart::unsupported("create_multipart"))
    }
    /// Stores part `number` of the upload, replacing an earlier part of that number; its ETag.
    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        body: Bytes,
    ) -> Result<String> {
        let _ = (key, upload_id, number, body);
        Err(multipart::unsupported("upload_part"))
    }
    /// The upload's stored parts, by number.
    async fn list_parts(&self, key: &str, upload_id: &str) -> Result<Vec<Part>> {
        let _ = (key, upload_id);
        Err(multipart::unsupported("list_parts"))
    }
    /// Assembles `parts` (their numbers and ETags; sizes are not read) into the object at `key`;
    /// with `if_absent`, `Ok(false)` when an object is already there.
    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[Part],
        if_absent: bool,
    ) -> Result<bool> {
        let _ = (key, upload_id, parts, if_absent);
        Err(multipart::unsupported("complete_multipart"))
    }
    /// Drops the upload and its parts; `Ok(())` when it is already gone.
    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<()> {
        let _ = (key, upload_id);
        Err(multipart::unsupported("abort_multipart"))
    }
    /// A URL that PUTs part `number` of the upload without credentials until `expires_in` has
    /// passed; `Ok(None)` when the store has no such URLs (the default).
    async fn presign_upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        expires_in: std::time::Duration,
    ) -> Result<Option<String>> {
        let _ = (key, upload_id, number, expires_in);
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

/// Refuses an empty range (`get_range` reads at least one byte).
pub fn check_range(key: &str, range: &Range<u64>) -> Result<()> {
    if range.start >= range.end {
        return Err(Error::InvalidInput(format!(
            "range {}..{} of {key} is empty: ask for at least one byte",
            range.start, range.end
        )));
    }
    Ok(())
}

/// The error of a `get_range` whose range starts at or past the object's end.
pub fn range_past_end(key: &str, range: &Range<u64>) -> Error {
    Error::InvalidInput(format!(
        "range {}..{} starts at or past the end of {key}: read within the object's size (head gives it)",
        range.start, range.end
    ))
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
}
