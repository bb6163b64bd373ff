//! The ingress records refused and failed requests in the access trail (with the reason, the
//! caller when its token was valid, the address and the user agent) and never the token; and
//! the store calls of an accepted request are attributed to its caller.

mod common;

use serde_json::Value;
use std::sync::Arc;
use tarn_core::audit::{
    AuditSink, AuditedStore, LocalAuditSink, SigningKey, SinkSettings, TrailConfig, TrailFilter,
    gunzip, read_trail,
};
use tarn_core::{LocalKms, LocalObjectStore, ObjectStore, SystemClock};
use tarn_ingress::{DevIssuer, IngressState, router_with_audit, serve, table_map};

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn refusals_are_recorded_with_their_reason_and_never_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let open =
        |b: &str| Arc::new(LocalObjectStore::open(format!("tarn-{b}"), root.join(b)).unwrap());
    let (ingress, lake, state, audit) =
        (open("ingress"), open("lake"), open("state"), open("audit"));
    let key = SigningKey::open_or_create(SigningKey::path_in(root)).unwrap();
    let settings = SinkSettings {
        flush_interval: std::time::Duration::from_secs(3600),
        ..Default::default()
    };
    let sink: Arc<LocalAuditSink> = Arc::new(
        LocalAuditSink::open(audit.clone(), TrailConfig::default(), key, settings)
            .await
            .unwrap(),
    );
    let audited = |s: &Arc<LocalObjectStore>| -> Arc<dyn ObjectStore> {
        Arc::new(AuditedStore::new(s.clone(), sink.clone(), "tarn-ingress"))
    };
    let issuer = Arc::new(DevIssuer::open_or_create(root).unwrap());
    let clock = Arc::new(SystemClock);
    let state = IngressState {
        tables: table_map(common::specs()),
        ingress: audited(&ingress),
        lake: audited(&lake),
        state: audited(&state),
        kms: Arc::new(LocalKms::open_or_create(LocalKms::path_in(root)).unwrap()),
        verifier: Arc::new(issuer.verifier(clock.clone())),
        issuer: Some(issuer.clone()),
        clock,
        notify: None,
        max_in_flight: 8,
        serve_unscanned: false,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        listener,
        router_with_audit(state, Some(sink.clone())),
        async {
            let _ = rx.await;
        },
    ));
    let client = reqwest::Client::builder()
        .user_agent("audit-test/1")
        .build()
        .unwrap();
    let hour = std::time::Duration::from_secs(3600);
    let mallory = issuer.mint("mallory", &[], hour).unwrap();
    let bob = issuer
        .mint(
            "bob",
            &[
                "tarn-writers".to_string(),
                "tarn-readers-events".to_string(),
            ],
            hour,
        )
        .unwrap();
    let forged = format!("{}x", &bob[..bob.len() - 1]);
    let post = |table: &str, token: Option<&str>, ct: &str, body: Vec<u8>| {
        let mut r = client
            .post(format!("{base}/table/{table}/object"))
            .header("content-type", ct)
            .body(body);
        if let Some(t) = token {
            r = r.header("authorization", format!("Bearer {t}"));
        }
        r.send()
    };
    let json = br#"{"kind":"a","n":1}"#.to_vec();
    let cases = [
        (
            post("events", None, "application/json", json.clone())
                .await
                .unwrap(),
            401,
        ),
        (
            post("events", Some(&forged), "application/json", json.clone())
                .await
                .unwrap(),
            401,
        ),
        (
            post("events", Some(&mallory), "application/json", json.clone())
                .await
                .unwrap(),
            403,
        ),
        (
            post("nosuch", Some(&bob), "application/json", json.clone())
                .await
                .unwrap(),
            404,
        ),
        (
            post("events", Some(&bob), "application/json", vec![b' '; 5000])
                .await
                .unwrap(),
            413,
        ),
        (
            post("events", Some(&bob), "text/plain", json.clone())
                .await
                .unwrap(),
            415,
        ),
    ];
    for (i, (resp, want)) in cases.into_iter().enumerate() {
        assert_eq!(resp.status().as_u16(), want, "case {i}");
    }
    let ok = post("events", Some(&bob), "application/json", json.clone())
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let id = ok.json::<Value>().await.unwrap()["data"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let missing = client
        .get(format!(
            "{base}/table/events/object/00000000-0000-4000-8000-000000000000/content"
        ))
        .header("authorization", &bob)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    let _ = tx.send(());
    server.await.unwrap().unwrap();
    sink.flush().await.unwrap();

    // no file of the trail holds any token, nor a part of one
    for path in walk(&audit.root().join("AWSLogs")) {
        let raw = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&gunzip(&raw).unwrap_or(raw)).into_owned();
        for token in [&mallory, &bob, &forged] {
            let signature = token.rsplit('.').next().unwrap();
            assert!(
                !text.contains(token.as_str()) && !text.contains(signature),
                "a token in {}",
                path.display()
            );
        }
    }

    let records = read_trail(
        audit.as_ref(),
        &TrailConfig::default(),
        &TrailFilter::default(),
    )
    .await
    .unwrap();
    let failed: Vec<_> = records
        .iter()
        .filter(|r| r.additional_event_data.get("httpStatus").is_some())
        .collect();
    let codes: Vec<&str> = failed
        .iter()
        .map(|r| r.error_code.as_deref().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "missing_token",
            "invalid_token",
            "forbidden",
            "unknown_table",
            "too_large",
            "unsupported_content_type",
            "unknown_document"
        ]
    );
    for r in &failed {
        assert_eq!(r.source_ip_address, "127.0.0.1");
        assert_eq!(r.user_agent, "audit-test/1");
        assert!(r.error_message.as_deref().is_some_and(|m| !m.is_empty()));
        assert_eq!(r.event_source, "s3.amazonaws.com");
    }
    assert_eq!(failed[0].user_identity.kind, "Unknown");
    assert_eq!(failed[1].user_identity.kind, "Unknown");
    assert_eq!(
        failed[2].user_identity.user_name.as_deref(),
        Some("mallory")
    );
    assert_eq!(failed[2].user_identity.kind, "WebIdentityUser");
    assert_eq!(failed[2].event_name, "PutObject");
    assert_eq!(failed[2].bucket(), Some("tarn-ingress"));
    assert_eq!(failed[2].table().as_deref(), Some("events"));
    assert_eq!(
        failed[3].table().as_deref(),
        Some("nosuch"),
        "a well-formed name, even undeclared"
    );
    assert_eq!(failed[6].event_name, "GetObject");
    assert_eq!(failed[6].bucket(), Some("tarn-lake"));
    assert_eq!(
        failed[6].key(),
        Some("objects/events/00000000-0000-4000-8000-000000000000")
    );
    assert_eq!(failed[6].user_identity.user_name.as_deref(), Some("bob"));

    // the accepted upload: the store's PutObject, attributed to bob, from his address
    let put = records
        .iter()
        .find(|r| r.event_name == "PutObject" && r.key() == Some(&format!("id={id}")))
        .expect("the landed document's PutObject");
    assert_eq!(put.user_identity.kind, "WebIdentityUser");
    assert_eq!(put.user_identity.user_name.as_deref(), Some("bob"));
    assert_eq!(
        put.user_identity.invoked_by.as_deref(),
        Some("tarn-ingress")
    );
    assert_eq!(
        put.user_identity.identity_provider.as_deref(),
        Some(tarn_ingress::DEV_ISSUER)
    );
    assert_eq!(put.source_ip_address, "127.0.0.1");
    assert_eq!(put.user_agent, "audit-test/1");
    assert!(put.error_code.is_none());
    assert_eq!(put.table().as_deref(), Some("events"));
}
