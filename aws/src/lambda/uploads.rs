//! The multipart upload routes on AWS, behind API Gateway's Lambda proxy integration of the
//! documents function: `POST /table/{name}/uploads` (the answer's part URLs are presigned S3
//! `UploadPart` URLs: producers PUT the parts straight to the ingress bucket),
//! `POST /table/{name}/uploads/{id}/complete` and `DELETE /table/{name}/uploads/{id}`. The
//! protocol is [`Uploads`], the local server's: the same checks, ids, records and answers.
//!
//! The authorizer has verified the token and names the caller in `requestContext.authorizer`
//! ([`super::documents::caller`]); the table, groups, type and size checks run here.

use super::authorizer::header_values;
use super::documents::{caller, error_answer, json_answer};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use tarn_catalog::TableSpec;
use tarn_ingress::error::error_body;
use tarn_ingress::multipart::{CONTENT_TYPE_HEADER, LENGTH_HEADER};
use tarn_ingress::{UploadHead, Uploads, idempotency};

/// What an upload route asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Start { table: String },
    Complete { table: String, id: String },
    Abort { table: String, id: String },
}

/// The upload route of a REST API proxy event, from its method, resource and path parameters.
pub fn request(event: &Value) -> Option<Request> {
    let method = event.get("httpMethod")?.as_str()?.to_ascii_uppercase();
    let resource = event.get("resource")?.as_str()?;
    let param = |k: &str| {
        event
            .pointer(&format!("/pathParameters/{k}"))
            .and_then(Value::as_str)
            .map(String::from)
    };
    let table = param("name")?;
    match (method.as_str(), resource) {
        ("POST", "/table/{name}/uploads") => Some(Request::Start { table }),
        ("POST", "/table/{name}/uploads/{id}/complete") => Some(Request::Complete {
            table,
            id: param("id")?,
        }),
        ("DELETE", "/table/{name}/uploads/{id}") => Some(Request::Abort {
            table,
            id: param("id")?,
        }),
        _ => None,
    }
}

/// An answer with `Idempotency-Replayed: true` when its data says it is a replay.
fn answer(status: u16, body: &Value) -> Value {
    let mut a = json_answer(status, body);
    if body["data"]["replayed"] == json!(true) {
        a["headers"][idempotency::REPLAYED_HEADER] = json!("true");
    }
    a
}

/// The upload routes over [`Uploads`] and the declared tables.
#[derive(Debug, Clone)]
pub struct UploadsFunction {
    pub uploads: Uploads,
    pub tables: BTreeMap<String, TableSpec>,
}

impl UploadsFunction {
    /// Answers one API Gateway proxy event of an upload route ([`request`] gives `Some`).
    pub async fn handle(&self, req: Request, event: &Value) -> Value {
        let request_id = event
            .pointer("/requestContext/requestId")
            .and_then(Value::as_str)
            .unwrap_or("-");
        let Some(claims) = caller(event) else {
            return json_answer(
                401,
                &error_body(
                    "missing_token",
                    "no verified caller: the route must use the tarn authorizer",
                ),
            );
        };
        let result = match req {
            Request::Start { table } => {
                let keys = header_values(event, idempotency::HEADER);
                let keys: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
                let one = |name: &str| header_values(event, name).first().map(|v| v.as_bytes());
                let head = UploadHead {
                    table: &table,
                    content_type: one(CONTENT_TYPE_HEADER),
                    content_length: one(LENGTH_HEADER),
                    idempotency_keys: &keys,
                };
                self.uploads
                    .start_checked(&self.tables, &head, Ok(claims))
                    .await
                    .map(|s| s.answer())
            }
            Request::Complete { table, id } => self
                .uploads
                .complete_checked(&self.tables, &table, &id, claims)
                .await
                .map(|(done, _)| (200, done.answer())),
            Request::Abort { table, id } => self
                .uploads
                .abort_checked(&table, &id, &claims)
                .await
                .map(|()| {
                    (
                        200,
                        json!({"success": true, "data": {"id": id, "aborted": true}}),
                    )
                }),
        };
        match result {
            Ok((status, body)) => answer(status, &body),
            Err(e) => error_answer(&e, request_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_routes_from_the_resource() {
        let ev = |method: &str, resource: &str| {
            json!({"httpMethod": method, "resource": resource,
                   "pathParameters": {"name": "scans", "id": "u-1"}})
        };
        assert_eq!(
            request(&ev("POST", "/table/{name}/uploads")),
            Some(Request::Start {
                table: "scans".into()
            })
        );
        assert_eq!(
            request(&ev("post", "/table/{name}/uploads/{id}/complete")),
            Some(Request::Complete {
                table: "scans".into(),
                id: "u-1".into()
            })
        );
        assert_eq!(
            request(&ev("DELETE", "/table/{name}/uploads/{id}")),
            Some(Request::Abort {
                table: "scans".into(),
                id: "u-1".into()
            })
        );
        assert_eq!(request(&ev("GET", "/table/{name}/uploads/{id}")), None);
        assert_eq!(request(&ev("GET", "/table/{name}/object/{id}")), None);
    }
}
