//! The crate's one error type, with a matchable [`ErrorKind`].

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, for callers that branch on it (retry, 404, refuse).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// the object or key does not exist
    NotFound,
    /// a conditional write found the object already there
    AlreadyExists,
    /// the caller passed something unusable (a bad key, a bad context)
    InvalidInput,
    /// decryption or authentication of sealed data failed
    Crypto,
    /// the local filesystem or a remote service failed; usually worth a retry
    Io,
    /// the setup is wrong (permissions, missing key); retrying will not help
    Config,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no object at key {key}")]
    NotFound { key: String },
    #[error("an object already exists at key {key}")]
    AlreadyExists { key: String },
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("crypto: {0}")]
    Crypto(String),
    #[error("{context} at {path}: {source}")]
    Io {
        context: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("service: {0}")]
    Service(String),
    #[error("config: {0}")]
    Config(String),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            Error::InvalidKey { .. } | Error::InvalidInput(_) => ErrorKind::InvalidInput,
            Error::Crypto(_) => ErrorKind::Crypto,
            Error::Io { .. } | Error::Service(_) => ErrorKind::Io,
            Error::Config(_) => ErrorKind::Config,
        }
    }

    pub(crate) fn io(
        context: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io {
            context,
            path,
            source,
        }
    }
}
