//! The scan stage against a real clamd loaded with the test signature database
//! (`testdata/clamav/`): EICAR (`Eicar-Test-Signature`), a body marker
//! (`Tarn-Test-Malware-Marker`) and Debian's clamav-testfiles payload (`Tarn-ClamAV-Test-File`),
//! with `StreamMaxLength 1M`.
//!
//! clamd's address comes from `TARN_CLAMD` (`tcp://127.0.0.1:PORT`) and `TARN_CLAMD_UNIX`
//! (`unix:///path/clamd.sock`); whichever is unset is taken from `scripts/clamd.sh start`,
//! which installs clamav with apt-get when needed and starts (or finds) its clamd. No clamd
//! means failed tests, never skipped ones.

use bytes::Bytes;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tarn_lake::scan::{ClamdScanner, ScanError, ScanStage, ScanVerdict, Scanner, Timeouts, conformance};
use tarn_lake::{Document, Stage, StageError, Verdict};

/// Over the test clamd's `StreamMaxLength 1M`.
const OVER_LIMIT: usize = 2_000_000;

struct Clamd {
    tcp: String,
    unix: String,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn script(args: &[&str]) -> String {
    let path = repo().join("scripts/clamd.sh");
    let out = Command::new("bash")
        .arg(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    assert!(
        out.status.success(),
        "no clamd for the scan tests: set TARN_CLAMD (and TARN_CLAMD_UNIX), or let `scripts/clamd.sh {}` work; it \
         failed ({}):\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().lines().last().unwrap_or_default().trim().to_string()
}

fn clamd() -> &'static Clamd {
    static CLAMD: OnceLock<Clamd> = OnceLock::new();
    CLAMD.get_or_init(|| {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let (tcp, unix) = (var("TARN_CLAMD"), var("TARN_CLAMD_UNIX"));
        if tcp.is_none() || unix.is_none() {
            script(&["start"]);
        }
        let clamd = Clamd {
            tcp: tcp.unwrap_or_else(|| script(&["addr", "tcp"])),
            unix: unix.unwrap_or_else(|| script(&["addr", "unix"])),
        };
        assert!(clamd.tcp.starts_with("tcp://"), "TARN_CLAMD must be tcp://host:port, not {:?}", clamd.tcp);
        assert!(clamd.unix.starts_with("unix://"), "TARN_CLAMD_UNIX must be unix:///path, not {:?}", clamd.unix);
        clamd
    })
}

fn timeouts() -> Timeouts {
    Timeouts { connect: Duration::from_secs(5), scan: Duration::from_secs(30) }
}

fn tcp() -> ClamdScanner {
    ClamdScanner::connect(&clamd().tcp, timeouts()).unwrap()
}

fn unix() -> ClamdScanner {
    ClamdScanner::connect(&clamd().unix, timeouts()).unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn dead_tcp() -> ClamdScanner {
    ClamdScanner::connect(&format!("tcp://127.0.0.1:{}", free_port()), timeouts()).unwrap()
}

fn dead_unix(dir: &Path) -> ClamdScanner {
    ClamdScanner::connect(&format!("unix://{}", dir.join("no/clamd.sock").display()), timeouts()).unwrap()
}

fn marker() -> String {
    ["TARN-TEST-", "MALWARE-", "MARKER"].concat()
}

fn doc(content_type: &str, body: impl Into<Bytes>) -> Document {
    Document {
        id: uuid::Uuid::new_v4().to_string(),
        table: "events".into(),
        content_type: content_type.into(),
        producer: "test".into(),
        received_at: chrono::Utc::now(),
        body: body.into(),
        detected_type: None,
        records: None,
        scan_engine: None,
        scan_result: None,
        metadata_removed: vec![],
    }
}

#[tokio::test]
async fn clamd_over_tcp_passes_the_conformance_suite() {
    conformance::scanner(&tcp(), &dead_tcp(), Some(OVER_LIMIT)).await;
}

#[tokio::test]
async fn clamd_over_a_unix_socket_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    conformance::scanner(&unix(), &dead_unix(dir.path()), Some(OVER_LIMIT)).await;
}

#[tokio::test]
async fn clamd_without_sessions_and_with_small_chunks_passes_the_conformance_suite() {
    let live = tcp().with_pool_size(0).with_chunk_size(4096);
    conformance::scanner(&live, &dead_tcp().with_pool_size(0), Some(OVER_LIMIT)).await;
    assert_eq!(live.idle_sessions(), 0);
}

#[tokio::test]
async fn sessions_are_reused() {
    let scanner = tcp();
    let eicar = conformance::eicar();
    for i in 0..20 {
        let got = scanner.scan(if i % 2 == 0 { &eicar[..] } else { b"clean" }).await.unwrap();
        assert_eq!(got == ScanVerdict::Clean, i % 2 == 1, "{got:?}");
    }
    assert!(scanner.sessions_enabled(), "clamd has sessions");
    assert_eq!(scanner.idle_sessions(), 1, "sequential scans share one session");
    assert_eq!(scanner.connections_opened(), 1);
    assert_eq!(scanner.scan(&eicar).await.unwrap(), ScanVerdict::Infected("Eicar-Test-Signature.UNOFFICIAL".into()));
}

#[tokio::test]
async fn a_session_clamd_closed_while_idle_is_replaced() {
    // the test clamd ends sessions idle for 8 s (ReadTimeout 8); keep ours longer than that
    let scanner = tcp().with_session_max_idle(Duration::from_secs(60));
    assert_eq!(scanner.scan(b"clean").await.unwrap(), ScanVerdict::Clean);
    assert_eq!(scanner.idle_sessions(), 1);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(scanner.scan(b"clean").await.unwrap(), ScanVerdict::Clean);
    assert_eq!(scanner.connections_opened(), 2, "the ended session was replaced");
    assert!(matches!(scanner.scan(&conformance::eicar()).await.unwrap(), ScanVerdict::Infected(_)));
}

#[tokio::test]
async fn the_test_database_detects_its_own_signatures() {
    let s = tcp();
    let m = marker();
    for body in [m.clone(), format!("{{\"note\": \"{m}\"}}"), format!("{}{m}", "x".repeat(100_000))] {
        assert_eq!(
            s.scan(body.as_bytes()).await.unwrap(),
            ScanVerdict::Infected("Tarn-Test-Malware-Marker.UNOFFICIAL".into())
        );
    }
    // a marker split across two chunks is still found: clamd scans the stream, not the chunks
    let body = format!("{}{m}", "y".repeat(64 * 1024 - 7));
    assert!(matches!(s.scan(body.as_bytes()).await.unwrap(), ScanVerdict::Infected(_)));
    assert_eq!(s.scan(b"TARN-TEST-MALWARE").await.unwrap(), ScanVerdict::Clean);
}

/// Debian's clamav-testfiles: one harmless program packed, archived and embedded in many ways
/// (UPX and other packers, 7z, arj, cab, cpio, zip, bz2, tar.gz, chm, mail, binhex, OLE2, PDF,
/// RTF, TNEF, ...). clamd must unpack each and find it; those over 1 MiB must be refused.
#[tokio::test]
async fn clamav_testfiles_are_all_detected_or_refused() {
    let dir = Path::new("/usr/share/clamav-testfiles");
    assert!(dir.is_dir(), "{} is missing: `scripts/clamd.sh start` installs clamav-testfiles", dir.display());
    let s = tcp();
    let mut detected = 0;
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        let body = std::fs::read(&path).unwrap();
        let got = s.scan(&body).await;
        let name = path.file_name().unwrap().to_string_lossy();
        if body.len() > 1 << 20 {
            assert!(matches!(got, Err(ScanError::Refused(_))), "{name} ({} bytes): {got:?}", body.len());
        } else {
            assert_eq!(got.unwrap(), ScanVerdict::Infected("Tarn-ClamAV-Test-File.UNOFFICIAL".into()), "{name}");
            detected += 1;
        }
    }
    assert!(detected >= 30, "only {detected} test files");
}

#[tokio::test]
async fn the_stage_passes_a_clean_document_with_its_engine() {
    let stage = ScanStage::new(Arc::new(tcp()));
    assert_eq!(stage.name(), "scan");
    let mut d = doc("application/json", r#"{"user": "ada", "n": 1}"#);
    assert_eq!(stage.process(&mut d).await.unwrap(), Verdict::Continue);
    assert_eq!(d.scan_result.as_deref(), Some("clean"));
    let engine = d.scan_engine.clone().unwrap();
    assert!(engine.starts_with("clamav 1."), "{engine}");
    // a re-run gives the same
    assert_eq!(stage.process(&mut d).await.unwrap(), Verdict::Continue);
    assert_eq!(d.scan_engine.as_deref(), Some(engine.as_str()));
}

#[tokio::test]
async fn the_stage_quarantines_infected_documents_of_every_kind() {
    let stage = ScanStage::new(Arc::new(unix()));
    let eicar = conformance::eicar();
    let cases = [
        ("application/octet-stream", eicar.clone(), "Eicar-Test-Signature.UNOFFICIAL"),
        ("application/zip", conformance::stored_zip(&[("e.com", &eicar)]), "Eicar-Test-Signature.UNOFFICIAL"),
        (
            "application/json",
            format!("{{\"x\": \"{}\"}}", marker()).into_bytes(),
            "Tarn-Test-Malware-Marker.UNOFFICIAL",
        ),
        (
            "application/x-ndjson",
            format!("{{}}\n{{\"y\": \"{}\"}}\n", marker()).into_bytes(),
            "Tarn-Test-Malware-Marker.UNOFFICIAL",
        ),
    ];
    for (content_type, body, signature) in cases {
        let mut d = doc(content_type, body);
        let v = stage.process(&mut d).await.unwrap();
        assert_eq!(v, Verdict::Quarantine(format!("infected: {signature}")), "{content_type}");
        assert_eq!(d.scan_result.as_deref(), Some(signature));
        assert!(d.scan_engine.as_deref().unwrap().starts_with("clamav "));
    }
}

#[tokio::test]
async fn the_stage_fails_transiently_when_the_scan_does_not_complete() {
    let dir = tempfile::tempdir().unwrap();
    for scanner in [dead_tcp(), dead_unix(dir.path())] {
        let stage = ScanStage::new(Arc::new(scanner));
        let mut d = doc("application/json", "{}");
        // left over from an earlier run: must not survive a failed one
        (d.scan_result, d.scan_engine) = (Some("clean".into()), Some("clamav 0".into()));
        match stage.process(&mut d).await {
            Err(StageError::Transient(reason)) => assert!(reason.contains("cannot connect"), "{reason}"),
            other => panic!("a dead clamd: {other:?}"),
        }
        assert_eq!((d.scan_result, d.scan_engine), (None, None));
    }
    // over StreamMaxLength
    let stage = ScanStage::new(Arc::new(tcp()));
    let mut d = doc("application/octet-stream", vec![b'a'; OVER_LIMIT]);
    match stage.process(&mut d).await {
        Err(StageError::Transient(reason)) => assert!(reason.contains("INSTREAM size limit exceeded"), "{reason}"),
        other => panic!("over the limit: {other:?}"),
    }
    assert_eq!(d.scan_result, None);
    // and a scan that takes longer than the timeout
    let slow = ClamdScanner::connect(
        &clamd().tcp,
        Timeouts { connect: Duration::from_secs(5), scan: Duration::from_micros(1) },
    )
    .unwrap();
    let mut d = doc("application/json", "{}");
    assert!(matches!(ScanStage::new(Arc::new(slow)).process(&mut d).await, Err(StageError::Transient(_))));
}
