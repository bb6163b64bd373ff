//! A clamd that tarn starts itself, on a unix socket, with a configuration it writes: the one
//! way `tarn serve` (when no clamd is given) and the scan Lambda (on the definitions it fetched
//! from its private mirror) run ClamAV. The process is tied to ours: it is killed when the
//! [`ManagedClamd`] is dropped, and by the kernel when our process dies.

use super::{ClamdScanner, EngineVersion, ScanError, ScanVerdict, Scanner, Timeouts};
use crate::error::{LakeError, Result};
use async_trait::async_trait;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::info;

/// What clamd could not look into is reported, never OK: a part past its limits as
/// `Heuristics.Limits.Exceeded.*`, encrypted archives and documents as `Heuristics.Encrypted.*`
/// (the scan stage quarantines both as unscannable). MaxFileSize is above MaxScanSize: clamd
/// cuts an archive member past MaxFileSize short without an alert, while more than MaxScanSize
/// of content (a member past it included) raises one.
pub const LIMITS: &str = "HeuristicAlerts yes\nAlertExceedsMax yes\nAlertEncrypted yes\n";

/// clamd's size limits for documents up to `largest` bytes (the largest table's `max_bytes`), in
/// whole MiB as clamd reads them: `StreamMaxLength` `largest` plus 2 MiB (12M for the 10 MiB of
/// one request), `MaxScanSize` at least that and at least 200M, `MaxFileSize` 1M above it (clamd
/// cuts a member past it short without an alert, while more than MaxScanSize raises one). The
/// configuration lines.
pub fn size_limits(largest: u64) -> String {
    let stream = largest.div_ceil(1 << 20) + 2;
    let scan = stream.max(200);
    format!(
        "StreamMaxLength {stream}M\nMaxScanSize {scan}M\nMaxFileSize {}M\n",
        scan + 1
    )
}

/// How long clamd may take to load its database and answer (the full official database takes
/// 20 to 60 s on one vCPU).
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(180);

/// Where a managed clamd runs and what it loads.
#[derive(Debug, Clone)]
pub struct ClamdSetup {
    /// the clamd binary
    pub binary: PathBuf,
    /// its own directory: socket (`clamd.sock`), `clamd.conf`, `clamd.log`, `clamd.pid`
    pub dir: PathBuf,
    /// the signature database directory (`*.cvd`, `*.cld`, or tarn's test signatures)
    pub database: PathBuf,
    /// how long to wait for clamd to answer after starting it
    pub start_timeout: Duration,
    /// the largest document it is sent (the largest table's `max_bytes`): its size limits
    /// follow ([`size_limits`])
    pub largest_document: u64,
}

impl ClamdSetup {
    /// clamd as installed (found with [`find_clamd`]) in `dir`, loading `database`; `None` when
    /// ClamAV is not installed.
    pub fn installed(dir: impl Into<PathBuf>, database: impl Into<PathBuf>) -> Option<Self> {
        Some(Self {
            binary: find_clamd()?,
            dir: dir.into(),
            database: database.into(),
            start_timeout: DEFAULT_START_TIMEOUT,
            largest_document: tarn_catalog::schemas::MAX_DOCUMENT_BYTES,
        })
    }

    /// The same clamd, for documents up to `bytes` (the largest table's `max_bytes`).
    pub fn for_documents_up_to(mut self, bytes: u64) -> Self {
        self.largest_document = bytes;
        self
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("clamd.sock")
    }

    pub fn log(&self) -> PathBuf {
        self.dir.join("clamd.log")
    }

    /// clamd's configuration: foreground, its unix socket (owner only), the database, where it
    /// writes scanned streams (`scan_tmp`), its log and pid files, the size limits of
    /// [`size_limits`] and [`LIMITS`]. As root (a developer machine, CI), clamd is told to stay
    /// root.
    pub fn config_text(&self, scan_tmp: &Path, as_root: bool) -> String {
        format!(
            "Foreground yes\nLocalSocket {}\nLocalSocketMode 600\nDatabaseDirectory {}\nTemporaryDirectory {}\nLogFile {}\nPidFile {}\nMaxThreads 4\n{}{LIMITS}{}",
            self.socket().display(),
            self.database.display(),
            scan_tmp.display(),
            self.log().display(),
            self.dir.join("clamd.pid").display(),
            size_limits(self.largest_document),
            if as_root { "User root\n" } else { "" },
        )
    }
}

/// The clamd binary on `PATH`, or in `/usr/sbin` or `/usr/local/sbin`.
pub fn find_clamd() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|d| d.join("clamd"))
        .find(|p| p.is_file())
}

/// Whether `dir` holds a ClamAV signature database (`*.cvd` or `*.cld`).
pub fn has_definitions(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten().any(|e| {
                e.path()
                    .extension()
                    .is_some_and(|x| x == "cvd" || x == "cld")
            })
        })
        .unwrap_or(false)
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// Where clamd writes the streams it scans: a private directory in memory (`/dev/shm`) when
/// there is one, so scanned documents never reach the disk and scans cost no journal writes;
/// else `<dir>/tmp`. Removed when the clamd stops.
#[derive(Debug)]
struct ScanTmp {
    path: PathBuf,
    remove: bool,
}

impl ScanTmp {
    fn create(fallback: PathBuf) -> std::io::Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        let shm = Path::new("/dev/shm");
        if shm.is_dir() {
            let path = shm.join(format!("tarn-clamd-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            if std::fs::DirBuilder::new().mode(0o700).create(&path).is_ok() {
                return Ok(Self { path, remove: true });
            }
        }
        std::fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(&fallback)?;
        Ok(Self {
            path: fallback,
            remove: false,
        })
    }
}

impl Drop for ScanTmp {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A running clamd started by [`ManagedClamd::start`]; a [`Scanner`] itself (holding it keeps
/// clamd running).
#[derive(Debug)]
pub struct ManagedClamd {
    /// `unix:///…/clamd.sock`
    pub addr: String,
    pub scanner: Arc<ClamdScanner>,
    /// how long clamd took from spawn to its first answer (database load included)
    pub started_in: Duration,
    _child: tokio::process::Child,
    _scan_tmp: ScanTmp,
}

fn io(what: &str, path: &Path, e: std::io::Error) -> LakeError {
    LakeError::Clamd(format!("{what} {}: {e}", path.display()))
}

impl ManagedClamd {
    /// Writes clamd's configuration, starts it and waits until it answers (at most
    /// `setup.start_timeout`).
    pub async fn start(setup: &ClamdSetup) -> Result<Self> {
        std::fs::create_dir_all(&setup.dir).map_err(|e| io("creating", &setup.dir, e))?;
        let sock = setup.socket();
        let _ = std::fs::remove_file(&sock);
        let scan_tmp =
            ScanTmp::create(setup.dir.join("tmp")).map_err(|e| io("creating", &setup.dir, e))?;
        let conf = setup.dir.join("clamd.conf");
        std::fs::write(&conf, setup.config_text(&scan_tmp.path, is_root()))
            .map_err(|e| io("writing", &conf, e))?;
        let mut cmd = tokio::process::Command::new(&setup.binary);
        // SAFETY: prctl is async-signal-safe; it only asks the kernel to kill clamd when we
        // die, so even a SIGKILLed tarn leaves no clamd behind
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let began = Instant::now();
        let mut child = cmd
            .arg("-c")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| io("starting", &setup.binary, e))?;
        let addr = format!("unix://{}", sock.display());
        let scanner = Arc::new(
            ClamdScanner::connect(&addr, Timeouts::default())
                .map_err(|e| LakeError::Clamd(e.to_string()))?,
        );
        loop {
            if sock.exists() && scanner.ping().await.is_ok() {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(LakeError::Clamd(format!(
                    "clamd exited ({status}) before answering; see {}",
                    setup.log().display()
                )));
            }
            if began.elapsed() > setup.start_timeout {
                return Err(LakeError::Clamd(format!(
                    "clamd did not answer within {:?}; see {}",
                    setup.start_timeout,
                    setup.log().display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let started_in = began.elapsed();
        info!(%addr, ?started_in, "started clamd");
        Ok(Self {
            addr,
            scanner,
            started_in,
            _child: child,
            _scan_tmp: scan_tmp,
        })
    }
}

impl ManagedClamd {
    /// Asks clamd to load its database directory again (after new definitions were written
    /// there); scans go on with the old database while the new one loads.
    pub async fn reload(&self) -> Result<()> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let path = self.addr.trim_start_matches("unix://");
        let talk = async {
            let mut s = tokio::net::UnixStream::connect(path).await?;
            s.write_all(b"zRELOAD\0").await?;
            let mut answer = Vec::new();
            s.read_to_end(&mut answer).await?;
            Ok::<_, std::io::Error>(answer)
        };
        let answer = tokio::time::timeout(Duration::from_secs(30), talk)
            .await
            .map_err(|_| LakeError::Clamd("no answer to RELOAD within 30 s".into()))?
            .map_err(|e| LakeError::Clamd(format!("RELOAD: {e}")))?;
        let text = String::from_utf8_lossy(&answer);
        if text.trim_end_matches(['\0', '\n']) == "RELOADING" {
            info!(addr = %self.addr, "clamd reloads its database");
            Ok(())
        } else {
            Err(LakeError::Clamd(format!(
                "unexpected answer to RELOAD: {text:?}"
            )))
        }
    }
}

#[async_trait]
impl Scanner for ManagedClamd {
    async fn scan(&self, body: &[u8]) -> std::result::Result<ScanVerdict, ScanError> {
        self.scanner.scan(body).await
    }
    async fn version(&self) -> std::result::Result<EngineVersion, ScanError> {
        self.scanner.version().await
    }
    async fn ping(&self) -> std::result::Result<(), ScanError> {
        self.scanner.ping().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_size_limits_follow_the_largest_document() {
        let lines = |b: u64| size_limits(b).lines().map(String::from).collect::<Vec<_>>();
        assert_eq!(
            lines(10 << 20),
            [
                "StreamMaxLength 12M",
                "MaxScanSize 200M",
                "MaxFileSize 201M"
            ]
        );
        assert_eq!(
            lines(1 << 30),
            [
                "StreamMaxLength 1026M",
                "MaxScanSize 1026M",
                "MaxFileSize 1027M"
            ]
        );
        assert_eq!(lines(1)[0], "StreamMaxLength 3M");
        let setup = ClamdSetup {
            binary: "/usr/sbin/clamd".into(),
            dir: "/tmp/c".into(),
            database: "/tmp/c/db".into(),
            start_timeout: DEFAULT_START_TIMEOUT,
            largest_document: 0,
        }
        .for_documents_up_to(1 << 30);
        let text = setup.config_text(Path::new("/tmp/c/tmp"), false);
        assert!(text.lines().any(|l| l == "StreamMaxLength 1026M"), "{text}");
    }

    #[test]
    fn the_config_reports_what_clamd_cannot_read() {
        let s = ClamdSetup {
            binary: "/usr/sbin/clamd".into(),
            dir: "/tmp/c".into(),
            database: "/tmp/c/db".into(),
            start_timeout: DEFAULT_START_TIMEOUT,
            largest_document: 10 << 20,
        };
        let text = s.config_text(Path::new("/tmp/c/tmp"), false);
        for line in [
            "LocalSocket /tmp/c/clamd.sock",
            "LocalSocketMode 600",
            "DatabaseDirectory /tmp/c/db",
            "TemporaryDirectory /tmp/c/tmp",
            "AlertExceedsMax yes",
            "AlertEncrypted yes",
            "HeuristicAlerts yes",
            "StreamMaxLength 12M",
            "MaxScanSize 200M",
            "MaxFileSize 201M",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in {text}");
        }
        assert!(!text.contains("User root"));
        assert!(
            s.config_text(Path::new("/x"), true)
                .lines()
                .any(|l| l == "User root")
        );
    }

    #[test]
    fn definitions_are_cvd_or_cld_files() {
        let d = tempfile::tempdir().unwrap();
        assert!(!has_definitions(d.path()));
        std::fs::write(d.path().join("tarn-test.hdb"), "x").unwrap();
        assert!(!has_definitions(d.path()));
        std::fs::write(d.path().join("daily.cld"), "x").unwrap();
        assert!(has_definitions(d.path()));
    }
}
