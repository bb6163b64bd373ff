//! `tarn audit`: the access trail, filtered by time, user, table and event; `tarn audit verify`:
//! checks the trail against its signed digests and lists every problem (non-zero exit).

use crate::cli::{AuditAction, AuditArgs, AuditFilterArgs, Format, parse_since};
use anyhow::{Context, bail};
use std::path::Path;
use std::sync::Arc;
use tarn_core::ObjectStore;
use tarn_core::audit::{SigningKey, TrailConfig, TrailFilter, read_public_key, read_trail, verify};
use tarn_query::audit::{trail_result, verify_result};

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
        Some(s) => Some(parse_since(s, chrono::Utc::now()).map_err(anyhow::Error::msg)?),
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
