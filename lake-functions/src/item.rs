//! What one document becomes in its batch: its `documents` row, and its rows, sanitized object
//! or quarantine copy. The local runner and the normalize Lambda build every item here, from the
//! document as the stages left it and their verdict.

use crate::commit::BatchItem;
use crate::lake::LakeLayout;
use crate::landed;
use crate::normalize::{ndjson_batch, records_batch, split_by_partition};
use crate::scan::SKIPPED;
use crate::stage::{Document, Verdict};
use crate::validate::{NDJSON, parse_records};
use chrono::{DateTime, Utc};
use sha2::Digest;
use tarn_catalog::TableKind;
use tarn_catalog::schemas::is_valid_table_name;
use tarn_core::document::meta;
use tarn_core::{DocumentRow, GetResult, Status};

/// The table a document's row is filed under when its landed object names no valid table (no
/// declared name can start with `_`).
pub const UNKNOWN_TABLE: &str = "_unknown";

/// The landed document's size and digest, taken before any stage changed its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub size_bytes: i64,
    pub sha256: Option<String>,
}

impl Origin {
    pub fn of(body: &[u8]) -> Self {
        Self {
            size_bytes: body.len() as i64,
            sha256: Some(hex::encode(sha2::Sha256::digest(body))),
        }
    }
}

/// The table a row is filed under: `claimed` when it is a valid table name, else
/// [`UNKNOWN_TABLE`], so a hostile `table` metadata never becomes part of a key.
pub fn row_table(claimed: Option<&str>) -> String {
    match claimed {
        Some(t) if is_valid_table_name(t) => t.to_string(),
        _ => UNKNOWN_TABLE.to_string(),
    }
}

/// A document standing for a landed object that cannot be decoded (bad metadata, undecryptable,
/// not base64): what its metadata says, with no body. Its verdict is a quarantine.
pub fn undecodable(id: &str, landed: &GetResult, now: DateTime<Utc>) -> (Document, Origin) {
    let m = &landed.info.metadata;
    let doc = Document::new(
        id,
        row_table(m.get(meta::TABLE).map(String::as_str)),
        m.get(meta::CONTENT_TYPE).cloned().unwrap_or_default(),
        m.get(meta::PRODUCER).map_or("unknown", String::as_str),
        m.get(meta::REQUEST_TIME)
            .and_then(|t| landed::parse_request_time(t))
            .unwrap_or(now),
        bytes::Bytes::new(),
    );
    let origin = Origin {
        size_bytes: landed.info.size as i64,
        sha256: None,
    };
    (doc, origin)
}

/// A landed object (or its quarantine copy) opened for the stages: the document and its origin,
/// with no verdict yet; or, when it cannot be decoded, what its metadata says and a quarantine
/// verdict. `Err` only for a transient failure (KMS or the store), to be retried.
pub async fn open_landed(
    kms: &dyn tarn_core::Kms,
    id: &str,
    landed: &GetResult,
    now: DateTime<Utc>,
) -> crate::Result<(Document, Origin, Option<Verdict>)> {
    match landed::decode(kms, &tarn_core::document::ingress_key(id), landed).await {
        Ok(doc) => {
            let origin = Origin::of(&doc.body);
            Ok((doc, origin, None))
        }
        Err(e) if e.kind() == crate::error::ErrorKind::Transient => Err(e),
        Err(e) => {
            let (doc, origin) = undecodable(id, landed, now);
            Ok((doc, origin, Some(Verdict::Quarantine(e.to_string()))))
        }
    }
}

/// A document whose landed object was gone before it could be processed (a late redelivery):
/// its row says `lost`, with `reason`.
pub fn lost(
    layout: &LakeLayout,
    id: &str,
    table: &str,
    now: DateTime<Utc>,
    reason: String,
) -> BatchItem {
    let doc = Document::new(
        id,
        row_table(Some(table)),
        "",
        "unknown",
        now,
        bytes::Bytes::new(),
    );
    let origin = Origin {
        size_bytes: 0,
        sha256: None,
    };
    let mut row = row(layout, &doc, &origin, now);
    (row.status, row.reason) = (Status::Lost, Some(reason));
    BatchItem {
        row,
        data: vec![],
        object: None,
        landed: None,
        revision: None,
    }
}

fn row(layout: &LakeLayout, doc: &Document, origin: &Origin, now: DateTime<Utc>) -> DocumentRow {
    DocumentRow {
        id: doc.id.clone(),
        table_name: doc.table.clone(),
        dt: layout
            .granularity(&doc.table)
            .partition_value(doc.received_at),
        content_type: doc.content_type.clone(),
        detected_type: doc.detected_type.clone(),
        size_bytes: origin.size_bytes,
        sha256: origin.sha256.clone(),
        producer: doc.producer.clone(),
        received_at: doc.received_at,
        processed_at: now,
        status: Status::Stored,
        reason: None,
        scan_engine: doc.scan_engine.clone(),
        scan_result: doc.scan_result.clone(),
        metadata_removed: doc.metadata_removed.clone(),
        object_key: None,
        records: None,
    }
}

/// What `doc` becomes after the stages decided `verdict`: stored (its records as rows of its
/// table, or its sanitized bytes as an object), rejected or quarantined. A document stored
/// without a scan (no scan stage ran) gets `scan_result` [`SKIPPED`]. A rejected or quarantined
/// item still needs its landed object for the quarantine copy ([`BatchItem::needs_landed`]).
pub fn batch_item(
    layout: &LakeLayout,
    mut doc: Document,
    origin: Origin,
    verdict: Verdict,
    now: DateTime<Utc>,
) -> BatchItem {
    if !is_valid_table_name(&doc.table) {
        doc.table = UNKNOWN_TABLE.to_string();
    }
    let mut row = row(layout, &doc, &origin, now);
    let mut item = BatchItem {
        row: row.clone(),
        data: vec![],
        object: None,
        landed: None,
        revision: None,
    };
    let verdict = match verdict {
        Verdict::Continue => match layout.specs.get(&doc.table).map(|s| s.kind) {
            None => Verdict::Reject(format!("table {} is not declared in schemas/", doc.table)),
            Some(_) if doc.detected_type.is_none() => Verdict::Reject(
                "the validate stage did not run, so the document cannot be normalized".into(),
            ),
            Some(TableKind::Json) => {
                let records = doc.records.take();
                let (_, schema) = &layout.defs[&doc.table];
                let spec = &layout.specs[&doc.table];
                // NDJSON is decoded into Arrow straight from its bytes; other documents from
                // their records (parsed by validate, or here: the Lambda functions hand
                // documents on without them)
                let batch = if doc.content_type == NDJSON {
                    ndjson_batch(schema, &doc, &doc.body)
                } else {
                    records
                        .map_or_else(|| parse_records(&doc.content_type, &doc.body), Ok)
                        .and_then(|r| records_batch(schema, &doc, &r))
                };
                match batch.and_then(|batch| {
                    let rows = batch.num_rows() as i64;
                    Ok((rows, split_by_partition(spec, batch, doc.received_at)?))
                }) {
                    Ok((rows, data)) => {
                        row.records = Some(rows);
                        item.data = data;
                        Verdict::Continue
                    }
                    Err(reason) => Verdict::Reject(reason),
                }
            }
            Some(TableKind::Binary) => {
                row.object_key = Some(format!("objects/{}/dt={}/{}", doc.table, row.dt, doc.id));
                item.object = Some(doc.body.clone());
                Verdict::Continue
            }
        },
        other => other,
    };
    let failed = match verdict {
        Verdict::Continue => {
            // every stage passed and none scanned it: the deployment runs no scan stage
            if row.scan_result.is_none() {
                row.scan_result = Some(SKIPPED.to_string());
            }
            None
        }
        Verdict::Reject(reason) => Some((Status::Rejected, reason)),
        Verdict::Quarantine(reason) => Some((Status::Quarantined, reason)),
    };
    if let Some((status, reason)) = failed {
        (row.status, row.reason, row.records, row.object_key) = (status, Some(reason), None, None);
        (item.data, item.object) = (vec![], None);
    }
    item.row = row;
    item
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use tarn_catalog::TableSpec;

    fn layout() -> LakeLayout {
        let schemas: Vec<TableSpec> = [
            serde_json::json!({"title": "events", "type": "object",
                "properties": {"n": {"type": "integer"}},
                "x-tarn": {"accept": ["application/json"]}}),
            serde_json::json!({"title": "photos",
                "x-tarn": {"accept": ["image/png"]}}),
            serde_json::json!({"title": "readings", "type": "object",
                "properties": {"n": {"type": "integer"},
                    "taken_at": {"type": "string", "format": "date-time"}},
                "x-tarn": {"partition": {"field": "taken_at", "granularity": "day"}}}),
        ]
        .into_iter()
        .map(|s| {
            let file = format!("{}.json", s["title"].as_str().unwrap());
            TableSpec::from_value(std::path::Path::new(&file), s).unwrap()
        })
        .collect();
        let store =
            tarn_core::LocalObjectStore::open("lake", tempfile::tempdir().unwrap().keep()).unwrap();
        LakeLayout::new(&schemas, &store)
    }

    fn doc(table: &str, content_type: &str, body: &[u8]) -> Document {
        let mut d = Document::new(
            "7f1c2a9e-0000-4000-8000-000000000001",
            table,
            content_type,
            "alice",
            "2024-05-06T07:08:09Z".parse().unwrap(),
            bytes::Bytes::copy_from_slice(body),
        );
        d.detected_type = Some(content_type.into());
        d
    }

    #[test]
    fn json_documents_become_rows_even_without_parsed_records() {
        let l = layout();
        let body = br#"[{"n": 1}, {"n": 2}]"#;
        let it = batch_item(
            &l,
            doc("events", "application/json", body),
            Origin::of(body),
            Verdict::Continue,
            Utc::now(),
        );
        assert_eq!(it.row.status, Status::Stored);
        assert_eq!(it.row.records, Some(2));
        assert_eq!(it.data.len(), 1);
        assert_eq!(
            (it.data[0].0.as_str(), it.data[0].1.num_rows()),
            ("2024-05-06", 2)
        );
        assert_eq!(it.row.dt, "2024-05-06");
        assert!(!it.needs_landed());
    }

    #[test]
    fn records_are_split_by_their_partition_field_and_the_row_stays_at_the_received_time() {
        let l = layout();
        // received 2024-05-06T07:08:09Z: the window is 2024-04-06T07:08:09Z to 2024-05-07T07:08:09Z
        let body = br#"[{"n": 1, "taken_at": "2024-05-05T23:59:59Z"},
            {"n": 2, "taken_at": "2024-05-06T00:00:00Z"},
            {"n": 3},
            {"n": 4, "taken_at": "2024-05-05T10:00:00Z"},
            {"n": 5, "taken_at": "2023-01-01T00:00:00Z"},
            {"n": 6, "taken_at": "2024-05-09T00:00:00Z"},
            {"n": 7, "taken_at": null}]"#;
        let it = batch_item(
            &l,
            doc("readings", "application/json", body),
            Origin::of(body),
            Verdict::Continue,
            Utc::now(),
        );
        assert_eq!(it.row.status, Status::Stored, "{:?}", it.row.reason);
        assert_eq!(
            (it.row.dt.as_str(), it.row.records),
            ("2024-05-06", Some(7))
        );
        let split: Vec<(&str, Vec<i64>)> = it
            .data
            .iter()
            .map(|(dt, b)| {
                let n = b.column_by_name("n").unwrap();
                let n = n
                    .as_any()
                    .downcast_ref::<arrow::array::Int64Array>()
                    .unwrap();
                (dt.as_str(), n.values().to_vec())
            })
            .collect();
        assert_eq!(
            split,
            [
                ("2024-05-05", vec![1, 4]),
                ("2024-05-06", vec![2]),
                (tarn_catalog::schemas::DEFAULT_PARTITION, vec![3, 5, 6, 7]),
            ]
        );
    }

    #[test]
    fn binary_documents_become_objects_and_verdicts_become_statuses() {
        let l = layout();
        let it = batch_item(
            &l,
            doc("photos", "image/png", b"png"),
            Origin::of(b"png"),
            Verdict::Continue,
            Utc::now(),
        );
        assert_eq!(
            it.row.object_key.as_deref(),
            Some("objects/photos/dt=2024-05-06/7f1c2a9e-0000-4000-8000-000000000001")
        );
        assert_eq!(it.object.as_deref(), Some(&b"png"[..]));
        assert_eq!(it.row.scan_result.as_deref(), Some(SKIPPED), "no scan ran");
        let mut scanned = doc("photos", "image/png", b"png");
        scanned.scan_result = Some("clean".into());
        let it = batch_item(
            &l,
            scanned,
            Origin::of(b"png"),
            Verdict::Continue,
            Utc::now(),
        );
        assert_eq!(it.row.scan_result.as_deref(), Some("clean"));
        let it = batch_item(
            &l,
            doc("photos", "image/png", b"png"),
            Origin::of(b"png"),
            Verdict::Quarantine("infected: X".into()),
            Utc::now(),
        );
        assert_eq!(
            (it.row.status, it.row.reason.as_deref()),
            (Status::Quarantined, Some("infected: X"))
        );
        assert_eq!(
            it.row.scan_result, None,
            "only stored documents are marked skipped"
        );
        assert!(it.object.is_none() && it.row.object_key.is_none() && it.needs_landed());
    }

    #[test]
    fn undeclared_and_hostile_tables_are_rejected_under_a_safe_name() {
        let l = layout();
        let it = batch_item(
            &l,
            doc("nosuch", "application/json", b"{}"),
            Origin::of(b"{}"),
            Verdict::Continue,
            Utc::now(),
        );
        assert_eq!(it.row.status, Status::Rejected);
        assert_eq!(it.row.table_name, "nosuch");
        for hostile in ["..", ".tarnx", "a/b", "Events", ""] {
            let it = batch_item(
                &l,
                doc(hostile, "application/json", b"{}"),
                Origin::of(b"{}"),
                Verdict::Continue,
                Utc::now(),
            );
            assert_eq!(it.row.table_name, UNKNOWN_TABLE, "{hostile:?}");
            assert_eq!(it.row.status, Status::Rejected, "{hostile:?}");
        }
    }

    #[test]
    fn undecodable_objects_keep_what_their_metadata_says() {
        let landed = GetResult {
            info: tarn_core::ObjectInfo {
                key: "id=x".into(),
                size: 42,
                last_modified: Utc::now(),
                etag: "e".into(),
                metadata: BTreeMap::from([
                    (meta::TABLE.to_string(), "../x".to_string()),
                    (meta::PRODUCER.to_string(), "bob".to_string()),
                ]),
            },
            body: bytes::Bytes::from_static(b"garbage"),
        };
        let (d, o) = undecodable("x", &landed, Utc::now());
        assert_eq!(
            (d.table.as_str(), d.producer.as_str()),
            (UNKNOWN_TABLE, "bob")
        );
        assert_eq!(
            o,
            Origin {
                size_bytes: 42,
                sha256: None
            }
        );
    }
}
