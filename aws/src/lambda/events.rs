//! Reading S3 notifications delivered through SQS: each SQS message's body is an S3 event
//! (`{"Records": [...]}`), whose object keys arrive URL-encoded (`id%3D...`, `+` for a space).

use aws_lambda_events::event::s3::S3Event;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use tarn_core::document::id_from_ingress_key;

/// What one SQS message asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub message_id: String,
    /// the document ids of the message's S3 records; `Err` when the body is not an S3 event
    pub ids: Result<Vec<String>, String>,
}

/// Decodes an S3 event key: `+` is a space, `%XX` a byte.
pub fn decode_key(key: &str) -> String {
    let spaced = key.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

/// The document id an object key names: its last segment `id=<uuid>` (`id=<uuid>` in the ingress
/// bucket, `<state prefix>work/<stage>/id=<uuid>` for hand-offs).
pub fn id_of_key(key: &str) -> Option<String> {
    let last = key.rsplit('/').next()?;
    id_from_ingress_key(last).map(String::from)
}

/// The messages of an SQS batch with the ids they name. S3's `s3:TestEvent` (sent when a
/// notification is configured) and keys that name no document give no ids; a body that is not
/// an S3 event is an `Err`.
pub fn messages(event: &SqsEvent) -> Vec<Message> {
    event
        .records
        .iter()
        .map(|m| {
            let message_id = m.message_id.clone().unwrap_or_default();
            let ids = parse_body(m.body.as_deref().unwrap_or(""));
            Message { message_id, ids }
        })
        .collect()
}

fn parse_body(body: &str) -> Result<Vec<String>, String> {
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("the message body is not JSON: {e}"))?;
    if value.get("Event").and_then(|e| e.as_str()) == Some("s3:TestEvent") {
        return Ok(vec![]);
    }
    let event: S3Event = serde_json::from_value(value)
        .map_err(|e| format!("the message body is not an S3 event: {e}"))?;
    if event.records.is_empty() {
        return Err("the S3 event has no records".into());
    }
    let mut ids = Vec::new();
    for r in &event.records {
        let name = r.event_name.as_deref().unwrap_or_default();
        if !name.starts_with("ObjectCreated") && !name.is_empty() {
            continue;
        }
        let key =
            r.s3.object
                .url_decoded_key
                .clone()
                .or_else(|| r.s3.object.key.as_deref().map(decode_key));
        match key.as_deref().and_then(id_of_key) {
            Some(id) => ids.push(id),
            None => tracing::warn!(
                key = key.as_deref().unwrap_or(""),
                "ignoring an S3 record whose key names no document"
            ),
        }
    }
    Ok(ids)
}

/// The response that has SQS retry exactly the `failed` messages.
pub fn batch_response(failed: impl IntoIterator<Item = String>) -> SqsBatchResponse {
    let mut r = SqsBatchResponse::default();
    r.batch_item_failures = failed
        .into_iter()
        .map(|id| {
            let mut f = BatchItemFailure::default();
            f.item_identifier = id;
            f
        })
        .collect();
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_decode() {
        assert_eq!(
            decode_key("id%3D0b7c4b0e-2f3b-4a4c-9a57-5b1e0f6d2c11"),
            "id=0b7c4b0e-2f3b-4a4c-9a57-5b1e0f6d2c11"
        );
        assert_eq!(decode_key("a+b%2Fc"), "a b/c");
        assert_eq!(
            id_of_key("state/work/strip/id=0b7c4b0e-2f3b-4a4c-9a57-5b1e0f6d2c11").as_deref(),
            Some("0b7c4b0e-2f3b-4a4c-9a57-5b1e0f6d2c11")
        );
        assert_eq!(id_of_key("id=nope"), None);
    }
}
