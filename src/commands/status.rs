//! `tarn status`: the platform at a glance ([`crate::status`]), as text or JSON, once or every
//! `--watch` interval.

use crate::cli::{StatusArgs, StatusFormat};
use crate::config::Config;
use crate::status::{gather, render};

pub async fn run(args: StatusArgs, config: Config) -> anyhow::Result<()> {
    loop {
        let status = gather(&config).await?;
        let text = match args.format {
            StatusFormat::Text => render(&status),
            StatusFormat::Json => format!("{}\n", serde_json::to_string(&status)?),
        };
        let Some(every) = args.watch else {
            print!("{text}");
            return Ok(());
        };
        if args.format == StatusFormat::Text {
            // clear the screen and go home, so each refresh replaces the last
            print!("\x1b[2J\x1b[H");
        }
        print!("{text}");
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}
