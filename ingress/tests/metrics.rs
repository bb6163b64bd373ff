//! The `GET /metrics` exposition passes `promtool check metrics` (Debian's `prometheus`
//! package; `scripts/test` installs it) with a value recorded for every measure.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use tarn_core::metrics::{self as m, Kind, Metrics};
use tarn_ingress::PrometheusRecorder;

fn promtool(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs: install Debian's prometheus package (apt-get install prometheus)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

#[test]
fn the_exposition_of_every_measure_passes_promtool() {
    let recorder = Arc::new(PrometheusRecorder::new());
    let metrics = Metrics::new(recorder.clone());
    for measure in m::ALL {
        let labels: Vec<&str> = measure.labels.iter().map(|_| "x").collect();
        match measure.kind {
            Kind::Counter => metrics.add(measure, &labels, 3.0),
            Kind::Gauge => metrics.set(measure, &labels, 7.0),
            Kind::Histogram => metrics.observe(measure, &labels, 0.2),
        }
    }
    let text = recorder.render();
    for measure in m::ALL {
        assert!(
            text.contains(&format!("# TYPE {} ", measure.name)),
            "{} missing:\n{text}",
            measure.name
        );
    }
    let (ok, said) = promtool(&text);
    assert!(ok, "promtool check metrics: {said}\n{text}");
    assert_eq!(said.trim(), "", "promtool has lint findings:\n{text}");
}

#[test]
fn promtool_does_find_problems() {
    // the check above is only worth something if promtool fails bad expositions
    let (ok, said) = promtool("# TYPE requests counter\nrequests 1\n");
    assert!(
        !ok || !said.trim().is_empty(),
        "promtool accepted a counter without _total"
    );
}
