//! The local store's multipart uploads: each upload is a directory under `.tarn-uploads/`
//! named by its upload id, holding `upload.json` (the key and the object's metadata) and one
//! file per part (`<number>`, with its ETag as `user.tarn.etag` where xattrs work). Completing
//! copies the parts, in order, into one temp file, streamed (never a whole part in memory), which
//! is then placed as any put.

use super::local::{LocalObjectStore, sync_dir};
use super::multipart::{MAX_PART_SIZE, Part, check_completion, check_part_number};
use super::{Metadata, UPLOADS_DIR, xattr};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::Write;
use std::path::PathBuf;

/// What `upload.json` holds.
#[derive(Serialize, Deserialize)]
struct UploadFile {
    key: String,
    metadata: Metadata,
}

const UPLOAD_FILE: &str = "upload.json";

impl LocalObjectStore {
    /// The directory of upload `upload_id` of `key`; `Error::NotFound` when there is no such
    /// upload (an id that is no UUID names none).
    fn upload_dir(&self, key: &str, upload_id: &str) -> Result<PathBuf> {
        let missing = || Error::NotFound {
            key: format!("{key} (upload {upload_id})"),
        };
        uuid::Uuid::parse_str(upload_id).map_err(|_| missing())?;
        let dir = self.root().join(UPLOADS_DIR).join(upload_id);
        let file = dir.join(UPLOAD_FILE);
        let raw = match fs::read(&file) {
            Ok(raw) => raw,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing()),
            Err(e) => return Err(Error::io("reading upload", &file)(e)),
        };
        let upload: UploadFile = serde_json::from_slice(&raw)
            .map_err(|e| Error::Service(format!("corrupt upload {upload_id}: {e}")))?;
        if upload.key != key {
            return Err(missing());
        }
        Ok(dir)
    }

    pub(super) fn create_multipart_sync(&self, key: &str, metadata: &Metadata) -> Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        let uploads = self.root().join(UPLOADS_DIR);
        let dir = uploads.join(&id);
        fs::create_dir(&dir).map_err(Error::io("creating upload", &dir))?;
        let body = serde_json::to_vec(&UploadFile {
            key: key.to_string(),
            metadata: metadata.clone(),
        })
        .map_err(|e| Error::InvalidInput(e.to_string()))?;
        let tmp = self.write_tmp_with(&body, None)?;
        let file = dir.join(UPLOAD_FILE);
        fs::rename(&tmp, &file).map_err(Error::io("writing upload", &file))?;
        sync_dir(&dir)?;
        sync_dir(&uploads)?;
        Ok(id)
    }

    pub(super) fn upload_part_sync(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        body: &[u8],
    ) -> Result<String> {
        check_part_number(number)?;
        if body.len() as u64 > MAX_PART_SIZE {
            return Err(Error::InvalidInput(format!(
                "part {number} of {key} has {} bytes: parts hold at most {MAX_PART_SIZE}",
                body.len()
            )));
        }
        let dir = self.upload_dir(key, upload_id)?;
        let tmp = self.tmp_path();
        let mut f = File::create(&tmp).map_err(Error::io("creating part", &tmp))?;
        f.write_all(body).map_err(Error::io("writing part", &tmp))?;
        // an etag of its own, as any object file (without xattrs: inode, time and size)
        if self.xattrs() {
            self.set_xattrs(&f, &tmp, &Metadata::new())?;
        }
        f.sync_all().map_err(Error::io("syncing part", &tmp))?;
        let dest = dir.join(number.to_string());
        fs::rename(&tmp, &dest).map_err(Error::io("storing part", &dest))?;
        sync_dir(&dir)?;
        let md = fs::metadata(&dest).map_err(Error::io("reading part", &dest))?;
        xattr::etag_of(xattr::Of::Path(&dest), &md, self.xattrs())
            .map_err(Error::io("reading the etag of a part", &dest))
    }

    pub(super) fn list_parts_sync(&self, key: &str, upload_id: &str) -> Result<Vec<Part>> {
        let dir = self.upload_dir(key, upload_id)?;
        let mut parts = Vec::new();
        for entry in fs::read_dir(&dir).map_err(Error::io("listing upload", &dir))? {
            let entry = entry.map_err(Error::io("listing upload", &dir))?;
            let Some(number) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let path = entry.path();
            let md = match fs::metadata(&path) {
                Ok(md) => md,
                // replaced while listing: its new file is listed or not, as S3 would
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("reading part", &path)(e)),
            };
            let etag = xattr::etag_of(xattr::Of::Path(&path), &md, self.xattrs())
                .map_err(Error::io("reading the etag of a part", &path))?;
            parts.push(Part {
                number,
                etag,
                size: md.len(),
            });
        }
        parts.sort_by_key(|p| p.number);
        Ok(parts)
    }

    /// A synced temp file holding the named parts, in order, with the upload's metadata and a
    /// new ETag (in xattrs when they are used), and that metadata (for a sidecar).
    pub(super) fn assemble_sync(
        &self,
        key: &str,
        upload_id: &str,
        named: &[Part],
    ) -> Result<(PathBuf, Metadata)> {
        let dir = self.upload_dir(key, upload_id)?;
        let stored = self.list_parts_sync(key, upload_id)?;
        let parts = check_completion(key, named, &stored)?;
        let file = dir.join(UPLOAD_FILE);
        let upload: UploadFile =
            serde_json::from_slice(&fs::read(&file).map_err(Error::io("reading upload", &file))?)
                .map_err(|e| Error::Service(format!("corrupt upload {upload_id}: {e}")))?;
        let tmp = self.tmp_path();
        let assembled = (|| {
            let mut out = File::create(&tmp).map_err(Error::io("creating temp file", &tmp))?;
            for p in &parts {
                let path = dir.join(p.number.to_string());
                let mut part = File::open(&path).map_err(Error::io("reading part", &path))?;
                std::io::copy(&mut part, &mut out).map_err(Error::io("assembling parts", &tmp))?;
            }
            if self.xattrs() {
                self.set_xattrs(&out, &tmp, &upload.metadata)?;
            }
            out.sync_all().map_err(Error::io("syncing temp file", &tmp))
        })();
        if let Err(e) = assembled {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        Ok((tmp, upload.metadata))
    }

    /// Removes upload `upload_id`'s directory (a completed or aborted upload).
    pub(super) fn remove_upload_sync(&self, upload_id: &str) -> Result<()> {
        let dir = self.root().join(UPLOADS_DIR).join(upload_id);
        match fs::remove_dir_all(&dir) {
            Ok(()) => sync_dir(&self.root().join(UPLOADS_DIR)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("removing upload", &dir)(e)),
        }
    }

    pub(super) fn abort_multipart_sync(&self, key: &str, upload_id: &str) -> Result<()> {
        match self.upload_dir(key, upload_id) {
            Ok(_) => self.remove_upload_sync(upload_id),
            Err(Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
