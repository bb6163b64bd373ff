use std::path::PathBuf;

pub type Result<T, E = CatalogError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    InvalidSchema,
    Incompatible,
    Io,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{what} {name} not found in the catalog")]
    NotFound { what: &'static str, name: String },
    #[error("schema {path}: {reason}")]
    InvalidSchema { path: PathBuf, reason: String },
    #[error("table {table}: {reason}")]
    Incompatible { table: String, reason: String },
    #[error("{context} at {path}: {source}")]
    Io {
        context: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("catalog service: {0}")]
    Service(String),
}

impl CatalogError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            CatalogError::NotFound { .. } => ErrorKind::NotFound,
            CatalogError::InvalidSchema { .. } => ErrorKind::InvalidSchema,
            CatalogError::Incompatible { .. } => ErrorKind::Incompatible,
            CatalogError::Io { .. } | CatalogError::Service(_) => ErrorKind::Io,
        }
    }
    pub(crate) fn io(
        context: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> CatalogError {
        let path = path.into();
        move |source| CatalogError::Io {
            context,
            path,
            source,
        }
    }
}
