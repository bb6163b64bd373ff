//! The pipeline as Lambda functions: one function per stage, then normalize, which commits.
//! They are thin drivers of `tarn-lake`, the code the embedded runner drives too: the stages
//! and their retry rule ([`tarn_lake::stage`]), reading landed objects
//! ([`tarn_lake::landed`]), what a document becomes ([`tarn_lake::item`]) and the batch commit
//! ([`tarn_lake::commit`]).
//!
//! Each function is triggered by S3 notifications delivered through SQS. Documents move between
//! functions as *hand-offs* ([`handoff`]). A stage that rejects or quarantines a document hands
//! it straight to normalize with its verdict, so every `documents` row is written by normalize
//! alone; a first stage that finds the landed object gone (a redelivery later than the landing
//! store keeps objects) hands normalize a *lost* document, whose row says so.
//!
//! Exactly once (normalize, [`normalize`]), keyed on the document id: a document with a status
//! record is done; before a batch writes anything, normalize *claims* each of its documents (a
//! conditional write naming the batch), and the batch commits through
//! [`tarn_lake::Lake::commit`] with its hand-offs as inputs and its claims as held keys. A claim
//! whose batch crashed is resolved on redelivery: a committed manifest is finished (no new rows),
//! an uncommitted one older than the lease is rolled back and the document processed afresh.

pub mod handoff;
pub mod normalize;
pub mod stage;

pub use handoff::{Handoff, handoff_key};
pub use normalize::{NormalizeFunction, batch_id};
pub use stage::StageFunction;

use super::events::{Message, batch_response, messages};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;
use tarn_lake::RetryPolicy;
use tracing::{Instrument, error, info_span, warn};

/// Settings shared by the functions.
#[derive(Debug, Clone)]
pub struct FunctionConfig {
    /// how a stage failing transiently is retried before the document is quarantined
    pub retry: RetryPolicy,
    /// how long a batch may run (the function's timeout): an uncommitted batch older than this
    /// is taken as crashed and rolled back
    pub lease: Duration,
}

impl Default for FunctionConfig {
    fn default() -> Self {
        Self {
            retry: RetryPolicy {
                max_attempts: 3,
                base: Duration::from_millis(100),
            },
            lease: Duration::from_secs(15 * 60),
        }
    }
}

/// Why one document could not be handled now (its message is retried).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Retry(pub String);

impl From<tarn_core::Error> for Retry {
    fn from(e: tarn_core::Error) -> Self {
        Retry(e.to_string())
    }
}
impl From<tarn_lake::LakeError> for Retry {
    fn from(e: tarn_lake::LakeError) -> Self {
        Retry(e.to_string())
    }
}

/// Handles a batch: `work` per message; failed messages are reported for a retry alone.
async fn per_message<F, Fut>(event: SqsEvent, work: F) -> SqsBatchResponse
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), Retry>>,
{
    let mut failed = Vec::new();
    for Message { message_id, ids } in messages(&event) {
        match ids {
            Err(reason) => {
                error!(message_id, %reason, "malformed message; reported as failed");
                failed.push(message_id);
            }
            Ok(ids) => {
                let mut ok = true;
                for id in ids {
                    let span = info_span!("document", id = %id, message_id = %message_id);
                    if let Err(e) = work(id).instrument(span.clone()).await {
                        span.in_scope(|| warn!(error = %e, "document not handled; the message will be retried"));
                        ok = false;
                    }
                }
                if !ok {
                    failed.push(message_id);
                }
            }
        }
    }
    batch_response(failed)
}

/// The document ids of an SQS batch, each with the messages naming it, and the malformed messages.
fn events_ids(event: &SqsEvent) -> (BTreeMap<String, Vec<String>>, BTreeSet<String>) {
    let mut failed = BTreeSet::new();
    let mut by_id: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in messages(event) {
        match m.ids {
            Err(reason) => {
                error!(message_id = %m.message_id, %reason, "malformed message; reported as failed");
                failed.insert(m.message_id);
            }
            Ok(ids) => {
                for id in ids {
                    by_id.entry(id).or_default().push(m.message_id.clone());
                }
            }
        }
    }
    (by_id, failed)
}

/// Messages' ids as a map, for tests and callers that want it.
pub fn ids_by_message(event: &SqsEvent) -> HashMap<String, Vec<String>> {
    messages(event)
        .into_iter()
        .filter_map(|m| m.ids.ok().map(|ids| (m.message_id, ids)))
        .collect()
}
