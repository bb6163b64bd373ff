//! `tarn status`'s picture of a platform, read from its data dir or its AWS services (it changes
//! nothing):
//! the landed backlog, the last hour's documents, quarantine by reason, the scan engine, the
//! small-file debt, the last compaction and the audit chain.

use crate::config::{Backend, Config};
use crate::platform::require_data_dir;
use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use tarn_catalog::{LocalCatalog, load_schemas};
use tarn_core::audit::{SigningKey, read_public_key, verify};
use tarn_core::{LocalKms, LocalObjectStore, ObjectStore, SystemClock};
use tarn_lake::compact::{Compaction, LastRun, SmallFiles};
use tarn_lake::lock::LocalLakeLock;
use tarn_lake::{Lake, LakeParts};
use tarn_query::{LocalQueryEngine, QueryEngine};

/// The platform at a glance.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub generated_at: DateTime<Utc>,
    pub data_dir: String,
    /// the process serving the data dir, if one does
    pub serving_pid: Option<u32>,
    pub backlog: Backlog,
    /// documents committed in the last hour, by status (`stored`, `rejected`, `quarantined`, `lost`)
    pub last_hour: BTreeMap<String, u64>,
    /// quarantined documents, by reason class (see the metric `tarn_pipeline_quarantined_documents_total`)
    pub quarantine: BTreeMap<String, u64>,
    pub scan: Scan,
    /// tables with small files, by table
    pub small_files: BTreeMap<String, SmallFiles>,
    pub last_compaction: Option<LastRun>,
    pub audit: Audit,
}

#[derive(Debug, Clone, Serialize)]
pub struct Backlog {
    /// landed documents not committed yet
    pub documents: usize,
    /// how long the oldest of them has waited (the freshness lag)
    pub oldest_age_seconds: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Scan {
    /// the engine named by the most recently committed scanned document (`clamav 1.4.2/27000`)
    pub engine: Option<String>,
    /// age of the newest definitions in the machine's ClamAV database
    pub definitions_age_seconds: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Audit {
    pub log_files: usize,
    pub digests: usize,
    pub last_digest_at: Option<DateTime<Utc>>,
    /// log files newer than the newest digest
    pub not_yet_digested: usize,
    /// `ok`, `broken` (see `problems`), `undigested` or `none` (no trail yet); on AWS
    /// `cloudtrail` (CloudTrail validates its own log files) or `incomplete` (see `problems`)
    pub chain: String,
    pub problems: Vec<String>,
}

/// Reads the status of the platform `config` names: its data dir, or with `--backend aws` its
/// buckets, Glue catalog and Athena (and CloudTrail for the audit trail).
pub async fn gather(config: &Config) -> anyhow::Result<Status> {
    match config.backend {
        Backend::Local => gather_local(config).await,
        Backend::Aws => gather_aws(config).await,
    }
}

async fn gather_local(config: &Config) -> anyhow::Result<Status> {
    let dir = &config.data_dir;
    require_data_dir(dir)?;
    let store = |name: &str| -> anyhow::Result<Arc<LocalObjectStore>> {
        Ok(Arc::new(LocalObjectStore::open(
            format!("tarn-{name}"),
            dir.join(name),
        )?))
    };
    let tables = load_schemas(&config.schemas)
        .with_context(|| format!("loading table schemas from {}", config.schemas.display()))?;
    let catalog = Arc::new(LocalCatalog::open(dir.join("catalog"))?);
    let lake = Lake::new(LakeParts {
        tables,
        ingress: store("ingress")?,
        lake: store("lake")?,
        quarantine: store("quarantine")?,
        state: store("state")?,
        kms: Arc::new(LocalKms::open_or_create(LocalKms::path_in(dir))?),
        catalog: catalog.clone(),
        database: config.database.clone(),
        clock: Arc::new(SystemClock),
        lock: Arc::new(LocalLakeLock::open(dir.join("locks"))?),
    });
    let engine = LocalQueryEngine::new(catalog, config.database.clone());
    let definitions =
        crate::metrics::definitions_age(Path::new(crate::metrics::SYSTEM_DEFINITIONS));
    let mut status = picture(config, &lake, &engine, definitions).await?;
    status.data_dir = dir.display().to_string();
    status.serving_pid = serving_pid(dir);
    status.audit = audit(dir, config).await?;
    Ok(status)
}

async fn gather_aws(config: &Config) -> anyhow::Result<Status> {
    let aws =
        tarn_aws::AwsConfig::load_default().context("the AWS configuration (see aws/README.md)")?;
    let ports = tarn_aws::AwsPorts::connect(&aws).await;
    let tables = load_schemas(&config.schemas)
        .with_context(|| format!("loading table schemas from {}", config.schemas.display()))?;
    let lake = ports.lake(tables);
    let mut status = picture(config, &lake, ports.query.as_ref(), None).await?;
    status.data_dir = ports.lake.url("");
    let trail = ports
        .check_trail()
        .await
        .map_err(anyhow::Error::msg)
        .context("checking the CloudTrail trail")?;
    status.audit = Audit {
        chain: if trail.ok() {
            "cloudtrail"
        } else {
            "incomplete"
        }
        .into(),
        problems: trail.missing,
        ..Audit::default()
    };
    Ok(status)
}

/// What both backends show the same way: from the landing store, the `documents` table, the
/// catalog's partitions and the state store.
async fn picture(
    config: &Config,
    lake: &Lake,
    engine: &dyn QueryEngine,
    definitions_age: Option<std::time::Duration>,
) -> anyhow::Result<Status> {
    let now = Utc::now();
    let landed = lake.ingress.list("id=").await?;
    let backlog = Backlog {
        documents: landed.len(),
        oldest_age_seconds: landed
            .iter()
            .map(|o| o.last_modified)
            .min()
            .map(|t| (now - t).num_seconds().max(0)),
    };
    let docs = Documents(engine);
    let scan = Scan {
        engine: docs.latest_engine().await?,
        definitions_age_seconds: definitions_age.map(|d| d.as_secs() as i64),
    };
    let target = tarn_lake::compact::parse_size(&config.compaction.target_size)?;
    let small_files = Compaction::new(lake.clone())
        .target_size(target)
        .small_files()
        .await?
        .into_iter()
        .filter(|(_, d)| d.small_files > 0)
        .collect();
    Ok(Status {
        generated_at: now,
        data_dir: String::new(),
        serving_pid: None,
        backlog,
        last_hour: docs.by_status_since(now - Duration::hours(1)).await?,
        quarantine: docs.quarantined_by_reason().await?,
        scan,
        small_files,
        last_compaction: tarn_lake::compact::last_run(lake).await?,
        audit: Audit::default(),
    })
}

/// The pid in `serve.lock` when that process is alive.
fn serving_pid(dir: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(dir.join("serve.lock"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
}

/// The audit trail, checked against its signed digests.
async fn audit(dir: &Path, config: &Config) -> anyhow::Result<Audit> {
    let trail = &config.audit;
    let store = LocalObjectStore::open("tarn-audit", dir.join("audit"))?;
    let digests = store.list(&trail.digest_prefix()).await?;
    let last_digest_at = digests.iter().map(|d| d.last_modified).max();
    let key_path = SigningKey::public_path_in(dir);
    if digests.is_empty() || !key_path.exists() {
        let log_files = store.list(&trail.log_prefix()).await?.len();
        return Ok(Audit {
            log_files,
            digests: 0,
            last_digest_at,
            not_yet_digested: log_files,
            chain: if log_files == 0 { "none" } else { "undigested" }.into(),
            problems: vec![],
        });
    }
    let public_key = read_public_key(&key_path)
        .with_context(|| format!("reading the trail's public key {}", key_path.display()))?;
    let report = verify(&store, trail, &public_key).await?;
    Ok(Audit {
        log_files: report.log_files,
        digests: report.digests,
        last_digest_at,
        not_yet_digested: report.not_yet_digested.len(),
        chain: if report.is_ok() { "ok" } else { "broken" }.into(),
        problems: report.problems.iter().map(|p| p.to_string()).collect(),
    })
}

/// Aggregates of the `documents` table, through any query engine.
struct Documents<'a>(&'a dyn QueryEngine);

impl Documents<'_> {
    async fn counts(&self, sql: &str) -> anyhow::Result<Vec<(String, u64)>> {
        let result = self
            .0
            .query(sql)
            .await
            .context("reading the documents table")?;
        Ok(result
            .rows
            .into_iter()
            .map(|row| {
                let key = row
                    .first()
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let n = row.get(1).and_then(count).unwrap_or(0);
                (key, n)
            })
            .collect())
    }

    async fn by_status_since(&self, since: DateTime<Utc>) -> anyhow::Result<BTreeMap<String, u64>> {
        let since = since.format("%Y-%m-%d %H:%M:%S");
        let rows = self
            .counts(&format!(
                "SELECT status, count(*) AS n FROM documents WHERE processed_at >= TIMESTAMP '{since}' GROUP BY status"
            ))
            .await?;
        Ok(rows.into_iter().collect())
    }

    async fn quarantined_by_reason(&self) -> anyhow::Result<BTreeMap<String, u64>> {
        let rows = self
            .counts("SELECT reason, count(*) AS n FROM documents WHERE status = 'quarantined' GROUP BY reason")
            .await?;
        let mut out = BTreeMap::new();
        for (reason, n) in rows {
            *out.entry(tarn_lake::metrics::quarantine_reason(&reason).to_string())
                .or_default() += n;
        }
        Ok(out)
    }

    async fn latest_engine(&self) -> anyhow::Result<Option<String>> {
        let rows = self
            .counts("SELECT scan_engine, processed_at FROM documents WHERE scan_engine IS NOT NULL ORDER BY processed_at DESC LIMIT 1")
            .await?;
        Ok(rows.into_iter().next().map(|(e, _)| e))
    }
}

/// A count as engines return it: a number, or a string of digits (Athena).
fn count(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_str()?.parse().ok())
}

/// Seconds as people read them: `45s`, `12m`, `3h 5m`, `2d 4h`.
pub fn human_age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

/// The status as text, one section per line group.
pub fn render(s: &Status) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let age = |a: Option<i64>| a.map_or("-".to_string(), human_age);
    let since = |t: DateTime<Utc>| human_age((s.generated_at - t).num_seconds());
    let _ = writeln!(
        o,
        "tarn status of {} at {}",
        s.data_dir,
        s.generated_at.format("%Y-%m-%d %H:%M:%S UTC")
    );
    let _ = writeln!(
        o,
        "serving      {}",
        s.serving_pid
            .map_or("no".to_string(), |p| format!("yes (pid {p})"))
    );
    let _ = writeln!(
        o,
        "backlog      {} landed, oldest waiting {}",
        s.backlog.documents,
        age(s.backlog.oldest_age_seconds)
    );
    let counts = |m: &BTreeMap<String, u64>| {
        if m.is_empty() {
            "none".to_string()
        } else {
            m.iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let _ = writeln!(o, "last hour    {}", counts(&s.last_hour));
    let _ = writeln!(o, "quarantine   {}", counts(&s.quarantine));
    let _ = writeln!(
        o,
        "scan         {}, definitions {}",
        s.scan
            .engine
            .as_deref()
            .unwrap_or("no scanned document yet"),
        s.scan
            .definitions_age_seconds
            .map_or("age unknown".to_string(), |a| format!(
                "{} old",
                human_age(a)
            ))
    );
    if s.small_files.is_empty() {
        let _ = writeln!(o, "small files  none");
    } else {
        for (i, (table, d)) in s.small_files.iter().enumerate() {
            let _ = writeln!(
                o,
                "{}{table}: {} of {} files small in {} partitions ({} to compact)",
                if i == 0 {
                    "small files  "
                } else {
                    "             "
                },
                d.small_files,
                d.files,
                d.partitions,
                d.partitions_with_debt
            );
        }
    }
    let _ = writeln!(
        o,
        "compaction   {}",
        s.last_compaction
            .as_ref()
            .map_or("never".to_string(), |c| format!(
                "last run {} ago: {} partitions, {} files into {}",
                since(c.finished_at),
                c.partitions_compacted,
                c.files_in,
                c.files_out
            ))
    );
    let a = &s.audit;
    let _ = writeln!(
        o,
        "audit        chain {}: {} log files, {} digests, last digest {}, {} not yet digested",
        a.chain,
        a.log_files,
        a.digests,
        a.last_digest_at
            .map_or("never".to_string(), |t| format!("{} ago", since(t))),
        a.not_yet_digested
    );
    for p in &a.problems {
        let _ = writeln!(o, "             {p}");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_people_say_them() {
        assert_eq!(human_age(45), "45s");
        assert_eq!(human_age(720), "12m");
        assert_eq!(human_age(3 * 3600 + 5 * 60), "3h 5m");
        assert_eq!(human_age(2 * 86400 + 4 * 3600), "2d 4h");
        assert_eq!(human_age(-3), "0s");
    }

    #[test]
    fn counts_come_as_numbers_or_digit_strings() {
        assert_eq!(count(&serde_json::json!(3)), Some(3));
        assert_eq!(count(&serde_json::json!("12")), Some(12));
        assert_eq!(count(&serde_json::json!("x")), None);
    }
}
