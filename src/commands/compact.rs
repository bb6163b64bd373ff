//! `tarn compact`: compacts small Parquet files now, with a progress bar and a summary.

use crate::cli::{CompactArgs, Format};
use crate::config::Config;
use crate::platform::{Platform, require_data_dir};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use tarn_core::audit::AuditSink;
use tarn_lake::compact::Progress;
use tarn_query::{QueryResult, ResultColumn};

pub async fn run(args: CompactArgs, mut config: Config) -> anyhow::Result<()> {
    require_data_dir(&config.data_dir)?;
    if let Some(t) = args.target_size {
        config.compaction.target_size = t;
    }
    if let Some(g) = args.grace_period {
        config.compaction.grace_period_secs = g.as_secs();
    }
    // compaction needs no scanner: open the platform without the scan and strip stages
    config.pipeline.stages.retain(|s| s == "validate");
    // a second process keeps its own chain of trail digests
    config.audit = config.audit.for_run("compact");
    config.check()?;
    let platform = Platform::open(config).await?;
    let mut c = platform.compaction()?;
    if let Some(t) = &args.table {
        c = c.table(t);
    }
    if let Some(p) = &args.partition {
        c = c.partition(p)?;
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg}")
            .expect("a valid template"),
    );
    let b = bar.clone();
    let report = c
        .with_progress(move |p| match p {
            Progress::Planned { bytes, .. } => b.set_length(*bytes),
            Progress::PartitionStarted {
                table, partition, ..
            } => b.set_message(format!("{table}/{partition}")),
            Progress::FileDone { bytes, .. } => b.inc(*bytes),
            Progress::PartitionSkipped {
                table,
                partition,
                reason,
            } => b.suspend(|| eprintln!("skipped {table}/{partition}: {reason}")),
            Progress::PartitionCommitted { .. } => {}
        })
        .execute()
        .await?;
    bar.finish_and_clear();
    platform.audit.flush().await?;
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        f => {
            let col = |n: &str, t: &str| ResultColumn {
                name: n.into(),
                data_type: t.into(),
            };
            let result = QueryResult {
                columns: vec![
                    col("table", "string"),
                    col("partition", "string"),
                    col("files_in", "bigint"),
                    col("files_out", "bigint"),
                    col("bytes_in", "bigint"),
                    col("bytes_out", "bigint"),
                    col("rows", "bigint"),
                ],
                rows: report
                    .partitions
                    .iter()
                    .map(|p| {
                        vec![
                            json!(p.table),
                            json!(p.partition),
                            json!(p.files_in),
                            json!(p.files_out),
                            json!(p.bytes_in),
                            json!(p.bytes_out),
                            json!(p.rows),
                        ]
                    })
                    .collect(),
            };
            print!("{}", result.render(f.into()));
            if f == Format::Table {
                println!(
                    "{} of {} partitions compacted: {} files -> {} files, {} rows, in {} ms",
                    report.partitions_compacted,
                    report.partitions_examined,
                    report.files_in,
                    report.files_out,
                    report.rows,
                    report.elapsed_ms
                );
            }
        }
    }
    Ok(())
}
