//! Retention: each table's `x-tarn.retention` turned into erasures of the documents received
//! before now minus the retention, and the schedule `tarn serve` runs them on.

use super::{EraseReport, Erasure, Selector};
use crate::error::Result;
use chrono::{DateTime, Utc};
use std::time::Duration;
use tarn_catalog::TableSpec;
use tracing::{info, warn};

/// One [`Selector::ReceivedBefore`] per table that declares a retention, in table order: the
/// documents received before `now - retention`.
pub fn retention_selectors(tables: &[TableSpec], now: DateTime<Utc>) -> Vec<Selector> {
    let mut out: Vec<Selector> = tables
        .iter()
        .filter_map(|t| {
            let keep = chrono::Duration::from_std(t.retention?).ok()?;
            Some(Selector::ReceivedBefore {
                table: t.name.clone(),
                before: now.checked_sub_signed(keep)?,
            })
        })
        .collect();
    out.sort_by(|a, b| a.describe().cmp(&b.describe()));
    out
}

/// The retention erasures due now, each built by `make` and run in turn; `done` is called with
/// each finished report (the driver records it in the trail). Returns the reports.
pub async fn run_retention(
    tables: &[TableSpec],
    now: DateTime<Utc>,
    make: &(dyn Fn(Selector) -> Erasure + Send + Sync),
    done: &(dyn Fn(&EraseReport) + Send + Sync),
) -> Result<Vec<EraseReport>> {
    let mut reports = Vec::new();
    for s in retention_selectors(tables, now) {
        let r = make(s).execute().await?;
        if !r.finished.is_empty() {
            info!(selector = %r.selector.describe(), documents = r.documents.len(), rows = r.rows, objects = r.objects.len(), "retention erased");
        }
        done(&r);
        reports.push(r);
    }
    Ok(reports)
}

/// Runs [`run_retention`] every `interval` until `shutdown` turns true (`tarn serve`'s
/// schedule); `now` gives the time of each run. Errors are logged and the next run retries (an
/// interrupted erasure is finished by the next one). Returns how many runs it made.
pub async fn run_retention_every(
    interval: Duration,
    shutdown: tokio::sync::watch::Receiver<bool>,
    tables: Vec<TableSpec>,
    now: impl Fn() -> DateTime<Utc> + Send + Sync,
    make: impl Fn(Selector) -> Erasure + Send + Sync,
    done: impl Fn(&EraseReport) + Send + Sync,
) -> usize {
    if tables.iter().all(|t| t.retention.is_none()) {
        return 0;
    }
    crate::compact::every(interval, shutdown, || async {
        if let Err(e) = run_retention(&tables, now(), &make, &done).await {
            warn!(error = %e, "scheduled retention failed; the next run retries");
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;
    use std::path::Path;

    fn spec(name: &str, retention: Option<&str>) -> TableSpec {
        let mut x = json!({"accept": ["application/json"]});
        if let Some(r) = retention {
            x["retention"] = json!(r);
        }
        TableSpec::from_value(
            Path::new(&format!("{name}.json")),
            json!({"title": name, "type": "object", "properties": {"a": {"type": "string"}}, "x-tarn": x}),
        )
        .unwrap()
    }

    #[test]
    fn each_table_with_a_retention_gets_its_cutoff() {
        let now = Utc.with_ymd_and_hms(2025, 6, 10, 12, 0, 0).unwrap();
        let s = retention_selectors(
            &[
                spec("b", Some("10d")),
                spec("a", Some("36h")),
                spec("c", None),
            ],
            now,
        );
        assert_eq!(
            s,
            [
                Selector::ReceivedBefore {
                    table: "a".into(),
                    before: Utc.with_ymd_and_hms(2025, 6, 9, 0, 0, 0).unwrap()
                },
                Selector::ReceivedBefore {
                    table: "b".into(),
                    before: Utc.with_ymd_and_hms(2025, 5, 31, 12, 0, 0).unwrap()
                },
            ]
        );
        assert!(retention_selectors(&[spec("c", None)], now).is_empty());
    }
}
