//! Shared by the moto tests: the server (from `TARN_MOTO_URL`, or started with
//! `scripts/moto.sh start`), one test at a time against it (each resets moto first), clients with
//! static test credentials, and a platform config pointing at it.
#![allow(dead_code)]

mod events;
#[allow(unused_imports)]
pub use events::*;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::Credentials;
use std::path::PathBuf;
use std::sync::OnceLock;
use tarn_aws::{AwsConfig, AwsPorts, RawAwsConfig};

pub const REGION: &str = "us-east-1";

static URL: OnceLock<String> = OnceLock::new();
static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The repository (this module is shared by `aws/tests` and the root `tests/`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|d| d.join("scripts/moto.sh").exists())
        .expect("the repository root holds scripts/moto.sh")
        .to_path_buf()
}

/// The moto server's URL, starting it when `TARN_MOTO_URL` is not set.
pub fn moto_url() -> String {
    URL.get_or_init(|| {
        if let Ok(u) = std::env::var("TARN_MOTO_URL") {
            return u.trim_end_matches('/').to_string();
        }
        let out = std::process::Command::new("bash")
            .arg(repo_root().join("scripts/moto.sh"))
            .arg("start")
            .output()
            .expect("running scripts/moto.sh start");
        assert!(
            out.status.success(),
            "scripts/moto.sh start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .lines()
            .last()
            .unwrap()
            .to_string()
    })
    .clone()
}

/// Holds moto for one test: it is reset on entry.
pub struct Moto {
    pub url: String,
    _guard: tokio::sync::MutexGuard<'static, ()>,
}

pub async fn moto() -> Moto {
    let guard = LOCK.lock().await;
    let url = moto_url();
    reset(&url).await;
    Moto { url, _guard: guard }
}

/// Empties moto (a test holding [`Moto`] may start over).
pub async fn reset(url: &str) {
    let resp = reqwest::Client::new()
        .post(format!("{url}/moto-api/reset"))
        .send()
        .await
        .expect("moto reset");
    assert!(resp.status().is_success(), "moto reset: {}", resp.status());
}

pub fn sdk_config(url: &str) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(url)
        .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(
            Credentials::new("testing", "testing", None, None, "tarn-tests"),
        ))
        .build()
}

pub fn s3(url: &str) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk_config(url))
            .force_path_style(true)
            .build(),
    )
}

/// The KMS key an object is encrypted under, after checking it is SSE-KMS (`what` names the
/// object in the failure).
pub async fn sse_kms_key(url: &str, bucket: &str, key: &str, what: &str) -> String {
    let head = s3(url)
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.server_side_encryption().map(|s| s.as_str()),
        Some("aws:kms"),
        "{what} is SSE-KMS"
    );
    head.ssekms_key_id().unwrap_or_default().to_string()
}

pub async fn create_bucket(url: &str, name: &str) {
    s3(url)
        .create_bucket()
        .bucket(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create bucket {name}: {e:?}"));
}

pub async fn create_key(url: &str) -> String {
    let kms = aws_sdk_kms::Client::new(&sdk_config(url));
    kms.create_key()
        .send()
        .await
        .expect("create key")
        .key_metadata()
        .unwrap()
        .arn()
        .unwrap()
        .to_string()
}

/// A JSON-protocol call (Cognito and others without an SDK crate here).
pub async fn json_call(url: &str, target: &str, body: serde_json::Value) -> serde_json::Value {
    let service = if target.starts_with("AWSCognito") {
        "cognito-idp"
    } else {
        "unknown"
    };
    let resp = reqwest::Client::new()
        .post(format!("{url}/"))
        .header("X-Amz-Target", target)
        .header("Content-Type", "application/x-amz-json-1.1")
        .header(
            "Authorization",
            format!("AWS4-HMAC-SHA256 Credential=testing/20260101/{REGION}/{service}/aws4_request, SignedHeaders=host, Signature=0"),
        )
        .body(body.to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{target}: {e}"));
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert!(status.is_success(), "{target}: {status}: {text}");
    if text.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    }
}

/// A whole platform on moto: buckets, key, config and ports.
pub struct Platform {
    pub config: AwsConfig,
    pub ports: AwsPorts,
}

pub async fn platform(url: &str) -> Platform {
    platform_with(url, &[]).await
}

/// clamd's address for the scan tests: `TARN_CLAMD`, or `scripts/clamd.sh start`.
pub fn clamd_addr() -> String {
    static ADDR: OnceLock<String> = OnceLock::new();
    ADDR.get_or_init(|| {
        if let Ok(a) = std::env::var("TARN_CLAMD")
            && !a.is_empty()
        {
            return a;
        }
        let run = |args: &[&str]| {
            let out = std::process::Command::new("bash")
                .arg(repo_root().join("scripts/clamd.sh"))
                .args(args)
                .output()
                .expect("running scripts/clamd.sh");
            assert!(
                out.status.success(),
                "scripts/clamd.sh {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout)
                .unwrap()
                .trim()
                .lines()
                .last()
                .unwrap_or_default()
                .to_string()
        };
        run(&["start"]);
        run(&["addr", "tcp"])
    })
    .clone()
}

/// A platform with extra `TARN_AWS_*` settings.
pub async fn platform_with(url: &str, extra: &[(&str, &str)]) -> Platform {
    for b in [
        "tarn-ingress",
        "tarn-lake",
        "tarn-quarantine",
        "tarn-audit",
        "tarn-athena",
    ] {
        create_bucket(url, b).await;
    }
    let key = create_key(url).await;
    let env: std::collections::HashMap<String, String> = [
        ("TARN_AWS_REGION", REGION.to_string()),
        ("TARN_AWS_ENDPOINT_URL", url.to_string()),
        ("TARN_AWS_FORCE_PATH_STYLE", "true".into()),
        ("TARN_AWS_INGRESS_BUCKET", "tarn-ingress".into()),
        ("TARN_AWS_LAKE_BUCKET", "tarn-lake".into()),
        ("TARN_AWS_QUARANTINE_BUCKET", "tarn-quarantine".into()),
        ("TARN_AWS_AUDIT_BUCKET", "tarn-audit".into()),
        ("TARN_AWS_KMS_KEY_ID", key),
        ("TARN_AWS_GLUE_DATABASE", "tarn".into()),
        (
            "TARN_AWS_ATHENA_OUTPUT_LOCATION",
            "s3://tarn-athena/results/".into(),
        ),
        ("TARN_AWS_COGNITO_POOL_ID", "us-east-1_test".into()),
        ("TARN_AWS_COGNITO_CLIENT_IDS", "client".into()),
        (
            "TARN_AWS_SCHEMAS_DIR",
            repo_root().join("schemas").display().to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .chain(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    .collect();
    let config = RawAwsConfig::default()
        .merge_env(|k| env.get(k).cloned())
        .unwrap()
        .finish()
        .unwrap();
    let ports = AwsPorts::with_sdk_config(&config, sdk_config(url));
    Platform { config, ports }
}

/// The environment a Lambda binary needs to reach `platform` on moto.
pub fn lambda_env(p: &Platform) -> Vec<(String, String)> {
    let c = &p.config;
    let mut v = vec![
        ("TARN_AWS_REGION", c.region.clone()),
        ("TARN_AWS_ENDPOINT_URL", c.endpoint_url.clone().unwrap()),
        ("TARN_AWS_FORCE_PATH_STYLE", "true".into()),
        ("TARN_AWS_INGRESS_BUCKET", c.ingress_bucket.clone()),
        ("TARN_AWS_LAKE_BUCKET", c.lake_bucket.clone()),
        ("TARN_AWS_QUARANTINE_BUCKET", c.quarantine_bucket.clone()),
        ("TARN_AWS_AUDIT_BUCKET", c.audit_bucket.clone()),
        ("TARN_AWS_KMS_KEY_ID", c.kms_key_id.clone()),
        ("TARN_AWS_GLUE_DATABASE", c.glue_database.clone()),
        (
            "TARN_AWS_ATHENA_OUTPUT_LOCATION",
            c.athena_output_location.clone(),
        ),
        ("TARN_AWS_COGNITO_POOL_ID", c.cognito_pool_id.clone()),
        (
            "TARN_AWS_COGNITO_CLIENT_IDS",
            c.cognito_client_ids.join(","),
        ),
        ("TARN_AWS_SCHEMAS_DIR", c.schemas_dir.display().to_string()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", c.region.clone()),
    ];
    v.retain(|(k, _)| !k.is_empty());
    v.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

const T: &str = "AWSCognitoIdentityProviderService";

/// A Cognito user pool on moto, with one app client.
pub struct Pool {
    pub id: String,
    pub client_id: String,
}

/// A new pool with an app client allowed the admin password flow.
pub async fn pool(url: &str) -> Pool {
    let p = json_call(
        url,
        &format!("{T}.CreateUserPool"),
        serde_json::json!({"PoolName": "tarn"}),
    )
    .await;
    let id = p["UserPool"]["Id"].as_str().unwrap().to_string();
    let c = json_call(
        url,
        &format!("{T}.CreateUserPoolClient"),
        serde_json::json!({"UserPoolId": id, "ClientName": "tarn-cli", "ExplicitAuthFlows": ["ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]}),
    )
    .await;
    let client_id = c["UserPoolClient"]["ClientId"]
        .as_str()
        .unwrap()
        .to_string();
    Pool { id, client_id }
}

/// A user in `groups` (created when missing), and its (ID, access) tokens.
pub async fn user_token(url: &str, pool: &Pool, user: &str, groups: &[&str]) -> (String, String) {
    json_call(url, &format!("{T}.AdminCreateUser"), serde_json::json!({"UserPoolId": pool.id, "Username": user, "TemporaryPassword": "Temp-Passw0rd!", "MessageAction": "SUPPRESS"})).await;
    json_call(url, &format!("{T}.AdminSetUserPassword"), serde_json::json!({"UserPoolId": pool.id, "Username": user, "Password": "Passw0rd-Strong!", "Permanent": true})).await;
    for g in groups {
        json_call_ok(
            url,
            &format!("{T}.CreateGroup"),
            serde_json::json!({"UserPoolId": pool.id, "GroupName": g}),
        )
        .await;
        json_call(
            url,
            &format!("{T}.AdminAddUserToGroup"),
            serde_json::json!({"UserPoolId": pool.id, "Username": user, "GroupName": g}),
        )
        .await;
    }
    let auth = json_call(
        url,
        &format!("{T}.AdminInitiateAuth"),
        serde_json::json!({"UserPoolId": pool.id, "ClientId": pool.client_id, "AuthFlow": "ADMIN_USER_PASSWORD_AUTH", "AuthParameters": {"USERNAME": user, "PASSWORD": "Passw0rd-Strong!"}}),
    )
    .await;
    let r = &auth["AuthenticationResult"];
    (
        r["IdToken"].as_str().unwrap().to_string(),
        r["AccessToken"].as_str().unwrap().to_string(),
    )
}

/// Like `json_call`, but an error answer (a group that exists) is fine.
async fn json_call_ok(url: &str, target: &str, body: serde_json::Value) {
    let _ = reqwest::Client::new()
        .post(format!("{url}/"))
        .header("X-Amz-Target", target)
        .header("Content-Type", "application/x-amz-json-1.1")
        .header("Authorization", format!("AWS4-HMAC-SHA256 Credential=testing/20260101/{REGION}/cognito-idp/aws4_request, SignedHeaders=host, Signature=0"))
        .body(body.to_string())
        .send()
        .await;
}

/// The metadata API Gateway's S3 proxy writes on an `events` JSON document landed by
/// `producer`, received 2024-03-05.
pub fn events_landed_metadata(producer: &str) -> tarn_core::Metadata {
    [
        ("table", "events"),
        ("content-type", "application/json"),
        ("producer", producer),
        ("request-time", "05/Mar/2024:10:11:12 +0000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Lands `body` (an `events` document by `producer`, received 2024-03-05) as the ingress does
/// and runs it through the validate, strip and normalize functions; returns its id.
pub async fn land_and_commit_events(
    p: &Platform,
    f: &tarn_aws::lambda::Functions,
    producer: &str,
    body: &str,
) -> String {
    use base64::Engine;
    use tarn_core::ObjectStore;
    let id = uuid::Uuid::new_v4().to_string();
    let m = events_landed_metadata(producer);
    p.ports
        .ingress
        .put(
            &tarn_core::document::ingress_key(&id),
            bytes::Bytes::from(base64::engine::general_purpose::STANDARD.encode(body)),
            m,
        )
        .await
        .unwrap();
    f.stage("validate").unwrap().process(&id).await.unwrap();
    f.stage("strip").unwrap().process(&id).await.unwrap();
    let failed = f.normalize().commit(std::slice::from_ref(&id)).await;
    assert!(failed.is_empty(), "{failed:?}");
    id
}
