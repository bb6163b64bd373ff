//! One module per subcommand; each takes its parsed arguments and the loaded [`Config`].

pub mod audit;
pub mod compact;
pub mod demo;
pub mod erase;
pub mod ingest;
pub mod quarantine;
pub mod query;
pub mod rescan;
pub mod review;
pub mod serve;
pub mod serve_aws;
pub mod status;
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
        backend: cli.global.backend,
    };
    let config = Config::load(cli.global.config.as_deref(), overrides)?;
    match cli.command {
        Command::Demo(a) => demo::run(a, &cli.global).await,
        Command::Serve(_) if config.backend == crate::config::Backend::Aws => {
            serve_aws::run(config).await
        }
        Command::Serve(a) => serve::run(config, !a.no_pipeline).await,
        Command::Token(_) if config.backend == crate::config::Backend::Aws => anyhow::bail!(
            "this platform uses a Cognito user pool: get tokens from Cognito (see templates/README.md), not from the dev issuer"
        ),
        Command::Token(a) => token::run(a, &config),
        Command::Ingest(a) => ingest::run(a, &config).await,
        Command::Tables(a) => tables::run(a, config).await,
        Command::Query(a) => query::run(a, config).await,
        Command::Compact(a) => compact::run(a, config).await,
        Command::Status(a) => status::run(a, config).await,
        Command::Erase(a) => erase::run(a, config).await,
        Command::Templates(a) => templates::run(a, &config),
        Command::Audit(a) => audit::run(a, &config.data_dir, &config.audit).await,
        Command::Quarantine(a) => quarantine::run(a, config).await,
        Command::Rescan(a) => rescan::run(a, config).await,
    }
}
