//! What a query read: DataFusion's Parquet scan metrics summed over a query's plan, for measuring
//! how much of the lake a query touches (the local counterpart of Athena's bytes scanned).

use crate::error::Result;
use crate::local::LocalQueryEngine;
use crate::result::QueryResult;
use datafusion::execution::context::SQLOptions;
use datafusion::physical_plan::metrics::MetricValue;
use datafusion::physical_plan::{ExecutionPlan, collect};
use serde::Serialize;
use std::sync::Arc;

/// The Parquet scan metrics of one query, summed over every scan of its plan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ScanMetrics {
    /// bytes read from Parquet files (footers, indexes, bloom filters and column chunks)
    pub bytes_scanned: u64,
    /// file ranges opened / skipped whole by statistics
    pub files_matched: u64,
    pub files_pruned: u64,
    /// row groups read / skipped by their min/max statistics
    pub row_groups_matched_statistics: u64,
    pub row_groups_pruned_statistics: u64,
    /// row groups skipped by a bloom filter
    pub row_groups_pruned_bloom_filter: u64,
    /// pages and rows skipped by the page index
    pub page_index_pages_pruned: u64,
    pub page_index_rows_pruned: u64,
    /// rows decoded and handed on by the scans
    pub rows_scanned: u64,
}

impl ScanMetrics {
    /// Adds the metrics of `plan` and every plan below it.
    fn add_plan(&mut self, plan: &Arc<dyn ExecutionPlan>) {
        let is_scan = plan.name() == "DataSourceExec";
        if let Some(set) = plan.metrics() {
            for m in set.iter() {
                match m.value() {
                    MetricValue::Count { name, count } if name == "bytes_scanned" => {
                        self.bytes_scanned += count.value() as u64;
                    }
                    MetricValue::OutputRows(rows) if is_scan => {
                        self.rows_scanned += rows.value() as u64;
                    }
                    MetricValue::PruningMetrics {
                        name,
                        pruning_metrics: p,
                    } => {
                        let (pruned, matched) = (p.pruned() as u64, p.matched() as u64);
                        match name.as_ref() {
                            "files_ranges_pruned_statistics" => {
                                self.files_pruned += pruned;
                                self.files_matched += matched;
                            }
                            "row_groups_pruned_statistics" => {
                                self.row_groups_pruned_statistics += pruned;
                                self.row_groups_matched_statistics += matched;
                            }
                            "row_groups_pruned_bloom_filter" => {
                                self.row_groups_pruned_bloom_filter += pruned;
                            }
                            "page_index_pages_pruned" => self.page_index_pages_pruned += pruned,
                            "page_index_rows_pruned" => self.page_index_rows_pruned += pruned,
                            _ => {}
                        }
                    }
                    _ => {}
                }
            }
        }
        for child in plan.children() {
            self.add_plan(child);
        }
    }
}

impl LocalQueryEngine {
    /// [`crate::QueryEngine::query`], also returning what the query's scans read.
    pub async fn query_with_metrics(&self, sql: &str) -> Result<(QueryResult, ScanMetrics)> {
        let ctx = self.context().await?;
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let df = ctx.sql_with_options(sql, options).await?;
        let schema = df.schema().as_arrow().clone();
        let plan = df.create_physical_plan().await?;
        let batches = collect(Arc::clone(&plan), ctx.task_ctx()).await?;
        let mut metrics = ScanMetrics::default();
        metrics.add_plan(&plan);
        Ok((QueryResult::from_batches(&schema, &batches)?, metrics))
    }
}
