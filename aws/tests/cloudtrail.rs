//! `check_trail` against trails and event selectors in moto.

mod common;

use aws_sdk_cloudtrail::types::{AdvancedEventSelector, AdvancedFieldSelector, DataResource, EventSelector, ReadWriteType};
use common::*;

fn data(values: &[&str], rw: ReadWriteType) -> EventSelector {
    EventSelector::builder()
        .read_write_type(rw)
        .include_management_events(true)
        .data_resources(DataResource::builder().r#type("AWS::S3::Object").set_values(Some(values.iter().map(|s| s.to_string()).collect())).build())
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

    ct.create_trail().name("tarn").s3_bucket_name("tarn-audit").is_multi_region_trail(true).send().await.unwrap();
    let r = p.ports.check_trail().await.unwrap();
    let all = r.missing.join("\n");
    assert!(all.contains("log file validation is off"), "{all}");
    assert!(all.contains("not logging"), "{all}");
    for b in ["tarn-ingress", "tarn-lake", "tarn-quarantine"] {
        assert!(all.contains(&format!("no S3 data events are logged for bucket {b}")), "{all}");
    }

    ct.update_trail().name("tarn").enable_log_file_validation(true).send().await.unwrap();
    ct.start_logging().name("tarn").send().await.unwrap();
    ct.put_event_selectors()
        .trail_name("tarn")
        .event_selectors(data(&["arn:aws:s3:::tarn-ingress/", "arn:aws:s3:::tarn-lake/"], ReadWriteType::All))
        .event_selectors(data(&["arn:aws:s3:::tarn-quarantine/"], ReadWriteType::WriteOnly))
        .send()
        .await
        .unwrap();
    let r = p.ports.check_trail().await.unwrap();
    assert_eq!(r.missing, vec!["S3 data events for bucket tarn-quarantine are logged for writes only; reads are missing".to_string()], "{r:?}");

    // a narrower prefix is not the whole bucket
    ct.put_event_selectors()
        .trail_name("tarn")
        .event_selectors(data(&["arn:aws:s3:::tarn-ingress/some/prefix/", "arn:aws:s3:::tarn-lake/", "arn:aws:s3:::tarn-quarantine/"], ReadWriteType::All))
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
                .field_selectors(field("resources.ARN", &[], &["arn:aws:s3:::tarn-ingress/", "arn:aws:s3:::tarn-lake/", "arn:aws:s3:::tarn-quarantine/"]))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let r = p.ports.check_trail().await.unwrap();
    assert!(r.ok(), "{r:?}");

    // delivering elsewhere is a finding
    create_bucket(&m.url, "elsewhere").await;
    ct.update_trail().name("tarn").s3_bucket_name("elsewhere").send().await.unwrap();
    let r = p.ports.check_trail().await.unwrap();
    assert!(r.missing.iter().any(|s| s.contains("not the audit bucket tarn-audit")), "{r:?}");
}
