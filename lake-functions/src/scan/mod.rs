//! The scan stage: every document's bytes go through a malware scanner before anything else can
//! make them readable in the lake. Nothing unscanned passes: a scan that did not complete
//! cleanly is never taken for clean.
//!
//! - [`Scanner`]: the port an engine implements, with the guarantees below (checked by
//!   [`conformance::scanner`]);
//! - [`ClamdScanner`]: ClamAV's daemon over TCP or a unix socket, speaking clamd's own protocol
//!   (`zPING`, `zVERSION`, `zINSTREAM`) over a small pool of `zIDSESSION` connections;
//! - [`ScanStage`]: the pipeline [`Stage`](crate::stage::Stage): sets `scan_engine` and
//!   `scan_result`, quarantines infected documents and the ones the engine could not look into
//!   whole (past its limits, encrypted: `unscannable`), and fails transiently (the runner
//!   retries, then quarantines) whenever the scan did not complete;
//! - [`managed`]: a clamd tarn starts itself on a unix socket (`tarn serve` without `--clamd`,
//!   the scan Lambda on its definitions mirror), with one configuration and its limits.

pub mod builtin;
mod clamd;
#[cfg(any(test, feature = "testsuite"))]
pub mod conformance;
pub mod managed;
mod stage;

pub use builtin::BuiltinScanner;
pub use clamd::{
    ClamdAddr, ClamdScanner, DEFAULT_CHUNK_SIZE, DEFAULT_POOL_SIZE, DEFAULT_SESSION_MAX_IDLE,
    Timeouts,
};
pub use managed::{ClamdSetup, ManagedClamd};
pub use stage::{DEFAULT_VERSION_REFRESH, SKIPPED, ScanStage, UNSCANNABLE};

use async_trait::async_trait;
use std::time::Duration;

/// What a completed scan found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanVerdict {
    /// the engine read every byte and matched no signature
    Clean,
    /// the engine matched this signature (never empty), e.g. `Eicar-Test-Signature.UNOFFICIAL`
    Infected(String),
    /// the engine could not look at every part: a part past its limits (file size, scan size,
    /// archive depth, file count, scan time) or encrypted. Carries the engine's name for what it
    /// met, e.g. `Heuristics.Limits.Exceeded.MaxFileSize`, `Heuristics.Encrypted.Zip`. Not
    /// clean, and not a detection either: nothing is known about the parts it could not read
    Unscannable(String),
}

/// An engine and the version of its engine and signature database, e.g. `clamav 1.4.2/27000`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineVersion {
    /// the engine's name, lowercase: `clamav`
    pub engine: String,
    /// the engine's version: `1.4.2`
    pub version: String,
    /// the signature database's version, when the engine reports one: `27000`
    pub database: Option<String>,
}

impl std::fmt::Display for EngineVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.engine, self.version)?;
        if let Some(db) = &self.database {
            write!(f, "/{db}")?;
        }
        Ok(())
    }
}

/// Why a scan (or a ping, or a version query) did not complete. Every variant means "not
/// scanned": callers must never treat any of them as clean.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("invalid scanner address {addr:?}: {reason}")]
    Address { addr: String, reason: String },
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("connecting to {addr} timed out after {after:?}")]
    ConnectTimeout { addr: String, after: Duration },
    #[error("no complete answer from {addr} within {after:?}")]
    Timeout { addr: String, after: Duration },
    #[error("i/o with {addr}: {source}")]
    Io {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// the engine answered with an error, e.g. `INSTREAM size limit exceeded`
    #[error("the scanner refused: {0}")]
    Refused(String),
    /// the engine closed the connection before a complete answer
    #[error("the scanner closed the connection before answering")]
    Closed,
    /// an answer that is not one the protocol allows here
    #[error("unexpected answer from the scanner: {0:?}")]
    Protocol(String),
}

/// A malware scanning engine. Guarantees every implementation gives (checked by
/// [`conformance::scanner`]):
/// - [`scan`](Scanner::scan) returns [`ScanVerdict::Clean`] only when the engine completed a
///   scan of every byte of `body` and matched nothing. A scan that did not complete — engine
///   unreachable, timed out, body over the engine's size limit, an engine error, an answer that
///   cannot be understood, a connection closed early — is an `Err`, never `Clean`;
/// - [`ScanVerdict::Infected`] carries the signature's name, never empty; archives the engine
///   can unpack (zip at least) are scanned inside; a part the engine could not read (past its
///   limits, encrypted) is [`ScanVerdict::Unscannable`] when the engine says so, never `Clean`;
/// - scans are independent: safe to run concurrently and to repeat (same bytes, same verdict
///   while the database does not change); no state of one scan leaks into another;
/// - [`ping`](Scanner::ping) succeeds only when the engine answers now;
///   [`version`](Scanner::version) names the engine and its database.
///
/// Implementations bound every call in time (their own timeouts), so a hung engine cannot hold
/// a document forever.
#[async_trait]
pub trait Scanner: Send + Sync + std::fmt::Debug {
    async fn scan(&self, body: &[u8]) -> Result<ScanVerdict, ScanError>;
    async fn version(&self) -> Result<EngineVersion, ScanError>;
    async fn ping(&self) -> Result<(), ScanError>;
}
