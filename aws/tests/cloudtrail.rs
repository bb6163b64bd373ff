//! `check_trail` against trails and event selectors in moto.

mod common;

use aws_sdk_cloudtrail::types::{
    AdvancedEventSelector, AdvancedFieldSelector, DataResource, EventSelector, ReadWriteType,
};
use common::*;

fn data(values: &[&str], rw: ReadWriteType) -> EventSelector {
    EventSelector::builder()
        .read_write_type(rw)
        .include_management_events(true)
        .data_resources(
            DataResource::builder()
                .r#type("AWS::S3::Object")
                .set_values(Some(values.iter().map(|s| s.to_string()).collect()))
                .build(),
        )
        .build()
}

fn field(name: &str, equals: &[&str], starts_with: &[&str]) -> AdvancedFieldSelector {
    let mut b = AdvancedFieldSelector::builder().field(name);
    for e in equals {
        b = b.equals(*e);
    }
    for s in starts_with {
        b = b.starts_with(*s);
    }
    b.build().unwrap()
}

#[tokio::test]
async fn check_trail_reports_what_is_missing() {
    let m = moto().await;
    let p = platform(&m.url).await;
    let ct = aws_sdk_cloudtrail::Client::new(&sdk_config(&m.url));

    let r = p.ports.check_trail().await.unwrap();
    assert!(!r.ok());
    assert!(r.missing[0].contains("trail tarn does not exist"), "{r:?}");

    ct.create_trail()
        .name("tarn")
        .s3_bucket_name("tarn-audit")
        .is_multi_region_trail(true)
        .send()
        .await
        .unwrap();
    let r = p.ports.check_trail().await.unwrap();
    let all = r.missing.join("\n");
    assert!(all.contains("log file validation is off"), "{all}");
    assert!(all.contains("not logging"), "{all}");
    for b in ["tarn-ingress", "tarn-lake", "tarn-quarantine"] {
        assert!(
            all.contains(&format!("no S3 data events are logged for bucket {b}")),
            "{all}"
        );
    }

    ct.update_trail()
        .name("tarn")
        .enable_log_file_validation(true)
        .send()
        .await
        .unwrap();
    ct.start_logging().name("tarn").send().await.unwrap();
    ct.put_event_selectors()
        .trail_name("tarn")
        .event_selectors(data(
            &["arn:aws:s3:::tarn-ingress/", "arn:aws:s3:::tarn-lake/"],
            ReadWriteType::All,
        ))
        .event_selectors(data(
            &["arn:aws:s3:::tarn-quarantine/"],
            ReadWriteType::WriteOnly,
        ))
        .send()
        .await
        .unwrap();
    let r = p.ports.check_trail().await.unwrap();
    assert_eq!(r.missing, vec!["S3 data events for bucket tarn-quarantine are logged for writes only; reads are missing".to_string()], "{r:?}");

    // a narrower prefix is not the whole bucket
    ct.put_event_selectors()
        .trail_name("tarn")
        .event_selectors(data(
            &[
                "arn:aws:s3:::tarn-ingress/some/prefix/",
                "arn:aws:s3:::tarn-lake/",
                "arn:aws:s3:::tarn-quarantine/",
            ],
            ReadWriteType::All,
        ))
        .send()
        .await
        .unwrap();
    let r = p.ports.check_trail().await.unwrap();
    assert_eq!(r.missing.len(), 1, "{r:?}");
    assert!(r.missing[0].contains("tarn-ingress"));

    // advanced selectors: all S3 objects, reads and writes
    ct.put_event_selectors()
        .trail_name("tarn")
        .advanced_event_selectors(
            AdvancedEventSelector::builder()
                .name("s3 data")
                .field_selectors(field("eventCategory", &["Data"], &[]))
                .field_selectors(field("resources.type", &["AWS::S3::Object"], &[]))
                .field_selectors(field(
                    "resources.ARN",
                    &[],
                    &[
                        "arn:aws:s3:::tarn-ingress/",
                        "arn:aws:s3:::tarn-lake/",
                        "arn:aws:s3:::tarn-quarantine/",
                    ],
                ))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let r = p.ports.check_trail().await.unwrap();
    assert!(r.ok(), "{r:?}");

    // as templates/tarn.yaml does: the lock's leases left out (the state store's locks/), and
    // nothing else may be
    let except = |excluded: &str| {
        let mut arn = field(
            "resources.ARN",
            &[],
            &[
                "arn:aws:s3:::tarn-ingress/",
                "arn:aws:s3:::tarn-lake/",
                "arn:aws:s3:::tarn-quarantine/",
            ],
        );
        arn.not_starts_with = Some(vec![excluded.to_string()]);
        AdvancedEventSelector::builder()
            .name("s3 data but one prefix")
            .field_selectors(field("eventCategory", &["Data"], &[]))
            .field_selectors(field("resources.type", &["AWS::S3::Object"], &[]))
            .field_selectors(arn)
            .build()
            .unwrap()
    };
    ct.put_event_selectors()
        .trail_name("tarn")
        .advanced_event_selectors(except("arn:aws:s3:::tarn-lake/state/locks/"))
        .send()
        .await
        .unwrap();
    let r = p.ports.check_trail().await.unwrap();
    assert!(r.ok(), "the lock's leases may be left out: {r:?}");
    for other in [
        "arn:aws:s3:::tarn-lake/state/",
        "arn:aws:s3:::tarn-lake/objects/",
        "arn:aws:s3:::tarn-ingress/state/locks/",
    ] {
        ct.put_event_selectors()
            .trail_name("tarn")
            .advanced_event_selectors(except(other))
            .send()
            .await
            .unwrap();
        let r = p.ports.check_trail().await.unwrap();
        let bucket = other
            .trim_start_matches("arn:aws:s3:::")
            .split('/')
            .next()
            .unwrap();
        assert_eq!(
            r.missing,
            vec![format!(
                "no S3 data events are logged for bucket {bucket} (need AWS::S3::Object, arn:aws:s3:::{bucket}/, read and write)"
            )],
            "leaving out {other}"
        );
    }

    // delivering elsewhere is a finding
    create_bucket(&m.url, "elsewhere").await;
    ct.update_trail()
        .name("tarn")
        .s3_bucket_name("elsewhere")
        .send()
        .await
        .unwrap();
    let r = p.ports.check_trail().await.unwrap();
    assert!(
        r.missing
            .iter()
            .any(|s| s.contains("not the audit bucket tarn-audit")),
        "{r:?}"
    );
}

/// moto has no `LookupEvents`: a small CloudTrail look-alike checks the request (user filter,
/// start time) and the paging.
#[tokio::test]
async fn lookup_events_pages_and_filters() {
    use axum::http::HeaderMap;
    use serde_json::{Value, json};
    use std::sync::{Arc, Mutex};
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let s = s.clone();
            async move {
                let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
                assert!(target.ends_with(".LookupEvents"), "{target}");
                let req: Value = serde_json::from_str(&body).unwrap();
                s.lock().unwrap().push(req.clone());
                let event = |id: &str, name: &str| {
                    json!({"EventId": id, "EventName": name, "ReadOnly": "false", "EventTime": 1709633472.0, "EventSource": "s3.amazonaws.com",
                           "Username": "alice", "Resources": [{"ResourceType": "AWS::S3::Bucket", "ResourceName": "tarn-lake"}], "CloudTrailEvent": "{}"})
                };
                let resp = match req.get("NextToken").and_then(Value::as_str) {
                    None => json!({"Events": [event("1", "PutBucketPolicy"), event("2", "PutBucketEncryption")], "NextToken": "p2"}),
                    Some("p2") => json!({"Events": [event("3", "CreateBucket")]}),
                    Some(other) => panic!("token {other}"),
                };
                ([("content-type", "application/x-amz-json-1.1")], resp.to_string())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = aws_sdk_cloudtrail::Client::new(&sdk_config(&url));
    let since = chrono::DateTime::parse_from_rfc3339("2024-03-01T00:00:00Z")
        .unwrap()
        .to_utc();

    let events = tarn_aws::lookup_events(&client, Some(since), Some("alice"), 100)
        .await
        .unwrap();
    let names: Vec<&str> = events.iter().map(|e| e.event_name.as_str()).collect();
    assert_eq!(
        names,
        ["PutBucketPolicy", "PutBucketEncryption", "CreateBucket"]
    );
    assert_eq!(events[0].user.as_deref(), Some("alice"));
    assert_eq!(events[0].resources, ["AWS::S3::Bucket:tarn-lake"]);
    assert_eq!(events[0].time.timestamp(), 1709633472);
    assert_eq!(events[0].read_only, Some(false));
    let reqs = seen.lock().unwrap().clone();
    assert_eq!(reqs.len(), 2, "two pages");
    assert_eq!(
        reqs[0]["LookupAttributes"][0],
        json!({"AttributeKey": "Username", "AttributeValue": "alice"})
    );
    assert_eq!(
        reqs[0]["StartTime"].as_f64().map(|t| t as i64),
        Some(since.timestamp())
    );

    // the limit stops paging
    let two = tarn_aws::lookup_events(&client, None, None, 2)
        .await
        .unwrap();
    assert_eq!(two.len(), 2);
    assert_eq!(seen.lock().unwrap().len(), 3);
}
