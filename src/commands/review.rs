//! What `tarn quarantine` and `tarn rescan` work with, on either backend: the lake (locally its
//! store calls recorded in the trail as the operator's, made through `tarn-review`; on AWS
//! CloudTrail records the caller's credentials), the configured stages, and the operator's name
//! for the documents' history. The protocol itself is `tarn_lake::review`.

use crate::commands::serve_aws::AwsLake;
use crate::config::{Backend, Config};
use crate::platform::{Platform, require_data_dir};
use std::sync::Arc;
use tarn_core::audit::{Actor, AuditSink, component};
use tarn_lake::review::rerun::Rerun;
use tarn_lake::{Lake, RetryPolicy, Stage};

pub struct Review {
    pub lake: Lake,
    pub stages: Vec<Arc<dyn Stage>>,
    pub retry: RetryPolicy,
    /// the OS user running the command
    pub operator: String,
    platform: Option<Platform>,
    _aws: Option<AwsLake>,
}

impl Review {
    /// Opens the lake of `config`'s backend; with `scan` false no scanner is started (listing
    /// needs none).
    pub async fn open(mut config: Config, scan: bool) -> anyhow::Result<Self> {
        if !scan {
            config.pipeline.stages.retain(|s| s == "validate");
        }
        let retry = config.pipeline_config().retry;
        let operator = match Actor::local_user() {
            Actor::LocalUser(name) => name,
            _ => "unknown".into(),
        };
        if config.backend == Backend::Aws {
            let aws = AwsLake::open(config).await?;
            return Ok(Self {
                lake: aws.lake.clone(),
                stages: aws.stages.clone(),
                retry,
                operator,
                platform: None,
                _aws: Some(aws),
            });
        }
        require_data_dir(&config.data_dir)?;
        // a second process keeps its own chain of trail digests
        config.audit = config.audit.for_run("review");
        config.check()?;
        let platform = Platform::open(config).await?;
        Ok(Self {
            lake: platform.lake_as_operator(component::REVIEW),
            stages: platform.pipeline.stages().to_vec(),
            retry,
            operator,
            platform: Some(platform),
            _aws: None,
        })
    }

    pub fn rerun(&self) -> Rerun {
        Rerun {
            lake: self.lake.clone(),
            stages: self.stages.clone(),
            retry: self.retry,
            operator: self.operator.clone(),
        }
    }

    /// The scan stage, when the pipeline has one.
    pub fn scan(&self) -> Option<&Arc<dyn Stage>> {
        self.stages.iter().find(|s| s.name() == "scan")
    }

    /// Writes what the command did to the trail (locally).
    pub async fn close(self) -> anyhow::Result<()> {
        if let Some(p) = &self.platform {
            p.audit.flush().await?;
        }
        Ok(())
    }
}
