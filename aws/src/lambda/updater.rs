//! [`Updater`]: refreshes the private definitions mirror with freshclam. The only part of tarn
//! that talks to ClamAV's mirrors, and it does so as they ask: at most once an hour (a marker in
//! the mirror keeps a retried or extra invocation from running freshclam again sooner), and
//! incrementally — freshclam starts from the mirror's current databases and its own state file
//! (`freshclam.dat`, which keeps its back-off after a 429 too), so it asks for the daily diffs
//! (`ScriptedUpdates`) and downloads a whole database only when it must.

use super::scan::is_database;
use bytes::Bytes;
use chrono::Utc;
use serde::Serialize;
use sha2::Digest;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tarn_core::{Metadata, ObjectStore};
use tracing::{info, warn};

/// The mirror's marker of the updater's last run.
pub const MARKER: &str = "tarn-update.json";
/// freshclam's own state (mirror back-off, the last versions it saw), kept in the mirror.
pub const STATE_FILE: &str = "freshclam.dat";
/// The shortest time between two runs of freshclam (the schedule runs hourly; ClamAV's mirrors
/// allow one update an hour).
pub const MIN_INTERVAL: Duration = Duration::from_secs(50 * 60);

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UpdateReport {
    /// freshclam ran (else the last run was too recent)
    pub ran: bool,
    /// freshclam's exit code: 0 updated, 1 already up to date
    pub freshclam_exit: Option<i32>,
    /// files written to the mirror (new or changed)
    pub uploaded: Vec<String>,
    /// databases removed from the mirror (replaced, e.g. `daily.cvd` by `daily.cld`)
    pub deleted: Vec<String>,
}

/// freshclam over the mirror.
#[derive(Debug, Clone)]
pub struct Updater {
    mirror: Arc<dyn ObjectStore>,
    dir: PathBuf,
    /// the freshclam binary (`freshclam`, on `PATH`)
    pub freshclam: PathBuf,
    pub min_interval: Duration,
    metrics: tarn_core::Metrics,
}

fn sha256(path: &Path) -> Option<String> {
    std::fs::read(path)
        .ok()
        .map(|b| hex::encode(sha2::Sha256::digest(&b)))
}

impl Updater {
    /// freshclam working in `dir` (`/tmp/tarn-freshclam` in the function).
    pub fn new(mirror: Arc<dyn ObjectStore>, dir: impl Into<PathBuf>) -> Self {
        Self {
            mirror,
            dir: dir.into(),
            freshclam: PathBuf::from("freshclam"),
            min_interval: MIN_INTERVAL,
            metrics: tarn_core::Metrics::default(),
        }
    }

    /// Records the age of the definitions each run leaves in the mirror to `metrics`.
    pub fn with_metrics(mut self, metrics: tarn_core::Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// freshclam's configuration: ClamAV's official mirror, diffs, its database directory.
    pub fn config_text(&self, db: &Path, as_root: bool) -> String {
        format!(
            "DatabaseDirectory {}\nDatabaseMirror database.clamav.net\nDNSDatabaseInfo current.cvd.clamav.net\nScriptedUpdates yes\nBytecode yes\nForeground yes\nLogTime yes\nMaxAttempts 3\nConnectTimeout 30\nReceiveTimeout 300\n{}",
            db.display(),
            if as_root { "DatabaseOwner root\n" } else { "" },
        )
    }

    /// One run: skipped when the last began less than `min_interval` ago; else the mirror's
    /// files into a fresh directory, freshclam, and what changed back to the mirror (new files
    /// first, then the deletions, so the mirror always holds a whole database).
    pub async fn run(&self) -> Result<UpdateReport, String> {
        let now = Utc::now();
        let e = |what: &str| {
            let what = what.to_string();
            move |err: tarn_core::Error| format!("{what}: {err}")
        };
        if let Some(m) = self
            .mirror
            .head(MARKER)
            .await
            .map_err(e("reading the run marker"))?
        {
            let since = now - m.last_modified;
            if since.to_std().unwrap_or_default() < self.min_interval {
                info!(last_run = %m.last_modified, "the definitions were updated less than the minimum interval ago; freshclam does not run");
                return Ok(UpdateReport::default());
            }
        }
        let marker = serde_json::json!({"started_at": now.to_rfc3339()}).to_string();
        self.mirror
            .put(MARKER, Bytes::from(marker), Metadata::new())
            .await
            .map_err(e("writing the run marker"))?;

        let db = self.dir.join("db");
        let _ = std::fs::remove_dir_all(&self.dir);
        std::fs::create_dir_all(&db).map_err(|err| format!("creating {}: {err}", db.display()))?;
        let mut before: BTreeMap<String, String> = BTreeMap::new();
        for o in self
            .mirror
            .list("")
            .await
            .map_err(e("listing the mirror"))?
        {
            if !(is_database(&o.key) || o.key == STATE_FILE) {
                continue;
            }
            let got = self
                .mirror
                .get(&o.key)
                .await
                .map_err(e(&format!("fetching {}", o.key)))?;
            std::fs::write(db.join(&o.key), &got.body)
                .map_err(|err| format!("writing {}: {err}", o.key))?;
            before.insert(o.key, hex::encode(sha2::Sha256::digest(&got.body)));
        }

        let conf = self.dir.join("freshclam.conf");
        std::fs::write(
            &conf,
            self.config_text(&db, tarn_lake::scan::managed::is_root()),
        )
        .map_err(|err| format!("writing {}: {err}", conf.display()))?;
        let out = tokio::process::Command::new(&self.freshclam)
            .arg(format!("--config-file={}", conf.display()))
            .arg(format!("--datadir={}", db.display()))
            .arg("--stdout")
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|err| {
                format!(
                    "running {}: {err}; the updater's image installs freshclam",
                    self.freshclam.display()
                )
            })?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for line in text.lines() {
            info!(freshclam = %line);
        }
        let code = out.status.code();
        if !matches!(code, Some(0) | Some(1)) {
            let tail: Vec<&str> = text.lines().rev().take(5).collect();
            return Err(format!(
                "freshclam failed ({}): {}; the mirror keeps its definitions",
                out.status,
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ));
        }

        let mut report = UpdateReport {
            ran: true,
            freshclam_exit: code,
            ..Default::default()
        };
        let mut after = Vec::new();
        for entry in std::fs::read_dir(&db)
            .map_err(|err| format!("reading {}: {err}", db.display()))?
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_database(&name) || name == STATE_FILE {
                after.push(name);
            }
        }
        if !after.iter().any(|n| is_database(n)) {
            return Err("freshclam left no database; the mirror keeps its definitions".into());
        }
        for name in &after {
            let sum = sha256(&db.join(name));
            if sum.is_some() && before.get(name) == sum.as_ref() {
                continue;
            }
            let body =
                std::fs::read(db.join(name)).map_err(|err| format!("reading {name}: {err}"))?;
            self.mirror
                .put(name, Bytes::from(body), Metadata::new())
                .await
                .map_err(e(&format!("uploading {name}")))?;
            report.uploaded.push(name.clone());
        }
        for name in before.keys().filter(|k| !after.contains(k)) {
            if let Err(err) = self.mirror.delete(name).await {
                warn!(%name, error = %err, "a replaced database could not be removed from the mirror");
                continue;
            }
            report.deleted.push(name.clone());
        }
        info!(uploaded = ?report.uploaded, deleted = ?report.deleted, exit = ?code, "definitions mirror updated");
        if let Some(built) = tarn_lake::metrics::definitions::built_at(&db) {
            let age = (Utc::now() - built).num_seconds().max(0);
            self.metrics
                .set(&tarn_core::metrics::SCAN_DEFINITIONS_AGE, &[], age as f64);
        }
        Ok(report)
    }
}
