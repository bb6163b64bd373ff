//! The stages as Lambda functions: thin `main`s (in `src/bin/`) build the clients once with
//! [`Functions::connect`] and hand every event to a handler here, which the tests call directly.
//!
//! - [`pipeline::StageFunction`]: validate, strip (and scan, once it exists) — S3 notifications
//!   through SQS, a hand-off per document to the next stage;
//! - [`pipeline::NormalizeFunction`]: hand-offs → Parquet, sealed objects, `documents` rows,
//!   partitions in Glue, exactly once per document id;
//! - [`authorizer::Authorizer`]: API Gateway's Lambda authorizer.
//!
//! Every SQS handler answers with `batchItemFailures` (the function's event source mapping needs
//! `ReportBatchItemFailures`), so a failed message is retried alone.

pub mod authorizer;
pub mod events;
pub mod pipeline;

use crate::config::AwsConfig;
use crate::ports::AwsPorts;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{LambdaEvent, service_fn};
use pipeline::{FunctionConfig, NormalizeFunction, StageFunction};
use std::sync::Arc;
use tarn_catalog::load_schemas;
use tarn_core::SystemClock;
use tarn_lake::{PipelineDeps, Stage};

pub type BoxError = lambda_runtime::Error;

/// JSON logs on stdout (CloudWatch), filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .without_time()
        .try_init();
}

/// The stage a name stands for.
pub fn stage_by_name(name: &str, deps_tables: &[tarn_catalog::TableSpec]) -> Result<Arc<dyn Stage>, String> {
    match name {
        "validate" => Ok(Arc::new(tarn_lake::validate::Validate::new(deps_tables).map_err(|e| e.to_string())?)),
        "strip" => Ok(Arc::new(tarn_lake::strip::Strip::new())),
        other => Err(format!("stage {other:?} has no Lambda function in this build")),
    }
}

/// What every function needs, built once per cold start.
#[derive(Debug, Clone)]
pub struct Functions {
    pub config: AwsConfig,
    pub deps: PipelineDeps,
    pub function: FunctionConfig,
}

impl Functions {
    /// The pipeline's dependencies on AWS (stores, KMS, Glue) and the table schemas.
    pub fn new(ports: &AwsPorts) -> Result<Self, BoxError> {
        let config = ports.config.clone();
        let tables = load_schemas(&config.schemas_dir).map_err(|e| format!("loading the table schemas from {}: {e}", config.schemas_dir.display()))?;
        let deps = PipelineDeps {
            tables,
            ingress: ports.ingress.clone(),
            lake: ports.lake.clone(),
            quarantine: ports.quarantine.clone(),
            state: ports.state.clone(),
            kms: ports.kms.clone(),
            catalog: ports.catalog.clone(),
            database: config.glue_database.clone(),
            clock: Arc::new(SystemClock),
            stages: vec![],
        };
        let mut function = FunctionConfig::default();
        if let Some(secs) = std::env::var("TARN_AWS_LEASE_SECS").ok().and_then(|s| s.parse().ok()) {
            function.lease = std::time::Duration::from_secs(secs);
        }
        Ok(Self { config, deps, function })
    }

    /// Configuration from `TARN_AWS_CONFIG`/`TARN_AWS_*`, clients from the default chain.
    pub async fn connect() -> Result<Self, BoxError> {
        let config = AwsConfig::load_default()?;
        let ports = AwsPorts::connect(&config).await;
        Self::new(&ports)
    }

    pub fn stage(&self, name: &str) -> Result<StageFunction, BoxError> {
        if !self.config.stages.iter().any(|s| s == name) {
            return Err(format!("stage {name} is not in the configured stages ({})", self.config.stages.join(",")).into());
        }
        let stage = stage_by_name(name, &self.deps.tables)?;
        let first = self.config.stages.first().map(String::as_str) == Some(name);
        Ok(StageFunction::new(self.deps.clone(), stage, first, self.config.next_stage(name), self.function.clone()))
    }

    pub fn normalize(&self) -> NormalizeFunction {
        NormalizeFunction::new(self.deps.clone(), self.function.clone())
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

/// Runs the normalize function under the Lambda runtime (registering the tables on cold start).
pub async fn run_normalize() -> Result<(), BoxError> {
    init_tracing();
    let f = Arc::new(Functions::connect().await?.normalize());
    f.setup_catalog().await.map_err(|e| format!("registering the tables in Glue: {e}"))?;
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<SqsEvent>| {
        let f = f.clone();
        async move { Ok::<SqsBatchResponse, BoxError>(f.handle(ev.payload).await) }
    }))
    .await
}

/// Runs the authorizer under the Lambda runtime.
pub async fn run_authorizer() -> Result<(), BoxError> {
    init_tracing();
    let config = AwsConfig::load_default()?;
    let ports = AwsPorts::connect(&config).await;
    let a = Arc::new(authorizer::Authorizer::new(ports.verifier.clone()));
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<serde_json::Value>| {
        let a = a.clone();
        async move { a.handle(ev.payload).await.map_err(BoxError::from) }
    }))
    .await
}
