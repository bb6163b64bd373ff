//! The access trail: every store access recorded as a CloudTrail S3 data event, delivered as
//! CloudTrail delivers them (gzipped `{"Records": [...]}` files under
//! `AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/`), with CloudTrail-style signed, chained
//! digest files for tamper evidence.
//!
//! - [`AuditSink`]: the port (batched, bounded delay; see its guarantees); [`LocalAuditSink`]
//!   writes log and digest files to an audit [`ObjectStore`](crate::ObjectStore).
//! - [`AuditedStore`]: an `ObjectStore` decorator recording every call with its outcome.
//! - [`RequestScope`] / [`set_request_actor`]: attribute a request's store calls to its caller.
//! - [`verify`]: checks the trail against the signing key's public key.
//! - [`read_trail`]: the records, filtered by time, user, table, event.
//!
//! Records never hold a token nor a document's content: names, sizes and outcomes only.

mod digest;
mod read;
mod record;
mod sink;
mod store;

pub use digest::{
    DigestFile, LogFileEntry, Problem, ProblemKind, SigningKey, VerifyReport, read_public_key,
    sign_string, verify,
};
pub use read::{LogFile, TrailFilter, read_log_files, read_trail};
pub use record::{
    Actor, AuditEvent, CloudTrailRecord, EventName, Resource, TrailConfig, UserIdentity,
    event_time, request_id, table_of_key,
};
pub use sink::{AuditSink, LocalAuditSink, NoAuditSink, SinkSettings};
pub use store::{
    AuditedStore, RequestContext, RequestScope, current_request, denied_event, set_request_actor,
};

use crate::error::{Error, Result};

/// The components' names, as `invokedBy` of their records.
pub mod component {
    pub const INGRESS: &str = "tarn-ingress";
    pub const PIPELINE: &str = "tarn-pipeline";
    pub const COMPACTION: &str = "tarn-compaction";
    pub const QUERY: &str = "tarn-query";
    /// an operator's `tarn quarantine` and `tarn rescan` (records name the operator too)
    pub const REVIEW: &str = "tarn-review";
    /// `tarn serve`'s rescan after a definitions update
    pub const RESCAN: &str = "tarn-rescan";
}

pub(crate) fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data)
        .map_err(|e| Error::InvalidInput(format!("gzip: {e}")))?;
    enc.finish()
        .map_err(|e| Error::InvalidInput(format!("gzip: {e}")))
}

/// Decompresses a gzip file.
pub fn gunzip(data: &[u8]) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .map_err(|e| Error::InvalidInput(format!("not gzip: {e}")))?;
    Ok(out)
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data).as_ref())
}
