//! Strip throughput, for scripts/bench-strip.sh (ignored by `cargo test`): strips every file in
//! $TARN_STRIP_BENCH_DIR (type from the extension) several times and prints, per type, the
//! files, their mean size and the best per-file time. Run in release:
//! `cargo test -p tarn-lake --release --test strip_bench -- --ignored --nocapture`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tarn_lake::strip::{Limits, strip};

#[test]
#[ignore = "a benchmark: scripts/bench-strip.sh runs it in release"]
fn strip_throughput() {
    let dir = std::env::var("TARN_STRIP_BENCH_DIR")
        .expect("TARN_STRIP_BENCH_DIR: a folder of files to strip");
    let rounds: u32 = std::env::var("TARN_STRIP_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let mut by_type: BTreeMap<&str, Vec<Vec<u8>>> = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let ct = match path.extension().and_then(|e| e.to_str()) {
            Some("jpg" | "jpeg") => "image/jpeg",
            Some("png") => "image/png",
            Some("webp") => "image/webp",
            Some("gif") => "image/gif",
            Some("pdf") => "application/pdf",
            _ => continue,
        };
        by_type
            .entry(ct)
            .or_default()
            .push(std::fs::read(&path).unwrap());
    }
    let limits = Limits::default();
    for (ct, files) in &by_type {
        let bytes: usize = files.iter().map(Vec::len).sum();
        // the best of `rounds` passes over all the files
        let mut best = Duration::MAX;
        for _ in 0..rounds {
            let start = Instant::now();
            for f in files {
                let out = strip(ct, f, &limits).unwrap().unwrap();
                std::hint::black_box(out);
            }
            best = best.min(start.elapsed());
        }
        let per_file = best.as_secs_f64() * 1e3 / files.len() as f64;
        println!(
            "strip {ct}: {} files, {:.2} MB mean, {per_file:.3} ms/file, {:.0} MB/s",
            files.len(),
            bytes as f64 / files.len() as f64 / 1e6,
            bytes as f64 / best.as_secs_f64() / 1e6
        );
    }
}
