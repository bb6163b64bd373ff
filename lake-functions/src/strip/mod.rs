//! The strip stage: see mod docs once written.
