//! Ingress and pipeline throughput on this machine (not a test: no assertions on time).
//!
//!   cargo bench --bench ingress                 (optimized; the numbers to quote)
//!   cargo bench --bench ingress --profile dev   (quick, unoptimized)
//!
//! `BENCH_DOCS` sets the number of POSTs of part 1 (20,000); `BENCH_STAGES=validate,strip` runs
//! the pipeline without the scan; `TARN_CLAMD` names a running clamd (else tarn starts its own).
//!
//! Measures, on a temp data dir:
//! 1. durable 1 KiB JSON POSTs per second with 64 concurrent clients (ingress alone);
//! 2. latency percentiles of an open-loop 1,000 POSTs/s for 5 s (ingress alone);
//! 3. records per second from landed to committed (`Pipeline::drain` over what 1 landed);
//! 4. landed-to-queryable delay with the whole platform running at 500 POSTs/s.
//! The load generator runs in the same process and shares the machine's cores.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tarn::config::{Config, Overrides};
use tarn::platform::{Platform, wait_healthy};

fn doc(i: usize) -> Vec<u8> {
    let recs: Vec<serde_json::Value> = (0..5)
        .map(|k| {
            serde_json::json!({"user_id": format!("user-{i}-{k}"), "action": "purchase", "amount": (i * 7 + k) as f64 / 4.0,
                "occurred_at": "2026-11-26T12:00:00Z", "tags": ["bench", "load"], "context": {"ip": "192.0.2.44", "user_agent": "bench/1.0"}})
        })
        .collect();
    serde_json::to_vec(&recs).unwrap()
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn platform(dir: &std::path::Path, max_in_flight: usize) -> Platform {
    let mut c = Config::load(
        None,
        Overrides {
            data_dir: Some(dir.into()),
            listen: Some("127.0.0.1:0".parse().unwrap()),
            schemas: Some(concat!(env!("CARGO_MANIFEST_DIR"), "/schemas").into()),
            clamd: std::env::var("TARN_CLAMD").ok(),
            backend: None,
        },
    )
    .unwrap();
    c.ingress.max_in_flight = max_in_flight;
    // BENCH_STAGES=validate,strip: the pipeline without the scan, to see what clamd costs
    if let Ok(stages) = std::env::var("BENCH_STAGES") {
        c.pipeline.stages = stages.split(',').map(str::to_string).collect();
    }
    Platform::open(c).await.unwrap()
}

async fn serve_ingress_only(p: &Platform) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = tarn_ingress::router(p.ingress_state(None));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(tarn_ingress::serve(listener, app, async move {
        let _ = rx.await;
    }));
    (base, tx)
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("BENCH_DOCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let dir = tempfile::tempdir().unwrap();
    let p = platform(dir.path(), 1024).await;
    let (base, stop) = serve_ingress_only(&p).await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .unwrap();
    wait_healthy(&client, &base, Duration::from_secs(10))
        .await
        .unwrap();
    let token = Arc::new(
        p.issuer
            .mint("bench", &["tarn-writers".into()], Duration::from_secs(3600))
            .unwrap(),
    );
    let body = doc(0);
    println!("document: {} bytes, 5 records", body.len());

    // 1. closed loop, 64 clients
    let start = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (client, base, token, next) =
            (client.clone(), base.clone(), token.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < n {
                let i = lat.len();
                let t = Instant::now();
                let r = client
                    .post(format!("{base}/table/events/object"))
                    .header("authorization", token.as_str())
                    .header("content-type", "application/json")
                    .body(doc(i))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status().as_u16(), 200);
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut lat: Vec<Duration> = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort();
    println!(
        "1. ingress, 64 clients: {n} durable POSTs in {secs:.2} s = {:.0}/s (p50 {:?}, p99 {:?})",
        n as f64 / secs,
        pct(&lat, 0.5),
        pct(&lat, 0.99)
    );

    // 2. open loop, 1,000/s for 5 s
    let rate = 1000u64;
    let total = rate * 5;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..total {
        let due = start + Duration::from_micros(i * 1_000_000 / rate);
        tokio::time::sleep_until(due.into()).await;
        let (client, base, token) = (client.clone(), base.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let r = client
                .post(format!("{base}/table/events/object"))
                .header("authorization", token.as_str())
                .header("content-type", "application/json")
                .body(doc(i as usize))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200);
            t.elapsed()
        }));
    }
    let mut lat: Vec<Duration> = Vec::new();
    for t in tasks {
        lat.push(t.await.unwrap());
    }
    lat.sort();
    println!(
        "2. ingress at {rate}/s for 5 s: p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
        pct(&lat, 0.5),
        pct(&lat, 0.9),
        pct(&lat, 0.99),
        lat[lat.len() - 1]
    );
    let _ = stop.send(());

    // 3. pipeline throughput over everything landed so far
    let landed = n + total as usize;
    let start = Instant::now();
    let report = p.pipeline.drain().await.unwrap();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "3. pipeline: {} documents, {} records committed in {secs:.2} s = {:.0} records/s ({} batches)",
        report.documents(),
        report.records,
        report.records as f64 / secs,
        report.batches
    );
    assert_eq!(report.documents(), landed);
    drop(p);

    // 4. landed-to-queryable delay, whole platform, 500 POSTs/s for 6 s
    let dir = tempfile::tempdir().unwrap();
    let p = platform(dir.path(), 1024).await;
    let running = p.start().await.unwrap();
    let base = running.url();
    wait_healthy(&client, &base, Duration::from_secs(10))
        .await
        .unwrap();
    let token = Arc::new(
        p.issuer
            .mint("bench", &["tarn-writers".into()], Duration::from_secs(3600))
            .unwrap(),
    );
    let rate = 500u64;
    let total = rate * 6;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..total {
        tokio::time::sleep_until((start + Duration::from_micros(i * 1_000_000 / rate)).into())
            .await;
        let (client, base, token) = (client.clone(), base.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            client
                .post(format!("{base}/table/events/object"))
                .header("authorization", token.as_str())
                .header("content-type", "application/json")
                .body(doc(i as usize))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    running.shutdown().await.unwrap();
    // a document is queryable once its status record is written (after its partition is registered)
    let mut delays = Vec::new();
    for e in std::fs::read_dir(dir.path().join("state/documents")).unwrap() {
        let e = e.unwrap();
        let row: tarn_core::DocumentRow =
            serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap();
        let committed: chrono::DateTime<chrono::Utc> =
            e.metadata().unwrap().modified().unwrap().into();
        delays.push((committed - row.received_at).to_std().unwrap_or_default());
    }
    delays.sort();
    println!(
        "4. landed to queryable at {rate}/s ({} documents): median {:?}, p99 {:?}, max {:?}",
        delays.len(),
        pct(&delays, 0.5),
        pct(&delays, 0.99),
        delays[delays.len() - 1]
    );
}
