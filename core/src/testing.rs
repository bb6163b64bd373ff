//! Fault injection for tests of code above the ports (a fake is fine there, never as a port's
//! implementation under test).

use crate::error::{Error, Result};
use crate::store::{GetResult, Metadata, ObjectInfo, ObjectStore};
use async_trait::async_trait;
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A store that dies: after `budget` mutating calls (shared by every store holding the same
/// counter), every call fails, as if the process had crashed at that instant. Counting the calls
/// of an undisturbed run and crashing after each possible number tests every crash point.
#[derive(Debug)]
pub struct DyingStore {
    pub inner: Arc<dyn ObjectStore>,
    pub budget: Arc<AtomicUsize>,
}

impl DyingStore {
    fn spend(&self) -> Result<()> {
        let ok = self
            .budget
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| b.checked_sub(1))
            .is_ok();
        if ok {
            Ok(())
        } else {
            Err(Error::Service("injected crash".into()))
        }
    }
    fn alive(&self) -> Result<()> {
        if self.budget.load(Ordering::SeqCst) == 0 {
            Err(Error::Service("injected crash".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl ObjectStore for DyingStore {
    fn bucket(&self) -> &str {
        self.inner.bucket()
    }
    fn url(&self, key: &str) -> String {
        self.inner.url(key)
    }
    fn encrypts_at_rest(&self) -> bool {
        self.inner.encrypts_at_rest()
    }
    async fn presign_get(
        &self,
        key: &str,
        expires_in: std::time::Duration,
        content_type: &str,
    ) -> Result<Option<String>> {
        self.alive()?;
        self.inner.presign_get(key, expires_in, content_type).await
    }
    async fn put(&self, key: &str, body: Bytes, metadata: Metadata) -> Result<()> {
        self.spend()?;
        self.inner.put(key, body, metadata).await
    }
    async fn put_if_absent(&self, key: &str, body: Bytes, metadata: Metadata) -> Result<bool> {
        self.spend()?;
        self.inner.put_if_absent(key, body, metadata).await
    }
    async fn put_if_match(
        &self,
        key: &str,
        body: Bytes,
        metadata: Metadata,
        etag: &str,
    ) -> Result<bool> {
        self.spend()?;
        self.inner.put_if_match(key, body, metadata, etag).await
    }
    async fn get(&self, key: &str) -> Result<GetResult> {
        self.alive()?;
        self.inner.get(key).await
    }
    async fn get_range(&self, key: &str, range: std::ops::Range<u64>) -> Result<Bytes> {
        self.alive()?;
        self.inner.get_range(key, range).await
    }
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        self.alive()?;
        self.inner.head(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        self.alive()?;
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.spend()?;
        self.inner.delete(key).await
    }
    async fn delete_all_versions(&self, key: &str) -> Result<()> {
        self.spend()?;
        self.inner.delete_all_versions(key).await
    }
    async fn delete_if_match(&self, key: &str, etag: &str) -> Result<bool> {
        self.spend()?;
        self.inner.delete_if_match(key, etag).await
    }
    async fn copy(&self, from: &str, to: &str) -> Result<()> {
        self.spend()?;
        self.inner.copy(from, to).await
    }
}

/// A metrics recorder that keeps every measurement, for tests to check what code recorded.
#[derive(Debug, Default)]
pub struct CapturedMetrics {
    seen: std::sync::Mutex<Vec<(&'static str, Vec<String>, f64)>>,
}

impl CapturedMetrics {
    /// The sum of what was recorded to `name` with exactly `labels` (for a histogram: of its
    /// observations).
    pub fn sum(&self, name: &str, labels: &[&str]) -> f64 {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(n, l, _)| {
                *n == name && l.iter().map(String::as_str).eq(labels.iter().copied())
            })
            .map(|(_, _, v)| v)
            .sum()
    }

    /// How many times `name` was recorded with exactly `labels`.
    pub fn count(&self, name: &str, labels: &[&str]) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(n, l, _)| {
                *n == name && l.iter().map(String::as_str).eq(labels.iter().copied())
            })
            .count()
    }

    /// The last value recorded to `name` with any labels.
    pub fn last(&self, name: &str) -> Option<f64> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|(n, _, _)| *n == name)
            .map(|(_, _, v)| *v)
    }
}

impl crate::metrics::Recorder for CapturedMetrics {
    fn record(&self, measure: &'static crate::metrics::Measure, labels: &[&str], value: f64) {
        let labels = labels.iter().map(|l| l.to_string()).collect();
        self.seen
            .lock()
            .unwrap()
            .push((measure.name, labels, value));
    }
}

/// Records one value of every measure, each label `x`: what an exposition of every measure is
/// checked on.
pub fn record_every_measure(metrics: &crate::Metrics) {
    use crate::metrics::{ALL, Kind};
    for measure in ALL {
        let labels: Vec<&str> = measure.labels.iter().map(|_| "x").collect();
        match measure.kind {
            Kind::Counter => metrics.add(measure, &labels, 3.0),
            Kind::Gauge => metrics.set(measure, &labels, 7.0),
            Kind::Histogram => metrics.observe(measure, &labels, 0.25),
        }
    }
}
