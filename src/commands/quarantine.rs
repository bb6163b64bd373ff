//! `tarn quarantine list|show|replay|release`: an operator's review of rejected and quarantined
//! documents, driving `tarn_lake::review` (see docs/contract.md). Never prints a document's
//! content.

use crate::cli::{Format, QuarantineAction, QuarantineFilterArgs, QuarantineStatus, parse_since};
use crate::commands::review::Review;
use crate::config::Config;
use anyhow::bail;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use tarn_core::{DocumentRow, Status};
use tarn_lake::review::{self, Filter, Outcome};
use tarn_query::{QueryResult, ResultColumn};

pub async fn run(action: QuarantineAction, config: Config) -> anyhow::Result<()> {
    match action {
        QuarantineAction::List(a) => {
            let filter = filter(&a.filter)?;
            let r = Review::open(config, false).await?;
            let rows = review::list(&r.lake, &filter).await?;
            r.close().await?;
            print(a.format, list_result(&rows));
        }
        QuarantineAction::Show(a) => {
            let r = Review::open(config, false).await?;
            let d = review::show(&r.lake, a.id.trim()).await?;
            r.close().await?;
            print(a.format, show_result(&d));
        }
        QuarantineAction::Replay(a) => {
            if a.ids.is_empty() && is_empty(&a.filter) {
                bail!(
                    "name the documents to replay by id, or select them with --table, --reason, --status, --since or --until (tarn quarantine list shows them)"
                );
            }
            let filter = filter(&a.filter)?;
            let r = Review::open(config, true).await?;
            let ids: Vec<String> = if a.ids.is_empty() {
                review::list(&r.lake, &filter)
                    .await?
                    .into_iter()
                    .map(|row| row.id)
                    .collect()
            } else {
                a.ids.iter().map(|i| i.trim().to_string()).collect()
            };
            let out = r.rerun().replay(&ids).await;
            r.close().await?;
            print(a.format, outcome_result(&out?));
        }
        QuarantineAction::Release(a) => {
            let r = Review::open(config, true).await?;
            let out = r.rerun().release(a.id.trim(), &a.reason).await;
            r.close().await?;
            print(a.format, outcome_result(&[out?]));
        }
    }
    Ok(())
}

fn is_empty(f: &QuarantineFilterArgs) -> bool {
    f.table.is_none()
        && f.reason.is_none()
        && f.status.is_none()
        && f.since.is_none()
        && f.until.is_none()
}

fn filter(f: &QuarantineFilterArgs) -> anyhow::Result<Filter> {
    let now = Utc::now();
    let time = |flag: &str, v: &Option<String>| -> anyhow::Result<Option<DateTime<Utc>>> {
        v.as_deref()
            .map(|s| {
                parse_since(s, now).map_err(|e| anyhow::anyhow!(e.replacen("--since", flag, 1)))
            })
            .transpose()
    };
    Ok(Filter {
        table: f.table.clone(),
        reason: f.reason.clone(),
        status: f.status.map(|s| match s {
            QuarantineStatus::Rejected => Status::Rejected,
            QuarantineStatus::Quarantined => Status::Quarantined,
        }),
        since: time("--since", &f.since)?,
        until: time("--until", &f.until)?,
    })
}

fn print(format: Format, result: QueryResult) {
    print!("{}", result.render(format.into()));
}

/// Result columns from `"name:type name:type ..."`.
fn columns(spec: &str) -> Vec<ResultColumn> {
    spec.split_whitespace()
        .map(|c| {
            let (name, data_type) = c.split_once(':').expect("name:type");
            ResultColumn {
                name: name.into(),
                data_type: data_type.into(),
            }
        })
        .collect()
}

/// A result whose rows are `objects` (JSON objects) picked by the columns' names.
fn result(spec: &str, objects: &[Value]) -> QueryResult {
    let columns = columns(spec);
    let rows = objects
        .iter()
        .map(|o| columns.iter().map(|c| o[&c.name].clone()).collect())
        .collect();
    QueryResult { columns, rows }
}

/// A document row as a JSON object, its times RFC 3339 UTC with milliseconds and its table as
/// `table`.
fn row_object(r: &DocumentRow) -> Value {
    let mut v = serde_json::to_value(r).expect("a row serializes");
    v["table"] = json!(r.table_name);
    v["received_at"] = time(&r.received_at);
    v["processed_at"] = time(&r.processed_at);
    v
}

fn time(t: &DateTime<Utc>) -> Value {
    json!(t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// `id, table, status, reason, scan_result, content_type, size_bytes, producer, received_at,
/// processed_at`.
fn list_result(rows: &[DocumentRow]) -> QueryResult {
    let objects: Vec<Value> = rows.iter().map(row_object).collect();
    result(
        "id:string table:string status:string reason:string scan_result:string \
         content_type:string size_bytes:bigint producer:string received_at:timestamp \
         processed_at:timestamp",
        &objects,
    )
}

/// One row per outcome of the document, oldest first, the current one last: `id, table,
/// status, reason, scan_engine, scan_result, processed_at, ended_by, operator, note,
/// content_type, size_bytes, sha256, producer, received_at, quarantine_copy_bytes`
/// (`ended_by`, `operator` and `note`: the action that moved the document on from it).
fn show_result(d: &review::Detail) -> QueryResult {
    let mut objects: Vec<Value> = d
        .history
        .iter()
        .map(|h| {
            let mut v = row_object(&h.row);
            v["ended_by"] = json!(h.action);
            v["operator"] = json!(h.operator);
            v["note"] = json!(h.note);
            v
        })
        .collect();
    let mut current = row_object(&d.row);
    current["quarantine_copy_bytes"] = json!(d.copy_bytes);
    objects.push(current);
    result(
        "id:string table:string status:string reason:string scan_engine:string \
         scan_result:string processed_at:timestamp ended_by:string operator:string note:string \
         content_type:string size_bytes:bigint sha256:string producer:string \
         received_at:timestamp quarantine_copy_bytes:bigint",
        &objects,
    )
}

/// `id, table, before, after, reason` (`after` null: left as it was, `reason` says why).
pub fn outcome_result(out: &[Outcome]) -> QueryResult {
    let objects: Vec<Value> = out
        .iter()
        .map(|o| serde_json::to_value(o).expect("an outcome serializes"))
        .collect();
    result(
        "id:string table:string before:string after:string reason:string",
        &objects,
    )
}
