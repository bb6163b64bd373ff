//! `cloudtrail_logs` in the embedded engine: the Athena CloudTrail table's columns, and the
//! compliance queries of `queries/audit_*.sql`, run unchanged, on a small trail.

use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use tarn_catalog::LocalCatalog;
use tarn_core::audit::{
    Actor, AuditSink, AuditedStore, EventName, LocalAuditSink, RequestContext, RequestScope,
    SigningKey, SinkSettings, TrailConfig, denied_event, set_request_actor,
};
use tarn_core::{LocalObjectStore, ManualClock, Metadata, ObjectStore};
use tarn_query::{LocalQueryEngine, QueryEngine, QueryResult};

const DOC: &str = "00000000-0000-0000-0000-000000000000";

fn user(name: &str) -> Actor {
    Actor::WebIdentity {
        sub: format!("sub-{name}"),
        username: name.into(),
        issuer: "https://issuer".into(),
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    engine: LocalQueryEngine,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = |b: &str| {
        Arc::new(LocalObjectStore::open(format!("tarn-{b}"), dir.path().join(b)).unwrap())
    };
    let (audit, ingress, lake) = (store("audit"), store("ingress"), store("lake"));
    let t0 = DateTime::parse_from_rfc3339("2024-05-06T10:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let clock = Arc::new(ManualClock::new(t0));
    let key = SigningKey::open_or_create(dir.path().join("keys/audit-signing.key")).unwrap();
    let settings = SinkSettings {
        flush_interval: std::time::Duration::from_secs(3600),
        ..Default::default()
    };
    let sink = Arc::new(
        LocalAuditSink::open_with_clock(
            audit.clone(),
            TrailConfig::default(),
            key,
            settings,
            clock.clone(),
        )
        .await
        .unwrap(),
    );
    let at_ingress = |s: &Arc<LocalObjectStore>| {
        AuditedStore::new(s.clone(), sink.clone(), "tarn-ingress").with_clock(clock.clone())
    };
    let by_pipeline = |s: &Arc<LocalObjectStore>, c: &str| {
        AuditedStore::new(s.clone(), sink.clone(), c).with_clock(clock.clone())
    };
    let tick = || clock.advance(Duration::seconds(1));
    let doc_key = format!("id={DOC}");
    let object_key = format!("objects/images/dt=2024-05-06/{DOC}");

    // bob uploads (through a request scope, as the ingress does)
    tick();
    let scope = RequestScope::new(RequestContext {
        source_ip: Some("10.0.0.2".into()),
        user_agent: Some("tarn-ingest".into()),
        ..Default::default()
    });
    scope
        .run(async {
            set_request_actor(user("bob"));
            at_ingress(&ingress)
                .put(
                    &doc_key,
                    Bytes::from("sealed"),
                    Metadata::from([("table".to_string(), "images".to_string())]),
                )
                .await
                .unwrap();
        })
        .await;
    // the pipeline reads it, stores the sanitized object, deletes the upload
    tick();
    by_pipeline(&ingress, "tarn-pipeline")
        .get(&doc_key)
        .await
        .unwrap();
    tick();
    by_pipeline(&lake, "tarn-pipeline")
        .put(&object_key, Bytes::from("clean"), Metadata::new())
        .await
        .unwrap();
    tick();
    by_pipeline(&ingress, "tarn-pipeline")
        .delete(&doc_key)
        .await
        .unwrap();
    sink.flush().await.unwrap();
    // alice downloads it
    tick();
    at_ingress(&lake)
        .with_identity(user("alice"))
        .get(&object_key)
        .await
        .unwrap();
    // carol is refused; then someone without a token
    tick();
    let ctx = RequestContext {
        actor: Some(user("carol")),
        source_ip: Some("10.0.0.3".into()),
        user_agent: Some("curl/8".into()),
        request_id: None,
    };
    let mut extra = Map::new();
    extra.insert("httpStatus".into(), json!(403));
    extra.insert("tarnTable".into(), json!("images"));
    sink.record(with_time(
        denied_event(
            EventName::GetObject,
            "tarn-lake",
            Some(&format!("objects/images/{DOC}")),
            &ctx,
            "tarn-ingress",
            "forbidden",
            "user carol may not read the contents of table images",
            extra,
        ),
        clock.as_ref(),
    ));
    tick();
    let anon = RequestContext {
        source_ip: Some("10.0.0.4".into()),
        ..Default::default()
    };
    sink.record(with_time(
        denied_event(
            EventName::PutObject,
            "tarn-ingress",
            None,
            &anon,
            "tarn-ingress",
            "missing_token",
            "no token",
            Map::new(),
        ),
        clock.as_ref(),
    ));
    // alice looks for a document that is not there (a probe, not a failure worth listing)
    tick();
    assert!(
        at_ingress(&ingress)
            .with_identity(user("alice"))
            .head("id=99999999-0000-0000-0000-000000000000")
            .await
            .unwrap()
            .is_none()
    );
    // compaction removes an old file
    tick();
    by_pipeline(&lake, "tarn-compaction")
        .delete("tables/events/dt=2024-05-06/old.parquet")
        .await
        .unwrap();
    sink.flush().await.unwrap();

    let catalog = Arc::new(LocalCatalog::open(dir.path().join("catalog")).unwrap());
    let engine = LocalQueryEngine::new(catalog, "tarn")
        .with_audit_store(audit.clone(), TrailConfig::default());
    Setup { _dir: dir, engine }
}

fn with_time(
    mut e: tarn_core::audit::AuditEvent,
    clock: &ManualClock,
) -> tarn_core::audit::AuditEvent {
    use tarn_core::Clock;
    e.time = clock.now();
    e
}

fn column(r: &QueryResult, name: &str) -> Vec<Value> {
    let i = r
        .columns
        .iter()
        .position(|c| c.name == name)
        .unwrap_or_else(|| panic!("no column {name}"));
    r.rows.iter().map(|row| row[i].clone()).collect()
}

async fn run_file(engine: &LocalQueryEngine, sql: &str) -> QueryResult {
    engine
        .query(sql)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{sql}"))
}

#[tokio::test]
async fn cloudtrail_logs_has_the_athena_columns() {
    let s = setup().await;
    let r = s
        .engine
        .query("SELECT * FROM cloudtrail_logs ORDER BY eventtime")
        .await
        .unwrap();
    let names: Vec<&str> = r.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "eventversion",
            "useridentity",
            "eventtime",
            "eventsource",
            "eventname",
            "awsregion",
            "sourceipaddress",
            "useragent",
            "errorcode",
            "errormessage",
            "requestparameters",
            "responseelements",
            "additionaleventdata",
            "requestid",
            "eventid",
            "resources",
            "eventtype",
            "apiversion",
            "readonly",
            "recipientaccountid",
            "serviceeventdetails",
            "sharedeventid",
            "vpcendpointid",
            "vpcendpointaccountid",
            "eventcategory",
            "addendum",
            "sessioncredentialfromconsole",
            "edgedevicedetails",
            "tlsdetails",
            "region",
            "year",
            "month",
            "day",
        ]
    );
    assert_eq!(r.rows.len(), 9);
    let r = s
        .engine
        .query(
            "SELECT useridentity.type AS t, useridentity.username AS u, useridentity.principalid AS p, \
             useridentity.invokedby AS i, resources[1]['arn'] AS arn, resources[1]['type'] AS rt, readonly, eventcategory, \
             eventversion, region, year, month, day \
             FROM cloudtrail_logs ORDER BY eventtime LIMIT 1",
        )
        .await
        .unwrap();
    let row: Vec<Value> = r.rows[0].clone();
    assert_eq!(
        row,
        [
            json!("WebIdentityUser"),
            json!("bob"),
            json!("sub-bob"),
            json!("tarn-ingress"),
            json!(format!("arn:aws:s3:::tarn-ingress/id={DOC}")),
            json!("AWS::S3::Object"),
            json!("false"),
            json!("Data"),
            json!("1.09"),
            json!("local"),
            json!("2024"),
            json!("05"),
            json!("06"),
        ]
    );
    // requestparameters is JSON text, as Athena's string column
    let r = s
        .engine
        .query("SELECT requestparameters FROM cloudtrail_logs ORDER BY eventtime LIMIT 1")
        .await
        .unwrap();
    let params: Value = serde_json::from_str(r.rows[0][0].as_str().unwrap()).unwrap();
    assert_eq!(params["key"], json!(format!("id={DOC}")));
}

#[tokio::test]
async fn who_read_document() {
    let s = setup().await;
    let r = run_file(
        &s.engine,
        include_str!("../../queries/audit_who_read_document.sql"),
    )
    .await;
    assert_eq!(
        column(&r, "who"),
        [json!("tarn-pipeline"), json!("alice"), json!("carol")]
    );
    assert_eq!(
        column(&r, "errorcode"),
        [Value::Null, Value::Null, json!("forbidden")]
    );
    assert_eq!(column(&r, "sourceipaddress")[2], json!("10.0.0.3"));
}

#[tokio::test]
async fn user_activity() {
    let s = setup().await;
    let r = run_file(
        &s.engine,
        include_str!("../../queries/audit_user_activity.sql"),
    )
    .await;
    assert_eq!(
        column(&r, "eventname"),
        [json!("HeadObject"), json!("GetObject")]
    );
    assert_eq!(
        column(&r, "object_key")[1],
        json!(format!("objects/images/dt=2024-05-06/{DOC}"))
    );
}

#[tokio::test]
async fn failed_requests() {
    let s = setup().await;
    let r = run_file(
        &s.engine,
        include_str!("../../queries/audit_failed_requests.sql"),
    )
    .await;
    assert_eq!(
        column(&r, "errorcode"),
        [json!("missing_token"), json!("forbidden")]
    );
    assert_eq!(column(&r, "who"), [json!("anonymous"), json!("carol")]);
}

#[tokio::test]
async fn deletes() {
    let s = setup().await;
    let r = run_file(&s.engine, include_str!("../../queries/audit_deletes.sql")).await;
    assert_eq!(
        column(&r, "who"),
        [json!("tarn-pipeline"), json!("tarn-compaction")]
    );
    assert_eq!(
        column(&r, "object_key"),
        [
            json!(format!("id={DOC}")),
            json!("tables/events/dt=2024-05-06/old.parquet")
        ]
    );
}

#[tokio::test]
async fn without_an_audit_store_there_is_no_table_but_the_function_exists() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Arc::new(LocalCatalog::open(dir.path().join("catalog")).unwrap());
    let engine = LocalQueryEngine::new(catalog, "tarn");
    let r = engine
        .query("SELECT json_extract_scalar('{\"a\":{\"b\":1}}', '$.a.b') AS v")
        .await
        .unwrap();
    assert_eq!(r.rows[0][0], json!("1"));
    assert!(engine.query("SELECT * FROM cloudtrail_logs").await.is_err());
}

#[tokio::test]
async fn what_tarn_audit_prints() {
    let s = setup().await;
    let _ = &s;
    let dir = s._dir.path();
    let audit = LocalObjectStore::open("tarn-audit", dir.join("audit")).unwrap();
    let filter = tarn_core::audit::TrailFilter {
        user: Some("alice".into()),
        ..Default::default()
    };
    let records = tarn_core::audit::read_trail(&audit, &TrailConfig::default(), &filter)
        .await
        .unwrap();
    let r = tarn_query::audit::trail_result(&records);
    assert_eq!(
        column(&r, "eventname"),
        [json!("GetObject"), json!("HeadObject")]
    );
    assert_eq!(column(&r, "table"), [json!("images"), Value::Null]);
    let json_out: Value = serde_json::from_str(&r.render(tarn_query::OutputFormat::Json)).unwrap();
    assert_eq!(json_out[0]["who"], "alice");
    let key = SigningKey::open_or_create(dir.join("keys/audit-signing.key")).unwrap();
    let report = tarn_core::audit::verify(&audit, &TrailConfig::default(), &key.public_key())
        .await
        .unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert!(tarn_query::audit::verify_result(&report).rows.is_empty());
}
