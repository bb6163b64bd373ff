//! The audit trail on CloudTrail: [`check_trail`] confirms that the trail logs S3 data events
//! (reads and writes) for every platform bucket, that it is logging, that log file validation is
//! on, and that it delivers to the audit bucket — and names whatever is missing. An advanced
//! selector may leave out the prefixes it is told may go (the lake lock's leases), nothing else.

use crate::s3::describe;
use aws_sdk_cloudtrail::Client;
use aws_sdk_cloudtrail::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cloudtrail::types::{AdvancedEventSelector, EventSelector, ReadWriteType};
use serde::Serialize;

/// What [`check_trail`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrailReport {
    pub trail: String,
    /// each a sentence a person can act on; empty when the trail is complete
    pub missing: Vec<String>,
}

impl TrailReport {
    pub fn ok(&self) -> bool {
        self.missing.is_empty()
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Coverage {
    read: bool,
    write: bool,
}

fn arn_covers(value: &str, bucket: &str) -> bool {
    // "arn:aws:s3" / "arn:aws:s3:::" = every bucket; "arn:aws:s3:::b" or "arn:aws:s3:::b/" = the
    // whole bucket (a narrower object prefix is not the whole bucket)
    let v = value.trim();
    if v == "arn:aws:s3" || v == "arn:aws:s3:::" {
        return true;
    }
    match v.strip_prefix("arn:aws:s3:::") {
        Some(rest) => rest == bucket || rest == format!("{bucket}/"),
        None => false,
    }
}

fn basic(sel: &EventSelector, bucket: &str, cov: &mut Coverage) {
    let covers = sel.data_resources().iter().any(|d| {
        d.r#type() == Some("AWS::S3::Object") && d.values().iter().any(|v| arn_covers(v, bucket))
    });
    if !covers {
        return;
    }
    match sel.read_write_type() {
        Some(ReadWriteType::ReadOnly) => cov.read = true,
        Some(ReadWriteType::WriteOnly) => cov.write = true,
        _ => {
            cov.read = true;
            cov.write = true;
        }
    }
}

fn advanced(sel: &AdvancedEventSelector, bucket: &str, may_skip: &[String], cov: &mut Coverage) {
    let mut data = false;
    let mut s3_objects = false;
    let mut arn_ok = true;
    let (mut read, mut write) = (true, true);
    for f in sel.field_selectors() {
        match f.field() {
            "eventCategory" => data = f.equals().iter().any(|v| v == "Data"),
            "resources.type" => s3_objects = f.equals().iter().any(|v| v == "AWS::S3::Object"),
            "resources.ARN" => {
                let prefix_ok = f.starts_with().iter().any(|p| {
                    let p = p.trim();
                    p == "arn:aws:s3:::"
                        || p == format!("arn:aws:s3:::{bucket}/")
                        || p == format!("arn:aws:s3:::{bucket}")
                });
                let ours = |p: &String| p.starts_with(&format!("arn:aws:s3:::{bucket}"));
                let excluded = f.not_equals().iter().any(ours)
                    || f.not_starts_with().iter().filter(|p| ours(p)).any(|p| {
                        !may_skip.iter().any(|m| {
                            m.starts_with(&format!("{bucket}/"))
                                && *p == format!("arn:aws:s3:::{m}")
                        })
                    });
                let only_filters = f.starts_with().is_empty() && f.equals().is_empty();
                arn_ok = !excluded && (prefix_ok || only_filters);
            }
            "readOnly" => {
                let v: Vec<&str> = f.equals().iter().map(String::as_str).collect();
                if v == ["true"] {
                    write = false;
                } else if v == ["false"] {
                    read = false;
                }
            }
            // eventName, eventSource and other filters narrow what is logged
            "eventName" | "eventSource" => {
                read = false;
                write = false;
            }
            _ => {}
        }
    }
    if data && s3_objects && arn_ok {
        cov.read |= read;
        cov.write |= write;
    }
}

fn code<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Option<&str> {
    match e {
        SdkError::ServiceError(se) => se.err().code(),
        _ => None,
    }
}

/// Checks `trail` against the platform's `buckets` and `audit_bucket`; `may_skip` are the
/// `bucket/prefix/` whose data events an advanced selector may leave out (`NotStartsWith`). `Err`
/// only when CloudTrail cannot be asked; a missing trail is a finding.
pub async fn check_trail(
    client: &Client,
    trail: &str,
    buckets: &[&str],
    audit_bucket: &str,
    may_skip: &[String],
) -> Result<TrailReport, String> {
    let mut missing = Vec::new();
    let t = match client.get_trail().name(trail).send().await {
        Ok(out) => out.trail().cloned(),
        Err(e) if code(&e) == Some("TrailNotFoundException") => None,
        Err(e) => return Err(format!("cloudtrail GetTrail {trail}: {}", describe(&e))),
    };
    let Some(t) = t else {
        missing.push(format!("trail {trail} does not exist: create it (multi-region, delivering to s3://{audit_bucket}/, with log file validation and S3 data events for the platform buckets)"));
        return Ok(TrailReport {
            trail: trail.into(),
            missing,
        });
    };
    if t.log_file_validation_enabled() != Some(true) {
        missing.push(format!("log file validation is off: aws cloudtrail update-trail --name {trail} --enable-log-file-validation"));
    }
    if t.s3_bucket_name() != Some(audit_bucket) {
        missing.push(format!(
            "the trail delivers to {:?}, not the audit bucket {audit_bucket}",
            t.s3_bucket_name().unwrap_or("(none)")
        ));
    }
    match client.get_trail_status().name(trail).send().await {
        Ok(s) if s.is_logging() == Some(true) => {}
        Ok(_) => missing.push(format!(
            "the trail is not logging: aws cloudtrail start-logging --name {trail}"
        )),
        Err(e) => {
            return Err(format!(
                "cloudtrail GetTrailStatus {trail}: {}",
                describe(&e)
            ));
        }
    }
    let sel = client
        .get_event_selectors()
        .trail_name(trail)
        .send()
        .await
        .map_err(|e| format!("cloudtrail GetEventSelectors {trail}: {}", describe(&e)))?;
    for bucket in buckets {
        let mut cov = Coverage::default();
        for s in sel.event_selectors() {
            basic(s, bucket, &mut cov);
        }
        for s in sel.advanced_event_selectors() {
            advanced(s, bucket, may_skip, &mut cov);
        }
        match (cov.read, cov.write) {
            (true, true) => {}
            (false, false) => missing.push(format!("no S3 data events are logged for bucket {bucket} (need AWS::S3::Object, arn:aws:s3:::{bucket}/, read and write)")),
            (false, true) => missing.push(format!("S3 data events for bucket {bucket} are logged for writes only; reads are missing")),
            (true, false) => missing.push(format!("S3 data events for bucket {bucket} are logged for reads only; writes are missing")),
        }
    }
    Ok(TrailReport {
        trail: trail.into(),
        missing,
    })
}

/// One management event, as `tarn audit` prints it on AWS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    pub time: chrono::DateTime<chrono::Utc>,
    pub user: Option<String>,
    pub event_name: String,
    pub event_source: String,
    /// `type:name` of each resource the event names
    pub resources: Vec<String>,
    pub read_only: Option<bool>,
}

/// Where S3 data events (object reads and writes) are found: `LookupEvents` returns management
/// events only.
pub const DATA_EVENTS_HINT: &str = "S3 data events (object reads and writes) are not returned by LookupEvents; query the CloudTrail table in Athena (tarn query --engine athena) over the audit bucket's AWSLogs/ prefix";

/// Management events since `since` (CloudTrail keeps 90 days), optionally of one user, newest
/// first, at most `limit`, paging through `LookupEvents`.
pub async fn lookup_events(
    client: &Client,
    since: Option<chrono::DateTime<chrono::Utc>>,
    user: Option<&str>,
    limit: usize,
) -> Result<Vec<AuditEvent>, String> {
    use aws_sdk_cloudtrail::primitives::DateTime as SmithyTime;
    use aws_sdk_cloudtrail::types::{LookupAttribute, LookupAttributeKey};
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut req = client
            .lookup_events()
            .max_results(50)
            .set_next_token(token.take());
        if let Some(t) = since {
            req = req.start_time(SmithyTime::from_secs(t.timestamp()));
        }
        if let Some(u) = user {
            let attr = LookupAttribute::builder()
                .attribute_key(LookupAttributeKey::Username)
                .attribute_value(u)
                .build()
                .map_err(|e| e.to_string())?;
            req = req.lookup_attributes(attr);
        }
        let page = req
            .send()
            .await
            .map_err(|e| format!("cloudtrail LookupEvents: {}", describe(&e)))?;
        for e in page.events() {
            let time = e
                .event_time()
                .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
                .unwrap_or_default();
            out.push(AuditEvent {
                time,
                user: e.username().map(String::from),
                event_name: e.event_name().unwrap_or_default().to_string(),
                event_source: e.event_source().unwrap_or_default().to_string(),
                resources: e
                    .resources()
                    .iter()
                    .map(|r| {
                        format!(
                            "{}:{}",
                            r.resource_type().unwrap_or_default(),
                            r.resource_name().unwrap_or_default()
                        )
                    })
                    .collect(),
                read_only: e.read_only().map(|r| r == "true"),
            });
            if out.len() >= limit {
                return Ok(out);
            }
        }
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => return Ok(out),
        }
    }
}
