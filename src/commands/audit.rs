//! `tarn audit`: the access trail, filtered by time, user, table and event; `tarn audit verify`:
//! checks the trail against its signed digests and lists every problem (non-zero exit).

use crate::cli::Format;
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tarn_core::ObjectStore;
use tarn_core::audit::{
    SigningKey, TrailConfig, TrailFilter, parse_since, read_public_key, read_trail, verify,
};
use tarn_query::audit::{trail_result, verify_result};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub action: Option<AuditAction>,
    #[command(flatten)]
    pub filter: AuditFilterArgs,
}

#[derive(Debug, Subcommand)]
pub enum AuditAction {
    /// Check the trail against its signed digests; lists every modified, deleted or inserted
    /// log file and digest, and exits non-zero when there is any
    Verify(AuditVerifyArgs),
}

#[derive(Debug, Args)]
pub struct AuditFilterArgs {
    /// records at or after T: a time (2024-05-06T10:00:00Z), a day (2024-05-06) or an age (15m, 2h, 7d)
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// records of one user (user name or sub) or component (tarn-pipeline, tarn-ingress...)
    #[arg(long, value_name = "U")]
    pub user: Option<String>,
    /// records about one table
    #[arg(long, value_name = "T")]
    pub table: Option<String>,
    /// records of one call: GetObject, PutObject, HeadObject, ListObjects, DeleteObject
    #[arg(long, value_name = "NAME")]
    pub event: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct AuditVerifyArgs {
    /// the trail's public key [default: <data-dir>/keys/audit-signing.pub]
    #[arg(long)]
    pub public_key: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// The audit store of a local data dir (`<data-dir>/audit`, bucket `tarn-audit`); an error
/// saying what to do when there is none.
pub fn open_audit_store(data_dir: &Path) -> anyhow::Result<Arc<dyn ObjectStore>> {
    let dir = data_dir.join("audit");
    if !dir.is_dir() {
        bail!(
            "no audit trail in {}; run `tarn serve --data-dir {}` (or `tarn demo --keep`) first, or pass --data-dir",
            dir.display(),
            data_dir.display()
        );
    }
    Ok(Arc::new(tarn_core::LocalObjectStore::open(
        "tarn-audit",
        dir,
    )?))
}

/// `tarn audit [verify]` on a local data dir.
pub async fn run(args: AuditArgs, data_dir: &Path, trail: &TrailConfig) -> anyhow::Result<()> {
    let audit = open_audit_store(data_dir)?;
    match args.action {
        None => run_audit(args.filter, audit.as_ref(), trail).await,
        Some(AuditAction::Verify(v)) => {
            let path = v
                .public_key
                .clone()
                .unwrap_or_else(|| SigningKey::public_path_in(data_dir));
            let public_key = read_public_key(&path)
                .with_context(|| format!("reading the trail's public key {}", path.display()))?;
            run_verify(v.format, audit.as_ref(), &public_key, trail).await
        }
    }
}

/// Prints the trail's records that match the filters, oldest first.
pub async fn run_audit(
    args: AuditFilterArgs,
    audit: &dyn ObjectStore,
    trail: &TrailConfig,
) -> anyhow::Result<()> {
    let since = match &args.since {
        Some(s) => Some(parse_since(s, chrono::Utc::now())?),
        None => None,
    };
    let filter = TrailFilter {
        since,
        until: None,
        user: args.user.clone(),
        table: args.table.clone(),
        event: args.event.clone(),
    };
    let records = read_trail(audit, trail, &filter)
        .await
        .context("reading the audit trail")?;
    print!("{}", trail_result(&records).render(args.format.into()));
    Ok(())
}

/// Verifies the trail: prints each problem (nothing for a sound trail, then a summary on
/// stderr) and fails when there is any.
pub async fn run_verify(
    format: Format,
    audit: &dyn ObjectStore,
    public_key: &[u8],
    trail: &TrailConfig,
) -> anyhow::Result<()> {
    let report = verify(audit, trail, public_key)
        .await
        .context("verifying the audit trail")?;
    if !report.is_ok() || format != Format::Table {
        print!("{}", verify_result(&report).render(format.into()));
    }
    if !report.is_ok() {
        bail!(
            "the audit trail was altered: {} problem(s), listed above",
            report.problems.len()
        );
    }
    eprintln!(
        "the audit trail verifies: {} digest(s), {} of {} log file(s) checked against them{}",
        report.digests,
        report.log_files_valid,
        report.log_files,
        if report.not_yet_digested.is_empty() {
            String::new()
        } else {
            format!(
                "; {} newer than the last digest, not covered yet",
                report.not_yet_digested.len()
            )
        }
    );
    Ok(())
}
