//! Idempotency keys of `POST /table/{name}/object` (docs/contract.md): the `Idempotency-Key`
//! header's rules ([`parse_key`]) and the one function that turns a producer, a table and a key
//! into a document id ([`document_id`]). The local server lands a keyed upload under that id
//! with a conditional create, and the AWS authorizer hands the same id to API Gateway's S3
//! proxy, which writes `id=<that>` with `If-None-Match: *`: a repeat of the key finds the first
//! document on both backends, without either of them remembering keys anywhere else.

use crate::error::{IngressError, Result};

/// The request header that carries a producer's key.
pub const HEADER: &str = "idempotency-key";

/// The response header (`true`) of an upload that repeated a key and landed nothing.
pub const REPLAYED_HEADER: &str = "idempotency-replayed";

/// The longest key, in characters.
pub const MAX_KEY_LEN: usize = 128;

/// A key as sent: 1 to [`MAX_KEY_LEN`] printable ASCII characters (space to `~`). Anything else
/// is 400 `invalid_idempotency_key`.
pub fn parse_key(raw: &[u8]) -> Result<&str> {
    let ok = !raw.is_empty()
        && raw.len() <= MAX_KEY_LEN
        && raw.iter().all(|b| (b' '..=b'~').contains(b));
    if !ok {
        return Err(IngressError::InvalidIdempotencyKey);
    }
    // printable ASCII is UTF-8
    std::str::from_utf8(raw).map_err(|_| IngressError::InvalidIdempotencyKey)
}

/// The id of the document that `producer` sends to `table` under `key`: the same every time, on
/// every backend, and different for another producer, table or key. A UUID (version 8, RFC
/// 9562's form for name-based ids hashed with SHA-256) from the first 16 bytes of the SHA-256
/// of a fixed namespace and the three parts, each preceded by its length so that no two
/// different triples hash the same input.
pub fn document_id(producer: &str, table: &str, key: &str) -> String {
    let mut input = Vec::with_capacity(64 + producer.len() + table.len() + key.len());
    input.extend_from_slice(b"tarn-idempotency-v1");
    for part in [producer, table, key] {
        input.extend_from_slice(&(part.len() as u64).to_be_bytes());
        input.extend_from_slice(part.as_bytes());
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &input);
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest.as_ref()[..16]);
    // version 8 (custom), variant RFC 9562
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(bytes).hyphenated().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_1_to_128_printable_ascii_characters() {
        for ok in [
            "a",
            "retry-7f3c",
            "with space",
            "~!@#$%^&*()",
            &"k".repeat(128),
        ] {
            assert_eq!(parse_key(ok.as_bytes()).unwrap(), ok);
        }
        for bad in [
            &b""[..],
            "k".repeat(129).as_bytes(),
            b"tab\there",
            b"new\nline",
            b"\x7f",
            "clé".as_bytes(),
            &[0xff],
        ] {
            let e = parse_key(bad).unwrap_err();
            assert_eq!(e.code(), "invalid_idempotency_key", "{bad:?}");
            assert_eq!(e.kind().status().as_u16(), 400);
        }
    }

    #[test]
    fn ids_are_deterministic_uuids_per_producer_table_and_key() {
        let id = document_id("alice", "events", "k1");
        assert_eq!(id, document_id("alice", "events", "k1"));
        let u = uuid::Uuid::parse_str(&id).unwrap();
        assert_eq!(u.get_version_num(), 8);
        assert_eq!(u.get_variant(), uuid::Variant::RFC4122);
        assert_eq!(u.hyphenated().to_string(), id, "canonical lowercase form");
        // pinned (python: hashlib.sha256 over the same input): every release computes this id
        assert_eq!(id, "70baa2a8-9c3c-82c8-a6fb-da5a7a8f201f");
        let others = [
            document_id("bob", "events", "k1"),
            document_id("alice", "photos", "k1"),
            document_id("alice", "events", "k2"),
            // the length prefixes keep the parts apart
            document_id("alic", "eevents", "k1"),
            document_id("alice", "event", "sk1"),
        ];
        for o in &others {
            assert_ne!(o, &id);
        }
    }
}
