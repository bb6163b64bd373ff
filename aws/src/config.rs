//! [`AwsConfig`]: every setting the AWS backend needs, loaded from a TOML file and/or the
//! environment (`TARN_AWS_*`, the environment wins), and checked at start: a missing or malformed
//! setting fails with a message naming it (both its file key and its environment variable).

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// A setting that is missing or wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("aws config: {setting} ({env}): {problem}")]
pub struct ConfigError {
    /// the file key, e.g. `lake_bucket`
    pub setting: &'static str,
    /// the environment variable, e.g. `TARN_AWS_LAKE_BUCKET`
    pub env: String,
    pub problem: String,
}

/// The AWS backend's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsConfig {
    pub region: String,
    /// an endpoint override for every service (a moto server in the tests)
    pub endpoint_url: Option<String>,
    /// path-style S3 addressing (needed by moto and other S3 look-alikes)
    pub force_path_style: bool,
    pub ingress_bucket: String,
    pub lake_bucket: String,
    pub quarantine_bucket: String,
    /// where the pipeline keeps its state (status records, manifests, hand-offs); the lake bucket
    /// unless set
    pub state_bucket: String,
    /// the state's key prefix in `state_bucket` (`state/` by default), empty or ending in `/`
    pub state_prefix: String,
    /// the CloudTrail log bucket
    pub audit_bucket: String,
    /// the platform's KMS key: a key id, a key ARN, or an alias (`alias/tarn`)
    pub kms_key_id: String,
    pub glue_database: String,
    pub athena_workgroup: String,
    /// `s3://bucket/prefix/` where Athena writes results
    pub athena_output_location: String,
    /// the CloudTrail trail `tarn audit --check-trail` checks
    pub trail_name: String,
    /// `<region>_<id>`
    pub cognito_pool_id: String,
    /// the tokens' `iss`; `https://cognito-idp.<region>.amazonaws.com/<pool id>` unless set
    pub cognito_issuer: String,
    /// where the pool's keys are fetched; `<issuer>/.well-known/jwks.json` unless set
    pub cognito_jwks_url: String,
    /// app client ids whose tokens are accepted
    pub cognito_client_ids: Vec<String>,
    /// the stages the Lambdas run before normalize, in order (`validate,strip` by default)
    pub stages: Vec<String>,
    /// the table schemas (`schemas/` by default)
    pub schemas_dir: PathBuf,
    /// clamd for the scan stage (`tcp://host:port` or `unix:///path`); the scan stage needs it
    /// or `clamav_definitions`
    pub clamd_addr: Option<String>,
    /// the private mirror of ClamAV's definitions, `s3://bucket/prefix/`: without `clamd_addr`,
    /// the scan function fetches them into `/tmp` and starts clamd itself; the updater function
    /// refreshes them there
    pub clamav_definitions: Option<S3Location>,
    /// serve `GET .../content` of documents stored without a virus scan (`ScanMode:
    /// none-serve-unscanned`); refused (409 `not_scanned`) by default
    pub serve_unscanned: bool,
}

/// A bucket and a key prefix (empty, or ending in `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    pub prefix: String,
}

impl S3Location {
    /// `s3://bucket/prefix/` (the prefix may be empty: `s3://bucket/`).
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .trim()
            .strip_prefix("s3://")
            .ok_or_else(|| format!("{url:?} is not an s3://bucket/prefix/ URL"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        check_bucket(bucket).map_err(|p| format!("bucket {bucket:?} {p}"))?;
        let mut prefix = prefix.to_string();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        if prefix.starts_with('/') || prefix.contains("//") {
            return Err(format!(
                "{url:?}: the prefix must be relative, like clamav/"
            ));
        }
        Ok(Self {
            bucket: bucket.to_string(),
            prefix,
        })
    }
}

impl std::fmt::Display for S3Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// The raw form: every setting optional, as a file or the environment gives it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAwsConfig {
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    pub force_path_style: Option<bool>,
    pub ingress_bucket: Option<String>,
    pub lake_bucket: Option<String>,
    pub quarantine_bucket: Option<String>,
    pub state_bucket: Option<String>,
    pub state_prefix: Option<String>,
    pub audit_bucket: Option<String>,
    pub kms_key_id: Option<String>,
    pub glue_database: Option<String>,
    pub athena_workgroup: Option<String>,
    pub athena_output_location: Option<String>,
    pub trail_name: Option<String>,
    pub cognito_pool_id: Option<String>,
    pub cognito_issuer: Option<String>,
    pub cognito_jwks_url: Option<String>,
    pub cognito_client_ids: Option<Vec<String>>,
    pub stages: Option<Vec<String>>,
    pub schemas_dir: Option<PathBuf>,
    pub clamd_addr: Option<String>,
    pub clamav_definitions: Option<String>,
    pub serve_unscanned: Option<bool>,
}

fn env_name(setting: &str) -> String {
    format!("TARN_AWS_{}", setting.to_ascii_uppercase())
}

fn err(setting: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        setting,
        env: env_name(setting),
        problem: problem.into(),
    }
}

fn list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

impl RawAwsConfig {
    /// Parses a TOML file's text: the settings at the top level or under `[aws]`.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let value: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
        let table = match value.get("aws") {
            Some(toml::Value::Table(t)) => t.clone(),
            _ => value,
        };
        table.try_into().map_err(|e: toml::de::Error| e.to_string())
    }

    /// Settings from `lookup` (the environment: `TARN_AWS_<SETTING>`; the region also from
    /// `AWS_REGION`, the endpoint also from `AWS_ENDPOINT_URL`) override these.
    pub fn merge_env(
        mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let get = |setting: &str| lookup(&env_name(setting)).filter(|v| !v.trim().is_empty());
        macro_rules! s {
            ($($f:ident),*) => { $( if let Some(v) = get(stringify!($f)) { self.$f = Some(v); } )* };
        }
        s!(
            region,
            endpoint_url,
            ingress_bucket,
            lake_bucket,
            quarantine_bucket,
            state_bucket,
            state_prefix,
            audit_bucket,
            kms_key_id,
            glue_database,
            athena_workgroup,
            athena_output_location,
            trail_name,
            cognito_pool_id,
            cognito_issuer,
            cognito_jwks_url,
            clamd_addr,
            clamav_definitions
        );
        if self.region.is_none() {
            self.region = lookup("AWS_REGION")
                .or_else(|| lookup("AWS_DEFAULT_REGION"))
                .filter(|v| !v.is_empty());
        }
        if self.endpoint_url.is_none() {
            self.endpoint_url = lookup("AWS_ENDPOINT_URL").filter(|v| !v.is_empty());
        }
        let boolean = |setting: &'static str, v: String| -> Result<bool, ConfigError> {
            match v.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" => Ok(true),
                "0" | "false" | "no" => Ok(false),
                other => Err(err(setting, format!("{other:?} is not true or false"))),
            }
        };
        if let Some(v) = get("force_path_style") {
            self.force_path_style = Some(boolean("force_path_style", v)?);
        }
        if let Some(v) = get("serve_unscanned") {
            self.serve_unscanned = Some(boolean("serve_unscanned", v)?);
        }
        if let Some(v) = get("cognito_client_ids") {
            self.cognito_client_ids = Some(list(&v));
        }
        if let Some(v) = get("stages") {
            self.stages = Some(list(&v));
        }
        if let Some(v) = get("schemas_dir") {
            self.schemas_dir = Some(PathBuf::from(v));
        }
        Ok(self)
    }

    /// Checks every setting and fills the defaults.
    pub fn finish(self) -> Result<AwsConfig, ConfigError> {
        fn req(v: Option<String>, setting: &'static str) -> Result<String, ConfigError> {
            match v.map(|s| s.trim().to_string()) {
                Some(s) if !s.is_empty() => Ok(s),
                _ => Err(err(setting, "missing")),
            }
        }
        let region = req(self.region, "region")?;
        let region_ok = region.split('-').count() >= 3
            && region
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !region_ok {
            return Err(err(
                "region",
                format!("{region:?} is not an AWS region like us-east-1"),
            ));
        }
        let endpoint_url = self
            .endpoint_url
            .map(|s| s.trim().trim_end_matches('/').to_string());
        if let Some(u) = &endpoint_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            return Err(err(
                "endpoint_url",
                format!("{u:?} is not an http:// or https:// URL"),
            ));
        }
        let bucket = |v: Option<String>, setting: &'static str| -> Result<String, ConfigError> {
            let b = req(v, setting)?;
            check_bucket(&b).map_err(|p| err(setting, format!("{b:?} {p}")))?;
            Ok(b)
        };
        let ingress_bucket = bucket(self.ingress_bucket, "ingress_bucket")?;
        let lake_bucket = bucket(self.lake_bucket, "lake_bucket")?;
        let quarantine_bucket = bucket(self.quarantine_bucket, "quarantine_bucket")?;
        let audit_bucket = bucket(self.audit_bucket, "audit_bucket")?;
        let state_bucket = match self.state_bucket {
            Some(b) if !b.trim().is_empty() => bucket(Some(b), "state_bucket")?,
            _ => lake_bucket.clone(),
        };
        let mut state_prefix = self
            .state_prefix
            .unwrap_or_else(|| "state/".into())
            .trim()
            .to_string();
        if !state_prefix.is_empty() && !state_prefix.ends_with('/') {
            state_prefix.push('/');
        }
        if state_prefix.starts_with('/') || state_prefix.contains("//") {
            return Err(err(
                "state_prefix",
                format!("{state_prefix:?} must be a relative key prefix like state/"),
            ));
        }
        if state_bucket == lake_bucket
            && (state_prefix.is_empty()
                || state_prefix.starts_with("tables/")
                || state_prefix.starts_with("objects/"))
        {
            return Err(err(
                "state_prefix",
                "the state shares the lake bucket, so it needs its own prefix (like state/) outside tables/ and objects/",
            ));
        }
        let distinct = [
            (&ingress_bucket, "ingress_bucket"),
            (&quarantine_bucket, "quarantine_bucket"),
            (&audit_bucket, "audit_bucket"),
        ];
        for (b, setting) in distinct {
            if *b == lake_bucket {
                return Err(err(
                    setting,
                    format!("{b:?} is also the lake bucket; each needs its own bucket"),
                ));
            }
        }
        let kms_key_id = req(self.kms_key_id, "kms_key_id")?;
        let key_ok = kms_key_id.starts_with("arn:aws")
            || kms_key_id.starts_with("alias/")
            || uuid::Uuid::parse_str(&kms_key_id).is_ok()
            || kms_key_id.starts_with("mrk-");
        if !key_ok {
            return Err(err(
                "kms_key_id",
                format!("{kms_key_id:?} is not a key id, key ARN or alias/NAME"),
            ));
        }
        let glue_database = req(self.glue_database, "glue_database")?;
        if !glue_database
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            || glue_database.len() > 255
        {
            return Err(err(
                "glue_database",
                format!("{glue_database:?} must be lowercase letters, digits and _"),
            ));
        }
        let athena_workgroup = self
            .athena_workgroup
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| "primary".into());
        let athena_output_location = req(self.athena_output_location, "athena_output_location")?;
        if !athena_output_location.starts_with("s3://") || athena_output_location.len() <= 5 {
            return Err(err(
                "athena_output_location",
                format!("{athena_output_location:?} is not an s3://bucket/prefix/ URL"),
            ));
        }
        let trail_name = self
            .trail_name
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| "tarn".into());
        let cognito_pool_id = req(self.cognito_pool_id, "cognito_pool_id")?;
        match cognito_pool_id.split_once('_') {
            Some((r, id)) if !r.is_empty() && !id.is_empty() && r.contains('-') => {}
            _ => {
                return Err(err(
                    "cognito_pool_id",
                    format!("{cognito_pool_id:?} is not a pool id like us-east-1_AbC123"),
                ));
            }
        }
        let pool_region = cognito_pool_id
            .split('_')
            .next()
            .unwrap_or_default()
            .to_string();
        let cognito_issuer = self
            .cognito_issuer
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| {
                format!("https://cognito-idp.{pool_region}.amazonaws.com/{cognito_pool_id}")
            });
        if !cognito_issuer.starts_with("https://") && !cognito_issuer.starts_with("http://") {
            return Err(err(
                "cognito_issuer",
                format!("{cognito_issuer:?} is not a URL"),
            ));
        }
        let cognito_jwks_url = self
            .cognito_jwks_url
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| {
                format!(
                    "{}/.well-known/jwks.json",
                    cognito_issuer.trim_end_matches('/')
                )
            });
        if !cognito_jwks_url.starts_with("https://") && !cognito_jwks_url.starts_with("http://") {
            return Err(err(
                "cognito_jwks_url",
                format!("{cognito_jwks_url:?} is not a URL"),
            ));
        }
        let cognito_client_ids = self.cognito_client_ids.unwrap_or_default();
        if cognito_client_ids.is_empty() {
            return Err(err(
                "cognito_client_ids",
                "missing: give the app client ids whose tokens are accepted (comma-separated)",
            ));
        }
        let stages = self
            .stages
            .unwrap_or_else(|| vec!["validate".into(), "strip".into()]);
        tarn_lake::registry::check_stage_names(&stages).map_err(|e| err("stages", e))?;
        let clamd_addr = self.clamd_addr.filter(|s| !s.trim().is_empty());
        let clamav_definitions = match self.clamav_definitions.filter(|s| !s.trim().is_empty()) {
            Some(u) => Some(S3Location::parse(&u).map_err(|p| err("clamav_definitions", p))?),
            None => None,
        };
        match &clamd_addr {
            Some(a) if !(a.starts_with("tcp://") || a.starts_with("unix://")) => {
                return Err(err(
                    "clamd_addr",
                    format!("{a:?} is not tcp://host:port or unix:///path"),
                ));
            }
            None if stages.iter().any(|s| s == "scan") && clamav_definitions.is_none() => {
                return Err(err(
                    "clamd_addr",
                    "missing: the scan stage needs clamd (tcp://host:port or unix:///path), or the definitions mirror TARN_AWS_CLAMAV_DEFINITIONS (s3://bucket/prefix/) to start its own",
                ));
            }
            _ => {}
        }
        Ok(AwsConfig {
            clamd_addr,
            clamav_definitions,
            serve_unscanned: self.serve_unscanned.unwrap_or(false),
            region,
            endpoint_url,
            force_path_style: self.force_path_style.unwrap_or(false),
            ingress_bucket,
            lake_bucket,
            quarantine_bucket,
            state_bucket,
            state_prefix,
            audit_bucket,
            kms_key_id,
            glue_database,
            athena_workgroup,
            athena_output_location,
            trail_name,
            cognito_pool_id,
            cognito_issuer,
            cognito_jwks_url,
            cognito_client_ids,
            stages,
            schemas_dir: self.schemas_dir.unwrap_or_else(|| PathBuf::from("schemas")),
        })
    }
}

/// S3's bucket naming rules (the common subset).
fn check_bucket(b: &str) -> Result<(), &'static str> {
    if b.len() < 3 || b.len() > 63 {
        return Err("must be 3 to 63 characters");
    }
    if !b
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    {
        return Err("may hold only lowercase letters, digits, - and .");
    }
    let ends_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !ends_ok(b.chars().next()) || !ends_ok(b.chars().last()) || b.contains("..") {
        return Err("must start and end with a letter or digit");
    }
    Ok(())
}

impl AwsConfig {
    /// From the environment only.
    pub fn from_env() -> Result<Self, ConfigError> {
        RawAwsConfig::default()
            .merge_env(|k| std::env::var(k).ok())?
            .finish()
    }

    /// From a TOML file (settings at the top level or under `[aws]`), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let raw = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
                    setting: "config file",
                    env: "TARN_AWS_CONFIG".into(),
                    problem: format!("cannot read {}: {e}", path.display()),
                })?;
                RawAwsConfig::from_toml(&text).map_err(|e| ConfigError {
                    setting: "config file",
                    env: "TARN_AWS_CONFIG".into(),
                    problem: format!("{}: {e}", path.display()),
                })?
            }
            None => RawAwsConfig::default(),
        };
        raw.merge_env(|k| std::env::var(k).ok())?.finish()
    }

    /// As [`AwsConfig::load`], with the file named by `TARN_AWS_CONFIG` when set.
    pub fn load_default() -> Result<Self, ConfigError> {
        let file = std::env::var_os("TARN_AWS_CONFIG").map(PathBuf::from);
        Self::load(file.as_deref())
    }

    /// The stage that runs after `stage` (`normalize` after the last one).
    pub fn next_stage(&self, stage: &str) -> String {
        let i = self.stages.iter().position(|s| s == stage);
        match i.and_then(|i| self.stages.get(i + 1)) {
            Some(s) => s.clone(),
            None => "normalize".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn full() -> HashMap<String, String> {
        [
            ("TARN_AWS_REGION", "us-east-1"),
            ("TARN_AWS_INGRESS_BUCKET", "tarn-ingress"),
            ("TARN_AWS_LAKE_BUCKET", "tarn-lake"),
            ("TARN_AWS_QUARANTINE_BUCKET", "tarn-quarantine"),
            ("TARN_AWS_AUDIT_BUCKET", "tarn-audit"),
            ("TARN_AWS_KMS_KEY_ID", "alias/tarn"),
            ("TARN_AWS_GLUE_DATABASE", "tarn"),
            (
                "TARN_AWS_ATHENA_OUTPUT_LOCATION",
                "s3://tarn-athena/results/",
            ),
            ("TARN_AWS_COGNITO_POOL_ID", "us-east-1_AbC123"),
            ("TARN_AWS_COGNITO_CLIENT_IDS", "a, b"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn load(env: &HashMap<String, String>) -> Result<AwsConfig, ConfigError> {
        RawAwsConfig::default()
            .merge_env(|k| env.get(k).cloned())?
            .finish()
    }

    #[test]
    fn defaults_are_filled() {
        let c = load(&full()).unwrap();
        assert_eq!(c.state_bucket, "tarn-lake");
        assert_eq!(c.state_prefix, "state/");
        assert_eq!(c.athena_workgroup, "primary");
        assert_eq!(
            c.cognito_issuer,
            "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_AbC123"
        );
        assert_eq!(
            c.cognito_jwks_url,
            "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_AbC123/.well-known/jwks.json"
        );
        assert_eq!(c.cognito_client_ids, ["a", "b"]);
        assert_eq!(c.stages, ["validate", "strip"]);
        assert_eq!(c.next_stage("validate"), "strip");
        assert_eq!(c.next_stage("strip"), "normalize");
    }

    #[test]
    fn every_missing_setting_is_named() {
        for key in full().keys() {
            let mut env = full();
            env.remove(key);
            let e = load(&env).unwrap_err();
            assert_eq!(&e.env, key, "{e}");
            assert!(
                e.to_string().contains(key.as_str()) && e.to_string().contains("missing"),
                "{e}"
            );
        }
    }

    #[test]
    fn wrong_settings_are_named() {
        for (key, value) in [
            ("TARN_AWS_LAKE_BUCKET", "Tarn_Lake"),
            ("TARN_AWS_REGION", "moon"),
            ("TARN_AWS_ENDPOINT_URL", "localhost:5000"),
            ("TARN_AWS_KMS_KEY_ID", "my key"),
            ("TARN_AWS_ATHENA_OUTPUT_LOCATION", "/tmp/x"),
            ("TARN_AWS_COGNITO_POOL_ID", "pool"),
            ("TARN_AWS_FORCE_PATH_STYLE", "maybe"),
            ("TARN_AWS_STAGES", "strip,validate"),
            ("TARN_AWS_INGRESS_BUCKET", "tarn-lake"),
            ("TARN_AWS_STATE_PREFIX", "tables/"),
            ("TARN_AWS_CLAMAV_DEFINITIONS", "https://x/y"),
            ("TARN_AWS_CLAMAV_DEFINITIONS", "s3://Bad_Bucket/clamav/"),
            ("TARN_AWS_SERVE_UNSCANNED", "perhaps"),
        ] {
            let mut env = full();
            env.insert(key.into(), value.into());
            let e = load(&env).unwrap_err();
            assert_eq!(e.env, key, "{e}");
        }
    }

    #[test]
    fn the_scan_stage_needs_clamd_or_a_definitions_mirror() {
        let mut env = full();
        env.insert("TARN_AWS_STAGES".into(), "validate,scan,strip".into());
        let e = load(&env).unwrap_err();
        assert_eq!(e.env, "TARN_AWS_CLAMD_ADDR", "{e}");
        assert!(e.to_string().contains("TARN_AWS_CLAMAV_DEFINITIONS"), "{e}");
        env.insert(
            "TARN_AWS_CLAMAV_DEFINITIONS".into(),
            "s3://tarn-clamav/clamav".into(),
        );
        let c = load(&env).unwrap();
        assert_eq!(c.clamd_addr, None);
        let d = c.clamav_definitions.unwrap();
        assert_eq!(
            (d.bucket.as_str(), d.prefix.as_str()),
            ("tarn-clamav", "clamav/")
        );
        assert_eq!(d.to_string(), "s3://tarn-clamav/clamav/");
        assert!(!c.serve_unscanned);
        env.insert("TARN_AWS_SERVE_UNSCANNED".into(), "true".into());
        assert!(load(&env).unwrap().serve_unscanned);
        let root = S3Location::parse("s3://tarn-clamav").unwrap();
        assert_eq!(root.prefix, "");
    }

    #[test]
    fn file_then_env() {
        let raw = RawAwsConfig::from_toml(
            "[aws]\nregion = \"eu-west-1\"\nlake_bucket = \"file-lake\"\ncognito_client_ids = [\"x\"]\nforce_path_style = true\n",
        )
        .unwrap();
        let mut env = full();
        env.remove("TARN_AWS_REGION");
        env.remove("TARN_AWS_LAKE_BUCKET");
        env.insert("TARN_AWS_INGRESS_BUCKET".into(), "env-ingress".into());
        let c = raw
            .merge_env(|k| env.get(k).cloned())
            .unwrap()
            .finish()
            .unwrap();
        assert_eq!(c.region, "eu-west-1");
        assert_eq!(c.lake_bucket, "file-lake");
        assert_eq!(c.ingress_bucket, "env-ingress");
        assert!(c.force_path_style);
        assert!(
            RawAwsConfig::from_toml("lake_bukket = \"x\"")
                .unwrap_err()
                .contains("lake_bukket")
        );
    }
}
