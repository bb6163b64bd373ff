//! The Cognito key source and the authorizer with real tokens from moto's Cognito (RS256, JWKS at
//! `/<pool id>/.well-known/jwks.json`, `iss` the real AWS URL), and the key source's caching and
//! refresh rate limit against a local JWKS server.

mod common;

use axum::Router;
use axum::routing::get;
use common::*;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tarn_aws::CognitoJwks;
use tarn_aws::lambda::authorizer::{Authorizer, AuthorizerError};
use tarn_core::SystemClock;
use tarn_ingress::{AuthError, JwksSource, JwksVerifier, TokenVerifier, VerifierConfig};

fn verifier(url: &str, pool: &Pool) -> Arc<JwksVerifier> {
    let issuer = format!("https://cognito-idp.{REGION}.amazonaws.com/{}", pool.id);
    let jwks = format!("{url}/{}/.well-known/jwks.json", pool.id);
    Arc::new(JwksVerifier::new(
        VerifierConfig::new(issuer, [pool.client_id.clone()]),
        Arc::new(CognitoJwks::new(jwks)),
        Arc::new(SystemClock),
    ))
}

#[tokio::test]
async fn real_pool_tokens_verify_through_the_fetched_jwks() {
    let m = moto().await;
    let pool = pool(&m.url).await;
    let (id_token, access_token) =
        user_token(&m.url, &pool, "alice", &["tarn-writers-events"]).await;
    let v = verifier(&m.url, &pool);

    let claims = v.verify(&id_token).await.expect("the ID token verifies");
    assert_eq!(claims.username, "alice");
    assert_eq!(claims.token_use, "id");
    assert_eq!(claims.client_id, pool.client_id);
    assert!(
        claims.groups.contains(&"tarn-writers-events".to_string()),
        "{:?}",
        claims.groups
    );
    assert!(claims.can_write("events") && !claims.can_write("photos"));
    let access = v
        .verify(&access_token)
        .await
        .expect("the access token verifies");
    assert_eq!(access.token_use, "access");

    // another client id, another issuer: refused
    let issuer = format!("https://cognito-idp.{REGION}.amazonaws.com/{}", pool.id);
    let jwks = format!("{}/{}/.well-known/jwks.json", m.url, pool.id);
    let wrong_client = JwksVerifier::new(
        VerifierConfig::new(issuer, ["other"]),
        Arc::new(CognitoJwks::new(&jwks)),
        Arc::new(SystemClock),
    );
    assert_eq!(
        wrong_client.verify(&id_token).await.unwrap_err(),
        AuthError::WrongAudience
    );
    let wrong_iss = JwksVerifier::new(
        VerifierConfig::new("https://example.com/x", [pool.client_id.clone()]),
        Arc::new(CognitoJwks::new(&jwks)),
        Arc::new(SystemClock),
    );
    assert_eq!(
        wrong_iss.verify(&id_token).await.unwrap_err(),
        AuthError::WrongIssuer
    );
    // a tampered token
    let mut parts: Vec<String> = id_token.split('.').map(String::from).collect();
    parts[2] = format!("{}AA", &parts[2][..parts[2].len() - 2]);
    assert!(v.verify(&parts.join(".")).await.is_err());

    // keys unavailable (nothing listening): 503-class, not 401
    let down = JwksVerifier::new(
        VerifierConfig::new(
            format!("https://cognito-idp.{REGION}.amazonaws.com/{}", pool.id),
            [pool.client_id.clone()],
        ),
        Arc::new(CognitoJwks::new("http://127.0.0.1:9/jwks.json")),
        Arc::new(SystemClock),
    );
    assert!(matches!(
        down.verify(&id_token).await.unwrap_err(),
        AuthError::KeysUnavailable(_)
    ));
}

/// The repository's tables (`schemas/`), as the authorizer's layer holds them.
fn tables() -> std::collections::BTreeMap<String, tarn_catalog::TableSpec> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
    tarn_ingress::table_map(tarn_catalog::load_schemas(&dir).unwrap())
}

fn request_event(method: &str, path: &str, token: Option<&str>) -> Value {
    let mut headers = json!({"Host": "api.example.com", "Content-Type": "application/json"});
    if let Some(t) = token {
        headers["Authorization"] = json!(format!("Bearer {t}"));
    }
    // the API's resource and its path parameters, as API Gateway names them
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (resource, params) = match segs.as_slice() {
        ["table", name, "object"] => ("/table/{name}/object".to_string(), json!({"name": name})),
        ["table", name, "object", id] => (
            "/table/{name}/object/{id}".to_string(),
            json!({"name": name, "id": id}),
        ),
        ["table", name, "object", id, "content"] => (
            "/table/{name}/object/{id}/content".to_string(),
            json!({"name": name, "id": id}),
        ),
        _ => (path.to_string(), json!({})),
    };
    json!({
        "type": "REQUEST",
        "methodArn": format!("arn:aws:execute-api:{REGION}:123456789012:abc123/prod/{method}{path}"),
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {},
        "queryStringParameters": {},
        "multiValueQueryStringParameters": {},
        "pathParameters": params,
        "stageVariables": {},
        "requestContext": {"accountId": "123456789012", "apiId": "abc123", "httpMethod": method, "path": format!("/prod{path}"), "stage": "prod", "requestId": "r1", "resourcePath": resource}
    })
}

fn effect(resp: &aws_lambda_events::event::apigw::ApiGatewayCustomAuthorizerResponse) -> String {
    let v = serde_json::to_value(resp).unwrap();
    v["policyDocument"]["Statement"][0]["Effect"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn the_authorizer_applies_the_table_and_group_rules_to_real_tokens() {
    let m = moto().await;
    let pool = pool(&m.url).await;
    let (writer, _) = user_token(&m.url, &pool, "alice", &["tarn-writers-events"]).await;
    let (reader, _) = user_token(&m.url, &pool, "bob", &["tarn-readers"]).await;
    let a = Authorizer::new(verifier(&m.url, &pool), tables());
    let id = "0b7c4b0e-2f3b-4a4c-9a57-5b1e0f6d2c11";

    let r = a
        .handle(request_event("POST", "/table/events/object", Some(&writer)))
        .await
        .unwrap();
    assert_eq!(effect(&r), "Allow");
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["context"]["producer"], "alice");
    // admitted: no refusal, and the put goes to the API's own account's bucket
    assert_eq!(v["context"]["refusal_status"], "");
    assert_eq!(v["context"]["bucket_owner"], "123456789012");
    assert_eq!(v["context"]["content_type"], "application/json");
    assert_eq!(v["context"]["groups"], r#"["tarn-writers-events"]"#);
    assert_eq!(
        v["policyDocument"]["Statement"][0]["Resource"][0],
        format!("arn:aws:execute-api:{REGION}:123456789012:abc123/prod/POST/table/events/object")
    );
    assert_eq!(
        effect(
            &a.handle(request_event("POST", "/table/photos/object", Some(&writer)))
                .await
                .unwrap()
        ),
        "Deny"
    );
    assert_eq!(
        effect(
            &a.handle(request_event(
                "GET",
                &format!("/table/events/object/{id}/content"),
                Some(&writer)
            ))
            .await
            .unwrap()
        ),
        "Deny"
    );
    assert_eq!(
        effect(
            &a.handle(request_event(
                "GET",
                &format!("/table/events/object/{id}"),
                Some(&writer)
            ))
            .await
            .unwrap()
        ),
        "Allow"
    );
    assert_eq!(
        effect(
            &a.handle(request_event(
                "GET",
                &format!("/table/photos/object/{id}/content"),
                Some(&reader)
            ))
            .await
            .unwrap()
        ),
        "Allow"
    );
    assert_eq!(
        effect(
            &a.handle(request_event("POST", "/table/photos/object", Some(&reader)))
                .await
                .unwrap()
        ),
        "Deny"
    );

    // TOKEN authorizers: the route from the method ARN
    let token_event = json!({"type": "TOKEN", "authorizationToken": writer, "methodArn": format!("arn:aws:execute-api:{REGION}:123456789012:abc123/prod/POST/table/events/object")});
    assert_eq!(effect(&a.handle(token_event).await.unwrap()), "Allow");

    // no token, a bad token: "Unauthorized" (API Gateway's 401)
    let e = a
        .handle(request_event("POST", "/table/events/object", None))
        .await
        .unwrap_err();
    assert!(matches!(e, AuthorizerError::Unauthorized));
    assert_eq!(e.to_string(), "Unauthorized");
    assert!(matches!(
        a.handle(request_event(
            "POST",
            "/table/events/object",
            Some("not.a.jwt")
        ))
        .await
        .unwrap_err(),
        AuthorizerError::Unauthorized
    ));
}

#[tokio::test]
async fn the_key_set_is_cached_and_refreshes_are_rate_limited() {
    let m = moto().await;
    let pool = pool(&m.url).await;
    let doc: Value = reqwest::get(format!("{}/{}/.well-known/jwks.json", m.url, pool.id))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    drop(m);
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = Router::new().route(
        "/jwks.json",
        get(move || {
            let h = h.clone();
            let doc = doc.clone();
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                axum::Json(doc)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let src = CognitoJwks::new(&url).with_min_refresh(Duration::from_millis(300));
    let k1 = src.keys().await.unwrap();
    assert!(!k1.is_empty());
    src.keys().await.unwrap();
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "keys() is served from the cache"
    );
    src.refresh().await.unwrap();
    src.refresh().await.unwrap();
    src.refresh().await.unwrap();
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "refreshes within min_refresh of the last fetch use the cache"
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    src.refresh().await.unwrap();
    assert_eq!(
        hits.load(Ordering::SeqCst),
        2,
        "a refresh after min_refresh fetches again"
    );
}

/// The proxy event API Gateway sends the documents function for a request the authorizer
/// allowed: the authorizer's context (and principal) under `requestContext.authorizer`.
fn proxy_event(
    resource_suffix: &str,
    table: &str,
    id: &str,
    auth: &aws_lambda_events::event::apigw::ApiGatewayCustomAuthorizerResponse,
) -> Value {
    let auth = serde_json::to_value(auth).unwrap();
    let mut ctx = auth["context"].clone();
    ctx["principalId"] = auth["principalId"].clone();
    ctx["integrationLatency"] = json!(31);
    json!({
        "resource": format!("/table/{{name}}/object/{{id}}{resource_suffix}"),
        "path": format!("/table/{table}/object/{id}{resource_suffix}"),
        "httpMethod": "GET",
        "pathParameters": {"name": table, "id": id},
        "requestContext": {"requestId": "r2", "stage": "prod", "authorizer": ctx},
    })
}

fn body(answer: &Value) -> Value {
    serde_json::from_str(answer["body"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn the_documents_function_serves_whom_the_authorizer_lets_through() {
    use bytes::Bytes;
    use tarn_core::ObjectStore;
    let m = moto().await;
    let pool = pool(&m.url).await;
    let p = platform(&m.url).await;
    let docs = tarn_aws::lambda::Functions::new(&p.ports)
        .unwrap()
        .documents();
    let (alice, _) = user_token(&m.url, &pool, "alice", &["tarn-writers-events"]).await;
    let (bob, _) = user_token(&m.url, &pool, "bob", &["tarn-readers"]).await;
    let (carol, _) = user_token(&m.url, &pool, "carol", &[]).await;
    let a = Authorizer::new(verifier(&m.url, &pool), tables());

    // alice's document, landed by the gateway (its producer is the authorizer's `producer`)
    let post = a
        .handle(request_event("POST", "/table/events/object", Some(&alice)))
        .await
        .unwrap();
    let producer = serde_json::to_value(&post).unwrap()["context"]["producer"]
        .as_str()
        .unwrap()
        .to_string();
    let id = uuid::Uuid::new_v4().to_string();
    let meta = events_landed_metadata(&producer);
    p.ports
        .ingress
        .put(&format!("id={id}"), Bytes::from_static(b"e30="), meta)
        .await
        .unwrap();
    let status_path = format!("/table/events/object/{id}");

    // the producer sees it received
    let auth = a
        .handle(request_event("GET", &status_path, Some(&alice)))
        .await
        .unwrap();
    assert_eq!(effect(&auth), "Allow");
    let r = docs.handle(proxy_event("", "events", &id, &auth)).await;
    assert_eq!(r["statusCode"], 200, "{r}");
    assert_eq!(body(&r)["data"]["status"], "received");
    assert_eq!(
        body(&r)["data"]["received_at"],
        "05/Mar/2024:10:11:12 +0000"
    );
    // a reader too; anyone else with a valid token gets past the authorizer, not the function
    let auth = a
        .handle(request_event("GET", &status_path, Some(&bob)))
        .await
        .unwrap();
    assert_eq!(
        docs.handle(proxy_event("", "events", &id, &auth)).await["statusCode"],
        200
    );
    let auth = a
        .handle(request_event("GET", &status_path, Some(&carol)))
        .await
        .unwrap();
    assert_eq!(effect(&auth), "Allow");
    let r = docs.handle(proxy_event("", "events", &id, &auth)).await;
    assert_eq!(r["statusCode"], 403, "{r}");
    assert_eq!(body(&r)["error"]["code"], "forbidden");
    // contents: the authorizer stops the producer; the reader's request finds nothing stored yet
    let content_path = format!("{status_path}/content");
    let auth = a
        .handle(request_event("GET", &content_path, Some(&alice)))
        .await
        .unwrap();
    assert_eq!(effect(&auth), "Deny");
    let auth = a
        .handle(request_event("GET", &content_path, Some(&bob)))
        .await
        .unwrap();
    assert_eq!(effect(&auth), "Allow");
    let r = docs
        .handle(proxy_event("/content", "events", &id, &auth))
        .await;
    assert_eq!(r["statusCode"], 409, "{r}");
    assert_eq!(body(&r)["error"]["code"], "not_stored");
}
