//! A SQL predicate (`user_id = 'u-42'`) compiled by the embedded engine and evaluated on
//! record batches of one schema: how `tarn erase --where` decides which rows go.

use crate::error::{QueryError, Result};
use arrow::array::{Array, BooleanArray, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;
use std::sync::Arc;

/// A compiled predicate over batches of one schema.
#[derive(Debug, Clone)]
pub struct SqlPredicate {
    expr: Arc<dyn PhysicalExpr>,
}

impl SqlPredicate {
    /// Compiles `sql` (a boolean expression on the schema's columns) for batches of `schema`.
    /// Refused: a syntax error, an unknown column, a result that is not a boolean.
    pub fn compile(sql: &str, schema: &SchemaRef) -> Result<Self> {
        let df_schema = DFSchema::try_from(schema.as_ref().clone())
            .map_err(|e| QueryError::Plan(e.to_string()))?;
        let ctx = SessionContext::new();
        let expr = ctx
            .parse_sql_expr(sql, &df_schema)
            .map_err(|e| QueryError::Sql(e.to_string()))?;
        let expr = ctx
            .create_physical_expr(expr, &df_schema)
            .map_err(|e| QueryError::Plan(e.to_string()))?;
        let t = expr
            .data_type(schema.as_ref())
            .map_err(|e| QueryError::Plan(e.to_string()))?;
        if t != DataType::Boolean {
            return Err(QueryError::Plan(format!(
                "the predicate is a {t}, not a boolean: write a condition such as user_id = 'u-42'"
            )));
        }
        Ok(Self { expr })
    }

    /// `true`, `false` or null per row of `batch`.
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<BooleanArray> {
        let v = self
            .expr
            .evaluate(batch)
            .and_then(|v| v.into_array(batch.num_rows()))
            .map_err(|e| QueryError::Execution(e.to_string()))?;
        v.as_any()
            .downcast_ref::<BooleanArray>()
            .cloned()
            .ok_or_else(|| QueryError::Execution("the predicate did not give booleans".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![Some("u-42"), Some("u-7"), None])),
                Arc::new(Int64Array::from(vec![Some(1), Some(5), Some(9)])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn predicates_match_rows() {
        let b = batch();
        let p = SqlPredicate::compile("user_id = 'u-42'", &b.schema()).unwrap();
        assert_eq!(
            p.evaluate(&b).unwrap(),
            BooleanArray::from(vec![Some(true), Some(false), None])
        );
        let p = SqlPredicate::compile("n > 3 AND user_id IS NULL", &b.schema()).unwrap();
        assert_eq!(
            p.evaluate(&b).unwrap(),
            BooleanArray::from(vec![false, false, true])
        );
    }

    #[test]
    fn bad_predicates_are_refused() {
        let s = batch().schema();
        assert!(SqlPredicate::compile("user_id = ", &s).is_err());
        assert!(SqlPredicate::compile("nope = 1", &s).is_err());
        assert!(SqlPredicate::compile("n + 1", &s).is_err());
    }
}
