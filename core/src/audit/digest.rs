//! Tamper evidence, modelled on CloudTrail log file integrity validation: digest files listing
//! each log file's SHA-256, chained by the previous digest's hash and signature, signed with a
//! local Ed25519 key; and [`verify`], which reports every modified, deleted or inserted file.

use super::record::TrailConfig;
use super::{gunzip, sha256_hex};
use crate::error::{Error, Result};
use crate::store::ObjectStore;
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One log file in a digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogFileEntry {
    pub s3_bucket: String,
    pub s3_object: String,
    /// hex SHA-256 of the uncompressed log file
    pub hash_value: String,
    pub hash_algorithm: String,
    pub newest_event_time: String,
    pub oldest_event_time: String,
}

/// A digest file, as CloudTrail writes them. Its signature is in the object's metadata
/// (`signature`, hex), over [`sign_string`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DigestFile {
    pub aws_account_id: String,
    pub digest_start_time: String,
    pub digest_end_time: String,
    #[serde(rename = "digestS3Bucket")]
    pub digest_s3_bucket: String,
    #[serde(rename = "digestS3Object")]
    pub digest_s3_object: String,
    pub digest_public_key_fingerprint: String,
    pub digest_signature_algorithm: String,
    pub newest_event_time: Option<String>,
    pub oldest_event_time: Option<String>,
    #[serde(rename = "previousDigestS3Bucket")]
    pub previous_digest_s3_bucket: Option<String>,
    #[serde(rename = "previousDigestS3Object")]
    pub previous_digest_s3_object: Option<String>,
    pub previous_digest_hash_value: Option<String>,
    pub previous_digest_hash_algorithm: Option<String>,
    pub previous_digest_signature: Option<String>,
    pub log_files: Vec<LogFileEntry>,
}

#[derive(Debug, Clone)]
pub(crate) struct PreviousDigest {
    pub bucket: String,
    pub key: String,
    pub hash: String,
    pub signature: String,
    pub end_time: DateTime<Utc>,
}

/// What is signed, as CloudTrail's data-signing string: the end time, where the digest is, the
/// hex SHA-256 of its uncompressed content, and the previous digest's signature (`null` for the
/// first).
pub fn sign_string(
    end_time: &str,
    bucket: &str,
    key: &str,
    hash_hex: &str,
    previous_signature: Option<&str>,
) -> String {
    format!(
        "{end_time}\n{bucket}/{key}\n{hash_hex}\n{}",
        previous_signature.unwrap_or("null")
    )
}

/// The trail's Ed25519 signing key, a PKCS#8 file (mode 0600, created once, never overwritten),
/// with its public key beside it (hex, `.pub`).
pub struct SigningKey {
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// `<data_dir>/keys/audit-signing.key`.
    pub fn path_in(data_dir: &Path) -> PathBuf {
        data_dir.join("keys").join("audit-signing.key")
    }
    /// `<data_dir>/keys/audit-signing.pub`: what `verify` needs.
    pub fn public_path_in(data_dir: &Path) -> PathBuf {
        data_dir.join("keys").join("audit-signing.pub")
    }

    /// Opens the key at `path`, creating it when missing (0600, created once, never replaced:
    /// [`crate::keyfile`]); writes the public key (hex) to `path` with extension `pub` when that
    /// file is missing.
    pub fn open_or_create(path: impl AsRef<Path>) -> Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let path = path.as_ref();
        crate::keyfile::create_once(path, || {
            Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new())
                .map(|doc| doc.as_ref().to_vec())
                .map_err(|_| Error::Crypto("generating the audit signing key failed".into()))
        })?;
        let md = std::fs::metadata(path).map_err(Error::io("reading audit signing key", path))?;
        if md.permissions().mode() & 0o077 != 0 {
            return Err(Error::Config(format!(
                "audit signing key {} is readable by others; run `chmod 600 {}`",
                path.display(),
                path.display()
            )));
        }
        let bytes = zeroize::Zeroizing::new(
            std::fs::read(path).map_err(Error::io("reading audit signing key", path))?,
        );
        let pair = Ed25519KeyPair::from_pkcs8(&bytes).map_err(|e| {
            Error::Config(format!(
                "audit signing key {} is not an Ed25519 PKCS#8 key: {e}",
                path.display()
            ))
        })?;
        let key = Self { pair };
        let public = path.with_extension("pub");
        if !public.exists() {
            std::fs::write(&public, format!("{}\n", key.public_key_hex()))
                .map_err(Error::io("writing audit public key", &public))?;
        }
        Ok(key)
    }

    pub fn public_key(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.public_key())
    }
    /// hex SHA-256 of the public key, as `digestPublicKeyFingerprint`.
    pub fn fingerprint(&self) -> String {
        sha256_hex(&self.public_key())
    }
    /// hex signature of `msg`.
    pub fn sign(&self, msg: &[u8]) -> String {
        hex::encode(self.pair.sign(msg).as_ref())
    }
}

/// Reads a public key file written by [`SigningKey::open_or_create`] (hex).
pub fn read_public_key(path: &Path) -> Result<Vec<u8>> {
    let text =
        std::fs::read_to_string(path).map_err(Error::io("reading audit public key", path))?;
    hex::decode(text.trim()).map_err(|e| {
        Error::Config(format!(
            "audit public key {} is not hex: {e}",
            path.display()
        ))
    })
}

/// What is wrong with one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// a log file whose content no longer has the hash its digest holds
    LogFileModified,
    /// a log file a digest lists, missing
    LogFileDeleted,
    /// a log file no digest lists, older than the newest digest
    LogFileInserted,
    /// a digest whose signature or hash does not match its content
    DigestModified,
    /// a digest the next one points to, missing
    DigestDeleted,
    /// a digest that nobody signed (no signature) and nothing points to
    DigestInserted,
    /// digests that do not form one chain (a fork, a second start, a previous signature that
    /// does not match)
    ChainBroken,
}

impl ProblemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::LogFileModified => "log file modified",
            ProblemKind::LogFileDeleted => "log file deleted",
            ProblemKind::LogFileInserted => "log file inserted",
            ProblemKind::DigestModified => "digest modified",
            ProblemKind::DigestDeleted => "digest deleted",
            ProblemKind::DigestInserted => "digest inserted",
            ProblemKind::ChainBroken => "digest chain broken",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    pub key: String,
    pub detail: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.kind.as_str(), self.key, self.detail)
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub digests: usize,
    pub log_files: usize,
    /// log files that verified against a digest
    pub log_files_valid: usize,
    pub problems: Vec<Problem>,
    /// log files newer than the newest digest: not covered yet (not a problem)
    pub not_yet_digested: Vec<String>,
}

impl VerifyReport {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

struct Digest {
    key: String,
    file: Option<DigestFile>,
    uncompressed_hash: Option<String>,
    signature: Option<String>,
    valid: bool,
}

/// Checks the trail in `store` against the signing key's public key (raw 32 bytes): every
/// digest's signature, the chain of digests, and every log file against the digests. Reports
/// each modified, deleted or inserted log file and digest, and any break in the chain.
pub async fn verify(
    store: &dyn ObjectStore,
    trail: &TrailConfig,
    public_key: &[u8],
) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    let mut problems: BTreeSet<Problem> = BTreeSet::new();
    let mut problem = |kind, key: &str, detail: String| {
        problems.insert(Problem {
            kind,
            key: key.to_string(),
            detail,
        });
    };
    let pk = UnparsedPublicKey::new(&ED25519, public_key);

    // every digest: readable, signed, naming its own key
    let mut digests: BTreeMap<String, Digest> = BTreeMap::new();
    for info in store.list(&trail.digest_prefix()).await? {
        let got = match store.get(&info.key).await {
            Ok(g) => g,
            Err(e) if e.kind() == crate::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let signature = got.info.metadata.get("signature").cloned();
        let body = gunzip(&got.body).ok();
        let file = body
            .as_ref()
            .and_then(|b| serde_json::from_slice::<DigestFile>(b).ok());
        let hash = body.as_ref().map(|b| sha256_hex(b));
        let valid = match (&file, &hash, &signature) {
            (Some(f), Some(h), Some(sig)) => {
                let msg = sign_string(
                    &f.digest_end_time,
                    &f.digest_s3_bucket,
                    &f.digest_s3_object,
                    h,
                    f.previous_digest_signature.as_deref(),
                );
                f.digest_s3_object == info.key
                    && hex::decode(sig)
                        .ok()
                        .is_some_and(|s| pk.verify(msg.as_bytes(), &s).is_ok())
            }
            _ => false,
        };
        digests.insert(
            info.key.clone(),
            Digest {
                key: info.key,
                file,
                uncompressed_hash: hash,
                signature,
                valid,
            },
        );
    }
    report.digests = digests.len();

    // who points to whom
    let mut successors: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for d in digests.values().filter(|d| d.valid) {
        let f = d.file.as_ref().expect("valid digests parsed");
        if let Some(prev) = &f.previous_digest_s3_object {
            successors
                .entry(prev.clone())
                .or_default()
                .push(d.key.clone());
        }
    }
    for d in digests.values() {
        if d.valid {
            continue;
        }
        let pointed_to = successors.contains_key(&d.key);
        if pointed_to || d.signature.is_some() {
            let why = match (&d.file, &d.signature) {
                (None, _) => "not a readable digest file",
                (Some(_), None) => "no signature",
                _ => "its signature does not match its content (or it was moved from another key)",
            };
            problem(ProblemKind::DigestModified, &d.key, why.into());
        } else {
            problem(
                ProblemKind::DigestInserted,
                &d.key,
                "not signed by the trail's key, and no digest points to it".into(),
            );
        }
    }
    let mut starts = Vec::new();
    for d in digests.values().filter(|d| d.valid) {
        let f = d.file.as_ref().expect("valid digests parsed");
        match &f.previous_digest_s3_object {
            None => starts.push((
                trail.digest_trail_name(&d.key).unwrap_or("").to_string(),
                f.digest_end_time.clone(),
                d.key.clone(),
            )),
            Some(prev) => match digests.get(prev) {
                None => problem(
                    ProblemKind::DigestDeleted,
                    prev,
                    format!("digest {} points to it as its previous digest", d.key),
                ),
                Some(p) => {
                    if p.uncompressed_hash.is_some()
                        && p.uncompressed_hash != f.previous_digest_hash_value
                    {
                        problem(
                            ProblemKind::DigestModified,
                            prev,
                            format!("its hash is not the one digest {} holds", d.key),
                        );
                    }
                    if p.signature != f.previous_digest_signature {
                        problem(
                            ProblemKind::ChainBroken,
                            &d.key,
                            format!("the previous signature it holds is not that of {prev}"),
                        );
                    }
                }
            },
        }
    }
    // one chain per trail name: a second start of one trail's chain means its history was cut
    starts.sort();
    for pair in starts.windows(2) {
        let ((trail_a, _, _), (trail_b, _, key)) = (&pair[0], &pair[1]);
        if trail_a == trail_b {
            problem(
                ProblemKind::ChainBroken,
                key,
                "a second chain start: it has no previous digest, but an older chain of its trail exists".into(),
            );
        }
    }
    for (prev, next) in &successors {
        if next.len() > 1 {
            problem(
                ProblemKind::ChainBroken,
                prev,
                format!("more than one digest follows it: {}", next.join(", ")),
            );
        }
    }

    // every log file the valid digests list
    let mut listed: BTreeMap<String, String> = BTreeMap::new();
    let mut newest_end: Option<String> = None;
    for d in digests.values().filter(|d| d.valid) {
        let f = d.file.as_ref().expect("valid digests parsed");
        for lf in &f.log_files {
            listed.insert(lf.s3_object.clone(), lf.hash_value.clone());
        }
        if newest_end.as_ref().is_none_or(|n| &f.digest_end_time > n) {
            newest_end = Some(f.digest_end_time.clone());
        }
    }
    let present: Vec<String> = store
        .list(&trail.log_prefix())
        .await?
        .into_iter()
        .map(|o| o.key)
        .collect();
    report.log_files = present.len();
    for (key, hash) in &listed {
        match store.get(key).await {
            Ok(got) => match gunzip(&got.body) {
                Ok(body) if &sha256_hex(&body) == hash => report.log_files_valid += 1,
                Ok(_) => problem(
                    ProblemKind::LogFileModified,
                    key,
                    "its SHA-256 is not the one its digest holds".into(),
                ),
                Err(_) => problem(
                    ProblemKind::LogFileModified,
                    key,
                    "no longer a gzip file".into(),
                ),
            },
            Err(e) if e.kind() == crate::ErrorKind::NotFound => problem(
                ProblemKind::LogFileDeleted,
                key,
                "listed in a digest, missing from the trail".into(),
            ),
            Err(e) => return Err(e),
        }
    }
    // a file no digest lists: inserted when older than the newest digest, else not covered yet
    let newest_minute = newest_end.as_deref().and_then(key_minute_of_time);
    for key in present.iter().filter(|k| !listed.contains_key(*k)) {
        let file_minute = log_key_minute(key);
        match (&file_minute, &newest_minute) {
            (Some(fm), Some(nm)) if fm < nm => problem(
                ProblemKind::LogFileInserted,
                key,
                "no digest lists it, and it is older than the newest digest".into(),
            ),
            (None, _) => problem(
                ProblemKind::LogFileInserted,
                key,
                "not a log file name CloudTrail would deliver".into(),
            ),
            _ => report.not_yet_digested.push(key.clone()),
        }
    }
    report.problems = problems.into_iter().collect();
    Ok(report)
}

/// `YYYYMMDDTHHmm` of a log file key (`..._20240102T0304Z_<random>.json.gz`).
fn log_key_minute(key: &str) -> Option<String> {
    let name = key.rsplit('/').next()?;
    let part = name.split('_').nth(3)?;
    (part.len() == 14 && part.ends_with('Z')).then(|| part[..13].to_string())
}

fn key_minute_of_time(t: &str) -> Option<String> {
    let t = DateTime::parse_from_rfc3339(t).ok()?.with_timezone(&Utc);
    Some(t.format("%Y%m%dT%H%M").to_string())
}
