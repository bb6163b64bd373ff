//! Real event JSON for the Lambda handlers (S3 notifications in SQS batches) and landing as API
//! Gateway's S3 proxy lands.

use super::REGION;
use aws_lambda_events::event::sqs::SqsEvent;
use base64::Engine;
use bytes::Bytes;
use serde_json::{Value, json};
use tarn_core::document::ingress_key;
use tarn_core::{Metadata, ObjectStore};

pub fn s3_record(bucket: &str, key: &str) -> Value {
    // S3 URL-encodes keys in notifications
    let encoded = key.replace('=', "%3D");
    json!({
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": REGION,
        "eventTime": "2024-03-05T10:11:12.000Z",
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:AROAEXAMPLE:apigateway"},
        "requestParameters": {"sourceIPAddress": "10.0.0.1"},
        "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "tarn",
            "bucket": {"name": bucket, "ownerIdentity": {"principalId": "A3NL1KOZZKExample"}, "arn": format!("arn:aws:s3:::{bucket}")},
            "object": {"key": encoded, "size": 1024, "eTag": "d41d8cd98f00b204e9800998ecf8427e", "sequencer": "0055AED6DCD90281E5"}
        }
    })
}

pub fn sqs_message(id: &str, body: String) -> Value {
    json!({
        "messageId": id,
        "receiptHandle": format!("AQEB-{id}"),
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1709633472000", "SenderId": "AIDAIENQZJOLO23YVJ4VO", "ApproximateFirstReceiveTimestamp": "1709633472001"},
        "messageAttributes": {},
        "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
        "eventSource": "aws:sqs",
        "eventSourceARN": format!("arn:aws:sqs:{REGION}:123456789012:tarn-stage"),
        "awsRegion": REGION
    })
}

/// One SQS message per key, each an S3 event with one record.
pub fn event(bucket: &str, keys: &[String], extra: Vec<Value>) -> SqsEvent {
    let mut records: Vec<Value> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            sqs_message(
                &format!("msg-{i}-{}", &k[k.len() - 8..]),
                json!({"Records": [s3_record(bucket, k)]}).to_string(),
            )
        })
        .collect();
    records.extend(extra);
    serde_json::from_value(json!({"Records": records})).unwrap()
}

pub fn failures(r: &aws_lambda_events::event::sqs::SqsBatchResponse) -> Vec<String> {
    r.batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

/// Lands a document as API Gateway's S3 proxy does: base64 body, SSE-KMS by the bucket, metadata
/// with `request-time` in `$context.requestTime` form.
pub async fn land_as_apigw(
    ingress: &dyn ObjectStore,
    table: &str,
    content_type: &str,
    body: &[u8],
) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    let m: Metadata = [
        ("table", table),
        ("content-type", content_type),
        ("producer", "alice"),
        ("request-time", "05/Mar/2024:10:11:12 +0000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let b64 = base64::engine::general_purpose::STANDARD.encode(body);
    ingress
        .put(&ingress_key(&id), Bytes::from(b64), m)
        .await
        .unwrap();
    id
}
