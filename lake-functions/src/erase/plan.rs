//! The pure planner of an erasure: which documents a selector names and where their copies live.
//! No I/O; the executor feeds it the status records and landed objects it read, and the rows it
//! found per file.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use tarn_core::document::{ingress_key, quarantine_key, status_key};
use tarn_core::{DocumentRow, Status};

/// What to erase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Selector {
    /// one document, wherever it is (landed, stored, rejected, quarantined)
    Id { id: String },
    /// every document a producer (the caller that POSTed it) sent
    Producer { producer: String },
    /// the rows of one JSON table matching a SQL predicate (the documents stay)
    Where { table: String, predicate: String },
    /// retention: every document of a table received before a time
    ReceivedBefore {
        table: String,
        before: DateTime<Utc>,
    },
}

impl Selector {
    /// The selector as a person reads it (`id=...`, `producer=...`, `events where ...`).
    pub fn describe(&self) -> String {
        match self {
            Selector::Id { id } => format!("id={id}"),
            Selector::Producer { producer } => format!("producer={producer}"),
            Selector::Where { table, predicate } => format!("{table} where {predicate}"),
            Selector::ReceivedBefore { table, before } => {
                format!("{table} received before {}", before.to_rfc3339())
            }
        }
    }

    /// Whether the selector names whole documents (every selector but `Where`).
    pub fn names_documents(&self) -> bool {
        !matches!(self, Selector::Where { .. })
    }
}

/// A landed document the pipeline has not processed yet, as its object's metadata tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LandedDoc {
    pub id: String,
    pub table: String,
    pub producer: String,
    pub received_at: Option<DateTime<Utc>>,
}

/// A document an erasure removes: where its copies are, never its content.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ErasedDoc {
    pub id: String,
    /// its table (`_unknown` for a landed object that named none)
    pub table: String,
    /// the `dt` of its `documents` row; `None` for a document never processed (no row)
    pub dt: Option<String>,
    pub received_at: Option<DateTime<Utc>>,
    /// the status it had before the erasure
    pub status: String,
    /// its sanitized object in the lake store
    pub object_key: Option<String>,
}

/// The stores an erasure deletes objects from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreName {
    Ingress,
    Lake,
    Quarantine,
    State,
}

impl StoreName {
    pub fn as_str(self) -> &'static str {
        match self {
            StoreName::Ingress => "ingress",
            StoreName::Lake => "lake",
            StoreName::Quarantine => "quarantine",
            StoreName::State => "state",
        }
    }
}

/// One object an erasure deletes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectRef {
    pub store: StoreName,
    pub key: String,
}

/// One Parquet file holding rows the erasure removes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMatch {
    pub table: String,
    /// `k=v/k=v`
    pub partition: String,
    pub key: String,
    pub rows: u64,
    /// rows that go
    pub matched: u64,
}

/// What an erasure removes: its documents, the rows per file and the objects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasurePlan {
    pub documents: Vec<ErasedDoc>,
    pub files: Vec<FileMatch>,
    pub objects: Vec<ObjectRef>,
}

impl ErasurePlan {
    /// Rows of tables the erasure removes (the `documents` table's rows are replaced, not
    /// counted).
    pub fn rows(&self) -> u64 {
        self.files
            .iter()
            .filter(|f| f.table != tarn_catalog::schemas::DOCUMENTS_TABLE)
            .map(|f| f.matched)
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.documents.is_empty() && self.files.is_empty() && self.objects.is_empty()
    }
}

/// The documents `selector` names, from their status records (`rows`) and the landed objects
/// not processed yet (`landed`), sorted by id. Documents already erased are left out, so a
/// second run of the same erasure names nothing.
pub fn select_documents(
    selector: &Selector,
    rows: &[DocumentRow],
    landed: &[LandedDoc],
) -> Vec<ErasedDoc> {
    let row_selected = |r: &DocumentRow| match selector {
        Selector::Id { id } => &r.id == id,
        Selector::Producer { producer } => &r.producer == producer,
        Selector::Where { .. } => false,
        Selector::ReceivedBefore { table, before } => {
            &r.table_name == table && r.received_at < *before
        }
    };
    let landed_selected = |l: &LandedDoc| match selector {
        Selector::Id { id } => &l.id == id,
        Selector::Producer { producer } => &l.producer == producer,
        Selector::Where { .. } => false,
        Selector::ReceivedBefore { table, before } => {
            &l.table == table && l.received_at.is_some_and(|t| t < *before)
        }
    };
    let with_row: BTreeSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let mut docs: Vec<ErasedDoc> = rows
        .iter()
        .filter(|r| r.status != Status::Erased && row_selected(r))
        .map(|r| ErasedDoc {
            id: r.id.clone(),
            table: r.table_name.clone(),
            dt: Some(r.dt.clone()),
            received_at: Some(r.received_at),
            status: r.status.as_str().to_string(),
            object_key: r.object_key.clone(),
        })
        .collect();
    // a landed object whose document has a row is a leftover of a finished batch
    docs.extend(
        landed
            .iter()
            .filter(|l| !with_row.contains(l.id.as_str()) && landed_selected(l))
            .map(|l| ErasedDoc {
                id: l.id.clone(),
                table: l.table.clone(),
                dt: None,
                received_at: l.received_at,
                status: Status::Received.as_str().to_string(),
                object_key: None,
            }),
    );
    docs.sort();
    docs.dedup_by(|a, b| a.id == b.id);
    docs
}

/// Every object that may hold a copy of `docs`, in store order: the landed object, the
/// sanitized object, the quarantine copy (under its table, or `_unknown`), and the hand-offs
/// between functions (`work/<stage>/id=<id>` among `work_keys`, the state store's `work/`
/// listing). The executor deletes those that exist.
pub fn candidate_objects(docs: &[ErasedDoc], work_keys: &[String]) -> Vec<ObjectRef> {
    let mut out = Vec::new();
    for d in docs {
        out.push(ObjectRef {
            store: StoreName::Ingress,
            key: ingress_key(&d.id),
        });
        if let Some(k) = &d.object_key {
            out.push(ObjectRef {
                store: StoreName::Lake,
                key: k.clone(),
            });
        }
        out.push(ObjectRef {
            store: StoreName::Quarantine,
            key: quarantine_key(&d.table, &d.id),
        });
        let suffix = format!("/{}", ingress_key(&d.id));
        out.extend(
            work_keys
                .iter()
                .filter(|k| k.ends_with(&suffix))
                .map(|k| ObjectRef {
                    store: StoreName::State,
                    key: k.clone(),
                }),
        );
    }
    out.sort();
    out.dedup();
    out
}

/// The row an erased document keeps, in its status record and the `documents` table: its id,
/// table, partition and received time, status `erased`, `processed_at` the erasure's time and
/// `reason` who erased it and why; nothing of its content.
pub fn erased_row(d: &ErasedDoc, at: DateTime<Utc>, by: &str, reason: &str) -> DocumentRow {
    DocumentRow {
        id: d.id.clone(),
        table_name: d.table.clone(),
        dt: d.dt.clone().unwrap_or_default(),
        content_type: String::new(),
        detected_type: None,
        size_bytes: 0,
        sha256: None,
        producer: String::new(),
        received_at: d.received_at.unwrap_or(at),
        processed_at: at,
        status: Status::Erased,
        reason: Some(erased_reason(by, reason)),
        scan_engine: None,
        scan_result: None,
        metadata_removed: vec![],
        object_key: None,
        records: None,
    }
}

/// `erased by <who>: <reason>`, the `reason` of an erased document.
pub fn erased_reason(by: &str, reason: &str) -> String {
    format!("erased by {by}: {reason}")
}

/// The status record key of each document.
pub fn status_keys(docs: &[ErasedDoc]) -> Vec<String> {
    docs.iter().map(|d| status_key(&d.id)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, day, 10, 0, 0).unwrap()
    }

    fn row(id: &str, table: &str, producer: &str, day: u32, status: Status) -> DocumentRow {
        DocumentRow {
            id: id.into(),
            table_name: table.into(),
            dt: format!("2024-05-{day:02}"),
            content_type: "application/json".into(),
            detected_type: None,
            size_bytes: 10,
            sha256: None,
            producer: producer.into(),
            received_at: t(day),
            processed_at: t(day),
            status,
            reason: None,
            scan_engine: None,
            scan_result: None,
            metadata_removed: vec![],
            object_key: (table == "photos")
                .then(|| format!("objects/photos/dt=2024-05-{day:02}/{id}")),
            records: None,
        }
    }

    fn rows() -> Vec<DocumentRow> {
        vec![
            row("a", "events", "alice", 1, Status::Stored),
            row("b", "events", "bob", 2, Status::Rejected),
            row("c", "photos", "alice", 3, Status::Stored),
            row("d", "events", "alice", 4, Status::Erased),
            row("e", "events", "bob", 5, Status::Stored),
        ]
    }

    fn landed() -> Vec<LandedDoc> {
        vec![
            LandedDoc {
                id: "f".into(),
                table: "events".into(),
                producer: "alice".into(),
                received_at: Some(t(6)),
            },
            // a leftover of a processed document
            LandedDoc {
                id: "a".into(),
                table: "events".into(),
                producer: "alice".into(),
                received_at: Some(t(1)),
            },
        ]
    }

    fn ids(docs: &[ErasedDoc]) -> Vec<&str> {
        docs.iter().map(|d| d.id.as_str()).collect()
    }

    #[test]
    fn selectors_name_documents() {
        let by_id = select_documents(&Selector::Id { id: "b".into() }, &rows(), &landed());
        assert_eq!(ids(&by_id), ["b"]);
        assert_eq!(by_id[0].status, "rejected");
        assert_eq!(by_id[0].dt.as_deref(), Some("2024-05-02"));

        let alice = select_documents(
            &Selector::Producer {
                producer: "alice".into(),
            },
            &rows(),
            &landed(),
        );
        // d is erased already; f is landed only; a once
        assert_eq!(ids(&alice), ["a", "c", "f"]);
        assert_eq!(alice[2].dt, None);
        assert_eq!(alice[2].status, "received");
        assert_eq!(
            alice[1].object_key.as_deref(),
            Some("objects/photos/dt=2024-05-03/c")
        );

        let old = select_documents(
            &Selector::ReceivedBefore {
                table: "events".into(),
                before: t(5),
            },
            &rows(),
            &landed(),
        );
        assert_eq!(ids(&old), ["a", "b"]);

        let rows_only = select_documents(
            &Selector::Where {
                table: "events".into(),
                predicate: "user = 'x'".into(),
            },
            &rows(),
            &landed(),
        );
        assert!(rows_only.is_empty());
    }

    #[test]
    fn an_erased_document_is_not_selected_again() {
        let mut rows = rows();
        for r in &mut rows {
            r.status = Status::Erased;
        }
        for s in [
            Selector::Id { id: "a".into() },
            Selector::Producer {
                producer: "bob".into(),
            },
        ] {
            assert!(select_documents(&s, &rows, &[]).is_empty(), "{s:?}");
        }
    }

    #[test]
    fn every_copy_is_a_candidate() {
        let docs = select_documents(
            &Selector::Producer {
                producer: "alice".into(),
            },
            &rows(),
            &landed(),
        );
        let work = vec![
            "work/scan/id=c".to_string(),
            "work/scan/id=cc".to_string(),
            "work/strip/id=f".to_string(),
        ];
        let objects = candidate_objects(&docs, &work);
        let names: Vec<String> = objects
            .iter()
            .map(|o| format!("{}:{}", o.store.as_str(), o.key))
            .collect();
        assert_eq!(
            names,
            [
                "ingress:id=a",
                "ingress:id=c",
                "ingress:id=f",
                "lake:objects/photos/dt=2024-05-03/c",
                "quarantine:events/a",
                "quarantine:events/f",
                "quarantine:photos/c",
                "state:work/scan/id=c",
                "state:work/strip/id=f",
            ]
        );
    }

    #[test]
    fn an_erased_row_keeps_no_content() {
        let docs = select_documents(&Selector::Id { id: "c".into() }, &rows(), &[]);
        let r = erased_row(&docs[0], t(20), "officer", "gdpr request 7");
        assert_eq!(r.status, Status::Erased);
        assert_eq!(r.table_name, "photos");
        assert_eq!(r.dt, "2024-05-03");
        assert_eq!(r.received_at, t(3));
        assert_eq!(r.processed_at, t(20));
        assert_eq!(
            r.reason.as_deref(),
            Some("erased by officer: gdpr request 7")
        );
        assert_eq!((r.producer.as_str(), r.size_bytes), ("", 0));
        assert_eq!(
            (r.sha256, r.object_key, r.content_type.as_str()),
            (None, None, "")
        );
    }
}
