//! The access trail's record of an erasure: one event naming who asked, the selector, the
//! reason, the counts and each object deleted (the deletes themselves are the stores' own
//! `DeleteObject` events).

use super::record::{ErasureRecord, key};
use serde_json::{Map, json};
use tarn_core::audit::{Actor, AuditEvent, EventName};

/// The component that runs erasures, as `invokedBy` of its events.
pub const ERASE_COMPONENT: &str = "tarn-erase";

/// The trail event of a finished erasure: a `PutObject` of its record in the state bucket
/// (`bucket`), by `actor` through `tarn-erase`, with `additionalEventData.tarnErasure`:
/// `{id, selector, reason, by, documents, rows, partitions, objects: ["<store>/<key>"],
/// bytes_gone_after}`. An auditor finds every erasure with
/// `json_extract_scalar(additionaleventdata, '$.tarnErasure.id') IS NOT NULL`.
pub fn erasure_event(r: &ErasureRecord, bucket: &str, actor: Actor) -> AuditEvent {
    let mut e = AuditEvent::new(EventName::PutObject, bucket, actor, ERASE_COMPONENT);
    e.time = r.finished.unwrap_or(r.started);
    e.key = Some(key(&r.id));
    e.invoked_by = Some(ERASE_COMPONENT.into());
    e.user_agent = ERASE_COMPONENT.into();
    let objects: Vec<String> = r
        .plan
        .objects
        .iter()
        .map(|o| format!("{}/{}", o.store.as_str(), o.key))
        .collect();
    let mut extra = Map::new();
    extra.insert(
        "tarnErasure".into(),
        json!({
            "id": r.id,
            "selector": r.selector.describe(),
            "reason": r.reason,
            "by": r.by,
            "documents": r.plan.documents.len(),
            "document_ids": r.plan.documents.iter().map(|d| d.id.clone()).collect::<Vec<_>>(),
            "rows": r.rows,
            "files": r.plan.files.len(),
            "partitions": r.partitions,
            "objects": objects,
            "bytes_gone_after": r.bytes_gone_after.map(|t| t.to_rfc3339()),
        }),
    );
    e.additional = extra;
    e
}
