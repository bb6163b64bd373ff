//! What compaction leaves to do and what it last did: small files per table
//! ([`Compaction::small_files`]) and the record of the last successful run
//! ([`LAST_RUN_KEY`] in the state store), for `tarn status` and the metrics.

use super::{Compaction, CompactionReport};
use crate::error::{LakeError, Result};
use crate::lake::Lake;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tarn_core::metrics::{self as m};
use tarn_core::{ErrorKind, Metadata};

/// Where the last successful run is recorded, in the state store.
pub const LAST_RUN_KEY: &str = "status/compaction-last-run.json";

/// One table's small-file debt: files below the target size in the partitions readers see.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmallFiles {
    pub partitions: usize,
    /// partitions holding at least two small files (what a run would compact)
    pub partitions_with_debt: usize,
    pub files: usize,
    pub small_files: usize,
    pub small_bytes: u64,
}

/// The last successful compaction run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastRun {
    pub finished_at: DateTime<Utc>,
    pub partitions_compacted: usize,
    pub files_in: usize,
    pub files_out: usize,
    pub elapsed_ms: u64,
}

impl Compaction {
    /// The small files of every selected table, by table (visible files below the target size).
    pub async fn small_files(&self) -> Result<BTreeMap<String, SmallFiles>> {
        let mut out = BTreeMap::new();
        for def in self.tables().await? {
            let parts = self.partitions(&def).await?;
            let debt: &mut SmallFiles = out.entry(def.name.clone()).or_default();
            for p in parts {
                let Ok(files) = self.visible_files(&p.location).await else {
                    continue;
                };
                let small: Vec<_> = files
                    .iter()
                    .filter(|f| f.size < self.plan.target_size)
                    .collect();
                debt.partitions += 1;
                debt.files += files.len();
                debt.small_files += small.len();
                debt.small_bytes += small.iter().map(|f| f.size).sum::<u64>();
                if small.len() >= 2 {
                    debt.partitions_with_debt += 1;
                }
            }
        }
        Ok(out)
    }

    /// Records a successful run at [`LAST_RUN_KEY`] (its last step).
    pub(super) async fn record_run(&self, report: &CompactionReport) -> Result<()> {
        let last = LastRun {
            finished_at: self.deps.clock.now(),
            partitions_compacted: report.partitions_compacted,
            files_in: report.files_in,
            files_out: report.files_out,
            elapsed_ms: report.elapsed_ms,
        };
        let body = serde_json::to_vec(&last).expect("a run record serializes");
        self.deps
            .state
            .put(LAST_RUN_KEY, Bytes::from(body), Metadata::new())
            .await?;
        Ok(())
    }

    /// After a run: its result counted and, for a successful one, the small files it left
    /// measured (a failure to measure is logged, never the run's).
    pub(super) async fn after_run(&self, result: &Result<CompactionReport>) {
        if result.is_err() {
            self.metrics.add(&m::COMPACTION_RUNS, &["error"], 1.0);
            return;
        }
        self.metrics.add(&m::COMPACTION_RUNS, &["ok"], 1.0);
        self.metrics.set(
            &m::COMPACTION_LAST_RUN,
            &[],
            self.deps.clock.now().timestamp() as f64,
        );
        match self.small_files().await {
            Ok(debt) => {
                for (table, d) in debt {
                    self.metrics
                        .set(&m::SMALL_FILES, &[&table], d.small_files as f64);
                }
            }
            Err(e) => tracing::warn!(error = %e, "measuring the small files left failed"),
        }
    }
}

/// The last successful run recorded in `lake`'s state store, if any.
pub async fn last_run(lake: &Lake) -> Result<Option<LastRun>> {
    match lake.state.get(LAST_RUN_KEY).await {
        Ok(o) => serde_json::from_slice(&o.body)
            .map(Some)
            .map_err(|e| LakeError::Pipeline(format!("{LAST_RUN_KEY}: {e}"))),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}
