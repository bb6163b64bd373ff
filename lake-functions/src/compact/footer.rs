//! A Parquet file's metadata read from the end of its object with ranged reads
//! ([`ObjectStore::get_range`]), never its body: what compaction needs of a file it carries over
//! (its row count) while the store copies the file itself.
//!
//! A Parquet file ends with its metadata (Thrift), the metadata's length (4 bytes, little
//! endian) and `PAR1`. The first read takes the last [`FOOTER_PREFETCH`] bytes, which hold the
//! whole metadata of tarn's files; a longer metadata costs one more read of exactly its bytes.

use crate::error::{LakeError, Result};
use bytes::Bytes;
use parquet::file::FOOTER_SIZE;
use parquet::file::metadata::{FooterTail, ParquetMetaData, ParquetMetaDataReader};
use tarn_core::ObjectStore;

/// How many bytes of a file's end the first read takes.
pub const FOOTER_PREFETCH: u64 = 16 << 10;

/// The metadata of the Parquet file at `key`, `size` bytes long (as listed).
pub async fn read_metadata(
    store: &dyn ObjectStore,
    key: &str,
    size: u64,
) -> Result<ParquetMetaData> {
    let footer = FOOTER_SIZE as u64;
    let not_parquet = |why: String| LakeError::Pipeline(format!("{key} is not Parquet: {why}"));
    if size < footer {
        return Err(not_parquet(format!("{size} bytes, shorter than a footer")));
    }
    let start = size - size.min(FOOTER_PREFETCH);
    let tail = store.get_range(key, start..size).await?;
    if tail.len() as u64 != size - start {
        return Err(not_parquet(format!(
            "read {} bytes of its end, expected {} (did it change?)",
            tail.len(),
            size - start
        )));
    }
    let last: &[u8; FOOTER_SIZE] = tail[tail.len() - FOOTER_SIZE..]
        .try_into()
        .expect("the footer's length");
    let tail_of = FooterTail::try_new(last)?;
    if tail_of.is_encrypted_footer() {
        return Err(not_parquet("its footer is encrypted".into()));
    }
    let len = tail_of.metadata_length() as u64;
    if len + footer > size {
        return Err(not_parquet(format!(
            "its footer gives {len} bytes of metadata in a file of {size}"
        )));
    }
    let metadata: Bytes = if len + footer <= tail.len() as u64 {
        tail.slice(tail.len() - (len + footer) as usize..tail.len() - FOOTER_SIZE)
    } else {
        store
            .get_range(key, size - footer - len..size - footer)
            .await?
    };
    Ok(ParquetMetaDataReader::decode_metadata(&metadata)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;
    use parquet::arrow::ArrowWriter;
    use std::sync::Arc;
    use tarn_core::{ErrorKind, LocalObjectStore, Metadata};

    /// A Parquet file of `rows` rows, in `groups` row groups.
    fn parquet(rows: usize, groups: usize) -> Bytes {
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, false),
            Field::new("s", DataType::Utf8, false),
        ]));
        let props = parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(rows.div_ceil(groups)))
            .build();
        let mut out = Vec::new();
        let mut w = ArrowWriter::try_new(&mut out, schema.clone(), Some(props)).unwrap();
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values(0..rows as i64)),
                Arc::new(StringArray::from_iter_values(
                    (0..rows).map(|i| format!("row {i} {}", uuid::Uuid::new_v4())),
                )),
            ],
        )
        .unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        Bytes::from(out)
    }

    async fn store_with(key: &str, body: Bytes) -> (tempfile::TempDir, LocalObjectStore, u64) {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalObjectStore::open("lake", dir.path()).unwrap();
        let size = body.len() as u64;
        store.put(key, body, Metadata::new()).await.unwrap();
        (dir, store, size)
    }

    #[tokio::test]
    async fn the_row_count_comes_from_the_footer_of_a_small_or_a_large_file() {
        // a file smaller than the prefetch, one larger, and one whose metadata is longer than
        // the prefetch (many row groups): all read right
        for (rows, groups, long_metadata) in
            [(10, 1, false), (40_000, 2, false), (20_000, 400, true)]
        {
            let body = parquet(rows, groups);
            let n = body.len();
            let len = u32::from_le_bytes(body[n - 8..n - 4].try_into().unwrap()) as u64;
            assert_eq!(len + 8 > FOOTER_PREFETCH, long_metadata, "{len}");
            assert_eq!(n as u64 > FOOTER_PREFETCH, rows > 10, "{n}");
            let (_d, store, size) = store_with("t/a.parquet", body).await;
            let md = read_metadata(&store, "t/a.parquet", size).await.unwrap();
            assert_eq!(md.file_metadata().num_rows(), rows as i64);
            assert_eq!(md.num_row_groups(), groups, "{rows} rows");
        }
    }

    #[tokio::test]
    async fn what_is_not_parquet_or_not_there_is_an_error() {
        let (_d, store, size) = store_with("t/x", Bytes::from_static(b"not a parquet file")).await;
        let e = read_metadata(&store, "t/x", size).await.unwrap_err();
        assert!(e.to_string().contains("footer"), "{e}");
        let (_d, store, size) = store_with("t/y", Bytes::from_static(b"PAR1")).await;
        let e = read_metadata(&store, "t/y", size).await.unwrap_err();
        assert!(e.to_string().contains("shorter than a footer"), "{e}");
        // a footer that claims more metadata than the file holds
        let mut body = b"PAR1xxxx".to_vec();
        body.extend_from_slice(&1000u32.to_le_bytes());
        body.extend_from_slice(b"PAR1");
        let (_d, store, size) = store_with("t/z", Bytes::from(body)).await;
        let e = read_metadata(&store, "t/z", size).await.unwrap_err();
        assert!(e.to_string().contains("1000 bytes of metadata"), "{e}");
        match read_metadata(&store, "t/missing", 100).await.unwrap_err() {
            LakeError::Store(e) => assert_eq!(e.kind(), ErrorKind::NotFound),
            other => panic!("{other}"),
        }
    }
}
