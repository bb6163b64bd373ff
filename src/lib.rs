//! tarn: a data-lake ingestion and query platform. This crate is the `tarn` command and the
//! assembly of the embedded platform; the parts live in the workspace crates:
//! `tarn-core` (ports), `tarn-catalog`, `tarn-ingress`, `tarn-lake` (stages and runner),
//! `tarn-query`.

pub mod clamd;
pub mod cli;
pub mod commands;
pub mod config;
pub mod metrics;
pub mod platform;
pub mod producer;
pub mod status;

pub use config::Config;
pub use platform::{Platform, Running};
