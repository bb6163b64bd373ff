//! Why a document could not be stripped. Every message is lowercase, names the format first, and
//! quotes no document content (no metadata value ends up in a quarantine reason).

/// Why stripping failed: the document is quarantined with this as the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StripError {
    /// the type carries metadata but tarn has no stripper for it
    #[error("no metadata stripper for {0}: refusing to pass it through")]
    Unsupported(String),
    /// the file ends before a structure it started
    #[error("{format}: truncated: {what}")]
    Truncated { format: &'static str, what: String },
    /// the structure is wrong (bad lengths, bad checksums, unknown critical parts)
    #[error("{format}: malformed: {what}")]
    Malformed { format: &'static str, what: String },
    /// a size or count past a [`super::Limits`] bound
    #[error("{format}: {what} too large: {value} > {limit}")]
    TooLarge {
        format: &'static str,
        what: &'static str,
        value: u64,
        limit: u64,
    },
    /// stripping took longer than [`super::Limits::strip_budget`]: the work was stopped
    #[error(
        "{format}: stripping took longer than its time budget of {budget:?}: refusing the document"
    )]
    OverBudget {
        format: &'static str,
        budget: std::time::Duration,
    },
    /// well formed, but a construction the stripper cannot rewrite safely (encryption, embedded
    /// files, stream filters it does not decode)
    #[error("{format}: cannot strip safely: {what}")]
    Refused { format: &'static str, what: String },
}

impl StripError {
    pub(crate) fn truncated(format: &'static str, what: impl Into<String>) -> Self {
        Self::Truncated {
            format,
            what: what.into(),
        }
    }

    pub(crate) fn malformed(format: &'static str, what: impl Into<String>) -> Self {
        Self::Malformed {
            format,
            what: what.into(),
        }
    }

    pub(crate) fn refused(format: &'static str, what: impl Into<String>) -> Self {
        Self::Refused {
            format,
            what: what.into(),
        }
    }
}
