//! `tarn demo`: the whole platform in-process on a fresh data dir, fed a built-in sample set
//! over real HTTP with real tokens; prints each document's fate and the example queries.

use crate::cli::{DemoArgs, Global};
use crate::commands::ingest::post;
use crate::config::{Config, Overrides};
use crate::platform::{Platform, wait_healthy};
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::time::{Duration, Instant};
use tarn_query::{OutputFormat, QueryEngine};

/// The tables the demo declares when no --schemas is given.
pub const SCHEMAS: [(&str, &str); 3] = [
    ("events.json", include_str!("../../schemas/events.json")),
    ("photos.json", include_str!("../../schemas/photos.json")),
    ("files.json", include_str!("../../schemas/files.json")),
];

/// The analyst's starting queries (queries/*.sql).
pub const QUERIES: [(&str, &str); 4] = [
    (
        "documents_by_status",
        include_str!("../../queries/documents_by_status.sql"),
    ),
    (
        "rejected_documents",
        include_str!("../../queries/rejected_documents.sql"),
    ),
    (
        "top_producers",
        include_str!("../../queries/top_producers.sql"),
    ),
    (
        "latest_events",
        include_str!("../../queries/latest_events.sql"),
    ),
];

/// The EICAR anti-virus test file, assembled here so this source holds no signature.
pub fn eicar() -> Vec<u8> {
    let parts = [
        "X5O!P%@AP[4\\PZX54(P^)7CC)7}$",
        "EICAR-STANDARD-ANTIVIRUS-TEST-FILE",
        "!$H+H*",
    ];
    parts.concat().into_bytes()
}

/// One sample: (label, producer, table, content type, body).
pub fn samples() -> Vec<(
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Vec<u8>,
)> {
    vec![
        (
            "3 valid events (JSON array)",
            "alice",
            "events",
            "application/json",
            br#"[{"user_id":"u-1","action":"signup","occurred_at":"2026-11-26T09:00:00Z","tags":["web"],"context":{"ip":"192.0.2.10","user_agent":"demo"}},
{"user_id":"u-1","action":"purchase","amount":42.5,"occurred_at":"2026-11-26T09:05:00Z","tags":["web","promo"]},
{"user_id":"u-2","action":"login","occurred_at":"2026-11-26T09:07:30Z"}]"#
                .to_vec(),
        ),
        (
            "2 valid events (NDJSON)",
            "bob",
            "events",
            "application/x-ndjson",
            b"{\"user_id\":\"u-3\",\"action\":\"login\",\"occurred_at\":\"2026-11-26T10:00:00Z\"}\n{\"user_id\":\"u-3\",\"action\":\"logout\",\"occurred_at\":\"2026-11-26T10:30:00Z\"}\n".to_vec(),
        ),
        (
            "an invalid event",
            "bob",
            "events",
            "application/json",
            br#"{"user_id":"u-4","action":"teleport","amount":-5}"#.to_vec(),
        ),
        ("a JPEG with EXIF, GPS, XMP", "alice", "photos", "image/jpeg", include_bytes!("../../samples/photo.jpg").to_vec()),
        ("a PNG with text chunks", "alice", "photos", "image/png", include_bytes!("../../samples/diagram.png").to_vec()),
        ("a PDF with Info and XMP", "alice", "files", "application/pdf", include_bytes!("../../samples/report.pdf").to_vec()),
        ("the EICAR test file", "mallory", "files", "text/plain", eicar()),
    ]
}

pub async fn run(args: DemoArgs, global: &Global) -> anyhow::Result<()> {
    let mut tmp = None;
    let data_dir = match &global.data_dir {
        Some(d) => d.clone(),
        None => {
            let t = tempfile::Builder::new()
                .prefix("tarn-demo-")
                .tempdir()
                .context("creating a temporary data dir")?;
            let p = t.path().to_path_buf();
            tmp = Some(t);
            p
        }
    };
    let schemas = match &global.schemas {
        Some(s) => s.clone(),
        None => {
            let dir = data_dir.join("schemas");
            std::fs::create_dir_all(&dir)?;
            for (name, text) in SCHEMAS {
                std::fs::write(dir.join(name), text)?;
            }
            dir
        }
    };
    let mut config = Config::load(
        global.config.as_deref(),
        Overrides {
            data_dir: Some(data_dir.clone()),
            listen: Some("127.0.0.1:0".parse()?),
            schemas: Some(schemas),
            clamd: global.clamd.clone(),
            backend: None,
        },
    )?;
    config.pipeline.flush_interval_ms = config.pipeline.flush_interval_ms.min(300);
    config.pipeline.poll_interval_ms = config.pipeline.poll_interval_ms.min(100);

    println!("tarn demo: data dir {}", data_dir.display());
    let platform = Platform::open(config).await?;
    let running = platform.start().await?;
    let base = running.url();
    let stages = platform.pipeline.stage_names();
    println!(
        "platform up at {base}; stages: {} -> normalize",
        stages.join(" -> ")
    );
    if let Some(engine) = &platform.scan_engine {
        let note = match &platform.managed_clamd {
            Some(m) if m.test_signatures_only => {
                " (a clamd tarn started, with tarn's test signatures only: no virus definitions are installed)"
            }
            Some(_) => " (a clamd tarn started)",
            None if engine.starts_with("tarn-builtin") => {
                " (no ClamAV installed: tarn's built-in engine, test signatures only; pass --clamd for real scanning)"
            }
            None => "",
        };
        println!("scan engine: {engine}{note}");
    }
    for missing in ["scan", "strip"] {
        if !stages.contains(&missing) {
            println!(
                "note: the {missing} stage is not in this build yet: binaries are validated (magic numbers) but not {}",
                if missing == "scan" {
                    "virus-scanned"
                } else {
                    "stripped of metadata"
                }
            );
        }
    }

    let client = reqwest::Client::new();
    wait_healthy(&client, &base, Duration::from_secs(10)).await?;
    let issuer = &platform.issuer;
    let token_for = |user: &str| {
        issuer.mint(
            user,
            &["tarn-writers".to_string()],
            Duration::from_secs(900),
        )
    };

    // send every sample over HTTP
    let mut sent = Vec::new();
    for (label, producer, table, ct, body) in samples() {
        let token = token_for(producer)?;
        let p = post(&client, &base, table, &token, ct, body).await?;
        sent.push((label, producer, table, token, p));
    }
    // one refused request, to show authorization
    let only_events = issuer.mint(
        "eve",
        &["tarn-writers-events".to_string()],
        Duration::from_secs(900),
    )?;
    let refused = post(
        &client,
        &base,
        "photos",
        &only_events,
        "image/png",
        include_bytes!("../../samples/diagram.png").to_vec(),
    )
    .await?;

    // wait for every accepted document to reach its final status
    let bar = ProgressBar::new(sent.iter().filter(|s| s.4.id.is_some()).count() as u64);
    bar.set_style(
        ProgressStyle::with_template("waiting for the pipeline {bar:30} {pos}/{len}")
            .expect("a valid template"),
    );
    let start = Instant::now();
    let mut fates: Vec<Option<Value>> = vec![None; sent.len()];
    while fates
        .iter()
        .zip(&sent)
        .any(|(f, s)| f.is_none() && s.4.id.is_some())
    {
        if start.elapsed() > Duration::from_secs(60) {
            anyhow::bail!(
                "the pipeline did not finish the sample documents within 60 s; run with -v to see its logs"
            );
        }
        for (i, (_, _, table, token, p)) in sent.iter().enumerate() {
            let (Some(id), None) = (&p.id, &fates[i]) else {
                continue;
            };
            let v: Value = client
                .get(format!("{base}/table/{table}/object/{id}"))
                .header("authorization", format!("Bearer {token}"))
                .send()
                .await?
                .json()
                .await?;
            if v.pointer("/data/status")
                .and_then(Value::as_str)
                .is_some_and(|s| s != "received")
            {
                fates[i] = Some(v["data"].clone());
                bar.inc(1);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bar.finish_and_clear();
    println!(
        "all documents processed in {:.1} s\n",
        start.elapsed().as_secs_f64()
    );

    println!("what happened to each document:");
    for ((label, producer, table, _, p), fate) in sent.iter().zip(&fates) {
        let line = match fate {
            Some(d) => {
                let status = d["status"].as_str().unwrap_or("?");
                let detail = match status {
                    "stored" => match d["records"].as_i64() {
                        Some(n) => format!("{n} records in table {table}"),
                        None => {
                            let removed: Vec<&str> = d["metadata_removed"]
                                .as_array()
                                .map(|a| a.iter().filter_map(Value::as_str).collect())
                                .unwrap_or_default();
                            let removed = if removed.is_empty() {
                                "no metadata found".to_string()
                            } else {
                                format!("removed {}", removed.join(", "))
                            };
                            format!(
                                "{removed}; scan {}",
                                d["scan_result"].as_str().unwrap_or("?")
                            )
                        }
                    },
                    _ => d["reason"].as_str().unwrap_or("").to_string(),
                };
                format!("{status:<11} {detail}")
            }
            None => format!(
                "refused     HTTP {} {}",
                p.status,
                p.message.clone().unwrap_or_default()
            ),
        };
        println!("  {label:<30} {producer:<8} -> {line}");
    }
    println!(
        "  {:<30} {:<8} -> refused     HTTP {} {}",
        "a PNG to a table eve can't write",
        "eve",
        refused.status,
        refused.message.unwrap_or_default()
    );

    let engine = platform.query_engine();
    for (name, sql) in QUERIES {
        println!("\nqueries/{name}.sql");
        let result = engine
            .query(sql)
            .await
            .with_context(|| format!("running queries/{name}.sql"))?;
        let format: OutputFormat = args.format.into();
        print!("{}", result.render(format));
    }

    running.shutdown().await?;
    println!();
    if args.keep || global.data_dir.is_some() {
        println!("the data dir is kept: {}", data_dir.display());
        println!("try: tarn --data-dir {} tables", data_dir.display());
        println!(
            "     tarn --data-dir {} query \"SELECT status, count(*) AS n FROM documents GROUP BY status\"",
            data_dir.display()
        );
    }
    if let Some(t) = tmp {
        if args.keep {
            // the TempDir would delete it on drop
            let _ = t.keep();
        } else {
            println!("the temporary data dir was removed (pass --keep to explore it)");
        }
    }
    Ok(())
}
