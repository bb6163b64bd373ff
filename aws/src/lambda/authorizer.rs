//! The API Gateway Lambda authorizer: verifies the caller's Cognito token and decides each route
//! by the same rules as the local ingress. Accepts REQUEST authorizer events (token in the
//! `Authorization` header, route from `resource` and `pathParameters`, so a custom domain's base
//! path changes nothing) and TOKEN ones (`authorizationToken`, route from the method ARN; they
//! carry no headers, so an upload through a TOKEN authorizer is refused as having no content
//! type: the template's authorizer is a REQUEST one).
//!
//! Uploads (`POST /table/{name}/object`) are decided by [`tarn_ingress::admit_upload`], the
//! function the local server calls, and answered so that API Gateway gives the contract's status
//! and JSON error before anything lands (templates/tarn.yaml, `PostObject`):
//! - 401 (no token, a token that fails verification) → `Err("Unauthorized")`, API Gateway's 401;
//! - 503 (the pool's keys cannot be fetched) → an error, API Gateway's `AUTHORIZER_FAILURE`;
//! - 403 (the groups do not allow writing the table) → a Deny policy, API Gateway's
//!   `ACCESS_DENIED`;
//! - 400, 404, 413, 415 → an Allow policy whose context carries the refusal (`refusal_status`,
//!   `refusal_body`, the contract's JSON error) and a `bucket_owner` that is not the bucket's
//!   owner: the S3 proxy sends it as `x-amz-expected-bucket-owner`, so S3 refuses the put (403,
//!   nothing stored), and the integration response answers `refusal_status` with
//!   `refusal_body`;
//! - admitted → an Allow policy whose context gives the integration `table`, `producer`, the
//!   media type to land (`content_type`, parameters and case dropped as locally),
//!   `bucket_owner`, the API's own account, and `id`, the document id the S3 proxy lands as
//!   `id=<id>` with `If-None-Match: *`: for an upload with an `Idempotency-Key`,
//!   [`tarn_ingress::document_id`] of the producer, table and key (the local server's id), so
//!   that a repeat meets S3's 412 and the integration answers the first id; else a fresh one.
//!
//! Status and content routes: a content request needs `tarn-readers`/`tarn-readers-<table>`, a
//! status request any valid token (the documents function checks the producer). The multipart
//! upload routes need any valid token: the documents function runs their checks
//! ([`tarn_ingress::admit_multipart_upload`]) and answers them itself. Every Allow
//! names the caller (`username`, `sub`, `groups` as a JSON array: a Cognito group name may hold
//! a comma) for the integration.

use aws_lambda_events::event::apigw::{
    ApiGatewayCustomAuthorizerPolicy, ApiGatewayCustomAuthorizerResponse,
};
use aws_lambda_events::event::iam::{IamPolicyEffect, IamPolicyStatement};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use tarn_catalog::TableSpec;
use tarn_ingress::error::error_body;
use tarn_ingress::{
    AuthError, AuthErrorKind, Claims, ErrorKind, IngressError, TokenVerifier, UploadHead,
    admit_upload,
};
use tracing::{info, warn};

/// What a route needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `POST /table/{name}/object`
    Write(String),
    /// `GET /table/{name}/object/{id}/content`
    ReadContent(String),
    /// `GET /table/{name}/object/{id}`: any valid token (the status endpoint checks the producer)
    Status(String),
    /// the multipart upload routes (`POST /table/{name}/uploads`, `POST
    /// /table/{name}/uploads/{id}/complete`, `DELETE /table/{name}/uploads/{id}`): any valid
    /// token (the documents function runs the upload's checks and owns the answer)
    Upload(String),
    Other,
}

/// The route of an HTTP method and a request path (`/table/events/object`), as a TOKEN event's
/// method ARN gives it.
pub fn route(method: &str, path: &str) -> Route {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method.to_ascii_uppercase().as_str(), segs.as_slice()) {
        ("POST", ["table", name, "object"]) => Route::Write(name.to_string()),
        ("GET", ["table", name, "object", _id, "content"]) => Route::ReadContent(name.to_string()),
        ("GET", ["table", name, "object", _id]) => Route::Status(name.to_string()),
        ("POST", ["table", name, "uploads"])
        | ("POST", ["table", name, "uploads", _, "complete"])
        | ("DELETE", ["table", name, "uploads", _]) => Route::Upload(name.to_string()),
        _ => Route::Other,
    }
}

/// The route of a REST API event: its method, its `resource` (the API's resource path,
/// `/table/{name}/object`, whatever base path a custom domain maps) and `pathParameters.name`
/// (decoded by API Gateway). `None` when the event has no `resource`.
pub fn route_of_event(event: &Value) -> Option<Route> {
    let resource = event.get("resource")?.as_str()?;
    let method = event
        .get("httpMethod")
        .and_then(Value::as_str)
        .or_else(|| event.pointer("/requestContext/httpMethod")?.as_str())?
        .to_ascii_uppercase();
    let name = event
        .pointer("/pathParameters/name")
        .and_then(Value::as_str)
        .map(String::from);
    Some(match (method.as_str(), resource, name) {
        ("POST", "/table/{name}/object", Some(n)) => Route::Write(n),
        ("GET", "/table/{name}/object/{id}", Some(n)) => Route::Status(n),
        ("GET", "/table/{name}/object/{id}/content", Some(n)) => Route::ReadContent(n),
        ("POST", "/table/{name}/uploads", Some(n))
        | ("POST", "/table/{name}/uploads/{id}/complete", Some(n))
        | ("DELETE", "/table/{name}/uploads/{id}", Some(n)) => Route::Upload(n),
        _ => Route::Other,
    })
}

/// Method and path from a method ARN: `arn:aws:execute-api:<region>:<account>:<api>/<stage>/<METHOD>/<path...>`.
pub fn parse_method_arn(arn: &str) -> Option<(String, String)> {
    let resource = arn.splitn(6, ':').nth(5)?;
    let mut parts = resource.splitn(4, '/');
    let (_api, _stage, method) = (parts.next()?, parts.next()?, parts.next()?);
    Some((
        method.to_string(),
        format!("/{}", parts.next().unwrap_or("")),
    ))
}

/// The account of a method ARN: the API's, which owns the ingress bucket.
pub fn account_of_method_arn(arn: &str) -> Option<&str> {
    arn.split(':').nth(4).filter(|a| !a.is_empty())
}

/// An account that is not `account`: the `bucket_owner` of a refused upload, so that S3
/// refuses its put.
pub fn other_account(account: &str) -> &'static str {
    if account == "000000000000" {
        "111111111111"
    } else {
        "000000000000"
    }
}

/// Whether `claims` may use a status or content route.
pub fn allowed(claims: &Claims, route: &Route) -> bool {
    match route {
        Route::Write(t) => claims.can_write(t),
        Route::ReadContent(t) => claims.can_read(t),
        Route::Status(_) | Route::Upload(_) => true,
        Route::Other => false,
    }
}

/// The refusal statuses `PostObject`'s integration responses answer (templates/tarn.yaml):
/// the authorizer lets these through to a put S3 refuses; it denies every other refusal.
pub const INTEGRATION_REFUSALS: [u16; 4] = [400, 404, 413, 415];

#[derive(Debug, thiserror::Error)]
pub enum AuthorizerError {
    /// API Gateway turns exactly this message into a 401
    #[error("Unauthorized")]
    Unauthorized,
    #[error("token keys unavailable")]
    Unavailable,
    #[error("not an API Gateway authorizer event: {0}")]
    BadEvent(String),
}

#[derive(Debug, Clone)]
pub struct Authorizer {
    verifier: Arc<dyn TokenVerifier>,
    tables: Arc<BTreeMap<String, TableSpec>>,
}

fn header<'a>(headers: Option<&'a Value>, name: &str) -> Option<&'a str> {
    headers?
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str())
}

/// Every value of a header (any case): `multiValueHeaders` where the event has them, else the
/// one value of `headers`.
pub(crate) fn header_values<'a>(event: &'a Value, name: &str) -> Vec<&'a str> {
    let matching = |v: Option<&'a Value>| -> Vec<&'a Value> {
        v.and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v)
                    .collect()
            })
            .unwrap_or_default()
    };
    let multi = matching(event.get("multiValueHeaders"));
    if !multi.is_empty() {
        return multi
            .into_iter()
            .flat_map(|v| v.as_array().into_iter().flatten())
            .filter_map(Value::as_str)
            .collect();
    }
    matching(event.get("headers"))
        .into_iter()
        .filter_map(Value::as_str)
        .collect()
}

/// The id of an upload without an idempotency key (or of a refused one, which lands nothing).
fn fresh_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn policy(effect: IamPolicyEffect, resource: &str) -> ApiGatewayCustomAuthorizerPolicy {
    let mut statement = IamPolicyStatement::default();
    statement.action = vec!["execute-api:Invoke".into()];
    statement.effect = effect;
    statement.resource = vec![resource.to_string()];
    let mut p = ApiGatewayCustomAuthorizerPolicy::default();
    p.version = Some("2012-10-17".into());
    p.statement = vec![statement];
    p
}

fn response(
    allow: bool,
    principal: &str,
    method_arn: &str,
    context: Value,
) -> ApiGatewayCustomAuthorizerResponse {
    let mut resp = ApiGatewayCustomAuthorizerResponse::default();
    resp.principal_id = Some(principal.to_string());
    resp.policy_document = policy(
        if allow {
            IamPolicyEffect::Allow
        } else {
            IamPolicyEffect::Deny
        },
        method_arn,
    );
    resp.context = context;
    resp
}

/// The caller as the integration reads it (`producer` is what the S3 proxy lands as metadata).
fn caller_context(claims: &Claims) -> Value {
    json!({
        "producer": claims.username,
        "username": claims.username,
        "sub": claims.sub,
        "groups": serde_json::to_string(&claims.groups).unwrap_or_else(|_| "[]".into()),
    })
}

/// The request's token: `Authorization`, raw or `Bearer <jwt>`.
fn bare_token(raw: Option<&str>) -> Option<&str> {
    let raw = raw?.trim();
    let bare = match raw.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ if raw.eq_ignore_ascii_case("bearer") => "",
        _ => raw,
    };
    Some(bare).filter(|b| !b.is_empty())
}

impl Authorizer {
    /// An authorizer verifying tokens with `verifier`, uploads against the declared `tables`.
    pub fn new(verifier: Arc<dyn TokenVerifier>, tables: BTreeMap<String, TableSpec>) -> Self {
        Self {
            verifier,
            tables: Arc::new(tables),
        }
    }

    async fn verify(&self, token: Option<&str>) -> Result<Claims, IngressError> {
        let token = bare_token(token).ok_or(AuthError::Missing)?;
        Ok(self.verifier.verify(token).await?)
    }

    pub async fn handle(
        &self,
        event: Value,
    ) -> Result<ApiGatewayCustomAuthorizerResponse, AuthorizerError> {
        let method_arn = event
            .get("methodArn")
            .and_then(Value::as_str)
            .ok_or_else(|| AuthorizerError::BadEvent("no methodArn".into()))?
            .to_string();
        let (token, route) = match event.get("type").and_then(Value::as_str) {
            Some("TOKEN") => {
                let (m, p) = parse_method_arn(&method_arn)
                    .ok_or_else(|| AuthorizerError::BadEvent("unreadable methodArn".into()))?;
                (
                    event.get("authorizationToken").and_then(Value::as_str),
                    route(&m, &p),
                )
            }
            Some("REQUEST") | None => {
                let r = match route_of_event(&event) {
                    Some(r) => r,
                    None => {
                        let (m, p) = parse_method_arn(&method_arn).ok_or_else(|| {
                            AuthorizerError::BadEvent(
                                "no resource and no readable methodArn".into(),
                            )
                        })?;
                        route(&m, &p)
                    }
                };
                (header(event.get("headers"), "authorization"), r)
            }
            Some(other) => {
                return Err(AuthorizerError::BadEvent(format!(
                    "unknown authorizer type {other:?}"
                )));
            }
        };
        if let Route::Write(table) = &route {
            return self.upload(&event, &method_arn, table, token).await;
        }
        let claims = self.verify(token).await.map_err(|e| refused_token(&e))?;
        let ok = allowed(&claims, &route);
        info!(?route, user = %claims.username, allowed = ok, "authorized");
        Ok(response(
            ok,
            &claims.sub,
            &method_arn,
            caller_context(&claims),
        ))
    }

    /// `POST /table/{name}/object`: the contract's answer of [`admit_upload`], in the form API
    /// Gateway turns into it (see the module's documentation).
    async fn upload(
        &self,
        event: &Value,
        method_arn: &str,
        table: &str,
        token: Option<&str>,
    ) -> Result<ApiGatewayCustomAuthorizerResponse, AuthorizerError> {
        let headers = event.get("headers");
        let keys = header_values(event, tarn_ingress::idempotency::HEADER);
        let keys: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
        let head = UploadHead {
            table,
            content_type: header(headers, "content-type").map(str::as_bytes),
            content_length: header(headers, "content-length").map(str::as_bytes),
            idempotency_keys: &keys,
        };
        let caller = if tarn_catalog::schemas::is_valid_table_name(table) {
            self.verify(token).await
        } else {
            Err(IngressError::InvalidTableName)
        };
        let account = account_of_method_arn(method_arn)
            .ok_or_else(|| AuthorizerError::BadEvent("no account in methodArn".into()))?;
        match admit_upload(&self.tables, &head, caller) {
            Ok(a) => {
                info!(%table, user = %a.caller.username, content_type = %a.content_type, "upload admitted");
                let mut ctx = caller_context(&a.caller);
                ctx["table"] = json!(a.spec.name);
                ctx["content_type"] = json!(a.content_type);
                ctx["bucket_owner"] = json!(account);
                // a keyed upload's id is the local server's; an unkeyed one gets a fresh id
                ctx["id"] = json!(a.id.clone().unwrap_or_else(fresh_id));
                ctx["refusal_status"] = json!("");
                ctx["refusal_body"] = json!("");
                Ok(response(true, &a.caller.sub, method_arn, ctx))
            }
            Err(e) => {
                let kind = e.kind();
                if kind == ErrorKind::Unauthorized || kind == ErrorKind::Unavailable {
                    return Err(refused_token(&e));
                }
                info!(%table, code = e.code(), reason = %e, "upload refused");
                let ctx = json!({
                    "producer": "-",
                    "username": "-",
                    "sub": "-",
                    "groups": "[]",
                    "table": "-",
                    "content_type": "-",
                    "bucket_owner": other_account(account),
                    "id": fresh_id(),
                    "refusal_status": kind.status().as_u16().to_string(),
                    "refusal_body": error_body(e.code(), &e.to_string()).to_string(),
                });
                // the refusals the integration answers reach the S3 proxy, which cannot land
                // them; anything else (forbidden) is a Deny, API Gateway's 403
                let status = kind.status().as_u16();
                Ok(response(
                    INTEGRATION_REFUSALS.contains(&status),
                    "-",
                    method_arn,
                    ctx,
                ))
            }
        }
    }
}

/// A token that is missing or fails verification is API Gateway's 401; keys that cannot be
/// fetched are a failure of the authorizer (API Gateway's 503 gateway response).
fn refused_token(e: &IngressError) -> AuthorizerError {
    match e {
        IngressError::Auth(a) if a.kind() == AuthErrorKind::Unavailable => {
            warn!(error = %e, "cannot verify tokens now");
            AuthorizerError::Unavailable
        }
        _ => {
            info!(reason = %e, "token refused");
            AuthorizerError::Unauthorized
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            route("POST", "/table/events/object"),
            Route::Write("events".into())
        );
        assert_eq!(
            route("GET", "/table/events/object/x/content"),
            Route::ReadContent("events".into())
        );
        assert_eq!(
            route("GET", "/table/events/object/x"),
            Route::Status("events".into())
        );
        assert_eq!(route("DELETE", "/table/events/object/x"), Route::Other);
        for (m, p) in [
            ("POST", "/table/scans/uploads"),
            ("POST", "/table/scans/uploads/u-1/complete"),
            ("DELETE", "/table/scans/uploads/u-1"),
        ] {
            assert_eq!(route(m, p), Route::Upload("scans".into()), "{m} {p}");
        }
        // parts go to presigned S3 URLs on AWS, never through the API
        assert_eq!(
            route("PUT", "/table/scans/uploads/u-1/parts/1"),
            Route::Other
        );
        assert_eq!(
            parse_method_arn(
                "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/POST/table/events/object"
            ),
            Some(("POST".into(), "/table/events/object".into()))
        );
        assert_eq!(
            account_of_method_arn(
                "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/POST/table/events/object"
            ),
            Some("123456789012")
        );
        assert_ne!(other_account("000000000000"), "000000000000");
        assert_ne!(other_account("123456789012"), "123456789012");
    }

    #[test]
    fn routes_come_from_the_resource_not_the_path() {
        // a custom domain's base path (`/ingest`) is in `path`, never in `resource`
        let e = json!({
            "resource": "/table/{name}/object", "path": "/ingest/table/events/object",
            "httpMethod": "POST", "pathParameters": {"name": "events"},
        });
        assert_eq!(route_of_event(&e), Some(Route::Write("events".into())));
        let e = json!({
            "resource": "/table/{name}/object/{id}/content", "path": "/v2/table/a%20b/object/x/content",
            "httpMethod": "GET", "pathParameters": {"name": "a b", "id": "x"},
        });
        assert_eq!(route_of_event(&e), Some(Route::ReadContent("a b".into())));
        let e = json!({"resource": "/health", "httpMethod": "GET", "pathParameters": null});
        assert_eq!(route_of_event(&e), Some(Route::Other));
        assert_eq!(route_of_event(&json!({"httpMethod": "GET"})), None);
    }

    #[test]
    fn header_values_come_from_multi_value_headers_else_headers() {
        let e = json!({
            "headers": {"Idempotency-Key": "b"},
            "multiValueHeaders": {"Idempotency-Key": ["a", "b"], "Host": ["h"]},
        });
        assert_eq!(header_values(&e, "idempotency-key"), ["a", "b"]);
        let e = json!({"headers": {"idempotency-KEY": "k"}, "multiValueHeaders": null});
        assert_eq!(header_values(&e, "idempotency-key"), ["k"]);
        let e = json!({"headers": {"Host": "h"}});
        assert!(header_values(&e, "idempotency-key").is_empty());
        assert!(header_values(&json!({}), "idempotency-key").is_empty());
    }

    #[test]
    fn tokens_raw_or_bearer() {
        assert_eq!(bare_token(Some("Bearer abc")), Some("abc"));
        assert_eq!(bare_token(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bare_token(Some("abc")), Some("abc"));
        assert_eq!(bare_token(Some("Bearer ")), None);
        assert_eq!(bare_token(Some("Bearer")), None);
        assert_eq!(bare_token(Some("")), None);
        assert_eq!(bare_token(None), None);
    }
}
