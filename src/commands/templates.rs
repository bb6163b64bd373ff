//! `tarn templates`: the Glue database and tables of `schemas/` as CloudFormation, so the
//! deployment never drifts from the schemas.

use crate::cli::TemplatesArgs;
use crate::config::Config;
use anyhow::{Context, bail};

pub fn run(args: TemplatesArgs, config: &Config) -> anyhow::Result<()> {
    let specs = tarn_catalog::load_schemas(&config.schemas)
        .with_context(|| format!("loading {}", config.schemas.display()))?;
    let text = tarn_aws::cfn::glue_tables_template(&specs);
    if args.check {
        let current = std::fs::read_to_string(&args.out)
            .with_context(|| format!("reading {}", args.out.display()))?;
        if current != text {
            bail!(
                "{} is stale: run `tarn templates` and commit it",
                args.out.display()
            );
        }
        eprintln!("{} is current", args.out.display());
        return Ok(());
    }
    std::fs::write(&args.out, &text).with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!("wrote {} ({} tables)", args.out.display(), specs.len());
    Ok(())
}
