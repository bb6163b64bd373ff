//! What ingestion has written but not committed ([`crate::Lake::pending_files`]): compaction
//! leaves those partitions alone until the batch is finished or rolled back.

use super::FileEntry;
use std::collections::BTreeSet;

/// Why a partition with these files must wait, if one of them belongs to an uncommitted batch.
pub(super) fn pending_batch(files: &[FileEntry], uncommitted: &BTreeSet<String>) -> Option<String> {
    files
        .iter()
        .find(|f| uncommitted.contains(&f.key))
        .map(|f| format!("{} belongs to an ingestion batch that has not committed; it is finished or rolled back first", f.key))
}
