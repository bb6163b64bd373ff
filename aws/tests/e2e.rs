//! End to end on moto: the local ingress HTTP server configured with the AWS ports (S3, KMS, a
//! real Cognito pool's tokens) → the stage functions → Parquet in the lake bucket, partitions in
//! Glue, rows readable, and the document's status through the ingress.

mod common;

use aws_lambda_events::event::sqs::SqsEvent;
use common::*;
use serde_json::{Value, json};
use std::sync::Arc;
use tarn_aws::CognitoJwks;
use tarn_aws::lambda::Functions;
use tarn_aws::lambda::pipeline::handoff_key;
use tarn_catalog::{Catalog, load_schemas};
use tarn_core::{ObjectStore, SystemClock};
use tarn_ingress::{IngressState, JwksVerifier, VerifierConfig, router, table_map};

const T: &str = "AWSCognitoIdentityProviderService";

async fn token(url: &str) -> (String, String, String) {
    let p = json_call(
        url,
        &format!("{T}.CreateUserPool"),
        json!({"PoolName": "tarn"}),
    )
    .await;
    let pool = p["UserPool"]["Id"].as_str().unwrap().to_string();
    let c = json_call(
        url,
        &format!("{T}.CreateUserPoolClient"),
        json!({"UserPoolId": pool, "ClientName": "cli", "ExplicitAuthFlows": ["ALLOW_ADMIN_USER_PASSWORD_AUTH"]}),
    )
    .await;
    let client = c["UserPoolClient"]["ClientId"]
        .as_str()
        .unwrap()
        .to_string();
    json_call(url, &format!("{T}.AdminCreateUser"), json!({"UserPoolId": pool, "Username": "alice", "TemporaryPassword": "Temp-Passw0rd!", "MessageAction": "SUPPRESS"})).await;
    json_call(url, &format!("{T}.AdminSetUserPassword"), json!({"UserPoolId": pool, "Username": "alice", "Password": "Passw0rd-Strong!", "Permanent": true})).await;
    json_call(
        url,
        &format!("{T}.CreateGroup"),
        json!({"UserPoolId": pool, "GroupName": "tarn-writers"}),
    )
    .await;
    json_call(
        url,
        &format!("{T}.AdminAddUserToGroup"),
        json!({"UserPoolId": pool, "Username": "alice", "GroupName": "tarn-writers"}),
    )
    .await;
    let auth = json_call(
        url,
        &format!("{T}.AdminInitiateAuth"),
        json!({"UserPoolId": pool, "ClientId": client, "AuthFlow": "ADMIN_USER_PASSWORD_AUTH", "AuthParameters": {"USERNAME": "alice", "PASSWORD": "Passw0rd-Strong!"}}),
    )
    .await;
    (
        pool,
        client,
        auth["AuthenticationResult"]["IdToken"]
            .as_str()
            .unwrap()
            .to_string(),
    )
}

fn sqs(bucket: &str, keys: &[String]) -> SqsEvent {
    let records: Vec<Value> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let s3 = json!({"Records": [{
                "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": REGION, "eventTime": "2024-03-05T10:11:12.000Z",
                "eventName": "ObjectCreated:Put", "userIdentity": {"principalId": "x"}, "requestParameters": {"sourceIPAddress": "10.0.0.1"},
                "responseElements": {}, "s3": {"s3SchemaVersion": "1.0", "configurationId": "tarn", "bucket": {"name": bucket, "ownerIdentity": {"principalId": "x"}, "arn": format!("arn:aws:s3:::{bucket}")},
                "object": {"key": k.replace('=', "%3D"), "size": 1, "eTag": "e", "sequencer": "1"}}
            }]});
            json!({"messageId": format!("m{i}"), "receiptHandle": "r", "body": s3.to_string(), "attributes": {}, "messageAttributes": {}, "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q", "awsRegion": REGION})
        })
        .collect();
    serde_json::from_value(json!({"Records": records})).unwrap()
}

#[tokio::test]
async fn the_local_ingress_on_the_aws_backend_feeds_the_lambda_stages() {
    let m = moto().await;
    let p = platform(&m.url).await;
    let (pool, client, id_token) = token(&m.url).await;
    let verifier = Arc::new(JwksVerifier::new(
        VerifierConfig::new(
            format!("https://cognito-idp.{REGION}.amazonaws.com/{pool}"),
            [client],
        ),
        Arc::new(CognitoJwks::new(format!(
            "{}/{pool}/.well-known/jwks.json",
            m.url
        ))),
        Arc::new(SystemClock),
    ));
    let state = IngressState {
        tables: table_map(load_schemas(&p.config.schemas_dir).unwrap()),
        ingress: p.ports.ingress.clone(),
        lake: p.ports.lake.clone(),
        state: p.ports.state.clone(),
        kms: p.ports.kms.clone(),
        verifier,
        issuer: None,
        clock: Arc::new(SystemClock),
        notify: None,
        max_in_flight: 8,
        serve_unscanned: false,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router(state)).await.unwrap() });

    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{base}/table/events/object"))
        .header("Authorization", format!("Bearer {id_token}"))
        .header("Content-Type", "application/x-ndjson")
        .body("{\"user_id\":\"u1\",\"action\":\"login\",\"occurred_at\":\"2024-03-05T10:00:00Z\"}\n{\"user_id\":\"u2\",\"action\":\"purchase\",\"amount\":9.5,\"occurred_at\":\"2024-03-05T10:01:00Z\"}\n")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let id = body["data"]["id"].as_str().unwrap().to_string();
    let landed = p.ports.ingress.list("id=").await.unwrap();
    assert_eq!(landed.len(), 1, "durably landed in the ingress bucket");
    let raw = s3(&m.url)
        .head_object()
        .bucket("tarn-ingress")
        .key(&landed[0].key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        raw.server_side_encryption().map(|s| s.as_str()),
        Some("aws:kms")
    );
    assert_eq!(
        raw.metadata().unwrap().get("producer").map(String::as_str),
        Some("alice")
    );
    // a token the pool did not sign is refused
    let resp = http
        .post(format!("{base}/table/events/object"))
        .header("Authorization", "Bearer a.b.c")
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    // the functions, as S3 → SQS would trigger them
    let f = Functions::new(&p.ports).unwrap();
    let normalize = f.normalize();
    normalize.setup_catalog().await.unwrap();
    let pre = |stage: &str| {
        vec![format!(
            "{}{}",
            p.config.state_prefix,
            handoff_key(stage, &id)
        )]
    };
    assert!(
        f.stage("validate")
            .unwrap()
            .handle(sqs("tarn-ingress", &[landed[0].key.clone()]))
            .await
            .batch_item_failures
            .is_empty()
    );
    assert!(
        f.stage("strip")
            .unwrap()
            .handle(sqs("tarn-lake", &pre("strip")))
            .await
            .batch_item_failures
            .is_empty()
    );
    assert!(
        normalize
            .handle(sqs("tarn-lake", &pre("normalize")))
            .await
            .batch_item_failures
            .is_empty()
    );

    // the status through the ingress
    let st: Value = http
        .get(format!("{base}/table/events/object/{id}"))
        .header("Authorization", format!("Bearer {id_token}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(st["data"]["status"], "stored", "{st}");

    // Parquet in the lake bucket, read back with the parquet crate
    let parts = p
        .ports
        .catalog
        .get_partitions("tarn", "events")
        .await
        .unwrap();
    let dir = parts[0]
        .location
        .strip_prefix("s3://tarn-lake/")
        .unwrap()
        .to_string();
    let files = p.ports.lake.list(&dir).await.unwrap();
    assert_eq!(files.len(), 1);
    let body = p.ports.lake.get(&files[0].key).await.unwrap().body;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(body)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<_> = reader.map(|b| b.unwrap()).collect();
    let batch = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    assert_eq!(batch.num_rows(), 2);
    let text = |name: &str| -> Vec<String> {
        let col = arrow::compute::cast(
            batch.column_by_name(name).unwrap(),
            &arrow::datatypes::DataType::Utf8,
        )
        .unwrap();
        arrow::array::cast::AsArray::as_string::<i32>(&col)
            .iter()
            .map(|v| v.unwrap_or_default().to_string())
            .collect()
    };
    let mut users = text("user_id");
    users.sort();
    assert_eq!(users, ["u1", "u2"]);
    assert!(text("_producer").iter().all(|p| p == "alice"));
}
