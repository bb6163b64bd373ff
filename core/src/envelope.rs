//! Envelope encryption of one object: a fresh data key from the [`Kms`] per object, AES-256-GCM
//! over the body, the wrapped data key stored beside the ciphertext, and the encryption context
//! authenticated both by the KMS (when unwrapping) and by the body's AEAD.
//!
//! Layout: `TARNENV1 | u32 wrapped-key length (BE) | wrapped key | nonce | ciphertext | tag`.

use crate::error::{Error, Result};
use crate::kms::{EncryptionContext, Kms, aead_open, aead_seal};

pub const MAGIC: &[u8; 8] = b"TARNENV1";

/// Whether `data` starts like a sealed envelope.
pub fn is_sealed(data: &[u8]) -> bool {
    data.starts_with(MAGIC)
}

fn aad(context: &EncryptionContext) -> Vec<u8> {
    let mut aad = MAGIC.to_vec();
    aad.extend_from_slice(&context.canonical());
    aad
}

pub async fn seal(kms: &dyn Kms, context: &EncryptionContext, plaintext: &[u8]) -> Result<Vec<u8>> {
    let key = kms.generate_data_key(context).await?;
    let body = aead_seal(&key.plaintext, &aad(context), plaintext)?;
    let mut out = Vec::with_capacity(12 + key.ciphertext.len() + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(key.ciphertext.len() as u32).to_be_bytes());
    out.extend_from_slice(&key.ciphertext);
    out.extend_from_slice(&body);
    Ok(out)
}

pub async fn open(kms: &dyn Kms, context: &EncryptionContext, sealed: &[u8]) -> Result<Vec<u8>> {
    if !is_sealed(sealed) || sealed.len() < 12 {
        return Err(Error::Crypto("not a tarn envelope".into()));
    }
    let n = u32::from_be_bytes(sealed[8..12].try_into().expect("4 bytes")) as usize;
    let rest = &sealed[12..];
    if rest.len() < n {
        return Err(Error::Crypto("truncated envelope".into()));
    }
    let key = kms.decrypt(&rest[..n], context).await?;
    aead_open(&key, &aad(context), &rest[n..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kms::LocalKms;

    #[tokio::test]
    async fn round_trip_and_context_binding() {
        let dir = tempfile::tempdir().unwrap();
        let kms = LocalKms::open_or_create(dir.path().join("master.key")).unwrap();
        let ctx = EncryptionContext::document("events", "abc");
        let secret = b"MARKER-1234 a plaintext that must not appear";
        let sealed = seal(&kms, &ctx, secret).await.unwrap();
        assert!(is_sealed(&sealed));
        assert!(!sealed.windows(11).any(|w| w == b"MARKER-1234"));
        assert_eq!(open(&kms, &ctx, &sealed).await.unwrap(), secret);
        let other = EncryptionContext::document("events", "abd");
        assert_eq!(
            open(&kms, &other, &sealed).await.unwrap_err().kind(),
            crate::ErrorKind::Crypto
        );
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(open(&kms, &ctx, &tampered).await.is_err());
        assert!(open(&kms, &ctx, &sealed[..20]).await.is_err());
    }
}
