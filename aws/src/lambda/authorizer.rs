//! The API Gateway Lambda authorizer: verifies the caller's Cognito token and allows or denies
//! the route by the same table/group rules as the local ingress ([`Claims::can_write`],
//! [`Claims::can_read`]). Accepts REQUEST authorizer events (token in the `Authorization`
//! header) and TOKEN ones (`authorizationToken`).
//!
//! - no token, or a token that fails verification → `Err("Unauthorized")`, which API Gateway
//!   answers with 401;
//! - a valid token not allowed the route → a Deny policy (403);
//! - allowed → an Allow policy for the method ARN, with `producer`, `sub`, `username` and
//!   `groups` in the context for the integration (the S3 proxy writes `producer` as metadata).

use aws_lambda_events::event::apigw::{
    ApiGatewayCustomAuthorizerPolicy, ApiGatewayCustomAuthorizerResponse,
};
use aws_lambda_events::event::iam::{IamPolicyEffect, IamPolicyStatement};
use serde_json::{Value, json};
use std::sync::Arc;
use tarn_ingress::{AuthErrorKind, Claims, TokenVerifier};
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
    Other,
}

/// The route of an HTTP method and a resource path (`/table/events/object`).
pub fn route(method: &str, path: &str) -> Route {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method.to_ascii_uppercase().as_str(), segs.as_slice()) {
        ("POST", ["table", name, "object"]) => Route::Write(name.to_string()),
        ("GET", ["table", name, "object", _id, "content"]) => Route::ReadContent(name.to_string()),
        ("GET", ["table", name, "object", _id]) => Route::Status(name.to_string()),
        _ => Route::Other,
    }
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

/// Whether `claims` may use `route`.
pub fn allowed(claims: &Claims, route: &Route) -> bool {
    match route {
        Route::Write(t) => claims.can_write(t),
        Route::ReadContent(t) => claims.can_read(t),
        Route::Status(_) => true,
        Route::Other => false,
    }
}

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
}

fn header(headers: Option<&Value>, name: &str) -> Option<String> {
    headers?
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str().map(String::from))
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

impl Authorizer {
    pub fn new(verifier: Arc<dyn TokenVerifier>) -> Self {
        Self { verifier }
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
        let (token, method, path) = match event.get("type").and_then(Value::as_str) {
            Some("TOKEN") => {
                let (m, p) = parse_method_arn(&method_arn)
                    .ok_or_else(|| AuthorizerError::BadEvent("unreadable methodArn".into()))?;
                (
                    event
                        .get("authorizationToken")
                        .and_then(Value::as_str)
                        .map(String::from),
                    m,
                    p,
                )
            }
            Some("REQUEST") | None => {
                let from_arn = parse_method_arn(&method_arn);
                let method = event
                    .get("httpMethod")
                    .and_then(Value::as_str)
                    .map(String::from)
                    .or_else(|| from_arn.as_ref().map(|a| a.0.clone()));
                let path = event
                    .get("path")
                    .and_then(Value::as_str)
                    .map(String::from)
                    .or_else(|| from_arn.as_ref().map(|a| a.1.clone()));
                let (Some(m), Some(p)) = (method, path) else {
                    return Err(AuthorizerError::BadEvent("no httpMethod/path".into()));
                };
                (header(event.get("headers"), "authorization"), m, p)
            }
            Some(other) => {
                return Err(AuthorizerError::BadEvent(format!(
                    "unknown authorizer type {other:?}"
                )));
            }
        };
        let raw = token.unwrap_or_default();
        let raw = raw.trim();
        let bare = raw
            .strip_prefix("Bearer ")
            .or_else(|| raw.strip_prefix("bearer "))
            .unwrap_or(raw)
            .trim();
        if bare.is_empty() {
            info!(%method, %path, "no token");
            return Err(AuthorizerError::Unauthorized);
        }
        let claims = match self.verifier.verify(bare).await {
            Ok(c) => c,
            Err(e) if e.kind() == AuthErrorKind::Unavailable => {
                warn!(error = %e, "cannot verify tokens now");
                return Err(AuthorizerError::Unavailable);
            }
            Err(e) => {
                info!(%method, %path, reason = %e, "token refused");
                return Err(AuthorizerError::Unauthorized);
            }
        };
        let r = route(&method, &path);
        let ok = allowed(&claims, &r);
        info!(%method, %path, user = %claims.username, allowed = ok, "authorized");
        let mut resp = ApiGatewayCustomAuthorizerResponse::default();
        resp.principal_id = Some(claims.sub.clone());
        resp.policy_document = policy(
            if ok {
                IamPolicyEffect::Allow
            } else {
                IamPolicyEffect::Deny
            },
            &method_arn,
        );
        resp.context = json!({
            "producer": claims.username,
            "username": claims.username,
            "sub": claims.sub,
            "groups": claims.groups.join(","),
        });
        Ok(resp)
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
        assert_eq!(
            parse_method_arn(
                "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/POST/table/events/object"
            ),
            Some(("POST".into(), "/table/events/object".into()))
        );
    }
}
