//! `tarn rescan`: stored binary objects scanned again with the current engine and definitions
//! (`tarn_lake::review::rescan`); the infected move to quarantine.

use crate::cli::{Format, RescanArgs, parse_since};
use crate::commands::quarantine::outcome_result;
use crate::commands::review::Review;
use crate::config::Config;
use anyhow::Context;
use tarn_lake::review::rescan::{RescanFilter, rescan};

pub async fn run(args: RescanArgs, config: Config) -> anyhow::Result<()> {
    if !config.pipeline.stages.iter().any(|s| s == "scan") {
        anyhow::bail!(
            "pipeline.stages has no scan stage, so there is nothing to rescan with: add \"scan\" to pipeline.stages"
        );
    }
    let filter = RescanFilter {
        table: args.table.clone(),
        since: args
            .since
            .as_deref()
            .map(|s| parse_since(s, chrono::Utc::now()))
            .transpose()
            .map_err(anyhow::Error::msg)?,
    };
    let r = Review::open(config, true).await?;
    let scan = r.scan().context("the pipeline has no scan stage")?.clone();
    let report = rescan(&r.lake, scan.as_ref(), r.retry, &filter, &r.operator).await;
    r.close().await?;
    let report = report?;
    print!(
        "{}",
        outcome_result(&report.quarantined).render(args.format.into())
    );
    if args.format == Format::Table {
        println!(
            "{} objects scanned: {} clean, {} moved to quarantine, {} the scanner could not decide on (left stored)",
            report.scanned,
            report.clean,
            report.quarantined.len(),
            report.undecided
        );
    }
    Ok(())
}
