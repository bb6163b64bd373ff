//! The [`AuditSink`] port and [`LocalAuditSink`], which delivers CloudTrail log files and signed
//! digest files to an audit store.

use super::digest::{DigestFile, LogFileEntry, PreviousDigest, SigningKey, sign_string};
use super::record::{AuditEvent, CloudTrailRecord, TrailConfig, event_time};
use super::{gunzip, gzip, sha256_hex};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::store::{Metadata, ObjectStore};
use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Where audit events go.
///
/// Guarantees of every implementation:
/// - **batched, bounded delay**: `record` never blocks and never fails; the record is buffered
///   and becomes durable within the sink's flush interval (a few seconds) or as soon as a batch
///   is full, whichever comes first; [`AuditSink::flush`] makes every record given before it
///   durable before it returns (call it on shutdown).
/// - **never loses a record silently**: a batch that cannot be written stays buffered and is
///   retried at the next flush; each failure is logged at `error` and returned by `flush`.
///   Only a process crash loses the records of the current interval (at most the flush
///   interval's worth), as CloudTrail's own delivery does.
#[async_trait]
pub trait AuditSink: Send + Sync + std::fmt::Debug {
    /// Buffers one event.
    fn record(&self, event: AuditEvent);
    /// Writes everything buffered (and, for sinks with digests, a digest of the files written
    /// since the last one); returns once it is durable.
    async fn flush(&self) -> Result<()>;
}

/// A sink that drops everything (tests, and platforms where CloudTrail itself records the
/// store calls).
#[derive(Debug, Default)]
pub struct NoAuditSink;

#[async_trait]
impl AuditSink for NoAuditSink {
    fn record(&self, _event: AuditEvent) {}
    async fn flush(&self) -> Result<()> {
        Ok(())
    }
}

/// How often [`LocalAuditSink`] writes.
#[derive(Debug, Clone)]
pub struct SinkSettings {
    /// buffered records are written at least this often
    pub flush_interval: Duration,
    /// ... or as soon as this many are buffered
    pub max_records: usize,
    /// a digest of the log files written since the last one is written at least this often
    /// (and at every [`AuditSink::flush`])
    pub digest_interval: Duration,
}

impl Default for SinkSettings {
    fn default() -> Self {
        Self {
            flush_interval: Duration::from_secs(5),
            max_records: 1000,
            digest_interval: Duration::from_secs(300),
        }
    }
}

/// Delivers CloudTrail log files (gzipped `{"Records": [...]}`) under
/// `AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/` of the audit store, and signed digest
/// files under `AWSLogs/<account>/CloudTrail-Digest/<region>/...` chained to each other.
///
/// A background task (started by [`LocalAuditSink::open`], so inside a tokio runtime) flushes
/// on [`SinkSettings`]' schedule; dropping the sink stops it, so call [`AuditSink::flush`]
/// first.
#[derive(Debug)]
pub struct LocalAuditSink {
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn ObjectStore>,
    trail: TrailConfig,
    settings: SinkSettings,
    clock: Arc<dyn Clock>,
    key: SigningKey,
    buffer: Mutex<Vec<CloudTrailRecord>>,
    wake: Notify,
    writer: tokio::sync::Mutex<Writer>,
    /// failed writes of a log file or digest
    failures: std::sync::atomic::AtomicU64,
}

#[derive(Debug)]
struct Writer {
    /// log files written since the last digest
    undigested: Vec<LogFileEntry>,
    previous: Option<PreviousDigest>,
    last_digest_at: DateTime<Utc>,
    last_digest_name: Option<DateTime<Utc>>,
}

impl LocalAuditSink {
    /// Opens the sink on `store`, chaining its digests to the newest digest already there.
    pub async fn open(
        store: Arc<dyn ObjectStore>,
        trail: TrailConfig,
        key: SigningKey,
        settings: SinkSettings,
    ) -> Result<Self> {
        Self::open_with_clock(store, trail, key, settings, Arc::new(SystemClock)).await
    }

    pub async fn open_with_clock(
        store: Arc<dyn ObjectStore>,
        trail: TrailConfig,
        key: SigningKey,
        settings: SinkSettings,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let previous = newest_digest(store.as_ref(), &trail).await?;
        let now = clock.now();
        let last_digest_name = previous.as_ref().map(|p| p.end_time);
        let inner = Arc::new(Inner {
            store,
            trail,
            settings,
            clock,
            key,
            buffer: Mutex::new(Vec::new()),
            wake: Notify::new(),
            failures: std::sync::atomic::AtomicU64::new(0),
            writer: tokio::sync::Mutex::new(Writer {
                undigested: Vec::new(),
                previous,
                last_digest_at: now,
                last_digest_name,
            }),
        });
        let weak = Arc::downgrade(&inner);
        let task = tokio::spawn(async move {
            loop {
                let Some(this) = weak.upgrade() else { return };
                let interval = this.settings.flush_interval;
                let _ = tokio::time::timeout(interval, this.wake.notified()).await;
                let digest_due = {
                    let w = this.writer.lock().await;
                    this.clock.now() - w.last_digest_at
                        >= chrono::Duration::from_std(this.settings.digest_interval)
                            .unwrap_or(chrono::Duration::MAX)
                };
                if let Err(e) = this.write(digest_due).await {
                    tracing::error!(error = %e, "writing the audit trail failed; the records stay buffered and are retried");
                }
            }
        });
        Ok(Self { inner, task })
    }

    pub fn trail(&self) -> &TrailConfig {
        &self.inner.trail
    }

    /// Failed attempts to write a log file or a digest since the sink opened (each is retried).
    pub fn delivery_failures(&self) -> u64 {
        self.inner
            .failures
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Records buffered, not yet written.
    pub fn pending(&self) -> usize {
        self.inner.buffer.lock().expect("audit buffer").len()
    }

    /// Writes a digest now (of the log files written since the last one), even if none were.
    pub async fn write_digest(&self) -> Result<Option<String>> {
        let mut w = self.inner.writer.lock().await;
        self.inner.digest(&mut w, true).await
    }
}

impl Drop for LocalAuditSink {
    fn drop(&mut self) {
        self.task.abort();
        let n = self.pending();
        if n > 0 {
            tracing::error!(
                records = n,
                "audit sink dropped with records not written; call flush() before dropping it"
            );
        }
    }
}

#[async_trait]
impl AuditSink for LocalAuditSink {
    fn record(&self, event: AuditEvent) {
        let record = CloudTrailRecord::from_event(&self.inner.trail, event);
        let n = {
            let mut b = self.inner.buffer.lock().expect("audit buffer");
            b.push(record);
            b.len()
        };
        if n >= self.inner.settings.max_records {
            self.inner.wake.notify_one();
        }
    }

    async fn flush(&self) -> Result<()> {
        self.inner.write(true).await
    }
}

impl Inner {
    /// Writes the buffered records as one log file; then a digest when `digest` and there are
    /// undigested files.
    async fn write(&self, digest: bool) -> Result<()> {
        let r = self.write_once(digest).await;
        if r.is_err() {
            self.failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        r
    }

    async fn write_once(&self, digest: bool) -> Result<()> {
        let mut w = self.writer.lock().await;
        let records = std::mem::take(&mut *self.buffer.lock().expect("audit buffer"));
        if !records.is_empty() {
            match self.write_log(&records).await {
                Ok(entry) => w.undigested.push(entry),
                Err(e) => {
                    // back in front of what arrived meanwhile: retried at the next flush
                    let mut b = self.buffer.lock().expect("audit buffer");
                    let newer = std::mem::replace(&mut *b, records);
                    b.extend(newer);
                    return Err(e);
                }
            }
        }
        if digest {
            self.digest(&mut w, false).await?;
        }
        Ok(())
    }

    async fn write_log(&self, records: &[CloudTrailRecord]) -> Result<LogFileEntry> {
        let now = self.clock.now();
        let body = serde_json::to_vec(&serde_json::json!({ "Records": records }))
            .map_err(|e| Error::InvalidInput(format!("audit records: {e}")))?;
        let random: String = hex::encode(crate::kms::random::<8>());
        let key = self.trail.log_key(now, &random);
        let gz = gzip(&body)?;
        let times = records.iter().map(|r| r.event_time.as_str());
        let oldest = times.clone().min().unwrap_or_default().to_string();
        let newest = times.max().unwrap_or_default().to_string();
        self.store
            .put(&key, Bytes::from(gz), Metadata::new())
            .await?;
        Ok(LogFileEntry {
            s3_bucket: self.store.bucket().to_string(),
            s3_object: key,
            hash_value: sha256_hex(&body),
            hash_algorithm: "SHA-256".into(),
            newest_event_time: newest,
            oldest_event_time: oldest,
        })
    }

    async fn digest(&self, w: &mut Writer, even_empty: bool) -> Result<Option<String>> {
        if w.undigested.is_empty() && !even_empty {
            return Ok(None);
        }
        let now = self.clock.now();
        // digest names are per second: keep them unique and in order
        let mut name_at = now;
        if let Some(last) = w.last_digest_name
            && name_at.timestamp() <= last.timestamp()
        {
            name_at = last + chrono::Duration::seconds(1);
        }
        let key = self.trail.digest_key(name_at);
        let start = w
            .previous
            .as_ref()
            .map(|p| event_time(p.end_time))
            .unwrap_or_else(|| event_time(w.last_digest_at));
        let oldest = w
            .undigested
            .iter()
            .map(|f| f.oldest_event_time.clone())
            .min();
        let newest = w
            .undigested
            .iter()
            .map(|f| f.newest_event_time.clone())
            .max();
        let file = DigestFile {
            aws_account_id: self.trail.account.clone(),
            digest_start_time: start,
            digest_end_time: event_time(name_at),
            digest_s3_bucket: self.store.bucket().to_string(),
            digest_s3_object: key.clone(),
            digest_public_key_fingerprint: self.key.fingerprint(),
            digest_signature_algorithm: "Ed25519".into(),
            newest_event_time: newest,
            oldest_event_time: oldest,
            previous_digest_s3_bucket: w.previous.as_ref().map(|p| p.bucket.clone()),
            previous_digest_s3_object: w.previous.as_ref().map(|p| p.key.clone()),
            previous_digest_hash_value: w.previous.as_ref().map(|p| p.hash.clone()),
            previous_digest_hash_algorithm: w.previous.as_ref().map(|_| "SHA-256".into()),
            previous_digest_signature: w.previous.as_ref().map(|p| p.signature.clone()),
            log_files: w.undigested.clone(),
        };
        let body =
            serde_json::to_vec(&file).map_err(|e| Error::InvalidInput(format!("digest: {e}")))?;
        let hash = sha256_hex(&body);
        let to_sign = sign_string(
            &file.digest_end_time,
            &file.digest_s3_bucket,
            &key,
            &hash,
            file.previous_digest_signature.as_deref(),
        );
        let signature = self.key.sign(to_sign.as_bytes());
        let metadata = Metadata::from([
            ("signature".to_string(), signature.clone()),
            ("signature-algorithm".to_string(), "Ed25519".to_string()),
        ]);
        self.store
            .put(&key, Bytes::from(gzip(&body)?), metadata)
            .await?;
        w.undigested.clear();
        w.previous = Some(PreviousDigest {
            bucket: self.store.bucket().to_string(),
            key: key.clone(),
            hash,
            signature,
            end_time: name_at,
        });
        w.last_digest_at = now;
        w.last_digest_name = Some(name_at);
        Ok(Some(key))
    }
}

/// The newest digest of this trail name under the trail's digest prefix (by its end time), to
/// chain to.
async fn newest_digest(
    store: &dyn ObjectStore,
    trail: &TrailConfig,
) -> Result<Option<PreviousDigest>> {
    let list = store.list(&trail.digest_prefix()).await?;
    let mut best: Option<PreviousDigest> = None;
    for info in list {
        // each trail name has its own chain (a one-shot command beside `tarn serve` uses another)
        if trail.digest_trail_name(&info.key) != Some(trail.trail_name.as_str()) {
            continue;
        }
        let got = store.get(&info.key).await?;
        let Ok(body) = gunzip(&got.body) else {
            continue;
        };
        let Ok(file) = serde_json::from_slice::<DigestFile>(&body) else {
            continue;
        };
        let Some(end) = DateTime::parse_from_rfc3339(&file.digest_end_time)
            .ok()
            .map(|t| t.with_timezone(&Utc))
        else {
            continue;
        };
        let Some(signature) = got.info.metadata.get("signature").cloned() else {
            continue;
        };
        if best.as_ref().is_none_or(|b| end >= b.end_time) {
            best = Some(PreviousDigest {
                bucket: store.bucket().to_string(),
                key: info.key,
                hash: sha256_hex(&body),
                signature,
                end_time: end,
            });
        }
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LocalObjectStore;
    use crate::audit::AuditedStore;
    use crate::testing::DyingStore;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test]
    async fn failed_writes_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let audit = Arc::new(LocalObjectStore::open("tarn-audit", dir.path().join("a")).unwrap());
        let data = Arc::new(LocalObjectStore::open("tarn-lake", dir.path().join("l")).unwrap());
        // the log file is written, then the store dies: the digest fails, every time
        let dying = Arc::new(DyingStore {
            inner: audit,
            budget: Arc::new(AtomicUsize::new(1)),
        });
        let key = SigningKey::open_or_create(dir.path().join("k.key")).unwrap();
        let settings = SinkSettings {
            flush_interval: Duration::from_secs(3600),
            max_records: 100_000,
            digest_interval: Duration::from_secs(3600),
        };
        let sink = Arc::new(
            LocalAuditSink::open(dying, TrailConfig::default(), key, settings)
                .await
                .unwrap(),
        );
        AuditedStore::new(data, sink.clone(), "tarn-query")
            .head("x")
            .await
            .unwrap();
        assert_eq!(sink.delivery_failures(), 0);
        assert!(sink.flush().await.is_err());
        assert_eq!(sink.delivery_failures(), 1);
        assert!(sink.flush().await.is_err());
        assert_eq!(sink.delivery_failures(), 2);
    }
}
