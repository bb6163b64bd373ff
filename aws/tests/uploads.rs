//! Multipart uploads on AWS, on moto: the documents function's upload routes answer a start
//! with presigned S3 `UploadPart` URLs, a plain HTTP client PUTs the parts to the ingress
//! bucket, the completion lands the document at `id=<id>` (SSE-KMS, the metadata of a landed
//! document, the raw bytes), which the pipeline decodes like a POSTed one; idempotency keys
//! resume and replay as locally.

mod common;

use common::*;
use serde_json::{Value, json};
use tarn_aws::lambda::Functions;
use tarn_core::ObjectStore;
use tarn_core::document::{ingress_key, meta};

const MIB: usize = 1024 * 1024;

/// An upload route's proxy event, as API Gateway sends it behind the tarn authorizer.
fn upload_event(method: &str, resource: &str, id: &str, headers: Value) -> Value {
    json!({
        "resource": resource,
        "path": resource.replace("{name}", "photos").replace("{id}", id),
        "httpMethod": method,
        "headers": headers,
        "pathParameters": {"name": "photos", "id": id},
        "requestContext": {
            "requestId": "r-1",
            "authorizer": {"principalId": "sub-alice", "producer": "alice", "username": "alice", "sub": "sub-alice", "groups": "[\"tarn-writers\"]"},
        },
        "body": null,
        "isBase64Encoded": false,
    })
}

fn body(answer: &Value) -> Value {
    serde_json::from_str(answer["body"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn parts_go_to_presigned_s3_urls_and_the_completed_upload_lands_as_a_document() {
    let m = moto().await;
    let p = platform(&m.url).await;
    let f = Functions::new(&p.ports).unwrap().documents();
    let doc: Vec<u8> = [0xFF, 0xD8, 0xFF, 0xE0]
        .into_iter()
        .chain((4..9 * MIB + 7).map(|i| (i % 251) as u8))
        .collect();
    let start = |key: &str| {
        upload_event(
            "POST",
            "/table/{name}/uploads",
            "",
            json!({"Upload-Content-Type": "image/jpeg", "Upload-Length": doc.len().to_string(), "Idempotency-Key": key}),
        )
    };
    // refused at the start: a type the table does not take
    let bad = f
        .handle(upload_event(
            "POST",
            "/table/{name}/uploads",
            "",
            json!({"Upload-Content-Type": "text/plain", "Upload-Length": "9"}),
        ))
        .await;
    assert_eq!(bad["statusCode"], 415, "{bad}");
    assert_eq!(body(&bad)["error"]["code"], "unsupported_content_type");

    let r = f.handle(start("scan-7")).await;
    assert_eq!(r["statusCode"], 201, "{r}");
    let started = body(&r)["data"].clone();
    let id = started["id"].as_str().unwrap().to_string();
    assert_eq!(id, tarn_ingress::document_id("alice", "photos", "scan-7"));
    let parts = started["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 2);
    let part_size = started["part_size"].as_u64().unwrap() as usize;
    let http = reqwest::Client::new();
    for part in parts {
        let n = part["number"].as_u64().unwrap() as usize;
        let url = part["url"].as_str().unwrap();
        assert!(
            url.starts_with(&m.url) && url.contains("X-Amz-Signature="),
            "{url}"
        );
        let chunk = doc[(n - 1) * part_size..(n * part_size).min(doc.len())].to_vec();
        let resp = http.put(url).body(chunk).send().await.unwrap();
        assert!(resp.status().is_success(), "part {n}: {}", resp.status());
    }
    // a lost answer: the start again resumes the same upload
    let again = f.handle(start("scan-7")).await;
    assert_eq!(again["statusCode"], 200, "{again}");
    assert_eq!(body(&again)["data"]["resumed"], true);

    let done = f
        .handle(upload_event(
            "POST",
            "/table/{name}/uploads/{id}/complete",
            &id,
            json!({}),
        ))
        .await;
    assert_eq!(done["statusCode"], 200, "{done}");
    assert_eq!(body(&done)["data"], json!({"id": id}));

    let landed = p.ports.ingress.get(&ingress_key(&id)).await.unwrap();
    assert!(landed.body == doc, "the raw bytes, in order");
    let md = &landed.info.metadata;
    assert_eq!(md[meta::TABLE], "photos");
    assert_eq!(md[meta::PRODUCER], "alice");
    assert_eq!(md[meta::CONTENT_TYPE], "image/jpeg");
    assert_eq!(md[meta::ENCODING], tarn_core::parts::RAW);
    sse_kms_key(&m.url, "tarn-ingress", &ingress_key(&id), "a landed upload").await;
    // the pipeline reads it as any landed document
    let d = tarn_lake::landed::decode(p.ports.kms.as_ref(), &ingress_key(&id), &landed)
        .await
        .unwrap();
    assert_eq!((d.id.as_str(), d.table.as_str()), (id.as_str(), "photos"));
    assert!(d.body == doc);
    assert!(p.ports.state.list("uploads/").await.unwrap().is_empty());

    // the key again: a replay, nothing to send
    let late = f.handle(start("scan-7")).await;
    assert_eq!(late["statusCode"], 200, "{late}");
    assert_eq!(body(&late)["data"], json!({"id": id, "replayed": true}));
    assert_eq!(late["headers"]["idempotency-replayed"], "true");

    // an abort drops a started upload
    let r = f.handle(start("scan-8")).await;
    let other = body(&r)["data"]["id"].as_str().unwrap().to_string();
    let r = f
        .handle(upload_event(
            "DELETE",
            "/table/{name}/uploads/{id}",
            &other,
            json!({}),
        ))
        .await;
    assert_eq!(r["statusCode"], 200, "{r}");
    let r = f
        .handle(upload_event(
            "POST",
            "/table/{name}/uploads/{id}/complete",
            &other,
            json!({}),
        ))
        .await;
    assert_eq!(r["statusCode"], 404, "{r}");
    assert_eq!(body(&r)["error"]["code"], "unknown_upload");
}
