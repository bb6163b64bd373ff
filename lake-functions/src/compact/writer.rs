//! The rolling writer of compaction's merged files.

use crate::error::Result;
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use std::sync::Arc;
use tarn_core::ObjectStore;

/// What [`Outputs`] and the copied files added to a partition's new location.
pub(super) struct Written {
    pub(super) files: usize,
    pub(super) bytes: u64,
    /// rows of the merged outputs
    pub(super) rows: u64,
    /// rows of the files copied as they are
    pub(super) carried_rows: u64,
}

/// The merged output files of one partition: rows streamed in, a new file begun once the bytes
/// written reach the target. Memory: one row group being encoded (at most half the target, at
/// most 64 MiB) plus the current output's bytes, which the store port takes whole (the S3 store
/// sends a body above 8 MiB as a multipart upload).
pub(super) struct Outputs {
    lake: Arc<dyn ObjectStore>,
    schema: SchemaRef,
    target: u64,
    /// `<new location key>c-<job>`; files are `<stem>-00000.parquet`, ...
    stem: String,
    writer: Option<ArrowWriter<Vec<u8>>>,
    pub(super) files: usize,
    pub(super) bytes: u64,
    pub(super) rows: u64,
}

impl Outputs {
    pub(super) fn new(
        lake: Arc<dyn ObjectStore>,
        schema: SchemaRef,
        target: u64,
        stem: String,
    ) -> Self {
        Self {
            lake,
            schema,
            target,
            stem,
            writer: None,
            files: 0,
            bytes: 0,
            rows: 0,
        }
    }

    fn props(&self) -> Result<WriterProperties> {
        let row_group = (self.target / 2).clamp(1, 64 << 20) as usize;
        Ok(WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
            .set_max_row_group_bytes(Some(row_group))
            .set_created_by("tarn compaction".into())
            .build())
    }

    pub(super) async fn write(&mut self, batch: &arrow::array::RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
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

    pub(super) async fn finish(&mut self) -> Result<()> {
        self.close().await
    }
}
