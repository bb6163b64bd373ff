//! The rolling writer of compaction's merged files, sorting the rows by the table's declared
//! `sort` columns.

use crate::error::{LakeError, Result};
use crate::normalize::writer_properties;
use arrow::array::RecordBatch;
use arrow::compute::{
    SortColumn, SortOptions, concat_batches, lexsort_to_indices, take_record_batch,
};
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use std::sync::Arc;
use tarn_core::ObjectStore;

/// The most Arrow memory the rows of one sorted run take: compaction sorts the rows it merges in
/// runs of up to this size (a partition smaller than that is sorted whole) and writes each run as
/// row groups of its own, so every row group, and every page, covers a narrow range of the sort
/// columns.
pub(crate) const SORT_RUN_BYTES: usize = 64 << 20;

/// How a table's merged files are laid out: the columns its rows are sorted by and the columns
/// that get bloom filters.
#[derive(Debug, Clone, Default)]
pub(crate) struct FileLayout {
    pub(crate) sort: Vec<String>,
    pub(crate) bloom: Vec<String>,
}

/// What [`Outputs`] and the copied files added to a partition's new location.
pub(crate) struct Written {
    pub(crate) files: usize,
    pub(crate) bytes: u64,
    /// rows of the merged outputs
    pub(crate) rows: u64,
    /// rows of the files copied as they are
    pub(crate) carried_rows: u64,
}

/// The merged output files of one partition: rows streamed in, a new file begun once the bytes
/// written reach the target. Memory: one row group being encoded (at most half the target, at
/// most 64 MiB) plus the current output's bytes, which the store port takes whole (the S3 store
/// sends a body above 8 MiB as a multipart upload); with sort columns, also the run being
/// gathered ([`SORT_RUN_BYTES`]) and its sorted copy.
pub(crate) struct Outputs {
    lake: Arc<dyn ObjectStore>,
    schema: SchemaRef,
    target: u64,
    /// `<new location key>c-<job>`; files are `<stem>-00000.parquet`, ...
    stem: String,
    layout: FileLayout,
    writer: Option<ArrowWriter<Vec<u8>>>,
    /// the rows of the run being gathered, with sort columns
    run: Vec<RecordBatch>,
    run_bytes: usize,
    /// a run is sorted and written once it holds this many bytes ([`SORT_RUN_BYTES`])
    run_limit: usize,
    pub(crate) files: usize,
    pub(crate) bytes: u64,
    pub(crate) rows: u64,
}

impl Outputs {
    pub(crate) fn new(
        lake: Arc<dyn ObjectStore>,
        schema: SchemaRef,
        target: u64,
        stem: String,
        layout: FileLayout,
    ) -> Self {
        Self {
            lake,
            schema,
            target,
            stem,
            layout,
            writer: None,
            run: Vec::new(),
            run_bytes: 0,
            run_limit: SORT_RUN_BYTES,
            files: 0,
            bytes: 0,
            rows: 0,
        }
    }

    fn props(&self) -> Result<WriterProperties> {
        let row_group = (self.target / 2).clamp(1, 64 << 20) as usize;
        Ok(writer_properties(&self.layout.bloom)
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
            .set_max_row_group_bytes(Some(row_group))
            .set_created_by("tarn compaction".into())
            .build())
    }

    /// Adds rows: written through at once without sort columns, else gathered into the current
    /// run, which is sorted and written once it reaches [`SORT_RUN_BYTES`].
    pub(crate) async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if self.layout.sort.is_empty() {
            return self.write_through(batch).await;
        }
        self.run_bytes += batch.get_array_memory_size();
        self.run.push(batch.clone());
        if self.run_bytes >= self.run_limit {
            self.write_run().await?;
        }
        Ok(())
    }

    /// Sorts the gathered run by the sort columns (ascending, nulls last) and writes it as row
    /// groups of its own.
    async fn write_run(&mut self) -> Result<()> {
        if self.run.is_empty() {
            return Ok(());
        }
        let run = concat_batches(&self.schema, &std::mem::take(&mut self.run))?;
        self.run_bytes = 0;
        let columns = self
            .layout
            .sort
            .iter()
            .map(|name| {
                let values = run.column_by_name(name).ok_or_else(|| {
                    LakeError::Pipeline(format!("the sort column {name} is not in the table"))
                })?;
                Ok(SortColumn {
                    values: values.clone(),
                    options: Some(SortOptions {
                        descending: false,
                        nulls_first: false,
                    }),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let sorted = take_record_batch(&run, &lexsort_to_indices(&columns, None)?)?;
        drop(run);
        // a run is written in slices, so the file can roll over at the target in its middle
        const SLICE: usize = 8192;
        let mut offset = 0;
        while offset < sorted.num_rows() {
            let len = SLICE.min(sorted.num_rows() - offset);
            self.write_through(&sorted.slice(offset, len)).await?;
            offset += len;
        }
        if let Some(w) = self.writer.as_mut() {
            w.flush()?;
        }
        Ok(())
    }

    async fn write_through(&mut self, batch: &RecordBatch) -> Result<()> {
        if self.writer.is_none() {
            self.writer = Some(ArrowWriter::try_new(
                Vec::new(),
                self.schema.clone(),
                Some(self.props()?),
            )?);
        }
        let w = self.writer.as_mut().expect("a writer");
        w.write(batch)?;
        self.rows += batch.num_rows() as u64;
        if w.bytes_written() as u64 >= self.target {
            self.close().await?;
        }
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        let Some(w) = self.writer.take() else {
            return Ok(());
        };
        let body = w.into_inner()?;
        let key = format!("{}-{:05}.parquet", self.stem, self.files);
        self.bytes += body.len() as u64;
        self.files += 1;
        self.lake
            .put(&key, Bytes::from(body), Default::default())
            .await?;
        Ok(())
    }

    pub(crate) async fn finish(&mut self) -> Result<()> {
        self.write_run().await?;
        self.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    /// (device, n) of every row of every output file, per row group.
    async fn row_groups(lake: &dyn ObjectStore) -> Vec<Vec<(Option<String>, i64)>> {
        let mut out = Vec::new();
        for o in lake.list("t/").await.unwrap() {
            let body = lake.get(&o.key).await.unwrap().body;
            let b = ParquetRecordBatchReaderBuilder::try_new(body).unwrap();
            for rg in 0..b.metadata().num_row_groups() {
                let body = lake.get(&o.key).await.unwrap().body;
                let reader = ParquetRecordBatchReaderBuilder::try_new(body)
                    .unwrap()
                    .with_row_groups(vec![rg])
                    .build()
                    .unwrap();
                let mut rows = Vec::new();
                for batch in reader {
                    let batch = batch.unwrap();
                    let d = batch.column(0).as_string::<i32>();
                    let n = batch.column(1).as_primitive::<Int64Type>();
                    for i in 0..batch.num_rows() {
                        rows.push(((!d.is_null(i)).then(|| d.value(i).to_string()), n.value(i)));
                    }
                }
                out.push(rows);
            }
        }
        out
    }

    #[tokio::test]
    async fn rows_are_sorted_in_runs_each_its_own_row_groups() {
        let dir = tempfile::tempdir().unwrap();
        let lake: Arc<dyn ObjectStore> =
            Arc::new(tarn_core::LocalObjectStore::open("lake", dir.path()).unwrap());
        let schema = Arc::new(Schema::new(vec![
            Field::new("device", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
        ]));
        let mut out = Outputs::new(
            lake.clone(),
            schema.clone(),
            1 << 30,
            "t/c".into(),
            FileLayout {
                sort: vec!["device".into(), "n".into()],
                bloom: vec![],
            },
        );
        let batch = |start: i64| {
            let n: Vec<i64> = (start..start + 100).rev().collect();
            let d: Vec<Option<String>> = n
                .iter()
                .map(|n| (n % 10 != 0).then(|| format!("d{}", n % 3)))
                .collect();
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from(d)),
                    Arc::new(Int64Array::from(n)),
                ],
            )
            .unwrap()
        };
        // runs of two batches: the third batch is a run of its own, written by finish
        out.run_limit = 2 * batch(0).get_array_memory_size();
        for start in [0, 100, 200] {
            out.write(&batch(start)).await.unwrap();
        }
        out.finish().await.unwrap();
        assert_eq!((out.files, out.rows), (1, 300));

        let groups = row_groups(lake.as_ref()).await;
        assert_eq!(groups.iter().map(Vec::len).collect::<Vec<_>>(), [200, 100]);
        let key = |r: &(Option<String>, i64)| (r.0.is_none(), r.0.clone(), r.1);
        for g in &groups {
            assert!(g.windows(2).all(|w| key(&w[0]) <= key(&w[1])), "{g:?}");
        }
        // every row once
        let mut all: Vec<i64> = groups.iter().flatten().map(|r| r.1).collect();
        all.sort();
        assert_eq!(all, (0..300).collect::<Vec<_>>());
        // nulls last: each run ends with its rows without a device
        assert_eq!(groups[1].last().unwrap().0, None);
        assert_eq!(groups[1][0], (Some("d0".into()), 201));
    }
}
