//! The schedules of `tarn serve`: [`every`] runs a job periodically until shutdown; compaction's
//! ([`run_every`]) and retention's (`crate::erase::run_retention_every`) are built on it.

use super::Compaction;
use std::future::Future;
use std::time::Duration;
use tracing::{info, warn};

/// Runs `job` every `interval` until `shutdown` turns true; a run in progress is dropped at
/// shutdown (each job leaves its own records for the next run to finish). Returns how many runs
/// completed.
pub async fn every<F, Fut>(
    interval: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    mut job: F,
) -> usize
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
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
            () = job() => runs += 1,
            changed = shutdown.changed() => {
                if changed.is_err() {
                    return runs;
                }
            }
        }
    }
}

/// Runs a compaction every `interval` until `shutdown` turns true (`tarn serve`'s schedule).
/// `make` builds each run (so each gets fresh options and a fresh progress callback). Errors are
/// logged and the next run retries; a run cut short by shutdown is finished or undone by the
/// next run (its job record), so stopping never leaves anything half-visible.
pub async fn run_every(
    interval: Duration,
    shutdown: tokio::sync::watch::Receiver<bool>,
    make: impl Fn() -> Compaction + Send + Sync,
) -> usize {
    every(interval, shutdown, || async {
        match make().execute().await {
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
    })
    .await
}
