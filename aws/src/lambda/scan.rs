//! The scan function's own clamd: with no `clamd_addr`, the scan function fetches ClamAV's
//! definitions from the private mirror (`clamav_definitions`, which the updater function
//! refreshes) into `/tmp`, starts clamd on a unix socket there through
//! [`tarn_lake::scan::managed`] (the code `tarn serve` starts its clamd with) and keeps it warm
//! across invocations.
//!
//! - [`MirroredClamd`]: that clamd, started on the first batch (not at init: loading the full
//!   database takes longer than Lambda's 10 s init phase), checking the mirror again every
//!   [`DEFAULT_REFRESH`] while warm and reloading clamd when the definitions changed;
//! - [`ScanFunction`]: the scan stage's function, which fails a whole batch (every message
//!   retried later, none quarantined) while clamd cannot be started.

use super::events::{batch_response, messages};
use super::pipeline::StageFunction;
use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tarn_core::ObjectStore;
use tarn_lake::scan::managed::ClamdSetup;
use tarn_lake::scan::{EngineVersion, ManagedClamd, ScanError, ScanVerdict, Scanner};
use tracing::{error, info, warn};

/// How often a warm scan function looks at the mirror for new definitions (the updater runs
/// hourly).
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(15 * 60);

/// Where the scan function keeps definitions and clamd's files by default.
pub const DEFAULT_DIR: &str = "/tmp/tarn-clamav";

/// The file name extensions of ClamAV signature databases: the mirror's other objects (the
/// updater's `freshclam.dat`, its run marker) are not fetched.
const DATABASE_EXTENSIONS: [&str; 30] = [
    "cvd", "cld", "cud", "hdb", "hsb", "hdu", "hsu", "mdb", "msb", "mdu", "msu", "ndb", "ndu",
    "ldb", "ldu", "idb", "cdb", "cat", "crb", "fp", "sfp", "ftm", "ign", "ign2", "pdb", "gdb",
    "wdb", "yar", "yara", "cbc",
];

/// Whether the mirror's object `key` is a signature database clamd loads.
pub fn is_database(key: &str) -> bool {
    !key.contains('/')
        && key
            .rsplit_once('.')
            .is_some_and(|(stem, ext)| !stem.is_empty() && DATABASE_EXTENSIONS.contains(&ext))
}

/// The version in a `.cvd`/`.cld` file's header (`ClamAV-VDB:<date>:<version>:...`).
pub fn cvd_version(header: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(header.get(..header.len().min(512))?).ok()?;
    let rest = text.strip_prefix("ClamAV-VDB:")?;
    // the date holds colons of its own (`14 Mar 2024 07-52 -0400`): the version follows it
    rest.split(':').nth(1)?.trim().parse().ok()
}

/// What one fetch of the mirror did, for the logs and the measurements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fetched {
    /// files written (new or changed)
    pub files: usize,
    pub bytes: u64,
    /// files removed (gone from the mirror, or an older `.cvd`/`.cld` twin)
    pub removed: usize,
}

/// Brings `db` in step with the mirror's signature databases: writes new and changed files
/// (each through a temporary name and a rename, so clamd never reads half a file), removes the
/// ones the mirror no longer has. `known` holds each file's mirror etag and is updated. Of a
/// `.cvd` and a `.cld` of one database, only the higher version is kept.
pub async fn sync_definitions(
    mirror: &dyn ObjectStore,
    db: &Path,
    known: &mut BTreeMap<String, String>,
) -> Result<Fetched, String> {
    std::fs::create_dir_all(db).map_err(|e| format!("creating {}: {e}", db.display()))?;
    let listed = mirror
        .list("")
        .await
        .map_err(|e| format!("listing the definitions mirror: {e}"))?;
    let wanted: BTreeMap<String, String> = listed
        .into_iter()
        .filter(|o| is_database(&o.key))
        .map(|o| (o.key, o.etag))
        .collect();
    if wanted.is_empty() {
        return Err(
            "the definitions mirror holds no signature database: run the updater function once (see aws/README.md)"
                .into(),
        );
    }
    let mut done = Fetched::default();
    for (key, etag) in &wanted {
        if known.get(key) == Some(etag) {
            continue;
        }
        let got = mirror
            .get(key)
            .await
            .map_err(|e| format!("fetching {key} from the definitions mirror: {e}"))?;
        let tmp = db.join(format!(".{key}.part"));
        std::fs::write(&tmp, &got.body).map_err(|e| format!("writing {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, db.join(key))
            .map_err(|e| format!("renaming {}: {e}", tmp.display()))?;
        done.files += 1;
        done.bytes += got.body.len() as u64;
        known.insert(key.clone(), etag.clone());
    }
    let gone: Vec<String> = known
        .keys()
        .filter(|k| !wanted.contains_key(*k))
        .cloned()
        .collect();
    for key in gone {
        known.remove(&key);
        if std::fs::remove_file(db.join(&key)).is_ok() {
            done.removed += 1;
        }
    }
    // a database as both .cvd and .cld (the updater between its upload and its delete): the
    // older file goes from the directory (its etag stays known, so it is not fetched again)
    for key in wanted.keys().filter(|k| k.ends_with(".cvd")) {
        let twin = format!("{}.cld", key.trim_end_matches(".cvd"));
        if wanted.contains_key(&twin) {
            let version = |k: &str| -> Option<u64> {
                let mut head = vec![0u8; 512];
                let mut f = std::fs::File::open(db.join(k)).ok()?;
                let n = std::io::Read::read(&mut f, &mut head).ok()?;
                cvd_version(&head[..n])
            };
            let older = if version(&twin) >= version(key) {
                key.clone()
            } else {
                twin
            };
            if std::fs::remove_file(db.join(&older)).is_ok() {
                done.removed += 1;
            }
        }
    }
    Ok(done)
}

/// A cold start of the scan function's clamd, measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColdStart {
    pub fetched: Fetched,
    /// listing and fetching the definitions from the mirror
    pub fetch: Duration,
    /// starting clamd until it answers (its database load)
    pub start: Duration,
}

struct Warm {
    clamd: ManagedClamd,
    known: BTreeMap<String, String>,
    checked: Instant,
}

/// A clamd on the definitions mirror, started when first needed and kept warm. A [`Scanner`]:
/// every call makes sure clamd runs first.
pub struct MirroredClamd {
    mirror: Arc<dyn ObjectStore>,
    dir: PathBuf,
    /// the largest document it is sent: clamd's size limits follow
    largest_document: u64,
    refresh: Duration,
    warm: tokio::sync::Mutex<Option<Warm>>,
    scanner: RwLock<Option<Arc<dyn Scanner>>>,
    cold_start: RwLock<Option<ColdStart>>,
}

impl std::fmt::Debug for MirroredClamd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MirroredClamd")
            .field("mirror", &self.mirror.url(""))
            .field("dir", &self.dir)
            .finish()
    }
}

impl MirroredClamd {
    /// Definitions and clamd's files under `dir` (`/tmp/tarn-clamav` in the function).
    pub fn new(mirror: Arc<dyn ObjectStore>, dir: impl Into<PathBuf>) -> Self {
        Self {
            mirror,
            dir: dir.into(),
            largest_document: tarn_catalog::schemas::MAX_DOCUMENT_BYTES,
            refresh: DEFAULT_REFRESH,
            warm: tokio::sync::Mutex::new(None),
            scanner: RwLock::new(None),
            cold_start: RwLock::new(None),
        }
    }

    /// clamd for documents up to `bytes` (the largest table's `max_bytes`).
    pub fn for_documents_up_to(mut self, bytes: u64) -> Self {
        self.largest_document = bytes;
        self
    }

    /// Look at the mirror for new definitions at most this often while warm.
    pub fn with_refresh(mut self, every: Duration) -> Self {
        self.refresh = every;
        self
    }

    /// The last cold start's measurements.
    pub fn cold_start(&self) -> Option<ColdStart> {
        self.cold_start
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Starts clamd when it does not run (fetching the definitions first), else reloads it
    /// when the mirror changed since the last look (at most every `refresh`).
    pub async fn ensure_ready(&self) -> Result<(), String> {
        let mut warm = self.warm.lock().await;
        if let Some(w) = warm.as_mut() {
            if w.checked.elapsed() < self.refresh {
                return Ok(());
            }
            w.checked = Instant::now();
            // a mirror that cannot be read now leaves clamd on the definitions it has
            match sync_definitions(self.mirror.as_ref(), &self.dir.join("db"), &mut w.known).await {
                Ok(f) if f.files + f.removed > 0 => {
                    info!(
                        files = f.files,
                        bytes = f.bytes,
                        removed = f.removed,
                        "new definitions from the mirror"
                    );
                    w.clamd.reload().await.map_err(|e| e.to_string())?;
                }
                Ok(_) => {}
                Err(e) => {
                    warn!(error = %e, "the definitions mirror could not be read; clamd keeps its definitions")
                }
            }
            return Ok(());
        }
        let began = Instant::now();
        let db = self.dir.join("db");
        // a process restarted in the same execution environment finds /tmp as it was: start
        // from the mirror alone, so no database it no longer has is loaded
        let _ = std::fs::remove_dir_all(&db);
        let mut known = BTreeMap::new();
        let fetched = sync_definitions(self.mirror.as_ref(), &db, &mut known).await?;
        let fetch = began.elapsed();
        let setup = ClamdSetup::installed(self.dir.join("clamd"), &db)
            .ok_or(
                "clamd is not installed in this image (the scan function's image installs it; see aws/scan/Dockerfile)",
            )?
            .for_documents_up_to(self.largest_document);
        let clamd = ManagedClamd::start(&setup)
            .await
            .map_err(|e| e.to_string())?;
        let cold = ColdStart {
            fetched,
            fetch,
            start: clamd.started_in,
        };
        info!(
            files = cold.fetched.files,
            bytes = cold.fetched.bytes,
            fetch_ms = cold.fetch.as_millis() as u64,
            start_ms = cold.start.as_millis() as u64,
            "clamd is warm"
        );
        *self.scanner.write().unwrap_or_else(|e| e.into_inner()) =
            Some(clamd.scanner.clone() as Arc<dyn Scanner>);
        *self.cold_start.write().unwrap_or_else(|e| e.into_inner()) = Some(cold);
        *warm = Some(Warm {
            clamd,
            known,
            checked: Instant::now(),
        });
        Ok(())
    }

    async fn scanner(&self) -> Result<Arc<dyn Scanner>, ScanError> {
        self.ensure_ready().await.map_err(|e| ScanError::Connect {
            addr: format!("clamd on {}", self.mirror.url("")),
            source: std::io::Error::other(e),
        })?;
        self.scanner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(ScanError::Closed)
    }
}

#[async_trait]
impl Scanner for MirroredClamd {
    async fn scan(&self, body: &[u8]) -> Result<ScanVerdict, ScanError> {
        self.scanner().await?.scan(body).await
    }
    async fn version(&self) -> Result<EngineVersion, ScanError> {
        self.scanner().await?.version().await
    }
    async fn ping(&self) -> Result<(), ScanError> {
        self.scanner().await?.ping().await
    }
}

/// The scan stage as a Lambda function: the [`StageFunction`] with its scanner, and, when the
/// scanner is its own clamd, that clamd made ready before each batch.
#[derive(Debug, Clone)]
pub struct ScanFunction {
    pub stage: StageFunction,
    pub clamd: Option<Arc<MirroredClamd>>,
}

impl ScanFunction {
    /// Handles a batch. While clamd cannot be started, every message is reported failed: SQS
    /// delivers them again later (then to the dead-letter queue), nothing is quarantined for a
    /// scanner that never ran.
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        if let Some(c) = &self.clamd
            && let Err(e) = c.ensure_ready().await
        {
            error!(error = %e, "clamd is not ready; the whole batch will be retried");
            return batch_response(messages(&event).into_iter().map(|m| m.message_id));
        }
        self.stage.handle(event).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_signature_databases_are_fetched() {
        for k in [
            "main.cvd",
            "daily.cld",
            "bytecode.cvd",
            "tarn-test.hdb",
            "x.ign2",
        ] {
            assert!(is_database(k), "{k}");
        }
        for k in [
            "freshclam.dat",
            "tarn-update.json",
            "a/main.cvd",
            ".cvd",
            "README",
        ] {
            assert!(!is_database(k), "{k}");
        }
    }

    #[test]
    fn cvd_headers_carry_their_version() {
        let h = b"ClamAV-VDB:14 Mar 2024 07-52 -0400:27214:2066155:90:sig:builder:1710417162";
        assert_eq!(cvd_version(h), Some(27214));
        assert_eq!(cvd_version(b"PK\x03\x04"), None);
    }

    #[tokio::test]
    async fn definitions_follow_the_mirror() {
        use bytes::Bytes;
        let root = tempfile::tempdir().unwrap();
        let mirror =
            tarn_core::LocalObjectStore::open("mirror", root.path().join("mirror")).unwrap();
        let db = root.path().join("db");
        let put = |k: &'static str, v: &'static str| {
            let m = &mirror;
            async move {
                m.put(k, Bytes::from_static(v.as_bytes()), Default::default())
                    .await
                    .unwrap()
            }
        };
        let mut known = BTreeMap::new();
        let e = sync_definitions(&mirror, &db, &mut known)
            .await
            .unwrap_err();
        assert!(e.contains("run the updater"), "{e}");

        put("daily.cvd", "ClamAV-VDB:d:100:1:90:x").await;
        put("freshclam.dat", "state").await;
        let f = sync_definitions(&mirror, &db, &mut known).await.unwrap();
        assert_eq!((f.files, f.removed), (1, 0));
        assert!(db.join("daily.cvd").exists() && !db.join("freshclam.dat").exists());
        // nothing changed: nothing fetched
        let f = sync_definitions(&mirror, &db, &mut known).await.unwrap();
        assert_eq!(f, Fetched::default());
        // the updater wrote a newer .cld and has not deleted the .cvd yet
        put("daily.cld", "ClamAV-VDB:d:101:1:90:x").await;
        let f = sync_definitions(&mirror, &db, &mut known).await.unwrap();
        assert_eq!((f.files, f.removed), (1, 1));
        assert!(db.join("daily.cld").exists() && !db.join("daily.cvd").exists());
        mirror.delete("daily.cvd").await.unwrap();
        let f = sync_definitions(&mirror, &db, &mut known).await.unwrap();
        assert_eq!(f, Fetched::default());
        assert_eq!(known.keys().collect::<Vec<_>>(), ["daily.cld"]);
        assert!(db.join("daily.cld").exists());
    }
}
