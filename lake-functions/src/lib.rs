//! tarn's lake functions. Stage logic is plain functions over bytes and metadata:
//! - [`validate`]: JSON Schema per record for JSON tables, magic numbers for binary tables;
//! - [`normalize`]: records and document rows to Arrow and Parquet;
//! - [`stage`]: the small [`Stage`] trait the pipeline runs in configured order, and the one
//!   retry rule; [`registry`]: stage names to stages;
//! - [`lake`]: the [`Lake`] context; [`item`]: what a document becomes in its batch;
//!   [`commit`]: the exactly-once batch commit; [`review`]: the quarantine's review, replay
//!   and release, and rescans of stored objects;
//! - [`runner`]: the local driver (the embedded platform's pipeline). The Lambda functions
//!   (`tarn-aws`) are other thin drivers of the same functions.

pub mod commit;
pub mod compact;
pub mod detect;
pub mod erase;
pub mod error;
pub mod item;
pub mod lake;
pub mod landed;
pub mod lock;
pub mod metrics;
pub mod normalize;
pub mod registry;
pub mod review;
pub mod runner;
pub mod scan;
pub mod stage;
pub mod strip;
pub mod validate;

pub use error::{LakeError, Result};
pub use lake::{Lake, LakeParts};
pub use runner::{Pipeline, PipelineConfig};
pub use stage::{Document, RetryPolicy, Stage, StageError, Verdict};
