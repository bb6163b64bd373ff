//! The hostile (and a few good) upload heads of docs/contract.md's `POST /table/{name}/object`,
//! with the contract's answer to each: one table, run over real HTTP against the local ingress
//! (ingress/tests/upload.rs) and as real API Gateway REQUEST-authorizer events against the AWS
//! authorizer (aws/tests/edge.rs includes this file).
#![allow(dead_code)]

use serde_json::json;
use std::path::Path;
use tarn_catalog::TableSpec;

/// JSON table (json, ndjson), 1000 bytes at most.
pub const JSON_TABLE: &str = "events";
/// Binary table (png, jpeg), 2000 bytes at most.
pub const BINARY_TABLE: &str = "photos";

/// The tables the cases are written for.
pub fn specs() -> Vec<TableSpec> {
    vec![
        TableSpec::from_value(
            Path::new("schemas/events.json"),
            json!({
                "title": "events", "type": "object",
                "properties": {"kind": {"type": "string"}, "n": {"type": "integer"}},
                "x-tarn": {"accept": ["application/json", "application/x-ndjson"], "max_bytes": 1000}
            }),
        )
        .unwrap(),
        TableSpec::from_value(
            Path::new("schemas/photos.json"),
            json!({"title": "photos", "x-tarn": {"accept": ["image/png", "image/jpeg"], "max_bytes": 2000}}),
        )
        .unwrap(),
    ]
}

/// The `Authorization` a case sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    None,
    /// not a JWT
    Garbage,
    /// a writer's token, expired an hour ago
    Expired,
    /// a valid token of a user in these groups
    Groups(&'static [&'static str]),
}

pub const WRITER: Token = Token::Groups(&["tarn-writers"]);

/// One upload head and the contract's answer.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    pub what: &'static str,
    /// the `{name}` segment as sent on the wire (percent-encoded)
    pub wire: &'static str,
    /// the same segment decoded (API Gateway's `pathParameters.name`)
    pub name: &'static str,
    pub token: Token,
    pub content_type: Option<&'static str>,
    /// the declared `Content-Length`; the local run sends a body of this length when it is at
    /// most 64 KiB
    pub content_length: u64,
    /// 200 for an upload that lands
    pub status: u16,
    pub code: &'static str,
}

const fn case(
    what: &'static str,
    wire: &'static str,
    name: &'static str,
    token: Token,
    content_type: Option<&'static str>,
    content_length: u64,
    status: u16,
    code: &'static str,
) -> Case {
    Case {
        what,
        wire,
        name,
        token,
        content_type,
        content_length,
        status,
        code,
    }
}

const JSON: Option<&str> = Some("application/json");
const LONG_64: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const LONG_63: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/// Every case, in the contract's order of checks.
#[rustfmt::skip]
pub const CASES: &[Case] = &[
    // the table name, before anything else (no token needed to be told)
    case("upper case", "Upper", "Upper", Token::None, JSON, 2, 400, "invalid_table_name"),
    case("a dash", "a-b", "a-b", WRITER, JSON, 2, 400, "invalid_table_name"),
    case("a leading digit", "1abc", "1abc", WRITER, JSON, 2, 400, "invalid_table_name"),
    case("a leading underscore", "_a", "_a", WRITER, JSON, 2, 400, "invalid_table_name"),
    case("a space", "a%20b", "a b", WRITER, JSON, 2, 400, "invalid_table_name"),
    case("dot dot, encoded", "%2e%2e", "..", Token::None, JSON, 2, 400, "invalid_table_name"),
    case("non-ascii", "%C3%A9", "é", WRITER, JSON, 2, 400, "invalid_table_name"),
    case("64 characters", LONG_64, LONG_64, WRITER, JSON, 2, 400, "invalid_table_name"),
    // the token
    case("no token", JSON_TABLE, JSON_TABLE, Token::None, JSON, 2, 401, "missing_token"),
    case("not a jwt", JSON_TABLE, JSON_TABLE, Token::Garbage, JSON, 2, 401, "invalid_token"),
    case("expired", JSON_TABLE, JSON_TABLE, Token::Expired, JSON, 2, 401, "token_expired"),
    case("no token, unknown table", "nosuch", "nosuch", Token::None, JSON, 2, 401, "missing_token"),
    // the declared table
    case("unknown table", "nosuch", "nosuch", WRITER, JSON, 2, 404, "unknown_table"),
    case("63 characters, unknown", LONG_63, LONG_63, WRITER, JSON, 2, 404, "unknown_table"),
    case("unknown table before content type", "nosuch", "nosuch", WRITER, Some("text/plain"), 2, 404, "unknown_table"),
    // the groups
    case("another table's writer", JSON_TABLE, JSON_TABLE, Token::Groups(&["tarn-writers-photos"]), JSON, 2, 403, "forbidden"),
    case("a reader", JSON_TABLE, JSON_TABLE, Token::Groups(&["tarn-readers"]), JSON, 2, 403, "forbidden"),
    case("a prefix of the group", JSON_TABLE, JSON_TABLE, Token::Groups(&["tarn-writers-events2"]), JSON, 2, 403, "forbidden"),
    case("no groups", JSON_TABLE, JSON_TABLE, Token::Groups(&[]), JSON, 2, 403, "forbidden"),
    case("a comma is no separator", JSON_TABLE, JSON_TABLE, Token::Groups(&["x,tarn-writers"]), JSON, 2, 403, "forbidden"),
    case("groups before content type", JSON_TABLE, JSON_TABLE, Token::Groups(&["tarn-readers"]), Some("text/plain"), 2, 403, "forbidden"),
    // the content type
    case("no content type", JSON_TABLE, JSON_TABLE, WRITER, None, 2, 400, "missing_content_type"),
    case("only parameters", JSON_TABLE, JSON_TABLE, WRITER, Some("; charset=utf-8"), 2, 400, "missing_content_type"),
    case("non-ascii content type", JSON_TABLE, JSON_TABLE, WRITER, Some("applicatión/json"), 2, 400, "bad_body"),
    case("text on a json table", JSON_TABLE, JSON_TABLE, WRITER, Some("text/plain"), 2, 415, "unsupported_content_type"),
    case("an image on a json table", JSON_TABLE, JSON_TABLE, WRITER, Some("image/png"), 2, 415, "unsupported_content_type"),
    case("json on a binary table", BINARY_TABLE, BINARY_TABLE, WRITER, JSON, 2, 415, "unsupported_content_type"),
    case("a near miss", BINARY_TABLE, BINARY_TABLE, WRITER, Some("image/pngx"), 2, 415, "unsupported_content_type"),
    case("content type before size", JSON_TABLE, JSON_TABLE, WRITER, Some("text/plain"), 5000, 415, "unsupported_content_type"),
    // the declared length
    case("one byte over", JSON_TABLE, JSON_TABLE, WRITER, JSON, 1001, 413, "too_large"),
    case("far over", JSON_TABLE, JSON_TABLE, WRITER, JSON, 5_000_000, 413, "too_large"),
    case("over a binary table's limit", BINARY_TABLE, BINARY_TABLE, WRITER, Some("image/png"), 2001, 413, "too_large"),
    case("empty", JSON_TABLE, JSON_TABLE, WRITER, JSON, 0, 400, "empty_body"),
    // what lands
    case("exactly max_bytes", JSON_TABLE, JSON_TABLE, WRITER, JSON, 1000, 200, ""),
    case("a charset", JSON_TABLE, JSON_TABLE, WRITER, Some("application/json; charset=utf-8"), 2, 200, ""),
    case("case and a charset", JSON_TABLE, JSON_TABLE, WRITER, Some("Application/JSON; charset=UTF-8"), 2, 200, ""),
    case("ndjson", JSON_TABLE, JSON_TABLE, WRITER, Some("application/x-ndjson"), 2, 200, ""),
    case("the table's own writer", JSON_TABLE, JSON_TABLE, Token::Groups(&["tarn-writers-events"]), JSON, 2, 200, ""),
    case("a parameter on an image", BINARY_TABLE, BINARY_TABLE, WRITER, Some("image/jpeg; q=1"), 3, 200, ""),
];

/// The media type a landed case's object carries (`content-type` metadata).
pub fn landed_type(c: &Case) -> String {
    c.content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap()
        .trim()
        .to_ascii_lowercase()
}
