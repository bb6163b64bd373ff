//! The spine's conformance suites, unchanged, against the AWS implementations on moto.

mod common;

use bytes::Bytes;
use common::*;
use std::sync::Arc;
use tarn_aws::{GlueCatalog, KmsClient, S3ObjectStore};
use tarn_core::{Metadata, ObjectStore};

#[tokio::test]
async fn s3_object_store_passes_the_conformance_suite() {
    let m = moto().await;
    create_bucket(&m.url, "conformance").await;
    let key = create_key(&m.url).await;
    let store = S3ObjectStore::new(s3(&m.url), "conformance", Some(key.clone()));
    tarn_core::conformance::object_store(&store).await;

    // the same under a prefix (how the state shares the lake bucket)
    let prefixed =
        S3ObjectStore::new(s3(&m.url), "conformance", Some(key.clone())).with_prefix("state");
    prefixed
        .put("a/b", Bytes::from_static(b"x"), Metadata::new())
        .await
        .unwrap();
    assert_eq!(prefixed.url("a/b"), "s3://conformance/state/a/b");
    assert_eq!(prefixed.list("a/").await.unwrap()[0].key, "a/b");
    let raw = s3(&m.url)
        .get_object()
        .bucket("conformance")
        .key("state/a/b")
        .send()
        .await
        .unwrap();
    assert_eq!(
        raw.server_side_encryption().map(|s| s.as_str()),
        Some("aws:kms"),
        "every put is SSE-KMS"
    );
    assert_eq!(store.url(""), "s3://conformance/");

    // a server-side copy keeps SSE-KMS under the platform key, under a prefix too
    prefixed.copy("a/b", "c/d=1/e").await.unwrap();
    assert_eq!(
        sse_kms_key(&m.url, "conformance", "state/c/d=1/e", "a copy").await,
        key
    );
}

#[tokio::test]
async fn s3_puts_are_sse_kms_with_the_platform_key_and_large_bodies_go_multipart() {
    let m = moto().await;
    create_bucket(&m.url, "big").await;
    let key = create_key(&m.url).await;
    let store = S3ObjectStore::new(s3(&m.url), "big", Some(key.clone()));
    let meta: Metadata = [
        ("table".to_string(), "photos".to_string()),
        ("producer".to_string(), "alice".to_string()),
    ]
    .into();
    store
        .put("small", Bytes::from_static(b"hello"), meta.clone())
        .await
        .unwrap();
    assert_eq!(sse_kms_key(&m.url, "big", "small", "a put").await, key);

    // 20 MiB: three parts
    let body: Vec<u8> = (0..20u32 << 20).map(|i| (i % 253) as u8).collect();
    store
        .put("large", Bytes::from(body.clone()), meta.clone())
        .await
        .unwrap();
    let got = store.get("large").await.unwrap();
    assert!(got.body == body);
    assert_eq!(got.info.metadata, meta);
    let head = s3(&m.url)
        .head_object()
        .bucket("big")
        .key("large")
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.server_side_encryption().map(|s| s.as_str()),
        Some("aws:kms")
    );
    assert!(
        head.e_tag().unwrap_or_default().contains('-'),
        "a multipart ETag: {:?}",
        head.e_tag()
    );
    // large conditional writes: one PUT, refused when the key exists
    assert!(
        !store
            .put_if_absent("large", Bytes::from(body.clone()), Metadata::new())
            .await
            .unwrap()
    );
    assert!(
        store.get("large").await.unwrap().info.metadata == meta,
        "the refused write changed nothing"
    );
    assert!(
        store
            .put_if_absent("large2", Bytes::from(body), Metadata::new())
            .await
            .unwrap()
    );
    let uploads = s3(&m.url)
        .list_multipart_uploads()
        .bucket("big")
        .send()
        .await
        .unwrap();
    assert!(
        uploads.uploads().is_empty(),
        "no multipart upload is left behind"
    );

    // paging: more than one ListObjectsV2 page (1000 keys)
    let store2 = Arc::new(store.clone());
    let mut handles = Vec::new();
    for t in 0..10 {
        let s = store2.clone();
        handles.push(tokio::spawn(async move {
            for i in (t * 110)..((t + 1) * 110) {
                s.put(
                    &format!("many/{i:05}"),
                    Bytes::from_static(b"x"),
                    Metadata::new(),
                )
                .await
                .unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let listed = store.list("many/").await.unwrap();
    assert_eq!(listed.len(), 1100);
    assert_eq!(listed[1099].key, "many/01099");
}

#[tokio::test]
async fn non_ascii_metadata_round_trips() {
    let m = moto().await;
    create_bucket(&m.url, "meta").await;
    let store = S3ObjectStore::new(s3(&m.url), "meta", None);
    let meta: Metadata = [
        ("producer".to_string(), "Zoë Ångström 山田".to_string()),
        ("table".to_string(), "events".to_string()),
        (
            "reason".to_string(),
            "=?looks encoded?= but is not".to_string(),
        ),
    ]
    .into();
    store
        .put("k", Bytes::from_static(b"x"), meta.clone())
        .await
        .unwrap();
    assert_eq!(store.get("k").await.unwrap().info.metadata, meta);
    assert_eq!(store.head("k").await.unwrap().unwrap().metadata, meta);
}

#[tokio::test]
async fn kms_client_passes_the_conformance_suite() {
    let m = moto().await;
    let key = create_key(&m.url).await;
    let kms = KmsClient::new(aws_sdk_kms::Client::new(&sdk_config(&m.url)), key);
    tarn_core::conformance::kms(&kms).await;
}

#[tokio::test]
async fn glue_catalog_passes_the_conformance_suite() {
    let m = moto().await;
    let glue = GlueCatalog::new(aws_sdk_glue::Client::new(&sdk_config(&m.url)));
    tarn_catalog::conformance::catalog(&glue).await;
}

#[tokio::test]
async fn glue_tables_are_parquet_and_partitions_go_in_chunks_of_100() {
    use tarn_catalog::{Catalog, Partition};
    let m = moto().await;
    let client = aws_sdk_glue::Client::new(&sdk_config(&m.url));
    let glue = GlueCatalog::new(client.clone());
    glue.ensure_database("tarn").await.unwrap();
    let mut def = tarn_catalog::conformance::sample_table("t");
    def.location = "s3://lake/tables/t/".into();
    glue.upsert_table("tarn", &def).await.unwrap();
    let raw = client
        .get_table()
        .database_name("tarn")
        .name("t")
        .send()
        .await
        .unwrap();
    let sd = raw.table().unwrap().storage_descriptor().unwrap();
    assert_eq!(
        sd.serde_info().unwrap().serialization_library(),
        Some(tarn_aws::glue::PARQUET_SERDE)
    );
    assert_eq!(
        sd.input_format(),
        Some(tarn_aws::glue::PARQUET_INPUT_FORMAT)
    );
    assert_eq!(
        sd.output_format(),
        Some(tarn_aws::glue::PARQUET_OUTPUT_FORMAT)
    );
    assert_eq!(raw.table().unwrap().table_type(), Some("EXTERNAL_TABLE"));

    // 250 partitions: three BatchCreatePartition calls; again: none new; a mix: only the new
    let parts: Vec<Partition> = (0..250)
        .map(|i| Partition {
            values: vec![format!("2024-{:02}-{:02}", i / 28 + 1, i % 28 + 1)],
            location: format!("s3://lake/tables/t/dt={i}/"),
        })
        .collect();
    assert_eq!(glue.add_partitions("tarn", "t", &parts).await.unwrap(), 250);
    assert_eq!(glue.add_partitions("tarn", "t", &parts).await.unwrap(), 0);
    let mut more = parts[200..].to_vec();
    more.push(Partition {
        values: vec!["2025-01-01".into()],
        location: "s3://lake/tables/t/dt=2025-01-01/".into(),
    });
    assert_eq!(glue.add_partitions("tarn", "t", &more).await.unwrap(), 1);
    let got = glue.get_partitions("tarn", "t").await.unwrap();
    assert_eq!(got.len(), 251, "paged through every partition");
    assert!(got.windows(2).all(|w| w[0].values < w[1].values), "sorted");
    let p = raw_partition(&client, "2025-01-01").await;
    assert_eq!(p, "s3://lake/tables/t/dt=2025-01-01/");
}

async fn raw_partition(client: &aws_sdk_glue::Client, dt: &str) -> String {
    let out = client
        .get_partition()
        .database_name("tarn")
        .table_name("t")
        .partition_values(dt)
        .send()
        .await
        .unwrap();
    out.partition()
        .unwrap()
        .storage_descriptor()
        .unwrap()
        .location()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn presigned_part_urls_take_plain_puts_and_the_completed_object_is_sse_kms() {
    let m = moto().await;
    create_bucket(&m.url, "parts").await;
    let key = create_key(&m.url).await;
    let store = S3ObjectStore::new(s3(&m.url), "parts", Some(key.clone())).with_prefix("in");
    let meta: Metadata = [("table".to_string(), "photos".to_string())].into();
    let upload = store
        .create_multipart("id=big", meta.clone())
        .await
        .unwrap();
    let min = tarn_core::store::MIN_PART_SIZE as usize;
    let body: Vec<u8> = (0..min + 4321).map(|i| (i % 253) as u8).collect();
    let http = reqwest::Client::new();
    for (number, chunk) in [(1u32, &body[..min]), (2, &body[min..])] {
        let url = store
            .presign_upload_part(
                "id=big",
                &upload,
                number,
                std::time::Duration::from_secs(600),
            )
            .await
            .unwrap()
            .expect("s3 presigns part urls");
        assert!(
            url.contains("partNumber=") && url.contains("X-Amz-Signature="),
            "{url}"
        );
        // a plain PUT, no credentials, no sdk
        let resp = http.put(&url).body(chunk.to_vec()).send().await.unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
        assert!(resp.headers().contains_key("etag"));
    }
    // the server completes from what it lists, as the ingress does
    let parts = store.list_parts("id=big", &upload).await.unwrap();
    assert_eq!(
        parts.iter().map(|p| (p.number, p.size)).collect::<Vec<_>>(),
        [(1, min as u64), (2, 4321)]
    );
    assert!(
        store
            .complete_multipart("id=big", &upload, &parts, true)
            .await
            .unwrap()
    );
    let got = store.get("id=big").await.unwrap();
    assert!(got.body == body, "the parts in order");
    assert_eq!(got.info.metadata, meta);
    assert_eq!(
        sse_kms_key(&m.url, "parts", "in/id=big", "a completed upload").await,
        key
    );
}
