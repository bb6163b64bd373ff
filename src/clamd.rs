//! A clamd that `tarn serve`/`tarn demo` start themselves when no `--clamd` is given and ClamAV
//! is installed: its socket, config and log live in `<data_dir>/clamd/`, it stops with tarn.
//! Started through [`tarn_lake::scan::managed`], the code the scan Lambda starts its clamd with.

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tarn_lake::scan::managed::{self, ClamdSetup};
use tarn_lake::scan::{ClamdScanner, ManagedClamd as Running};
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

pub struct ManagedClamd {
    pub addr: String,
    pub scanner: Arc<ClamdScanner>,
    /// `true` when clamd runs on tarn's test signatures only (no virus definitions installed)
    pub test_signatures_only: bool,
    _running: Running,
}

/// Starts clamd when it is installed, for documents up to `largest_document` bytes (its size
/// limits follow); `Ok(None)` when it is not installed.
pub async fn start(data_dir: &Path, largest_document: u64) -> anyhow::Result<Option<ManagedClamd>> {
    let dir = data_dir.join("clamd").canonicalize().or_else(|_| {
        std::fs::create_dir_all(data_dir.join("clamd"))?;
        data_dir.join("clamd").canonicalize()
    })?;
    let system_db = PathBuf::from("/var/lib/clamav");
    let (db, test_only) = if managed::has_definitions(&system_db) {
        (system_db, false)
    } else {
        (dir.join("db"), true)
    };
    let Some(setup) = ClamdSetup::installed(&dir, &db) else {
        return Ok(None);
    };
    let setup = setup.for_documents_up_to(largest_document);
    if test_only {
        std::fs::create_dir_all(&db)?;
        for (name, text) in TEST_SIGNATURES {
            std::fs::write(db.join(name), text)?;
        }
        warn!(
            "ClamAV has no virus definitions (run freshclam); clamd starts with tarn's test signatures only"
        );
    }
    let running = Running::start(&setup)
        .await
        .with_context(|| format!("starting {}", setup.binary.display()))?;
    info!(addr = %running.addr, test_signatures_only = test_only, "tarn's own clamd is up");
    Ok(Some(ManagedClamd {
        addr: running.addr.clone(),
        scanner: running.scanner.clone(),
        test_signatures_only: test_only,
        _running: running,
    }))
}
