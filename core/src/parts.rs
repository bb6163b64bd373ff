//! The body of a document landed through a multipart upload. Two encodings, named by the
//! landed object's `encoding` metadata ([`crate::document::meta::ENCODING`]):
//! - [`RAW`]: the document's bytes as sent, in a store that encrypts at rest (S3 with SSE-KMS:
//!   the parts go there straight from the producer, through presigned URLs);
//! - [`SEALED_PARTS`]: one frame per part, each the part sealed on its own ([`seal_part`]) by
//!   the ingress before the store keeps it (the local store): `u64 length (BE) | envelope`,
//!   the envelope's context the document's `{table, id}` plus the part's number and the
//!   number of parts (`part: "2/5"`), so parts cannot be swapped, dropped or moved to another
//!   document unnoticed.
//!
//! A landing without `encoding` is a POSTed document: its base64, sealed or not.

use crate::envelope;
use crate::error::{Error, Result};
use crate::kms::{EncryptionContext, Kms};

/// `encoding` of a body that is the document's bytes.
pub const RAW: &str = "raw";
/// `encoding` of a body made of sealed part frames.
pub const SEALED_PARTS: &str = "sealed-parts";

/// The context of part `number` of `count` of the document `{table, id}`.
fn part_context(table: &str, id: &str, number: u32, count: u32) -> EncryptionContext {
    let mut ctx = EncryptionContext::document(table, id);
    ctx.0.insert("part".into(), format!("{number}/{count}"));
    ctx
}

/// Part `number` of `count` of document `{table, id}` as a frame: its sealed length, then its
/// envelope.
pub async fn seal_part(
    kms: &dyn Kms,
    table: &str,
    id: &str,
    (number, count): (u32, u32),
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    let sealed = envelope::seal(kms, &part_context(table, id, number, count), plaintext).await?;
    let mut frame = Vec::with_capacity(8 + sealed.len());
    frame.extend_from_slice(&(sealed.len() as u64).to_be_bytes());
    frame.extend_from_slice(&sealed);
    Ok(frame)
}

/// The frames of `body` in order: each frame's envelope (no copy).
fn frames(body: &[u8]) -> Result<Vec<&[u8]>> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        if rest.len() < 8 {
            return Err(Error::Crypto("truncated part frame".into()));
        }
        let n = u64::from_be_bytes(rest[..8].try_into().expect("8 bytes")) as usize;
        rest = &rest[8..];
        if rest.len() < n {
            return Err(Error::Crypto("truncated part frame".into()));
        }
        out.push(&rest[..n]);
        rest = &rest[n..];
    }
    Ok(out)
}

/// The document's bytes from a [`SEALED_PARTS`] body: every frame opened under its part's
/// context, numbered 1, 2, ... in order of as many parts as there are frames (the ingress
/// numbers a document's parts so).
pub async fn open_parts(kms: &dyn Kms, table: &str, id: &str, body: &[u8]) -> Result<Vec<u8>> {
    let frames = frames(body)?;
    if frames.is_empty() {
        return Err(Error::Crypto("no part frame".into()));
    }
    let count = frames.len() as u32;
    let mut out = Vec::with_capacity(body.len());
    for (i, frame) in frames.into_iter().enumerate() {
        let ctx = part_context(table, id, i as u32 + 1, count);
        out.extend_from_slice(&envelope::open(kms, &ctx, frame).await?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kms::LocalKms;

    #[tokio::test]
    async fn frames_open_in_order_and_only_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let kms = LocalKms::open_or_create(dir.path().join("master.key")).unwrap();
        let one = seal_part(&kms, "photos", "abc", (1, 2), b"first part ")
            .await
            .unwrap();
        let two = seal_part(&kms, "photos", "abc", (2, 2), b"second")
            .await
            .unwrap();
        let body = [one.clone(), two.clone()].concat();
        assert!(!body.windows(6).any(|w| w == b"second"), "sealed");
        assert_eq!(
            open_parts(&kms, "photos", "abc", &body).await.unwrap(),
            b"first part second"
        );
        for bad in [
            [two.clone(), one.clone()].concat(),
            two.clone(),
            // a part dropped from the end
            one.clone(),
            body[..body.len() - 1].to_vec(),
            Vec::new(),
        ] {
            let e = open_parts(&kms, "photos", "abc", &bad).await.unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Crypto);
        }
        assert!(
            open_parts(&kms, "photos", "abd", &body).await.is_err(),
            "another document"
        );
    }
}
