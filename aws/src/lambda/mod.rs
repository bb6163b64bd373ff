//! The stages as Lambda functions: thin `main`s (in `src/bin/`) build the clients once with
//! [`Functions::connect`] and hand every event to a handler here, which the tests call directly.
//!
//! - [`pipeline::StageFunction`]: validate, scan, strip — S3 notifications through SQS, a
//!   hand-off per document to the next stage; [`scan::ScanFunction`]: the scan stage with clamd
//!   at `clamd_addr`, or its own clamd on the definitions mirror;
//! - [`updater::Updater`]: refreshes the definitions mirror with freshclam (a schedule);
//! - [`pipeline::NormalizeFunction`]: hand-offs → Parquet, sealed objects, `documents` rows,
//!   partitions in Glue, exactly once per document id;
//! - [`authorizer::Authorizer`]: API Gateway's Lambda authorizer;
//! - [`documents::DocumentsFunction`]: the status and content routes, and the multipart upload
//!   routes ([`uploads::UploadsFunction`]) (Lambda proxy integration);
//! - [`retention::RetentionFunction`]: erases what `x-tarn.retention` no longer keeps (a schedule).
//!
//! Every SQS handler answers with `batchItemFailures` (the function's event source mapping needs
//! `ReportBatchItemFailures`), so a failed message is retried alone.

pub mod authorizer;
pub mod documents;
pub mod events;
pub mod pipeline;
pub mod retention;
pub mod scan;
pub mod updater;
pub mod uploads;

use crate::config::AwsConfig;
use crate::ports::AwsPorts;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{LambdaEvent, service_fn};
use pipeline::{FunctionConfig, NormalizeFunction, StageFunction};
use std::sync::Arc;
use tarn_catalog::load_schemas;
use tarn_lake::Lake;
use tarn_lake::compact::Compaction;
use tarn_lake::registry::build_stage;

pub type BoxError = lambda_runtime::Error;

/// JSON logs on stdout (CloudWatch), filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .without_time()
        .try_init();
}

/// What every function needs, built once per cold start.
#[derive(Debug, Clone)]
pub struct Functions {
    pub config: AwsConfig,
    /// the lake on S3, KMS and Glue, with its locks as leases in the state store
    pub lake: Lake,
    pub function: FunctionConfig,
    /// the definitions mirror (`clamav_definitions`), when configured
    pub definitions: Option<Arc<dyn tarn_core::ObjectStore>>,
    /// where the scan function's own clamd keeps its definitions and files
    /// ([`scan::DEFAULT_DIR`])
    pub clamav_dir: std::path::PathBuf,
    /// where the functions record their measurements: EMF lines on stdout once
    /// [`Functions::connect`]ed, nothing by default
    pub metrics: tarn_core::Metrics,
}

impl Functions {
    /// The lake on AWS (stores, KMS, Glue, the S3 lease lock) and the table schemas.
    pub fn new(ports: &AwsPorts) -> Result<Self, BoxError> {
        let config = ports.config.clone();
        let tables = load_schemas(&config.schemas_dir).map_err(|e| {
            format!(
                "loading the table schemas from {}: {e}",
                config.schemas_dir.display()
            )
        })?;
        let lake = ports.lake(tables);
        let mut function = FunctionConfig::default();
        if let Some(secs) = std::env::var("TARN_AWS_LEASE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
        {
            function.lease = std::time::Duration::from_secs(secs);
        }
        // the mirror's objects are ClamAV's public definitions, encrypted by the bucket's own
        // default (SSE-S3), not the platform key
        let definitions = config.clamav_definitions.as_ref().map(|d| {
            Arc::new(
                crate::S3ObjectStore::new(ports.lake.client().clone(), &d.bucket, None)
                    .with_prefix(&d.prefix),
            ) as Arc<dyn tarn_core::ObjectStore>
        });
        Ok(Self {
            config,
            lake,
            function,
            definitions,
            clamav_dir: std::path::PathBuf::from(scan::DEFAULT_DIR),
            metrics: tarn_core::Metrics::default(),
        })
    }

    /// Configuration from `TARN_AWS_CONFIG`/`TARN_AWS_*`, clients from the default chain.
    pub async fn connect() -> Result<Self, BoxError> {
        let config = AwsConfig::load_default()?;
        let ports = AwsPorts::connect(&config).await;
        let mut functions = Self::new(&ports)?;
        functions.metrics = crate::metrics::EmfRecorder::stdout();
        Ok(functions)
    }

    pub fn stage(&self, name: &str) -> Result<StageFunction, BoxError> {
        let scanner = match name {
            "scan" => Some(self.scanner()?.0),
            _ => None,
        };
        self.stage_with(name, scanner)
    }

    fn stage_with(
        &self,
        name: &str,
        scanner: Option<Arc<dyn tarn_lake::scan::Scanner>>,
    ) -> Result<StageFunction, BoxError> {
        if !self.config.stages.iter().any(|s| s == name) {
            return Err(format!(
                "stage {name} is not in the configured stages ({})",
                self.config.stages.join(",")
            )
            .into());
        }
        let stage = build_stage(name, &self.lake.tables(), scanner.as_ref())?;
        let first = self.config.stages.first().map(String::as_str) == Some(name);
        Ok(StageFunction::new(
            self.lake.clone(),
            stage,
            first,
            self.config.next_stage(name),
            self.function.clone(),
        )
        .with_metrics(self.metrics.clone()))
    }

    /// The scan function's scanner: clamd at `clamd_addr`, else its own clamd on the
    /// definitions mirror (started on the first batch, returned as well).
    fn scanner(
        &self,
    ) -> Result<
        (
            Arc<dyn tarn_lake::scan::Scanner>,
            Option<Arc<scan::MirroredClamd>>,
        ),
        BoxError,
    > {
        if let Some(addr) = self.config.clamd_addr.as_deref() {
            let s =
                tarn_lake::scan::ClamdScanner::connect(addr, tarn_lake::scan::Timeouts::default())
                    .map_err(|e| format!("clamd at {addr}: {e}"))?;
            return Ok((Arc::new(s), None));
        }
        let mirror = self.definitions.clone().ok_or(
            "the scan stage needs clamd_addr (TARN_AWS_CLAMD_ADDR) or the definitions mirror (TARN_AWS_CLAMAV_DEFINITIONS)",
        )?;
        let m = Arc::new(
            scan::MirroredClamd::new(mirror, &self.clamav_dir).for_documents_up_to(
                tarn_catalog::schemas::largest_document(self.lake.layout.specs.values()),
            ),
        );
        Ok((m.clone(), Some(m)))
    }

    /// The scan stage's function: clamd at `clamd_addr`, or its own clamd on the definitions
    /// mirror when `clamd_addr` is unset.
    pub fn scan(&self) -> Result<scan::ScanFunction, BoxError> {
        let (scanner, clamd) = self.scanner()?;
        Ok(scan::ScanFunction {
            stage: self.stage_with("scan", Some(scanner))?,
            clamd,
        })
    }

    /// The refresher of the definitions mirror.
    pub fn updater(&self) -> Result<updater::Updater, BoxError> {
        let mirror = self.definitions.clone().ok_or(
            "the updater needs the definitions mirror (TARN_AWS_CLAMAV_DEFINITIONS, s3://bucket/prefix/)",
        )?;
        Ok(
            updater::Updater::new(mirror, self.clamav_dir.with_file_name("tarn-freshclam"))
                .with_metrics(self.metrics.clone()),
        )
    }

    pub fn normalize(&self) -> NormalizeFunction {
        NormalizeFunction::new(self.lake.clone(), self.function.clone())
            .with_metrics(self.metrics.clone())
    }

    /// The status and content routes over the same stores as the stages.
    pub fn documents(&self) -> documents::DocumentsFunction {
        documents::DocumentsFunction::new(
            tarn_ingress::Documents::new(
                self.lake.layout.specs.keys().cloned(),
                self.lake.ingress.clone(),
                self.lake.lake.clone(),
                self.lake.state.clone(),
                self.lake.kms.clone(),
            )
            .serve_unscanned(self.config.serve_unscanned),
        )
        .with_uploads(uploads::UploadsFunction {
            uploads: tarn_ingress::Uploads {
                ingress: self.lake.ingress.clone(),
                state: self.lake.state.clone(),
                kms: self.lake.kms.clone(),
                clock: self.lake.clock.clone(),
            },
            tables: self.lake.layout.specs.clone(),
        })
    }

    /// The retention function, replaced files kept for compaction's default grace period.
    pub fn retention(&self) -> retention::RetentionFunction {
        retention::RetentionFunction {
            lake: self.lake.clone(),
            tables: self.lake.tables(),
            grace: tarn_lake::compact::DEFAULT_GRACE_PERIOD,
        }
    }

    pub fn compaction(&self) -> CompactionFunction {
        CompactionFunction {
            lake: self.lake.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

/// What a compaction run is asked to do: an EventBridge schedule's event (every field absent:
/// every table and partition, default target size) or a direct invocation with
/// `{"table": "events", "partition": "dt=2024-05-06", "target_size": 134217728}`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct CompactionRequest {
    pub table: Option<String>,
    pub partition: Option<String>,
    pub target_size: Option<u64>,
}

/// Compaction as a Lambda function (the same [`Compaction`] `tarn compact` runs).
#[derive(Debug, Clone)]
pub struct CompactionFunction {
    pub lake: Lake,
    pub metrics: tarn_core::Metrics,
}

impl CompactionFunction {
    /// Runs one compaction; the report is the function's answer.
    pub async fn handle(&self, event: serde_json::Value) -> Result<serde_json::Value, BoxError> {
        // an EventBridge scheduled event carries its input in `detail` (or nothing)
        let input = match event.get("detail-type") {
            Some(_) => event.get("detail").cloned().unwrap_or_default(),
            None => event,
        };
        let req: CompactionRequest = if input.is_null() {
            CompactionRequest::default()
        } else {
            serde_json::from_value(input).map_err(|e| format!("bad compaction request: {e}"))?
        };
        let mut c = Compaction::new(self.lake.clone()).with_metrics(self.metrics.clone());
        if let Some(t) = &req.table {
            c = c.table(t.clone());
        }
        if let Some(p) = &req.partition {
            c = c.partition(p)?;
        }
        if let Some(n) = req.target_size {
            c = c.target_size(n);
        }
        let report = c.execute().await?;
        tracing::info!(
            partitions = report.partitions_compacted,
            files_in = report.files_in,
            files_out = report.files_out,
            "compaction done"
        );
        Ok(serde_json::to_value(&report)?)
    }
}

/// Runs a stage function under the Lambda runtime.
pub async fn run_stage(name: &str) -> Result<(), BoxError> {
    init_tracing();
    let f = Arc::new(Functions::connect().await?.stage(name)?);
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<SqsEvent>| {
        let f = f.clone();
        async move { Ok::<SqsBatchResponse, BoxError>(f.handle(ev.payload).await) }
    }))
    .await
}

/// Runs the scan function under the Lambda runtime: its clamd (when it runs its own) starts
/// on the first batch, not during init (Lambda's init phase allows 10 s; loading ClamAV's
/// database takes longer).
pub async fn run_scan() -> Result<(), BoxError> {
    init_tracing();
    let f = Arc::new(Functions::connect().await?.scan()?);
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<SqsEvent>| {
        let f = f.clone();
        async move { Ok::<SqsBatchResponse, BoxError>(f.handle(ev.payload).await) }
    }))
    .await
}

/// Runs the definitions updater under the Lambda runtime (an EventBridge schedule).
pub async fn run_updater() -> Result<(), BoxError> {
    init_tracing();
    let f = Arc::new(Functions::connect().await?.updater()?);
    lambda_runtime::run(service_fn(move |_ev: LambdaEvent<serde_json::Value>| {
        let f = f.clone();
        async move {
            let report = f.run().await?;
            Ok::<serde_json::Value, BoxError>(serde_json::to_value(&report)?)
        }
    }))
    .await
}

/// Runs the normalize function under the Lambda runtime (registering the tables on cold start).
pub async fn run_normalize() -> Result<(), BoxError> {
    init_tracing();
    let f = Arc::new(Functions::connect().await?.normalize());
    f.setup_catalog()
        .await
        .map_err(|e| format!("registering the tables in Glue: {e}"))?;
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<SqsEvent>| {
        let f = f.clone();
        async move { Ok::<SqsBatchResponse, BoxError>(f.handle(ev.payload).await) }
    }))
    .await
}

/// Runs compaction under the Lambda runtime (an EventBridge schedule, or direct invocations).
pub async fn run_compaction() -> Result<(), BoxError> {
    init_tracing();
    let f = Arc::new(Functions::connect().await?.compaction());
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<serde_json::Value>| {
        let f = f.clone();
        async move { f.handle(ev.payload).await }
    }))
    .await
}

/// Runs the status and content routes under the Lambda runtime.
pub async fn run_documents() -> Result<(), BoxError> {
    init_tracing();
    let f = Arc::new(Functions::connect().await?.documents());
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<serde_json::Value>| {
        let f = f.clone();
        async move { Ok::<serde_json::Value, BoxError>(f.handle(ev.payload).await) }
    }))
    .await
}

/// Runs the authorizer under the Lambda runtime.
pub async fn run_authorizer() -> Result<(), BoxError> {
    init_tracing();
    let config = AwsConfig::load_default()?;
    let ports = AwsPorts::connect(&config).await;
    // uploads are decided against the declared tables (the schemas layer)
    let tables = load_schemas(&config.schemas_dir).map_err(|e| {
        format!(
            "loading the table schemas from {}: {e}",
            config.schemas_dir.display()
        )
    })?;
    let a = Arc::new(authorizer::Authorizer::new(
        ports.verifier.clone(),
        tarn_ingress::table_map(tables),
    ));
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<serde_json::Value>| {
        let a = a.clone();
        async move { a.handle(ev.payload).await.map_err(BoxError::from) }
    }))
    .await
}
