//! The access trail: records through `AuditedStore` land as CloudTrail log files, and `verify`
//! finds every kind of tampering.

use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use std::sync::Arc;
use tarn_core::audit::{
    Actor, AuditSink, AuditedStore, LocalAuditSink, ProblemKind, RequestContext, RequestScope,
    SigningKey, SinkSettings, TrailConfig, TrailFilter, gunzip, read_trail, set_request_actor,
    verify,
};
use tarn_core::{LocalObjectStore, ManualClock, Metadata, ObjectStore};

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-05-06T10:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn settings() -> SinkSettings {
    // only explicit flushes in these tests
    SinkSettings {
        flush_interval: std::time::Duration::from_secs(3600),
        max_records: 100_000,
        digest_interval: std::time::Duration::from_secs(3600),
    }
}

struct Trail {
    _dir: tempfile::TempDir,
    audit: Arc<LocalObjectStore>,
    data: Arc<LocalObjectStore>,
    key: Vec<u8>,
    clock: Arc<ManualClock>,
}

async fn trail_with(dir: tempfile::TempDir, key_path: &std::path::Path) -> (Trail, LocalAuditSink) {
    let audit = Arc::new(LocalObjectStore::open("tarn-audit", dir.path().join("audit")).unwrap());
    let data = Arc::new(LocalObjectStore::open("tarn-lake", dir.path().join("lake")).unwrap());
    let key = SigningKey::open_or_create(key_path).unwrap();
    let public = key.public_key();
    let clock = Arc::new(ManualClock::new(t0()));
    let sink = LocalAuditSink::open_with_clock(
        audit.clone(),
        TrailConfig::default(),
        key,
        settings(),
        clock.clone(),
    )
    .await
    .unwrap();
    (
        Trail {
            _dir: dir,
            audit,
            data,
            key: public,
            clock,
        },
        sink,
    )
}

fn all_gz_records(audit: &LocalObjectStore) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for entry in walk(&audit.root().join("AWSLogs")) {
        let name = entry.to_string_lossy().to_string();
        if name.contains("/CloudTrail/") && name.ends_with(".json.gz") {
            let body = gunzip(&std::fs::read(&entry).unwrap()).unwrap();
            out.push((name, serde_json::from_slice(&body).unwrap()));
        }
    }
    out
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p))
            } else {
                out.push(p)
            }
        }
    }
    out
}

#[tokio::test]
async fn every_call_lands_as_a_cloudtrail_data_event() {
    let dir = tempfile::tempdir().unwrap();
    let kp = dir.path().join("keys/audit-signing.key");
    let (t, sink) = trail_with(dir, &kp).await;
    let sink = Arc::new(sink);
    let store = AuditedStore::new(t.data.clone(), sink.clone(), "tarn-pipeline")
        .with_clock(t.clock.clone());
    let secret_content = "SECRET-DOCUMENT-CONTENT-42";
    store
        .put(
            "tables/events/dt=2024-05-06/a.parquet",
            Bytes::from(secret_content),
            Metadata::new(),
        )
        .await
        .unwrap();
    store
        .get("tables/events/dt=2024-05-06/a.parquet")
        .await
        .unwrap();
    assert!(store.get("tables/events/missing").await.is_err());
    assert!(
        store
            .head("objects/images/dt=2024-05-06/nothing")
            .await
            .unwrap()
            .is_none()
    );
    store.list("tables/events/").await.unwrap();
    assert!(
        !store
            .put_if_absent(
                "tables/events/dt=2024-05-06/a.parquet",
                Bytes::from("x"),
                Metadata::new()
            )
            .await
            .unwrap()
    );
    store
        .delete("tables/events/dt=2024-05-06/a.parquet")
        .await
        .unwrap();
    // an analyst's download, attributed explicitly, and a producer's write through a request scope
    let alice = Actor::WebIdentity {
        sub: "sub-alice".into(),
        username: "alice".into(),
        issuer: "https://issuer".into(),
    };
    store
        .with_identity(alice)
        .get("tables/events/missing")
        .await
        .unwrap_err();
    let scope = RequestScope::new(RequestContext {
        source_ip: Some("10.1.2.3".into()),
        user_agent: Some("curl/8".into()),
        ..Default::default()
    });
    scope
        .run(async {
            set_request_actor(Actor::WebIdentity {
                sub: "sub-bob".into(),
                username: "bob".into(),
                issuer: "https://issuer".into(),
            });
            store
                .put(
                    "id=00000000-0000-0000-0000-000000000001",
                    Bytes::from("y"),
                    Metadata::from([("table".to_string(), "events".to_string())]),
                )
                .await
                .unwrap();
        })
        .await;
    assert_eq!(sink.pending(), 9);
    sink.flush().await.unwrap();
    assert_eq!(sink.pending(), 0);

    let files = all_gz_records(&t.audit);
    assert_eq!(files.len(), 1);
    let (path, doc) = &files[0];
    assert!(path.contains("/AWSLogs/000000000000/CloudTrail/local/2024/05/06/000000000000_CloudTrail_local_20240506T1000Z_"), "{path}");
    let raw = String::from_utf8(gunzip(&std::fs::read(path).unwrap()).unwrap()).unwrap();
    assert!(
        !raw.contains(secret_content),
        "a record holds document content"
    );
    let records = doc["Records"].as_array().unwrap();
    assert_eq!(records.len(), 9);
    for r in records {
        assert_eq!(r["eventVersion"], "1.09");
        assert_eq!(r["eventSource"], "s3.amazonaws.com");
        assert_eq!(r["eventType"], "AwsApiCall");
        assert_eq!(r["eventCategory"], "Data");
        assert_eq!(r["managementEvent"], false);
        assert_eq!(r["awsRegion"], "local");
        assert_eq!(r["recipientAccountId"], "000000000000");
        assert_eq!(r["eventTime"], "2024-05-06T10:00:00Z");
        assert!(r["readOnly"].is_boolean());
        assert!(uuid::Uuid::parse_str(r["eventID"].as_str().unwrap()).is_ok());
        assert!(!r["requestID"].as_str().unwrap().is_empty());
        assert_eq!(r["requestParameters"]["bucketName"], "tarn-lake");
        assert!(r["resources"].as_array().unwrap().iter().any(|x| {
            x["ARN"]
                .as_str()
                .unwrap()
                .starts_with("arn:aws:s3:::tarn-lake")
        }));
    }
    let names: Vec<&str> = records
        .iter()
        .map(|r| r["eventName"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "PutObject",
            "GetObject",
            "GetObject",
            "HeadObject",
            "ListObjects",
            "PutObject",
            "DeleteObject",
            "GetObject",
            "PutObject"
        ]
    );
    let put = &records[0];
    assert_eq!(put["userIdentity"]["type"], "AWSService");
    assert_eq!(put["userIdentity"]["invokedBy"], "tarn-pipeline");
    assert_eq!(put["readOnly"], false);
    assert_eq!(
        put["requestParameters"]["key"],
        "tables/events/dt=2024-05-06/a.parquet"
    );
    assert_eq!(put["resources"][0]["type"], "AWS::S3::Object");
    assert_eq!(
        put["resources"][0]["ARN"],
        "arn:aws:s3:::tarn-lake/tables/events/dt=2024-05-06/a.parquet"
    );
    assert_eq!(put["additionalEventData"]["tarnTable"], "events");
    assert!(put.get("errorCode").is_none());
    assert_eq!(records[1]["readOnly"], true);
    assert_eq!(records[2]["errorCode"], "NoSuchKey");
    assert_eq!(records[3]["errorCode"], "NoSuchKey");
    assert_eq!(records[4]["requestParameters"]["prefix"], "tables/events/");
    assert_eq!(records[4]["resources"][0]["type"], "AWS::S3::Bucket");
    assert_eq!(records[5]["errorCode"], "PreconditionFailed");
    let alice = &records[7]["userIdentity"];
    assert_eq!(alice["type"], "WebIdentityUser");
    assert_eq!(alice["userName"], "alice");
    assert_eq!(alice["principalId"], "sub-alice");
    assert_eq!(alice["identityProvider"], "https://issuer");
    let bob = &records[8];
    assert_eq!(bob["userIdentity"]["userName"], "bob");
    assert_eq!(bob["sourceIPAddress"], "10.1.2.3");
    assert_eq!(bob["userAgent"], "curl/8");
    assert_eq!(bob["additionalEventData"]["tarnTable"], "events");

    // read back with filters
    let filter = TrailFilter {
        user: Some("alice".into()),
        ..Default::default()
    };
    let got = read_trail(t.audit.as_ref(), &TrailConfig::default(), &filter)
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    let filter = TrailFilter {
        table: Some("events".into()),
        event: Some("putobject".into()),
        ..Default::default()
    };
    assert_eq!(
        read_trail(t.audit.as_ref(), &TrailConfig::default(), &filter)
            .await
            .unwrap()
            .len(),
        3
    );
    let filter = TrailFilter {
        since: Some(t0() + Duration::minutes(1)),
        ..Default::default()
    };
    assert!(
        read_trail(t.audit.as_ref(), &TrailConfig::default(), &filter)
            .await
            .unwrap()
            .is_empty()
    );
    // the flush wrote a digest too; the trail verifies
    let report = verify(t.audit.as_ref(), &TrailConfig::default(), &t.key)
        .await
        .unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(
        (report.digests, report.log_files, report.log_files_valid),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn a_ranged_read_is_a_get_object_record_with_its_range_and_the_bytes_it_gave() {
    let dir = tempfile::tempdir().unwrap();
    let kp = dir.path().join("keys/audit-signing.key");
    let (t, sink) = trail_with(dir, &kp).await;
    let sink = Arc::new(sink);
    let store = AuditedStore::new(t.data.clone(), sink.clone(), "tarn-compaction")
        .with_clock(t.clock.clone());
    let key = "tables/events/dt=2024-05-06/a.parquet";
    store
        .put(key, Bytes::from_static(b"0123456789"), Metadata::new())
        .await
        .unwrap();
    assert_eq!(&store.get_range(key, 6..20).await.unwrap()[..], b"6789");
    assert!(
        store
            .get_range("tables/events/missing", 0..8)
            .await
            .is_err()
    );
    sink.flush().await.unwrap();
    let records: Vec<Value> = all_gz_records(&t.audit)
        .into_iter()
        .flat_map(|(_, doc)| doc["Records"].as_array().unwrap().clone())
        .collect();
    assert_eq!(records.len(), 3);
    let got = &records[1];
    assert_eq!(got["eventName"], "GetObject");
    assert_eq!(got["readOnly"], true);
    assert_eq!(got["requestParameters"]["key"], key);
    assert_eq!(got["requestParameters"]["Range"], "bytes=6-19");
    assert_eq!(got["additionalEventData"]["bytesTransferredOut"], 4);
    assert_eq!(got["additionalEventData"]["tarnTable"], "events");
    let missing = &records[2];
    assert_eq!(missing["requestParameters"]["Range"], "bytes=0-7");
    assert_eq!(missing["errorCode"], "NoSuchKey");
    assert_eq!(missing["additionalEventData"]["bytesTransferredOut"], 0);
}

#[tokio::test]
async fn a_full_batch_is_written_without_waiting_for_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let audit = Arc::new(LocalObjectStore::open("tarn-audit", dir.path().join("audit")).unwrap());
    let data = Arc::new(LocalObjectStore::open("tarn-lake", dir.path().join("lake")).unwrap());
    let key = SigningKey::open_or_create(dir.path().join("k.key")).unwrap();
    let settings = SinkSettings {
        flush_interval: std::time::Duration::from_secs(3600),
        max_records: 3,
        ..settings()
    };
    let sink = Arc::new(
        LocalAuditSink::open(audit.clone(), TrailConfig::default(), key, settings)
            .await
            .unwrap(),
    );
    let store = AuditedStore::new(data, sink.clone(), "tarn-query");
    for _ in 0..3 {
        store.head("tables/t/x").await.unwrap();
    }
    // the buffer empties before the log file lands: wait for the trail itself, well short of
    // the hour-long interval
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let got = loop {
        let got = read_trail(
            audit.as_ref(),
            &TrailConfig::default(),
            &TrailFilter::default(),
        )
        .await
        .unwrap();
        if got.len() >= 3 || std::time::Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(sink.pending(), 0);
    assert_eq!(got.len(), 3);
}

/// A trail of three flushes a minute apart: three log files, three chained digests.
async fn three_period_trail(dir: tempfile::TempDir) -> (Trail, Vec<String>, Vec<String>) {
    let kp = dir.path().join("keys/audit-signing.key");
    let (t, sink) = trail_with(dir, &kp).await;
    let sink = Arc::new(sink);
    let store = AuditedStore::new(t.data.clone(), sink.clone(), "tarn-pipeline")
        .with_clock(t.clock.clone());
    for i in 0..3 {
        t.clock.advance(Duration::minutes(1));
        store
            .put(
                &format!("tables/events/dt=2024-05-06/{i}.parquet"),
                Bytes::from("x"),
                Metadata::new(),
            )
            .await
            .unwrap();
        sink.flush().await.unwrap();
    }
    let logs: Vec<String> = t
        .audit
        .list(&TrailConfig::default().log_prefix())
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    let digests: Vec<String> = t
        .audit
        .list(&TrailConfig::default().digest_prefix())
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!((logs.len(), digests.len()), (3, 3));
    let report = verify(t.audit.as_ref(), &TrailConfig::default(), &t.key)
        .await
        .unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.log_files_valid, 3);
    (t, logs, digests)
}

fn kinds(report: &tarn_core::audit::VerifyReport) -> Vec<(ProblemKind, String)> {
    report
        .problems
        .iter()
        .map(|p| (p.kind, p.key.clone()))
        .collect()
}

#[tokio::test]
async fn verify_finds_a_modified_log_file() {
    let (t, logs, _) = three_period_trail(tempfile::tempdir().unwrap()).await;
    let got = t.audit.get(&logs[1]).await.unwrap();
    let text = String::from_utf8(gunzip(&got.body).unwrap())
        .unwrap()
        .replace("tarn-pipeline", "tarn-pipelinX");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut enc, text.as_bytes()).unwrap();
    t.audit
        .put(
            &logs[1],
            Bytes::from(enc.finish().unwrap()),
            Metadata::new(),
        )
        .await
        .unwrap();
    let report = verify(t.audit.as_ref(), &TrailConfig::default(), &t.key)
        .await
        .unwrap();
    assert_eq!(
        kinds(&report),
        [(ProblemKind::LogFileModified, logs[1].clone())]
    );
}

#[tokio::test]
async fn verify_finds_a_deleted_log_file() {
    let (t, logs, _) = three_period_trail(tempfile::tempdir().unwrap()).await;
    t.audit.delete(&logs[0]).await.unwrap();
    let report = verify(t.audit.as_ref(), &TrailConfig::default(), &t.key)
        .await
        .unwrap();
    assert_eq!(
        kinds(&report),
        [(ProblemKind::LogFileDeleted, logs[0].clone())]
    );
}

#[tokio::test]
async fn verify_finds_an_inserted_log_file() {
    let (t, logs, _) = three_period_trail(tempfile::tempdir().unwrap()).await;
    let got = t.audit.get(&logs[0]).await.unwrap();
    let forged = TrailConfig::default().log_key(t0() + Duration::minutes(1), "0123456789abcdef");
    t.audit
        .put(&forged, got.body, Metadata::new())
        .await
        .unwrap();
    let report = verify(t.audit.as_ref(), &TrailConfig::default(), &t.key)
        .await
        .unwrap();
    assert_eq!(kinds(&report), [(ProblemKind::LogFileInserted, forged)]);
    // a log file newer than the newest digest is not covered yet, not a problem
    let later = TrailConfig::default().log_key(t0() + Duration::minutes(10), "fedcba9876543210");
    t.audit
        .put(&later, Bytes::from("x"), Metadata::new())
        .await
        .unwrap();
    let report = verify(t.audit.as_ref(), &TrailConfig::default(), &t.key)
        .await
        .unwrap();
    assert_eq!(report.problems.len(), 1);
    assert_eq!(report.not_yet_digested, [later]);
}

#[tokio::test]
async fn verify_finds_a_modified_digest() {
    let (t, _, digests) = three_period_trail(tempfile::tempdir().unwrap()).await;
    // rewrite the newest digest's body: drop the log file it lists (its signature stays)
    let got = t.audit.get(&digests[2]).await.unwrap();
    let mut doc: Value = serde_json::from_slice(&gunzip(&got.body).unwrap()).unwrap();
    doc["logFiles"] = Value::Array(vec![]);
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut enc, &serde_json::to_vec(&doc).unwrap()).unwrap();
    std::fs::write(t.audit.path_of(&digests[2]), enc.finish().unwrap()).unwrap();
    let report = verify(t.audit.as_ref(), &TrailConfig::default(), &t.key)
        .await
        .unwrap();
    let k = kinds(&report);
    assert!(
        k.contains(&(ProblemKind::DigestModified, digests[2].clone())),
        "{k:?}"
    );
    // and the log file only it listed is now unaccounted for
    assert!(
        k.iter()
            .any(|(kind, _)| *kind == ProblemKind::LogFileInserted)
            || !report.not_yet_digested.is_empty(),
        "{k:?}"
    );
}

#[tokio::test]
async fn verify_finds_a_deleted_digest() {
    let (t, _, digests) = three_period_trail(tempfile::tempdir().unwrap()).await;
    t.audit.delete(&digests[1]).await.unwrap();
    let report = verify(t.audit.as_ref(), &TrailConfig::default(), &t.key)
        .await
        .unwrap();
    let k = kinds(&report);
    assert!(
        k.contains(&(ProblemKind::DigestDeleted, digests[1].clone())),
        "{k:?}"
    );
    assert!(
        k.iter()
            .any(|(kind, _)| *kind == ProblemKind::LogFileInserted),
        "its log file is no longer covered: {k:?}"
    );
}

#[tokio::test]
async fn verify_finds_a_broken_chain() {
    // two trails made at the same times with the same key: same digest names, other contents
    let a_dir = tempfile::tempdir().unwrap();
    let key_path = a_dir.path().join("keys/audit-signing.key");
    let (a, _, digests) = three_period_trail(a_dir).await;
    let b_dir = tempfile::tempdir().unwrap();
    let (b, sink_b) = trail_with(b_dir, &key_path).await;
    let sink_b = Arc::new(sink_b);
    let store_b = AuditedStore::new(b.data.clone(), sink_b.clone(), "tarn-compaction")
        .with_clock(b.clock.clone());
    for i in 0..3 {
        b.clock.advance(Duration::minutes(1));
        store_b.delete(&format!("tables/other/{i}")).await.unwrap();
        sink_b.flush().await.unwrap();
    }
    // splice b's validly signed second digest into a's chain
    let theirs = b.audit.get(&digests[1]).await.unwrap();
    a.audit
        .put(&digests[1], theirs.body, theirs.info.metadata)
        .await
        .unwrap();
    let report = verify(a.audit.as_ref(), &TrailConfig::default(), &a.key)
        .await
        .unwrap();
    let k = kinds(&report);
    assert!(
        k.iter().any(|(kind, _)| *kind == ProblemKind::ChainBroken),
        "{k:?}"
    );
    assert!(!report.is_ok());
}

#[tokio::test]
async fn verify_refuses_another_key() {
    let (t, _, _) = three_period_trail(tempfile::tempdir().unwrap()).await;
    let other = tempfile::tempdir().unwrap();
    let other = SigningKey::open_or_create(other.path().join("k.key")).unwrap();
    let report = verify(
        t.audit.as_ref(),
        &TrailConfig::default(),
        &other.public_key(),
    )
    .await
    .unwrap();
    assert_eq!(
        report
            .problems
            .iter()
            .filter(|p| p.kind == ProblemKind::DigestModified)
            .count(),
        3
    );
}

#[tokio::test]
async fn a_reopened_sink_continues_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let kp = dir.path().join("keys/audit-signing.key");
    let (t, first) = trail_with(dir, &kp).await;
    let first = Arc::new(first);
    AuditedStore::new(t.data.clone(), first.clone(), "tarn-pipeline")
        .list("tables/")
        .await
        .unwrap();
    first.flush().await.unwrap();
    drop(first);
    for _ in 0..2 {
        t.clock.advance(Duration::minutes(1));
        let key = SigningKey::open_or_create(&kp).unwrap();
        let sink = Arc::new(
            LocalAuditSink::open_with_clock(
                t.audit.clone(),
                TrailConfig::default(),
                key,
                settings(),
                t.clock.clone(),
            )
            .await
            .unwrap(),
        );
        AuditedStore::new(t.data.clone(), sink.clone(), "tarn-pipeline")
            .list("tables/")
            .await
            .unwrap();
        sink.flush().await.unwrap();
    }
    let report = verify(t.audit.as_ref(), &TrailConfig::default(), &t.key)
        .await
        .unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!((report.digests, report.log_files_valid), (3, 3));
}

#[test]
fn the_signing_key_is_private_and_never_replaced() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = SigningKey::path_in(dir.path());
    let a = SigningKey::open_or_create(&path).unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let b = SigningKey::open_or_create(&path).unwrap();
    assert_eq!(a.public_key(), b.public_key());
    let public =
        tarn_core::audit::read_public_key(&SigningKey::public_path_in(dir.path())).unwrap();
    assert_eq!(public, a.public_key());
}

/// An audit store whose writes fail while `failing` is set.
#[derive(Debug)]
struct Flaky {
    inner: LocalObjectStore,
    failing: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl ObjectStore for Flaky {
    fn bucket(&self) -> &str {
        self.inner.bucket()
    }
    fn url(&self, key: &str) -> String {
        self.inner.url(key)
    }
    async fn put(&self, key: &str, body: Bytes, metadata: Metadata) -> tarn_core::Result<()> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(tarn_core::Error::Service("disk full".into()));
        }
        self.inner.put(key, body, metadata).await
    }
    async fn put_if_absent(
        &self,
        key: &str,
        body: Bytes,
        metadata: Metadata,
    ) -> tarn_core::Result<bool> {
        self.inner.put_if_absent(key, body, metadata).await
    }
    async fn get(&self, key: &str) -> tarn_core::Result<tarn_core::GetResult> {
        self.inner.get(key).await
    }
    async fn get_range(&self, key: &str, range: std::ops::Range<u64>) -> tarn_core::Result<Bytes> {
        self.inner.get_range(key, range).await
    }
    async fn head(&self, key: &str) -> tarn_core::Result<Option<tarn_core::ObjectInfo>> {
        self.inner.head(key).await
    }
    async fn list(&self, prefix: &str) -> tarn_core::Result<Vec<tarn_core::ObjectInfo>> {
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &str) -> tarn_core::Result<()> {
        self.inner.delete(key).await
    }
    async fn put_if_match(
        &self,
        key: &str,
        body: Bytes,
        metadata: Metadata,
        etag: &str,
    ) -> tarn_core::Result<bool> {
        self.inner.put_if_match(key, body, metadata, etag).await
    }
    async fn delete_if_match(&self, key: &str, etag: &str) -> tarn_core::Result<bool> {
        self.inner.delete_if_match(key, etag).await
    }
    async fn copy(&self, from: &str, to: &str) -> tarn_core::Result<()> {
        self.inner.copy(from, to).await
    }
}

#[tokio::test]
async fn records_a_failed_write_could_not_deliver_stay_buffered_and_are_retried() {
    let dir = tempfile::tempdir().unwrap();
    let audit = Arc::new(Flaky {
        inner: LocalObjectStore::open("tarn-audit", dir.path().join("audit")).unwrap(),
        failing: std::sync::atomic::AtomicBool::new(true),
    });
    let data = Arc::new(LocalObjectStore::open("tarn-lake", dir.path().join("lake")).unwrap());
    let key = SigningKey::open_or_create(dir.path().join("k.key")).unwrap();
    let public = key.public_key();
    let sink = Arc::new(
        LocalAuditSink::open(audit.clone(), TrailConfig::default(), key, settings())
            .await
            .unwrap(),
    );
    let store = AuditedStore::new(data, sink.clone(), "tarn-pipeline");
    store.head("tables/t/a").await.unwrap();
    store.head("tables/t/b").await.unwrap();
    let err = sink.flush().await.unwrap_err();
    assert!(err.to_string().contains("disk full"), "{err}");
    assert_eq!(sink.pending(), 2, "nothing is dropped");
    store.head("tables/t/c").await.unwrap();
    audit
        .failing
        .store(false, std::sync::atomic::Ordering::SeqCst);
    sink.flush().await.unwrap();
    assert_eq!(sink.pending(), 0);
    let got = read_trail(
        audit.as_ref(),
        &TrailConfig::default(),
        &TrailFilter::default(),
    )
    .await
    .unwrap();
    let keys: Vec<_> = got.iter().map(|r| r.key().unwrap().to_string()).collect();
    assert_eq!(keys, ["tables/t/a", "tables/t/b", "tables/t/c"]);
    let report = verify(audit.as_ref(), &TrailConfig::default(), &public)
        .await
        .unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
}

#[tokio::test]
async fn a_second_writer_with_its_own_trail_name_keeps_both_chains_sound() {
    // `tarn serve` and a one-shot `tarn compact` beside it: one audit store, two chains
    let dir = tempfile::tempdir().unwrap();
    let kp = dir.path().join("keys/audit-signing.key");
    let (t, serve) = trail_with(dir, &kp).await;
    let serve = Arc::new(serve);
    let cli_trail = TrailConfig {
        trail_name: "tarn-cli".into(),
        ..TrailConfig::default()
    };
    let serve_store = AuditedStore::new(t.data.clone(), serve.clone(), "tarn-pipeline")
        .with_clock(t.clock.clone());
    for i in 0..2 {
        t.clock.advance(Duration::minutes(1));
        serve_store.list("tables/").await.unwrap();
        serve.flush().await.unwrap();
        let key = SigningKey::open_or_create(&kp).unwrap();
        let cli = Arc::new(
            LocalAuditSink::open_with_clock(
                t.audit.clone(),
                cli_trail.clone(),
                key,
                settings(),
                t.clock.clone(),
            )
            .await
            .unwrap(),
        );
        AuditedStore::new(t.data.clone(), cli.clone(), "tarn-compaction")
            .with_clock(t.clock.clone())
            .delete(&format!("tables/t/{i}"))
            .await
            .unwrap();
        cli.flush().await.unwrap();
    }
    let report = verify(t.audit.as_ref(), &TrailConfig::default(), &t.key)
        .await
        .unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!((report.digests, report.log_files_valid), (4, 4));
}
