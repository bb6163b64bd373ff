//! Sanitized binaries kept in the lake (`objects/<table>/dt=<...>/<id>`): how the pipeline keeps
//! them and how readers get them back, the same for every store.
//!
//! - A store that encrypts at rest by itself under the platform's key (S3 with SSE-KMS, see
//!   [`ObjectStore::encrypts_at_rest`]) keeps the bytes as they are, so a presigned URL can serve
//!   them; any other store gets them sealed with envelope encryption under `{table, id}`.
//! - A sealed object says so in its metadata ([`meta::ENVELOPE`]), so a reader never hands out a
//!   URL to ciphertext.

use crate::document::meta;
use crate::envelope;
use crate::error::{Error, Result};
use crate::kms::{EncryptionContext, Kms};
use crate::store::{Metadata, ObjectStore};
use std::time::Duration;

/// The value of [`meta::ENVELOPE`] on a sealed object.
pub const SEALED: &str = "tarn";

/// Longest life of a URL handed out for a document's content.
pub const MAX_URL_TTL: Duration = Duration::from_secs(300);

/// Keeps the sanitized `body` of document `id` of `table` at `key` in `lake`.
pub async fn put_sanitized(
    lake: &dyn ObjectStore,
    kms: &dyn Kms,
    table: &str,
    id: &str,
    key: &str,
    content_type: &str,
    body: &[u8],
) -> Result<()> {
    let mut m = Metadata::from([
        (meta::TABLE.to_string(), table.to_string()),
        (meta::CONTENT_TYPE.to_string(), content_type.to_string()),
    ]);
    let body = if lake.encrypts_at_rest() {
        body.to_vec()
    } else {
        m.insert(meta::ENVELOPE.to_string(), SEALED.to_string());
        envelope::seal(kms, &EncryptionContext::document(table, id), body).await?
    };
    lake.put(key, body.into(), m).await
}

/// A sanitized document, as a reader gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sanitized {
    /// a URL that serves the bytes for a while (`ttl`), from a store that has such URLs
    Url(String),
    /// the bytes themselves, opened
    Bytes(Vec<u8>),
}

/// Reads back what [`put_sanitized`] kept: a presigned URL living `ttl` (at most
/// [`MAX_URL_TTL`]) when the store has them and the object is not sealed, else the opened bytes.
/// `Error::NotFound` when nothing is at `key`.
pub async fn read_sanitized(
    lake: &dyn ObjectStore,
    kms: &dyn Kms,
    table: &str,
    id: &str,
    key: &str,
    content_type: &str,
    ttl: Duration,
) -> Result<Sanitized> {
    if lake.encrypts_at_rest() {
        let info = lake.head(key).await?.ok_or_else(|| Error::NotFound {
            key: key.to_string(),
        })?;
        if !info.metadata.contains_key(meta::ENVELOPE)
            && let Some(url) = lake
                .presign_get(key, ttl.min(MAX_URL_TTL), content_type)
                .await?
        {
            return Ok(Sanitized::Url(url));
        }
    }
    Ok(Sanitized::Bytes(
        read_sanitized_bytes(lake, kms, table, id, key).await?,
    ))
}

/// The opened bytes [`put_sanitized`] kept at `key` (never a URL). `Error::NotFound` when
/// nothing is at `key`.
pub async fn read_sanitized_bytes(
    lake: &dyn ObjectStore,
    kms: &dyn Kms,
    table: &str,
    id: &str,
    key: &str,
) -> Result<Vec<u8>> {
    let got = lake.get(key).await?;
    let sealed = got.info.metadata.contains_key(meta::ENVELOPE) || envelope::is_sealed(&got.body);
    if sealed {
        let ctx = EncryptionContext::document(table, id);
        envelope::open(kms, &ctx, &got.body).await
    } else {
        Ok(got.body.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kms::LocalKms;
    use crate::store::{GetResult, LocalObjectStore, ObjectInfo};
    use async_trait::async_trait;
    use bytes::Bytes;
    use std::sync::Arc;

    /// A local store that claims to encrypt at rest and hands out `presigned://` URLs: the logic
    /// above the port, with the port faked.
    #[derive(Debug)]
    struct Presigning(Arc<LocalObjectStore>);

    #[async_trait]
    impl ObjectStore for Presigning {
        fn bucket(&self) -> &str {
            self.0.bucket()
        }
        fn url(&self, key: &str) -> String {
            self.0.url(key)
        }
        async fn put(&self, key: &str, body: Bytes, m: Metadata) -> Result<()> {
            self.0.put(key, body, m).await
        }
        async fn put_if_absent(&self, key: &str, body: Bytes, m: Metadata) -> Result<bool> {
            self.0.put_if_absent(key, body, m).await
        }
        async fn get(&self, key: &str) -> Result<GetResult> {
            self.0.get(key).await
        }
        async fn get_range(&self, key: &str, range: std::ops::Range<u64>) -> Result<Bytes> {
            self.0.get_range(key, range).await
        }
        async fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
            self.0.head(key).await
        }
        async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
            self.0.list(prefix).await
        }
        async fn delete(&self, key: &str) -> Result<()> {
            self.0.delete(key).await
        }
        async fn put_if_match(&self, key: &str, b: Bytes, m: Metadata, e: &str) -> Result<bool> {
            self.0.put_if_match(key, b, m, e).await
        }
        async fn delete_if_match(&self, key: &str, etag: &str) -> Result<bool> {
            self.0.delete_if_match(key, etag).await
        }
        async fn copy(&self, from: &str, to: &str) -> Result<()> {
            self.0.copy(from, to).await
        }
        fn encrypts_at_rest(&self) -> bool {
            true
        }
        async fn presign_get(&self, key: &str, ttl: Duration, ct: &str) -> Result<Option<String>> {
            Ok(Some(format!(
                "presigned://{key}?ttl={}&type={ct}",
                ttl.as_secs()
            )))
        }
    }

    fn setup() -> (tempfile::TempDir, Arc<LocalObjectStore>, LocalKms) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LocalObjectStore::open("lake", dir.path().join("lake")).unwrap());
        let kms = LocalKms::open_or_create(dir.path().join("master.key")).unwrap();
        (dir, store, kms)
    }

    #[tokio::test]
    async fn a_local_store_keeps_it_sealed_and_reads_it_opened() {
        let (_d, lake, kms) = setup();
        let key = "objects/photos/dt=2024-05-06/a";
        put_sanitized(
            lake.as_ref(),
            &kms,
            "photos",
            "a",
            key,
            "image/png",
            b"PIXELS",
        )
        .await
        .unwrap();
        let raw = lake.get(key).await.unwrap();
        assert!(envelope::is_sealed(&raw.body));
        assert_eq!(raw.info.metadata[meta::ENVELOPE], SEALED);
        assert_eq!(raw.info.metadata[meta::CONTENT_TYPE], "image/png");
        let got = read_sanitized(
            lake.as_ref(),
            &kms,
            "photos",
            "a",
            key,
            "image/png",
            MAX_URL_TTL,
        )
        .await
        .unwrap();
        assert_eq!(got, Sanitized::Bytes(b"PIXELS".to_vec()));
        // sealed under its own {table, id}: another id cannot open it
        assert!(
            read_sanitized(
                lake.as_ref(),
                &kms,
                "photos",
                "b",
                key,
                "image/png",
                MAX_URL_TTL
            )
            .await
            .is_err()
        );
    }

    #[tokio::test]
    async fn a_store_that_encrypts_at_rest_keeps_it_plain_and_hands_out_a_short_url() {
        let (_d, inner, kms) = setup();
        let lake = Presigning(inner.clone());
        let key = "objects/photos/dt=2024-05-06/a";
        put_sanitized(&lake, &kms, "photos", "a", key, "image/png", b"PIXELS")
            .await
            .unwrap();
        let raw = inner.get(key).await.unwrap();
        assert_eq!(&raw.body[..], b"PIXELS");
        assert!(!raw.info.metadata.contains_key(meta::ENVELOPE));
        // never longer than five minutes, whatever is asked
        let got = read_sanitized(
            &lake,
            &kms,
            "photos",
            "a",
            key,
            "image/png",
            Duration::from_secs(3600),
        )
        .await
        .unwrap();
        assert_eq!(
            got,
            Sanitized::Url(format!("presigned://{key}?ttl=300&type=image/png"))
        );
        // a sealed object in such a store is opened, never handed out as ciphertext
        put_sanitized(
            inner.as_ref(),
            &kms,
            "photos",
            "b",
            "objects/photos/dt=2024-05-06/b",
            "image/png",
            b"OTHER",
        )
        .await
        .unwrap();
        let got = read_sanitized(
            &lake,
            &kms,
            "photos",
            "b",
            "objects/photos/dt=2024-05-06/b",
            "image/png",
            MAX_URL_TTL,
        )
        .await
        .unwrap();
        assert_eq!(got, Sanitized::Bytes(b"OTHER".to_vec()));
        // nothing there: not found
        let e = read_sanitized(
            &lake,
            &kms,
            "photos",
            "c",
            "objects/photos/dt=2024-05-06/c",
            "image/png",
            MAX_URL_TTL,
        )
        .await
        .unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::NotFound);
        let e = read_sanitized(
            inner.as_ref(),
            &kms,
            "photos",
            "c",
            "objects/photos/dt=2024-05-06/c",
            "image/png",
            MAX_URL_TTL,
        )
        .await
        .unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::NotFound);
    }
}
