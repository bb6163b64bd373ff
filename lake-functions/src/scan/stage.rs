//! [`ScanStage`]: the pipeline stage around a [`Scanner`].

use super::{ScanVerdict, Scanner};
use crate::stage::{Document, Stage, StageError, Verdict};
use async_trait::async_trait;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The `scan_result` of a document the engine could not look at whole.
pub const UNSCANNABLE: &str = "unscannable";

/// The `scan_result` of a document stored by a deployment that runs no scan stage (an explicit
/// choice: `ScanMode: none` on AWS, `pipeline.stages` without `scan` locally). Its content is
/// refused unless the deployment says to serve unscanned documents.
pub const SKIPPED: &str = "skipped";

/// How long an engine version read from the scanner is used before it is asked again (clamd
/// reloads its database without restarting).
pub const DEFAULT_VERSION_REFRESH: Duration = Duration::from_secs(60);

/// Scans every document's bytes, whatever its type (JSON too: it is bytes from outside).
/// - clean: `scan_result = "clean"`, `scan_engine` set (`clamav 1.4.2/27000`), continue;
/// - infected: `scan_result` = the signature, [`Verdict::Quarantine`] `infected: <signature>`;
/// - the engine could not look at every part (past its limits, encrypted):
///   `scan_result = "unscannable"`, [`Verdict::Quarantine`] `unscannable: the scan could not
///   complete: ...` naming what the engine met;
/// - the scan did not complete (scanner down, timeout, size limit, error, garbled answer):
///   [`StageError::Transient`], both fields left unset; the runner retries, then quarantines.
///   Never clean.
pub struct ScanStage {
    scanner: Arc<dyn Scanner>,
    version_refresh: Duration,
    engine: Mutex<Option<(String, Instant)>>,
}

impl std::fmt::Debug for ScanStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanStage")
            .field("scanner", &self.scanner)
            .finish()
    }
}

impl ScanStage {
    pub fn new(scanner: Arc<dyn Scanner>) -> Self {
        Self {
            scanner,
            version_refresh: DEFAULT_VERSION_REFRESH,
            engine: Mutex::new(None),
        }
    }

    /// Ask the scanner for its version at most this often (zero: before every document).
    pub fn with_version_refresh(mut self, every: Duration) -> Self {
        self.version_refresh = every;
        self
    }

    pub fn scanner(&self) -> &Arc<dyn Scanner> {
        &self.scanner
    }

    async fn engine(&self) -> Result<String, StageError> {
        if let Some((engine, at)) = &*self.engine.lock().unwrap_or_else(|e| e.into_inner())
            && at.elapsed() < self.version_refresh
        {
            return Ok(engine.clone());
        }
        let engine = self
            .scanner
            .version()
            .await
            .map_err(|e| StageError::Transient(format!("scanner version: {e}")))?
            .to_string();
        *self.engine.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((engine.clone(), Instant::now()));
        Ok(engine)
    }
}

#[async_trait]
impl Stage for ScanStage {
    fn name(&self) -> &'static str {
        "scan"
    }

    async fn process(&self, doc: &mut Document) -> Result<Verdict, StageError> {
        // a re-run must not keep an earlier run's result
        doc.scan_engine = None;
        doc.scan_result = None;
        let verdict = self
            .scanner
            .scan(&doc.body)
            .await
            .map_err(|e| StageError::Transient(format!("scan did not complete: {e}")))?;
        let engine = self.engine().await?;
        doc.scan_engine = Some(engine);
        match verdict {
            ScanVerdict::Clean => {
                doc.scan_result = Some("clean".into());
                Ok(Verdict::Continue)
            }
            ScanVerdict::Infected(signature) => {
                let reason = format!("infected: {signature}");
                doc.scan_result = Some(signature);
                Ok(Verdict::Quarantine(reason))
            }
            ScanVerdict::Unscannable(what) => {
                doc.scan_result = Some(UNSCANNABLE.into());
                Ok(Verdict::Quarantine(format!(
                    "{UNSCANNABLE}: the scan could not complete: a part is past the scanner's limits or encrypted ({what})"
                )))
            }
        }
    }
}
