//! The Lambda functions' metrics: CloudWatch Embedded Metric Format lines, each valid against
//! the EMF specification, carrying the same measures `tarn serve` exposes to Prometheus, and
//! moving as documents flow through the functions on moto.

mod common;

use common::*;
use serde_json::Value;
use std::io::Write;
use std::sync::{Arc, Mutex};
use tarn_aws::lambda::Functions;
use tarn_aws::lambda::pipeline::handoff_key;
use tarn_aws::metrics::EmfRecorder;
use tarn_core::metrics::{self as m, Metrics};

/// Where the recorder writes in these tests: a buffer they read back.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn docs(&self) -> Vec<Value> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}

const UNITS: &[&str] = &[
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// Checks `doc` against the EMF specification (CloudWatch, "Specification: Embedded metric
/// format"): the `_aws` metadata with a millisecond `Timestamp` and `CloudWatchMetrics`
/// directives; each directive's namespace, dimension sets (at most 30 keys, each a string
/// member of the root) and metrics (a name of 1 to 1024 characters, a valid unit, a number
/// member of the root).
fn assert_valid_emf(doc: &Value) {
    let root = doc.as_object().expect("an EMF document is a JSON object");
    let aws = root["_aws"].as_object().expect("_aws is an object");
    let ts = aws["Timestamp"].as_i64().expect("Timestamp is an integer");
    assert!(ts > 1_600_000_000_000, "Timestamp in milliseconds: {ts}");
    let directives = aws["CloudWatchMetrics"]
        .as_array()
        .expect("CloudWatchMetrics");
    assert!(!directives.is_empty());
    for d in directives {
        let ns = d["Namespace"].as_str().expect("Namespace");
        assert!((1..=255).contains(&ns.len()), "{ns}");
        for set in d["Dimensions"].as_array().expect("Dimensions") {
            let set = set.as_array().expect("a DimensionSet is an array");
            assert!(set.len() <= 30);
            for key in set {
                let key = key.as_str().expect("dimension keys are strings");
                let v = root[key]
                    .as_str()
                    .unwrap_or_else(|| panic!("{key} is no string member: {doc}"));
                assert!((1..=1024).contains(&v.len()), "{key}={v:?}");
            }
        }
        let metrics = d["Metrics"].as_array().expect("Metrics");
        assert!(!metrics.is_empty() && metrics.len() <= 100);
        for metric in metrics {
            let name = metric["Name"].as_str().expect("Name");
            assert!((1..=1024).contains(&name.len()));
            let unit = metric["Unit"].as_str().expect("Unit");
            assert!(UNITS.contains(&unit), "{unit}");
            assert!(root[name].is_number(), "{name} is no number member: {doc}");
        }
    }
}

#[test]
fn every_measure_makes_a_valid_emf_line() {
    let lines = Lines::default();
    let metrics = Metrics::new(Arc::new(EmfRecorder::new(
        "tarn/test",
        Box::new(lines.clone()),
    )));
    tarn_core::testing::record_every_measure(&metrics);
    let docs = lines.docs();
    assert_eq!(docs.len(), m::ALL.len());
    for (doc, measure) in docs.iter().zip(m::ALL) {
        assert_valid_emf(doc);
        let d = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(d["Namespace"], "tarn/test");
        assert_eq!(d["Metrics"][0]["Name"], measure.name);
        assert_eq!(
            d["Dimensions"][0].as_array().unwrap().len(),
            measure.labels.len()
        );
    }
    // an empty label value (no table) still makes a valid dimension
    metrics.add(&m::INGRESS_REQUESTS, &["health", "", "200"], 1.0);
    let last = lines.docs().pop().unwrap();
    assert_valid_emf(&last);
    assert_eq!(last["table"], "-");
}

/// The values of `name` in `docs` whose dimensions include `dims`, summed.
fn sum(docs: &[Value], name: &str, dims: &[(&str, &str)]) -> f64 {
    docs.iter()
        .filter(|d| d[name].is_number() && dims.iter().all(|(k, v)| d[*k] == *v))
        .map(|d| d[name].as_f64().unwrap())
        .sum()
}

#[tokio::test]
async fn the_functions_emit_emf_as_documents_flow() {
    let moto = moto().await;
    let p = platform(&moto.url).await;
    let lines = Lines::default();
    let mut f = Functions::new(&p.ports).unwrap();
    f.metrics = Metrics::new(Arc::new(EmfRecorder::new(
        "tarn/test",
        Box::new(lines.clone()),
    )));
    let validate = f.stage("validate").unwrap();
    let strip = f.stage("strip").unwrap();
    let normalize = f.normalize();
    normalize.setup_catalog().await.unwrap();

    let ingress = p.ports.ingress.as_ref();
    let good = land_as_apigw(ingress, "events", "application/json", br#"[{"user_id":"u1","action":"login","occurred_at":"2024-03-05T10:00:00Z"},{"user_id":"u2","action":"signup","occurred_at":"2024-03-05T10:01:00Z"}]"#).await;
    let bad = land_as_apigw(
        ingress,
        "events",
        "application/json",
        br#"{"user_id":"u4"}"#,
    )
    .await;
    let ids = vec![good.clone(), bad.clone()];
    let keys: Vec<String> = ids
        .iter()
        .map(|id| tarn_core::document::ingress_key(id))
        .collect();
    let state = |stage: &str, ids: &[String]| -> Vec<String> {
        ids.iter()
            .map(|id| format!("{}{}", p.config.state_prefix, handoff_key(stage, id)))
            .collect()
    };
    assert!(failures(&validate.handle(event("tarn-ingress", &keys, vec![])).await).is_empty());
    let r = strip
        .handle(event("tarn-lake", &state("strip", &[good.clone()]), vec![]))
        .await;
    assert!(failures(&r).is_empty());
    let r = normalize
        .handle(event("tarn-lake", &state("normalize", &ids), vec![]))
        .await;
    assert!(failures(&r).is_empty());

    let docs = lines.docs();
    for d in &docs {
        assert_valid_emf(d);
    }
    let docs_total = m::PIPELINE_DOCUMENTS.name;
    assert_eq!(
        sum(
            &docs,
            docs_total,
            &[("table", "events"), ("status", "stored")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &docs,
            docs_total,
            &[("table", "events"), ("status", "rejected")]
        ),
        1.0
    );
    assert_eq!(
        sum(&docs, m::ROWS_WRITTEN.name, &[("table", "events")]),
        2.0
    );
    assert_eq!(sum(&docs, m::FLUSHES.name, &[]), 1.0);
    let stage_time = |stage: &str| {
        docs.iter()
            .filter(|d| d[m::STAGE_DURATION.name].is_number() && d["stage"] == stage)
            .count()
    };
    assert_eq!((stage_time("validate"), stage_time("strip")), (2, 1));
    // never a document id nor a producer in a metric line
    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    assert!(!text.contains(&good) && !text.contains(&bad) && !text.contains("alice"));
}
