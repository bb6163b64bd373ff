//! The command line: one `tarn` binary, a subcommand per job (docs/contract.md, The `tarn`
//! command).

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(name = "tarn", version, about = "a data-lake ingestion and query platform", long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone)]
pub struct Global {
    /// where keys, stores and the catalog live [default: ./tarn-data]
    #[arg(long, global = true, env = "TARN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// the directory of table schemas [default: ./schemas]
    #[arg(long, global = true, env = "TARN_SCHEMAS")]
    pub schemas: Option<PathBuf>,
    /// where the services are: local (this machine) or aws (see aws/README.md) [default: local]
    #[arg(long, global = true, env = "TARN_BACKEND", value_enum)]
    pub backend: Option<crate::config::Backend>,
    /// a TOML config file (settings not given as flags or environment)
    #[arg(long, global = true, env = "TARN_CONFIG")]
    pub config: Option<PathBuf>,
    /// clamd's address (tcp://HOST:PORT or unix:///PATH); without it tarn starts its own clamd
    /// when installed, else scans with its built-in engine
    #[arg(long, global = true, env = "TARN_CLAMD")]
    pub clamd: Option<String>,
    /// log lines as JSON objects (structured logs for collectors)
    #[arg(long, global = true)]
    pub log_json: bool,
    /// more logging (-v info, -vv debug); RUST_LOG overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Clone, Copy, ValueEnum, Default, PartialEq, Eq)]
pub enum Format {
    #[default]
    Table,
    Json,
    Csv,
}

impl From<Format> for tarn_query::OutputFormat {
    fn from(f: Format) -> Self {
        match f {
            Format::Table => tarn_query::OutputFormat::Table,
            Format::Json => tarn_query::OutputFormat::Json,
            Format::Csv => tarn_query::OutputFormat::Csv,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole platform in-process on sample documents and show what happened
    Demo(DemoArgs),
    /// Run the platform on this machine: ingress, pipeline, dev token issuer
    Serve(ServeArgs),
    /// Print a token from the local dev issuer
    Token(TokenArgs),
    /// POST files to the ingress as a producer
    Ingest(IngestArgs),
    /// List tables with their columns, partitions, files and rows
    Tables(TablesArgs),
    /// Run SQL on the lake
    Query(QueryArgs),
    /// Compact small Parquet files into large ones now
    Compact(CompactArgs),
    /// The platform at a glance: backlog, last hour's documents, quarantine, scan, small files, compaction, audit
    Status(StatusArgs),
    /// Erase documents or rows everywhere they live (--id, --producer, --table T --where SQL); --status says when the bytes are gone
    Erase(EraseArgs),
    /// Write the Glue tables of schemas/ as CloudFormation (templates/glue-tables.yaml)
    Templates(TemplatesArgs),
    /// Read the access trail (--since, --user, --table, --event); `tarn audit verify` checks it was not altered
    Audit(AuditArgs),
    /// Review rejected and quarantined documents: list, show, replay, release
    #[command(subcommand)]
    Quarantine(QuarantineAction),
    /// Scan stored binary objects again with the current engine and definitions; the infected
    /// go to quarantine
    Rescan(RescanArgs),
}

#[derive(Debug, Subcommand)]
pub enum QuarantineAction {
    /// List rejected and quarantined documents (never their contents)
    List(QuarantineListArgs),
    /// One document's status, quarantine copy and history (never its content)
    Show(QuarantineShowArgs),
    /// Run the pipeline again on quarantine copies (after a schema fix or a scanner outage)
    Replay(QuarantineReplayArgs),
    /// Make a quarantined document readable without passing the stage that refused it (never
    /// an infected one)
    Release(QuarantineReleaseArgs),
}

#[derive(Debug, Args, Clone)]
pub struct QuarantineFilterArgs {
    /// only this table
    #[arg(long, value_name = "T")]
    pub table: Option<String>,
    /// only documents whose reason contains TEXT (case ignored), e.g. infected, "scan failed"
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// only rejected or only quarantined documents
    #[arg(long, value_enum)]
    pub status: Option<QuarantineStatus>,
    /// processed at or after T: a time (2024-05-06T10:00:00Z), a day (2024-05-06) or an age (15m, 2h, 7d)
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// processed before T (same forms as --since)
    #[arg(long, value_name = "T")]
    pub until: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum QuarantineStatus {
    Rejected,
    Quarantined,
}

#[derive(Debug, Args)]
pub struct QuarantineListArgs {
    #[command(flatten)]
    pub filter: QuarantineFilterArgs,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct QuarantineShowArgs {
    /// the document's id
    pub id: String,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct QuarantineReplayArgs {
    /// the documents' ids; without any, every document the filters select
    pub ids: Vec<String>,
    #[command(flatten)]
    pub filter: QuarantineFilterArgs,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct QuarantineReleaseArgs {
    /// the document's id
    pub id: String,
    /// why the operator releases it (kept in its row and history)
    #[arg(long)]
    pub reason: String,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct RescanArgs {
    /// only this table's objects
    #[arg(long, value_name = "T")]
    pub table: Option<String>,
    /// only documents received at or after T: a time, a day or an age (as `tarn audit --since`)
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub action: Option<AuditAction>,
    #[command(flatten)]
    pub filter: AuditFilterArgs,
}

#[derive(Debug, Subcommand)]
pub enum AuditAction {
    /// Check the trail against its signed digests; lists every modified, deleted or inserted
    /// log file and digest, and exits non-zero when there is any
    Verify(AuditVerifyArgs),
}

#[derive(Debug, Args)]
pub struct AuditFilterArgs {
    /// records at or after T: a time (2024-05-06T10:00:00Z), a day (2024-05-06) or an age (15m, 2h, 7d, 1w)
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// records of one user (user name or sub) or component (tarn-pipeline, tarn-ingress...)
    #[arg(long, value_name = "U")]
    pub user: Option<String>,
    /// records about one table
    #[arg(long, value_name = "T")]
    pub table: Option<String>,
    /// records of one call: GetObject, PutObject, HeadObject, ListObjects, DeleteObject, CopyObject
    #[arg(long, value_name = "NAME")]
    pub event: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct AuditVerifyArgs {
    /// the trail's public key [default: <data-dir>/keys/audit-signing.pub]
    #[arg(long)]
    pub public_key: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct TemplatesArgs {
    /// where to write the generated template
    #[arg(long, default_value = "templates/glue-tables.yaml")]
    pub out: std::path::PathBuf,
    /// only check that the file is current; exit non-zero when it is not
    #[arg(long)]
    pub check: bool,
}

#[derive(Debug, Args)]
pub struct CompactArgs {
    /// only this table [default: every table]
    #[arg(long)]
    pub table: Option<String>,
    /// only partitions matching these values, e.g. dt=2026-11-26 or table_name=events/dt=2026-11-26
    #[arg(long)]
    pub partition: Option<String>,
    /// the size compacted files grow to [default: compaction.target_size, 128MiB]
    #[arg(long)]
    pub target_size: Option<String>,
    /// how long replaced files stay readable, e.g. 1h [default: compaction.grace_period_secs]
    #[arg(long, value_parser = parse_duration)]
    pub grace_period: Option<Duration>,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// text for people, or one JSON object
    #[arg(long, value_enum, default_value_t)]
    pub format: StatusFormat,
    /// print again every interval (default 2s) until Ctrl-C
    #[arg(long, value_parser = parse_duration, num_args = 0..=1, default_missing_value = "2s")]
    pub watch: Option<Duration>,
}

#[derive(Debug, Clone, Copy, ValueEnum, Default, PartialEq, Eq)]
pub enum StatusFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("selector").args(["id", "producer", "where_", "status"]).required(true)))]
pub struct EraseArgs {
    /// one document, by its id
    #[arg(long)]
    pub id: Option<String>,
    /// every document a producer (the caller that POSTed it) sent
    #[arg(long)]
    pub producer: Option<String>,
    /// the table of --where
    #[arg(long, requires = "where_")]
    pub table: Option<String>,
    /// the rows of --table matching a SQL predicate, e.g. "user_id = 'u-42'"
    #[arg(long = "where", value_name = "SQL", requires = "table")]
    pub where_: Option<String>,
    /// why (the request's reference); kept in the erased rows, the record and the trail
    #[arg(long, required_unless_present_any = ["status", "dry_run"])]
    pub reason: Option<String>,
    /// list what would go (documents, rows per file, objects); change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// list the erasures and whether their bytes are physically gone (after the vacuum)
    #[arg(long)]
    pub status: bool,
    /// how long replaced files stay readable, e.g. 1h [default: compaction.grace_period_secs]
    #[arg(long, value_parser = parse_duration)]
    pub grace_period: Option<Duration>,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// keep the temporary data dir (it is printed) instead of deleting it
    #[arg(long)]
    pub keep: bool,
    /// how to print the example queries' results
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// the ingress's address [default: 127.0.0.1:8080]
    #[arg(long, env = "TARN_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// run the ingress without the pipeline: documents land and wait, still landed, for a
    /// `tarn serve` with its pipeline (e.g. to time the pipeline alone on a backlog)
    #[arg(long)]
    pub no_pipeline: bool,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// the user name (cognito:username)
    #[arg(long)]
    pub user: String,
    /// groups, comma-separated (e.g. tarn-writers,tarn-readers-events)
    #[arg(long, value_delimiter = ',')]
    pub groups: Vec<String>,
    /// how long the token lives (e.g. 15m, 1h, 2d, 1w)
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub ttl: Duration,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// the table to write to
    #[arg(long)]
    pub table: String,
    /// the files to send, one document each; a directory sends every file under it (recursively,
    /// names starting with `.` skipped)
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// the ingress's base URL
    #[arg(long, env = "TARN_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// the bearer token; without one, a token is minted from the data dir's dev issuer
    #[arg(long, env = "TARN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// the content type of every file [default: from each file's extension]
    #[arg(long)]
    pub content_type: Option<String>,
    /// documents sent at once
    #[arg(long, short = 'j', default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub concurrency: u32,
    /// files larger than this go up as multipart uploads (at most 10MiB, what one request takes)
    #[arg(long, default_value = "8MiB")]
    pub multipart_threshold: String,
    /// attempts per request on a transient failure (connection, timeout, 408, 429, 5xx), all
    /// with the document's idempotency key
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub attempts: u32,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct TablesArgs {
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// the SQL text
    #[arg(conflicts_with = "file", required_unless_present = "file")]
    pub sql: Option<String>,
    /// read the SQL from a file (e.g. queries/documents_by_status.sql)
    #[arg(long)]
    pub file: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// the engine: the embedded one (local), or Athena (configured by TARN_AWS_* variables or
    /// the file in TARN_AWS_CONFIG; see aws/README.md)
    #[arg(long, value_enum, default_value_t)]
    pub engine: Engine,
}

#[derive(Debug, Clone, Copy, ValueEnum, Default, PartialEq, Eq)]
pub enum Engine {
    #[default]
    Local,
    Athena,
}

/// The longest duration an option takes: 100 years (of 365.25 days).
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 31_557_600);

/// A duration, the one syntax of every duration option: a number and a unit (`90s`, `15m`,
/// `1h`, `2d`, `1w`; humantime's units, several add up: `1h30m`), or plain seconds (`90`).
/// Positive, at most [`MAX_DURATION`]; larger values are an error, never a wrap.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let d = if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        t.parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| out_of_range(t))?
    } else {
        humantime::parse_duration(t).map_err(|e| match e {
            humantime::DurationError::NumberOverflow => out_of_range(t),
            e => format!("{t:?} is not a duration ({e}); write e.g. 90s, 15m, 1h30m, 2d or 1w"),
        })?
    };
    if d.is_zero() {
        return Err(format!("{t:?}: a duration must be positive"));
    }
    if d > MAX_DURATION {
        return Err(out_of_range(t));
    }
    Ok(d)
}

fn out_of_range(t: &str) -> String {
    format!("{t:?} is out of range: durations go up to 100 years")
}

/// A `--since` value: a time (RFC 3339, `2024-05-06T10:00:00Z`), a day (`2024-05-06`, midnight
/// UTC), or an age before `now` (a [`parse_duration`] duration: `90s`, `15m`, `2h`, `7d`, `1w`).
pub fn parse_since(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let t = s.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(t) {
        return Ok(at.with_timezone(&Utc));
    }
    if let Ok(day) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(day.and_hms_opt(0, 0, 0).expect("midnight").and_utc());
    }
    let age = parse_duration(t).map_err(|e| {
        format!(
            "--since {t:?}: give a time (2024-05-06T10:00:00Z), a day (2024-05-06) or an age (15m, 2h, 7d, 1w): {e}"
        )
    })?;
    chrono::TimeDelta::from_std(age)
        .ok()
        .and_then(|age| now.checked_sub_signed(age))
        .ok_or_else(|| format!("--since {}", out_of_range(t)))
}

/// Logs go to stderr; `serve` logs at info by default, other commands at warn.
pub fn init_logging(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    let default = match (cli.global.verbose, &cli.command) {
        (0, Command::Serve(_)) => "info",
        (0, _) => "warn",
        (1, _) => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if cli.global.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations() {
        let secs = |s: &str| parse_duration(s).unwrap().as_secs();
        assert_eq!(secs("90s"), 90);
        assert_eq!(secs("90"), 90);
        assert_eq!(secs("15m"), 900);
        assert_eq!(secs("1h"), 3600);
        assert_eq!(secs("2d"), 172800);
        assert_eq!(secs("1w"), 604800);
        assert_eq!(secs("1h30m"), 5400);
        assert_eq!(secs(" 2h 5min "), 7500);
        assert_eq!(secs("100y"), MAX_DURATION.as_secs());
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        for bad in ["h", "", "1x", "-1h", "1.h", "yesterday"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains("is not a duration"), "{bad}: {e}");
        }
        for zero in ["0", "0s", "0w"] {
            assert!(
                parse_duration(zero)
                    .unwrap_err()
                    .contains("must be positive")
            );
        }
        // too large: an error, never a wrap or a panic
        for huge in [
            "101y",
            "5300w",
            "18446744073709551615",
            "18446744073709551616",
            "18446744073709551615w",
            "99999999999999999999999d",
            "30500000000000000000s",
            "18446744073709551615s 1s",
            "1000000000000h",
        ] {
            let e = parse_duration(huge).unwrap_err();
            assert!(e.contains("out of range"), "{huge}: {e}");
        }
    }

    #[test]
    fn since_values() {
        let now = DateTime::parse_from_rfc3339("2024-05-06T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = |s: &str| parse_since(s, now).unwrap().to_rfc3339();
        assert_eq!(at("2024-05-01T01:02:03Z"), "2024-05-01T01:02:03+00:00");
        assert_eq!(at("2024-05-01"), "2024-05-01T00:00:00+00:00");
        assert_eq!(at("90s"), "2024-05-06T09:58:30+00:00");
        assert_eq!(at("2h"), "2024-05-06T08:00:00+00:00");
        assert_eq!(at("1w"), "2024-04-29T10:00:00+00:00");
        assert_eq!(at("1d 12h"), "2024-05-04T22:00:00+00:00");
        for bad in ["", "yesterday", "5x", "-1h", "0s"] {
            let e = parse_since(bad, now).unwrap_err();
            assert!(
                e.starts_with("--since") && e.contains("give a time"),
                "{bad}: {e}"
            );
        }
        for huge in ["9223372036854775807d", "99999999999999999999w", "200y"] {
            let e = parse_since(huge, now).unwrap_err();
            assert!(e.contains("out of range"), "{huge}: {e}");
        }
    }

    #[test]
    fn ttl_and_grace_period_take_the_same_durations() {
        let token = Cli::try_parse_from(["tarn", "token", "--user", "a", "--ttl", "1w"]).unwrap();
        let Command::Token(t) = token.command else {
            panic!("a token command")
        };
        assert_eq!(t.ttl, Duration::from_secs(604800));
        let compact = Cli::try_parse_from(["tarn", "compact", "--grace-period", "1w"]).unwrap();
        let Command::Compact(c) = compact.command else {
            panic!("a compact command")
        };
        assert_eq!(c.grace_period, Some(Duration::from_secs(604800)));
        let e = Cli::try_parse_from([
            "tarn",
            "token",
            "--user",
            "a",
            "--ttl",
            "99999999999999999999w",
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("out of range"), "{e}");
    }
}
