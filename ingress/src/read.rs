//! `GET /table/{name}/object/{id}` and `GET /table/{name}/object/{id}/content` over HTTP: the
//! path, the token, then [`Documents`](crate::Documents) and its answer as a response.

use crate::checks::{authenticate, table_name};
use crate::documents::Content;
use crate::error::{IngressError, Result};
use crate::state::App;
use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The table name and the raw document id from the path.
fn params(
    p: std::result::Result<Path<(String, String)>, PathRejection>,
) -> Result<(String, String)> {
    let (name, id) = match p {
        Ok(Path(pair)) => pair,
        Err(PathRejection::FailedToDeserializePathParams(e)) if matches!(e.kind(), axum::extract::path::ErrorKind::InvalidUtf8InPathParam { key } if key == "id") =>
        {
            return Err(IngressError::NotFound("no such document".into()));
        }
        Err(_) => return Err(IngressError::InvalidTableName),
    };
    Ok((table_name(Ok(name))?, id))
}

pub(crate) async fn get_status(
    State(app): State<App>,
    path: std::result::Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Result<Json<Value>> {
    let (table, id) = params(path)?;
    let claims = authenticate(&app, &headers).await?;
    let data = app.documents.status(&claims, &table, &id).await?;
    Ok(Json(json!({"success": true, "data": data})))
}

pub(crate) async fn get_content(
    State(app): State<App>,
    path: std::result::Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response> {
    let (table, id) = params(path)?;
    let claims = authenticate(&app, &headers).await?;
    Ok(match app.documents.content(&claims, &table, &id).await? {
        Content::Redirect(url) => match HeaderValue::from_str(&url) {
            Ok(location) => (
                StatusCode::TEMPORARY_REDIRECT,
                [
                    (header::LOCATION, location),
                    (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                ],
            )
                .into_response(),
            Err(_) => {
                return Err(IngressError::Internal(format!(
                    "the content url of {id} is not a header value"
                )));
            }
        },
        Content::Inline {
            content_type,
            bytes,
        } => {
            let content_type = HeaderValue::from_str(&content_type)
                .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
            (
                [
                    (header::CONTENT_TYPE, content_type),
                    (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                    (
                        header::X_CONTENT_TYPE_OPTIONS,
                        HeaderValue::from_static("nosniff"),
                    ),
                ],
                Body::from(bytes),
            )
                .into_response()
        }
    })
}
