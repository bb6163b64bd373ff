//! tarn-core: the ports every other crate talks to, and their local implementations.
//!
//! Each outside service tarn uses is a trait here, documented with the guarantees callers rely
//! on. The local implementations live beside the traits; the AWS ones live in their own crate and
//! run through the same conformance suites (`conformance`, compiled for tests and with the
//! `testsuite` feature).

pub mod audit;
pub mod clock;
#[cfg(any(test, feature = "testsuite"))]
pub mod conformance;
pub mod document;
pub mod envelope;
pub mod error;
pub mod keyfile;
pub mod kms;
pub mod metrics;
pub mod objects;
pub mod parts;
pub mod store;
#[cfg(any(test, feature = "testsuite"))]
pub mod testing;

pub use clock::{Clock, ManualClock, SystemClock};
pub use document::{DocumentRow, Status};
pub use envelope::{open, seal};
pub use error::{Error, ErrorKind, Result};
pub use kms::{DataKey, EncryptionContext, Kms, LocalKms};
pub use metrics::{Metrics, Recorder};
pub use store::{GetResult, LocalObjectStore, Metadata, ObjectInfo, ObjectStore, validate_key};
