//! The CloudTrail record shape (S3 data events) and tarn's side of it: who acted ([`Actor`]),
//! what happened ([`AuditEvent`]) and where the trail lives ([`TrailConfig`]).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Where a trail's files go and what its records say about the "account".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrailConfig {
    /// the 12-digit account id in keys and records (`000000000000` locally)
    pub account: String,
    /// the region in keys and records (`local` locally)
    pub region: String,
    /// the trail's name, in digest file names
    pub trail_name: String,
}

impl Default for TrailConfig {
    fn default() -> Self {
        Self {
            account: "000000000000".into(),
            region: "local".into(),
            trail_name: "tarn".into(),
        }
    }
}

impl TrailConfig {
    /// The trail of one run of a one-shot command (`what`: `query`, `compact`) beside the
    /// server: a digest chain of its own, `<trail>-<what>-<time>-<pid>`, since two writers of one
    /// chain would overwrite each other's digests.
    pub fn for_run(&self, what: &str) -> TrailConfig {
        TrailConfig {
            trail_name: format!(
                "{}-{what}-{}-{}",
                self.trail_name,
                Utc::now().format("%Y%m%dT%H%M%S"),
                std::process::id()
            ),
            ..self.clone()
        }
    }

    /// `AWSLogs/<account>/CloudTrail/<region>/`: every log file is under it.
    pub fn log_prefix(&self) -> String {
        format!("AWSLogs/{}/CloudTrail/{}/", self.account, self.region)
    }
    /// `AWSLogs/<account>/CloudTrail-Digest/<region>/`: every digest file is under it.
    pub fn digest_prefix(&self) -> String {
        format!(
            "AWSLogs/{}/CloudTrail-Digest/{}/",
            self.account, self.region
        )
    }
    /// The key of a log file delivered at `at`.
    pub fn log_key(&self, at: DateTime<Utc>, random: &str) -> String {
        format!(
            "{}{}/{}_CloudTrail_{}_{}_{random}.json.gz",
            self.log_prefix(),
            at.format("%Y/%m/%d"),
            self.account,
            self.region,
            at.format("%Y%m%dT%H%MZ")
        )
    }
    /// The trail name in a digest file's key (each trail name has its own chain of digests).
    pub fn digest_trail_name<'k>(&self, key: &'k str) -> Option<&'k str> {
        let name = key.rsplit('/').next()?;
        let rest = name.strip_prefix(&format!(
            "{}_CloudTrail-Digest_{}_",
            self.account, self.region
        ))?;
        let rest = rest.strip_suffix(".json.gz")?;
        let (trail, _ts) = rest.rsplit_once('_')?;
        trail.strip_suffix(&format!("_{}", self.region))
    }

    /// The key of a digest file ending at `at`.
    pub fn digest_key(&self, at: DateTime<Utc>) -> String {
        format!(
            "{}{}/{}_CloudTrail-Digest_{}_{}_{}_{}.json.gz",
            self.digest_prefix(),
            at.format("%Y/%m/%d"),
            self.account,
            self.region,
            self.trail_name,
            self.region,
            at.format("%Y%m%dT%H%M%SZ")
        )
    }
}

/// Who made a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// one of tarn's own components (`tarn-ingress`, `tarn-pipeline`, `tarn-compaction`, `tarn-query`)
    Service(String),
    /// a caller identified by a verified token: producer or analyst
    WebIdentity {
        sub: String,
        username: String,
        issuer: String,
    },
    /// a caller without a valid token
    Anonymous,
    /// a person on this machine (the OS user running `tarn query`), as an IAM user is on AWS
    LocalUser(String),
}

impl Actor {
    /// The OS user running this process: `$USER`, else `$LOGNAME`, else the name of the real uid
    /// in `/etc/passwd`, else `uid-<n>`.
    pub fn local_user() -> Self {
        let env = |k: &str| std::env::var(k).ok().filter(|n| !n.is_empty());
        let name = env("USER").or_else(|| env("LOGNAME")).unwrap_or_else(|| {
            let uid = current_uid();
            std::fs::read_to_string("/etc/passwd")
                .ok()
                .and_then(|p| {
                    p.lines().find_map(|l| {
                        let f: Vec<&str> = l.split(':').collect();
                        (f.len() > 2 && f[2] == uid).then(|| f[0].to_string())
                    })
                })
                .unwrap_or_else(|| format!("uid-{uid}"))
        });
        Actor::LocalUser(name)
    }
}

/// The real uid, from `/proc/self/status`.
fn current_uid() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|rest| rest.split_whitespace().next().map(String::from))
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The S3 API call an event stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventName {
    PutObject,
    GetObject,
    HeadObject,
    ListObjects,
    DeleteObject,
    CopyObject,
    CreateMultipartUpload,
    UploadPart,
    ListParts,
    CompleteMultipartUpload,
    AbortMultipartUpload,
}

impl EventName {
    pub fn as_str(self) -> &'static str {
        match self {
            EventName::PutObject => "PutObject",
            EventName::GetObject => "GetObject",
            EventName::HeadObject => "HeadObject",
            EventName::ListObjects => "ListObjects",
            EventName::DeleteObject => "DeleteObject",
            EventName::CopyObject => "CopyObject",
            EventName::CreateMultipartUpload => "CreateMultipartUpload",
            EventName::UploadPart => "UploadPart",
            EventName::ListParts => "ListParts",
            EventName::CompleteMultipartUpload => "CompleteMultipartUpload",
            EventName::AbortMultipartUpload => "AbortMultipartUpload",
        }
    }
    pub fn read_only(self) -> bool {
        matches!(
            self,
            EventName::GetObject
                | EventName::HeadObject
                | EventName::ListObjects
                | EventName::ListParts
        )
    }
}

/// One access, as tarn knows it; the sink turns it into a [`CloudTrailRecord`]. Never holds a
/// token or a document's content: only names, sizes and outcomes.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub time: DateTime<Utc>,
    pub name: EventName,
    pub bucket: String,
    /// the object key (`None` for lists)
    pub key: Option<String>,
    /// the listed prefix (lists only)
    pub prefix: Option<String>,
    pub actor: Actor,
    /// the component that made the call on the actor's behalf (`invokedBy`)
    pub invoked_by: Option<String>,
    /// the caller's address, or the component's name for tarn's own calls
    pub source_ip: String,
    pub user_agent: String,
    /// the request id (one per HTTP request at the ingress); a fresh one when `None`
    pub request_id: Option<String>,
    /// `(errorCode, errorMessage)` of a failed or denied call
    pub error: Option<(String, String)>,
    /// extra `requestParameters` (e.g. `If-None-Match`)
    pub request_extra: Map<String, Value>,
    /// `additionalEventData` (bytes transferred, `tarnTable`, HTTP details)
    pub additional: Map<String, Value>,
}

impl AuditEvent {
    /// An event with the given basics; the rest empty.
    pub fn new(
        name: EventName,
        bucket: impl Into<String>,
        actor: Actor,
        source_ip: impl Into<String>,
    ) -> Self {
        Self {
            time: Utc::now(),
            name,
            bucket: bucket.into(),
            key: None,
            prefix: None,
            actor,
            invoked_by: None,
            source_ip: source_ip.into(),
            user_agent: "tarn".into(),
            request_id: None,
            error: None,
            request_extra: Map::new(),
            additional: Map::new(),
        }
    }
}

/// `userIdentity` of a record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserIdentity {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoked_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_provider: Option<String>,
}

/// One entry of `resources`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(rename = "ARN")]
    pub arn: String,
    #[serde(rename = "accountId", default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
}

/// One CloudTrail record (an S3 data event), field for field as CloudTrail delivers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudTrailRecord {
    pub event_version: String,
    pub user_identity: UserIdentity,
    pub event_time: String,
    pub event_source: String,
    pub event_name: String,
    pub aws_region: String,
    #[serde(rename = "sourceIPAddress")]
    pub source_ip_address: String,
    pub user_agent: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(default)]
    pub request_parameters: Value,
    #[serde(default)]
    pub response_elements: Value,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub additional_event_data: Value,
    #[serde(rename = "requestID")]
    pub request_id: String,
    #[serde(rename = "eventID")]
    pub event_id: String,
    pub read_only: bool,
    #[serde(default)]
    pub resources: Vec<Resource>,
    pub event_type: String,
    pub management_event: bool,
    pub recipient_account_id: String,
    pub event_category: String,
}

/// The ISO 8601 UTC form CloudTrail uses: `2024-01-02T03:04:05Z`.
pub fn event_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl CloudTrailRecord {
    /// The record of `event` in trail `trail`.
    pub fn from_event(trail: &TrailConfig, e: AuditEvent) -> Self {
        let user_identity = match &e.actor {
            Actor::Service(name) => UserIdentity {
                kind: "AWSService".into(),
                invoked_by: Some(name.clone()),
                ..Default::default()
            },
            Actor::WebIdentity {
                sub,
                username,
                issuer,
            } => UserIdentity {
                kind: "WebIdentityUser".into(),
                principal_id: Some(sub.clone()),
                user_name: Some(username.clone()),
                identity_provider: Some(issuer.clone()),
                invoked_by: e.invoked_by.clone(),
                ..Default::default()
            },
            Actor::LocalUser(name) => UserIdentity {
                kind: "IAMUser".into(),
                principal_id: Some(format!("local:{name}")),
                user_name: Some(name.clone()),
                invoked_by: e.invoked_by.clone(),
                ..Default::default()
            },
            Actor::Anonymous => UserIdentity {
                kind: "Unknown".into(),
                principal_id: Some("anonymous".into()),
                invoked_by: e.invoked_by.clone(),
                ..Default::default()
            },
        };
        let mut params = Map::new();
        params.insert("bucketName".into(), json!(e.bucket));
        params.insert(
            "Host".into(),
            json!(format!("{}.s3.{}.amazonaws.com", e.bucket, trail.region)),
        );
        let resources = match (&e.key, &e.prefix) {
            (Some(key), _) => {
                params.insert("key".into(), json!(key));
                vec![
                    Resource {
                        kind: "AWS::S3::Object".into(),
                        arn: format!("arn:aws:s3:::{}/{key}", e.bucket),
                        account_id: None,
                    },
                    Resource {
                        kind: "AWS::S3::Bucket".into(),
                        arn: format!("arn:aws:s3:::{}", e.bucket),
                        account_id: Some(trail.account.clone()),
                    },
                ]
            }
            (None, prefix) => {
                if e.name == EventName::ListObjects {
                    params.insert("list-type".into(), json!("2"));
                    params.insert("prefix".into(), json!(prefix.clone().unwrap_or_default()));
                }
                vec![Resource {
                    kind: "AWS::S3::Bucket".into(),
                    arn: format!("arn:aws:s3:::{}", e.bucket),
                    account_id: Some(trail.account.clone()),
                }]
            }
        };
        params.extend(e.request_extra);
        let (error_code, error_message) = match e.error {
            Some((c, m)) => (Some(c), Some(m)),
            None => (None, None),
        };
        Self {
            event_version: "1.09".into(),
            user_identity,
            event_time: event_time(e.time),
            event_source: "s3.amazonaws.com".into(),
            event_name: e.name.as_str().into(),
            aws_region: trail.region.clone(),
            source_ip_address: e.source_ip,
            user_agent: e.user_agent,
            error_code,
            error_message,
            request_parameters: Value::Object(params),
            response_elements: Value::Null,
            additional_event_data: if e.additional.is_empty() {
                Value::Null
            } else {
                Value::Object(e.additional)
            },
            request_id: e.request_id.unwrap_or_else(request_id),
            event_id: uuid::Uuid::new_v4().to_string(),
            read_only: e.name.read_only(),
            resources,
            event_type: "AwsApiCall".into(),
            management_event: false,
            recipient_account_id: trail.account.clone(),
            event_category: "Data".into(),
        }
    }

    /// `requestParameters.bucketName`.
    pub fn bucket(&self) -> Option<&str> {
        self.request_parameters
            .get("bucketName")
            .and_then(Value::as_str)
    }
    /// `requestParameters.key`.
    pub fn key(&self) -> Option<&str> {
        self.request_parameters.get("key").and_then(Value::as_str)
    }
    /// The table an event touched: `additionalEventData.tarnTable`, else from its key.
    pub fn table(&self) -> Option<String> {
        self.additional_event_data
            .get("tarnTable")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| self.key().and_then(table_of_key).map(str::to_string))
    }
    /// The user name, else the principal id, else the component (`invokedBy`).
    pub fn who(&self) -> String {
        let u = &self.user_identity;
        u.user_name
            .clone()
            .or_else(|| u.principal_id.clone())
            .or_else(|| u.invoked_by.clone())
            .unwrap_or_default()
    }
    /// Whether the record names `user` (user name, principal id or component).
    pub fn is_by(&self, user: &str) -> bool {
        let u = &self.user_identity;
        [&u.user_name, &u.principal_id]
            .into_iter()
            .flatten()
            .any(|v| v == user)
            || (u.kind == "AWSService" && u.invoked_by.as_deref() == Some(user))
    }
}

/// A CloudTrail-style request id: 16 upper-case hex characters.
pub fn request_id() -> String {
    hex::encode_upper(crate::kms::random::<8>())
}

/// The table of a lake key: the 2nd segment of `tables/<t>/...` and `objects/<t>/...`.
pub fn table_of_key(key: &str) -> Option<&str> {
    let mut parts = key.split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("tables" | "objects"), Some(t), Some(_)) if !t.is_empty() => Some(t),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_cloudtrail_layout() {
        let t = TrailConfig::default();
        let at = DateTime::parse_from_rfc3339("2024-03-05T07:08:09Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            t.log_key(at, "abcd"),
            "AWSLogs/000000000000/CloudTrail/local/2024/03/05/000000000000_CloudTrail_local_20240305T0708Z_abcd.json.gz"
        );
        assert_eq!(
            t.digest_key(at),
            "AWSLogs/000000000000/CloudTrail-Digest/local/2024/03/05/000000000000_CloudTrail-Digest_local_tarn_local_20240305T070809Z.json.gz"
        );
        assert_eq!(
            table_of_key("tables/events/dt=2024-01-01/a.parquet"),
            Some("events")
        );
        assert_eq!(
            table_of_key("objects/images/dt=2024-01-01/x"),
            Some("images")
        );
        assert_eq!(table_of_key("id=123"), None);
        assert_eq!(table_of_key("tables//x"), None);
    }
}
