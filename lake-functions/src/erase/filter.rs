//! Which rows of a batch an erasure removes: the rows of named documents (by id), or the rows
//! a SQL predicate matches (evaluated by a query engine the driver supplies).

use crate::error::{LakeError, Result};
use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::datatypes::DataType;
use std::collections::BTreeSet;
use std::sync::Arc;

/// A SQL predicate compiled by a query engine: `true` for each row it matches (a null is no
/// match). `tarn erase --where` uses the embedded engine's.
pub type RowPredicate =
    Arc<dyn Fn(&RecordBatch) -> std::result::Result<BooleanArray, String> + Send + Sync>;

/// The rows an erasure removes from one table's files.
#[derive(Clone)]
pub enum RowFilter {
    /// rows whose `column` holds one of `ids` (`_id` of a JSON table, `id` of `documents`)
    Ids {
        column: String,
        ids: Arc<BTreeSet<String>>,
        /// also the rows whose `status` is `erased` (`documents`: an erased row is replaced
        /// by the new one, never found as a match on its own)
        keep_erased: bool,
    },
    Predicate(RowPredicate),
}

impl std::fmt::Debug for RowFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RowFilter::Ids { column, ids, .. } => write!(f, "{column} in {} ids", ids.len()),
            RowFilter::Predicate(_) => write!(f, "a predicate"),
        }
    }
}

impl RowFilter {
    /// `true` for each row of `batch` that goes.
    pub fn matches(&self, batch: &RecordBatch) -> Result<BooleanArray> {
        match self {
            RowFilter::Ids {
                column,
                ids,
                keep_erased,
            } => {
                let col = string_column(batch, column)?;
                let status = if *keep_erased {
                    Some(string_column(batch, "status")?)
                } else {
                    None
                };
                Ok((0..batch.num_rows())
                    .map(|i| {
                        let hit = col.is_valid(i) && ids.contains(col.value(i));
                        let erased = status
                            .as_ref()
                            .is_some_and(|s| s.is_valid(i) && s.value(i) == "erased");
                        Some(hit && !erased)
                    })
                    .collect())
            }
            RowFilter::Predicate(p) => {
                let m = p(batch).map_err(LakeError::Pipeline)?;
                if m.len() != batch.num_rows() {
                    return Err(LakeError::Pipeline(format!(
                        "the predicate answered {} values for {} rows",
                        m.len(),
                        batch.num_rows()
                    )));
                }
                // a null is no match
                Ok(m.iter().map(|v| Some(v == Some(true))).collect())
            }
        }
    }

    /// The rows of `batch` that stay, and how many went.
    pub fn keep(&self, batch: &RecordBatch) -> Result<(RecordBatch, u64)> {
        let gone = self.matches(batch)?;
        let n = gone.true_count() as u64;
        if n == 0 {
            return Ok((batch.clone(), 0));
        }
        let stay = arrow::compute::not(&gone)?;
        Ok((arrow::compute::filter_record_batch(batch, &stay)?, n))
    }
}

fn string_column<'a>(
    batch: &'a RecordBatch,
    name: &str,
) -> Result<&'a arrow::array::GenericStringArray<i32>> {
    let col = batch
        .column_by_name(name)
        .ok_or_else(|| LakeError::Pipeline(format!("the files have no column {name}")))?;
    match col.data_type() {
        DataType::Utf8 => Ok(col.as_string::<i32>()),
        t => Err(LakeError::Pipeline(format!(
            "column {name} is {t}, not a string"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::StringArray;
    use arrow::datatypes::{Field, Schema};

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("status", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![
                    Some("a"),
                    Some("b"),
                    None,
                    Some("a"),
                ])),
                Arc::new(StringArray::from(vec![
                    Some("stored"),
                    Some("stored"),
                    Some("stored"),
                    Some("erased"),
                ])),
            ],
        )
        .unwrap()
    }

    fn ids(keep_erased: bool) -> RowFilter {
        RowFilter::Ids {
            column: "id".into(),
            ids: Arc::new(["a".to_string()].into()),
            keep_erased,
        }
    }

    #[test]
    fn ids_match_their_rows() {
        let m = ids(false).matches(&batch()).unwrap();
        assert_eq!(m, BooleanArray::from(vec![true, false, false, true]));
        // an erased row is not a match of its own
        let m = ids(true).matches(&batch()).unwrap();
        assert_eq!(m, BooleanArray::from(vec![true, false, false, false]));
        let (kept, gone) = ids(false).keep(&batch()).unwrap();
        assert_eq!((kept.num_rows(), gone), (2, 2));
    }

    #[test]
    fn a_predicate_null_is_no_match() {
        let p: RowPredicate = Arc::new(|b: &RecordBatch| {
            Ok((0..b.num_rows())
                .map(|i| match i {
                    0 => Some(true),
                    1 => None,
                    _ => Some(false),
                })
                .collect())
        });
        let (kept, gone) = RowFilter::Predicate(p).keep(&batch()).unwrap();
        assert_eq!((kept.num_rows(), gone), (3, 1));
        let short: RowPredicate = Arc::new(|_: &RecordBatch| Ok(BooleanArray::from(vec![true])));
        assert!(RowFilter::Predicate(short).matches(&batch()).is_err());
    }

    #[test]
    fn a_missing_column_is_an_error() {
        let f = RowFilter::Ids {
            column: "_id".into(),
            ids: Arc::new(BTreeSet::new()),
            keep_erased: false,
        };
        assert!(f.matches(&batch()).is_err());
    }
}
