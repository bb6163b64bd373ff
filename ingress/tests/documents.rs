//! `GET /table/{name}/object/{id}` and `.../content` over real HTTP.

mod common;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use common::*;
use serde_json::Value;
use tarn_core::document::status_key;
use tarn_core::{DocumentRow, EncryptionContext, Metadata, ObjectStore, Status, envelope};

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn row(id: &str, table: &str, status: Status, producer: &str) -> DocumentRow {
    let at: DateTime<Utc> = "2030-01-02T03:04:05.678Z".parse().unwrap();
    DocumentRow {
        id: id.to_string(),
        table_name: table.to_string(),
        dt: "2030-01-02".into(),
        content_type: "image/png".into(),
        detected_type: Some("image/png".into()),
        size_bytes: 12,
        sha256: Some("ab".repeat(32)),
        producer: producer.to_string(),
        received_at: at,
        processed_at: at + chrono::Duration::seconds(2),
        status,
        reason: None,
        scan_engine: Some("builtin".into()),
        scan_result: Some("clean".into()),
        metadata_removed: vec!["tEXt".into()],
        object_key: None,
        records: None,
    }
}

/// Writes a status record, as the pipeline would.
async fn put_row(h: &Harness, row: &DocumentRow) {
    let body = Bytes::from(serde_json::to_vec(row).unwrap());
    h.state
        .put(&status_key(&row.id), body, Metadata::new())
        .await
        .unwrap();
}

#[tokio::test]
async fn status_of_a_received_document() {
    let h = Harness::start().await;
    let id = h.land_json("alice", r#"{"kind": "a"}"#).await;
    let path = format!("/table/events/object/{id}");

    // the producer may read it without any reader group
    let alice = h.token("alice", &[]);
    let r = h.get(&path, Some(&bearer(&alice))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["success"], true);
    let d = &v["data"];
    assert_eq!(d["id"], id.as_str());
    assert_eq!(d["table"], "events");
    assert_eq!(d["status"], "received");
    assert_eq!(d["received_at"], NOW);
    assert_eq!(d["content_type"], "application/json");
    for k in [
        "reason",
        "processed_at",
        "detected_type",
        "size_bytes",
        "sha256",
        "scan_engine",
        "scan_result",
        "metadata_removed",
        "records",
        "object_key",
    ] {
        assert!(d.get(k).is_some_and(Value::is_null), "{k}: {d}");
    }
    // a raw token works too
    assert_eq!(h.get(&path, Some(&alice)).await.status, 200);
    // readers may; a writer who is not the producer may not
    assert_eq!(
        h.get(&path, Some(&bearer(&h.token("bob", &["tarn-readers"]))))
            .await
            .status,
        200
    );
    assert_eq!(
        h.get(
            &path,
            Some(&bearer(&h.token("bob", &["tarn-readers-events"])))
        )
        .await
        .status,
        200
    );
    h.get(
        &path,
        Some(&bearer(
            &h.token("bob", &["tarn-readers-photos", "tarn-writers"]),
        )),
    )
    .await
    .expect(403, "forbidden");
    h.get(&path, None).await.expect(401, "missing_token");

    // the same id under another table, an unknown id, a non-uuid: unknown
    let reader = bearer(&h.token("bob", &["tarn-readers"]));
    h.get(&format!("/table/photos/object/{id}"), Some(&reader))
        .await
        .expect(404, "unknown_document");
    h.get(
        &format!("/table/events/object/{}", uuid::Uuid::new_v4()),
        Some(&reader),
    )
    .await
    .expect(404, "unknown_document");
    h.get("/table/events/object/..%2F..%2Fkeys", Some(&reader))
        .await
        .expect(404, "unknown_document");
    h.get("/table/events/object/not-a-uuid", Some(&reader))
        .await
        .expect(404, "unknown_document");
    h.get(&format!("/table/nosuch/object/{id}"), Some(&reader))
        .await
        .expect(404, "unknown_table");
    h.get(&format!("/table/Events/object/{id}"), Some(&reader))
        .await
        .expect(400, "invalid_table_name");
    // the content of a received document is not there yet
    let r = h.get(&format!("{path}/content"), Some(&reader)).await;
    r.expect(409, "not_stored");
    assert!(r.message().contains("received"), "{}", r.message());
}

/// A binary stored without a scan (`scan_result` `skipped`, or none in an older row): its
/// status is readable, its content refused with 409 `not_scanned` unless the server serves
/// unscanned documents (`scan.serve_unscanned`).
#[tokio::test]
async fn content_of_an_unscanned_binary_is_refused_unless_allowed() {
    for serve_unscanned in [false, true] {
        let h = Harness::start_with(Options {
            serve_unscanned,
            ..Options::default()
        })
        .await;
        for scan_result in [Some("skipped"), None] {
            let id = uuid::Uuid::new_v4().to_string();
            let content = b"\x89PNG\r\n\x1a\nUNSCANNED".to_vec();
            let object_key = format!("objects/photos/dt=2030-01-02/{id}");
            let sealed = envelope::seal(
                h.kms.as_ref(),
                &EncryptionContext::document(BINARY_TABLE, &id),
                &content,
            )
            .await
            .unwrap();
            h.lake
                .put(&object_key, Bytes::from(sealed), Metadata::new())
                .await
                .unwrap();
            let mut r = row(&id, BINARY_TABLE, Status::Stored, "paula");
            r.object_key = Some(object_key);
            (r.scan_engine, r.scan_result) = (None, scan_result.map(String::from));
            put_row(&h, &r).await;

            let path = format!("/table/photos/object/{id}");
            let reader = bearer(&h.token("rita", &["tarn-readers-photos"]));
            let st = h.get(&path, Some(&reader)).await;
            assert_eq!(st.status, 200, "{}", st.text());
            let c = h.get(&format!("{path}/content"), Some(&reader)).await;
            if serve_unscanned {
                assert_eq!(c.status, 200, "{}", c.text());
                assert_eq!(c.body, content);
            } else {
                c.expect(409, "not_scanned");
                assert!(
                    c.message().contains("without a virus scan"),
                    "{}",
                    c.message()
                );
            }
        }
    }
}

#[tokio::test]
async fn content_of_a_stored_binary() {
    let h = Harness::start().await;
    let id = uuid::Uuid::new_v4().to_string();
    let content = b"\x89PNG\r\n\x1a\nSANITIZED-PIXELS".to_vec();
    let object_key = format!("objects/photos/dt=2030-01-02/{id}");
    let sealed = envelope::seal(
        h.kms.as_ref(),
        &EncryptionContext::document(BINARY_TABLE, &id),
        &content,
    )
    .await
    .unwrap();
    h.lake
        .put(&object_key, Bytes::from(sealed), Metadata::new())
        .await
        .unwrap();
    let mut r = row(&id, BINARY_TABLE, Status::Stored, "paula");
    r.object_key = Some(object_key.clone());
    put_row(&h, &r).await;

    let path = format!("/table/photos/object/{id}");
    let reader = bearer(&h.token("rita", &["tarn-readers-photos"]));
    let st = h.get(&path, Some(&reader)).await;
    assert_eq!(st.status, 200, "{}", st.text());
    let d = &st.json()["data"];
    assert_eq!(d["status"], "stored");
    assert_eq!(d["table"], "photos");
    assert_eq!(d["object_key"], object_key.as_str());
    assert_eq!(d["size_bytes"], 12);
    assert_eq!(d["metadata_removed"], serde_json::json!(["tEXt"]));
    assert_eq!(d["received_at"], NOW);
    assert_eq!(d["processed_at"], "2030-01-02T03:04:07.678Z");
    assert_eq!(d["scan_result"], "clean");

    let c = h.get(&format!("{path}/content"), Some(&reader)).await;
    assert_eq!(c.status, 200, "{}", c.text());
    assert_eq!(c.body, content);
    assert_eq!(c.header("content-type"), Some("image/png"));
    assert_eq!(c.header("cache-control"), Some("no-store"));
    // contents need a reader group, even for the producer (which may read the status only)
    h.get(
        &format!("{path}/content"),
        Some(&bearer(&h.token("paula", &[]))),
    )
    .await
    .expect(403, "forbidden");
    assert_eq!(
        h.get(&path, Some(&bearer(&h.token("paula", &[]))))
            .await
            .status,
        200
    );
    h.get(
        &format!("{path}/content"),
        Some(&bearer(
            &h.token("walt", &["tarn-writers", "tarn-readers-events"]),
        )),
    )
    .await
    .expect(403, "forbidden");
    h.get(&format!("{path}/content"), None)
        .await
        .expect(401, "missing_token");
    // the record names another table: not found under this one
    let everything = bearer(&h.token("rita", &["tarn-readers"]));
    h.get(
        &format!("/table/events/object/{id}/content"),
        Some(&everything),
    )
    .await
    .expect(404, "unknown_document");
    // a reader of photos only reads nothing of events, not even whether a document is there
    h.get(&format!("/table/events/object/{id}/content"), Some(&reader))
        .await
        .expect(403, "forbidden");
}

#[tokio::test]
async fn content_of_json_and_unstored_documents() {
    let h = Harness::start().await;
    let reader = bearer(&h.token("rita", &["tarn-readers"]));

    let json_id = uuid::Uuid::new_v4().to_string();
    let mut r = row(&json_id, JSON_TABLE, Status::Stored, "paula");
    r.content_type = "application/json".into();
    r.detected_type = None;
    r.records = Some(3);
    put_row(&h, &r).await;
    let c = h
        .get(
            &format!("/table/events/object/{json_id}/content"),
            Some(&reader),
        )
        .await;
    c.expect(404, "no_object");
    let msg = c.message();
    assert!(
        msg.contains("events") && msg.contains(&format!("_id = '{json_id}'")),
        "{msg}"
    );
    let st = h
        .get(&format!("/table/events/object/{json_id}"), Some(&reader))
        .await
        .json();
    assert_eq!(st["data"]["records"], 3);

    for status in [Status::Rejected, Status::Quarantined] {
        let id = uuid::Uuid::new_v4().to_string();
        let mut r = row(&id, BINARY_TABLE, status, "paula");
        r.reason = Some("declared image/png but the bytes are a pdf".into());
        put_row(&h, &r).await;
        let c = h
            .get(&format!("/table/photos/object/{id}/content"), Some(&reader))
            .await;
        c.expect(409, "not_stored");
        assert!(c.message().contains(status.as_str()), "{}", c.message());
        let st = h
            .get(&format!("/table/photos/object/{id}"), Some(&reader))
            .await
            .json();
        assert_eq!(st["data"]["status"], status.as_str());
        assert_eq!(
            st["data"]["reason"],
            "declared image/png but the bytes are a pdf"
        );
    }
}

#[tokio::test]
async fn the_status_record_wins_over_the_landed_object() {
    let h = Harness::start().await;
    let id = h.land_json("alice", r#"{"kind": "a"}"#).await;
    let mut r = row(&id, JSON_TABLE, Status::Stored, "alice");
    r.content_type = "application/json".into();
    r.records = Some(1);
    put_row(&h, &r).await;
    let st = h
        .get(
            &format!("/table/events/object/{id}"),
            Some(&h.token("alice", &[])),
        )
        .await;
    assert_eq!(st.json()["data"]["status"], "stored");
}
