//! The time budget of one strip: a deadline the strippers check in their loops, so that a
//! hostile document stops costing time once its budget is spent (the work really stops: every
//! loop over the input's parts checks it).

use super::{Limits, StripError};
use std::time::{Duration, Instant};

/// When the strip of one document started and how long it may take ([`Limits::strip_budget`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    started: Instant,
    budget: Duration,
}

impl Deadline {
    /// A deadline starting now.
    pub(crate) fn start(limits: &Limits) -> Self {
        Self {
            started: Instant::now(),
            budget: limits.strip_budget,
        }
    }

    /// `Err(OverBudget)` once the budget is spent.
    pub(crate) fn check(&self, format: &'static str) -> Result<(), StripError> {
        if self.started.elapsed() >= self.budget {
            return Err(StripError::OverBudget {
                format,
                budget: self.budget,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spent_budget_is_an_error_naming_it() {
        let limits = Limits {
            strip_budget: Duration::ZERO,
            ..Limits::default()
        };
        let e = Deadline::start(&limits).check("pdf").unwrap_err();
        assert_eq!(
            e.to_string(),
            "pdf: stripping took longer than its time budget of 0ns: refusing the document"
        );
        assert!(Deadline::start(&Limits::default()).check("pdf").is_ok());
    }
}
