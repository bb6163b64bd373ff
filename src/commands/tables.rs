use crate::cli::TablesArgs;
use crate::config::Config;
use crate::platform::require_data_dir;
use serde_json::json;
use tarn_catalog::LocalCatalog;
use tarn_query::{QueryResult, ResultColumn, table_stats};

pub async fn run(args: TablesArgs, config: Config) -> anyhow::Result<()> {
    require_data_dir(&config.data_dir)?;
    let catalog = LocalCatalog::open(config.data_dir.join("catalog"))?;
    let stats = table_stats(&catalog, &config.database).await?;
    let col = |n: &str, t: &str| ResultColumn {
        name: n.into(),
        data_type: t.into(),
    };
    let result = QueryResult {
        columns: vec![
            col("table", "string"),
            col("columns", "string"),
            col("partition_keys", "string"),
            col("partitions", "bigint"),
            col("files", "bigint"),
            col("rows", "bigint"),
            col("bytes", "bigint"),
        ],
        rows: stats
            .iter()
            .map(|s| {
                let cols = |c: &[(String, String)]| {
                    c.iter()
                        .map(|(n, t)| format!("{n} {t}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                vec![
                    json!(s.name),
                    json!(cols(&s.columns)),
                    json!(cols(&s.partition_keys)),
                    json!(s.partitions),
                    json!(s.files),
                    json!(s.rows),
                    json!(s.bytes),
                ]
            })
            .collect(),
    };
    print!("{}", result.render(args.format.into()));
    Ok(())
}
