//! `tarn ingest`: a producer client. Files and directories (recursively) go up to
//! `--concurrency` at once, each as one POST or, above `--multipart-threshold`, as a multipart
//! upload ([`crate::producer`]), every request retried on transient failures under the
//! document's own idempotency key. One progress bar counts bytes; a summary (sent, replays,
//! refused with reasons) goes to stderr; ids go to stdout (`--format json`: a JSON array).

use crate::cli::{Format, IngestArgs};
use crate::config::Config;
use crate::producer::{Posted, Producer};
use anyhow::{Context, bail};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tarn_catalog::schemas::MAX_DOCUMENT_BYTES;
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

/// POSTs one document, without an idempotency key and without retries (the demo's producer).
pub async fn post(
    client: &reqwest::Client,
    base: &str,
    table: &str,
    token: &str,
    content_type: &str,
    body: Vec<u8>,
) -> anyhow::Result<Posted> {
    let producer = Producer {
        client: client.clone(),
        base: base.trim_end_matches('/').to_string(),
        token: token.to_string(),
        attempts: 1,
    };
    producer.post(table, content_type, None, body.into()).await
}

/// The files to send: each file named, and every file under each directory named (recursively,
/// in name order, skipping names that start with `.`), each once.
pub fn collect_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading directory {}", dir.display()))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .with_context(|| format!("reading directory {}", dir.display()))?;
        entries.sort();
        for path in entries {
            if path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'))
            {
                continue;
            }
            // symlinks to files are followed, to directories not (no loops)
            let link = std::fs::symlink_metadata(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            if link.is_dir() {
                walk(&path, out)?;
            } else if std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in paths {
        let md = std::fs::metadata(p).with_context(|| format!("reading {}", p.display()))?;
        if md.is_dir() {
            walk(p, &mut out)?;
        } else {
            out.push(p.clone());
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|p| seen.insert(p.clone()));
    Ok(out)
}

/// One file's outcome, as `--format json|csv` prints it.
#[derive(Debug, Serialize)]
struct Row {
    file: String,
    status: u16,
    id: Option<String>,
    replayed: bool,
    error: Option<String>,
}

/// Sends one file: one POST at or under `threshold` bytes, a multipart upload above.
async fn send_file(
    producer: &Producer,
    args: &IngestArgs,
    threshold: u64,
    file: &Path,
    bar: &ProgressBar,
) -> anyhow::Result<Posted> {
    let size = std::fs::metadata(file)
        .with_context(|| format!("reading {}", file.display()))?
        .len();
    let ct = args
        .content_type
        .as_deref()
        .unwrap_or_else(|| content_type_for(file));
    // one key per document: every retry of it, POST or upload, lands it once
    let key = format!("tarn-ingest-{}", uuid::Uuid::new_v4());
    if size <= threshold {
        let body = tokio::fs::read(file)
            .await
            .with_context(|| format!("reading {}", file.display()))?;
        let p = producer
            .post(&args.table, ct, Some(&key), body.into())
            .await?;
        bar.inc(size);
        Ok(p)
    } else {
        let sent = |n: u64| bar.inc(n);
        producer
            .upload(&args.table, ct, &key, file, size, &sent)
            .await
    }
}

pub async fn run(args: IngestArgs, config: &Config) -> anyhow::Result<()> {
    let token = match &args.token {
        Some(t) => t.clone(),
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
    let threshold = tarn_lake::compact::parse_size(&args.multipart_threshold)
        .map_err(|e| anyhow::anyhow!("--multipart-threshold: {e}"))?;
    if threshold > MAX_DOCUMENT_BYTES {
        bail!(
            "--multipart-threshold {threshold} is over the {MAX_DOCUMENT_BYTES} bytes one request takes; pass at most 10MiB"
        );
    }
    let files = collect_files(&args.files)?;
    if files.is_empty() {
        bail!("no files to send under {:?}", args.files);
    }
    let total: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    let producer = Producer {
        client: reqwest::Client::new(),
        base: args.url.trim_end_matches('/').to_string(),
        token,
        attempts: args.attempts,
    };
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta} {msg}",
        )
        .expect("a valid template"),
    );
    let outcomes: Vec<(usize, anyhow::Result<Posted>)> =
        futures::stream::iter(files.iter().enumerate())
            .map(|(i, f)| {
                let (producer, args, bar) = (&producer, &args, &bar);
                async move { (i, send_file(producer, args, threshold, f, bar).await) }
            })
            .buffer_unordered(args.concurrency as usize)
            .collect()
            .await;
    bar.finish_and_clear();
    let mut outcomes = outcomes;
    outcomes.sort_by_key(|(i, _)| *i);

    let mut rows = Vec::with_capacity(files.len());
    let (mut sent, mut replays, mut sent_bytes) = (0, 0, 0u64);
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for (i, outcome) in outcomes {
        let file = &files[i];
        let (status, id, replayed, error) = match outcome {
            Ok(p) => {
                let error = p
                    .code
                    .as_ref()
                    .map(|c| format!("{c}: {}", p.message.clone().unwrap_or_default()));
                (p.status, p.id, p.replayed, error)
            }
            Err(e) => (0, None, false, Some(format!("unreachable: {e:#}"))),
        };
        match (&id, &error) {
            (Some(_), _) => {
                sent += 1;
                sent_bytes += std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
                if replayed {
                    replays += 1;
                }
            }
            (None, e) => {
                let reason = e.clone().unwrap_or_else(|| format!("http {status}"));
                let code = reason.split(':').next().unwrap_or("").to_string();
                *reasons.entry(code).or_default() += 1;
                eprintln!("{}: refused ({status}) {reason}", file.display());
            }
        }
        if args.format == Format::Table
            && let Some(id) = &id
        {
            println!("{id}  {}", file.display());
        }
        rows.push(Row {
            file: file.display().to_string(),
            status,
            id,
            replayed,
            error,
        });
    }
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        Format::Csv => {
            println!("file,status,id,replayed,error");
            for r in &rows {
                let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
                println!(
                    "{},{},{},{},{}",
                    q(&r.file),
                    r.status,
                    r.id.as_deref().unwrap_or(""),
                    r.replayed,
                    q(r.error.as_deref().unwrap_or(""))
                );
            }
        }
        Format::Table => {}
    }
    let refused = rows.len() - sent;
    let why: Vec<String> = reasons.iter().map(|(c, n)| format!("{n} {c}")).collect();
    eprintln!(
        "sent {sent} of {} ({sent_bytes} bytes), {replays} replays, {refused} refused{}",
        rows.len(),
        if why.is_empty() {
            String::new()
        } else {
            format!(" ({})", why.join(", "))
        }
    );
    if refused > 0 {
        bail!("{refused} of {} documents were refused", rows.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_are_walked_in_order_without_hidden_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("b/c")).unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        for f in ["a.json", "b/x.jpg", "b/c/y.pdf", ".hidden", ".git/config"] {
            std::fs::write(root.join(f), b"x").unwrap();
        }
        let got = collect_files(&[root.to_path_buf(), root.join("a.json")]).unwrap();
        let rel: Vec<String> = got
            .iter()
            .map(|p| p.strip_prefix(root).unwrap().display().to_string())
            .collect();
        assert_eq!(rel, ["a.json", "b/c/y.pdf", "b/x.jpg"], "each file once");
        assert!(collect_files(&[root.join("missing")]).is_err());
    }
}
