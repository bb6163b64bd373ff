use crate::cli::{Engine, QueryArgs};
use crate::config::Config;
use crate::platform::require_data_dir;
use anyhow::Context;
use std::sync::Arc;
use tarn_catalog::LocalCatalog;
use tarn_core::audit::{Actor, AuditSink, LocalAuditSink, SigningKey, SinkSettings};
use tarn_query::{LocalQueryEngine, QueryEngine};

pub async fn run(args: QueryArgs, config: Config) -> anyhow::Result<()> {
    let sql = match (&args.sql, &args.file) {
        (Some(sql), _) => sql.clone(),
        (None, Some(f)) => {
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?
        }
        (None, None) => anyhow::bail!("give the SQL as an argument or with --file"),
    };
    let mut audit_sink: Option<Arc<LocalAuditSink>> = None;
    let engine: Arc<dyn QueryEngine> = match args.engine {
        Engine::Local => {
            require_data_dir(&config.data_dir)?;
            let catalog = Arc::new(LocalCatalog::open(config.data_dir.join("catalog"))?);
            let mut engine = LocalQueryEngine::new(catalog, config.database.clone());
            if config.data_dir.join("audit").is_dir() {
                let audit_store = crate::commands::audit::open_audit_store(&config.data_dir)?;
                // the query's reads go to the trail, as the OS user's, in this run's own chain
                let trail = config.audit.for_run("query");
                let signing = SigningKey::open_or_create(SigningKey::path_in(&config.data_dir))
                    .context("opening the audit signing key")?;
                let sink = Arc::new(
                    LocalAuditSink::open(
                        audit_store.clone(),
                        trail,
                        signing,
                        SinkSettings::default(),
                    )
                    .await
                    .context("opening the access trail")?,
                );
                let lake = config.data_dir.join("lake");
                engine = engine
                    .with_audit_store(audit_store, config.audit.clone())
                    .with_file_audit(
                        sink.clone(),
                        Actor::local_user(),
                        [(lake, "tarn-lake".to_string())],
                    );
                audit_sink = Some(sink);
            }
            Arc::new(engine)
        }
        Engine::Athena => {
            let aws = tarn_aws::AwsConfig::load_default()
                .context("the AWS configuration (see aws/README.md)")?;
            tarn_aws::AwsPorts::connect(&aws).await.query
        }
    };
    let result = engine.query(&sql).await;
    if let Some(sink) = audit_sink {
        sink.flush().await.context("writing the access trail")?;
    }
    let result = result?;
    print!("{}", result.render(args.format.into()));
    Ok(())
}
