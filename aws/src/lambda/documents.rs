//! The document routes on AWS: `GET /table/{name}/object/{id}` (status) and
//! `GET /table/{name}/object/{id}/content`, behind API Gateway's Lambda proxy integration.
//!
//! API Gateway's authorizer ([`super::authorizer`]) has verified the token and lets through
//! only what the route allows (content: a reader group; status: any valid token); it hands the
//! caller's `username`, `sub` and `groups` (a JSON array) to this function in
//! `requestContext.authorizer`. The answers come from the same [`Documents`] the local server
//! uses, so both behave alike:
//! - status: the document's row, or `received` while it is in the pipeline; the producer or a
//!   reader only;
//! - content: a `307` to a presigned S3 URL that lives at most 5 minutes (objects in the lake are
//!   SSE-KMS under the platform key, so S3 decrypts them for the URL's reader).
//!
//! With [`DocumentsFunction::with_uploads`] it also serves the multipart upload routes
//! ([`super::uploads`]).
//!
//! Errors are the JSON bodies with their statuses of docs/contract.md, Ingress HTTP API.

use super::uploads::UploadsFunction;
use base64::Engine;
use serde_json::{Value, json};
use tarn_ingress::error::error_body;
use tarn_ingress::{Claims, Content, Documents, ErrorKind, IngressError};

/// The function: [`Documents`] over the AWS ports, and the multipart upload routes
/// ([`super::uploads`]) when given.
#[derive(Debug, Clone)]
pub struct DocumentsFunction {
    pub documents: Documents,
    pub uploads: Option<UploadsFunction>,
}

/// What an API Gateway proxy event asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Status { table: String, id: String },
    Content { table: String, id: String },
}

/// The route of a REST API proxy event, from its resource and path parameters.
pub fn request(event: &Value) -> Option<Request> {
    let method = event.get("httpMethod")?.as_str()?;
    if !method.eq_ignore_ascii_case("GET") {
        return None;
    }
    let params = event.get("pathParameters")?;
    let table = params.get("name")?.as_str()?.to_string();
    let id = params.get("id")?.as_str()?.to_string();
    let resource = event
        .get("resource")
        .and_then(Value::as_str)
        .or_else(|| event.get("path").and_then(Value::as_str))?;
    if resource.trim_end_matches('/').ends_with("/content") {
        Some(Request::Content { table, id })
    } else {
        Some(Request::Status { table, id })
    }
}

/// The caller, as the authorizer described it in `requestContext.authorizer`.
pub fn caller(event: &Value) -> Option<Claims> {
    let ctx = event.pointer("/requestContext/authorizer")?;
    let field = |k: &str| ctx.get(k).and_then(Value::as_str).map(String::from);
    let username = field("username").or_else(|| field("producer"))?;
    if username.is_empty() {
        return None;
    }
    // a JSON array: a Cognito group name may hold a comma; anything else is no group at all
    let groups = match field("groups") {
        None => Vec::new(),
        Some(g) => serde_json::from_str::<Vec<String>>(&g).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "the authorizer's groups are not a JSON array of strings");
            Vec::new()
        }),
    };
    Some(Claims {
        sub: field("sub")
            .or_else(|| field("principalId"))
            .unwrap_or_else(|| username.clone()),
        username,
        groups,
        token_use: String::new(),
        exp: 0,
        iss: String::new(),
        client_id: String::new(),
    })
}

fn answer(status: u16, headers: Value, body: String, base64: bool) -> Value {
    json!({
        "statusCode": status,
        "headers": headers,
        "body": body,
        "isBase64Encoded": base64,
    })
}

pub(crate) fn json_answer(status: u16, body: &Value) -> Value {
    answer(
        status,
        json!({"Content-Type": "application/json", "Cache-Control": "no-store"}),
        body.to_string(),
        false,
    )
}

pub(crate) fn error_answer(e: &IngressError, request_id: &str) -> Value {
    let kind = e.kind();
    let message = if kind == ErrorKind::Internal {
        tracing::error!(error = %e, "request failed");
        format!("internal error (request {request_id}); the function's log has the details")
    } else {
        e.to_string()
    };
    let mut a = json_answer(kind.status().as_u16(), &error_body(e.code(), &message));
    if kind == ErrorKind::Unavailable {
        a["headers"]["Retry-After"] = json!("1");
    }
    a
}

impl DocumentsFunction {
    pub fn new(documents: Documents) -> Self {
        Self {
            documents,
            uploads: None,
        }
    }

    /// The function serving the multipart upload routes too.
    pub fn with_uploads(mut self, uploads: UploadsFunction) -> Self {
        self.uploads = Some(uploads);
        self
    }

    /// Answers one API Gateway proxy event (never an `Err`: every failure is an HTTP answer).
    pub async fn handle(&self, event: Value) -> Value {
        let request_id = event
            .pointer("/requestContext/requestId")
            .and_then(Value::as_str)
            .unwrap_or("-")
            .to_string();
        if let (Some(uploads), Some(req)) = (&self.uploads, super::uploads::request(&event)) {
            return uploads.handle(req, &event).await;
        }
        let Some(req) = request(&event) else {
            return json_answer(
                404,
                &error_body(
                    "not_found",
                    "no such route: this function serves GET /table/{name}/object/{id}[/content]",
                ),
            );
        };
        let Some(claims) = caller(&event) else {
            // the method must sit behind the tarn authorizer, which names the caller
            tracing::error!(
                "no caller in requestContext.authorizer: is the route missing the authorizer?"
            );
            return json_answer(
                401,
                &error_body(
                    "missing_token",
                    "no verified caller: the route must use the tarn authorizer",
                ),
            );
        };
        match req {
            Request::Status { table, id } => {
                match self.documents.status(&claims, &table, &id).await {
                    Ok(data) => json_answer(200, &json!({"success": true, "data": data})),
                    Err(e) => error_answer(&e, &request_id),
                }
            }
            Request::Content { table, id } => {
                match self.documents.content(&claims, &table, &id).await {
                    Ok(Content::Redirect(url)) => answer(
                        307,
                        json!({"Location": url, "Cache-Control": "no-store"}),
                        String::new(),
                        false,
                    ),
                    // a lake store without presigned URLs: the bytes (API Gateway needs the
                    // method's binary media types to pass them on)
                    Ok(Content::Inline {
                        content_type,
                        bytes,
                    }) => answer(
                        200,
                        json!({
                            "Content-Type": content_type,
                            "Cache-Control": "no-store",
                            "X-Content-Type-Options": "nosniff",
                        }),
                        base64::engine::general_purpose::STANDARD.encode(bytes),
                        true,
                    ),
                    Err(e) => error_answer(&e, &request_id),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(resource: &str, name: &str, id: &str, ctx: Value) -> Value {
        json!({
            "resource": resource,
            "path": resource.replace("{name}", name).replace("{id}", id),
            "httpMethod": "GET",
            "pathParameters": {"name": name, "id": id},
            "requestContext": {"requestId": "r-1", "authorizer": ctx},
        })
    }

    #[test]
    fn routes_from_the_resource() {
        let ctx = json!({});
        assert_eq!(
            request(&event(
                "/table/{name}/object/{id}",
                "events",
                "x",
                ctx.clone()
            )),
            Some(Request::Status {
                table: "events".into(),
                id: "x".into()
            })
        );
        assert_eq!(
            request(&event(
                "/table/{name}/object/{id}/content",
                "photos",
                "y",
                ctx.clone()
            )),
            Some(Request::Content {
                table: "photos".into(),
                id: "y".into()
            })
        );
        let mut post = event("/table/{name}/object/{id}", "events", "x", ctx);
        post["httpMethod"] = json!("POST");
        assert_eq!(request(&post), None);
        assert_eq!(request(&json!({"httpMethod": "GET"})), None);
    }

    #[test]
    fn the_caller_comes_from_the_authorizer_context() {
        let e = event(
            "/table/{name}/object/{id}",
            "events",
            "x",
            json!({"principalId": "s-1", "producer": "alice", "username": "alice", "sub": "s-1", "groups": r#"["tarn-readers-events","tarn-writers"]"#}),
        );
        let c = caller(&e).unwrap();
        assert_eq!(c.username, "alice");
        assert_eq!(c.sub, "s-1");
        assert_eq!(c.groups, vec!["tarn-readers-events", "tarn-writers"]);
        assert!(c.can_read("events") && !c.can_read("photos"));
        // a comma is part of a group's name, not a separator
        let e = event(
            "/r",
            "events",
            "x",
            json!({"username": "eve", "groups": r#"["x,tarn-readers-events"]"#}),
        );
        let c = caller(&e).unwrap();
        assert_eq!(c.groups, vec!["x,tarn-readers-events"]);
        assert!(!c.can_read("events"));
        // no groups at all, and groups that are not a JSON array (the old comma list): none
        for groups in ["[]", "", "tarn-readers-events,tarn-writers"] {
            let e = event(
                "/r",
                "events",
                "x",
                json!({"username": "bob", "groups": groups}),
            );
            assert!(caller(&e).unwrap().groups.is_empty(), "{groups}");
        }
        let e = event("/r", "events", "x", json!({"username": "bob"}));
        assert!(caller(&e).unwrap().groups.is_empty());
        // no authorizer: nobody
        assert!(caller(&event("/r", "events", "x", json!({}))).is_none());
        assert!(caller(&event("/r", "events", "x", json!({"username": ""}))).is_none());
    }
}
