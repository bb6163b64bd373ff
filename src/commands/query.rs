use crate::cli::{Engine, QueryArgs};
use crate::config::Config;
use crate::platform::require_data_dir;
use anyhow::Context;
use std::sync::Arc;
use tarn_catalog::LocalCatalog;
use tarn_query::{LocalQueryEngine, QueryEngine};

pub async fn run(args: QueryArgs, config: Config) -> anyhow::Result<()> {
    let sql = match (&args.sql, &args.file) {
        (Some(sql), _) => sql.clone(),
        (None, Some(f)) => {
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?
        }
        (None, None) => anyhow::bail!("give the SQL as an argument or with --file"),
    };
    let engine: Arc<dyn QueryEngine> = match args.engine {
        Engine::Local => {
            require_data_dir(&config.data_dir)?;
            let catalog = Arc::new(LocalCatalog::open(config.data_dir.join("catalog"))?);
            let mut engine = LocalQueryEngine::new(catalog, config.database.clone());
            if config.data_dir.join("audit").is_dir() {
                engine = engine.with_audit_store(
                    crate::commands::audit::open_audit_store(&config.data_dir)?,
                    config.audit.clone(),
                );
            }
            Arc::new(engine)
        }
        Engine::Athena => {
            let aws = tarn_aws::AwsConfig::load_default()
                .context("the AWS configuration (see aws/README.md)")?;
            tarn_aws::AwsPorts::connect(&aws).await.query
        }
    };
    let result = engine.query(&sql).await?;
    print!("{}", result.render(args.format.into()));
    Ok(())
}
