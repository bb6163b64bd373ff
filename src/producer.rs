//! A producer's side of the ingress API (docs/contract.md, Ingress HTTP API): one document sent
//! as one `POST /table/{t}/object`, or as a multipart upload (start, parts, complete), every
//! request retried on a transient failure (a connection error, 408, 429, 5xx) with the
//! document's `Idempotency-Key`, so a retry never lands a second document.

use anyhow::Context;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// What the ingress answered for one document.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Posted {
    pub status: u16,
    /// the document id on success
    pub id: Option<String>,
    /// the key's document had landed already (a retry after a lost answer, or a rerun)
    pub replayed: bool,
    /// the error code and message otherwise
    pub code: Option<String>,
    pub message: Option<String>,
}

/// An answer's status and JSON body.
struct Answer {
    status: u16,
    body: Value,
}

impl Answer {
    fn posted(&self) -> Posted {
        let s = |p: &str| {
            self.body
                .pointer(p)
                .and_then(Value::as_str)
                .map(String::from)
        };
        Posted {
            status: self.status,
            id: s("/data/id"),
            replayed: self.body.pointer("/data/replayed") == Some(&Value::Bool(true)),
            code: s("/error/code"),
            message: s("/error/message"),
        }
    }
}

/// The ingress of one producer: where, as whom, how persistently.
#[derive(Debug, Clone)]
pub struct Producer {
    pub client: reqwest::Client,
    /// the ingress's base URL, without a trailing slash
    pub base: String,
    pub token: String,
    /// attempts per request (1: no retry)
    pub attempts: u32,
}

/// Whether a status is worth a retry with the same key.
fn transient(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// The wait before retry `attempt` (1, 2, ...): 200 ms doubling up to 5 s, or what
/// `Retry-After` asks (up to 30 s).
fn backoff(attempt: u32, retry_after: Option<Duration>) -> Duration {
    retry_after
        .map(|d| d.min(Duration::from_secs(30)))
        .unwrap_or_else(|| Duration::from_millis(200 << attempt.min(5)).min(Duration::from_secs(5)))
}

impl Producer {
    /// Sends the request `build` makes until it answers something other than a transient
    /// failure, or the attempts are spent (the last answer, or the last connection error).
    async fn send(
        &self,
        what: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> anyhow::Result<Answer> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = attempt >= self.attempts;
            match build().send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let retry_after = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let etag = resp
                        .headers()
                        .get("etag")
                        .and_then(|v| v.to_str().ok())
                        .map(String::from);
                    let text = resp.text().await.unwrap_or_default();
                    let mut body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    // a presigned S3 part answers an empty body and its ETag
                    if body.is_null() && (200..300).contains(&status) {
                        body = serde_json::json!({"data": {"etag": etag}});
                    }
                    if transient(status) && !last {
                        tokio::time::sleep(backoff(attempt, retry_after)).await;
                        continue;
                    }
                    return Ok(Answer { status, body });
                }
                Err(e) if !last => {
                    tracing::debug!(error = %e, what, attempt, "retrying");
                    tokio::time::sleep(backoff(attempt, None)).await;
                }
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!(
                            "{what}: sending to {} failed after {attempt} attempts (is the ingress running? pass --url)",
                            self.base
                        )
                    });
                }
            }
        }
    }

    fn authorized(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        req.header("authorization", format!("Bearer {}", self.token))
    }

    /// `POST /table/{table}/object` with `body`, under `key` when given.
    pub async fn post(
        &self,
        table: &str,
        content_type: &str,
        key: Option<&str>,
        body: bytes::Bytes,
    ) -> anyhow::Result<Posted> {
        let url = format!("{}/table/{table}/object", self.base);
        let a = self
            .send("POST", || {
                let mut req = self
                    .authorized(self.client.post(&url))
                    .header("content-type", content_type)
                    .body(body.clone());
                if let Some(k) = key {
                    req = req.header("idempotency-key", k);
                }
                req
            })
            .await?;
        Ok(a.posted())
    }

    /// Sends the file at `path` (`size` bytes) as a multipart upload under `key`: start, every
    /// part read from the file and PUT (a presigned URL as is, a path of the ingress with the
    /// token), complete. `sent` is called with each part's size once it is stored.
    pub async fn upload(
        &self,
        table: &str,
        content_type: &str,
        key: &str,
        path: &Path,
        size: u64,
        sent: &(dyn Fn(u64) + Sync),
    ) -> anyhow::Result<Posted> {
        let url = format!("{}/table/{table}/uploads", self.base);
        let start = self
            .send("start an upload", || {
                self.authorized(self.client.post(&url))
                    .header("upload-content-type", content_type)
                    .header("upload-length", size.to_string())
                    .header("idempotency-key", key)
            })
            .await?;
        let started = start.posted();
        if started.id.is_none() || started.replayed {
            return Ok(started);
        }
        let data = &start.body["data"];
        let part_size = data["part_size"]
            .as_u64()
            .context("no part_size in the start's answer")?;
        let parts = data["parts"]
            .as_array()
            .context("no parts in the start's answer")?;
        let mut file = tokio::fs::File::open(path)
            .await
            .with_context(|| format!("opening {}", path.display()))?;
        for part in parts {
            let number = part["number"].as_u64().context("a part without a number")?;
            let target = part["url"].as_str().context("a part without a url")?;
            let offset = (number - 1) * part_size;
            let len = part_size.min(size.saturating_sub(offset));
            file.seek(std::io::SeekFrom::Start(offset)).await?;
            let mut buf = vec![0; len as usize];
            file.read_exact(&mut buf)
                .await
                .with_context(|| format!("reading part {number} of {}", path.display()))?;
            let buf = bytes::Bytes::from(buf);
            // a path is the ingress's own part route (with the token); a URL is presigned
            let own = target.starts_with('/');
            let target = if own {
                format!("{}{target}", self.base)
            } else {
                target.to_string()
            };
            let a = self
                .send("send a part", || {
                    let req = self.client.put(&target).body(buf.clone());
                    if own { self.authorized(req) } else { req }
                })
                .await?;
            if !(200..300).contains(&a.status) {
                let mut p = a.posted();
                p.id = None;
                if p.code.is_none() {
                    p.code = Some("part_refused".into());
                    p.message = Some(format!("part {number} answered {}", a.status));
                }
                return Ok(p);
            }
            sent(len);
        }
        let done_url = format!(
            "{url}/{}/complete",
            started.id.as_deref().unwrap_or_default()
        );
        let done = self
            .send("complete an upload", || {
                self.authorized(self.client.post(&done_url))
            })
            .await?;
        Ok(done.posted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_for_transient_answers_with_growing_waits() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(transient(s), "{s}");
        }
        for s in [200, 400, 401, 403, 404, 409, 413, 415] {
            assert!(!transient(s), "{s}");
        }
        assert_eq!(backoff(1, None), Duration::from_millis(400));
        assert_eq!(backoff(9, None), Duration::from_secs(5));
        assert_eq!(
            backoff(1, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(
            backoff(1, Some(Duration::from_secs(600))),
            Duration::from_secs(30)
        );
    }
}
