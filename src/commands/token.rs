use crate::cli::TokenArgs;
use crate::config::Config;
use anyhow::Context;
use tarn_ingress::DevIssuer;

/// Prints a token from the local dev issuer (the key is created on first use).
pub fn run(args: TokenArgs, config: &Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    let issuer =
        DevIssuer::open_or_create(&config.data_dir).context("opening the dev token issuer")?;
    let groups: Vec<String> = args.groups.into_iter().filter(|g| !g.is_empty()).collect();
    println!("{}", issuer.mint(&args.user, &groups, args.ttl)?);
    Ok(())
}
