//! One module per subcommand; each takes its parsed arguments and the loaded [`Config`].

pub mod audit;
pub mod compact;
pub mod demo;
pub mod ingest;
pub mod query;
pub mod serve;
pub mod tables;
pub mod templates;
pub mod token;

use crate::cli::{Cli, Command};
use crate::config::{Config, Overrides};

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let listen = match &cli.command {
        Command::Serve(a) => a.listen,
        _ => None,
    };
    let overrides = Overrides {
        data_dir: cli.global.data_dir.clone(),
        listen,
        schemas: cli.global.schemas.clone(),
        clamd: cli.global.clamd.clone(),
    };
    let config = Config::load(cli.global.config.as_deref(), overrides)?;
    match cli.command {
        Command::Demo(a) => demo::run(a, &cli.global).await,
        Command::Serve(_) => serve::run(config).await,
        Command::Token(a) => token::run(a, &config),
        Command::Ingest(a) => ingest::run(a, &config).await,
        Command::Tables(a) => tables::run(a, config).await,
        Command::Query(a) => query::run(a, config).await,
        Command::Compact(a) => compact::run(a, config).await,
        Command::Templates(a) => templates::run(a, &config),
        Command::Audit(a) => audit::run(a, &config.data_dir, &config.audit).await,
    }
}
