//! The contract at the edge on AWS: the shared upload cases of ingress/tests/common/cases.rs
//! (the ones the local ingress answers over HTTP) sent to the authorizer as real API Gateway
//! REQUEST-authorizer events, and answered as templates/tarn.yaml makes API Gateway answer the
//! authorizer's outcome (its gateway responses, and `PostObject`'s integration responses for
//! the refusals it lets through to a put S3 refuses). The same status and code as locally, for
//! every case; plus a custom domain's base path, a group name with a comma, and idempotency keys
//! (the authorizer's id is the local server's `tarn_ingress::document_id`).

#[path = "../../ingress/tests/common/cases.rs"]
mod cases;
#[path = "common/template.rs"]
mod template;

use aws_lambda_events::event::apigw::ApiGatewayCustomAuthorizerResponse;
use cases::{CASES, Case, Token};
use chrono::{TimeZone, Utc};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tarn_aws::lambda::authorizer::{Authorizer, AuthorizerError};
use tarn_core::{Clock, ManualClock};
use tarn_ingress::DevIssuer;

const ACCOUNT: &str = "123456789012";

struct Edge {
    _dir: tempfile::TempDir,
    issuer: Arc<DevIssuer>,
    clock: Arc<ManualClock>,
    authorizer: Authorizer,
}

fn edge() -> Edge {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2030, 1, 2, 3, 4, 5).unwrap(),
    ));
    let issuer = Arc::new(
        DevIssuer::open_or_create(dir.path())
            .unwrap()
            .with_clock(clock.clone()),
    );
    let authorizer = Authorizer::new(
        Arc::new(issuer.verifier(clock.clone())),
        tarn_ingress::table_map(cases::specs()),
    );
    Edge {
        _dir: dir,
        issuer,
        clock,
        authorizer,
    }
}

impl Edge {
    fn token(&self, t: Token) -> Option<String> {
        let now = self.clock.now().timestamp();
        let claims = |groups: &[&str], exp: i64| {
            json!({
                "iss": tarn_ingress::DEV_ISSUER, "sub": DevIssuer::subject("alice"),
                "aud": tarn_ingress::DEV_CLIENT_ID, "token_use": "id",
                "cognito:username": "alice", "cognito:groups": groups,
                "iat": now - 7200, "auth_time": now - 7200, "exp": exp,
            })
        };
        let sign = |c: Value| self.issuer.sign(&self.issuer.header(), &c).unwrap();
        match t {
            Token::None => None,
            Token::Garbage => Some("not.a.token".into()),
            Token::Expired => Some(sign(claims(&["tarn-writers"], now - 3600))),
            Token::Groups(g) => Some(sign(claims(g, now + 3600))),
        }
    }
}

/// The REQUEST-authorizer event API Gateway sends for `POST /table/{name}/object`, behind a
/// custom domain whose base path is `base` ("" for the stage's own URL).
fn post_event(
    name: &str,
    wire: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    content_length: u64,
    base: &str,
) -> Value {
    let mut headers = json!({
        "Accept": "*/*",
        "Content-Length": content_length.to_string(),
        "Host": "ingest.example.com",
        "User-Agent": "curl/8.5.0",
        "X-Amzn-Trace-Id": "Root=1-65f0c0de-0123456789abcdef01234567",
        "X-Forwarded-For": "203.0.113.7",
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
    });
    if let Some(t) = token {
        headers["Authorization"] = json!(format!("Bearer {t}"));
    }
    if let Some(ct) = content_type {
        headers["Content-Type"] = json!(ct);
    }
    let multi: serde_json::Map<String, Value> = headers
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), json!([v])))
        .collect();
    let path = format!("{base}/table/{wire}/object");
    json!({
        "type": "REQUEST",
        "methodArn": format!("arn:aws:execute-api:us-east-1:{ACCOUNT}:a1b2c3d4e5/v1/POST/table/{wire}/object"),
        "resource": "/table/{name}/object",
        "path": path,
        "httpMethod": "POST",
        "headers": headers,
        "multiValueHeaders": multi,
        "queryStringParameters": null,
        "multiValueQueryStringParameters": null,
        "pathParameters": {"name": name},
        "stageVariables": null,
        "requestContext": {
            "resourceId": "x1y2z3",
            "resourcePath": "/table/{name}/object",
            "httpMethod": "POST",
            "extendedRequestId": "UvL3aEXAMPLE=",
            "requestTime": "02/Jan/2030:03:04:05 +0000",
            "path": path,
            "accountId": ACCOUNT,
            "protocol": "HTTP/1.1",
            "stage": "v1",
            "domainPrefix": "ingest",
            "requestTimeEpoch": 1893553445000u64,
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "identity": {"sourceIp": "203.0.113.7", "userAgent": "curl/8.5.0"},
            "domainName": "ingest.example.com",
            "apiId": "a1b2c3d4e5"
        }
    })
}

/// What templates/tarn.yaml makes API Gateway answer, read from the template.
struct Gateway {
    /// (status, error code) of the gateway responses the authorizer's outcomes select
    unauthorized: (u16, String),
    access_denied: (u16, String),
    authorizer_failure: (u16, String),
    /// the refusal statuses every `PostObject` integration response that S3's answers select
    /// (2xx and 4xx) overrides to
    overrides: BTreeSet<u16>,
}

fn gateway() -> Gateway {
    let t = template::load_template(&template::root().join("templates/tarn.yaml"));
    let r = &t["Resources"];
    let gw = |kind: &str| -> (u16, String) {
        let (_, g) = r
            .as_object()
            .unwrap()
            .iter()
            .find(|(_, v)| {
                v["Type"] == "AWS::ApiGateway::GatewayResponse"
                    && v["Properties"]["ResponseType"] == kind
            })
            .unwrap_or_else(|| panic!("no {kind} gateway response"));
        let status = g["Properties"]["StatusCode"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        // `$context.error.messageString` is API Gateway's message as a quoted JSON string
        let body = g["Properties"]["ResponseTemplates"]["application/json"]
            .as_str()
            .unwrap()
            .replace("$context.error.messageString", "\"the gateway's message\"");
        let body: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{kind}'s body is not JSON ({e}): {body}"));
        (status, body["error"]["code"].as_str().unwrap().to_string())
    };
    // the authorizer runs without a token (no identity source), and is not cached
    let auth = &r["ApiAuthorizer"]["Properties"];
    assert!(auth.get("IdentitySource").is_none(), "{auth}");
    assert_eq!(auth["AuthorizerResultTtlInSeconds"], 0);
    let post = &r["PostObject"]["Properties"];
    assert_eq!(post["AuthorizerId"]["Ref"], "ApiAuthorizer");
    let params = &post["Integration"]["RequestParameters"];
    assert_eq!(
        params["integration.request.header.x-amz-expected-bucket-owner"],
        "context.authorizer.bucket_owner"
    );
    for (header, key) in [
        ("x-amz-meta-content-type", "content_type"),
        ("x-amz-meta-table", "table"),
        ("x-amz-meta-producer", "producer"),
    ] {
        assert_eq!(
            params[format!("integration.request.header.{header}")],
            format!("context.authorizer.{key}"),
            "{header}"
        );
    }
    let declared: BTreeSet<String> = post["MethodResponses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["StatusCode"].as_str().unwrap().to_string())
        .collect();
    let mut overrides: Option<BTreeSet<u16>> = None;
    for resp in post["Integration"]["IntegrationResponses"]
        .as_array()
        .unwrap()
    {
        let pattern = resp["SelectionPattern"].as_str().unwrap();
        let re = regex_lite(pattern);
        // the responses S3's 200 and 403 select
        if !(re("200") || re("403")) {
            continue;
        }
        let vtl = resp["ResponseTemplates"]["application/json"]
            .as_str()
            .unwrap();
        assert!(
            vtl.contains("#set($refusal = \"$!context.authorizer.refusal_status\")")
                && vtl.contains("#if($refusal != \"\")$context.authorizer.refusal_body#else"),
            "{pattern}: {vtl}"
        );
        let mut here = BTreeSet::new();
        for s in [400u16, 401, 403, 404, 408, 409, 413, 415, 500, 503] {
            if vtl.contains(&format!(
                "($refusal == \"{s}\")#set($context.responseOverride.status = {s})"
            )) {
                assert!(
                    declared.contains(&s.to_string()),
                    "{s} is no method response"
                );
                here.insert(s);
            }
        }
        overrides = Some(match overrides {
            None => here,
            Some(o) => o.intersection(&here).copied().collect(),
        });
    }
    Gateway {
        unauthorized: gw("UNAUTHORIZED"),
        access_denied: gw("ACCESS_DENIED"),
        authorizer_failure: gw("AUTHORIZER_FAILURE"),
        overrides: overrides.expect("integration responses for S3's 200 and 403"),
    }
}

/// The two selection patterns of the template, as a matcher (`2\d{2}`, `(4\d{2}|50[124-9])`,
/// `(500|503)`): digits, `\d`, `{n}`, classes and alternation are all they use.
fn regex_lite(pattern: &str) -> impl Fn(&str) -> bool {
    let alts: Vec<String> = pattern
        .trim_start_matches('(')
        .trim_end_matches(')')
        .split('|')
        .map(String::from)
        .collect();
    move |code: &str| {
        alts.iter().any(|alt| {
            // expand into one matcher per character position
            let mut pos: Vec<Box<dyn Fn(char) -> bool>> = Vec::new();
            let mut it = alt.chars().peekable();
            while let Some(c) = it.next() {
                let m: Box<dyn Fn(char) -> bool> = match c {
                    '\\' => {
                        it.next();
                        Box::new(|c: char| c.is_ascii_digit())
                    }
                    '[' => {
                        let body: String = it.by_ref().take_while(|c| *c != ']').collect();
                        Box::new(move |c: char| range_class(&body, c))
                    }
                    '{' => {
                        let n: String = it.by_ref().take_while(|c| *c != '}').collect();
                        let n: usize = n.parse().unwrap();
                        let last = pos.pop().unwrap();
                        let last: std::rc::Rc<dyn Fn(char) -> bool> = std::rc::Rc::from(last);
                        for _ in 0..n {
                            let l = last.clone();
                            pos.push(Box::new(move |c| l(c)));
                        }
                        continue;
                    }
                    d => Box::new(move |c: char| c == d),
                };
                pos.push(m);
            }
            code.chars().count() == pos.len() && code.chars().zip(&pos).all(|(c, m)| m(c))
        })
    }
}

/// Whether `c` is in a class's body as written in the template (`124-9`).
fn range_class(body: &str, c: char) -> bool {
    let cs: Vec<char> = body.chars().collect();
    let mut i = 0;
    while i < cs.len() {
        if i + 2 < cs.len() && cs[i + 1] == '-' {
            if (cs[i]..=cs[i + 2]).contains(&c) {
                return true;
            }
            i += 3;
        } else {
            if cs[i] == c {
                return true;
            }
            i += 1;
        }
    }
    false
}

/// What a client of API Gateway gets for the authorizer's `outcome` on `POST`: (status, error
/// code), or (200, "") for an upload that lands, with the context the S3 proxy maps.
fn answer(
    g: &Gateway,
    outcome: &Result<ApiGatewayCustomAuthorizerResponse, AuthorizerError>,
) -> (u16, String, Value) {
    let resp = match outcome {
        Err(AuthorizerError::Unauthorized) => {
            return (g.unauthorized.0, g.unauthorized.1.clone(), Value::Null);
        }
        Err(AuthorizerError::Unavailable) => {
            return (
                g.authorizer_failure.0,
                g.authorizer_failure.1.clone(),
                Value::Null,
            );
        }
        Err(e) => panic!("the authorizer failed: {e}"),
        Ok(r) => serde_json::to_value(r).unwrap(),
    };
    let ctx = resp["context"].clone();
    // API Gateway passes on only string, number and boolean context values
    for (k, v) in ctx.as_object().unwrap() {
        assert!(v.is_string() || v.is_number() || v.is_boolean(), "{k}: {v}");
    }
    if resp["policyDocument"]["Statement"][0]["Effect"] == "Deny" {
        return (g.access_denied.0, g.access_denied.1.clone(), ctx);
    }
    assert_eq!(resp["policyDocument"]["Statement"][0]["Effect"], "Allow");
    let refusal = ctx["refusal_status"].as_str().unwrap();
    if refusal.is_empty() {
        assert_eq!(
            ctx["bucket_owner"], ACCOUNT,
            "an admitted put goes to our bucket"
        );
        return (200, String::new(), ctx);
    }
    // S3 refuses the put: the bucket's owner is not the one expected
    assert_ne!(ctx["bucket_owner"], ACCOUNT);
    assert_eq!(ctx["bucket_owner"].as_str().unwrap().len(), 12);
    let status: u16 = refusal.parse().unwrap();
    assert!(
        g.overrides.contains(&status),
        "the template does not answer a {status} refusal"
    );
    let body: Value = serde_json::from_str(ctx["refusal_body"].as_str().unwrap()).unwrap();
    assert_eq!(body["success"], false);
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(!msg.is_empty() && !msg.ends_with('.'), "{msg}");
    (
        status,
        body["error"]["code"].as_str().unwrap().to_string(),
        ctx,
    )
}

async fn run(e: &Edge, g: &Gateway, c: &Case, base: &str) -> (u16, String, Value) {
    let token = e.token(c.token);
    let event = post_event(
        c.name,
        c.wire,
        token.as_deref(),
        c.content_type,
        c.content_length,
        base,
    );
    answer(g, &e.authorizer.handle(event).await)
}

#[tokio::test]
async fn the_shared_cases_get_the_contracts_answers_at_the_edge() {
    let e = edge();
    let g = gateway();
    let contract_401s = ["missing_token", "invalid_token", "token_expired"];
    assert!(contract_401s.contains(&g.unauthorized.1.as_str()));
    assert_eq!(g.unauthorized.0, 401);
    assert_eq!(g.access_denied, (403, "forbidden".to_string()));
    assert_eq!(g.authorizer_failure, (503, "auth_unavailable".to_string()));
    assert_eq!(
        g.overrides,
        BTreeSet::from(tarn_aws::lambda::authorizer::INTEGRATION_REFUSALS),
        "the template answers exactly the refusals the authorizer lets through"
    );
    for c in CASES {
        for base in ["", "/ingest"] {
            let (status, code, ctx) = run(&e, &g, c, base).await;
            assert_eq!(status, c.status, "{} (base {base:?}): {code}", c.what);
            if c.status == 401 {
                // one gateway response answers every 401: its code is one of the contract's
                assert!(contract_401s.contains(&code.as_str()), "{}", c.what);
            } else {
                assert_eq!(code, c.code, "{} (base {base:?})", c.what);
            }
            if c.status == 200 {
                assert_eq!(ctx["content_type"], cases::landed_type(c), "{}", c.what);
                assert_eq!(ctx["producer"], "alice");
                assert_eq!(ctx["table"], c.name);
            }
        }
    }
}

#[tokio::test]
async fn keys_that_cannot_be_fetched_are_503_not_401() {
    use tarn_ingress::{JwksVerifier, VerifierConfig};
    let g = gateway();
    let e = edge();
    let down = Authorizer::new(
        Arc::new(JwksVerifier::new(
            VerifierConfig::new(tarn_ingress::DEV_ISSUER, [tarn_ingress::DEV_CLIENT_ID]),
            Arc::new(tarn_aws::CognitoJwks::new("http://127.0.0.1:9/jwks.json")),
            e.clock.clone(),
        )),
        tarn_ingress::table_map(cases::specs()),
    );
    let token = e.token(cases::WRITER).unwrap();
    let ev = post_event(
        "events",
        "events",
        Some(&token),
        Some("application/json"),
        2,
        "",
    );
    let outcome = tokio::time::timeout(Duration::from_secs(60), down.handle(ev))
        .await
        .unwrap();
    assert_eq!(answer(&g, &outcome).0, 503);
    // a bad name is still 400 first
    let ev = post_event("Bad", "Bad", Some(&token), Some("application/json"), 2, "");
    let (status, code, _) = answer(&g, &down.handle(ev).await);
    assert_eq!((status, code.as_str()), (400, "invalid_table_name"));
}

#[tokio::test]
async fn groups_reach_the_documents_function_as_json() {
    let e = edge();
    // a group whose name holds a comma, beside one that allows reading events
    let token = e
        .token(Token::Groups(&[
            "ops,tarn-readers-photos",
            "tarn-readers-events",
        ]))
        .unwrap();
    let id = "0b7c4b0e-2f3b-4a4c-9a57-5b1e0f6d2c11";
    let path = format!("/ingest/table/events/object/{id}/content");
    let event = json!({
        "type": "REQUEST",
        "methodArn": format!("arn:aws:execute-api:us-east-1:{ACCOUNT}:a1b2c3d4e5/v1/GET/table/events/object/{id}/content"),
        "resource": "/table/{name}/object/{id}/content",
        "path": path,
        "httpMethod": "GET",
        "headers": {"Authorization": format!("Bearer {token}"), "Host": "ingest.example.com"},
        "multiValueHeaders": {"Authorization": [format!("Bearer {token}")], "Host": ["ingest.example.com"]},
        "queryStringParameters": null,
        "pathParameters": {"name": "events", "id": id},
        "stageVariables": null,
        "requestContext": {"resourcePath": "/table/{name}/object/{id}/content", "httpMethod": "GET",
            "path": path, "accountId": ACCOUNT, "stage": "v1", "requestId": "r-9", "apiId": "a1b2c3d4e5",
            "domainName": "ingest.example.com"}
    });
    let resp = serde_json::to_value(e.authorizer.handle(event).await.unwrap()).unwrap();
    assert_eq!(resp["policyDocument"]["Statement"][0]["Effect"], "Allow");
    let groups = resp["context"]["groups"].as_str().unwrap();
    assert_eq!(
        serde_json::from_str::<Vec<String>>(groups).unwrap(),
        vec!["ops,tarn-readers-photos", "tarn-readers-events"]
    );
    // the proxy event API Gateway then sends the documents function
    let mut ctx = resp["context"].clone();
    ctx["principalId"] = resp["principalId"].clone();
    let proxy = json!({
        "resource": "/table/{name}/object/{id}/content", "path": path, "httpMethod": "GET",
        "pathParameters": {"name": "photos", "id": id},
        "requestContext": {"requestId": "r-9", "stage": "v1", "authorizer": ctx},
    });
    let caller = tarn_aws::lambda::documents::caller(&proxy).unwrap();
    assert_eq!(caller.groups.len(), 2);
    assert!(caller.can_read("events"));
    assert!(!caller.can_read("photos"), "a comma splits no group");

    // the same token may not read photos' contents: the authorizer denies it
    let ev = json!({
        "type": "REQUEST",
        "methodArn": format!("arn:aws:execute-api:us-east-1:{ACCOUNT}:a1b2c3d4e5/v1/GET/table/photos/object/{id}/content"),
        "resource": "/table/{name}/object/{id}/content",
        "path": format!("/ingest/table/photos/object/{id}/content"),
        "httpMethod": "GET",
        "headers": {"Authorization": format!("Bearer {token}")},
        "pathParameters": {"name": "photos", "id": id},
        "requestContext": {"accountId": ACCOUNT, "stage": "v1", "requestId": "r-10"}
    });
    let resp = serde_json::to_value(e.authorizer.handle(ev).await.unwrap()).unwrap();
    assert_eq!(resp["policyDocument"]["Statement"][0]["Effect"], "Deny");
}

#[test]
fn the_selection_patterns_match_as_api_gateway_matches_them() {
    let two = regex_lite("2\\d{2}");
    assert!(two("200") && two("204") && !two("403") && !two("20"));
    let four = regex_lite("(40[0-8]|41[013-9]|4[2-9]\\d|50[124-9])");
    assert!(four("403") && four("404") && four("501") && four("502") && four("504"));
    assert!(four("400") && four("410") && four("413") && four("429"));
    assert!(!four("409") && !four("412") && !four("500") && !four("503") && !four("200"));
    let five = regex_lite("(409|500|503)");
    assert!(five("409") && five("500") && five("503") && !five("502"));
    let replay = regex_lite("412");
    assert!(replay("412") && !replay("413"));
}

/// Every status S3 may answer the put selects exactly one of `PostObject`'s integration
/// responses: 412 (the key's `id=<id>` exists) the replay, 409 (a racing conditional put) 503.
#[test]
fn each_s3_status_selects_one_integration_response() {
    let t = template::load_template(&template::root().join("templates/tarn.yaml"));
    let responses =
        t["Resources"]["PostObject"]["Properties"]["Integration"]["IntegrationResponses"]
            .as_array()
            .unwrap()
            .clone();
    let selected = |code: u16| -> Vec<String> {
        responses
            .iter()
            .filter(|r| regex_lite(r["SelectionPattern"].as_str().unwrap())(&code.to_string()))
            .map(|r| r["StatusCode"].as_str().unwrap().to_string())
            .collect()
    };
    for code in (200..=204).chain(400..=431).chain(500..=504) {
        assert_eq!(selected(code).len(), 1, "{code}: {:?}", selected(code));
    }
    assert_eq!(selected(200), ["200"]);
    assert_eq!(selected(412), ["412"]);
    assert_eq!(selected(409), ["503"]);
    assert_eq!(selected(403), ["500"]);
}

/// `event` with an `Idempotency-Key` header, as API Gateway passes it (`headers` and
/// `multiValueHeaders`).
fn with_key(mut event: Value, keys: &[&str]) -> Value {
    event["headers"]["Idempotency-Key"] = json!(keys.last().unwrap());
    event["multiValueHeaders"]["Idempotency-Key"] = json!(keys);
    event
}

#[tokio::test]
async fn a_keyed_upload_lands_under_the_id_the_local_server_computes() {
    let e = edge();
    let g = gateway();
    let token = e.token(cases::WRITER).unwrap();
    let post = |key: &[&str]| {
        let ev = post_event(
            "events",
            "events",
            Some(&token),
            Some("application/json"),
            2,
            "",
        );
        if key.is_empty() {
            ev
        } else {
            with_key(ev, key)
        }
    };
    let (status, _, ctx) = answer(&g, &e.authorizer.handle(post(&["order-42"])).await);
    assert_eq!(status, 200);
    assert_eq!(
        ctx["id"],
        tarn_ingress::document_id("alice", "events", "order-42")
    );
    // pinned beside the local server's unit test: the same id on both backends
    assert_eq!(
        tarn_ingress::document_id("alice", "events", "k1"),
        "70baa2a8-9c3c-82c8-a6fb-da5a7a8f201f"
    );
    let (_, _, again) = answer(&g, &e.authorizer.handle(post(&["order-42"])).await);
    assert_eq!(again["id"], ctx["id"], "a retry puts the same key");
    // a header name in any case
    let mut ev = post(&[]);
    ev["headers"]["idempotency-key"] = json!("order-42");
    ev["multiValueHeaders"]["idempotency-key"] = json!(["order-42"]);
    let (_, _, lower) = answer(&g, &e.authorizer.handle(ev).await);
    assert_eq!(lower["id"], ctx["id"]);
    // without a key: a fresh id every time
    let (_, _, one) = answer(&g, &e.authorizer.handle(post(&[])).await);
    let (_, _, two) = answer(&g, &e.authorizer.handle(post(&[])).await);
    let one = one["id"].as_str().unwrap();
    assert_ne!(one, two["id"].as_str().unwrap());
    assert_eq!(uuid::Uuid::parse_str(one).unwrap().get_version_num(), 4);
    // a bad key, or two keys: the contract's 400, nothing lands
    let long = "k".repeat(129);
    for keys in [&[long.as_str()][..], &["a", "b"], &[""], &["clé"]] {
        let (status, code, ctx) = answer(&g, &e.authorizer.handle(post(keys)).await);
        assert_eq!(
            (status, code.as_str()),
            (400, "invalid_idempotency_key"),
            "{keys:?}"
        );
        assert_ne!(ctx["bucket_owner"], ACCOUNT);
    }
}
