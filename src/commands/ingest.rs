//! `tarn ingest`: a producer client.

use crate::cli::{Format, IngestArgs};
use crate::config::Config;
use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use serde_json::Value;
use std::path::Path;
use tarn_ingress::DevIssuer;

/// The content type of a file, from its extension.
pub fn content_type_for(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .as_deref()
    {
        Some("json") => "application/json",
        Some("ndjson" | "jsonl") => "application/x-ndjson",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("png") => "image/png",
        Some("webp") => "image/webp",
        Some("pdf") => "application/pdf",
        Some("txt" | "log") => "text/plain",
        Some("csv") => "text/csv",
        _ => "application/octet-stream",
    }
}

/// What the ingress answered for one document.
#[derive(Debug, Clone, Serialize)]
pub struct Posted {
    pub status: u16,
    /// the document id on success
    pub id: Option<String>,
    /// the error code and message otherwise
    pub code: Option<String>,
    pub message: Option<String>,
}

/// POSTs one document.
pub async fn post(
    client: &reqwest::Client,
    base: &str,
    table: &str,
    token: &str,
    content_type: &str,
    body: Vec<u8>,
) -> anyhow::Result<Posted> {
    let resp = client
        .post(format!("{base}/table/{table}/object"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .with_context(|| format!("sending to {base} (is `tarn serve` running? pass --url)"))?;
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    let s = |p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_string);
    Ok(Posted {
        status,
        id: s("/data/id"),
        code: s("/error/code"),
        message: s("/error/message"),
    })
}

#[derive(Serialize)]
struct Row {
    file: String,
    status: u16,
    id: Option<String>,
    error: Option<String>,
}

pub async fn run(args: IngestArgs, config: &Config) -> anyhow::Result<()> {
    let token = match args.token {
        Some(t) => t,
        None => {
            if !DevIssuer::key_path(&config.data_dir).exists() {
                bail!(
                    "no --token given and no dev issuer in {}; pass --token (or TARN_TOKEN) or --data-dir",
                    config.data_dir.display()
                );
            }
            let user = std::env::var("USER").unwrap_or_else(|_| "producer".into());
            DevIssuer::open_or_create(&config.data_dir)?.mint(
                &user,
                &["tarn-writers".to_string()],
                std::time::Duration::from_secs(3600),
            )?
        }
    };
    let client = reqwest::Client::new();
    let bar = ProgressBar::new(args.files.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}").expect("a valid template"),
    );
    let mut rows = Vec::new();
    let mut failed = 0;
    for file in &args.files {
        bar.set_message(file.display().to_string());
        let body = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let ct = args
            .content_type
            .as_deref()
            .unwrap_or_else(|| content_type_for(file));
        let p = post(&client, &args.url, &args.table, &token, ct, body).await?;
        let error = p
            .code
            .as_ref()
            .map(|c| format!("{c}: {}", p.message.clone().unwrap_or_default()));
        if p.id.is_none() {
            failed += 1;
        }
        if args.format == Format::Table {
            bar.suspend(|| match (&p.id, &error) {
                (Some(id), _) => println!("{id}  {}", file.display()),
                (None, e) => eprintln!(
                    "{}: {} {}",
                    file.display(),
                    p.status,
                    e.as_deref().unwrap_or("")
                ),
            });
        }
        rows.push(Row {
            file: file.display().to_string(),
            status: p.status,
            id: p.id,
            error,
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        Format::Csv => {
            println!("file,status,id,error");
            for r in &rows {
                let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
                println!(
                    "{},{},{},{}",
                    q(&r.file),
                    r.status,
                    r.id.as_deref().unwrap_or(""),
                    q(r.error.as_deref().unwrap_or(""))
                );
            }
        }
        Format::Table => {}
    }
    if failed > 0 {
        bail!("{failed} of {} documents were refused", rows.len());
    }
    Ok(())
}
