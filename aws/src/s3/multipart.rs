//! Multipart uploads of [`S3ObjectStore`]: S3's own (CreateMultipartUpload with the metadata and
//! SSE-KMS under the platform key, UploadPart, ListParts, CompleteMultipartUpload with
//! `If-None-Match: *` when conditional, AbortMultipartUpload) and presigned UploadPart URLs.
//! A completion checks the named parts against ListParts first
//! ([`check_completion`]), so S3 and the local store refuse the same completions.

use super::{S3ObjectStore, describe, not_found, precondition_failed, status, to_headers};
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ServerSideEncryption};
use bytes::Bytes;
use std::time::Duration;
use tarn_core::store::Part;
use tarn_core::store::multipart::{check_completion, check_part_number};
use tarn_core::{Error, Metadata, Result, validate_key};

impl S3ObjectStore {
    fn no_upload(&self, key: &str, upload_id: &str) -> Error {
        Error::NotFound {
            key: format!("{} (upload {upload_id})", self.full_key(key)),
        }
    }

    pub(super) async fn mp_create(&self, key: &str, metadata: Metadata) -> Result<String> {
        validate_key(key)?;
        let mut req = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .set_metadata(Some(to_headers(metadata)));
        if let Some(k) = &self.kms_key_id {
            req = req
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(k);
        }
        let out = req
            .send()
            .await
            .map_err(|e| self.svc("CreateMultipartUpload", key, describe(&e)))?;
        out.upload_id()
            .map(String::from)
            .ok_or_else(|| self.svc("CreateMultipartUpload", key, "no upload id".into()))
    }

    /// The UploadPart request of part `number` (checked) of the upload, without its body.
    fn part_request(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
    ) -> Result<aws_sdk_s3::operation::upload_part::builders::UploadPartFluentBuilder> {
        validate_key(key)?;
        check_part_number(number)?;
        Ok(self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .upload_id(upload_id)
            .part_number(number as i32))
    }

    pub(super) async fn mp_upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        body: Bytes,
    ) -> Result<String> {
        let out = self
            .part_request(key, upload_id, number)?
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| {
                if not_found(&e) {
                    self.no_upload(key, upload_id)
                } else {
                    self.svc("UploadPart", key, describe(&e))
                }
            })?;
        out.e_tag()
            .map(String::from)
            .ok_or_else(|| self.svc("UploadPart", key, "no etag".into()))
    }

    pub(super) async fn mp_list_parts(&self, key: &str, upload_id: &str) -> Result<Vec<Part>> {
        validate_key(key)?;
        let mut parts = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let out = self
                .client
                .list_parts()
                .bucket(&self.bucket)
                .key(self.full_key(key))
                .upload_id(upload_id)
                .set_part_number_marker(marker.take())
                .send()
                .await;
            let out = match out {
                Ok(out) => out,
                // some S3 look-alikes (moto: `ListPartsResponse`) answer 200 with a root element
                // the SDK does not take: read the parts from the body itself
                Err(SdkError::ServiceError(se)) if se.raw().status().as_u16() == 200 => {
                    let body = se.raw().body().bytes().unwrap_or_default();
                    parts.extend(parts_from_xml(&String::from_utf8_lossy(body)));
                    break;
                }
                Err(e) if not_found(&e) => return Err(self.no_upload(key, upload_id)),
                Err(e) => return Err(self.svc("ListParts", key, describe(&e))),
            };
            for p in out.parts() {
                parts.push(Part {
                    number: p.part_number().unwrap_or(0) as u32,
                    etag: p.e_tag().unwrap_or_default().to_string(),
                    size: p.size().unwrap_or(0) as u64,
                });
            }
            match (out.is_truncated(), out.next_part_number_marker()) {
                (Some(true), Some(next)) => marker = Some(next.to_string()),
                _ => break,
            }
        }
        parts.sort_by_key(|p| p.number);
        Ok(parts)
    }

    pub(super) async fn mp_complete(
        &self,
        key: &str,
        upload_id: &str,
        named: &[Part],
        if_absent: bool,
    ) -> Result<bool> {
        let stored = self.mp_list_parts(key, upload_id).await?;
        let parts = check_completion(key, named, &stored)?;
        self.mp_complete_parts(key, upload_id, &parts, if_absent)
            .await
    }

    /// CompleteMultipartUpload of `parts` as given (no ListParts: a put that uploaded them
    /// itself knows them, and needs no `s3:ListMultipartUploadParts`).
    pub(super) async fn mp_complete_parts(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[Part],
        if_absent: bool,
    ) -> Result<bool> {
        let completed: Vec<CompletedPart> = parts
            .iter()
            .map(|p| {
                CompletedPart::builder()
                    .part_number(p.number as i32)
                    .e_tag(&p.etag)
                    .build()
            })
            .collect();
        let mut req = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(completed))
                    .build(),
            );
        if if_absent {
            req = req.if_none_match("*");
        }
        match req.send().await {
            Ok(_) => Ok(true),
            Err(e) if if_absent && precondition_failed(&e) => Ok(false),
            Err(e) if not_found(&e) => Err(self.no_upload(key, upload_id)),
            // some S3 look-alikes (moto) answer 200 with a body the SDK does not parse: the
            // upload is complete
            Err(e) if status(&e) == Some(200) => Ok(true),
            Err(e) => Err(self.svc(
                "CompleteMultipartUpload",
                key,
                format!("HTTP {:?}: {}", status(&e), describe(&e)),
            )),
        }
    }

    pub(super) async fn mp_abort(&self, key: &str, upload_id: &str) -> Result<()> {
        validate_key(key)?;
        match self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .upload_id(upload_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if not_found(&e) => Ok(()),
            Err(e) => Err(self.svc("AbortMultipartUpload", key, describe(&e))),
        }
    }

    /// A SigV4 presigned UploadPart URL, signed with this client's credentials (whoever PUTs to
    /// it acts as this principal: it needs `s3:PutObject` and, under SSE-KMS, `kms:GenerateDataKey`).
    pub(super) async fn mp_presign_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        expires_in: Duration,
    ) -> Result<Option<String>> {
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(expires_in)
            .map_err(|e| Error::InvalidInput(format!("presigned url expiry: {e}")))?;
        let req = self
            .part_request(key, upload_id, number)?
            .presigned(config)
            .await
            .map_err(|e| self.svc("UploadPart (presign)", key, describe(&e)))?;
        Ok(Some(req.uri().to_string()))
    }
}

/// The parts of a ListParts answer's XML (`<Part>` elements with `PartNumber`, `ETag`, `Size`),
/// whatever its root element.
fn parts_from_xml(xml: &str) -> Vec<Part> {
    let field = |part: &str, name: &str| -> Option<String> {
        let open = format!("<{name}>");
        let start = part.find(&open)? + open.len();
        let end = part[start..].find(&format!("</{name}>"))? + start;
        Some(
            part[start..end]
                .replace("&quot;", "\"")
                .replace("&#34;", "\""),
        )
    };
    xml.split("<Part>")
        .skip(1)
        .filter_map(|p| {
            let p = p.split("</Part>").next()?;
            Some(Part {
                number: field(p, "PartNumber")?.trim().parse().ok()?,
                etag: field(p, "ETag")?,
                size: field(p, "Size")?.trim().parse().ok()?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_read_from_any_list_parts_xml() {
        let xml = r#"<ListPartsResponse><Bucket>b</Bucket><Part><PartNumber>1</PartNumber><ETag>"9001"</ETag><Size>3</Size></Part><Part><PartNumber>2</PartNumber><ETag>&quot;ab&quot;</ETag><Size>5242880</Size></Part><Owner><ID>x</ID></Owner></ListPartsResponse>"#;
        assert_eq!(
            parts_from_xml(xml),
            [
                Part {
                    number: 1,
                    etag: "\"9001\"".into(),
                    size: 3
                },
                Part {
                    number: 2,
                    etag: "\"ab\"".into(),
                    size: 5242880
                }
            ]
        );
        assert!(parts_from_xml("<ListPartsResult></ListPartsResult>").is_empty());
    }
}
