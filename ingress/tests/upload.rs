//! `POST /table/{name}/object` over real HTTP: every status of docs/contract.md (Ingress HTTP
//! API), in its order of checks, and what lands where. The request heads the contract answers
//! are the shared cases of common/cases.rs (aws/tests/edge.rs runs them against the AWS
//! authorizer); the tests here add what only HTTP can send.

mod common;

use base64::Engine;
use common::*;
use std::time::Duration;
use tarn_core::{EncryptionContext, ObjectStore, envelope};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[tokio::test]
async fn a_document_lands_sealed_with_its_metadata() -> anyhow::Result<()> {
    let h = Harness::start().await;
    let token = h.token("alice", &["tarn-writers"]);
    let doc = r#"{"kind": "MARKER-7f3a9c", "n": 1}"#;
    let r = h
        .post(
            JSON_TABLE,
            Some(&token),
            Some("application/json; charset=utf-8"),
            doc,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["success"], true);
    let id = v["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(uuid::Uuid::parse_str(&id)?.get_version_num(), 4);

    // the object is there, with the metadata of docs/contract.md
    let key = format!("id={id}");
    let got = h.ingress.get(&key).await?;
    let m = &got.info.metadata;
    assert_eq!(m["table"], JSON_TABLE);
    assert_eq!(m["request-time"], NOW);
    assert_eq!(m["content-type"], "application/json");
    assert_eq!(m["producer"], "alice");
    assert_eq!(m.len(), 4, "{m:?}");

    // sealed on disk: neither the marker nor its base64 is readable
    let on_disk = std::fs::read(h.ingress.path_of(&key))?;
    assert!(envelope::is_sealed(&on_disk));
    let b64 = base64::engine::general_purpose::STANDARD.encode(doc);
    for needle in [b"MARKER-7f3a9c".as_slice(), &b64.as_bytes()[..16]] {
        assert!(
            !on_disk.windows(needle.len()).any(|w| w == needle),
            "plaintext on disk"
        );
    }
    // opening under {table, id} and decoding gives the exact document back
    let opened = envelope::open(
        h.kms.as_ref(),
        &EncryptionContext::document(JSON_TABLE, &id),
        &on_disk,
    )
    .await?;
    assert_eq!(
        base64::engine::general_purpose::STANDARD.decode(&opened)?,
        doc.as_bytes()
    );
    // under another context it does not open
    assert!(
        envelope::open(
            h.kms.as_ref(),
            &EncryptionContext::document(BINARY_TABLE, &id),
            &on_disk
        )
        .await
        .is_err()
    );

    // the pipeline was woken
    tokio::time::timeout(Duration::from_secs(1), h.notify.notified()).await?;
    Ok(())
}

/// A token for a shared case's [`cases::Token`].
fn case_token(h: &Harness, t: cases::Token) -> Option<String> {
    match t {
        cases::Token::None => None,
        cases::Token::Garbage => Some("not.a.token".into()),
        cases::Token::Expired => {
            let mut claims = h.claims("alice", &["tarn-writers"]);
            claims["exp"] = (h_now(h) - 3600).into();
            Some(h.issuer.sign(&h.issuer.header(), &claims).unwrap())
        }
        // signed directly: the dev issuer refuses a group name with a comma, Cognito does not
        cases::Token::Groups(groups) => {
            let claims = h.claims("alice", groups);
            Some(h.issuer.sign(&h.issuer.header(), &claims).unwrap())
        }
    }
}

#[tokio::test]
async fn the_shared_cases_get_the_contracts_answers() {
    let h = Harness::start().await;
    let mut landed = 0;
    for c in cases::CASES {
        let mut head = format!("POST /table/{}/object HTTP/1.1\r\nHost: x\r\n", c.wire);
        if let Some(t) = case_token(&h, c.token) {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        let mut req = head.into_bytes();
        if let Some(ct) = c.content_type {
            // raw bytes: a non-ascii value goes out as its utf-8
            req.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
        }
        req.extend_from_slice(format!("Content-Length: {}\r\n\r\n", c.content_length).as_bytes());
        if c.content_length <= 64 * 1024 {
            let mut body = vec![b' '; c.content_length as usize];
            if body.len() >= 2 {
                body[..2].copy_from_slice(b"{}");
            }
            req.extend_from_slice(&body);
        }
        let mut s = TcpStream::connect(h.addr).await.unwrap();
        s.write_all(&req).await.unwrap();
        let r = read_one_reply(&mut s).await;
        if c.status == 200 {
            assert_eq!(r.status, 200, "{}: {}", c.what, r.text());
            landed += 1;
            let id = r.json()["data"]["id"].as_str().unwrap().to_string();
            let m = h
                .ingress
                .head(&format!("id={id}"))
                .await
                .unwrap()
                .unwrap()
                .metadata;
            assert_eq!(m["content-type"], cases::landed_type(c), "{}", c.what);
            assert_eq!(m["table"], c.name, "{}", c.what);
        } else {
            assert_eq!(
                (r.status, r.code().as_str()),
                (c.status, c.code),
                "{}: {}",
                c.what,
                r.text()
            );
        }
    }
    assert_eq!(
        h.landed().await.len(),
        landed,
        "only the admitted cases landed"
    );
}

#[tokio::test]
async fn raw_tokens_binaries_and_ndjson_land_too() {
    let h = Harness::start().await;
    let token = h.token("bob", &["tarn-writers-photos", "tarn-writers-events"]);
    // the token without "Bearer"
    let r = h
        .client
        .post(h.url("/table/photos/object"))
        .header("authorization", &token)
        .header("content-type", "IMAGE/PNG")
        .body(vec![0x89u8, b'P', b'N', b'G', 0, 1, 2, 3])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = h
        .post(
            JSON_TABLE,
            Some(&token),
            Some("application/x-ndjson"),
            "{\"n\":1}\n{\"n\":2}\n",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(h.landed().await.len(), 2);
    // exactly max_bytes is fine
    let r = h
        .post(
            JSON_TABLE,
            Some(&token),
            Some("application/json"),
            vec![b' '; 1000],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// Paths that only HTTP can send (the shared cases hold the names a router hands on).
#[tokio::test]
async fn bad_table_names_are_400_before_anything_else() {
    let h = Harness::start().await;
    let paths = [
        "/table/../object",
        "/table/a/b/object",
        "/table/a%2Fb/object",
        "/table/%2E%2E/object",
        "/table/%FF/object",
    ];
    for path in &paths {
        // raw, so no client normalizes the path; no token: the name is checked first
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
        );
        let r = h.raw(req.as_bytes()).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (400, "invalid_table_name"),
            "{path}: {}",
            r.text()
        );
    }
}

#[tokio::test]
async fn an_empty_bearer_is_401() {
    let h = Harness::start().await;
    let r = h
        .client
        .post(h.url("/table/events/object"))
        .header("authorization", "Bearer ")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(h.landed().await.is_empty());
}

fn h_now(h: &Harness) -> i64 {
    use tarn_core::Clock;
    h.clock.now().timestamp()
}

#[tokio::test]
async fn refusals_say_what_to_do() {
    let h = Harness::start().await;
    let t = h.token("carol", &["tarn-readers"]);
    let r = h
        .post(JSON_TABLE, Some(&t), Some("application/json"), "{}")
        .await;
    r.expect(403, "forbidden");
    assert!(
        r.message().contains("tarn-writers-events"),
        "{}",
        r.message()
    );
    let t = h.token("alice", &["tarn-writers"]);
    let r = h.post(JSON_TABLE, Some(&t), Some("text/plain"), "{}").await;
    r.expect(415, "unsupported_content_type");
    assert!(
        r.message()
            .contains("application/json, application/x-ndjson"),
        "{}",
        r.message()
    );
    let r = h
        .post(
            JSON_TABLE,
            Some(&t),
            Some("application/json"),
            vec![b' '; 1001],
        )
        .await;
    r.expect(413, "too_large");
    assert!(r.message().contains("1000"), "{}", r.message());
    assert!(h.landed().await.is_empty());
}

/// Bodies without a declared length (the shared cases hold the declared ones).
#[tokio::test]
async fn chunked_bodies_are_cut_at_the_limit() {
    let h = Harness::start().await;
    let t = h.token("alice", &["tarn-writers"]);
    // a chunked body with no Content-Length is cut as soon as it passes the limit
    let mut s = TcpStream::connect(h.addr).await.unwrap();
    s.write_all(chunked_head(JSON_TABLE, &t, "application/json").as_bytes())
        .await
        .unwrap();
    for _ in 0..4 {
        s.write_all(&chunk(&[b' '; 300])).await.unwrap();
    }
    // the last chunk is never sent: the reply comes anyway
    read_one_reply(&mut s).await.expect(413, "too_large");

    // under the limit, chunked is fine
    let mut s = TcpStream::connect(h.addr).await.unwrap();
    s.write_all(chunked_head(JSON_TABLE, &t, "application/json").as_bytes())
        .await
        .unwrap();
    s.write_all(&chunk(br#"{"kind": "#)).await.unwrap();
    s.write_all(&chunk(br#""a"}"#)).await.unwrap();
    s.write_all(LAST_CHUNK).await.unwrap();
    let r = read_reply(&mut s).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(h.landed().await.len(), 1, "only the good one landed");
}

#[tokio::test]
async fn overload_is_503_with_retry_after() {
    let h = Harness::start_with(Options {
        max_in_flight: 0,
        ..Default::default()
    })
    .await;
    let t = h.token("alice", &["tarn-writers"]);
    let r = h
        .post(JSON_TABLE, Some(&t), Some("application/json"), "{}")
        .await;
    r.expect(503, "overloaded");
    assert_eq!(r.header("retry-after"), Some("1"));
    // reads are not limited
    assert_eq!(h.get("/health", None).await.status, 200);
}

#[tokio::test]
async fn a_held_permit_makes_the_next_upload_503_until_released() {
    let h = Harness::start_with(Options {
        max_in_flight: 1,
        ..Default::default()
    })
    .await;
    let t = h.token("alice", &["tarn-writers"]);
    // an upload that holds the only permit while its body trickles in
    let mut slow = TcpStream::connect(h.addr).await.unwrap();
    slow.write_all(chunked_head(JSON_TABLE, &t, "application/json").as_bytes())
        .await
        .unwrap();
    slow.write_all(&chunk(b"{\"n\"")).await.unwrap();
    let mut refused = None;
    for _ in 0..100 {
        let r = h
            .post(JSON_TABLE, Some(&t), Some("application/json"), "{}")
            .await;
        if r.status == 503 {
            refused = Some(r);
            break;
        }
        assert_eq!(r.status, 200, "{}", r.text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused = refused.expect("a 503 while the permit is held");
    refused.expect(503, "overloaded");
    assert_eq!(refused.header("retry-after"), Some("1"));
    let before = h.landed().await.len();
    slow.write_all(&chunk(b": 1}")).await.unwrap();
    slow.write_all(LAST_CHUNK).await.unwrap();
    let r = read_reply(&mut slow).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // the permit is back
    let r = h
        .post(JSON_TABLE, Some(&t), Some("application/json"), "{}")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(h.landed().await.len(), before + 2);
}

#[tokio::test]
async fn shutdown_finishes_the_upload_in_flight() {
    let mut h = Harness::start().await;
    let t = h.token("alice", &["tarn-writers"]);
    let mut s = TcpStream::connect(h.addr).await.unwrap();
    s.write_all(chunked_head(JSON_TABLE, &t, "application/json").as_bytes())
        .await
        .unwrap();
    s.write_all(&chunk(b"{\"n\"")).await.unwrap();
    // make sure the server is handling it before the signal
    tokio::time::sleep(Duration::from_millis(200)).await;
    let addr = h.addr;
    let stopping = tokio::spawn(async move {
        let res = h.stop().await;
        (h, res)
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !stopping.is_finished(),
        "the server waits for the upload in flight"
    );
    s.write_all(&chunk(b": 1}")).await.unwrap();
    s.write_all(LAST_CHUNK).await.unwrap();
    let r = read_reply(&mut s).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let (h, res) = stopping.await.unwrap();
    res.unwrap();
    assert_eq!(h.landed().await.len(), 1);
    // and it no longer accepts connections
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn health_fallbacks_and_json_errors() {
    let h = Harness::start().await;
    let r = h.get("/health", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), serde_json::json!({"status": "ok"}));
    h.get("/nothing/here", None).await.expect(404, "not_found");
    h.get("/table/events/objects", None)
        .await
        .expect(404, "not_found");
    h.get("/table/events/object", None)
        .await
        .expect(405, "method_not_allowed");
    let r = h.client.delete(h.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    let r = h
        .client
        .put(h.url("/table/events/object"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"]["code"],
        "method_not_allowed"
    );
}
