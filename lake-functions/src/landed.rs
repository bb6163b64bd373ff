//! Reading a landed object back into a [`Document`]: the inverse of what the ingress (or API
//! Gateway's S3 proxy) wrote.

use crate::error::{LakeError, Result};
use crate::stage::Document;
use base64::Engine;
use chrono::{DateTime, Utc};
use tarn_core::document::{id_from_ingress_key, meta};
use tarn_core::{EncryptionContext, GetResult, Kms, envelope, parts};

/// Parses `request-time`: RFC 3339 (tarn's ingress) or API Gateway's `$context.requestTime`
/// (`09/Apr/2015:12:34:56 +0000`).
pub fn parse_request_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%d/%b/%Y:%H:%M:%S %z"))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Decrypts (when sealed) and decodes a landed object.
pub async fn decode(kms: &dyn Kms, key: &str, object: &GetResult) -> Result<Document> {
    let bad = |reason: &str| LakeError::BadLanding {
        key: key.to_string(),
        reason: reason.to_string(),
    };
    let id = id_from_ingress_key(key)
        .ok_or_else(|| bad("key is not id=<uuid>"))?
        .to_string();
    let m = &object.info.metadata;
    let table = m
        .get(meta::TABLE)
        .ok_or_else(|| bad("no table metadata"))?
        .clone();
    if !tarn_catalog::schemas::is_valid_table_name(&table) {
        return Err(bad("its table metadata is not a valid table name"));
    }
    let content_type = m
        .get(meta::CONTENT_TYPE)
        .ok_or_else(|| bad("no content-type metadata"))?
        .clone();
    let producer = m
        .get(meta::PRODUCER)
        .cloned()
        .unwrap_or_else(|| "unknown".into());
    let received_at = m
        .get(meta::REQUEST_TIME)
        .and_then(|t| parse_request_time(t))
        .ok_or_else(|| bad("no or unreadable request-time metadata"))?;
    let body: bytes::Bytes = match m.get(meta::ENCODING).map(String::as_str) {
        // a POSTed document: its base64, sealed by the ingress or, on AWS, as API Gateway
        // wrote it (the bucket encrypts with SSE-KMS)
        None => {
            let encoded = if envelope::is_sealed(&object.body) {
                envelope::open(kms, &EncryptionContext::document(&table, &id), &object.body).await?
            } else {
                object.body.to_vec()
            };
            base64::engine::general_purpose::STANDARD
                .decode(encoded.trim_ascii())
                .map_err(|e| bad(&format!("body is not base64: {e}")))?
                .into()
        }
        // a multipart landing: the document's bytes, or its sealed parts (tarn_core::parts)
        Some(parts::RAW) => object.body.clone(),
        Some(parts::SEALED_PARTS) => parts::open_parts(kms, &table, &id, &object.body)
            .await?
            .into(),
        Some(other) => return Err(bad(&format!("unknown encoding {other:?}"))),
    };
    Ok(Document::new(
        id,
        table,
        content_type,
        producer,
        received_at,
        body,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_times() {
        let a = parse_request_time("2024-05-06T07:08:09.123Z").unwrap();
        assert_eq!(a.to_rfc3339(), "2024-05-06T07:08:09.123+00:00");
        let b = parse_request_time("09/Apr/2015:12:34:56 +0000").unwrap();
        assert_eq!(b.to_rfc3339(), "2015-04-09T12:34:56+00:00");
        assert!(parse_request_time("yesterday").is_none());
    }
}
