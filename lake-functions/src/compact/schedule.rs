//! The compaction schedule of `tarn serve`.

use super::Compaction;
use std::time::Duration;
use tracing::{info, warn};

/// Runs a compaction every `interval` until `shutdown` turns true (`tarn serve`'s schedule).
/// `make` builds each run (so each gets fresh options and a fresh progress callback). Errors are
/// logged and the next run retries; a run cut short by shutdown is finished or undone by the
/// next run (its job record), so stopping never leaves anything half-visible.
pub async fn run_every(
    interval: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    make: impl Fn() -> Compaction + Send + Sync,
) -> usize {
    let mut runs = 0;
    loop {
        if *shutdown.borrow() {
            return runs;
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            changed = shutdown.changed() => {
                if changed.is_err() {
                    return runs; // the sender is gone: nobody can stop us any more, so stop
                }
                continue;
            }
        }
        if *shutdown.borrow() {
            return runs;
        }
        tokio::select! {
            r = make().execute() => {
                runs += 1;
                match r {
                    Ok(report) => info!(
                        compacted = report.partitions_compacted,
                        files_in = report.files_in,
                        files_out = report.files_out,
                        vacuumed = report.vacuum.files_deleted,
                        ms = report.elapsed_ms,
                        "scheduled compaction"
                    ),
                    Err(e) => warn!(error = %e, "scheduled compaction failed; the next run retries"),
                }
            }
            changed = shutdown.changed() => {
                if changed.is_err() {
                    return runs;
                }
            }
        }
    }
}
