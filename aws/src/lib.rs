//! tarn on AWS: the AWS implementations of tarn's ports, drop-ins for the local ones selected by
//! configuration, and the pipeline stages as Lambda functions.
//!
//! - [`config::AwsConfig`]: one typed configuration (file and/or `TARN_AWS_*` environment);
//! - [`ports::AwsPorts::connect`]: every port built from it;
//! - [`s3::S3ObjectStore`], [`kms::KmsClient`], [`glue::GlueCatalog`],
//!   [`athena::AthenaQueryEngine`], [`cloudtrail::check_trail`], [`cognito::CognitoJwks`].

pub mod athena;
pub mod cfn;
pub mod cloudtrail;
pub mod cognito;
pub mod config;
pub mod glue;
pub mod kms;
pub mod lock;
pub mod metrics;
pub mod ports;
pub mod s3;

pub use athena::{AthenaPolling, AthenaQueryEngine};
pub use cloudtrail::{AuditEvent, TrailReport, check_trail, lookup_events};
pub use cognito::CognitoJwks;
pub use config::{AwsConfig, ConfigError, RawAwsConfig};
pub use glue::GlueCatalog;
pub use kms::KmsClient;
pub use lock::S3LakeLock;
pub use ports::{AwsPorts, sdk_config};
pub use s3::S3ObjectStore;
pub mod lambda;
