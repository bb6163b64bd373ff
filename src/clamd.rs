//! A clamd that `tarn serve`/`tarn demo` start themselves when no `--clamd` is given and ClamAV
//! is installed: its socket, config and log live in `<data_dir>/clamd/`, it stops with tarn.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tarn_lake::scan::{ClamdScanner, Scanner, Timeouts};
use tracing::{info, warn};

/// tarn's own test signatures, used when the machine's ClamAV has no virus definitions.
const TEST_SIGNATURES: [(&str, &str); 2] = [
    (
        "tarn-test.hdb",
        include_str!("../testdata/clamav/tarn-test.hdb"),
    ),
    (
        "tarn-test.ndb",
        include_str!("../testdata/clamav/tarn-test.ndb"),
    ),
];

/// What clamd could not look into is reported, never OK: a part past its limits as
/// `Heuristics.Limits.Exceeded.*`, encrypted archives and documents as `Heuristics.Encrypted.*`
/// (the scan stage quarantines both as unscannable). MaxFileSize is above MaxScanSize: clamd
/// cuts an archive member past MaxFileSize short without an alert, while more than MaxScanSize
/// of content (a member past it included) raises one.
const LIMITS: &str = "HeuristicAlerts yes\nAlertExceedsMax yes\nAlertEncrypted yes\nMaxScanSize 200M\nMaxFileSize 201M\n";

pub struct ManagedClamd {
    pub addr: String,
    pub scanner: Arc<ClamdScanner>,
    /// `true` when clamd runs on tarn's test signatures only (no virus definitions installed)
    pub test_signatures_only: bool,
    _child: tokio::process::Child,
    _scan_tmp: ScanTmp,
}

/// Where clamd writes the streams it scans: a private directory in memory (`/dev/shm`) when
/// there is one, so scanned documents never reach the disk and scans cost no journal writes;
/// else `<data dir>/clamd/tmp`. Removed when tarn stops its clamd.
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

fn find_clamd() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|d| d.join("clamd"))
        .find(|p| p.is_file())
}

fn has_definitions(dir: &Path) -> bool {
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

/// Starts clamd when it is installed; `Ok(None)` when it is not.
pub async fn start(data_dir: &Path) -> anyhow::Result<Option<ManagedClamd>> {
    let Some(bin) = find_clamd() else {
        return Ok(None);
    };
    let dir = data_dir.join("clamd").canonicalize().or_else(|_| {
        std::fs::create_dir_all(data_dir.join("clamd"))?;
        data_dir.join("clamd").canonicalize()
    })?;
    let system_db = PathBuf::from("/var/lib/clamav");
    let (db, test_only) = if has_definitions(&system_db) {
        (system_db, false)
    } else {
        let db = dir.join("db");
        std::fs::create_dir_all(&db)?;
        for (name, text) in TEST_SIGNATURES {
            std::fs::write(db.join(name), text)?;
        }
        warn!(
            "ClamAV has no virus definitions (run freshclam); clamd starts with tarn's test signatures only"
        );
        (db, true)
    };
    let sock = dir.join("clamd.sock");
    let _ = std::fs::remove_file(&sock);
    let user = if std::env::var("USER").as_deref() == Ok("root") || is_root() {
        "User root\n"
    } else {
        ""
    };
    let scan_tmp = ScanTmp::create(dir.join("tmp"))?;
    let conf = dir.join("clamd.conf");
    std::fs::write(
        &conf,
        format!(
            "Foreground yes\nLocalSocket {}\nLocalSocketMode 600\nDatabaseDirectory {}\nTemporaryDirectory {}\nLogFile {}\nPidFile {}\nStreamMaxLength 12M\nMaxThreads 4\n{LIMITS}{user}",
            sock.display(),
            db.display(),
            scan_tmp.path.display(),
            dir.join("clamd.log").display(),
            dir.join("clamd.pid").display()
        ),
    )?;
    let mut cmd = tokio::process::Command::new(&bin);
    // SAFETY: prctl is async-signal-safe; it only asks the kernel to kill clamd when tarn dies,
    // so even a SIGKILLed tarn leaves no clamd behind
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let child = cmd
        .arg("-c")
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let addr = format!("unix://{}", sock.display());
    let scanner = Arc::new(ClamdScanner::connect(&addr, Timeouts::default())?);
    let start = Instant::now();
    loop {
        if sock.exists() && scanner.ping().await.is_ok() {
            break;
        }
        if start.elapsed() > Duration::from_secs(120) {
            bail!(
                "clamd did not answer within 120 s; see {}",
                dir.join("clamd.log").display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    info!(%addr, test_signatures_only = test_only, "started clamd");
    Ok(Some(ManagedClamd {
        addr,
        scanner,
        test_signatures_only: test_only,
        _child: child,
        _scan_tmp: scan_tmp,
    }))
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}
