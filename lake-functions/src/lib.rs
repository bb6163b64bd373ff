//! tarn's lake functions. Stage logic is plain functions over bytes and metadata:
//! - [`validate`]: JSON Schema per record for JSON tables, magic numbers for binary tables;
//! - [`normalize`]: records and document rows to Arrow and Parquet;
//! - [`stage`]: the small [`Stage`] trait the pipeline runs in configured order;
//! - [`runner`]: the local driver (the embedded platform's pipeline). The Lambda binaries are
//!   other thin drivers around the same functions.

pub mod batch;
pub mod compact;
pub mod detect;
pub mod error;
pub mod landed;
pub mod lock;
pub mod normalize;
pub mod runner;
pub mod scan;
pub mod stage;
pub mod strip;
pub mod validate;

pub use error::{LakeError, Result};
pub use runner::{Pipeline, PipelineConfig, PipelineDeps};
pub use stage::{Document, Stage, StageError, Verdict};
