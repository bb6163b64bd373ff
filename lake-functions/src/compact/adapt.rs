//! Bringing rows of older files to the table's current file schema before they are merged:
//! columns (and struct fields) matched by name, what a file lacks filled with nulls, and only
//! lossless widenings. Anything else is refused, so a merge never drops or changes a value.

use arrow::array::{Array, ArrayRef, ListArray, RecordBatch, StructArray, new_null_array};
use arrow::datatypes::{DataType, FieldRef, Fields, SchemaRef};
use std::sync::Arc;

/// `batch` with exactly `target`'s columns.
pub fn adapt_batch(batch: &RecordBatch, target: &SchemaRef) -> Result<RecordBatch, String> {
    let source = batch.schema();
    if source.fields() == target.fields() {
        return RecordBatch::try_new(target.clone(), batch.columns().to_vec())
            .map_err(|e| e.to_string());
    }
    for f in source.fields() {
        if target.field_with_name(f.name()).is_err() {
            return Err(format!(
                "a file has column {} that the table does not; merging would drop it",
                f.name()
            ));
        }
    }
    let columns = target
        .fields()
        .iter()
        .map(|to| match source.index_of(to.name()) {
            Ok(i) => adapt_array(batch.column(i), to.data_type())
                .map_err(|e| format!("column {}: {e}", to.name())),
            Err(_) => Ok(new_null_array(to.data_type(), batch.num_rows())),
        })
        .collect::<Result<Vec<_>, String>>()?;
    RecordBatch::try_new(target.clone(), columns).map_err(|e| e.to_string())
}

fn adapt_array(array: &ArrayRef, to: &DataType) -> Result<ArrayRef, String> {
    let from = array.data_type();
    if from == to {
        return Ok(array.clone());
    }
    match (from, to) {
        (DataType::Struct(from_fields), DataType::Struct(to_fields)) => {
            let s = array
                .as_any()
                .downcast_ref::<StructArray>()
                .expect("a struct array");
            adapt_struct(s, from_fields, to_fields)
        }
        (DataType::List(_), DataType::List(to_item)) => {
            let l = array
                .as_any()
                .downcast_ref::<ListArray>()
                .expect("a list array");
            let values = adapt_array(l.values(), to_item.data_type())?;
            let out = ListArray::try_new(
                to_item.clone(),
                l.offsets().clone(),
                values,
                l.nulls().cloned(),
            )
            .map_err(|e| e.to_string())?;
            Ok(Arc::new(out))
        }
        (DataType::Int8 | DataType::Int16 | DataType::Int32, DataType::Int64)
        | (
            DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Float32,
            DataType::Float64,
        ) => arrow::compute::cast(array, to).map_err(|e| e.to_string()),
        (DataType::Timestamp(a, _), DataType::Timestamp(b, _)) if a == b => {
            arrow::compute::cast(array, to).map_err(|e| e.to_string())
        }
        _ => Err(format!(
            "a file holds {from}, the table says {to}; not a lossless widening"
        )),
    }
}

fn adapt_struct(
    s: &StructArray,
    from_fields: &Fields,
    to_fields: &Fields,
) -> Result<ArrayRef, String> {
    for f in from_fields {
        if to_fields.find(f.name()).is_none() {
            return Err(format!(
                "a file has struct field {} that the table does not",
                f.name()
            ));
        }
    }
    let columns = to_fields
        .iter()
        .map(|to: &FieldRef| match from_fields.find(to.name()) {
            Some((i, _)) => {
                adapt_array(s.column(i), to.data_type()).map_err(|e| format!("{}: {e}", to.name()))
            }
            None => Ok(new_null_array(to.data_type(), s.len())),
        })
        .collect::<Result<Vec<_>, String>>()?;
    let out = StructArray::try_new(to_fields.clone(), columns, s.nulls().cloned())
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, Int32Array, Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};

    #[test]
    fn missing_columns_and_struct_fields_become_null_and_ints_widen() {
        let city = Arc::new(Field::new("city", DataType::Utf8, true));
        let addr = StructArray::new(
            vec![city.clone()].into(),
            vec![Arc::new(StringArray::from(vec!["Oslo"])) as ArrayRef],
            None,
        );
        let old = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int32, true),
            Field::new("addr", addr.data_type().clone(), true),
        ]));
        let batch = RecordBatch::try_new(
            old,
            vec![Arc::new(Int32Array::from(vec![7])), Arc::new(addr)],
        )
        .unwrap();
        let zip = Arc::new(Field::new("zip", DataType::Utf8, true));
        let target = Arc::new(Schema::new(vec![
            Field::new("new", DataType::Utf8, true),
            Field::new("addr", DataType::Struct(vec![city, zip].into()), true),
            Field::new("n", DataType::Int64, true),
        ]));
        let out = adapt_batch(&batch, &target).unwrap();
        assert_eq!(out.schema(), target);
        assert!(out.column(0).is_null(0));
        assert_eq!(
            out.column(2)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .value(0),
            7
        );
        let a = out.column(1).as_struct();
        assert_eq!(a.column(0).as_string::<i32>().value(0), "Oslo");
        assert!(a.column(1).is_null(0));
    }

    #[test]
    fn lossy_or_dropping_changes_are_refused() {
        let s = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, true),
            Field::new("gone", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            s,
            vec![
                Arc::new(Int64Array::from(vec![1])),
                Arc::new(StringArray::from(vec!["x"])),
            ],
        )
        .unwrap();
        let only_n = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
        assert!(adapt_batch(&batch, &only_n).unwrap_err().contains("gone"));
        let narrower = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int32, true),
            Field::new("gone", DataType::Utf8, true),
        ]));
        assert!(adapt_batch(&batch, &narrower).is_err());
        let to_string = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Utf8, true),
            Field::new("gone", DataType::Utf8, true),
        ]));
        assert!(adapt_batch(&batch, &to_string).is_err());
    }
}
