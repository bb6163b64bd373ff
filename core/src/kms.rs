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

/// The master key is one AES-256 key.
const MASTER_KEY_LEN: usize = 32;

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
    /// Opens the master key at `path`, creating it when missing (see [`crate::keyfile`]: 0600,
    /// created once, never replaced, whatever races or crashes). An existing key file that cannot
    /// be read or is not a 32-byte key is refused, never replaced: objects sealed under it would
    /// be lost.
    pub fn open_or_create(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        crate::keyfile::create_once(path, || Ok(random::<32>().to_vec()))?;
        Self::open(path)
    }

    /// Opens an existing master key, refusing one others may read, one that cannot be read and
    /// one that is not 32 bytes.
    pub fn open(path: &Path) -> Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let unreadable = |e: std::io::Error| {
            Error::Config(format!(
                "cannot read the master key {}: {e}; make it a file readable by the user running tarn (mode 600), or restore it from a backup",
                path.display()
            ))
        };
        let md = std::fs::metadata(path).map_err(unreadable)?;
        if !md.is_file() {
            return Err(Error::Config(format!(
                "the master key {} is not a regular file; restore the key file from a backup",
                path.display()
            )));
        }
        if md.permissions().mode() & 0o077 != 0 {
            return Err(Error::Config(format!(
                "master key {} is readable by others; run `chmod 600 {}`",
                path.display(),
                path.display()
            )));
        }
        let master = Zeroizing::new(std::fs::read(path).map_err(unreadable)?);
        if master.len() != MASTER_KEY_LEN {
            return Err(Error::Config(format!(
                "the master key {} is {} bytes, not {MASTER_KEY_LEN}: it is damaged; restore it from a backup (without it nothing sealed under it can be read), or, only if this data dir never stored anything, delete it to have a new one made",
                path.display(),
                master.len()
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
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

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

    fn file_names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    async fn seal(kms: &LocalKms) -> DataKey {
        kms.generate_data_key(&EncryptionContext::document("t", "1"))
            .await
            .unwrap()
    }

    async fn opens(kms: &LocalKms, sealed: &DataKey) -> bool {
        kms.decrypt(&sealed.ciphertext, &EncryptionContext::document("t", "1"))
            .await
            .is_ok_and(|k| k[..] == sealed.plaintext[..])
    }

    /// Every state a crash can leave a creation in: the next start keeps a key that is there,
    /// makes one when none is, and removes the temporary files.
    #[tokio::test]
    async fn a_creation_interrupted_at_any_step_recovers() {
        use std::os::unix::fs::OpenOptionsExt;
        let write_tmp = |path: &Path, bytes: &[u8]| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .unwrap();
            std::io::Write::write_all(&mut f, bytes).unwrap();
        };
        let tmp_name = "master.key.0b7c4b0e-2f3b-4a4c-9a57-5b1e0f6d2c11.tmp";

        // crashed before or while writing the temporary file: an empty or partial one, no key
        for partial in [&b""[..], &[7u8; 5][..], &[7u8; 32][..]] {
            let dir = tempfile::tempdir().unwrap();
            let keys = dir.path().join("keys");
            std::fs::create_dir(&keys).unwrap();
            write_tmp(&keys.join(tmp_name), partial);
            let kms = LocalKms::open_or_create(keys.join("master.key")).unwrap();
            assert_eq!(file_names(&keys), ["master.key"]);
            assert_ne!(
                &kms.master[..],
                partial,
                "a temporary file never becomes the key"
            );
            let sealed = seal(&kms).await;
            let again = LocalKms::open_or_create(keys.join("master.key")).unwrap();
            assert!(opens(&again, &sealed).await);
        }

        // crashed between link and unlink (this version's unique name, and the fixed name of
        // earlier versions, which were truncated and rewritten on the next start): the key and
        // its temporary name are one file
        for leftover in [tmp_name, "master.tmp"] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("keys/master.key");
            let kms = LocalKms::open_or_create(&path).unwrap();
            let sealed = seal(&kms).await;
            std::fs::hard_link(&path, path.with_file_name(leftover)).unwrap();
            let reopened = LocalKms::open_or_create(&path).unwrap();
            assert_eq!(reopened.key_id, kms.key_id);
            assert!(opens(&reopened, &sealed).await);
            assert_eq!(file_names(path.parent().unwrap()), ["master.key"]);
            assert_eq!(std::fs::read(&path).unwrap(), &kms.master[..]);
        }

        // crashed after the key directory was made, before anything was in it
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("keys")).unwrap();
        let kms = LocalKms::open_or_create(LocalKms::path_in(dir.path())).unwrap();
        let sealed = seal(&kms).await;
        assert!(
            opens(
                &LocalKms::open_or_create(LocalKms::path_in(dir.path())).unwrap(),
                &sealed
            )
            .await
        );
    }

    #[test]
    fn a_damaged_or_unreadable_key_is_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/master.key");
        LocalKms::open_or_create(&path).unwrap();
        let key = std::fs::read(&path).unwrap();
        for damaged in [&key[..16], &b""[..], &[&key[..], b"\n"].concat()[..]] {
            std::fs::write(&path, damaged).unwrap();
            let err = LocalKms::open_or_create(&path).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Config);
            let msg = err.to_string();
            assert!(
                msg.contains(&format!("is {} bytes, not 32", damaged.len()))
                    && msg.contains("restore it from a backup"),
                "{msg}"
            );
            assert_eq!(
                std::fs::read(&path).unwrap(),
                damaged,
                "a damaged key is never replaced"
            );
        }
        // not a file at all
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        let err = LocalKms::open_or_create(&path).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Config);
        assert!(err.to_string().contains("not a regular file"), "{err}");
        // a key that cannot be read (a dangling symlink: the tests may run as root, whom file
        // modes do not stop)
        std::fs::remove_dir(&path).unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), &path).unwrap();
        let err = LocalKms::open(&path).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Config);
        assert!(
            err.to_string().contains("cannot read the master key"),
            "{err}"
        );
    }

    const RACE_DIR: &str = "TARN_TEST_KMS_RACE_DIR";
    const RACE_ID: &str = "TARN_TEST_KMS_RACE_ID";
    const RACERS: usize = 16;

    /// Many processes starting on a fresh data dir at the same moment: one key wins and opens
    /// what every one of them sealed. Run as a child (with `RACE_DIR` set), the test is one
    /// racer: it waits for the start signal, opens the key and seals a data key under it.
    #[tokio::test]
    async fn concurrent_first_starts_from_many_processes_share_one_key() {
        if let Ok(dir) = std::env::var(RACE_DIR) {
            let dir = PathBuf::from(dir);
            let id = std::env::var(RACE_ID).unwrap();
            let deadline = Instant::now() + Duration::from_secs(60);
            while !dir.join("go").exists() {
                assert!(Instant::now() < deadline, "the start signal never came");
                std::thread::sleep(Duration::from_micros(200));
            }
            let kms = LocalKms::open_or_create(LocalKms::path_in(&dir)).unwrap();
            let sealed = seal(&kms).await;
            let out = format!(
                "{}\n{}\n",
                hex::encode(&sealed.ciphertext),
                hex::encode(&sealed.plaintext[..])
            );
            std::fs::write(dir.join(format!("sealed-{id}")), out).unwrap();
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let exe = std::env::current_exe().unwrap();
        let racers: Vec<_> = (0..RACERS)
            .map(|i| {
                Command::new(&exe)
                    .args([
                        "--exact",
                        "kms::tests::concurrent_first_starts_from_many_processes_share_one_key",
                        "--test-threads=1",
                    ])
                    .env(RACE_DIR, dir.path())
                    .env(RACE_ID, i.to_string())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        std::fs::write(dir.path().join("go"), b"").unwrap();
        for racer in racers {
            let out = racer.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "a racer failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert_eq!(file_names(&dir.path().join("keys")), ["master.key"]);
        let kms = LocalKms::open(&LocalKms::path_in(dir.path())).unwrap();
        for i in 0..RACERS {
            let text = std::fs::read_to_string(dir.path().join(format!("sealed-{i}"))).unwrap();
            let mut lines = text.lines().map(|l| hex::decode(l).unwrap());
            let sealed = DataKey {
                ciphertext: lines.next().unwrap(),
                plaintext: Zeroizing::new(lines.next().unwrap()),
            };
            assert!(
                opens(&kms, &sealed).await,
                "racer {i} sealed under a key that is not the one kept"
            );
        }
    }
}
