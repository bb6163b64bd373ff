//! Multipart uploads of large documents (docs/contract.md, Multipart uploads), the same on both
//! backends: [`Uploads`] starts an upload (a multipart upload of the store, at the document's
//! own ingress key `id=<id>`, with the metadata of a landed document), stores parts (the local
//! server's part route; on AWS the producer PUTs to presigned S3 URLs instead), completes it
//! (the store assembles the parts: the document lands as a POSTed one would, under the same id
//! scheme, idempotency keys included) and aborts it. Each upload in progress has a record in the
//! state store, `uploads/<id>.json` ([`UploadRecord`]); an upload not completed within
//! [`UPLOAD_TTL`] of its start expires ([`Uploads::sweep`] aborts it, and S3's lifecycle rule
//! on AWS).
//!
//! Authorization, content type and size are checked by the caller at the start and again at
//! completion ([`crate::admit_multipart_upload`]); the real type is checked on the bytes by the
//! pipeline, as for every document.

use crate::admission::{UploadHead, admit_multipart_upload};
use crate::auth::Claims;
use crate::error::{IngressError, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tarn_catalog::TableSpec;
use tarn_core::document::{ingress_key, meta, status_key};
use tarn_core::store::{MAX_PARTS, MIN_PART_SIZE, Part};
use tarn_core::{Clock, Kms, Metadata, ObjectStore, parts};

/// The header of a start that names the document's media type.
pub const CONTENT_TYPE_HEADER: &str = "upload-content-type";
/// The header of a start that names the document's size in bytes.
pub const LENGTH_HEADER: &str = "upload-length";

/// How long an upload may take, from its start to its completion; its part URLs expire with it.
pub const UPLOAD_TTL: Duration = Duration::from_secs(24 * 3600);

/// The size of every part but the last, for documents up to 80 GB (10000 parts of it).
pub const PART_SIZE: u64 = 8 * 1024 * 1024;

/// The state store's prefix of upload records.
const RECORDS: &str = "uploads/";

/// The state store key of upload `id`'s record.
pub fn record_key(id: &str) -> String {
    format!("{RECORDS}{id}.json")
}

/// An upload in progress, as the state store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadRecord {
    /// the document's id (its ingress key is `id=<id>`)
    pub id: String,
    pub table: String,
    pub producer: String,
    /// the declared media type
    pub content_type: String,
    /// the declared size in bytes
    pub size: u64,
    /// the size of every part but the last
    pub part_size: u64,
    /// the store's multipart upload id
    pub upload_id: String,
    /// the landed object's `encoding` ([`tarn_core::parts`])
    pub encoding: String,
    pub started_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl UploadRecord {
    /// How many parts the document is sent in.
    pub fn parts(&self) -> u32 {
        self.size.div_ceil(self.part_size).max(1) as u32
    }

    /// The size of part `number`, or 400 `bad_upload` when the document has no such part.
    pub fn part_len(&self, number: u32) -> Result<u64> {
        let count = self.parts();
        if number == 0 || number > count {
            return Err(IngressError::BadUpload(format!(
                "upload {} has parts 1 to {count}: no part {number}",
                self.id
            )));
        }
        Ok(if number < count {
            self.part_size
        } else {
            self.size - self.part_size * u64::from(count - 1)
        })
    }
}

/// The part size for a document of `size` bytes: [`PART_SIZE`], or more (whole MiB) when that
/// would take more than [`MAX_PARTS`] parts.
pub fn part_size_for(size: u64) -> u64 {
    let mib = 1024 * 1024;
    PART_SIZE
        .max(size.div_ceil(u64::from(MAX_PARTS)).div_ceil(mib) * mib)
        .max(MIN_PART_SIZE)
}

/// Where the producer sends part `number`: a presigned URL, or the local server's route.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartTarget {
    pub number: u32,
    /// absolute (a presigned URL: send no token) or a path of this server (send the token)
    pub url: String,
}

/// What a start gives.
#[derive(Debug)]
pub enum Started {
    /// the key's document already landed: nothing to send
    Replayed { id: String },
    /// an upload to send parts to; `resumed` when a start with the same key had begun it
    Upload {
        record: UploadRecord,
        parts: Vec<PartTarget>,
        resumed: bool,
    },
}

/// What a completion gives.
#[derive(Debug, PartialEq)]
pub struct Completed {
    pub id: String,
    /// the id's document had landed already; nothing new did
    pub replayed: bool,
}

/// The multipart upload protocol over the stores.
#[derive(Debug, Clone)]
pub struct Uploads {
    /// where documents land
    pub ingress: Arc<dyn ObjectStore>,
    /// where upload records and status records live
    pub state: Arc<dyn ObjectStore>,
    pub kms: Arc<dyn Kms>,
    pub clock: Arc<dyn Clock>,
}

impl Started {
    /// The HTTP answer's status and body (docs/contract.md, Multipart uploads); a replay's
    /// answer also carries `Idempotency-Replayed: true`.
    pub fn answer(&self) -> (u16, Value) {
        match self {
            Started::Replayed { id } => (
                200,
                json!({"success": true, "data": {"id": id, "replayed": true}}),
            ),
            Started::Upload {
                record,
                parts,
                resumed,
            } => (
                if *resumed { 200 } else { 201 },
                json!({"success": true, "data": {
                    "id": record.id,
                    "content_type": record.content_type,
                    "size": record.size,
                    "part_size": record.part_size,
                    "parts": parts,
                    "expires_at": record.expires_at.to_rfc3339_opts(SecondsFormat::Secs, true),
                    "resumed": resumed,
                }}),
            ),
        }
    }
}

impl Completed {
    /// The HTTP answer's body (200; a replay's answer also carries `Idempotency-Replayed: true`).
    pub fn answer(&self) -> Value {
        if self.replayed {
            json!({"success": true, "data": {"id": self.id, "replayed": true}})
        } else {
            json!({"success": true, "data": {"id": self.id}})
        }
    }
}

impl Uploads {
    /// `POST /table/{name}/uploads`: [`admit_multipart_upload`] on the start's head (its
    /// `Upload-Content-Type` and `Upload-Length` in place of `Content-Type` and
    /// `Content-Length`), then [`Self::start`].
    pub async fn start_checked(
        &self,
        tables: &BTreeMap<String, TableSpec>,
        head: &UploadHead<'_>,
        caller: Result<Claims>,
    ) -> Result<Started> {
        let a = admit_multipart_upload(tables, head, caller)?;
        let size = a
            .content_length
            .expect("a multipart admission has a length");
        self.start(
            &a.spec.name,
            &a.caller.username,
            &a.content_type,
            size,
            a.id,
        )
        .await
    }

    /// `POST /table/{name}/uploads/{id}/complete`: the caller's own upload, the start's checks
    /// again on what it declared (the table or the caller's groups may have changed since), then
    /// [`Self::complete`]. A completion repeated after one that landed the document (its answer
    /// lost) finds no upload any more, but the caller's document: it answers the replay. The
    /// record, when there was one (for the log).
    pub async fn complete_checked(
        &self,
        tables: &BTreeMap<String, TableSpec>,
        table: &str,
        id: &str,
        caller: Claims,
    ) -> Result<(Completed, Option<UploadRecord>)> {
        let record = match self.own_record(table, id, &caller.username).await {
            Ok(r) => r,
            Err(e) => {
                if self.landed_by(table, id, &caller.username).await? {
                    let done = Completed {
                        id: id.to_string(),
                        replayed: true,
                    };
                    return Ok((done, None));
                }
                return Err(e);
            }
        };
        let size = record.size.to_string();
        let head = UploadHead {
            table,
            content_type: Some(record.content_type.as_bytes()),
            content_length: Some(size.as_bytes()),
            idempotency_keys: &[],
        };
        admit_multipart_upload(tables, &head, Ok(caller))?;
        let done = self.complete(&record).await?;
        Ok((done, Some(record)))
    }

    /// Whether document `id` of `table` landed from `producer`: its landed object's metadata, or
    /// once processed its status record, say so.
    async fn landed_by(&self, table: &str, id: &str, producer: &str) -> Result<bool> {
        if uuid::Uuid::parse_str(id).is_err() {
            return Ok(false);
        }
        if let Some(info) = self.ingress.head(&ingress_key(id)).await? {
            let m = &info.metadata;
            return Ok(m.get(meta::TABLE).map(String::as_str) == Some(table)
                && m.get(meta::PRODUCER).map(String::as_str) == Some(producer));
        }
        match self.state.get(&status_key(id)).await {
            Ok(got) => Ok(serde_json::from_slice::<tarn_core::DocumentRow>(&got.body)
                .is_ok_and(|row| row.table_name == table && row.producer == producer)),
            Err(e) if e.kind() == tarn_core::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// `DELETE /table/{name}/uploads/{id}`: the caller's own upload, aborted.
    pub async fn abort_checked(&self, table: &str, id: &str, caller: &Claims) -> Result<()> {
        let record = self.own_record(table, id, &caller.username).await?;
        self.abort(&record).await
    }

    /// Starts the upload of a document of `table` by `producer` (both checked by the caller),
    /// under `keyed` (an idempotency key's id) or a new id. A keyed start whose document already
    /// landed is [`Started::Replayed`]; one whose upload is in progress resumes it (the first
    /// start's type and size hold).
    pub async fn start(
        &self,
        table: &str,
        producer: &str,
        content_type: &str,
        size: u64,
        keyed: Option<String>,
    ) -> Result<Started> {
        let id = match &keyed {
            Some(id) => {
                if self.landed(id).await? {
                    return Ok(Started::Replayed { id: id.clone() });
                }
                if let Some(record) = self.record(table, id).await? {
                    let parts = self.targets(&record).await?;
                    return Ok(Started::Upload {
                        record,
                        parts,
                        resumed: true,
                    });
                }
                id.clone()
            }
            None => uuid::Uuid::new_v4().to_string(),
        };
        let now = self.clock.now();
        let encoding = if self.ingress.encrypts_at_rest() {
            parts::RAW
        } else {
            parts::SEALED_PARTS
        };
        let metadata = Metadata::from([
            (meta::TABLE.to_string(), table.to_string()),
            (
                meta::REQUEST_TIME.to_string(),
                now.to_rfc3339_opts(SecondsFormat::Millis, true),
            ),
            (meta::CONTENT_TYPE.to_string(), content_type.to_string()),
            (meta::PRODUCER.to_string(), producer.to_string()),
            (meta::ENCODING.to_string(), encoding.to_string()),
        ]);
        let key = ingress_key(&id);
        let upload_id = self.ingress.create_multipart(&key, metadata).await?;
        let record = UploadRecord {
            id: id.clone(),
            table: table.to_string(),
            producer: producer.to_string(),
            content_type: content_type.to_string(),
            size,
            part_size: part_size_for(size),
            upload_id,
            encoding: encoding.to_string(),
            started_at: now,
            expires_at: now + chrono::Duration::from_std(UPLOAD_TTL).expect("a day fits"),
        };
        let body = serde_json::to_vec(&record).expect("a record serializes");
        if !self
            .state
            .put_if_absent(&record_key(&id), body.into(), Metadata::new())
            .await?
        {
            // a concurrent start with the same key won: resume its upload
            self.ingress
                .abort_multipart(&key, &record.upload_id)
                .await?;
            let record = self.record(table, &id).await?.ok_or_else(|| {
                IngressError::Internal(format!("upload {id} vanished while starting"))
            })?;
            let parts = self.targets(&record).await?;
            return Ok(Started::Upload {
                record,
                parts,
                resumed: true,
            });
        }
        let parts = self.targets(&record).await?;
        Ok(Started::Upload {
            record,
            parts,
            resumed: false,
        })
    }

    /// Whether document `id` landed already (its object, or once processed its status record).
    async fn landed(&self, id: &str) -> Result<bool> {
        Ok(self.state.head(&status_key(id)).await?.is_some()
            || self.ingress.head(&ingress_key(id)).await?.is_some())
    }

    /// The record of upload `id` of `table`, `None` when there is none or it expired (an
    /// expired upload is aborted on the way).
    pub async fn record(&self, table: &str, id: &str) -> Result<Option<UploadRecord>> {
        if uuid::Uuid::parse_str(id).is_err() {
            return Ok(None);
        }
        let got = match self.state.get(&record_key(id)).await {
            Ok(got) => got,
            Err(e) if e.kind() == tarn_core::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let record: UploadRecord = serde_json::from_slice(&got.body)
            .map_err(|e| IngressError::Internal(format!("corrupt upload record {id}: {e}")))?;
        if record.table != table {
            return Ok(None);
        }
        if record.expires_at <= self.clock.now() {
            self.drop_upload(&record).await?;
            return Ok(None);
        }
        Ok(Some(record))
    }

    /// The record of upload `id` of `table` started by `producer`; 404 `unknown_upload` for
    /// anyone else, as for an upload that does not exist.
    pub async fn own_record(&self, table: &str, id: &str, producer: &str) -> Result<UploadRecord> {
        match self.record(table, id).await? {
            Some(r) if r.producer == producer => Ok(r),
            _ => Err(IngressError::UnknownUpload {
                table: table.to_string(),
                id: id.to_string(),
            }),
        }
    }

    /// Where each part goes: presigned URLs when the store gives them (until the upload
    /// expires), else this server's part route.
    async fn targets(&self, record: &UploadRecord) -> Result<Vec<PartTarget>> {
        let key = ingress_key(&record.id);
        let left = (record.expires_at - self.clock.now())
            .to_std()
            .unwrap_or(Duration::from_secs(1))
            .max(Duration::from_secs(1));
        let mut out = Vec::with_capacity(record.parts() as usize);
        for number in 1..=record.parts() {
            let url = match self
                .ingress
                .presign_upload_part(&key, &record.upload_id, number, left)
                .await?
            {
                Some(url) => url,
                None => format!(
                    "/table/{}/uploads/{}/parts/{number}",
                    record.table, record.id
                ),
            };
            out.push(PartTarget { number, url });
        }
        Ok(out)
    }

    /// Stores part `number` of the upload (the local server's part route): exactly the part's
    /// planned size (400 `bad_upload` otherwise), sealed first when the store does not encrypt
    /// by itself. Its ETag.
    pub async fn put_part(
        &self,
        record: &UploadRecord,
        number: u32,
        body: bytes::Bytes,
    ) -> Result<String> {
        let want = record.part_len(number)?;
        if body.len() as u64 != want {
            return Err(IngressError::BadUpload(format!(
                "part {number} of upload {} must have {want} bytes, not {}",
                record.id,
                body.len()
            )));
        }
        let body = if record.encoding == parts::SEALED_PARTS {
            parts::seal_part(
                self.kms.as_ref(),
                &record.table,
                &record.id,
                (number, record.parts()),
                &body,
            )
            .await?
            .into()
        } else {
            body
        };
        Ok(self
            .ingress
            .upload_part(&ingress_key(&record.id), &record.upload_id, number, body)
            .await?)
    }

    /// Completes the upload: every part stored (of its planned size, where the store keeps the
    /// bytes as sent), the parts assembled at `id=<id>` unless a document is already there, the
    /// record removed. A keyed document that had landed already is a replay (nothing new lands).
    pub async fn complete(&self, record: &UploadRecord) -> Result<Completed> {
        let key = ingress_key(&record.id);
        let stored = self.ingress.list_parts(&key, &record.upload_id).await?;
        let count = record.parts();
        for number in 1..=count {
            let Some(p) = stored.iter().find(|p| p.number == number) else {
                return Err(IngressError::BadUpload(format!(
                    "part {number} of upload {} was not sent: send parts 1 to {count}, then complete",
                    record.id
                )));
            };
            // sealed parts are checked by the part route, before sealing
            let want = record.part_len(number)?;
            if record.encoding == parts::RAW && p.size != want {
                return Err(IngressError::BadUpload(format!(
                    "part {number} of upload {} has {} bytes, not {want}: send it again",
                    record.id, p.size
                )));
            }
        }
        let named: Vec<Part> = stored.into_iter().filter(|p| p.number <= count).collect();
        let landed = self
            .ingress
            .complete_multipart(&key, &record.upload_id, &named, true)
            .await?;
        let replayed = if !landed {
            self.ingress
                .abort_multipart(&key, &record.upload_id)
                .await?;
            true
        } else if self.state.head(&status_key(&record.id)).await?.is_some() {
            // the pipeline processed the key's first document and deleted its landed object
            // meanwhile: this one repeats it
            if let Err(e) = self.ingress.delete(&key).await {
                tracing::warn!(id = %record.id, error = %e, "removing a repeated landing failed; the pipeline drops it");
            }
            true
        } else {
            false
        };
        self.state.delete(&record_key(&record.id)).await?;
        Ok(Completed {
            id: record.id.clone(),
            replayed,
        })
    }

    /// Aborts the upload: its parts and its record are dropped.
    pub async fn abort(&self, record: &UploadRecord) -> Result<()> {
        self.drop_upload(record).await
    }

    async fn drop_upload(&self, record: &UploadRecord) -> Result<()> {
        self.ingress
            .abort_multipart(&ingress_key(&record.id), &record.upload_id)
            .await?;
        self.state.delete(&record_key(&record.id)).await?;
        Ok(())
    }

    /// Aborts every expired upload; how many.
    pub async fn sweep(&self) -> Result<usize> {
        let now = self.clock.now();
        let mut n = 0;
        for info in self.state.list(RECORDS).await? {
            let got = match self.state.get(&info.key).await {
                Ok(got) => got,
                Err(e) if e.kind() == tarn_core::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            let Ok(record) = serde_json::from_slice::<UploadRecord>(&got.body) else {
                tracing::warn!(key = %info.key, "unreadable upload record left in place");
                continue;
            };
            if record.expires_at <= now {
                self.drop_upload(&record).await?;
                n += 1;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_8_mib_until_10000_of_them_would_not_do() {
        assert_eq!(part_size_for(1), PART_SIZE);
        assert_eq!(part_size_for(1 << 30), PART_SIZE);
        let huge = 200 * (1u64 << 30);
        let p = part_size_for(huge);
        assert!(huge.div_ceil(p) <= u64::from(MAX_PARTS) && p % (1 << 20) == 0);
        let r = UploadRecord {
            id: "i".into(),
            table: "t".into(),
            producer: "p".into(),
            content_type: "image/jpeg".into(),
            size: 2 * PART_SIZE + 5,
            part_size: PART_SIZE,
            upload_id: "u".into(),
            encoding: parts::RAW.into(),
            started_at: Utc::now(),
            expires_at: Utc::now(),
        };
        assert_eq!(r.parts(), 3);
        assert_eq!(r.part_len(1).unwrap(), PART_SIZE);
        assert_eq!(r.part_len(3).unwrap(), 5);
        assert_eq!(r.part_len(4).unwrap_err().code(), "bad_upload");
        assert_eq!(r.part_len(0).unwrap_err().code(), "bad_upload");
    }
}
