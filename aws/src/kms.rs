//! [`KmsClient`]: the KMS port on AWS KMS — GenerateDataKey (AES-256) and Decrypt, both bound to
//! the encryption context (`{table, id}` for documents).

use crate::s3::describe;
use async_trait::async_trait;
use aws_sdk_kms::Client;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use std::collections::HashMap;
use tarn_core::{DataKey, EncryptionContext, Error, Kms, Result};
use zeroize::Zeroizing;

#[derive(Clone)]
pub struct KmsClient {
    client: Client,
    key_id: String,
}

impl std::fmt::Debug for KmsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsClient")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

fn context(c: &EncryptionContext) -> Option<HashMap<String, String>> {
    if c.0.is_empty() {
        None
    } else {
        Some(c.0.clone().into_iter().collect())
    }
}

/// Errors that mean "this ciphertext does not open with this key and context".
const CRYPTO_CODES: &[&str] = &[
    "InvalidCiphertextException",
    "IncorrectKeyException",
    "InvalidKeyUsageException",
];

fn map_err<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    op: &str,
    e: SdkError<E, R>,
) -> Error {
    let code = match &e {
        SdkError::ServiceError(se) => se.err().code().map(String::from),
        _ => None,
    };
    let text = format!("kms {op}: {}", describe(&e));
    match code.as_deref() {
        Some(c) if CRYPTO_CODES.contains(&c) => Error::Crypto(text),
        Some(
            "NotFoundException"
            | "DisabledException"
            | "KMSInvalidStateException"
            | "AccessDeniedException",
        ) => Error::Config(text),
        _ => Error::Service(text),
    }
}

impl KmsClient {
    /// `key_id`: a key id, key ARN or alias.
    pub fn new(client: Client, key_id: impl Into<String>) -> Self {
        Self {
            client,
            key_id: key_id.into(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }
}

#[async_trait]
impl Kms for KmsClient {
    fn key_id(&self) -> &str {
        &self.key_id
    }

    async fn generate_data_key(&self, ctx: &EncryptionContext) -> Result<DataKey> {
        let out = self
            .client
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .set_encryption_context(context(ctx))
            .send()
            .await
            .map_err(|e| map_err("GenerateDataKey", e))?;
        let plaintext = out
            .plaintext()
            .ok_or_else(|| Error::Service("kms GenerateDataKey: no plaintext".into()))?;
        let ciphertext = out
            .ciphertext_blob()
            .ok_or_else(|| Error::Service("kms GenerateDataKey: no ciphertext".into()))?;
        if plaintext.as_ref().len() != 32 {
            return Err(Error::Service(format!(
                "kms GenerateDataKey: a {}-byte key, not 32",
                plaintext.as_ref().len()
            )));
        }
        Ok(DataKey {
            plaintext: Zeroizing::new(plaintext.as_ref().to_vec()),
            ciphertext: ciphertext.as_ref().to_vec(),
        })
    }

    async fn decrypt(
        &self,
        ciphertext: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let out = self
            .client
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(ciphertext.to_vec()))
            .set_encryption_context(context(ctx))
            .send()
            .await
            .map_err(|e| map_err("Decrypt", e))?;
        let plaintext = out
            .plaintext()
            .ok_or_else(|| Error::Service("kms Decrypt: no plaintext".into()))?;
        Ok(Zeroizing::new(plaintext.as_ref().to_vec()))
    }
}
