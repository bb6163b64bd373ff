//! [`AwsPorts`]: every port built from one [`AwsConfig`], clients made once.

use crate::athena::AthenaQueryEngine;
use crate::cognito::CognitoJwks;
use crate::config::AwsConfig;
use crate::glue::GlueCatalog;
use crate::kms::KmsClient;
use crate::s3::S3ObjectStore;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use std::sync::Arc;
use tarn_core::{Clock, SystemClock};
use tarn_ingress::{JwksVerifier, VerifierConfig};

/// The AWS implementations of tarn's ports, ready to hand to the pipeline, the ingress and the
/// query command.
#[derive(Debug, Clone)]
pub struct AwsPorts {
    pub config: AwsConfig,
    pub sdk: SdkConfig,
    pub ingress: Arc<S3ObjectStore>,
    pub lake: Arc<S3ObjectStore>,
    pub quarantine: Arc<S3ObjectStore>,
    /// the pipeline's state: `state_bucket` under `state_prefix`
    pub state: Arc<S3ObjectStore>,
    pub kms: Arc<KmsClient>,
    pub catalog: Arc<GlueCatalog>,
    pub query: Arc<AthenaQueryEngine>,
    pub cloudtrail: aws_sdk_cloudtrail::Client,
    pub verifier: Arc<JwksVerifier>,
}

/// The SDK configuration for `config`: its region and endpoint override, credentials from the
/// default chain (environment, profile, container or instance role).
pub async fn sdk_config(config: &AwsConfig) -> SdkConfig {
    let mut loader =
        aws_config::defaults(BehaviorVersion::latest()).region(Region::new(config.region.clone()));
    if let Some(url) = &config.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

impl AwsPorts {
    /// The lake of `tables` on these ports: the stores, KMS and Glue, its locks as leases in
    /// the state store ([`S3LakeLock`](crate::S3LakeLock)), the system clock.
    pub fn lake(&self, tables: Vec<tarn_catalog::TableSpec>) -> tarn_lake::Lake {
        tarn_lake::Lake::new(tarn_lake::LakeParts {
            tables,
            ingress: self.ingress.clone(),
            lake: self.lake.clone(),
            quarantine: self.quarantine.clone(),
            state: self.state.clone(),
            kms: self.kms.clone(),
            catalog: self.catalog.clone(),
            database: self.config.glue_database.clone(),
            clock: Arc::new(SystemClock),
            lock: Arc::new(crate::S3LakeLock::new(self.state.clone())),
        })
    }

    /// Builds every port with the default credential chain.
    pub async fn connect(config: &AwsConfig) -> Self {
        let sdk = sdk_config(config).await;
        Self::with_sdk_config(config, sdk)
    }

    /// Builds every port on a given SDK configuration (the tests give static credentials).
    pub fn with_sdk_config(config: &AwsConfig, sdk: SdkConfig) -> Self {
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(config.force_path_style)
                .build(),
        );
        let key = Some(config.kms_key_id.clone());
        let store = |bucket: &str| Arc::new(S3ObjectStore::new(s3.clone(), bucket, key.clone()));
        let state = Arc::new(
            S3ObjectStore::new(s3.clone(), &config.state_bucket, key.clone())
                .with_prefix(&config.state_prefix),
        );
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let verifier = Arc::new(JwksVerifier::new(
            VerifierConfig::new(
                &config.cognito_issuer,
                config.cognito_client_ids.iter().cloned(),
            ),
            Arc::new(CognitoJwks::new(&config.cognito_jwks_url)),
            clock,
        ));
        Self {
            ingress: store(&config.ingress_bucket),
            lake: store(&config.lake_bucket),
            quarantine: store(&config.quarantine_bucket),
            state,
            kms: Arc::new(KmsClient::new(
                aws_sdk_kms::Client::new(&sdk),
                &config.kms_key_id,
            )),
            catalog: Arc::new(GlueCatalog::new(aws_sdk_glue::Client::new(&sdk))),
            query: Arc::new(AthenaQueryEngine::new(
                aws_sdk_athena::Client::new(&sdk),
                &config.glue_database,
                &config.athena_workgroup,
                &config.athena_output_location,
            )),
            cloudtrail: aws_sdk_cloudtrail::Client::new(&sdk),
            verifier,
            config: config.clone(),
            sdk,
        }
    }

    /// `tarn audit --check-trail`: the configured trail against the platform's buckets.
    pub async fn check_trail(&self) -> Result<crate::cloudtrail::TrailReport, String> {
        let c = &self.config;
        let mut buckets = vec![
            c.ingress_bucket.as_str(),
            c.lake_bucket.as_str(),
            c.quarantine_bucket.as_str(),
        ];
        if !buckets.contains(&c.state_bucket.as_str()) {
            buckets.push(&c.state_bucket);
        }
        // waiters poll the leases twice a second: the template leaves them out of the trail
        let locks = format!(
            "{}/{}{}",
            c.state_bucket,
            c.state_prefix,
            crate::lock::LOCKS_PREFIX
        );
        crate::cloudtrail::check_trail(
            &self.cloudtrail,
            &c.trail_name,
            &buckets,
            &c.audit_bucket,
            &[locks],
        )
        .await
    }
}
