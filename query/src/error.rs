//! The crate's error: what went wrong, as a kind a caller can match on, with the engine's own
//! message (first letter lowercase, no trailing punctuation).

use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use tarn_catalog::CatalogError;

pub type Result<T, E = QueryError> = std::result::Result<T, E>;

/// What kind of failure a [`QueryError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The SQL text does not parse.
    Sql,
    /// The SQL parses but cannot be planned: unknown table or column, type mismatch, an
    /// unsupported or refused statement (DDL, DML).
    Plan,
    /// The query failed while running: a cast failed, resources ran out, an engine bug.
    Execution,
    /// Reading the lake or the catalog failed: a missing object store, an unreadable or
    /// corrupt file, an unavailable catalog.
    Io,
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("sql syntax error: {0}")]
    Sql(String),
    #[error("query planning failed: {0}")]
    Plan(String),
    #[error("query execution failed: {0}")]
    Execution(String),
    #[error("reading the lake failed: {0}")]
    Io(String),
    #[error("reading the catalog failed: {0}")]
    Catalog(#[from] CatalogError),
}

impl QueryError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            QueryError::Sql(_) => ErrorKind::Sql,
            QueryError::Plan(_) => ErrorKind::Plan,
            QueryError::Execution(_) => ErrorKind::Execution,
            QueryError::Io(_) | QueryError::Catalog(_) => ErrorKind::Io,
        }
    }

    /// The error of a given kind, its message tidied (lowercase first letter, no trailing
    /// punctuation, no backtrace).
    pub fn new(kind: ErrorKind, message: impl AsRef<str>) -> Self {
        let m = tidy(message.as_ref());
        match kind {
            ErrorKind::Sql => QueryError::Sql(m),
            ErrorKind::Plan => QueryError::Plan(m),
            ErrorKind::Execution => QueryError::Execution(m),
            ErrorKind::Io => QueryError::Io(m),
        }
    }

    /// A copy, for an error only seen behind a shared reference.
    fn duplicate(&self) -> QueryError {
        match self {
            QueryError::Sql(m) => QueryError::Sql(m.clone()),
            QueryError::Plan(m) => QueryError::Plan(m.clone()),
            QueryError::Execution(m) => QueryError::Execution(m.clone()),
            QueryError::Io(m) => QueryError::Io(m.clone()),
            QueryError::Catalog(c) => QueryError::Io(format!("catalog: {c}")),
        }
    }

    /// Wraps this error for returning it through DataFusion (from a `TableProvider`); [`From`]
    /// finds it again on the way out, kind intact.
    pub(crate) fn into_datafusion(self) -> DataFusionError {
        DataFusionError::External(Box::new(self))
    }
}

impl From<DataFusionError> for QueryError {
    fn from(e: DataFusionError) -> Self {
        classify(e)
    }
}

impl From<ArrowError> for QueryError {
    fn from(e: ArrowError) -> Self {
        classify(DataFusionError::ArrowError(Box::new(e), None))
    }
}

/// Finds the error that says what happened under DataFusion's wrappers and sorts it.
fn classify(e: DataFusionError) -> QueryError {
    use DataFusionError as D;
    match e {
        D::Context(_, inner) | D::Diagnostic(_, inner) => classify(*inner),
        D::Shared(inner) => match std::sync::Arc::try_unwrap(inner) {
            Ok(inner) => classify(inner),
            Err(shared) => classify_ref(&shared),
        },
        D::Collection(mut errs) if !errs.is_empty() => classify(errs.swap_remove(0)),
        D::External(b) => classify_boxed(b),
        D::ArrowError(a, _) => match *a {
            ArrowError::ExternalError(b) => classify_boxed(b),
            other => classify_arrow(&other),
        },
        other => classify_ref(&other),
    }
}

fn classify_boxed(b: Box<dyn std::error::Error + Send + Sync>) -> QueryError {
    let b = match b.downcast::<QueryError>() {
        Ok(q) => return *q,
        Err(b) => b,
    };
    let b = match b.downcast::<DataFusionError>() {
        Ok(d) => return classify(*d),
        Err(b) => b,
    };
    let b = match b.downcast::<ArrowError>() {
        Ok(a) => return classify(DataFusionError::ArrowError(a, None)),
        Err(b) => b,
    };
    let b = match b.downcast::<CatalogError>() {
        Ok(c) => return QueryError::Catalog(*c),
        Err(b) => b,
    };
    if b.is::<std::io::Error>() || b.is::<datafusion::parquet::errors::ParquetError>() {
        return QueryError::new(ErrorKind::Io, b.to_string());
    }
    QueryError::new(ErrorKind::Execution, b.to_string())
}

fn classify_arrow(a: &ArrowError) -> QueryError {
    match a {
        ArrowError::IoError(..) | ArrowError::ParquetError(_) => {
            QueryError::new(ErrorKind::Io, a.to_string())
        }
        _ => QueryError::new(ErrorKind::Execution, a.to_string()),
    }
}

fn classify_ref(e: &DataFusionError) -> QueryError {
    use DataFusionError as D;
    match e {
        D::Context(_, inner) | D::Diagnostic(_, inner) => classify_ref(inner),
        D::Shared(inner) => classify_ref(inner),
        D::Collection(errs) if !errs.is_empty() => classify_ref(&errs[0]),
        D::SQL(p, _) => {
            use datafusion::sql::sqlparser::parser::ParserError as P;
            let m = match p.as_ref() {
                P::TokenizerError(s) | P::ParserError(s) => s.clone(),
                P::RecursionLimitExceeded => "the query is nested too deeply".to_string(),
            };
            QueryError::new(ErrorKind::Sql, m)
        }
        D::Plan(m) | D::NotImplemented(m) | D::Configuration(m) => {
            QueryError::new(ErrorKind::Plan, m)
        }
        D::SchemaError(s, _) => QueryError::new(ErrorKind::Plan, s.to_string()),
        D::ParquetError(p) => QueryError::new(ErrorKind::Io, format!("parquet: {p}")),
        D::ObjectStore(o) => QueryError::new(ErrorKind::Io, o.to_string()),
        D::IoError(io) => QueryError::new(ErrorKind::Io, io.to_string()),
        D::ArrowError(a, _) => match a.as_ref() {
            ArrowError::ExternalError(b) => match b.downcast_ref::<DataFusionError>() {
                Some(d) => classify_ref(d),
                None => match b.downcast_ref::<QueryError>() {
                    Some(q) => q.duplicate(),
                    None => QueryError::new(ErrorKind::Execution, b.to_string()),
                },
            },
            other => classify_arrow(other),
        },
        D::External(b) => match b.downcast_ref::<DataFusionError>() {
            Some(d) => classify_ref(d),
            None => match b.downcast_ref::<QueryError>() {
                Some(q) => q.duplicate(),
                None => QueryError::new(ErrorKind::Execution, b.to_string()),
            },
        },
        // an engine bug: its first line says what, the rest asks for a bug report
        D::Internal(m) => QueryError::new(ErrorKind::Execution, format!("internal error: {m}")),
        other => QueryError::new(ErrorKind::Execution, other.message()),
    }
}

/// One line, first letter lowercase (unless the first word is an acronym), no trailing
/// punctuation or whitespace, no backtrace.
fn tidy(message: &str) -> String {
    let m = message
        .split(DataFusionError::BACK_TRACE_SEP)
        .next()
        .unwrap_or("");
    // one line; the wrappers' repeated prefixes once
    let m = m
        .split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let m = m.replace("Parquet error: ", "");
    let m = m.trim().trim_end_matches(['.', '!', ';', ':']).trim_end();
    let mut chars = m.chars();
    let Some(first) = chars.next() else {
        return String::new();
    };
    let second_is_upper = chars.next().is_some_and(|c| c.is_uppercase());
    if first.is_uppercase() && !second_is_upper {
        first
            .to_lowercase()
            .chain(m[first.len_utf8()..].chars())
            .collect()
    } else {
        m.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_tidied() {
        assert_eq!(
            tidy("Expected: an SQL statement, found: SELEC."),
            "expected: an SQL statement, found: SELEC"
        );
        assert_eq!(tidy("SQL is fine"), "SQL is fine");
        assert_eq!(tidy("  no field named x.  "), "no field named x");
        assert_eq!(tidy(""), "");
        assert_eq!(
            tidy("No field named x.\nValid fields are t.a, t.b."),
            "no field named x. Valid fields are t.a, t.b"
        );
        assert_eq!(
            tidy("Parquet error: Parquet error: Corrupt footer"),
            "corrupt footer"
        );
    }

    #[test]
    fn datafusion_errors_keep_their_kind_through_wrappers() {
        let plan = DataFusionError::Plan("Table 'x' not found".into()).context("planning");
        let e = QueryError::from(plan);
        assert_eq!(e.kind(), ErrorKind::Plan);
        assert_eq!(e.to_string(), "query planning failed: table 'x' not found");

        let ours = QueryError::new(ErrorKind::Io, "Listing failed.").into_datafusion();
        let wrapped =
            DataFusionError::ArrowError(Box::new(ArrowError::ExternalError(Box::new(ours))), None);
        let e = QueryError::from(DataFusionError::Shared(std::sync::Arc::new(wrapped)));
        assert_eq!(e.kind(), ErrorKind::Io);
        assert_eq!(e.to_string(), "reading the lake failed: listing failed");

        let io = DataFusionError::IoError(std::io::Error::other("disk gone"));
        assert_eq!(QueryError::from(io).kind(), ErrorKind::Io);
    }
}
