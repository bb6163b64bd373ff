//! The embedded platform: every port's local implementation, wired from one [`Config`], and a
//! running instance (ingress HTTP server + pipeline) with a clean shutdown.
//!
//! Data directory layout:
//! ```text
//! <data_dir>/keys/        master.key (KMS), the dev issuer's key
//! <data_dir>/ingress/     landed documents: id=<uuid>, base64, envelope-encrypted
//! <data_dir>/lake/        tables/<t>/dt=../*.parquet, tables/documents/.., objects/<t>/dt=../<id>
//! <data_dir>/quarantine/  rejected and quarantined documents, still encrypted, with their reason
//! <data_dir>/state/       status records and in-flight batch manifests
//! <data_dir>/catalog/     the local catalog
//! <data_dir>/audit/       the access trail: AWSLogs/<account>/CloudTrail[-Digest]/<region>/...
//! <data_dir>/keys/        also audit-signing.key/.pub (the trail's digest signatures)
//! <data_dir>/serve.lock   the serving process's id, locked while it serves (see [`ServeLock`])
//! ```

use crate::config::Config;
use anyhow::{Context, bail};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tarn_catalog::{LocalCatalog, TableSpec, load_schemas};
use tarn_core::audit::{
    Actor, AuditSink, AuditedStore, LocalAuditSink, SigningKey, SinkSettings, component,
};
use tarn_core::{Clock, LocalKms, LocalObjectStore, Metrics, ObjectStore, SystemClock};
use tarn_ingress::{DevIssuer, IngressState, TokenVerifier};
use tarn_lake::compact::Compaction;
use tarn_lake::erase::{
    ERASE_COMPONENT, EraseReport, Erasure, PredicateCompiler, RowPredicate, Selector, erasure_event,
};
use tarn_lake::lock::{LakeLock, LocalLakeLock};
use tarn_lake::registry::build_stages;
use tarn_lake::runner::Report;
use tarn_lake::scan::{BuiltinScanner, ClamdScanner, Scanner, Timeouts};
use tarn_lake::{Lake, LakeParts, Pipeline};
use tarn_query::{LocalQueryEngine, SqlPredicate};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tracing::info;

pub struct Platform {
    pub config: Config,
    pub tables: Vec<TableSpec>,
    pub ingress: Arc<LocalObjectStore>,
    pub lake: Arc<LocalObjectStore>,
    pub quarantine: Arc<LocalObjectStore>,
    pub state: Arc<LocalObjectStore>,
    /// the audit bucket (CloudTrail-format log files and digests); never itself audited
    pub audit_store: Arc<LocalObjectStore>,
    /// records every store call of every component
    pub audit: Arc<LocalAuditSink>,
    pub kms: Arc<LocalKms>,
    pub catalog: Arc<LocalCatalog>,
    pub issuer: Arc<DevIssuer>,
    pub verifier: Arc<dyn TokenVerifier>,
    pub clock: Arc<dyn Clock>,
    pub pipeline: Arc<Pipeline>,
    /// the lake on the unaudited stores, which [`Platform::lake_as`] wraps
    plain_lake: Lake,
    /// shared by the pipeline and compaction (see `tarn_lake::compact`)
    pub lake_lock: Arc<dyn LakeLock>,
    /// the engine the scan stage uses, as documents name it
    pub scan_engine: Option<String>,
    /// a clamd tarn started itself (stops with the platform)
    pub managed_clamd: Option<crate::clamd::ManagedClamd>,
    /// what the platform measures, exposed at `GET /metrics`
    pub metrics: Arc<tarn_ingress::PrometheusRecorder>,
    /// the scan stage's engine, when the pipeline scans
    pub scanner: Option<Arc<dyn Scanner>>,
}

impl Platform {
    /// Opens (creating on first use) everything under the data dir, loads the schemas and
    /// registers the tables in the catalog.
    pub async fn open(config: Config) -> anyhow::Result<Self> {
        let dir = config.data_dir.clone();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating data dir {}", dir.display()))?;
        let tables = load_schemas(&config.schemas)
            .with_context(|| format!("loading table schemas from {}", config.schemas.display()))?;
        let store = |name: &str| -> anyhow::Result<Arc<LocalObjectStore>> {
            Ok(Arc::new(LocalObjectStore::open(
                format!("tarn-{name}"),
                dir.join(name),
            )?))
        };
        let (ingress, lake, quarantine, state) = (
            store("ingress")?,
            store("lake")?,
            store("quarantine")?,
            store("state")?,
        );
        let audit_store = store("audit")?;
        let signing = SigningKey::open_or_create(SigningKey::path_in(&dir))
            .context("opening the audit signing key")?;
        let audit = Arc::new(
            LocalAuditSink::open(
                audit_store.clone(),
                config.audit.clone(),
                signing,
                SinkSettings::default(),
            )
            .await?,
        );
        let by = |s: Arc<dyn ObjectStore>, who: &str| -> Arc<dyn ObjectStore> {
            Arc::new(AuditedStore::new(s, audit.clone(), who).record_empty_lists(false))
        };
        let kms = Arc::new(LocalKms::open_or_create(LocalKms::path_in(&dir))?);
        let catalog = Arc::new(LocalCatalog::open(dir.join("catalog"))?);
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let issuer =
            Arc::new(DevIssuer::open_or_create(&dir).context("opening the dev token issuer")?);
        let verifier: Arc<dyn TokenVerifier> = Arc::new(issuer.verifier(clock.clone()));
        let (scanner, managed_clamd) = if config.pipeline.stages.iter().any(|s| s == "scan") {
            let (s, m) = build_scanner(&config).await?;
            (Some(s), m)
        } else {
            (None, None)
        };
        let scan_engine = match &scanner {
            Some(s) => Some(
                s.version()
                    .await
                    .map(|v| v.to_string())
                    .context("asking the scanner its version")?,
            ),
            None => None,
        };
        let stages = build_stages(&config.pipeline.stages, &tables, scanner.as_ref())?;
        let lake_lock: Arc<dyn LakeLock> = Arc::new(LocalLakeLock::open(dir.join("locks"))?);
        let plain_lake = Lake::new(LakeParts {
            tables: tables.clone(),
            ingress: ingress.clone(),
            lake: lake.clone(),
            quarantine: quarantine.clone(),
            state: state.clone(),
            kms: kms.clone(),
            catalog: catalog.clone(),
            database: config.database.clone(),
            clock: clock.clone(),
            lock: lake_lock.clone(),
        });
        let pipeline_lake = plain_lake.map_stores(|s| by(s, component::PIPELINE));
        let metrics = Arc::new(tarn_ingress::PrometheusRecorder::new());
        let pipeline = Arc::new(
            Pipeline::new(pipeline_lake, stages, config.pipeline_config())
                .with_metrics(Metrics::new(metrics.clone())),
        );
        pipeline
            .setup_catalog()
            .await
            .context("registering tables in the catalog")?;
        Ok(Self {
            config,
            tables,
            ingress,
            lake,
            quarantine,
            state,
            audit_store,
            audit,
            kms,
            catalog,
            issuer,
            verifier,
            clock,
            pipeline,
            plain_lake,
            lake_lock,
            scan_engine,
            managed_clamd,
            metrics,
            scanner,
        })
    }

    /// `store` as `who` sees it: every call recorded in the access trail.
    pub fn audited(&self, store: &Arc<LocalObjectStore>, who: &str) -> Arc<dyn ObjectStore> {
        Arc::new(
            AuditedStore::new(store.clone(), self.audit.clone(), who).record_empty_lists(false),
        )
    }

    /// The lake as `who` works on it: its stores' calls recorded in the trail as `who`'s, the
    /// pipeline's lock.
    pub fn lake_as(&self, who: &str) -> Lake {
        audited_lake(&self.plain_lake, &self.audit, who, None)
    }

    /// The lake as the person running this process works on it (`tarn quarantine`, `tarn
    /// rescan`): its stores' calls recorded in the trail as that OS user's, made through
    /// `component`.
    pub fn lake_as_operator(&self, component: &str) -> Lake {
        let actor = tarn_core::audit::Actor::local_user();
        audited_lake(&self.plain_lake, &self.audit, component, Some(&actor))
    }

    /// A compaction with the configured target size and grace period.
    pub fn compaction(&self) -> anyhow::Result<Compaction> {
        let c = &self.config.compaction;
        Ok(Compaction::new(self.lake_as(component::COMPACTION))
            .target_size(tarn_lake::compact::parse_size(&c.target_size)?)
            .grace_period(Duration::from_secs(c.grace_period_secs)))
    }

    /// What erasures on this platform are made of (`tarn erase`, the retention schedule).
    pub fn erasers(&self) -> Erasers {
        Erasers {
            plain_lake: self.plain_lake.clone(),
            audit: self.audit.clone(),
            grace: Duration::from_secs(self.config.compaction.grace_period_secs),
        }
    }

    /// The embedded engine, its reads of the lake recorded to the trail as the OS user's.
    pub fn query_engine(&self) -> LocalQueryEngine {
        LocalQueryEngine::new(self.catalog.clone(), self.config.database.clone())
            .with_audit_store(self.audit_store.clone(), self.config.audit.clone())
            .with_file_audit(
                self.audit.clone(),
                tarn_core::audit::Actor::local_user(),
                [(
                    self.lake.root().to_path_buf(),
                    self.lake.bucket().to_string(),
                )],
            )
    }

    pub fn ingress_state(&self, notify: Option<Arc<Notify>>) -> IngressState {
        IngressState {
            tables: tarn_ingress::table_map(self.tables.clone()),
            ingress: self.audited(&self.ingress, component::INGRESS),
            lake: self.audited(&self.lake, component::INGRESS),
            state: self.audited(&self.state, component::INGRESS),
            kms: self.kms.clone(),
            verifier: self.verifier.clone(),
            issuer: Some(self.issuer.clone()),
            clock: self.clock.clone(),
            notify,
            max_in_flight: self.config.ingress.max_in_flight,
            serve_unscanned: self.config.scan.serve_unscanned,
        }
    }

    /// Starts the ingress on `config.listen` (port 0 picks a free one) and the pipeline.
    /// Only one running platform per data dir: a second one is refused (see [`ServeLock`]).
    pub async fn start(&self) -> anyhow::Result<Running> {
        let lock = ServeLock::acquire(&self.config.data_dir)?;
        self.start_locked(lock, true).await
    }

    /// [`Platform::start`] with the data dir's [`ServeLock`] already held (`tarn serve` takes it
    /// before opening anything). Without `pipeline` the ingress runs alone: what lands stays
    /// landed for a later start with the pipeline (`tarn serve --no-pipeline`).
    pub async fn start_locked(&self, lock: ServeLock, pipeline: bool) -> anyhow::Result<Running> {
        let listener = tokio::net::TcpListener::bind(self.config.listen)
            .await
            .with_context(|| {
                format!(
                    "listening on {} (is the port in use? pass --listen)",
                    self.config.listen
                )
            })?;
        let addr = listener.local_addr()?;
        let notify = Arc::new(Notify::new());
        let (stop_tx, stop_rx) = watch::channel(false);

        let runner = self.pipeline.clone();
        let (wake, rx) = (notify.clone(), stop_rx.clone());
        let pipeline_task = tokio::spawn(async move {
            if pipeline {
                runner.run(wake, rx).await
            } else {
                Ok(Report::default())
            }
        });

        let app = tarn_ingress::instrument(
            tarn_ingress::router_with_audit(
                self.ingress_state(Some(notify)),
                Some(self.audit.clone()),
            ),
            self.metrics.clone(),
            self.tables.iter().map(|t| t.name.clone()),
        );
        let gauges = tokio::spawn(crate::metrics::refresh_until(
            Metrics::new(self.metrics.clone()),
            crate::metrics::Sources {
                scan_engine: self.scan_engine.clone(),
                definitions: crate::metrics::SYSTEM_DEFINITIONS.into(),
                audit: self.audit.clone(),
            },
            stop_rx.clone(),
        ));
        let mut rx = stop_rx.clone();
        let shutdown = async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let server_task = tokio::spawn(tarn_ingress::serve(listener, app, shutdown));
        let compaction_task = match self.config.compaction.interval_secs {
            0 => None,
            secs => {
                let deps = self.lake_as(component::COMPACTION);
                let c = &self.config.compaction;
                let (target, grace) = (
                    tarn_lake::compact::parse_size(&c.target_size)?,
                    Duration::from_secs(c.grace_period_secs),
                );
                let rx = stop_rx.clone();
                let metrics = Metrics::new(self.metrics.clone());
                Some(tokio::spawn(tarn_lake::compact::run_every(
                    Duration::from_secs(secs),
                    rx,
                    move || {
                        Compaction::new(deps.clone())
                            .target_size(target)
                            .grace_period(grace)
                            .with_metrics(metrics.clone())
                    },
                )))
            }
        };
        let rescan_task = tarn_lake::review::rescan::spawn_watch(
            self.lake_as(component::RESCAN),
            self.scanner.clone(),
            self.pipeline.stages(),
            self.pipeline.config().retry,
            self.config.scan.rescan_check_secs,
            stop_rx.clone(),
        );
        // retention (`x-tarn.retention`) on the compaction schedule's interval
        let retention_task = match self.config.compaction.interval_secs {
            0 => None,
            secs => {
                let erasers = self.erasers();
                let tables = self.tables.clone();
                let rx = stop_rx.clone();
                let clock = self.clock.clone();
                Some(tokio::spawn(async move {
                    let actor = Actor::Service(ERASE_COMPONENT.into());
                    tarn_lake::erase::run_retention_every(
                        Duration::from_secs(secs),
                        rx,
                        tables,
                        move || clock.now(),
                        |s| {
                            erasers
                                .erasure(s, &actor)
                                .reason("retention")
                                .by(ERASE_COMPONENT)
                        },
                        |r| erasers.record(r, &actor),
                    )
                    .await
                }))
            }
        };
        info!(%addr, data_dir = %self.config.data_dir.display(), stages = ?self.pipeline.stage_names(), pipeline, "tarn is serving");
        Ok(Running {
            addr,
            stop: stop_tx,
            server: server_task,
            pipeline: pipeline_task,
            compaction: compaction_task,
            gauges,
            rescan: rescan_task,
            retention: retention_task,
            audit: self.audit.clone(),
            _lock: lock,
        })
    }
}

/// The one serving tarn of a data dir: an exclusive OS lock on `<data_dir>/serve.lock`, which
/// holds the serving process's id. The OS releases it when the process ends, however it ends.
#[derive(Debug)]
pub struct ServeLock {
    _file: std::fs::File,
}

impl ServeLock {
    /// Takes the lock of `data_dir` (created when missing), or fails at once naming the process
    /// that holds it.
    pub fn acquire(data_dir: &Path) -> anyhow::Result<Self> {
        use std::io::Write;
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating data dir {}", data_dir.display()))?;
        let path = data_dir.join("serve.lock");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let by = match Self::holder(&path) {
                    Some(pid) => format!("tarn process {pid}"),
                    None => "another tarn process".to_string(),
                };
                bail!(
                    "data dir {} is already being served by {by}; stop that process or pass another --data-dir",
                    data_dir.display()
                );
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", path.display()));
            }
        }
        file.set_len(0)
            .and_then(|_| writeln!(file, "{}", std::process::id()))
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(Self { _file: file })
    }

    /// The pid the holder wrote; it writes it just after taking the lock, so an empty file is
    /// read again for a moment.
    fn holder(path: &Path) -> Option<u32> {
        for _ in 0..50 {
            if let Ok(pid) = std::fs::read_to_string(path)
                .unwrap_or_default()
                .trim()
                .parse()
            {
                return Some(pid);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

/// The scanner: the configured clamd; else a clamd tarn starts when ClamAV is installed; else
/// tarn's built-in engine (test signatures only, said loudly).
pub(crate) async fn build_scanner(
    config: &Config,
) -> anyhow::Result<(Arc<dyn Scanner>, Option<crate::clamd::ManagedClamd>)> {
    if let Some(addr) = &config.scan.clamd {
        let s = ClamdScanner::connect(addr, Timeouts::default())
            .with_context(|| format!("scan.clamd {addr:?}"))?;
        s.ping()
            .await
            .with_context(|| format!("clamd at {addr} does not answer; start it or fix --clamd"))?;
        return Ok((Arc::new(s), None));
    }
    // clamd's size limits follow the largest table's max_bytes
    let largest = load_schemas(&config.schemas)
        .map(|t| tarn_catalog::schemas::largest_document(&t))
        .unwrap_or(tarn_catalog::schemas::MAX_DOCUMENT_BYTES);
    if let Some(m) = crate::clamd::start(&config.data_dir, largest).await? {
        return Ok((m.scanner.clone(), Some(m)));
    }
    tracing::warn!(
        "no clamd configured or installed: scanning with tarn's built-in engine, which knows only test signatures; install ClamAV or pass --clamd"
    );
    Ok((Arc::new(BuiltinScanner::default()), None))
}

/// A running platform. Dropping it without [`Running::shutdown`] aborts nothing cleanly: call it.
pub struct Running {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    pipeline: JoinHandle<tarn_lake::Result<Report>>,
    compaction: Option<JoinHandle<usize>>,
    gauges: JoinHandle<()>,
    /// the rescan after definitions updates (`scan.rescan_check_secs`)
    rescan: Option<JoinHandle<()>>,
    retention: Option<JoinHandle<usize>>,
    audit: Arc<LocalAuditSink>,
    _lock: ServeLock,
}

impl Running {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops taking requests, finishes those in flight, then commits what the pipeline has
    /// processed. Returns what the pipeline committed while running.
    pub async fn shutdown(self) -> anyhow::Result<Report> {
        let _ = self.stop.send(true);
        self.server
            .await
            .context("ingress task")?
            .context("ingress server")?;
        let report = self.pipeline.await.context("pipeline task")??;
        if let Some(c) = self.compaction {
            c.await.context("compaction task")?;
        }
        self.gauges.await.context("metrics task")?;
        if let Some(r) = self.rescan {
            r.await.context("rescan task")?;
        }
        if let Some(r) = self.retention {
            r.await.context("retention task")?;
        }
        self.audit
            .flush()
            .await
            .context("writing the audit trail")?;
        Ok(report)
    }
}

/// `plain`'s stores wrapped so that every call is recorded in the trail as `component`'s, on
/// behalf of `actor` when one is given.
fn audited_lake(
    plain: &Lake,
    audit: &Arc<LocalAuditSink>,
    component: &str,
    actor: Option<&Actor>,
) -> Lake {
    plain.map_stores(|s| {
        let store = AuditedStore::new(s, audit.clone(), component).record_empty_lists(false);
        Arc::new(match actor {
            Some(a) => store.with_identity(a.clone()),
            None => store,
        })
    })
}

/// Builds the erasures of one platform; cheap to clone into a task.
#[derive(Debug, Clone)]
pub struct Erasers {
    /// the lake on the unaudited stores
    plain_lake: Lake,
    audit: Arc<LocalAuditSink>,
    grace: Duration,
}

impl Erasers {
    /// The lake as an erasure by `actor` works on it: its stores' calls recorded in the trail
    /// as `actor`'s through `tarn-erase`.
    pub fn lake(&self, actor: &Actor) -> Lake {
        audited_lake(&self.plain_lake, &self.audit, ERASE_COMPONENT, Some(actor))
    }

    /// An erasure of `selector` by `actor`: the configured grace period, `--where` predicates
    /// compiled by the embedded engine.
    pub fn erasure(&self, selector: Selector, actor: &Actor) -> Erasure {
        Erasure::new(self.lake(actor), selector)
            .grace_period(self.grace)
            .with_predicates(predicate_compiler())
    }

    /// One trail event per erasure `report` finished (`tarn_lake::erase::erasure_event`).
    pub fn record(&self, report: &EraseReport, actor: &Actor) {
        for r in &report.finished {
            self.audit.record(erasure_event(
                r,
                self.plain_lake.state.bucket(),
                actor.clone(),
            ));
        }
    }

    /// The erasures' records and whether their bytes are gone (`tarn erase --status`).
    pub async fn status(&self) -> anyhow::Result<Vec<tarn_lake::erase::ErasureStatus>> {
        Ok(tarn_lake::erase::status(self.plain_lake.state.as_ref()).await?)
    }
}

/// `--where` predicates compiled by the embedded engine.
pub fn predicate_compiler() -> PredicateCompiler {
    Arc::new(|sql, schema| {
        let p = SqlPredicate::compile(sql, schema).map_err(|e| e.to_string())?;
        let f: RowPredicate = Arc::new(move |b| p.evaluate(b).map_err(|e| e.to_string()));
        Ok(f)
    })
}

/// Waits until GET /health answers 200, or fails after `timeout`.
pub async fn wait_healthy(
    client: &reqwest::Client,
    base: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Ok(r) = client.get(format!("{base}/health")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("tarn at {base} did not become healthy within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether `dir` holds a tarn data dir (for commands that only read one).
pub fn require_data_dir(dir: &Path) -> anyhow::Result<()> {
    if !dir.join("catalog").is_dir() {
        bail!(
            "no tarn data in {}; run `tarn serve --data-dir {}` (or `tarn demo`) first, or pass --data-dir",
            dir.display(),
            dir.display()
        );
    }
    Ok(())
}
