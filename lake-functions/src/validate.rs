//! The validate stage: JSON tables' records against the table's JSON Schema (draft 2020-12,
//! compiled once per table); binary tables' bytes against their declared content type.

use crate::detect::{detect, matches_declared};
use crate::error::{LakeError, Result};
use crate::stage::{Document, Stage, StageError, Verdict};
use async_trait::async_trait;
use serde_json::Value;
use std::collections::BTreeMap;
use tarn_catalog::{TableKind, TableSpec};

/// How many failures a rejection lists.
pub const MAX_REPORTED_FAILURES: usize = 20;

pub struct Validate {
    tables: BTreeMap<String, (TableSpec, Option<jsonschema::Validator>)>,
}

impl std::fmt::Debug for Validate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validate")
            .field("tables", &self.tables.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Validate {
    /// Compiles every JSON table's schema; a schema that does not compile fails here, at start.
    pub fn new(specs: &[TableSpec]) -> Result<Self> {
        let mut tables = BTreeMap::new();
        for spec in specs {
            let validator = match spec.kind {
                // formats are assertions here: a `date-time` column must hold date-times
                TableKind::Json => Some(
                    jsonschema::draft202012::options()
                        .should_validate_formats(true)
                        .build(&spec.schema)
                        .map_err(|e| LakeError::Schema {
                            table: spec.name.clone(),
                            reason: format!("not a valid JSON Schema (draft 2020-12): {e}"),
                        })?,
                ),
                TableKind::Binary => None,
            };
            tables.insert(spec.name.clone(), (spec.clone(), validator));
        }
        Ok(Self { tables })
    }
}

/// The content type of newline-delimited JSON: one record per line.
pub const NDJSON: &str = "application/x-ndjson";

/// Splits a JSON document into records: one object, an array of objects, or NDJSON.
pub fn parse_records(content_type: &str, body: &[u8]) -> Result<Vec<Value>, String> {
    let records = if content_type == NDJSON {
        let mut out = Vec::new();
        for (i, line) in body.split(|b| *b == b'\n').enumerate() {
            if line.trim_ascii().is_empty() {
                continue;
            }
            out.push(
                serde_json::from_slice(line)
                    .map_err(|e| format!("line {}: invalid JSON: {e}", i + 1))?,
            );
        }
        out
    } else {
        match serde_json::from_slice::<Value>(body).map_err(|e| format!("invalid JSON: {e}"))? {
            Value::Array(items) => items,
            other => vec![other],
        }
    };
    if records.is_empty() {
        return Err("the document holds no records".into());
    }
    if let Some(i) = records.iter().position(|r| !r.is_object()) {
        return Err(format!("record {i} is not a JSON object"));
    }
    Ok(records)
}

/// Every record's failures as `record <i> at <pointer>: fails <keyword> (<schema path>)`, capped.
/// Values are never quoted, so a rejection reason carries no document content.
pub fn check_records(validator: &jsonschema::Validator, records: &[Value]) -> (usize, Vec<String>) {
    let mut total = 0;
    let mut listed = Vec::new();
    // the boolean check is much cheaper than collecting errors: only failing records are walked
    // again for their failures
    for (i, record) in records.iter().enumerate() {
        if validator.is_valid(record) {
            continue;
        }
        for err in validator.iter_errors(record) {
            total += 1;
            if listed.len() < MAX_REPORTED_FAILURES {
                let at = err.instance_path().as_str();
                listed.push(format!(
                    "record {i} at {}: fails {} ({})",
                    if at.is_empty() { "/" } else { at },
                    err.kind().keyword(),
                    err.schema_path().as_str()
                ));
            }
        }
    }
    (total, listed)
}

#[async_trait]
impl Stage for Validate {
    fn name(&self) -> &'static str {
        "validate"
    }

    async fn process(&self, doc: &mut Document) -> Result<Verdict, StageError> {
        let Some((spec, validator)) = self.tables.get(&doc.table) else {
            return Ok(Verdict::Reject(format!(
                "table {} is not declared in schemas/",
                doc.table
            )));
        };
        if !spec.accepts(&doc.content_type) {
            return Ok(Verdict::Reject(format!(
                "table {} does not accept {}",
                doc.table, doc.content_type
            )));
        }
        match validator {
            Some(validator) => {
                let records = match parse_records(&doc.content_type, &doc.body) {
                    Ok(r) => r,
                    Err(reason) => return Ok(Verdict::Reject(reason)),
                };
                doc.detected_type = Some(doc.content_type.clone());
                let (total, listed) = check_records(validator, &records);
                if total > 0 {
                    let more = if total > listed.len() {
                        format!("; and {} more", total - listed.len())
                    } else {
                        String::new()
                    };
                    return Ok(Verdict::Reject(format!(
                        "{total} schema violation(s) in {} record(s): {}{more}",
                        records.len(),
                        listed.join("; ")
                    )));
                }
                doc.records = Some(records);
            }
            None => {
                let detected = detect(&doc.body);
                doc.detected_type =
                    Some(detected.unwrap_or("application/octet-stream").to_string());
                if !matches_declared(&doc.content_type, detected) {
                    return Ok(Verdict::Reject(format!(
                        "declared {} but the bytes are {}",
                        doc.content_type,
                        detected.unwrap_or("of an unknown type")
                    )));
                }
            }
        }
        Ok(Verdict::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::Path;

    fn validate() -> Validate {
        let events = TableSpec::from_value(
            Path::new("events.json"),
            json!({"title": "events", "type": "object", "required": ["user", "n"],
                   "properties": {"user": {"type": "string"}, "n": {"type": "integer", "minimum": 0}},
                   "x-tarn": {"accept": ["application/json", "application/x-ndjson"]}}),
        )
        .unwrap();
        let photos = TableSpec::from_value(
            Path::new("photos.json"),
            json!({"title": "photos", "x-tarn": {"accept": ["image/png", "image/jpeg"]}}),
        )
        .unwrap();
        Validate::new(&[events, photos]).unwrap()
    }

    fn doc(table: &str, ct: &str, body: &[u8]) -> Document {
        Document {
            id: "00000000-0000-0000-0000-000000000001".into(),
            table: table.into(),
            content_type: ct.into(),
            producer: "p".into(),
            received_at: chrono::Utc::now(),
            body: bytes::Bytes::copy_from_slice(body),
            detected_type: None,
            records: None,
            scan_engine: None,
            scan_result: None,
            metadata_removed: vec![],
        }
    }

    #[tokio::test]
    async fn json_shapes() {
        let v = validate();
        for (ct, body, n) in [
            ("application/json", &br#"{"user":"a","n":1}"#[..], 1),
            (
                "application/json",
                br#"[{"user":"a","n":1},{"user":"b","n":2}]"#,
                2,
            ),
            (
                "application/x-ndjson",
                b"{\"user\":\"a\",\"n\":1}\n\n{\"user\":\"b\",\"n\":2}\n",
                2,
            ),
        ] {
            let mut d = doc("events", ct, body);
            assert_eq!(v.process(&mut d).await.unwrap(), Verdict::Continue);
            assert_eq!(d.records.unwrap().len(), n);
        }
    }

    #[tokio::test]
    async fn rejections_name_each_record_and_pointer_without_values() {
        let v = validate();
        let mut d = doc(
            "events",
            "application/json",
            br#"[{"user":"ok","n":1},{"user":"SECRET","n":-5},{"n":"x"}]"#,
        );
        let Verdict::Reject(reason) = v.process(&mut d).await.unwrap() else {
            panic!("must reject")
        };
        assert!(reason.contains("record 1 at /n: fails minimum"), "{reason}");
        assert!(reason.contains("record 2 at /: fails required"), "{reason}");
        assert!(reason.contains("record 2 at /n: fails type"), "{reason}");
        assert!(
            !reason.contains("SECRET"),
            "no document content in reasons: {reason}"
        );
        assert!(d.records.is_none(), "a rejected document keeps no records");

        for body in [&b"{not json"[..], b"[]", b"[1,2]", b"42"] {
            let mut d = doc("events", "application/json", body);
            assert!(
                matches!(v.process(&mut d).await.unwrap(), Verdict::Reject(_)),
                "{body:?}"
            );
        }
        let mut d = doc(
            "events",
            "application/x-ndjson",
            b"{\"user\":\"a\",\"n\":1}\n{oops\n",
        );
        let Verdict::Reject(reason) = v.process(&mut d).await.unwrap() else {
            panic!()
        };
        assert!(reason.starts_with("line 2"), "{reason}");
    }

    #[tokio::test]
    async fn failures_are_capped() {
        let v = validate();
        let body = serde_json::to_vec(
            &(0..100)
                .map(|_| json!({"user": 1, "n": 1}))
                .collect::<Vec<_>>(),
        )
        .unwrap();
        let mut d = doc("events", "application/json", &body);
        let Verdict::Reject(reason) = v.process(&mut d).await.unwrap() else {
            panic!()
        };
        assert_eq!(reason.matches("fails type").count(), MAX_REPORTED_FAILURES);
        assert!(reason.contains("and 80 more"), "{reason}");
    }

    #[tokio::test]
    async fn binary_types_must_match_their_bytes() {
        let v = validate();
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        let mut d = doc("photos", "image/png", png);
        assert_eq!(v.process(&mut d).await.unwrap(), Verdict::Continue);
        assert_eq!(d.detected_type.as_deref(), Some("image/png"));
        let mut d = doc("photos", "image/jpeg", png);
        let Verdict::Reject(reason) = v.process(&mut d).await.unwrap() else {
            panic!()
        };
        assert_eq!(reason, "declared image/jpeg but the bytes are image/png");
        let mut d = doc("photos", "application/pdf", b"%PDF-1.4");
        assert!(matches!(
            v.process(&mut d).await.unwrap(),
            Verdict::Reject(_)
        ));
        let mut d = doc("nope", "image/png", png);
        assert!(matches!(
            v.process(&mut d).await.unwrap(),
            Verdict::Reject(_)
        ));
    }
}
