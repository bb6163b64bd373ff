//! The batch commit through the Lambda functions on moto, driven by real S3-notification SQS
//! events: the same crash sweep the local runner passes (stores dying at every call, the S3
//! lease lock and claims included, then a redelivery), two normalize invocations at once, a batch
//! that mixes hostile documents with good ones, and a redelivery after the landed object is gone.

mod common;

use common::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tarn_aws::S3LakeLock;
use tarn_aws::lambda::Functions;
use tarn_aws::lambda::pipeline::{FunctionConfig, NormalizeFunction, StageFunction, handoff_key};
use tarn_core::document::{ingress_key, status_key};
use tarn_core::{DocumentRow, Metadata, Status};
use tarn_lake::commit::testsuite::{CrashDriver, assert_exactly_once, crash_sweep, write_schemas};
use tarn_lake::registry::build_stage;
use tarn_lake::{Lake, RetryPolicy};

fn config() -> FunctionConfig {
    FunctionConfig {
        retry: RetryPolicy {
            max_attempts: 2,
            base: Duration::from_millis(1),
        },
        lease: Duration::from_secs(600),
    }
}

/// The Lambda functions over `lake`, its lock a short lease in `lake`'s own state store (so a
/// store that dies while the lease is held leaves it behind, as a killed function does).
struct Lambdas {
    lake: Lake,
    stages: Vec<String>,
    state_prefix: String,
}

impl Lambdas {
    fn new(lake: &Lake, p: &tarn_aws::AwsConfig) -> Self {
        let lock = S3LakeLock::new(lake.state.clone()).with_timing(
            Duration::from_secs(2),
            Duration::from_millis(50),
            Duration::from_secs(60),
        );
        Self {
            lake: Lake {
                lock: Arc::new(lock),
                ..lake.clone()
            },
            stages: p.stages.clone(),
            state_prefix: p.state_prefix.clone(),
        }
    }

    fn stage(&self, i: usize) -> StageFunction {
        let name = &self.stages[i];
        let next = self.stages.get(i + 1).map_or("normalize", String::as_str);
        let stage = build_stage(name, &self.lake.tables(), None).unwrap();
        StageFunction::new(self.lake.clone(), stage, i == 0, next, config())
    }

    fn normalize(&self) -> NormalizeFunction {
        NormalizeFunction::new(self.lake.clone(), config())
    }

    fn handoffs(&self, stage: &str, ids: &[String]) -> Vec<String> {
        ids.iter()
            .map(|id| format!("{}{}", self.state_prefix, handoff_key(stage, id)))
            .collect()
    }

    /// Every stage, then normalize, each over one SQS batch naming all `ids`.
    async fn run(&self, ids: &[String]) -> Result<(), String> {
        let mut failed = Vec::new();
        for i in 0..self.stages.len() {
            let keys: Vec<String> = if i == 0 {
                ids.iter().map(|id| ingress_key(id)).collect()
            } else {
                self.handoffs(&self.stages[i], ids)
            };
            let bucket = if i == 0 { "tarn-ingress" } else { "tarn-lake" };
            failed.extend(failures(
                &self.stage(i).handle(event(bucket, &keys, vec![])).await,
            ));
        }
        let keys = self.handoffs("normalize", ids);
        failed.extend(failures(
            &self
                .normalize()
                .handle(event("tarn-lake", &keys, vec![]))
                .await,
        ));
        match failed.is_empty() {
            true => Ok(()),
            false => Err(format!("messages failed: {failed:?}")),
        }
    }
}

struct AwsDriver {
    url: String,
    config: Mutex<Option<tarn_aws::AwsConfig>>,
    /// the sweep's table files
    schemas: tempfile::TempDir,
}

fn driver(url: &str) -> AwsDriver {
    let schemas = tempfile::tempdir().unwrap();
    write_schemas(schemas.path());
    AwsDriver {
        url: url.to_string(),
        config: Mutex::new(None),
        schemas,
    }
}

impl AwsDriver {
    fn config(&self) -> tarn_aws::AwsConfig {
        self.config.lock().unwrap().clone().expect("fresh() ran")
    }
}

#[async_trait::async_trait]
impl CrashDriver for AwsDriver {
    async fn fresh(&self) -> Lake {
        reset(&self.url).await;
        let dir = self.schemas.path().display().to_string();
        let p = platform_with(&self.url, &[("TARN_AWS_SCHEMAS_DIR", &dir)]).await;
        let f = Functions::new(&p.ports).unwrap();
        f.lake.setup_catalog().await.unwrap();
        *self.config.lock().unwrap() = Some(p.config.clone());
        f.lake
    }
    async fn land(&self, lake: &Lake, table: &str, content_type: &str, body: &[u8]) -> String {
        land_as_apigw(lake.ingress.as_ref(), table, content_type, body).await
    }
    async fn run(&self, lake: &Lake, ids: &[String]) -> Result<(), String> {
        Lambdas::new(lake, &self.config()).run(ids).await
    }
}

#[tokio::test]
async fn a_crash_at_any_storage_call_of_the_lambdas_loses_and_duplicates_nothing() {
    let m = moto().await;
    let d = driver(&m.url);
    let points = crash_sweep(&d).await;
    assert!(points > 20, "{points}");
}

async fn status(lake: &Lake, id: &str) -> DocumentRow {
    serde_json::from_slice(&lake.state.get(&status_key(id)).await.unwrap().body).unwrap()
}

impl tarn_lake::erase::testsuite::EraseDriver for AwsDriver {}

/// The erasure's crash sweep (`tarn_lake::erase::testsuite`) on S3 and Glue.
#[tokio::test]
async fn a_crash_at_any_storage_call_of_an_erasure_on_s3_ends_in_the_same_state() {
    let m = moto().await;
    let d = driver(&m.url);
    let points = tarn_lake::erase::testsuite::erase_crash_sweep(&d).await;
    assert!(points > 20, "{points}");
}

#[tokio::test]
async fn two_normalize_invocations_at_once_commit_each_document_once() {
    let m = moto().await;
    let d = driver(&m.url);
    let lake = d.fresh().await;
    let mut ids = Vec::new();
    for i in 0..6 {
        let body = format!(r#"[{{"user":"u{i}"}},{{"user":"v{i}"}}]"#);
        ids.push(
            d.land(&lake, "events", "application/json", body.as_bytes())
                .await,
        );
    }
    let l = Lambdas::new(&lake, &d.config());
    for i in 0..l.stages.len() {
        let keys: Vec<String> = if i == 0 {
            ids.iter().map(|id| ingress_key(id)).collect()
        } else {
            l.handoffs(&l.stages[i], &ids)
        };
        let bucket = if i == 0 { "tarn-ingress" } else { "tarn-lake" };
        assert!(failures(&l.stage(i).handle(event(bucket, &keys, vec![])).await).is_empty());
    }
    // the same batch delivered twice at once, and an overlapping batch at the same time
    let all = l.handoffs("normalize", &ids);
    let overlap = l.handoffs("normalize", &ids[3..]);
    let (n1, n2, n3) = (l.normalize(), l.normalize(), l.normalize());
    let (a, b, c) = tokio::join!(
        n1.handle(event("tarn-lake", &all, vec![])),
        n2.handle(event("tarn-lake", &all, vec![])),
        n3.handle(event("tarn-lake", &overlap, vec![])),
    );
    // whatever was refused for a live claim is redelivered
    if !(failures(&a).is_empty() && failures(&b).is_empty() && failures(&c).is_empty()) {
        assert!(failures(&l.normalize().handle(event("tarn-lake", &all, vec![])).await).is_empty());
    }
    let events: Vec<String> = ids.iter().flat_map(|i| [i.clone(), i.clone()]).collect();
    assert_exactly_once(&lake, &ids, &events, "after concurrent invocations").await;
}

#[tokio::test]
async fn hostile_documents_fail_alone_and_the_rest_of_their_batch_commits() {
    let m = moto().await;
    let d = driver(&m.url);
    let lake = d.fresh().await;
    let good = d
        .land(&lake, "events", "application/json", br#"{"user":"a"}"#)
        .await;
    let png = d
        .land(
            &lake,
            "photos",
            "image/png",
            tarn_lake::commit::testsuite::PNG,
        )
        .await;
    let undeclared = d.land(&lake, "nosuch", "application/json", b"{}").await;
    let dotted = d.land(&lake, ".tarnx", "application/json", b"{}").await;
    let climbing = d.land(&lake, "..", "application/json", b"{}").await;
    // nested deeper than JSON parsers (and hand-offs) go
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    let nested = d
        .land(&lake, "events", "application/json", deep.as_bytes())
        .await;
    // a body that is not base64
    let garbled = uuid::Uuid::new_v4().to_string();
    let m: Metadata = [
        ("table", "events"),
        ("content-type", "application/json"),
        ("producer", "mallory"),
        ("request-time", "05/Mar/2024:10:11:12 +0000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    lake.ingress
        .put(
            &ingress_key(&garbled),
            bytes::Bytes::from_static(b"%%% not base64"),
            m,
        )
        .await
        .unwrap();
    let ids = vec![
        good.clone(),
        png.clone(),
        undeclared.clone(),
        dotted.clone(),
        climbing.clone(),
        nested.clone(),
        garbled.clone(),
    ];
    Lambdas::new(&lake, &d.config()).run(&ids).await.unwrap();
    assert_exactly_once(
        &lake,
        &ids,
        std::slice::from_ref(&good),
        "after a hostile batch",
    )
    .await;
    assert_eq!(status(&lake, &good).await.status, Status::Stored);
    assert_eq!(status(&lake, &png).await.status, Status::Stored);
    let s = status(&lake, &undeclared).await;
    assert_eq!(
        (s.status, s.table_name.as_str()),
        (Status::Rejected, "nosuch")
    );
    assert!(s.reason.unwrap().contains("not declared"));
    for id in [&dotted, &climbing, &garbled] {
        let s = status(&lake, id).await;
        assert_eq!(s.status, Status::Quarantined, "{id}");
        if id != &garbled {
            assert_eq!(s.table_name, tarn_lake::item::UNKNOWN_TABLE);
            assert!(s.reason.unwrap().contains("not a valid table name"));
        }
    }
    let s = status(&lake, &nested).await;
    assert_eq!(s.status, Status::Rejected);
    let reason = s.reason.unwrap_or_default();
    assert!(reason.contains("recursion limit"), "{reason}");
    // every refused document is kept in quarantine, none under a hostile key
    let copies: Vec<String> = lake
        .quarantine
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(copies.len(), 5, "{copies:?}");
    assert!(
        copies
            .iter()
            .all(|k| !k.contains("..") && !k.starts_with('.')),
        "{copies:?}"
    );
}

#[tokio::test]
async fn a_redelivery_after_the_landed_object_is_gone_says_lost() {
    let m = moto().await;
    let d = driver(&m.url);
    let lake = d.fresh().await;
    let kept = d
        .land(&lake, "events", "application/json", br#"{"user":"a"}"#)
        .await;
    let expired = d
        .land(&lake, "events", "application/json", br#"{"user":"b"}"#)
        .await;
    // the landing store's lifecycle removed it before the (late) delivery
    lake.ingress.delete(&ingress_key(&expired)).await.unwrap();
    let ids = vec![kept.clone(), expired.clone()];
    Lambdas::new(&lake, &d.config()).run(&ids).await.unwrap();
    assert_exactly_once(
        &lake,
        &ids,
        std::slice::from_ref(&kept),
        "after a late delivery",
    )
    .await;
    let s = status(&lake, &expired).await;
    assert_eq!(s.status, Status::Lost);
    assert!(s.reason.unwrap().contains("gone"));
    assert_eq!(status(&lake, &kept).await.status, Status::Stored);
}
