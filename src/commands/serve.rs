use crate::config::Config;
use crate::platform::{Platform, ServeLock};
use anyhow::Context;

/// Runs until Ctrl-C or SIGTERM, then stops cleanly: requests in flight are answered, what the
/// pipeline processed is committed, what it had not started stays landed for the next start.
/// A second `tarn serve` on the same data dir is refused before it opens anything. Without
/// `pipeline`, only the ingress runs: documents land and stay landed.
pub async fn run(config: Config, pipeline: bool) -> anyhow::Result<()> {
    let lock = ServeLock::acquire(&config.data_dir)?;
    let platform = Platform::open(config).await?;
    let running = platform.start_locked(lock, pipeline).await?;
    eprintln!(
        "tarn is serving on {} (data dir {}); stop with Ctrl-C",
        running.url(),
        platform.config.data_dir.display()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!("stopping: finishing requests in flight and committing processed documents");
    let report = running.shutdown().await?;
    eprintln!(
        "stopped: {} stored, {} rejected, {} quarantined in this run",
        report.stored, report.rejected, report.quarantined
    );
    Ok(())
}
