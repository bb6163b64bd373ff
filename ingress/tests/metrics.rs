//! The `GET /metrics` exposition passes `promtool check metrics` with a value recorded for
//! every measure.

#[path = "common/promtool.rs"]
mod promtool;

use std::sync::Arc;
use tarn_core::metrics as m;
use tarn_core::testing::record_every_measure;
use tarn_ingress::PrometheusRecorder;

#[test]
fn the_exposition_of_every_measure_passes_promtool() {
    let recorder = Arc::new(PrometheusRecorder::new());
    record_every_measure(&tarn_core::Metrics::new(recorder.clone()));
    let text = recorder.render();
    for measure in m::ALL {
        assert!(
            text.contains(&format!("# TYPE {} ", measure.name)),
            "{} missing:\n{text}",
            measure.name
        );
    }
    let (ok, said) = promtool::check(&text);
    assert!(ok, "promtool check metrics: {said}\n{text}");
    assert_eq!(said.trim(), "", "promtool has lint findings:\n{text}");
}

#[test]
fn promtool_does_find_problems() {
    // the check above is only worth something if promtool fails bad expositions
    let (ok, said) = promtool::check("# TYPE requests counter\nrequests 1\n");
    assert!(
        !ok || !said.trim().is_empty(),
        "promtool accepted a counter without _total"
    );
}
