//! The scan stage: see mod docs once written.
