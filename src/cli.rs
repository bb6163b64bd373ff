//! The command line: one `tarn` binary, a subcommand per job (docs/contract.md, The `tarn`
//! command).

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;

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
    /// Write the Glue tables of schemas/ as CloudFormation (templates/glue-tables.yaml)
    Templates(TemplatesArgs),
    /// Read the access trail (--since, --user, --table, --event); `tarn audit verify` checks it was not altered
    Audit(crate::commands::audit::AuditArgs),
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
    pub grace_period: Option<std::time::Duration>,
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
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// the user name (cognito:username)
    #[arg(long)]
    pub user: String,
    /// groups, comma-separated (e.g. tarn-writers,tarn-readers-events)
    #[arg(long, value_delimiter = ',')]
    pub groups: Vec<String>,
    /// how long the token lives (e.g. 15m, 1h, 2d)
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub ttl: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// the table to write to
    #[arg(long)]
    pub table: String,
    /// the files to send, one document each
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

/// `90s`, `15m`, `1h`, `2d`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 90s, 15m, 1h or 2d"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return Err(format!("{s:?}: unknown unit {unit:?}; use s, m, h or d")),
    };
    if secs == 0 {
        return Err("a duration must be positive".into());
    }
    Ok(std::time::Duration::from_secs(secs))
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
        assert_eq!(parse_duration("90s").unwrap().as_secs(), 90);
        assert_eq!(parse_duration("15m").unwrap().as_secs(), 900);
        assert_eq!(parse_duration("1h").unwrap().as_secs(), 3600);
        assert_eq!(parse_duration("2d").unwrap().as_secs(), 172800);
        assert!(parse_duration("1w").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("0s").is_err());
    }
}
