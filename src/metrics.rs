//! The gauges `tarn serve` refreshes on a timer (what no request or batch reports by itself):
//! the scan engine and its definitions' age, and the audit trail's failed writes. The rest is
//! measured where it happens (the ingress's edge, the runner, compaction).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tarn_core::audit::LocalAuditSink;
use tarn_core::metrics::{self as m, Metrics};
use tokio::sync::watch;

/// Where the machine's ClamAV keeps its signature database (what a clamd on this machine loads).
pub const SYSTEM_DEFINITIONS: &str = "/var/lib/clamav";

/// How often the gauges are refreshed.
pub const REFRESH: Duration = Duration::from_secs(15);

/// What the refresher reads.
pub struct Sources {
    pub scan_engine: Option<String>,
    pub definitions: PathBuf,
    pub audit: Arc<LocalAuditSink>,
}

/// Records the gauges once; `audit_seen` carries the failures already counted.
pub fn refresh(metrics: &Metrics, sources: &Sources, audit_seen: &mut u64) {
    if let Some(engine) = &sources.scan_engine {
        tarn_lake::metrics::record_engine(metrics, engine);
    }
    if let Some(age) = definitions_age(&sources.definitions) {
        metrics.set(&m::SCAN_DEFINITIONS_AGE, &[], age.as_secs_f64());
    }
    let failures = sources.audit.delivery_failures();
    if failures > *audit_seen {
        metrics.add(
            &m::AUDIT_DELIVERY_FAILURES,
            &[],
            (failures - *audit_seen) as f64,
        );
        *audit_seen = failures;
    }
}

/// How long ago the newest definitions in `dir` were built.
pub fn definitions_age(dir: &Path) -> Option<Duration> {
    let built = tarn_lake::metrics::definitions::built_at(dir)?;
    (chrono::Utc::now() - built).to_std().ok()
}

/// Refreshes the gauges every [`REFRESH`] until `stop` turns true.
pub async fn refresh_until(metrics: Metrics, sources: Sources, mut stop: watch::Receiver<bool>) {
    let mut audit_seen = 0;
    loop {
        refresh(&metrics, &sources, &mut audit_seen);
        tokio::select! {
            _ = tokio::time::sleep(REFRESH) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
