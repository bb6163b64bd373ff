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
use tarn_catalog::{Catalog, LocalCatalog, TableSpec};
use tarn_core::document::status_key;
use tarn_core::{DocumentRow, Kms, LocalKms, LocalObjectStore, ObjectStore, Status, SystemClock};
use tarn_lake::lock::LocalLakeLock;
use tarn_lake::scan::{
    ClamdScanner, ScanError, ScanStage, ScanVerdict, Scanner, Timeouts, UNSCANNABLE, conformance,
};
use tarn_lake::validate::Validate;
use tarn_lake::{Document, Pipeline, PipelineConfig, RetryPolicy, Stage, StageError, Verdict};

/// Over the test clamd's `StreamMaxLength 1M`.
const OVER_LIMIT: usize = 2_000_000;

struct Clamd {
    tcp: String,
    unix: String,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn script(args: &[&str]) -> String {
    script_in(None, args)
}

/// `scripts/clamd.sh` with `TARN_CLAMD_DIR=dir` when given.
fn script_in(dir: Option<&Path>, args: &[&str]) -> String {
    let path = repo().join("scripts/clamd.sh");
    let mut cmd = Command::new("bash");
    if let Some(dir) = dir {
        cmd.env("TARN_CLAMD_DIR", dir);
    }
    let out = cmd
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
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_string()
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
        assert!(
            clamd.tcp.starts_with("tcp://"),
            "TARN_CLAMD must be tcp://host:port, not {:?}",
            clamd.tcp
        );
        assert!(
            clamd.unix.starts_with("unix://"),
            "TARN_CLAMD_UNIX must be unix:///path, not {:?}",
            clamd.unix
        );
        clamd
    })
}

fn timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(5),
        scan: Duration::from_secs(30),
    }
}

fn tcp() -> ClamdScanner {
    ClamdScanner::connect(&clamd().tcp, timeouts()).unwrap()
}

fn unix() -> ClamdScanner {
    ClamdScanner::connect(&clamd().unix, timeouts()).unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn dead_tcp() -> ClamdScanner {
    ClamdScanner::connect(&format!("tcp://127.0.0.1:{}", free_port()), timeouts()).unwrap()
}

fn dead_unix(dir: &Path) -> ClamdScanner {
    ClamdScanner::connect(
        &format!("unix://{}", dir.join("no/clamd.sock").display()),
        timeouts(),
    )
    .unwrap()
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
        let got = scanner
            .scan(if i % 2 == 0 { &eicar[..] } else { b"clean" })
            .await
            .unwrap();
        assert_eq!(got == ScanVerdict::Clean, i % 2 == 1, "{got:?}");
    }
    assert!(scanner.sessions_enabled(), "clamd has sessions");
    assert_eq!(
        scanner.idle_sessions(),
        1,
        "sequential scans share one session"
    );
    assert_eq!(scanner.connections_opened(), 1);
    assert_eq!(
        scanner.scan(&eicar).await.unwrap(),
        ScanVerdict::Infected("Eicar-Test-Signature.UNOFFICIAL".into())
    );
}

#[tokio::test]
async fn a_session_clamd_closed_while_idle_is_replaced() {
    // the test clamd ends sessions idle for 8 s (ReadTimeout 8); keep ours longer than that
    let scanner = tcp().with_session_max_idle(Duration::from_secs(60));
    assert_eq!(scanner.scan(b"clean").await.unwrap(), ScanVerdict::Clean);
    assert_eq!(scanner.idle_sessions(), 1);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(scanner.scan(b"clean").await.unwrap(), ScanVerdict::Clean);
    assert_eq!(
        scanner.connections_opened(),
        2,
        "the ended session was replaced"
    );
    assert!(matches!(
        scanner.scan(&conformance::eicar()).await.unwrap(),
        ScanVerdict::Infected(_)
    ));
}

#[tokio::test]
async fn the_test_database_detects_its_own_signatures() {
    let s = tcp();
    let m = marker();
    for body in [
        m.clone(),
        format!("{{\"note\": \"{m}\"}}"),
        format!("{}{m}", "x".repeat(100_000)),
    ] {
        assert_eq!(
            s.scan(body.as_bytes()).await.unwrap(),
            ScanVerdict::Infected("Tarn-Test-Malware-Marker.UNOFFICIAL".into())
        );
    }
    // a marker split across two chunks is still found: clamd scans the stream, not the chunks
    let body = format!("{}{m}", "y".repeat(64 * 1024 - 7));
    assert!(matches!(
        s.scan(body.as_bytes()).await.unwrap(),
        ScanVerdict::Infected(_)
    ));
    assert_eq!(
        s.scan(b"TARN-TEST-MALWARE").await.unwrap(),
        ScanVerdict::Clean
    );
}

/// Debian's clamav-testfiles: one harmless program packed, archived and embedded in many ways
/// (UPX and other packers, 7z, arj, cab, cpio, zip, bz2, tar.gz, chm, mail, binhex, OLE2, PDF,
/// RTF, TNEF, ...). clamd must unpack each and find it; those over 1 MiB must be refused.
#[tokio::test]
async fn clamav_testfiles_are_all_detected_or_refused() {
    let dir = Path::new("/usr/share/clamav-testfiles");
    assert!(
        dir.is_dir(),
        "{} is missing: `scripts/clamd.sh start` installs clamav-testfiles",
        dir.display()
    );
    let s = tcp();
    let mut detected = 0;
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let body = std::fs::read(&path).unwrap();
        let got = s.scan(&body).await;
        let name = path.file_name().unwrap().to_string_lossy();
        if body.len() > 1 << 20 {
            assert!(
                matches!(got, Err(ScanError::Refused(_))),
                "{name} ({} bytes): {got:?}",
                body.len()
            );
        } else {
            assert_eq!(
                got.unwrap(),
                ScanVerdict::Infected("Tarn-ClamAV-Test-File.UNOFFICIAL".into()),
                "{name}"
            );
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
        (
            "application/octet-stream",
            eicar.clone(),
            "Eicar-Test-Signature.UNOFFICIAL",
        ),
        (
            "application/zip",
            conformance::stored_zip(&[("e.com", &eicar)]),
            "Eicar-Test-Signature.UNOFFICIAL",
        ),
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
        assert_eq!(
            v,
            Verdict::Quarantine(format!("infected: {signature}")),
            "{content_type}"
        );
        assert_eq!(d.scan_result.as_deref(), Some(signature));
        assert!(d.scan_engine.as_deref().unwrap().starts_with("clamav "));
    }
}

/// A clamd of this test binary's own, started by `scripts/clamd.sh` in a directory of its own and
/// stopped when dropped: the script's config (the one CI runs) is what is tested, whatever clamd
/// `TARN_CLAMD` points at.
struct OwnClamd {
    dir: PathBuf,
    unix: String,
}

impl OwnClamd {
    fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("tarn-clamd-limits-{}", std::process::id()));
        script_in(Some(&dir), &["start"]);
        let unix = script_in(Some(&dir), &["addr", "unix"]);
        Self { dir, unix }
    }
}

impl Drop for OwnClamd {
    fn drop(&mut self) {
        script_in(Some(&self.dir), &["stop"]);
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_file(self.dir.with_extension("lock"));
    }
}

/// A zip archive holding one entry, deflated.
fn deflated_zip(name: &str, data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    let packed = e.finish().unwrap();
    let crc = conformance::crc32(data);
    let (csize, usize) = (packed.len() as u32, data.len() as u32);
    let header = |central: bool| {
        let mut h = Vec::new();
        if central {
            h.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
            h.extend_from_slice(&20u16.to_le_bytes()); // version made by
        } else {
            h.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        }
        h.extend_from_slice(&20u16.to_le_bytes()); // version needed: 2.0
        h.extend_from_slice(&0u16.to_le_bytes()); // flags
        h.extend_from_slice(&8u16.to_le_bytes()); // method: deflate
        h.extend_from_slice(&0u16.to_le_bytes()); // time
        h.extend_from_slice(&0x21u16.to_le_bytes()); // date: 1980-01-01
        h.extend_from_slice(&crc.to_le_bytes());
        h.extend_from_slice(&csize.to_le_bytes());
        h.extend_from_slice(&usize.to_le_bytes());
        h.extend_from_slice(&(name.len() as u16).to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes()); // extra length
        if central {
            h.extend_from_slice(&[0; 8]); // comment length, disk, internal attributes
            h.extend_from_slice(&0u32.to_le_bytes()); // external attributes
            h.extend_from_slice(&0u32.to_le_bytes()); // local header offset
        }
        h.extend_from_slice(name.as_bytes());
        h
    };
    let mut out = header(false);
    out.extend_from_slice(&packed);
    let central_at = out.len() as u32;
    let central = header(true);
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]); // disks
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&central_at.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes()); // comment length
    out
}

/// EICAR followed by zeros up to `len` bytes.
fn eicar_padded(len: usize) -> Vec<u8> {
    let mut body = conformance::eicar();
    body.resize(len, 0);
    body
}

/// With the config of `scripts/clamd.sh` (MaxScanSize 2M, MaxFileSize 3M, AlertExceedsMax,
/// AlertEncrypted), what clamd could not look into is unscannable: quarantined as such, never
/// clean, and not called a virus. Without those options clamd answers OK to all four (it cuts
/// the member past MaxFileSize short, and does not read past MaxRecursion or the encryption).
#[tokio::test]
async fn what_clamd_could_not_look_into_is_unscannable_not_clean() {
    let own = OwnClamd::start();
    let scanner = Arc::new(ClamdScanner::connect(&own.unix, timeouts()).unwrap());
    let stage = ScanStage::new(scanner.clone());
    let eicar = conformance::eicar();
    // EICAR at the start of a member past MaxFileSize: the archive is a few KB
    let past_max_file = deflated_zip("e.com", &eicar_padded(4 << 20));
    assert!(past_max_file.len() < 64 << 10, "{}", past_max_file.len());
    // past MaxScanSize, within MaxFileSize
    let past_max_scan = deflated_zip("e.com", &eicar_padded(5 << 19));
    // nested deeper than MaxRecursion (17)
    let mut nested = eicar.clone();
    for _ in 0..20 {
        nested = conformance::stored_zip(&[("n.zip", &nested)]);
    }
    // an encrypted member (the flag is enough for clamd to see it cannot read it)
    let mut encrypted = conformance::stored_zip(&[("e.com", &eicar)]);
    encrypted[6] |= 1;
    let central = encrypted
        .windows(4)
        .position(|w| w == b"PK\x01\x02")
        .unwrap();
    encrypted[central + 8] |= 1;
    for (what, body, name) in [
        (
            "past MaxFileSize",
            &past_max_file,
            "Heuristics.Limits.Exceeded.",
        ),
        (
            "past MaxScanSize",
            &past_max_scan,
            "Heuristics.Limits.Exceeded.",
        ),
        ("nested", &nested, "Heuristics.Limits.Exceeded.MaxRecursion"),
        ("encrypted", &encrypted, "Heuristics.Encrypted.Zip"),
    ] {
        let verdict = scanner.scan(body).await.unwrap();
        let ScanVerdict::Unscannable(got) = &verdict else {
            panic!("{what}: {verdict:?}")
        };
        assert!(got.starts_with(name), "{what}: {got}");
        let mut d = doc("application/zip", body.clone());
        let v = stage.process(&mut d).await.unwrap();
        assert_eq!(
            v,
            Verdict::Quarantine(format!(
                "unscannable: the scan could not complete: a part is past the scanner's limits or encrypted ({got})"
            )),
            "{what}"
        );
        assert_eq!(d.scan_result.as_deref(), Some(UNSCANNABLE), "{what}");
        assert!(d.scan_engine.as_deref().unwrap().starts_with("clamav "));
    }
    // within the limits: clean is clean, EICAR is a virus
    assert_eq!(
        scanner
            .scan(&deflated_zip("z", &vec![0; 1 << 20]))
            .await
            .unwrap(),
        ScanVerdict::Clean
    );
    assert_eq!(
        scanner.scan(&deflated_zip("e.com", &eicar)).await.unwrap(),
        ScanVerdict::Infected("Eicar-Test-Signature.UNOFFICIAL".into())
    );
    drop(own);
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
            Err(StageError::Transient(reason)) => {
                assert!(reason.contains("cannot connect"), "{reason}")
            }
            other => panic!("a dead clamd: {other:?}"),
        }
        assert_eq!((d.scan_result, d.scan_engine), (None, None));
    }
    // over StreamMaxLength
    let stage = ScanStage::new(Arc::new(tcp()));
    let mut d = doc("application/octet-stream", vec![b'a'; OVER_LIMIT]);
    match stage.process(&mut d).await {
        Err(StageError::Transient(reason)) => {
            assert!(reason.contains("INSTREAM size limit exceeded"), "{reason}")
        }
        other => panic!("over the limit: {other:?}"),
    }
    assert_eq!(d.scan_result, None);
    // and a scan that takes longer than the timeout
    let slow = ClamdScanner::connect(
        &clamd().tcp,
        Timeouts {
            connect: Duration::from_secs(5),
            scan: Duration::from_micros(1),
        },
    )
    .unwrap();
    let mut d = doc("application/json", "{}");
    assert!(matches!(
        ScanStage::new(Arc::new(slow)).process(&mut d).await,
        Err(StageError::Transient(_))
    ));
}

// ---- the pipeline: nothing unscanned, nothing infected, reaches the lake ----

struct Lake {
    dir: tempfile::TempDir,
    ingress: Arc<dyn ObjectStore>,
    lake: Arc<LocalObjectStore>,
    quarantine: Arc<dyn ObjectStore>,
    state: Arc<dyn ObjectStore>,
    kms: Arc<dyn Kms>,
    catalog: Arc<dyn Catalog>,
    tables: Vec<TableSpec>,
}

fn lake() -> Lake {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tables = vec![
        TableSpec::from_value(
            Path::new("events.json"),
            serde_json::json!({"title": "events", "type": "object", "required": ["user"],
                   "properties": {"user": {"type": "string"}},
                   "x-tarn": {"accept": ["application/json", "application/x-ndjson"]}}),
        )
        .unwrap(),
        TableSpec::from_value(
            Path::new("photos.json"),
            serde_json::json!({"title": "photos", "x-tarn": {"accept": ["image/png"]}}),
        )
        .unwrap(),
    ];
    Lake {
        ingress: Arc::new(LocalObjectStore::open("ingress", d.join("ingress")).unwrap()),
        lake: Arc::new(LocalObjectStore::open("lake", d.join("lake")).unwrap()),
        quarantine: Arc::new(LocalObjectStore::open("quarantine", d.join("quarantine")).unwrap()),
        state: Arc::new(LocalObjectStore::open("state", d.join("state")).unwrap()),
        kms: Arc::new(LocalKms::open_or_create(d.join("keys/master.key")).unwrap()),
        catalog: Arc::new(LocalCatalog::open(d.join("catalog")).unwrap()),
        tables,
        dir,
    }
}

fn pipeline(l: &Lake, scanner: ClamdScanner) -> Pipeline {
    let lake = tarn_lake::Lake::new(tarn_lake::LakeParts {
        tables: l.tables.clone(),
        ingress: l.ingress.clone(),
        lake: l.lake.clone(),
        quarantine: l.quarantine.clone(),
        state: l.state.clone(),
        kms: l.kms.clone(),
        catalog: l.catalog.clone(),
        database: "tarn".into(),
        clock: Arc::new(SystemClock),
        lock: Arc::new(LocalLakeLock::open(l.dir.path().join("locks")).unwrap()),
    });
    let stages: Vec<Arc<dyn Stage>> = vec![
        Arc::new(ScanStage::new(Arc::new(scanner))),
        Arc::new(Validate::new(&l.tables).unwrap()),
    ];
    Pipeline::new(
        lake,
        stages,
        PipelineConfig {
            retry: RetryPolicy {
                base: Duration::from_millis(1),
                ..Default::default()
            },
            ..Default::default()
        },
    )
}

/// Lands a document as the ingress does.
async fn land(l: &Lake, table: &str, content_type: &str, body: &[u8]) -> String {
    tarn_core::document::land(
        l.ingress.as_ref(),
        l.kms.as_ref(),
        table,
        "alice",
        content_type,
        "2024-05-06T07:08:09.123Z",
        body,
    )
    .await
    .unwrap()
}

async fn row(l: &Lake, id: &str) -> DocumentRow {
    serde_json::from_slice(&l.state.get(&status_key(id)).await.unwrap().body).unwrap()
}

/// Every file under the lake's `tables/<table>/` and `objects/<table>/`.
fn lake_files(l: &Lake, table: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![
        l.lake.root().join("tables").join(table),
        l.lake.root().join("objects").join(table),
    ];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in rd {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p)
            } else {
                out.push(p)
            }
        }
    }
    out
}

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0";

#[tokio::test]
async fn the_pipeline_stores_clean_documents_and_quarantines_infected_ones() {
    let l = lake();
    let p = pipeline(&l, tcp());
    p.setup_catalog().await.unwrap();
    let clean = land(
        &l,
        "events",
        "application/json",
        br#"[{"user":"a"},{"user":"b"}]"#,
    )
    .await;
    let json = land(
        &l,
        "events",
        "application/json",
        format!(r#"{{"user":"{}"}}"#, marker()).as_bytes(),
    )
    .await;
    let photo = land(&l, "photos", "image/png", PNG).await;
    let infected_photo = land(
        &l,
        "photos",
        "image/png",
        &[PNG, marker().as_bytes()].concat(),
    )
    .await;
    let zip = land(
        &l,
        "photos",
        "image/png",
        &conformance::stored_zip(&[("e.com", &conformance::eicar())]),
    )
    .await;

    let report = p.drain().await.unwrap();
    assert_eq!(
        (report.stored, report.rejected, report.quarantined),
        (2, 0, 3)
    );
    for id in [&clean, &photo] {
        let r = row(&l, id).await;
        assert_eq!(r.status, Status::Stored);
        assert_eq!(r.scan_result.as_deref(), Some("clean"));
        assert!(r.scan_engine.as_deref().unwrap().starts_with("clamav "));
    }
    for (id, signature) in [
        (&json, "Tarn-Test-Malware-Marker.UNOFFICIAL"),
        (&infected_photo, "Tarn-Test-Malware-Marker.UNOFFICIAL"),
        (&zip, "Eicar-Test-Signature.UNOFFICIAL"),
    ] {
        let r = row(&l, id).await;
        assert_eq!(r.status, Status::Quarantined);
        assert_eq!(
            r.reason.as_deref(),
            Some(format!("infected: {signature}").as_str())
        );
        assert_eq!(r.scan_result.as_deref(), Some(signature));
        assert_eq!(r.object_key, None);
    }
    // the lake has the clean ones only
    let objects: Vec<_> = lake_files(&l, "photos")
        .into_iter()
        .map(|p| p.file_name().unwrap().to_owned())
        .collect();
    assert_eq!(objects, [std::ffi::OsString::from(&photo)]);
    assert_eq!(
        lake_files(&l, "events")
            .iter()
            .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
            .count(),
        1
    );
    let _ = &l.dir;
}

#[tokio::test]
async fn without_a_scanner_nothing_reaches_the_lake() {
    let l = lake();
    let dir = tempfile::tempdir().unwrap();
    for (i, scanner) in [dead_tcp(), dead_unix(dir.path())].into_iter().enumerate() {
        let p = pipeline(&l, scanner);
        p.setup_catalog().await.unwrap();
        let json = land(&l, "events", "application/json", br#"{"user":"a"}"#).await;
        let photo = land(&l, "photos", "image/png", PNG).await;
        let report = p.drain().await.unwrap();
        assert_eq!((report.stored, report.quarantined), (0, 2), "scanner {i}");
        for id in [&json, &photo] {
            let r = row(&l, id).await;
            assert_eq!(r.status, Status::Quarantined);
            let reason = r.reason.unwrap();
            assert!(
                reason.starts_with("scan failed 5 times: ") && reason.contains("cannot connect"),
                "{reason}"
            );
            assert_eq!((r.scan_result, r.scan_engine), (None, None));
        }
    }
    assert!(
        lake_files(&l, "events")
            .iter()
            .all(|p| p.extension().is_none_or(|x| x != "parquet"))
    );
    assert!(lake_files(&l, "photos").is_empty());
}

// ---- measurement (run by scripts/bench-scan.sh; not a test) ----

struct Timings {
    name: String,
    each: Vec<Duration>,
}

impl Timings {
    fn mean(&self) -> Duration {
        self.each.iter().sum::<Duration>() / self.each.len() as u32
    }

    fn pct(&self, p: f64) -> Duration {
        let mut v = self.each.clone();
        v.sort();
        v[((v.len() - 1) as f64 * p).round() as usize]
    }

    fn print(&self, base: Option<&Timings>) {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let over = base
            .map(|b| {
                format!(
                    "{:+8.3} {:+8.3}",
                    ms(self.mean()) - ms(b.mean()),
                    ms(self.pct(0.5)) - ms(b.pct(0.5))
                )
            })
            .unwrap_or_default();
        println!(
            "{:<46} {:>8.3} {:>8.3} {:>8.3} {over}",
            self.name,
            ms(self.mean()),
            ms(self.pct(0.5)),
            ms(self.pct(0.99))
        );
    }
}

/// The floor: a blocking client that sends the whole INSTREAM (framed into 64 KiB chunks
/// beforehand) in one write and reads the answer; clamd's own time plus the least protocol cost.
struct Raw {
    stream: Option<std::net::TcpStream>,
    port: String,
    framed: Vec<u8>,
    id: u64,
}

impl Raw {
    fn new(tcp: &str, body: &[u8], session: bool) -> Raw {
        let mut framed = Vec::new();
        for c in body.chunks(64 * 1024) {
            framed.extend_from_slice(&(c.len() as u32).to_be_bytes());
            framed.extend_from_slice(c);
        }
        framed.extend_from_slice(&[0; 4]);
        let port = tcp.trim_start_matches("tcp://").to_string();
        let stream = session.then(|| {
            let mut s = std::net::TcpStream::connect(&port).unwrap();
            s.set_nodelay(true).unwrap();
            std::io::Write::write_all(&mut s, b"zIDSESSION\0").unwrap();
            s
        });
        Raw {
            stream,
            port,
            framed,
            id: 0,
        }
    }

    fn scan(&mut self) -> String {
        use std::io::{Read, Write};
        let mut one;
        let s = match &mut self.stream {
            Some(s) => s,
            None => {
                one = std::net::TcpStream::connect(&self.port).unwrap();
                one.set_nodelay(true).unwrap();
                &mut one
            }
        };
        s.write_all(b"zINSTREAM\0").unwrap();
        s.write_all(&self.framed).unwrap();
        self.id += 1;
        let mut reply = Vec::new();
        let mut buf = [0u8; 256];
        while !reply.ends_with(b"\0") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "clamd closed");
            reply.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8(reply).unwrap();
        assert!(text.ends_with("stream: OK\0"), "{text}");
        text
    }
}

/// tarn's per-document overhead over a warm clamd: `ClamdScanner` against the raw floor.
/// `cargo test -p tarn-lake --test scan -- --ignored --nocapture scan_overhead`
/// (TARN_BENCH_N scans of TARN_BENCH_SIZE bytes each, 500 of 100 KB by default). The variants
/// take turns scan by scan (in a rotating order), so a busy machine slows them all alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: scripts/bench-scan.sh"]
async fn scan_overhead() {
    let n: usize = std::env::var("TARN_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let size: usize = std::env::var("TARN_BENCH_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100 * 1024);
    let body = conformance::clean_text(size);
    let c = clamd();
    println!(
        "{n} scans of a {size}-byte clean text each, clamd at {} and {}",
        c.tcp, c.unix
    );

    let mut raw_single = Raw::new(&c.tcp, &body, false);
    let mut raw_session = Raw::new(&c.tcp, &body, true);
    let pooled = tcp();
    let single = tcp().with_pool_size(0);
    let pooled_unix = unix();
    let single_unix = unix().with_pool_size(0);
    let stage = ScanStage::new(Arc::new(tcp()));
    let d = doc("application/octet-stream", body.clone());
    let names = [
        "raw, one connection per scan (tcp)",
        "raw, one IDSESSION (tcp)",
        "ClamdScanner, one connection per scan (tcp)",
        "ClamdScanner, session pool (tcp)",
        "ClamdScanner, one connection per scan (unix)",
        "ClamdScanner, session pool (unix)",
        "ScanStage::process, session pool (tcp)",
    ];
    // what each is compared with
    let base = [None, None, Some(0), Some(1), Some(0), Some(1), Some(1)];
    let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(n); names.len()];
    for i in 0..n + n / 10 {
        for j in 0..names.len() {
            let k = (i + j) % names.len();
            let t = std::time::Instant::now();
            match k {
                0 => drop(raw_single.scan()),
                1 => drop(raw_session.scan()),
                2 => assert_eq!(single.scan(&body).await.unwrap(), ScanVerdict::Clean),
                3 => assert_eq!(pooled.scan(&body).await.unwrap(), ScanVerdict::Clean),
                4 => assert_eq!(single_unix.scan(&body).await.unwrap(), ScanVerdict::Clean),
                5 => assert_eq!(pooled_unix.scan(&body).await.unwrap(), ScanVerdict::Clean),
                _ => {
                    let mut d = d.clone();
                    assert_eq!(stage.process(&mut d).await.unwrap(), Verdict::Continue);
                }
            }
            if i >= n / 10 {
                times[k].push(t.elapsed()); // the first tenth warms up
            }
        }
    }
    let timings: Vec<Timings> = names
        .iter()
        .zip(times)
        .map(|(name, each)| Timings {
            name: name.to_string(),
            each,
        })
        .collect();
    println!(
        "{:<46} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "ms per scan", "mean", "p50", "p99", "Δmean", "Δp50"
    );
    for (t, b) in timings.iter().zip(base) {
        t.print(b.map(|b| &timings[b]));
    }
    println!(
        "connections opened: session pool tcp {}, unix {}; one per scan tcp {}",
        pooled.connections_opened(),
        pooled_unix.connections_opened(),
        single.connections_opened()
    );

    // throughput with the runner's default concurrency (8)
    let shared = Arc::new(tcp());
    let body = Arc::new(body);
    let start = std::time::Instant::now();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (s, b) = (shared.clone(), body.clone());
            tokio::spawn(async move {
                for _ in 0..n / 8 {
                    assert_eq!(s.scan(&b).await.unwrap(), ScanVerdict::Clean);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let total = (n / 8) * 8;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "8 concurrent scans: {total} scans in {secs:.2} s = {:.0} scans/s, {:.1} MB/s; connections opened: {}",
        total as f64 / secs,
        (total * size) as f64 / secs / 1e6,
        shared.connections_opened()
    );
}
