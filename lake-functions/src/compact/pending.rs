//! What ingestion has written but not committed: the files of pipeline batches whose manifest
//! (`batches/<batch>.json` in the state store) does not say committed. The pipeline's recovery
//! rewrites or removes them, so compaction leaves their partitions alone until it has.

use super::{Compaction, FileEntry};
use crate::error::{LakeError, Result};
use serde::Deserialize;
use std::collections::BTreeSet;

impl Compaction {
    /// Files that pipeline batches wrote but did not commit (their manifest says so): the
    /// pipeline's recovery will rewrite or remove them, so their partitions wait.
    pub(super) async fn uncommitted_batch_files(&self) -> Result<BTreeSet<String>> {
        /// the fields compaction needs of the runner's `batches/<batch>.json` manifest
        #[derive(Deserialize)]
        struct ManifestView {
            #[serde(default)]
            committed: bool,
            #[serde(default)]
            files: Vec<String>,
        }
        let mut out = BTreeSet::new();
        for obj in self.deps.state.list("batches/").await? {
            let body = match self.deps.state.get(&obj.key).await {
                Ok(b) => b.body,
                Err(e) if e.kind() == tarn_core::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            let m: ManifestView = serde_json::from_slice(&body).map_err(|e| {
                LakeError::Pipeline(format!("manifest {} is unreadable: {e}", obj.key))
            })?;
            if !m.committed {
                out.extend(m.files);
            }
        }
        Ok(out)
    }
}

/// Why a partition with these files must wait, if one of them belongs to an uncommitted batch.
pub(super) fn pending_batch(files: &[FileEntry], uncommitted: &BTreeSet<String>) -> Option<String> {
    files
        .iter()
        .find(|f| uncommitted.contains(&f.key))
        .map(|f| format!("{} belongs to an ingestion batch that has not committed; the pipeline's recovery finishes it first", f.key))
}
