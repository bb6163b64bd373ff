pub type Result<T, E = LakeError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// storage or a service failed; the work is retried
    Transient,
    /// the input or setup is wrong; retrying will not help
    Permanent,
    /// a lake lock was lost while its holder worked (expired, taken over): the work must stop
    /// before its commit; it may start again under a new lock
    LockLost,
}

#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error(transparent)]
    Store(#[from] tarn_core::Error),
    #[error(transparent)]
    Catalog(#[from] tarn_catalog::CatalogError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("landed object {key}: {reason}")]
    BadLanding { key: String, reason: String },
    #[error("schema of table {table}: {reason}")]
    Schema { table: String, reason: String },
    #[error("pipeline: {0}")]
    Pipeline(String),
    #[error("configuration: {0}")]
    Config(String),
    /// a clamd tarn starts itself could not be started or did not answer
    #[error("clamd: {0}")]
    Clamd(String),
    #[error(
        "lock {name} lost: {reason}; the work under it stops before its commit and can run again under the lock"
    )]
    LockLost { name: String, reason: String },
    #[error("bad lock name {name:?}: use ASCII letters, digits, - and _")]
    BadLockName { name: String },
    /// an operator's action on a document that it does not apply to (see [`crate::review`])
    #[error("{0}")]
    Refused(String),
}

impl LakeError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            LakeError::Store(e) => match e.kind() {
                tarn_core::ErrorKind::Io => ErrorKind::Transient,
                _ => ErrorKind::Permanent,
            },
            LakeError::Catalog(e) => match e.kind() {
                tarn_catalog::ErrorKind::Io => ErrorKind::Transient,
                _ => ErrorKind::Permanent,
            },
            LakeError::Parquet(_) | LakeError::Pipeline(_) | LakeError::Clamd(_) => {
                ErrorKind::Transient
            }
            LakeError::Arrow(_)
            | LakeError::BadLanding { .. }
            | LakeError::Schema { .. }
            | LakeError::Config(_)
            | LakeError::BadLockName { .. }
            | LakeError::Refused(_) => ErrorKind::Permanent,
            LakeError::LockLost { .. } => ErrorKind::LockLost,
        }
    }
}
