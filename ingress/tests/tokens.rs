//! Every kind of bad token over real HTTP, and the JWKS endpoint.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::sync::Arc;
use tarn_core::Clock;
use tarn_ingress::{DevIssuer, Jwks, JwksVerifier, StaticJwks, TokenVerifier, VerifierConfig};

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

fn set(mut v: Value, key: &str, val: Value) -> Value {
    v[key] = val;
    v
}

fn unset(mut v: Value, key: &str) -> Value {
    v.as_object_mut().unwrap().remove(key);
    v
}

#[tokio::test]
async fn every_bad_token_is_401() {
    let h = Harness::start().await;
    let now = h.clock.now().timestamp();
    let good = h.claims("mallory", &["tarn-writers", "tarn-readers"]);
    let sign = |claims: &Value| h.issuer.sign(&h.issuer.header(), claims).unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    let other = DevIssuer::open_or_create(other_dir.path()).unwrap();

    let mut hs256 = Header::new(Algorithm::HS256);
    hs256.kid = Some(h.issuer.kid().to_string());
    let hs_der = jsonwebtoken::encode(
        &hs256,
        &good,
        &EncodingKey::from_secret(&h.issuer.public_key_der()),
    )
    .unwrap();
    let jwks_text = serde_json::to_vec(&h.issuer.jwks()).unwrap();
    let hs_jwks =
        jsonwebtoken::encode(&hs256, &good, &EncodingKey::from_secret(&jwks_text)).unwrap();
    // the classic confusion: the public key's PEM text as the HMAC secret
    let pem_body = base64::engine::general_purpose::STANDARD.encode(h.issuer.public_key_der());
    let pem_lines: Vec<&str> = pem_body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let pem = format!(
        "-----BEGIN RSA PUBLIC KEY-----\n{}\n-----END RSA PUBLIC KEY-----\n",
        pem_lines.join("\n")
    );
    let hs_pem =
        jsonwebtoken::encode(&hs256, &good, &EncodingKey::from_secret(pem.as_bytes())).unwrap();
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT", "kid": h.issuer.kid()})),
        b64(&good)
    );
    let mut unknown_kid = h.issuer.header();
    unknown_kid.kid = Some("no-such-key".into());
    let access_wrong_client = set(
        set(unset(good.clone(), "aud"), "client_id", json!("other-app")),
        "token_use",
        json!("access"),
    );

    let cases: Vec<(&str, String, &str)> = vec![
        ("garbage", "garbage".into(), "invalid_token"),
        ("three junk parts", "aaa.bbb.ccc".into(), "invalid_token"),
        ("alg none", alg_none, "invalid_token"),
        (
            "hs256 keyed with the public key der",
            hs_der,
            "invalid_token",
        ),
        ("hs256 keyed with the jwks", hs_jwks, "invalid_token"),
        (
            "hs256 keyed with the public key pem",
            hs_pem,
            "invalid_token",
        ),
        (
            "unknown kid",
            h.issuer.sign(&unknown_kid, &good).unwrap(),
            "invalid_token",
        ),
        (
            "another key under our kid",
            other.sign(&h.issuer.header(), &good).unwrap(),
            "invalid_token",
        ),
        (
            "another issuer's key and kid",
            other
                .mint(
                    "mallory",
                    &["tarn-writers".into()],
                    std::time::Duration::from_secs(60),
                )
                .unwrap(),
            "invalid_token",
        ),
        (
            "wrong iss",
            sign(&set(
                good.clone(),
                "iss",
                json!("https://evil.example/pool"),
            )),
            "invalid_token",
        ),
        (
            "wrong aud",
            sign(&set(good.clone(), "aud", json!("other-app"))),
            "invalid_token",
        ),
        (
            "wrong client_id",
            sign(&access_wrong_client),
            "invalid_token",
        ),
        (
            "no aud nor client_id",
            sign(&unset(good.clone(), "aud")),
            "invalid_token",
        ),
        (
            "wrong token_use",
            sign(&set(good.clone(), "token_use", json!("refresh"))),
            "invalid_token",
        ),
        (
            "expired",
            sign(&set(good.clone(), "exp", json!(now - 60))),
            "token_expired",
        ),
        (
            "nbf in the future",
            sign(&set(good.clone(), "nbf", json!(now + 600))),
            "invalid_token",
        ),
        ("no exp", sign(&unset(good.clone(), "exp")), "invalid_token"),
    ];
    for (what, token, code) in &cases {
        let r = h
            .post(JSON_TABLE, Some(token), Some("application/json"), "{}")
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (401, *code),
            "{what}: {}",
            r.text()
        );
        // the reply never echoes the token
        assert!(!r.text().contains(token.as_str()), "{what}");
        // reads are guarded the same way
        let r = h
            .get(
                &format!("/table/events/object/{}", uuid::Uuid::new_v4()),
                Some(token),
            )
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (401, *code),
            "{what} (status read): {}",
            r.text()
        );
    }
    assert!(h.landed().await.is_empty());

    // the same claims, properly signed, pass; an access token with our client id too
    let r = h
        .post(
            JSON_TABLE,
            Some(&sign(&good)),
            Some("application/json"),
            "{}",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let access = set(
        set(
            unset(good.clone(), "aud"),
            "client_id",
            json!(tarn_ingress::DEV_CLIENT_ID),
        ),
        "token_use",
        json!("access"),
    );
    let r = h
        .post(
            JSON_TABLE,
            Some(&sign(&access)),
            Some("application/json"),
            "{}",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test]
async fn jwks_endpoint_verifies_minted_tokens() {
    let h = Harness::start().await;
    let r = h.get("/.well-known/jwks.json", None).await;
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert_eq!(doc, h.issuer.jwks());
    let key = &doc["keys"][0];
    assert_eq!(key["kid"], h.issuer.kid());
    assert!(key.get("d").is_none(), "no private part");
    // a verifier built from what the endpoint served alone accepts a minted token
    let verifier = JwksVerifier::new(
        VerifierConfig::new(tarn_ingress::DEV_ISSUER, [tarn_ingress::DEV_CLIENT_ID]),
        Arc::new(StaticJwks::new(Jwks::from_json(&doc).unwrap())),
        h.clock.clone(),
    );
    let claims = verifier
        .verify(&h.token("alice", &["tarn-readers"]))
        .await
        .unwrap();
    assert_eq!(claims.username, "alice");
    assert_eq!(claims.groups, ["tarn-readers"]);
}

#[tokio::test]
async fn no_issuer_no_jwks() {
    let h = Harness::start_with(Options {
        with_issuer: false,
        ..Default::default()
    })
    .await;
    h.get("/.well-known/jwks.json", None)
        .await
        .expect(404, "not_found");
}
