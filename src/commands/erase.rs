//! `tarn erase`: removes documents or rows everywhere they live, with a progress bar and a
//! summary; `--dry-run` lists what would go; `--status` lists the erasures and whether their
//! bytes are physically gone.

use crate::cli::{EraseArgs, Format};
use crate::config::Config;
use crate::platform::{Platform, predicate_compiler, require_data_dir};
use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use std::time::Duration;
use tarn_core::ObjectStore;
use tarn_core::audit::{Actor, AuditSink, CloudTrailRecord, TrailConfig};
use tarn_lake::erase::{EraseReport, Erasure, Progress, Selector, erasure_event};
use tarn_query::{QueryResult, ResultColumn};

pub async fn run(args: EraseArgs, config: Config) -> anyhow::Result<()> {
    match config.backend {
        crate::config::Backend::Aws => run_aws(args, config).await,
        crate::config::Backend::Local => run_local(args, config).await,
    }
}

async fn run_local(args: EraseArgs, mut config: Config) -> anyhow::Result<()> {
    require_data_dir(&config.data_dir)?;
    if let Some(g) = args.grace_period {
        config.compaction.grace_period_secs = g.as_secs();
    }
    // erasure needs no scanner: open the platform without the scan and strip stages
    config.pipeline.stages.retain(|s| s == "validate");
    // a second process keeps its own chain of trail digests
    config.audit = config.audit.for_run("erase");
    config.check()?;
    let platform = Platform::open(config).await?;
    let actor = Actor::local_user();
    if args.status {
        platform.audit.flush().await?;
        let st = platform.erasers().status().await?;
        return print_status(&st, args.format);
    }
    let selector = selector(&args)?;
    let erasers = platform.erasers();
    let report = run_with_bar(erasers.erasure(selector, &actor), &args, &actor).await;
    if let Ok(report) = &report {
        erasers.record(report, &actor);
    }
    // the stores' calls are in the trail whether or not the erasure got through
    platform.audit.flush().await?;
    print_report(&report?, args.format)
}

/// `--backend aws`: the same erasure on S3, Glue and the S3 lease lock. CloudTrail records the
/// calls (the erasure's record `erasures/<id>.json` and each delete) under the caller's IAM
/// identity; the erasure's own event is printed to stderr as a CloudTrail record.
async fn run_aws(args: EraseArgs, config: Config) -> anyhow::Result<()> {
    let aws =
        tarn_aws::AwsConfig::load_default().context("the AWS configuration (see aws/README.md)")?;
    let ports = tarn_aws::AwsPorts::connect(&aws).await;
    if args.status {
        let st = tarn_lake::erase::status(ports.state.as_ref()).await?;
        return print_status(&st, args.format);
    }
    let selector = selector(&args)?;
    let tables = tarn_catalog::load_schemas(&config.schemas)
        .with_context(|| format!("loading {}", config.schemas.display()))?;
    let grace = args
        .grace_period
        .unwrap_or(Duration::from_secs(config.compaction.grace_period_secs));
    let erasure = Erasure::new(ports.lake(tables), selector)
        .grace_period(grace)
        .with_predicates(predicate_compiler());
    let actor = Actor::local_user();
    let report = run_with_bar(erasure, &args, &actor).await?;
    for r in &report.finished {
        let e = erasure_event(r, ports.state.bucket(), actor.clone());
        let record = CloudTrailRecord::from_event(&TrailConfig::default(), e);
        eprintln!("{}", serde_json::to_string(&record)?);
    }
    print_report(&report, args.format)
}

/// Runs `erasure` for `args` by `actor` with a progress bar on stderr.
async fn run_with_bar(
    erasure: Erasure,
    args: &EraseArgs,
    actor: &Actor,
) -> tarn_lake::Result<EraseReport> {
    let by = match actor {
        Actor::LocalUser(n) => n.clone(),
        _ => "unknown".into(),
    };
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}").expect("a valid template"),
    );
    let b = bar.clone();
    let report = erasure
        .reason(args.reason.clone().unwrap_or_default())
        .by(by)
        .dry_run(args.dry_run)
        .with_progress(move |p| match p {
            Progress::Resumed { id } => {
                b.suspend(|| eprintln!("finishing the interrupted erasure {id}"))
            }
            Progress::Planned { steps, .. } => b.set_length(*steps as u64),
            Progress::FileDone { key, .. } | Progress::ObjectDeleted { key, .. } => {
                b.set_message(key.clone());
                b.inc(1)
            }
        })
        .execute()
        .await;
    bar.finish_and_clear();
    report
}

fn selector(args: &EraseArgs) -> anyhow::Result<Selector> {
    Ok(
        match (&args.id, &args.producer, &args.table, &args.where_) {
            (Some(id), None, None, None) => {
                if uuid::Uuid::parse_str(id).is_err() {
                    bail!(
                        "--id {id:?} is not a document id (a uuid); copy it from tarn ingest or the documents table"
                    );
                }
                Selector::Id { id: id.clone() }
            }
            (None, Some(p), None, None) => Selector::Producer {
                producer: p.clone(),
            },
            (None, None, Some(t), Some(w)) => Selector::Where {
                table: t.clone(),
                predicate: w.clone(),
            },
            _ => bail!("give exactly one of --id, --producer, or --table with --where"),
        },
    )
}

fn col(n: &str, t: &str) -> ResultColumn {
    ResultColumn {
        name: n.into(),
        data_type: t.into(),
    }
}

fn print_report(r: &EraseReport, format: Format) -> anyhow::Result<()> {
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(r)?);
        return Ok(());
    }
    let mut rows = Vec::new();
    for d in &r.documents {
        rows.push(vec![
            json!("document"),
            json!(d.table),
            json!(d.status),
            json!(d.id),
            json!(null),
        ]);
    }
    for f in &r.files {
        rows.push(vec![
            json!("file"),
            json!(f.table),
            json!(f.partition),
            json!(f.key),
            json!(f.matched),
        ]);
    }
    for o in &r.objects {
        rows.push(vec![
            json!("object"),
            json!(null),
            json!(o.store.as_str()),
            json!(o.key),
            json!(null),
        ]);
    }
    let result = QueryResult {
        columns: vec![
            col("what", "string"),
            col("table", "string"),
            col("where", "string"),
            col("key", "string"),
            col("rows", "bigint"),
        ],
        rows,
    };
    print!("{}", result.render(format.into()));
    if format == Format::Table {
        let verb = if r.dry_run { "would erase" } else { "erased" };
        let mut line = format!(
            "{} {}: {} documents, {} rows in {} files, {} objects",
            r.selector.describe(),
            verb,
            r.documents.len(),
            r.rows,
            r.files.len(),
            r.objects.len()
        );
        if let Some(id) = &r.id {
            line.push_str(&format!("; erasure {id}"));
        }
        if let Some(t) = r.bytes_gone_after {
            line.push_str(&format!(
                "; the replaced files are vacuumed after {}",
                t.to_rfc3339()
            ));
        }
        println!("{line}, in {} ms", r.elapsed_ms);
    }
    Ok(())
}

fn print_status(st: &[tarn_lake::erase::ErasureStatus], format: Format) -> anyhow::Result<()> {
    let result = QueryResult {
        columns: vec![
            col("id", "string"),
            col("started", "string"),
            col("finished", "string"),
            col("by", "string"),
            col("reason", "string"),
            col("selector", "string"),
            col("documents", "bigint"),
            col("rows", "bigint"),
            col("objects", "bigint"),
            col("state", "string"),
            col("bytes_gone_after", "string"),
        ],
        rows: st
            .iter()
            .map(|s| {
                vec![
                    json!(s.id),
                    json!(s.started.to_rfc3339()),
                    json!(s.finished.map(|t| t.to_rfc3339())),
                    json!(s.by),
                    json!(s.reason),
                    json!(s.selector),
                    json!(s.documents),
                    json!(s.rows),
                    json!(s.objects),
                    json!(s.state),
                    json!(s.bytes_gone_after.map(|t| t.to_rfc3339())),
                ]
            })
            .collect(),
    };
    print!("{}", result.render(format.into()));
    Ok(())
}
