//! Multipart uploads over real HTTP against the local ingress (docs/contract.md, Multipart
//! uploads): a large document sent in parts lands like a POSTed one and drains through the real
//! pipeline; the checks at the start, the parts and the completion; idempotency keys; aborts and
//! expiry; and the one-request limit that sends large documents here.

mod common;

use common::*;
use serde_json::{Value, json};
use tarn_catalog::TableSpec;
use tarn_core::document::{ingress_key, meta};
use tarn_core::{LocalObjectStore, ObjectStore};
use tarn_ingress::document_id;

/// A binary table taking documents up to 64 MiB.
const SCANS: &str = "scans";
const MIB: usize = 1024 * 1024;

fn tables() -> Vec<TableSpec> {
    let mut t = specs();
    t.push(
        TableSpec::from_value(
            std::path::Path::new("schemas/scans.json"),
            json!({"title": SCANS, "x-tarn": {"accept": ["image/jpeg"], "max_bytes": 64 * MIB}}),
        )
        .unwrap(),
    );
    t
}

async fn harness() -> Harness {
    Harness::start_with(Options {
        tables: tables(),
        ..Options::default()
    })
    .await
}

/// A JPEG of `n` bytes: the magic, then a pattern with `marker` in it.
fn jpeg(n: usize, marker: &[u8]) -> Vec<u8> {
    let mut b = vec![0xFF, 0xD8, 0xFF, 0xE0];
    b.extend_from_slice(marker);
    b.extend((b.len()..n).map(|i| (i * 31 % 251) as u8));
    b.truncate(n);
    b
}

/// `POST /table/{table}/uploads` with the declared type and size (each when given).
async fn start(
    h: &Harness,
    table: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    size: Option<usize>,
    key: Option<&str>,
) -> Reply {
    let mut req = h.client.post(h.url(&format!("/table/{table}/uploads")));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if let Some(ct) = content_type {
        req = req.header("upload-content-type", ct);
    }
    if let Some(n) = size {
        req = req.header("upload-length", n.to_string());
    }
    if let Some(k) = key {
        req = req.header("idempotency-key", k);
    }
    Reply::from_response(req.send().await.unwrap()).await
}

/// A start of a JPEG upload to the scans table.
async fn start_jpeg(h: &Harness, token: &str, size: usize, key: Option<&str>) -> Reply {
    start(h, SCANS, Some(token), Some("image/jpeg"), Some(size), key).await
}

async fn send(
    h: &Harness,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Vec<u8>,
) -> Reply {
    let req = h
        .client
        .request(method, h.url(path))
        .header("authorization", format!("Bearer {token}"))
        .body(body);
    Reply::from_response(req.send().await.unwrap()).await
}

/// Sends every part of `doc` as the start's answer says (the server's own routes: with the token).
async fn send_parts(h: &Harness, token: &str, started: &Value, doc: &[u8]) {
    let part_size = started["part_size"].as_u64().unwrap() as usize;
    for p in started["parts"].as_array().unwrap() {
        let n = p["number"].as_u64().unwrap() as usize;
        let url = p["url"].as_str().unwrap();
        assert!(url.starts_with('/'), "the local server's own route: {url}");
        let chunk = doc[(n - 1) * part_size..(n * part_size).min(doc.len())].to_vec();
        let r = send(h, reqwest::Method::PUT, url, token, chunk).await;
        assert_eq!(r.status, 200, "part {n}: {}", r.text());
        assert!(r.header("etag").is_some());
    }
}

/// `POST /table/scans/uploads/{id}/complete` with `token`.
async fn complete(h: &Harness, id: &str, token: &str) -> Reply {
    let path = format!("/table/{SCANS}/uploads/{id}/complete");
    send(h, reqwest::Method::POST, &path, token, vec![]).await
}

#[tokio::test]
async fn a_large_document_sent_in_parts_lands_sealed_and_drains_like_a_posted_one() {
    let h = harness().await;
    let token = h.token("alice", &["tarn-writers"]);
    let doc = jpeg(17 * MIB + 123, b"MARKER-PLAINTEXT");
    let r = start_jpeg(&h, &token, doc.len(), None).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let started = r.json()["data"].clone();
    let id = started["id"].as_str().unwrap().to_string();
    assert_eq!(started["size"], doc.len());
    assert_eq!(started["part_size"], 8 * MIB);
    assert_eq!(started["parts"].as_array().unwrap().len(), 3);
    assert_eq!(started["resumed"], false);
    assert!(
        started["expires_at"]
            .as_str()
            .unwrap()
            .starts_with("2030-01-03T03:04:05")
    );
    send_parts(&h, &token, &started, &doc).await;
    assert!(
        h.landed().await.is_empty(),
        "nothing lands before completion"
    );

    let r = complete(&h, &id, &token).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["data"]["id"], id.as_str());
    assert_eq!(h.landed().await, vec![ingress_key(&id)]);
    let landed = h.ingress.get(&ingress_key(&id)).await.unwrap();
    let m = &landed.info.metadata;
    assert_eq!(m[meta::TABLE], SCANS);
    assert_eq!(m[meta::PRODUCER], "alice");
    assert_eq!(m[meta::CONTENT_TYPE], "image/jpeg");
    assert_eq!(m[meta::REQUEST_TIME], NOW);
    assert_eq!(m[meta::ENCODING], tarn_core::parts::SEALED_PARTS);
    assert!(
        !landed.body.windows(16).any(|w| w == b"MARKER-PLAINTEXT"),
        "sealed at rest"
    );
    // the upload's record is gone, and so is the upload
    assert!(h.state.list("uploads/").await.unwrap().is_empty());
    // a completion repeated (its answer lost) answers the same id as a replay, for its producer
    let again = complete(&h, &id, &token).await;
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.json()["data"], json!({"id": id, "replayed": true}));
    let bob = h.token("bob", &["tarn-writers"]);
    complete(&h, &id, &bob).await.expect(404, "unknown_upload");

    // the real pipeline takes it as any document
    let p = pipeline(&h, tables());
    p.setup_catalog().await.unwrap();
    let report = p.drain().await.unwrap();
    assert_eq!((report.documents(), report.stored), (1, 1));
    let status = h
        .get(&format!("/table/{SCANS}/object/{id}"), Some(&token))
        .await;
    assert_eq!(status.status, 200, "{}", status.text());
    let row = &status.json()["data"];
    assert_eq!(row["status"], "stored");
    assert_eq!(row["size_bytes"], doc.len());
    let sha = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &doc);
    let hex: String = sha.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(row["sha256"], hex.as_str());
    // and once processed, a repeated completion still finds it
    let late = complete(&h, &id, &token).await;
    assert_eq!(late.json()["data"], json!({"id": id, "replayed": true}));
}

#[tokio::test]
async fn starts_parts_and_completions_are_checked() {
    let h = harness().await;
    let alice = h.token("alice", &["tarn-writers"]);
    let reader = h.token("carol", &["tarn-readers"]);
    let n = 9 * MIB;
    start(&h, SCANS, None, Some("image/jpeg"), Some(n), None)
        .await
        .expect(401, "missing_token");
    start_jpeg(&h, &reader, n, None)
        .await
        .expect(403, "forbidden");
    start(
        &h,
        "nosuch",
        Some(&alice),
        Some("image/jpeg"),
        Some(n),
        None,
    )
    .await
    .expect(404, "unknown_table");
    start(&h, SCANS, Some(&alice), Some("image/png"), Some(n), None)
        .await
        .expect(415, "unsupported_content_type");
    start(&h, SCANS, Some(&alice), None, Some(n), None)
        .await
        .expect(400, "missing_content_type");
    start(&h, SCANS, Some(&alice), Some("image/jpeg"), None, None)
        .await
        .expect(400, "bad_upload");
    start_jpeg(&h, &alice, 64 * MIB + 1, None)
        .await
        .expect(413, "too_large");
    start_jpeg(&h, &alice, 0, None)
        .await
        .expect(400, "empty_body");
    assert!(h.state.list("uploads/").await.unwrap().is_empty());

    let r = start_jpeg(&h, &alice, n, None).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["data"]["id"].as_str().unwrap().to_string();
    let part = |k: u32| format!("/table/{SCANS}/uploads/{id}/parts/{k}");
    // another producer sees no such upload
    let bob = h.token("bob", &["tarn-writers"]);
    send(&h, reqwest::Method::PUT, &part(1), &bob, vec![0; 10])
        .await
        .expect(404, "unknown_upload");
    complete(&h, &id, &bob).await.expect(404, "unknown_upload");
    // parts have their planned sizes and numbers
    send(&h, reqwest::Method::PUT, &part(1), &alice, vec![0; 10])
        .await
        .expect(400, "bad_upload");
    send(
        &h,
        reqwest::Method::PUT,
        &part(1),
        &alice,
        vec![0; 8 * MIB + 1],
    )
    .await
    .expect(400, "bad_upload");
    send(&h, reqwest::Method::PUT, &part(3), &alice, vec![0; 10])
        .await
        .expect(400, "bad_upload");
    let doc = jpeg(n, b"x");
    let r = send(
        &h,
        reqwest::Method::PUT,
        &part(2),
        &alice,
        doc[8 * MIB..].to_vec(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // part 1 missing
    let r = complete(&h, &id, &alice).await;
    r.expect(400, "bad_upload");
    assert!(r.message().contains("part 1"), "{}", r.message());
    assert!(h.landed().await.is_empty());
    // a completion checks the table again: a caller who lost the right to write is refused
    let r = send(
        &h,
        reqwest::Method::PUT,
        &part(1),
        &alice,
        doc[..8 * MIB].to_vec(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let demoted = h.token("alice", &["tarn-readers"]);
    complete(&h, &id, &demoted).await.expect(403, "forbidden");
    assert!(h.landed().await.is_empty());
    let r = complete(&h, &id, &alice).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(h.landed().await, vec![ingress_key(&id)]);
}

#[tokio::test]
async fn a_keyed_upload_resumes_then_replays_and_shares_posts_ids() {
    let h = harness().await;
    let alice = h.token("alice", &["tarn-writers"]);
    let doc = jpeg(100, b"small");
    let first = start_jpeg(&h, &alice, doc.len(), Some("k-1")).await;
    assert_eq!(first.status, 201, "{}", first.text());
    let id = first.json()["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        id,
        document_id("alice", SCANS, "k-1"),
        "the same id scheme as POST"
    );
    // the start's answer was lost: the retry resumes the same upload
    let again = start_jpeg(&h, &alice, doc.len(), Some("k-1")).await;
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.json()["data"]["id"], id.as_str());
    assert_eq!(again.json()["data"]["resumed"], true);
    // concurrent starts of one new key: one upload
    let racers = (0..8).map(|_| start_jpeg(&h, &alice, 5, Some("k-2")));
    let replies = futures::future::join_all(racers).await;
    assert!(
        replies
            .iter()
            .all(|r| r.json()["data"]["id"] == document_id("alice", SCANS, "k-2").as_str())
    );
    assert_eq!(replies.iter().filter(|r| r.status == 201).count(), 1);

    send_parts(&h, &alice, &first.json()["data"], &doc).await;
    let done = complete(&h, &id, &alice).await;
    assert_eq!(done.status, 200, "{}", done.text());
    // once landed, the key is a replay: at a start, and for a POST with the same key
    let late = start_jpeg(&h, &alice, doc.len(), Some("k-1")).await;
    assert_eq!(late.status, 200, "{}", late.text());
    assert_eq!(late.json()["data"], json!({"id": id, "replayed": true}));
    assert_eq!(late.header("idempotency-replayed"), Some("true"));
    let post = h
        .client
        .post(h.url(&format!("/table/{SCANS}/object")))
        .header("authorization", format!("Bearer {alice}"))
        .header("content-type", "image/jpeg")
        .header("idempotency-key", "k-1")
        .body(doc.clone())
        .send()
        .await
        .unwrap();
    let post = Reply::from_response(post).await;
    assert_eq!(post.json()["data"], json!({"id": id, "replayed": true}));
    assert_eq!(h.landed().await, vec![ingress_key(&id)]);
}

#[tokio::test]
async fn aborted_and_expired_uploads_are_gone() {
    let h = harness().await;
    let alice = h.token("alice", &["tarn-writers"]);
    let uploads_dir = |s: &LocalObjectStore| {
        std::fs::read_dir(s.root().join(".tarn-uploads"))
            .unwrap()
            .count()
    };
    let r = start_jpeg(&h, &alice, 10, None).await;
    let id = r.json()["data"]["id"].as_str().unwrap().to_string();
    let part = format!("/table/{SCANS}/uploads/{id}/parts/1");
    let r = send(&h, reqwest::Method::PUT, &part, &alice, jpeg(10, b"")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(uploads_dir(&h.ingress), 1);
    let r = send(
        &h,
        reqwest::Method::DELETE,
        &format!("/table/{SCANS}/uploads/{id}"),
        &alice,
        vec![],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["data"]["aborted"], true);
    assert_eq!(uploads_dir(&h.ingress), 0, "the parts are dropped");
    complete(&h, &id, &alice)
        .await
        .expect(404, "unknown_upload");

    // an upload not completed within a day expires
    let r = start_jpeg(&h, &alice, 10, None).await;
    let id = r.json()["data"]["id"].as_str().unwrap().to_string();
    h.clock.advance(chrono::Duration::hours(24));
    let alice = h.token("alice", &["tarn-writers"]);
    send(
        &h,
        reqwest::Method::PUT,
        &format!("/table/{SCANS}/uploads/{id}/parts/1"),
        &alice,
        jpeg(10, b""),
    )
    .await
    .expect(404, "unknown_upload");
    assert_eq!(
        uploads_dir(&h.ingress),
        0,
        "an expired upload is aborted when found"
    );
    assert!(h.state.list("uploads/").await.unwrap().is_empty());
    // and one nobody touches again is swept
    let r = start_jpeg(&h, &alice, 10, None).await;
    assert_eq!(r.status, 201);
    h.clock.advance(chrono::Duration::hours(25));
    let sweeper = tarn_ingress::Uploads {
        ingress: h.ingress.clone(),
        state: h.state.clone(),
        kms: h.kms.clone(),
        clock: h.clock.clone(),
    };
    assert_eq!(sweeper.sweep().await.unwrap(), 1);
    assert_eq!(uploads_dir(&h.ingress), 0);
    assert!(h.state.list("uploads/").await.unwrap().is_empty());
    assert!(h.landed().await.is_empty());
}

#[tokio::test]
async fn one_request_takes_10_mib_and_points_larger_documents_to_uploads() {
    let h = harness().await;
    let alice = h.token("alice", &["tarn-writers"]);
    let big = jpeg(10 * MIB + 1, b"");
    let r = h
        .post(SCANS, Some(&alice), Some("image/jpeg"), big.clone())
        .await;
    r.expect(413, "too_large");
    assert!(
        r.message().contains("/table/scans/uploads"),
        "{}",
        r.message()
    );
    // chunked, without a declared length: cut at the same limit
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    s.write_all(chunked_head(SCANS, &alice, "image/jpeg").as_bytes())
        .await
        .unwrap();
    for c in big.chunks(MIB) {
        // the server may answer and close before the last chunks
        if s.write_all(&chunk(c)).await.is_err() {
            break;
        }
    }
    let _ = s.write_all(LAST_CHUNK).await;
    read_reply(&mut s).await.expect(413, "too_large");
    assert!(h.landed().await.is_empty());
}
