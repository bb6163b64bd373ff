//! `tarn serve --backend aws`: the same ingress and pipeline on AWS's services (S3, KMS, Glue,
//! Cognito), for running tarn's ingress outside API Gateway or draining the pipeline without
//! Lambda. Tokens come from the Cognito pool; the dev issuer is off.

use crate::config::Config;
use crate::platform::build_scanner;
use anyhow::Context;
use std::sync::Arc;
use tarn_ingress::{IngressState, table_map};
use tarn_lake::registry::build_stages;
use tarn_lake::{Lake, Pipeline};
use tokio::sync::{Notify, watch};

/// The lake on AWS's services as the configuration names them, with the configured stages
/// (their scanner the configured clamd, else the deployment's): what `tarn serve --backend aws`,
/// `tarn quarantine` and `tarn rescan` work with.
pub(crate) struct AwsLake {
    pub aws: tarn_aws::AwsConfig,
    pub ports: tarn_aws::AwsPorts,
    pub tables: Vec<tarn_catalog::TableSpec>,
    pub lake: Lake,
    pub stages: Vec<Arc<dyn tarn_lake::Stage>>,
    pub config: Config,
    /// the scan stage's engine, when the pipeline scans
    pub scanner: Option<Arc<dyn tarn_lake::scan::Scanner>>,
    _managed: Option<crate::clamd::ManagedClamd>,
}

impl AwsLake {
    pub(crate) async fn open(mut config: Config) -> anyhow::Result<Self> {
        let aws = tarn_aws::AwsConfig::load_default()
            .context("the AWS configuration (see aws/README.md)")?;
        let ports = tarn_aws::AwsPorts::connect(&aws).await;
        let tables = tarn_catalog::load_schemas(&config.schemas)
            .with_context(|| format!("loading {}", config.schemas.display()))?;
        if config.scan.clamd.is_none() {
            config.scan.clamd = aws.clamd_addr.clone();
        }
        let (scanner, managed) = if config.pipeline.stages.iter().any(|s| s == "scan") {
            let (s, m) = build_scanner(&config).await?;
            (Some(s), m)
        } else {
            (None, None)
        };
        let lake = ports.lake(tables.clone());
        let stages = build_stages(&config.pipeline.stages, &tables, scanner.as_ref())?;
        Ok(Self {
            aws,
            ports,
            tables,
            lake,
            stages,
            config,
            scanner,
            _managed: managed,
        })
    }
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    let a = AwsLake::open(config).await?;
    let (aws, ports, config) = (&a.aws, &a.ports, &a.config);
    let clock = a.lake.clock.clone();
    let metrics = Arc::new(tarn_ingress::PrometheusRecorder::new());
    let pipeline = Arc::new(
        Pipeline::new(a.lake.clone(), a.stages.clone(), config.pipeline_config())
            .with_metrics(tarn_core::Metrics::new(metrics.clone())),
    );
    pipeline
        .setup_catalog()
        .await
        .context("registering tables in Glue")?;

    let notify = Arc::new(Notify::new());
    let names: Vec<String> = a.tables.iter().map(|t| t.name.clone()).collect();
    let state = IngressState {
        tables: table_map(a.tables.clone()),
        ingress: ports.ingress.clone(),
        lake: ports.lake.clone(),
        state: ports.state.clone(),
        kms: ports.kms.clone(),
        verifier: ports.verifier.clone(),
        issuer: None,
        clock,
        notify: Some(notify.clone()),
        max_in_flight: config.ingress.max_in_flight,
        serve_unscanned: config.scan.serve_unscanned || aws.serve_unscanned,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let _rescan = tarn_lake::review::rescan::spawn_watch(
        a.lake.clone(),
        a.scanner.clone(),
        &a.stages,
        config.pipeline_config().retry,
        config.scan.rescan_check_secs,
        stop_rx.clone(),
    );
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let p = pipeline.clone();
    let rx = stop_rx.clone();
    let pipeline_task = tokio::spawn(async move { p.run(notify, rx).await });
    let mut rx = stop_rx.clone();
    let server = tokio::spawn(tarn_ingress::serve(
        listener,
        tarn_ingress::instrument(tarn_ingress::router(state), metrics, names),
        async move {
            let _ = rx.wait_for(|s| *s).await;
        },
    ));
    eprintln!(
        "tarn (aws backend: {} in {}) is serving on http://{}; stop with Ctrl-C",
        aws.lake_bucket, aws.region, config.listen
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    let _ = stop_tx.send(true);
    server.await??;
    pipeline_task.await??;
    Ok(())
}
