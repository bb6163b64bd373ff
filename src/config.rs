//! The one typed configuration: defaults, then an optional TOML file, then environment
//! variables and flags (clap reads both). Loaded once in `main` and passed down.

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the platform's services are: this machine, or AWS.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// local directories, a local master key and catalog, DataFusion, the dev token issuer
    #[default]
    Local,
    /// S3, KMS, Glue, Athena and a Cognito pool, configured by TARN_AWS_* or TARN_AWS_CONFIG
    Aws,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `local` or `aws`
    pub backend: Backend,
    /// where keys, stores and the catalog live
    pub data_dir: PathBuf,
    /// the ingress's address
    pub listen: SocketAddr,
    /// the directory of table schemas
    pub schemas: PathBuf,
    /// the catalog database
    pub database: String,
    pub pipeline: PipelineSection,
    pub ingress: IngressSection,
    pub scan: ScanSection,
    pub compaction: CompactionSection,
    /// the access trail: account, region and trail name in the CloudTrail layout
    pub audit: tarn_core::audit::TrailConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ScanSection {
    /// clamd's address: `tcp://127.0.0.1:3310` or `unix:///run/clamav/clamd.ctl`; without it,
    /// tarn starts a clamd of its own when one is installed, else uses its built-in engine
    pub clamd: Option<String>,
    /// serve `GET .../content` of documents stored without a virus scan (`scan_result`
    /// `skipped`: `pipeline.stages` without `scan`); refused (409 `not_scanned`) by default
    pub serve_unscanned: bool,
    /// how often `tarn serve` asks the scanner its definitions version, rescanning every stored
    /// object when it changed (`tarn rescan`); 0 turns the schedule off
    pub rescan_check_secs: u64,
}

impl Default for ScanSection {
    fn default() -> Self {
        Self {
            clamd: None,
            serve_unscanned: false,
            rescan_check_secs: 3600,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CompactionSection {
    /// how often `tarn serve` compacts; 0 turns the schedule off
    pub interval_secs: u64,
    /// the size compacted files grow to, e.g. `128MiB`
    pub target_size: String,
    /// how long replaced files stay readable for queries already running
    pub grace_period_secs: u64,
}

impl Default for CompactionSection {
    fn default() -> Self {
        Self {
            interval_secs: 600,
            target_size: "128MiB".into(),
            grace_period_secs: 3600,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineSection {
    /// per-document stages, in order; normalize always follows them
    pub stages: Vec<String>,
    pub poll_interval_ms: u64,
    pub flush_interval_ms: u64,
    pub flush_records: usize,
    pub concurrency: usize,
    pub max_attempts: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct IngressSection {
    pub max_in_flight: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            backend: Backend::Local,
            data_dir: PathBuf::from("./tarn-data"),
            listen: "127.0.0.1:8080".parse().expect("a valid address"),
            schemas: PathBuf::from("./schemas"),
            database: "tarn".into(),
            pipeline: PipelineSection::default(),
            ingress: IngressSection::default(),
            scan: ScanSection::default(),
            compaction: CompactionSection::default(),
            audit: Default::default(),
        }
    }
}

impl Default for PipelineSection {
    fn default() -> Self {
        let d = tarn_lake::PipelineConfig::default();
        Self {
            stages: tarn_lake::registry::STAGE_NAMES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            poll_interval_ms: d.poll_interval.as_millis() as u64,
            flush_interval_ms: d.flush_interval.as_millis() as u64,
            flush_records: d.flush_records,
            concurrency: d.concurrency,
            max_attempts: d.retry.max_attempts,
        }
    }
}

impl Default for IngressSection {
    fn default() -> Self {
        Self {
            max_in_flight: tarn_ingress::DEFAULT_MAX_IN_FLIGHT,
        }
    }
}

/// Values given on the command line or in the environment; `None` keeps the file's or default.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub schemas: Option<PathBuf>,
    pub clamd: Option<String>,
    pub backend: Option<Backend>,
}

impl Config {
    /// Defaults, then `file` (TOML) when given, then `overrides`; then checks the result.
    pub fn load(file: Option<&Path>, overrides: Overrides) -> anyhow::Result<Self> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("config file {}", path.display()))?
            }
            None => Config::default(),
        };
        if let Some(d) = overrides.data_dir {
            config.data_dir = d;
        }
        if let Some(l) = overrides.listen {
            config.listen = l;
        }
        if let Some(s) = overrides.schemas {
            config.schemas = s;
        }
        if let Some(b) = overrides.backend {
            config.backend = b;
        }
        if let Some(c) = overrides.clamd {
            config.scan.clamd = Some(c);
        }
        config.check()?;
        Ok(config)
    }

    pub fn check(&self) -> anyhow::Result<()> {
        let stages = &self.pipeline.stages;
        tarn_lake::registry::check_stage_names(stages)
            .map_err(|e| anyhow::anyhow!("pipeline.stages: {e}"))?;
        if stages.iter().any(|s| s == "strip") && !stages.iter().any(|s| s == "scan") {
            bail!(
                "pipeline.stages: \"strip\" needs \"scan\" before it (nothing unscanned is parsed)"
            );
        }
        tarn_lake::compact::parse_size(&self.compaction.target_size).map_err(|e| {
            anyhow::anyhow!(
                "compaction.target_size {:?}: {e}",
                self.compaction.target_size
            )
        })?;
        if self.pipeline.concurrency == 0 || self.pipeline.max_attempts == 0 {
            bail!("pipeline.concurrency and pipeline.max_attempts must be at least 1");
        }
        if self.database.is_empty() || !tarn_catalog::schemas::is_valid_table_name(&self.database) {
            bail!(
                "database {:?} must match ^[a-z][a-z0-9_]{{0,62}}$",
                self.database
            );
        }
        Ok(())
    }

    pub fn pipeline_config(&self) -> tarn_lake::PipelineConfig {
        let p = &self.pipeline;
        tarn_lake::PipelineConfig {
            poll_interval: Duration::from_millis(p.poll_interval_ms),
            flush_interval: Duration::from_millis(p.flush_interval_ms),
            flush_records: p.flush_records,
            concurrency: p.concurrency,
            retry: tarn_lake::RetryPolicy {
                max_attempts: p.max_attempts,
                ..Default::default()
            },
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("tarn.toml");
        std::fs::write(&f, "data_dir = \"/srv/tarn\"\nlisten = \"0.0.0.0:9000\"\n[pipeline]\nflush_interval_ms = 500\n").unwrap();
        let c = Config::load(
            Some(&f),
            Overrides {
                listen: Some("127.0.0.1:1".parse().unwrap()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/srv/tarn"));
        assert_eq!(c.listen.port(), 1);
        assert_eq!(c.pipeline.flush_interval_ms, 500);
        assert_eq!(c.pipeline.stages, ["validate", "scan", "strip"]);
    }

    #[test]
    fn mistakes_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("tarn.toml");
        std::fs::write(&f, "data_dri = \"x\"\n").unwrap();
        let e = format!(
            "{:#}",
            Config::load(Some(&f), Overrides::default()).unwrap_err()
        );
        assert!(e.contains("data_dri"), "{e}");
        std::fs::write(&f, "[pipeline]\nstages = [\"validate\", \"teleport\"]\n").unwrap();
        let e = format!(
            "{:#}",
            Config::load(Some(&f), Overrides::default()).unwrap_err()
        );
        assert!(e.contains("teleport"), "{e}");
    }
}
