//! Whether an upload may land, decided from what is known before its body: the table name of
//! the path, the outcome of the token check, and the `Content-Type`, `Content-Length` and
//! `Idempotency-Key` headers. One function, [`admit_upload`], gives the contract's answer (docs/contract.md,
//! `POST /table/{name}/object`) in its order of checks; the local server calls it before
//! reading a body, and the AWS authorizer calls it so that API Gateway answers the same before
//! anything lands.

use crate::auth::Claims;
use crate::error::{IngressError, Result};
use crate::idempotency::{document_id, parse_key};
use std::collections::BTreeMap;
use tarn_catalog::TableSpec;
use tarn_catalog::schemas::{MAX_DOCUMENT_BYTES, is_valid_table_name};

/// An upload's request head, as the edge sees it.
#[derive(Debug, Clone, Copy, Default)]
pub struct UploadHead<'a> {
    /// the `{name}` segment of the path, percent-decoded
    pub table: &'a str,
    /// the `Content-Type` header's raw value
    pub content_type: Option<&'a [u8]>,
    /// the `Content-Length` header's raw value, when the request has one
    pub content_length: Option<&'a [u8]>,
    /// every raw value of the `Idempotency-Key` header (none: an upload without a key)
    pub idempotency_keys: &'a [&'a [u8]],
}

/// An upload that passed every check a head allows.
#[derive(Debug, Clone)]
pub struct Admitted<'t> {
    pub spec: &'t TableSpec,
    pub caller: Claims,
    /// the declared media type: lowercase, without parameters (`; charset=utf-8`)
    pub content_type: String,
    /// the declared length, at most the table's `max_bytes`
    pub content_length: Option<u64>,
    /// a keyed upload's document id ([`document_id`] of the caller, the table and the key):
    /// the same for every repeat of the key
    pub id: Option<String>,
}

/// The contract's answer to an upload's head, checked in the contract's order: the table name
/// (400 `invalid_table_name`), the token (`caller`: 401, or 503 when keys are unavailable), the
/// declared table (404 `unknown_table`), the caller's groups (403 `forbidden`), the content type
/// (400 `bad_body` when not ASCII, 400 `missing_content_type`, 415
/// `unsupported_content_type`), the declared length (400 `bad_body` when not a number, 413
/// `too_large` over `max_bytes`, 400 `empty_body` when 0), the idempotency key (400
/// `invalid_idempotency_key` when it breaks [`parse_key`]'s rules or is sent more than once).
/// What only the body can tell (its real
/// length when not declared, whether it can be read) is left to the reader of the body.
///
/// One request carries at most [`MAX_DOCUMENT_BYTES`] (API Gateway's payload limit): a longer
/// declared length is 413 `too_large` saying to send a multipart upload, whatever the table's
/// `max_bytes`.
pub fn admit_upload<'t>(
    tables: &'t BTreeMap<String, TableSpec>,
    head: &UploadHead<'_>,
    caller: Result<Claims>,
) -> Result<Admitted<'t>> {
    admit(tables, head, caller, Carrier::OneRequest)
}

/// The start (and again the completion) of a multipart upload (docs/contract.md, Multipart
/// uploads): [`admit_upload`]'s checks in its order, with the `Upload-Content-Type` and
/// `Upload-Length` headers in place of `Content-Type` and `Content-Length`; the length is
/// required (400 `bad_upload`) and goes up to the table's `max_bytes`.
pub fn admit_multipart_upload<'t>(
    tables: &'t BTreeMap<String, TableSpec>,
    head: &UploadHead<'_>,
    caller: Result<Claims>,
) -> Result<Admitted<'t>> {
    admit(tables, head, caller, Carrier::Multipart)
}

/// How the document travels.
#[derive(Clone, Copy, PartialEq)]
enum Carrier {
    /// in the body of one request
    OneRequest,
    /// in the parts of a multipart upload
    Multipart,
}

fn admit<'t>(
    tables: &'t BTreeMap<String, TableSpec>,
    head: &UploadHead<'_>,
    caller: Result<Claims>,
    carrier: Carrier,
) -> Result<Admitted<'t>> {
    let name = head.table;
    if !is_valid_table_name(name) {
        return Err(IngressError::InvalidTableName);
    }
    let caller = caller?;
    let spec = tables.get(name).ok_or_else(|| IngressError::UnknownTable {
        table: name.to_string(),
    })?;
    if !caller.can_write(name) {
        return Err(IngressError::Forbidden(format!(
            "user {} may not write table {name}: needs group tarn-writers or tarn-writers-{name}",
            caller.username
        )));
    }
    let content_type = media_type(head.content_type)?.ok_or(IngressError::MissingContentType)?;
    if !spec.accepts(&content_type) {
        return Err(IngressError::UnsupportedContentType {
            table: name.to_string(),
            content_type,
            accepted: spec.accept.join(", "),
        });
    }
    let content_length = match head.content_length {
        None => None,
        Some(v) => Some(
            std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| IngressError::BadBody("content-length is not a number".into()))?,
        ),
    };
    match content_length {
        Some(n) if n > spec.max_bytes => {
            return Err(IngressError::TooLarge {
                table: name.to_string(),
                max_bytes: spec.max_bytes,
            });
        }
        Some(n) if carrier == Carrier::OneRequest && n > MAX_DOCUMENT_BYTES => {
            return Err(IngressError::TooLargeForOneRequest {
                table: name.to_string(),
                limit: MAX_DOCUMENT_BYTES,
                max_bytes: spec.max_bytes,
            });
        }
        Some(0) => return Err(IngressError::EmptyBody),
        None if carrier == Carrier::Multipart => {
            return Err(IngressError::BadUpload(
                "an upload-length header is required: the document's size in bytes".into(),
            ));
        }
        _ => {}
    }
    let id = match head.idempotency_keys {
        [] => None,
        [raw] => Some(document_id(&caller.username, name, parse_key(raw)?)),
        _ => return Err(IngressError::InvalidIdempotencyKey),
    };
    Ok(Admitted {
        spec,
        caller,
        content_type,
        content_length,
        id,
    })
}

/// The media type of a `Content-Type` value, lowercase, without parameters (`; charset=utf-8`).
/// `None` when the header is missing or names no type; 400 `bad_body` when it is not ASCII.
pub fn media_type(value: Option<&[u8]>) -> Result<Option<String>> {
    let Some(v) = value else {
        return Ok(None);
    };
    let v = std::str::from_utf8(v)
        .ok()
        .filter(|s| s.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)))
        .ok_or_else(|| IngressError::BadBody("content-type is not ascii".into()))?;
    let media = v
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    Ok(Some(media).filter(|m| !m.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::state::table_map;
    use serde_json::json;
    use std::path::Path;

    fn tables() -> BTreeMap<String, TableSpec> {
        table_map([TableSpec::from_value(
            Path::new("schemas/events.json"),
            json!({"title": "events", "type": "object", "properties": {"n": {"type": "integer"}},
                   "x-tarn": {"accept": ["application/json"], "max_bytes": 10}}),
        )
        .unwrap()])
    }

    fn writer() -> Claims {
        Claims {
            sub: "s".into(),
            username: "alice".into(),
            groups: vec!["tarn-writers".into()],
            token_use: "id".into(),
            exp: 0,
            iss: String::new(),
            client_id: String::new(),
        }
    }

    fn code(
        table: &str,
        caller: Result<Claims>,
        ct: Option<&str>,
        len: Option<&str>,
    ) -> &'static str {
        let t = tables();
        let head = UploadHead {
            table,
            content_type: ct.map(str::as_bytes),
            content_length: len.map(str::as_bytes),
            idempotency_keys: &[],
        };
        match admit_upload(&t, &head, caller) {
            Ok(_) => "ok",
            Err(e) => e.code(),
        }
    }

    #[test]
    fn media_types_drop_parameters_and_case() {
        assert_eq!(media_type(None).unwrap(), None);
        for (v, want) in [
            ("application/json", Some("application/json")),
            ("Application/JSON; charset=utf-8", Some("application/json")),
            (" image/png ;x=y", Some("image/png")),
            ("", None),
            ("; charset=utf-8", None),
        ] {
            assert_eq!(
                media_type(Some(v.as_bytes())).unwrap().as_deref(),
                want,
                "{v}"
            );
        }
        let e = media_type(Some("applicatión/json".as_bytes())).unwrap_err();
        assert_eq!(e.code(), "bad_body");
        assert_eq!(media_type(Some(&[0xff])).unwrap_err().code(), "bad_body");
    }

    #[test]
    fn checks_run_in_the_contracts_order() {
        let ct = Some("application/json");
        let missing = || Err(crate::auth::AuthError::Missing.into());
        // the name before the token, the token before the table, the table before groups
        assert_eq!(code("Bad", missing(), ct, None), "invalid_table_name");
        assert_eq!(code("nosuch", missing(), ct, None), "missing_token");
        assert_eq!(code("nosuch", Ok(writer()), ct, None), "unknown_table");
        let mut reader = writer();
        reader.groups = vec!["tarn-readers".into()];
        assert_eq!(
            code("events", Ok(reader), Some("text/plain"), Some("99")),
            "forbidden"
        );
        // content type before length
        assert_eq!(
            code("events", Ok(writer()), Some("text/plain"), Some("99")),
            "unsupported_content_type"
        );
        assert_eq!(
            code("events", Ok(writer()), None, Some("99")),
            "missing_content_type"
        );
        assert_eq!(code("events", Ok(writer()), ct, Some("11")), "too_large");
        assert_eq!(code("events", Ok(writer()), ct, Some("x")), "bad_body");
        assert_eq!(code("events", Ok(writer()), ct, Some("0")), "empty_body");
        assert_eq!(code("events", Ok(writer()), ct, Some("10")), "ok");
        assert_eq!(code("events", Ok(writer()), ct, None), "ok");
        let t = tables();
        let a = admit_upload(
            &t,
            &UploadHead {
                table: "events",
                content_type: Some(b"Application/JSON; charset=utf-8"),
                content_length: Some(b" 7 "),
                idempotency_keys: &[],
            },
            Ok(writer()),
        )
        .unwrap();
        assert_eq!(
            (
                a.content_type.as_str(),
                a.content_length,
                a.spec.name.as_str()
            ),
            ("application/json", Some(7), "events")
        );
        let e = admit_upload(
            &t,
            &UploadHead {
                table: "events",
                content_type: ct.map(str::as_bytes),
                content_length: Some(b"11"),
                idempotency_keys: &[b"k"],
            },
            Ok(writer()),
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TooLarge, "the length before the key");
    }

    #[test]
    fn a_key_gives_the_callers_deterministic_id() {
        let t = tables();
        let admit = |keys: &[&[u8]]| {
            let head = UploadHead {
                table: "events",
                content_type: Some(b"application/json"),
                content_length: Some(b"2"),
                idempotency_keys: keys,
            };
            admit_upload(&t, &head, Ok(writer()))
        };
        assert_eq!(admit(&[]).unwrap().id, None);
        assert_eq!(
            admit(&[b"k-1"]).unwrap().id.unwrap(),
            document_id("alice", "events", "k-1")
        );
        let bads: [&[&[u8]]; 3] = [&[b""], &[b"a\tb"], &[b"k-1", b"k-1"]];
        for bad in bads {
            let e = admit(bad).unwrap_err();
            assert_eq!(e.code(), "invalid_idempotency_key", "{bad:?}");
        }
    }
}
