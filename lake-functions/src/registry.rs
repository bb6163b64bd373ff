//! The stage registry: the one place a stage's name becomes a [`Stage`]. `tarn serve` (its
//! configured `pipeline.stages`) and the Lambda functions (one per stage) build their stages here.

use crate::error::{LakeError, Result};
use crate::scan::{ScanStage, Scanner};
use crate::stage::Stage;
use crate::strip::Strip;
use crate::validate::Validate;
use std::sync::Arc;
use tarn_catalog::TableSpec;

/// Every stage a pipeline may run, in the order they make sense.
pub const STAGE_NAMES: [&str; 3] = ["validate", "scan", "strip"];

/// Checks a configured list of stages: known names, each once, `validate` first (every later
/// stage and normalize rely on what it establishes).
pub fn check_stage_names(names: &[String]) -> std::result::Result<(), String> {
    if names.first().map(String::as_str) != Some("validate") {
        return Err(format!(
            "the first stage must be \"validate\" (got {names:?})"
        ));
    }
    for (i, s) in names.iter().enumerate() {
        if !STAGE_NAMES.contains(&s.as_str()) {
            return Err(format!(
                "unknown stage {s:?}; known stages: {}",
                STAGE_NAMES.join(", ")
            ));
        }
        if names[..i].contains(s) {
            return Err(format!("stage {s:?} is listed twice"));
        }
    }
    Ok(())
}

/// The stage called `name`; `scan` needs `scanner`.
pub fn build_stage(
    name: &str,
    tables: &[TableSpec],
    scanner: Option<&Arc<dyn Scanner>>,
) -> Result<Arc<dyn Stage>> {
    Ok(match name {
        "validate" => Arc::new(Validate::new(tables)?),
        "scan" => Arc::new(ScanStage::new(scanner.cloned().ok_or_else(|| {
            LakeError::Config("the scan stage needs a scanner: configure clamd".into())
        })?)),
        "strip" => Arc::new(Strip::new()),
        other => {
            return Err(LakeError::Config(format!(
                "unknown stage {other:?}: the stages are {}",
                STAGE_NAMES.join(", ")
            )));
        }
    })
}

/// The stages `names`, in that order. Without `scan`, a document that every stage passes is
/// stored with `scan_result` [`SKIPPED`](crate::scan::SKIPPED) ([`crate::item::batch_item`]).
pub fn build_stages(
    names: &[String],
    tables: &[TableSpec],
    scanner: Option<&Arc<dyn Scanner>>,
) -> Result<Vec<Arc<dyn Stage>>> {
    names
        .iter()
        .map(|n| build_stage(n, tables, scanner))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::BuiltinScanner;

    #[test]
    fn names_become_stages_in_order() {
        let scanner: Arc<dyn Scanner> = Arc::new(BuiltinScanner::default());
        let names: Vec<String> = STAGE_NAMES.iter().map(|s| s.to_string()).collect();
        let stages = build_stages(&names, &[], Some(&scanner)).unwrap();
        let got: Vec<&str> = stages.iter().map(|s| s.name()).collect();
        assert_eq!(got, STAGE_NAMES);
    }

    #[test]
    fn stage_lists_are_checked() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(check_stage_names(&names(&["validate", "scan", "strip"])).is_ok());
        assert!(check_stage_names(&names(&["validate"])).is_ok());
        for (bad, says) in [
            (&["scan", "validate"][..], "first stage"),
            (&[][..], "first stage"),
            (&["validate", "resize"][..], "unknown stage"),
            (&["validate", "scan", "scan"][..], "twice"),
        ] {
            let e = check_stage_names(&names(bad)).unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }

    #[test]
    fn unknown_stages_and_a_scan_without_scanner_are_refused() {
        let e = build_stage("resize", &[], None).unwrap_err();
        assert!(e.to_string().contains("unknown stage \"resize\""), "{e}");
        let e = build_stage("scan", &[], None).unwrap_err();
        assert!(e.to_string().contains("needs a scanner"), "{e}");
    }
}
