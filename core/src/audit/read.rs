//! Reading the trail back: every record of the log files under the trail's prefix, filtered.

use super::gunzip;
use super::record::{CloudTrailRecord, TrailConfig};
use crate::error::{Error, Result};
use crate::store::ObjectStore;
use chrono::{DateTime, Utc};

/// Which records to keep; `None` keeps all.
#[derive(Debug, Clone, Default)]
pub struct TrailFilter {
    /// records at or after this time
    pub since: Option<DateTime<Utc>>,
    /// records before this time
    pub until: Option<DateTime<Utc>>,
    /// user name, principal id (`sub`) or component (`tarn-pipeline`)
    pub user: Option<String>,
    /// the table (see [`CloudTrailRecord::table`])
    pub table: Option<String>,
    /// the event name (`GetObject`...), case-insensitive
    pub event: Option<String>,
}

impl TrailFilter {
    pub fn matches(&self, r: &CloudTrailRecord) -> bool {
        let time = DateTime::parse_from_rfc3339(&r.event_time)
            .ok()
            .map(|t| t.with_timezone(&Utc));
        if let Some(since) = self.since
            && time.is_none_or(|t| t < since)
        {
            return false;
        }
        if let Some(until) = self.until
            && time.is_none_or(|t| t >= until)
        {
            return false;
        }
        if let Some(u) = &self.user
            && !r.is_by(u)
        {
            return false;
        }
        if let Some(t) = &self.table
            && r.table().as_deref() != Some(t.as_str())
        {
            return false;
        }
        if let Some(e) = &self.event
            && !r.event_name.eq_ignore_ascii_case(e)
        {
            return false;
        }
        true
    }
}

/// One log file's records.
#[derive(Debug, Clone)]
pub struct LogFile {
    pub key: String,
    pub records: Vec<CloudTrailRecord>,
}

/// Every log file of the trail (skipping days before `since` by their path), parsed.
pub async fn read_log_files(
    store: &dyn ObjectStore,
    trail: &TrailConfig,
    since: Option<DateTime<Utc>>,
) -> Result<Vec<LogFile>> {
    let prefix = trail.log_prefix();
    let first_day = since.map(|s| s.format("%Y/%m/%d").to_string());
    let mut out = Vec::new();
    for info in store.list(&prefix).await? {
        let rest = &info.key[prefix.len()..];
        if let Some(day) = &first_day
            && rest.len() >= 10
            && &rest[..10] < day.as_str()
        {
            continue;
        }
        let got = match store.get(&info.key).await {
            Ok(g) => g,
            Err(e) if e.kind() == crate::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let body = gunzip(&got.body)
            .map_err(|e| Error::InvalidInput(format!("audit log file {}: {e}", info.key)))?;
        #[derive(serde::Deserialize)]
        struct File {
            #[serde(rename = "Records")]
            records: Vec<CloudTrailRecord>,
        }
        let file: File = serde_json::from_slice(&body).map_err(|e| {
            Error::InvalidInput(format!(
                "audit log file {} is not a CloudTrail log file: {e}",
                info.key
            ))
        })?;
        out.push(LogFile {
            key: info.key,
            records: file.records,
        });
    }
    Ok(out)
}

/// The records matching `filter`, oldest first.
pub async fn read_trail(
    store: &dyn ObjectStore,
    trail: &TrailConfig,
    filter: &TrailFilter,
) -> Result<Vec<CloudTrailRecord>> {
    let mut out: Vec<CloudTrailRecord> = read_log_files(store, trail, filter.since)
        .await?
        .into_iter()
        .flat_map(|f| f.records)
        .filter(|r| filter.matches(r))
        .collect();
    out.sort_by(|a, b| a.event_time.cmp(&b.event_time));
    Ok(out)
}
