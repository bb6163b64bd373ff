//! A large JPEG through the whole local platform in one process, as `tarn serve` runs it: sent
//! as a multipart upload over HTTP (read from a file part by part), landed, then validated,
//! stripped and stored by the real pipeline. Prints the peak RSS and the time of each phase, and
//! checks that landing's memory does not grow with the document (the pipeline's still does: it
//! holds a document whole, several times over).
//!
//! The size is `TARN_LARGE_DOC_MIB` (default 24): `TARN_LARGE_DOC_MIB=1024 cargo test -p
//! tarn-ingress --test large_document -- --nocapture` measures a 1 GiB document (it needs about
//! 3 GiB of free disk). Its own test binary, so that no other test's memory counts.

mod common;

use common::*;
use serde_json::json;
use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::Arc;
use std::time::Instant;
use tarn_catalog::TableSpec;

const MIB: u64 = 1024 * 1024;

/// The process's peak resident set (`VmHWM`), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

/// Writes a baseline JPEG of `size` bytes to `path` without holding it: the headers of an 8x8
/// grey image with an EXIF segment, then entropy-coded filler (no 0xFF), then EOI.
fn write_jpeg(path: &std::path::Path, size: u64) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut head: Vec<u8> = vec![0xFF, 0xD8];
    // APP1 Exif, stripped by the pipeline
    let exif = b"Exif\0\0MM\0*\0\0\0\x08\0\0";
    head.extend_from_slice(&[0xFF, 0xE1, 0, (exif.len() + 2) as u8]);
    head.extend_from_slice(exif);
    // DQT (one table of ones), SOF0 8x8 one component, DHT (DC and AC, one code each), SOS
    head.extend_from_slice(&[0xFF, 0xDB, 0, 67, 0]);
    head.extend_from_slice(&[1; 64]);
    head.extend_from_slice(&[0xFF, 0xC0, 0, 11, 8, 0, 8, 0, 8, 1, 1, 0x11, 0]);
    for class in [0x00u8, 0x10] {
        head.extend_from_slice(&[0xFF, 0xC4, 0, 20, class, 1]);
        head.extend_from_slice(&[0; 15]);
        head.push(0);
    }
    head.extend_from_slice(&[0xFF, 0xDA, 0, 8, 1, 1, 0, 0, 63, 0]);
    f.write_all(&head).unwrap();
    let filler: Vec<u8> = (0..MIB).map(|i| (i % 255) as u8).collect();
    let mut left = size - head.len() as u64 - 2;
    while left > 0 {
        let n = left.min(MIB) as usize;
        f.write_all(&filler[..n]).unwrap();
        left -= n as u64;
    }
    f.write_all(&[0xFF, 0xD9]).unwrap();
    f.flush().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_jpeg_goes_through_landing_and_the_pipeline() {
    let mib: u64 = std::env::var("TARN_LARGE_DOC_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let size = mib * MIB;
    let mut tables = specs();
    tables.push(
        TableSpec::from_value(
            std::path::Path::new("schemas/scans.json"),
            json!({"title": "scans", "x-tarn": {"accept": ["image/jpeg"], "max_bytes": 1u64 << 30}}),
        )
        .unwrap(),
    );
    let h = Harness::start_with(Options {
        tables: tables.clone(),
        ..Options::default()
    })
    .await;
    let file = h.dir.path().join("big.jpg");
    write_jpeg(&file, size);
    let token = h.token("alice", &["tarn-writers"]);
    let before = peak_rss();

    // land: start, parts read one at a time from the file, complete
    let began = Instant::now();
    let r = h
        .client
        .post(h.url("/table/scans/uploads"))
        .bearer_auth(&token)
        .header("upload-content-type", "image/jpeg")
        .header("upload-length", size.to_string())
        .send()
        .await
        .unwrap();
    let started: serde_json::Value = r.json().await.unwrap();
    let data = &started["data"];
    let part_size = data["part_size"].as_u64().unwrap();
    let mut f = std::fs::File::open(&file).unwrap();
    for part in data["parts"].as_array().unwrap() {
        let n = part["number"].as_u64().unwrap();
        let mut buf = vec![0; part_size.min(size - (n - 1) * part_size) as usize];
        f.seek(SeekFrom::Start((n - 1) * part_size)).unwrap();
        f.read_exact(&mut buf).unwrap();
        let r = h
            .client
            .put(h.url(part["url"].as_str().unwrap()))
            .bearer_auth(&token)
            .body(buf)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let id = data["id"].as_str().unwrap().to_string();
    let r = h
        .client
        .post(h.url(&format!("/table/scans/uploads/{id}/complete")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let landing = (began.elapsed(), peak_rss());

    // the pipeline: validate, strip, store
    let stages: Vec<Arc<dyn tarn_lake::Stage>> = vec![
        Arc::new(tarn_lake::validate::Validate::new(&tables).unwrap()),
        Arc::new(tarn_lake::strip::Strip::new()),
    ];
    let p = pipeline_with(&h, tables, stages);
    p.setup_catalog().await.unwrap();
    let began = Instant::now();
    let report = p.drain().await.unwrap();
    let processing = (began.elapsed(), peak_rss());
    let st = h
        .get(&format!("/table/scans/object/{id}"), Some(&token))
        .await;
    let row = &st.json()["data"];
    assert_eq!(row["status"], "stored", "{row}");
    assert_eq!(row["size_bytes"], size);
    assert_eq!(report.stored, 1);
    assert!(
        row["metadata_removed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "exif"),
        "{row}"
    );

    let over = |peak: u64| peak.saturating_sub(before) / MIB;
    println!(
        "document {mib} MiB: landing {:.1} s, peak RSS +{} MiB; pipeline {:.1} s, peak RSS +{} MiB (process peak {} MiB)",
        landing.0.as_secs_f64(),
        over(landing.1),
        processing.0.as_secs_f64(),
        over(processing.1),
        processing.1 / MIB,
    );
    // landing holds a few parts at a time (the client's, the server's, its sealed copy) and the
    // allocator's slack, never the document: measured +56 MiB for 24 MiB, +73 MiB for 96 MiB
    assert!(
        over(landing.1) <= 128,
        "landing a {mib} MiB document grew the peak RSS by {} MiB",
        over(landing.1)
    );
}
