//! The state the handlers share: [`IngressState`] as the caller builds it, and [`App`], what the
//! handlers extract (the state, the upload permits, the audit sink and the document routes' logic).

use crate::auth::{DevIssuer, TokenVerifier};
use crate::documents::Documents;
use std::collections::BTreeMap;
use std::sync::Arc;
use tarn_catalog::TableSpec;
use tarn_core::audit::AuditSink;
use tarn_core::{Clock, Kms, ObjectStore};
use tokio::sync::{Notify, Semaphore};

/// Everything the ingress handlers share. Build it, then hand it to [`router`](crate::router).
#[derive(Debug, Clone)]
pub struct IngressState {
    /// the declared tables, by name
    pub tables: BTreeMap<String, TableSpec>,
    /// where documents land (`id=<uuid>` objects)
    pub ingress: Arc<dyn ObjectStore>,
    /// where stored binaries are read from (`GET .../content`)
    pub lake: Arc<dyn ObjectStore>,
    /// where status records (`documents/<id>.json`) are read from
    pub state: Arc<dyn ObjectStore>,
    pub kms: Arc<dyn Kms>,
    pub verifier: Arc<dyn TokenVerifier>,
    /// the local dev issuer, whose JWKS is served at `/.well-known/jwks.json`
    pub issuer: Option<Arc<DevIssuer>>,
    pub clock: Arc<dyn Clock>,
    /// woken (`notify_one`) after each landed document, so the pipeline need not poll
    pub notify: Option<Arc<Notify>>,
    /// uploads handled at once; more are answered 503 `overloaded` with `Retry-After: 1`
    pub max_in_flight: usize,
    /// serve the content of documents stored without a virus scan (`scan.serve_unscanned`);
    /// refused with 409 `not_scanned` when `false`
    pub serve_unscanned: bool,
}

/// A good default for [`IngressState::max_in_flight`]: each upload may hold up to a table's
/// `max_bytes` (10 MiB at most) in memory, twice over while it is encoded and sealed.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;

/// The table map [`IngressState::tables`] wants, from loaded specs.
pub fn table_map(specs: impl IntoIterator<Item = TableSpec>) -> BTreeMap<String, TableSpec> {
    specs.into_iter().map(|s| (s.name.clone(), s)).collect()
}

/// The state as the handlers see it.
#[derive(Clone)]
pub(crate) struct App(Arc<Shared>);

pub(crate) struct Shared {
    pub(crate) s: IngressState,
    pub(crate) permits: Arc<Semaphore>,
    /// where refused and failed requests are recorded
    pub(crate) audit: Option<Arc<dyn AuditSink>>,
    /// the status and content routes' logic
    pub(crate) documents: Documents,
}

impl App {
    pub(crate) fn new(state: IngressState, audit: Option<Arc<dyn AuditSink>>) -> Self {
        let permits = Arc::new(Semaphore::new(
            state.max_in_flight.min(Semaphore::MAX_PERMITS),
        ));
        let documents = Documents::new(
            state.tables.keys().cloned(),
            state.ingress.clone(),
            state.lake.clone(),
            state.state.clone(),
            state.kms.clone(),
        )
        .serve_unscanned(state.serve_unscanned);
        App(Arc::new(Shared {
            s: state,
            permits,
            audit,
            documents,
        }))
    }
}

impl std::ops::Deref for App {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}
