//! The key-management port, shaped after AWS KMS (GenerateDataKey / Decrypt with an encryption
//! context), and a local implementation holding one 256-bit master key in a file.
//!
//! Guarantees (checked by [`crate::conformance::kms`]):
//! - `generate_data_key` returns a fresh random 256-bit key and that key wrapped under the master
//!   key; the wrapped form is bound to the encryption context.
//! - `decrypt` returns the key only for the same context; any other context, or any change to
//!   the wrapped bytes, fails with `ErrorKind::Crypto`.

use crate::error::{Error, Result};
use async_trait::async_trait;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Non-secret key/value pairs bound to a ciphertext (KMS's encryption context), e.g.
/// `{table, id}`. Serialized canonically (sorted keys) wherever it is authenticated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncryptionContext(pub BTreeMap<String, String>);

impl EncryptionContext {
    pub fn new<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
    /// The document context tarn uses everywhere: `{table, id}`.
    pub fn document(table: &str, id: &str) -> Self {
        Self::new([("table", table), ("id", id)])
    }
    pub fn canonical(&self) -> Vec<u8> {
        serde_json::to_vec(&self.0).expect("a string map serializes")
    }
}

pub struct DataKey {
    pub plaintext: Zeroizing<Vec<u8>>,
    pub ciphertext: Vec<u8>,
}

#[async_trait]
pub trait Kms: Send + Sync + std::fmt::Debug {
    /// The master key's identifier (an ARN on AWS).
    fn key_id(&self) -> &str;
    async fn generate_data_key(&self, context: &EncryptionContext) -> Result<DataKey>;
    async fn decrypt(
        &self,
        ciphertext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Zeroizing<Vec<u8>>>;
}

pub(crate) fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    aws_lc_rs::rand::fill(&mut b).expect("the system random generator works");
    b
}

/// AES-256-GCM: returns `nonce || ciphertext || tag`.
pub(crate) fn aead_seal(key: &[u8], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    let key = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, key).map_err(|_| Error::Crypto("bad key length".into()))?,
    );
    let nonce_bytes = random::<12>();
    let mut buf = plaintext.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce_bytes),
        Aad::from(aad),
        &mut buf,
    )
    .map_err(|_| Error::Crypto("encryption failed".into()))?;
    let mut out = Vec::with_capacity(12 + buf.len());
    out.extend_from_slice(&nonce_bytes);
    out.extend_from_slice(&buf);
    Ok(out)
}

/// Inverse of [`aead_seal`].
pub(crate) fn aead_open(key: &[u8], aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
    if sealed.len() < 12 + 16 {
        return Err(Error::Crypto("ciphertext too short".into()));
    }
    let key = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, key).map_err(|_| Error::Crypto("bad key length".into()))?,
    );
    let nonce = Nonce::try_assume_unique_for_key(&sealed[..12])
        .map_err(|_| Error::Crypto("bad nonce".into()))?;
    let mut buf = sealed[12..].to_vec();
    let n = key
        .open_in_place(nonce, Aad::from(aad), &mut buf)
        .map_err(|_| {
            Error::Crypto("authentication failed: wrong key, wrong context or altered data".into())
        })?
        .len();
    buf.truncate(n);
    Ok(buf)
}

const WRAP_TAG: &[u8] = b"tarn-local-kms-v1";

/// A master key in a file (mode 0600), created on first use.
pub struct LocalKms {
    key_id: String,
    master: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for LocalKms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKms")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl LocalKms {
    /// Opens the master key at `path`, creating it (0600, never overwritten) when missing.
    pub fn open_or_create(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(Error::io("creating key directory", dir))?;
        }
        match Self::create(path) {
            Ok(()) => {}
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists => {
            }
            Err(e) => return Err(e),
        }
        Self::open(path)
    }

    fn create(path: &Path) -> Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let key = Zeroizing::new(random::<32>());
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(Error::io("creating master key", &tmp))?;
        f.write_all(&key[..])
            .and_then(|_| f.sync_all())
            .map_err(Error::io("writing master key", &tmp))?;
        // link, not rename: never replaces a key that already exists
        let res = std::fs::hard_link(&tmp, path).map_err(Error::io("creating master key", path));
        let _ = std::fs::remove_file(&tmp);
        res
    }

    pub fn open(path: &Path) -> Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let md = std::fs::metadata(path).map_err(Error::io("reading master key", path))?;
        if md.permissions().mode() & 0o077 != 0 {
            return Err(Error::Config(format!(
                "master key {} is readable by others; run `chmod 600 {}`",
                path.display(),
                path.display()
            )));
        }
        let master =
            Zeroizing::new(std::fs::read(path).map_err(Error::io("reading master key", path))?);
        if master.len() != 32 {
            return Err(Error::Config(format!(
                "master key {} is not 32 bytes",
                path.display()
            )));
        }
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &master);
        let key_id = format!("local:{}", hex::encode(&digest.as_ref()[..8]));
        Ok(Self { key_id, master })
    }

    pub fn path_in(data_dir: &Path) -> PathBuf {
        data_dir.join("keys").join("master.key")
    }

    fn aad(&self, context: &EncryptionContext) -> Vec<u8> {
        let mut aad = WRAP_TAG.to_vec();
        aad.extend_from_slice(&context.canonical());
        aad
    }
}

#[async_trait]
impl Kms for LocalKms {
    fn key_id(&self) -> &str {
        &self.key_id
    }

    async fn generate_data_key(&self, context: &EncryptionContext) -> Result<DataKey> {
        let plaintext = Zeroizing::new(random::<32>().to_vec());
        let ciphertext = aead_seal(&self.master, &self.aad(context), &plaintext)?;
        Ok(DataKey {
            plaintext,
            ciphertext,
        })
    }

    async fn decrypt(
        &self,
        ciphertext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Zeroizing<Vec<u8>>> {
        aead_open(&self.master, &self.aad(context), ciphertext).map(Zeroizing::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[tokio::test]
    async fn local_kms_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let kms = LocalKms::open_or_create(dir.path().join("k/master.key")).unwrap();
        crate::conformance::kms(&kms).await;
    }

    #[test]
    fn master_key_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let a = LocalKms::open_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let b = LocalKms::open_or_create(&path).unwrap();
        assert_eq!(a.key_id, b.key_id, "a second open must not replace the key");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = LocalKms::open(&path).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }
}
