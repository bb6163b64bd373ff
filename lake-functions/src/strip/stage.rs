//! The strip [`Stage`]: runs the stripper the detected type calls for on each binary document.

use super::{Limits, StripError, strip};
use crate::detect::detect;
use crate::stage::{Document, Stage, StageError, Verdict};
use async_trait::async_trait;
use bytes::Bytes;

/// Bodies at least this large are stripped on the blocking pool, off the async workers.
const BLOCKING_FROM: usize = 256 << 10;

/// The strip stage. JSON documents (records, or a JSON content type) pass unchanged; a binary
/// document is stripped as its detected type (the declared one when validate did not run and the
/// bytes are not recognized); types without a metadata container pass unchanged; every other
/// type, and every malformed file, is quarantined with the reason.
#[derive(Debug, Clone, Default)]
pub struct Strip {
    limits: Limits,
}

impl Strip {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_limits(limits: Limits) -> Self {
        Self { limits }
    }
}

fn is_json(content_type: &str) -> bool {
    matches!(content_type, "application/json" | "application/x-ndjson")
}

#[async_trait]
impl Stage for Strip {
    fn name(&self) -> &'static str {
        "strip"
    }

    async fn process(&self, doc: &mut Document) -> Result<Verdict, StageError> {
        if doc.records.is_some() || is_json(&doc.content_type) {
            return Ok(Verdict::Continue);
        }
        let media_type = match &doc.detected_type {
            Some(t) => t.clone(),
            None => detect(&doc.body)
                .unwrap_or(doc.content_type.as_str())
                .to_string(),
        };
        let body = doc.body.clone();
        let limits = self.limits;
        let run = move || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                strip(&media_type, &body, &limits)
            }))
            .unwrap_or_else(|_| {
                Err(StripError::malformed(
                    "strip",
                    "the stripper failed on this input (a bug)",
                ))
            })
        };
        let result = if doc.body.len() >= BLOCKING_FROM {
            tokio::task::spawn_blocking(run)
                .await
                .map_err(|e| StageError::Transient(format!("strip task: {e}")))?
        } else {
            run()
        };
        match result {
            Ok(None) => Ok(Verdict::Continue),
            Ok(Some(stripped)) => {
                if stripped.bytes != doc.body {
                    doc.body = Bytes::from(stripped.bytes);
                }
                for name in stripped.removed {
                    if !doc.metadata_removed.contains(&name) {
                        doc.metadata_removed.push(name);
                    }
                }
                Ok(Verdict::Continue)
            }
            Err(e) => Ok(Verdict::Quarantine(e.to_string())),
        }
    }
}
