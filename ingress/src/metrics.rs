//! The Prometheus sink of the platform's measures ([`tarn_core::metrics`]) and `GET /metrics`,
//! its text exposition (format 0.0.4); [`instrument`] adds the route to a router and measures
//! every request it answers.

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body::Frame;
use prometheus::{CounterVec, GaugeVec, HistogramOpts, HistogramVec, Opts, Registry};
use std::collections::{BTreeSet, HashMap};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tarn_catalog::schemas::is_valid_table_name;
use tarn_core::metrics::{self as m, Kind, Measure, Metrics, Recorder};

/// The media type of the text exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One registered family per measure.
#[derive(Debug, Clone)]
enum Family {
    Counter(CounterVec),
    Gauge(GaugeVec),
    Histogram(HistogramVec),
}

/// Every measure of [`tarn_core::metrics::ALL`], registered in a registry of its own (no
/// process-global state: two platforms in one process keep apart).
#[derive(Debug)]
pub struct PrometheusRecorder {
    registry: Registry,
    families: HashMap<&'static str, Family>,
}

impl Default for PrometheusRecorder {
    fn default() -> Self {
        Self::new()
    }
}

impl PrometheusRecorder {
    pub fn new() -> Self {
        let registry = Registry::new();
        let mut families = HashMap::new();
        for measure in m::ALL {
            let family = family(measure);
            let collector: Box<dyn prometheus::core::Collector> = match &family {
                Family::Counter(c) => Box::new(c.clone()),
                Family::Gauge(g) => Box::new(g.clone()),
                Family::Histogram(h) => Box::new(h.clone()),
            };
            registry
                .register(collector)
                .expect("the measures have distinct, valid names");
            families.insert(measure.name, family);
        }
        Self { registry, families }
    }

    /// The exposition of every measure, in the text format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        prometheus::TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .expect("the text encoder writes to a string")
    }
}

fn family(measure: &Measure) -> Family {
    let labels = measure.labels;
    let built = match measure.kind {
        Kind::Counter => {
            let c = CounterVec::new(Opts::new(measure.name, measure.help), labels);
            c.map(|c| {
                if labels.is_empty() {
                    // exposed at 0 from the start, so rates work from the first scrape
                    c.with_label_values::<&str>(&[]);
                }
                Family::Counter(c)
            })
        }
        // a gauge appears once set: a made-up 0 (an age, a timestamp) would mislead
        Kind::Gauge => {
            GaugeVec::new(Opts::new(measure.name, measure.help), labels).map(Family::Gauge)
        }
        Kind::Histogram => HistogramVec::new(
            HistogramOpts::new(measure.name, measure.help).buckets(measure.buckets.to_vec()),
            labels,
        )
        .map(|h| {
            if labels.is_empty() {
                h.with_label_values::<&str>(&[]);
            }
            Family::Histogram(h)
        }),
    };
    built.expect("the measures have valid names and labels")
}

impl Recorder for PrometheusRecorder {
    fn record(&self, measure: &'static Measure, labels: &[&str], value: f64) {
        let Some(family) = self.families.get(measure.name) else {
            return;
        };
        let r = match family {
            Family::Counter(c) => c.get_metric_with_label_values(labels).map(|c| {
                if value > 0.0 {
                    c.inc_by(value)
                }
            }),
            Family::Gauge(g) => g.get_metric_with_label_values(labels).map(|g| g.set(value)),
            Family::Histogram(h) => h
                .get_metric_with_label_values(labels)
                .map(|h| h.observe(value)),
        };
        if let Err(e) = r {
            tracing::debug!(measure = measure.name, error = %e, "measurement dropped");
        }
    }
}

/// `router` with `GET /metrics` (the exposition of `recorder`) and every request measured:
/// [`m::INGRESS_REQUESTS`], [`m::INGRESS_REQUEST_DURATION`] and, for uploads,
/// [`m::INGRESS_RECEIVED_BYTES`]. `tables` are the declared tables: any other name in a path is
/// labelled `_unknown`, so labels stay bounded.
pub fn instrument(
    router: Router,
    recorder: Arc<PrometheusRecorder>,
    tables: impl IntoIterator<Item = String>,
) -> Router {
    let tables: Arc<BTreeSet<String>> = Arc::new(tables.into_iter().collect());
    let metrics = Metrics::new(recorder.clone());
    router
        .route(
            "/metrics",
            axum::routing::get(move || {
                let recorder = recorder.clone();
                async move {
                    (
                        StatusCode::OK,
                        [(header::CONTENT_TYPE, CONTENT_TYPE)],
                        recorder.render(),
                    )
                        .into_response()
                }
            }),
        )
        .layer(axum::middleware::from_fn(
            move |req: Request, next: Next| {
                let (metrics, tables) = (metrics.clone(), tables.clone());
                async move { measure(&metrics, &tables, req, next).await }
            },
        ))
}

async fn measure(
    metrics: &Metrics,
    tables: &BTreeSet<String>,
    req: Request,
    next: Next,
) -> Response {
    let started = std::time::Instant::now();
    let (route, table) = classify(req.method(), req.uri().path(), tables);
    let req = if route == "upload" {
        let counted = metrics.clone();
        let t = table.clone();
        req.map(|body| {
            Body::new(Counted {
                inner: body,
                metrics: counted,
                table: t,
            })
        })
    } else {
        req
    };
    let resp = next.run(req).await;
    let code = resp.status().as_u16().to_string();
    metrics.add(&m::INGRESS_REQUESTS, &[route, &table, &code], 1.0);
    metrics.observe(
        &m::INGRESS_REQUEST_DURATION,
        &[route],
        started.elapsed().as_secs_f64(),
    );
    resp
}

/// The route a request is for, and its table label (`""` when the path names none).
fn classify(
    method: &axum::http::Method,
    path: &str,
    tables: &BTreeSet<String>,
) -> (&'static str, String) {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let route = match (method.as_str(), parts.as_slice()) {
        ("POST", ["table", _, "object"]) => "upload",
        ("GET" | "HEAD", ["table", _, "object", _]) => "status",
        ("GET" | "HEAD", ["table", _, "object", _, "content"]) => "content",
        (_, ["health"]) => "health",
        (_, [".well-known", "jwks.json"]) => "jwks",
        (_, ["metrics"]) => "metrics",
        _ => "other",
    };
    let table = match parts.as_slice() {
        ["table", name, ..] => {
            let name = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
            if is_valid_table_name(&name) && tables.contains(name.as_ref()) {
                name.into_owned()
            } else {
                "_unknown".to_string()
            }
        }
        _ => String::new(),
    };
    (route, table)
}

/// A request body that counts the bytes read from it into [`m::INGRESS_RECEIVED_BYTES`].
struct Counted {
    inner: Body,
    metrics: Metrics,
    table: String,
}

impl http_body::Body for Counted {
    type Data = Bytes;
    /// the inner body's own error, unwrapped, so that the handler still finds its type (a
    /// [`BodyTimeout`](crate::BodyTimeout) answers 408) once [`Body::new`] wraps it again
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
            && !data.is_empty()
        {
            self.metrics.add(
                &m::INGRESS_RECEIVED_BYTES,
                &[&self.table],
                data.len() as f64,
            );
        }
        polled.map(|f| f.map(|r| r.map_err(axum::Error::into_inner)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;

    #[test]
    fn routes_and_tables_are_bounded_labels() {
        let tables: BTreeSet<String> = ["events".to_string()].into();
        let cases = [
            (Method::POST, "/table/events/object", "upload", "events"),
            (Method::POST, "/table/other/object", "upload", "_unknown"),
            (Method::GET, "/table/events/object/0b7c", "status", "events"),
            (
                Method::GET,
                "/table/events/object/0b7c/content",
                "content",
                "events",
            ),
            (Method::GET, "/table/%ZZ", "other", "_unknown"),
            (Method::GET, "/metrics", "metrics", ""),
            (Method::GET, "/anything/else", "other", ""),
        ];
        for (method, path, route, table) in cases {
            assert_eq!(
                classify(&method, path, &tables),
                (route, table.to_string()),
                "{method} {path}"
            );
        }
    }

    #[tokio::test]
    async fn a_counted_body_counts_and_keeps_its_errors_type() {
        use futures::StreamExt;
        // what the server hands the router: a body whose own error is a `BodyTimeout`
        struct Stalls(Vec<Result<Bytes, crate::BodyTimeout>>);
        impl http_body::Body for Stalls {
            type Data = Bytes;
            type Error = crate::BodyTimeout;
            fn poll_frame(
                mut self: Pin<&mut Self>,
                _: &mut Context<'_>,
            ) -> Poll<Option<Result<Frame<Bytes>, crate::BodyTimeout>>> {
                Poll::Ready(self.0.pop().map(|r| r.map(Frame::data)))
            }
        }
        let seen = Arc::new(tarn_core::testing::CapturedMetrics::default());
        let body = Body::new(Counted {
            inner: Body::new(Stalls(vec![
                Err(crate::BodyTimeout::Idle(std::time::Duration::from_secs(1))),
                Ok(Bytes::from_static(b"abc")),
            ])),
            metrics: Metrics::new(seen.clone()),
            table: "events".into(),
        });
        let mut stream = body.into_data_stream();
        assert_eq!(stream.next().await.unwrap().unwrap(), "abc");
        // the upload handler answers 408 `body_timeout` for this error, by its type
        let e = stream.next().await.unwrap().unwrap_err();
        assert!(e.into_inner().downcast::<crate::BodyTimeout>().is_ok());
        assert_eq!(seen.sum(m::INGRESS_RECEIVED_BYTES.name, &["events"]), 3.0);
    }

    #[test]
    fn every_measure_is_exposed_and_recordings_show() {
        let r = PrometheusRecorder::new();
        let metrics = Metrics::new(Arc::new(PrometheusRecorder::new()));
        metrics.add(&m::FLUSHES, &[], 1.0); // another registry: not in `r`
        let shared = Arc::new(r);
        let metrics = Metrics::new(shared.clone());
        metrics.add(&m::PIPELINE_DOCUMENTS, &["events", "stored"], 2.0);
        metrics.set(&m::PIPELINE_BACKLOG, &[], 5.0);
        metrics.observe(&m::STAGE_DURATION, &["scan"], 0.02);
        let text = shared.render();
        assert!(
            text.contains("tarn_pipeline_documents_total{status=\"stored\",table=\"events\"} 2"),
            "{text}"
        );
        assert!(text.contains("tarn_pipeline_backlog_documents 5"), "{text}");
        assert!(
            !text.contains("tarn_scan_definitions_age_seconds"),
            "{text}"
        );
        assert!(text.contains("tarn_pipeline_flushes_total 0"), "{text}");
        assert!(
            text.contains(
                "tarn_pipeline_stage_duration_seconds_bucket{stage=\"scan\",le=\"0.05\"} 1"
            ),
            "{text}"
        );
        for measure in m::ALL
            .iter()
            .filter(|m| m.labels.is_empty() && m.kind != Kind::Gauge)
        {
            assert!(
                text.contains(&format!("# TYPE {} ", measure.name)),
                "{} missing:\n{text}",
                measure.name
            );
        }
    }
}
