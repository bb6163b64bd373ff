//! The pure planner: which files of one partition to merge, which to carry over as they are.
//! No I/O; unit-tested on synthetic file lists.

use serde::{Deserialize, Serialize};

/// The default size compacted files are written toward (128 MiB, what Athena reads best).
pub const DEFAULT_TARGET_SIZE: u64 = 128 << 20;

/// One visible Parquet file of a partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// the object's key in the lake store
    pub key: String,
    pub size: u64,
}

impl FileEntry {
    pub fn new(key: impl Into<String>, size: u64) -> Self {
        Self {
            key: key.into(),
            size,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PlanConfig {
    /// files are merged toward this size (bytes); a file at least this big is "big"
    pub target_size: u64,
    /// a partition is compacted only when at least this many of its files are small (≥ 2)
    pub min_small_files: usize,
}

impl Default for PlanConfig {
    fn default() -> Self {
        Self {
            target_size: DEFAULT_TARGET_SIZE,
            min_small_files: 2,
        }
    }
}

/// What to do with one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionPlan {
    /// the small files, sorted by key: their rows are streamed, in this order, into new files
    pub merge: Vec<FileEntry>,
    /// the files already at the target size, sorted by key: copied byte for byte to the new
    /// location (the location swap moves the whole partition, so every file must be there)
    pub carry: Vec<FileEntry>,
    /// `merge` bin-packed toward the target size (next fit, in key order): the expected output
    /// files. The executor rolls to a new output once the bytes it actually wrote reach the
    /// target, so the real count can be lower (Parquet re-encodes merged rows smaller).
    pub bins: Vec<Vec<FileEntry>>,
}

impl PartitionPlan {
    pub fn files_in(&self) -> usize {
        self.merge.len() + self.carry.len()
    }
    pub fn bytes_in(&self) -> u64 {
        self.merge.iter().chain(&self.carry).map(|f| f.size).sum()
    }
}

/// Why a partition is left alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum NoPlan {
    /// fewer small files than `min_small_files`
    FewSmallFiles { small: usize },
}

/// Plans one partition: compacted when at least `min_small_files` files are below the target.
/// Stable: the result depends only on the set of files, never on their listing order.
pub fn plan_partition(files: &[FileEntry], config: &PlanConfig) -> Result<PartitionPlan, NoPlan> {
    let target = config.target_size.max(1);
    let mut sorted: Vec<FileEntry> = files.to_vec();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    sorted.dedup_by(|a, b| a.key == b.key);
    let (merge, carry): (Vec<FileEntry>, Vec<FileEntry>) =
        sorted.into_iter().partition(|f| f.size < target);
    if merge.len() < config.min_small_files.max(2) {
        return Err(NoPlan::FewSmallFiles { small: merge.len() });
    }
    let bins = bin_pack(&merge, target);
    Ok(PartitionPlan { merge, carry, bins })
}

/// Next-fit bin packing in the given order: a bin is closed when the next file would take it
/// over the target.
pub fn bin_pack(files: &[FileEntry], target: u64) -> Vec<Vec<FileEntry>> {
    let mut bins: Vec<Vec<FileEntry>> = Vec::new();
    let mut current: Vec<FileEntry> = Vec::new();
    let mut size = 0u64;
    for f in files {
        if !current.is_empty() && size + f.size > target {
            bins.push(std::mem::take(&mut current));
            size = 0;
        }
        size += f.size;
        current.push(f.clone());
    }
    if !current.is_empty() {
        bins.push(current);
    }
    bins
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(key: &str, size: u64) -> FileEntry {
        FileEntry::new(key, size)
    }

    fn cfg(target: u64) -> PlanConfig {
        PlanConfig {
            target_size: target,
            min_small_files: 2,
        }
    }

    #[test]
    fn one_small_file_is_left_alone() {
        assert_eq!(
            plan_partition(&[], &cfg(100)),
            Err(NoPlan::FewSmallFiles { small: 0 })
        );
        assert_eq!(
            plan_partition(&[f("a", 10)], &cfg(100)),
            Err(NoPlan::FewSmallFiles { small: 1 })
        );
        // big files do not count, however many
        let big: Vec<FileEntry> = (0..50).map(|i| f(&format!("k{i:02}"), 100 + i)).collect();
        let mut with_one_small = big.clone();
        with_one_small.push(f("z", 5));
        assert_eq!(
            plan_partition(&with_one_small, &cfg(100)),
            Err(NoPlan::FewSmallFiles { small: 1 })
        );
    }

    #[test]
    fn small_files_are_merged_and_big_ones_carried() {
        let files = [
            f("c", 30),
            f("a", 30),
            f("big", 100),
            f("b", 50),
            f("d", 200),
        ];
        let plan = plan_partition(&files, &cfg(100)).unwrap();
        assert_eq!(plan.merge, [f("a", 30), f("b", 50), f("c", 30)]);
        assert_eq!(plan.carry, [f("big", 100), f("d", 200)]);
        assert_eq!(plan.bins, [vec![f("a", 30), f("b", 50)], vec![f("c", 30)]]);
        assert_eq!(plan.files_in(), 5);
        assert_eq!(plan.bytes_in(), 410);
    }

    #[test]
    fn min_small_files_is_configurable() {
        let files = [f("a", 1), f("b", 1), f("c", 1)];
        assert!(
            plan_partition(
                &files,
                &PlanConfig {
                    target_size: 10,
                    min_small_files: 3
                }
            )
            .is_ok()
        );
        assert_eq!(
            plan_partition(
                &files,
                &PlanConfig {
                    target_size: 10,
                    min_small_files: 4
                }
            ),
            Err(NoPlan::FewSmallFiles { small: 3 })
        );
        // below 2 means 2: merging one file into one file gains nothing
        assert!(
            plan_partition(
                &[f("a", 1)],
                &PlanConfig {
                    target_size: 10,
                    min_small_files: 0
                }
            )
            .is_err()
        );
    }

    #[test]
    fn the_plan_does_not_depend_on_listing_order() {
        let files: Vec<FileEntry> = (0..40)
            .map(|i| f(&format!("part-{:03}", (i * 17) % 40), 3 + (i % 7) * 5))
            .collect();
        let a = plan_partition(&files, &cfg(50)).unwrap();
        let mut rev = files.clone();
        rev.reverse();
        let b = plan_partition(&rev, &cfg(50)).unwrap();
        assert_eq!(a, b);
        // every small file is in exactly one bin, in key order, and no bin overflows unless it
        // holds a single file
        let flat: Vec<FileEntry> = a.bins.iter().flatten().cloned().collect();
        assert_eq!(flat, a.merge);
        assert!(a.merge.windows(2).all(|w| w[0].key < w[1].key));
        for bin in &a.bins {
            assert!(
                bin.len() == 1 || bin.iter().map(|f| f.size).sum::<u64>() <= 50,
                "{bin:?}"
            );
        }
        // next fit: two neighbouring bins never fit in one
        for w in a.bins.windows(2) {
            let s: u64 = w[0].iter().map(|f| f.size).sum::<u64>() + w[1][0].size;
            assert!(s > 50);
        }
    }

    #[test]
    fn duplicate_listings_are_planned_once() {
        let plan = plan_partition(&[f("a", 1), f("a", 1), f("b", 1)], &cfg(10)).unwrap();
        assert_eq!(plan.merge, [f("a", 1), f("b", 1)]);
    }

    #[test]
    fn bin_packing_edges() {
        assert!(bin_pack(&[], 10).is_empty());
        assert_eq!(
            bin_pack(&[f("a", 10), f("b", 10)], 10),
            [vec![f("a", 10)], vec![f("b", 10)]]
        );
        assert_eq!(
            bin_pack(&[f("a", 5), f("b", 5)], 10),
            [vec![f("a", 5), f("b", 5)]]
        );
        assert_eq!(
            bin_pack(&[f("a", 15), f("b", 1)], 10),
            [vec![f("a", 15)], vec![f("b", 1)]]
        );
    }
}
