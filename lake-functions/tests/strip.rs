//! The strip stage on real files: the demo samples (samples/ at the repo root: JPEG with EXIF,
//! GPS, XMP and a comment; PNG with text, zTXt and XMP iTXt; PDF with Info and XMP) and the
//! WebP/GIF fixtures (tests/fixtures/strip/, made by make-fixtures.py there).
//!
//! Each is checked three ways: the identifying strings are gone from the bytes; exiftool (Debian
//! `libimage-exiftool-perl`) reports none of the removed groups, and the tests fail when it is
//! missing unless `TARN_SKIP_EXIFTOOL=1`; the image data is byte-identical. And a second strip
//! changes nothing; every truncation and many mutations are quarantined or stripped, never a
//! panic.

use bytes::Bytes;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use tarn_lake::strip::{Limits, Strip, StripError, strip_jpeg, strip_pdf, strip_png};
use tarn_lake::{Document, Stage, Verdict};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(root().join("samples").join(name)).unwrap()
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/strip")
            .join(name),
    )
    .unwrap()
}

/// A PDF from testdata/pdf/ (PDF 1.5 compression, made by qpdf: see the README there).
fn pdf_fixture(name: &str) -> Vec<u8> {
    std::fs::read(root().join("testdata/pdf").join(name)).unwrap()
}

fn doc(content_type: &str, detected: Option<&str>, body: &[u8]) -> Document {
    Document {
        id: "00000000-0000-0000-0000-000000000001".into(),
        table: "photos".into(),
        content_type: content_type.into(),
        producer: "p".into(),
        received_at: chrono::Utc::now(),
        body: Bytes::copy_from_slice(body),
        detected_type: detected.map(str::to_string),
        records: None,
        scan_engine: None,
        scan_result: None,
        metadata_removed: vec![],
    }
}

/// Runs the stage on `body` of `media_type`: the verdict and the document after it.
async fn run(media_type: &str, body: &[u8]) -> (Verdict, Document) {
    let mut d = doc(media_type, Some(media_type), body);
    let verdict = Strip::new().process(&mut d).await.unwrap();
    (verdict, d)
}

/// Strips and checks the stage's contract: Continue, the names, idempotence (same bytes, no
/// names, and running the stage again on the same document changes nothing).
async fn strip_ok(media_type: &str, body: &[u8], names: &[&str]) -> Vec<u8> {
    let (verdict, mut d) = run(media_type, body).await;
    assert_eq!(verdict, Verdict::Continue, "{media_type}");
    let mut got = d.metadata_removed.clone();
    got.sort();
    let mut want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(got, want, "{media_type}: metadata_removed");
    let out = d.body.to_vec();
    // the same document again (a crash re-runs the stage)
    let before = d.metadata_removed.clone();
    assert_eq!(
        Strip::new().process(&mut d).await.unwrap(),
        Verdict::Continue
    );
    assert_eq!(
        (d.body.as_ref(), &d.metadata_removed),
        (out.as_slice(), &before),
        "{media_type}: not idempotent"
    );
    // a new document with the stripped bytes: nothing to remove
    let (verdict, again) = run(media_type, &out).await;
    assert_eq!(verdict, Verdict::Continue);
    assert_eq!(
        again.body.as_ref(),
        out.as_slice(),
        "{media_type}: a second strip changed the bytes"
    );
    assert!(
        again.metadata_removed.is_empty(),
        "{media_type}: second strip removed {:?}",
        again.metadata_removed
    );
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn assert_absent(bytes: &[u8], secrets: &[&str]) {
    for s in secrets {
        assert!(
            !contains(bytes, s.as_bytes()),
            "{s:?} is still in the stripped bytes"
        );
    }
}

/// `exiftool -a -G1 -s` on the bytes, without the System, ExifTool and Composite groups; `None`
/// when TARN_SKIP_EXIFTOOL=1.
fn exiftool(bytes: &[u8]) -> Option<String> {
    if std::env::var("TARN_SKIP_EXIFTOOL").as_deref() == Ok("1") {
        return None;
    }
    require_exiftool();
    let child = Command::new("exiftool")
        .args(["-a", "-G1", "-s", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = child.unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "exiftool failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    Some(
        text.lines()
            .filter(|l| {
                !l.starts_with("[System]")
                    && !l.starts_with("[ExifTool]")
                    && !l.starts_with("[Composite]")
            })
            .map(|l| format!("{l}\n"))
            .collect(),
    )
}

/// Fails, saying how to install it, when exiftool is not on PATH.
fn require_exiftool() {
    match Command::new("exiftool").arg("-ver").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "exiftool -ver failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!(
            "exiftool is needed by the strip tests and could not be run ({e}): install it \
             (Debian: apt-get install libimage-exiftool-perl) or set TARN_SKIP_EXIFTOOL=1 to skip \
             the exiftool checks"
        ),
    }
}

/// The exiftool lines of a group, as `Tag : value`.
fn group(report: &str, name: &str) -> Vec<String> {
    let prefix = format!("[{name}]");
    report
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

fn assert_no_groups(report: &str, groups: &[&str]) {
    for g in groups {
        assert!(
            !report.contains(&format!("[{g}")),
            "exiftool still reports [{g}...]:\n{report}"
        );
    }
    assert!(!report.contains("Warning"), "exiftool warns:\n{report}");
}

// --- JPEG

/// The segments before the first SOS (marker, whole segment) and the bytes from SOS on.
fn jpeg_parts(j: &[u8]) -> (Vec<(u8, Vec<u8>)>, Vec<u8>) {
    let mut pos = 2;
    let mut segs = vec![];
    loop {
        assert_eq!(j[pos], 0xFF);
        let marker = j[pos + 1];
        if marker == 0xDA {
            return (segs, j[pos..].to_vec());
        }
        let len = u16::from_be_bytes([j[pos + 2], j[pos + 3]]) as usize;
        segs.push((marker, j[pos..pos + 2 + len].to_vec()));
        pos += 2 + len;
    }
}

fn decoding_segments(segs: &[(u8, Vec<u8>)]) -> Vec<Vec<u8>> {
    // DQT, DHT, DRI, SOFn
    segs.iter()
        .filter(|(m, _)| matches!(m, 0xDB | 0xC4 | 0xDD | 0xC0..=0xCF))
        .map(|(_, s)| s.clone())
        .collect()
}

fn jpeg_segment(marker: u8, payload: &[u8]) -> Vec<u8> {
    let mut s = vec![0xFF, marker];
    s.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    s.extend_from_slice(payload);
    s
}

#[tokio::test]
async fn jpeg_sample() {
    let input = sample("photo.jpg");
    let out = strip_ok("image/jpeg", &input, &["exif", "gps", "xmp", "comment"]).await;
    assert_absent(
        &out,
        &[
            "SN-0042-SECRET",
            "Jane",
            "TarnCam",
            "Model 7",
            "tarn-sample",
            "Rue Example",
            "ns.adobe.com",
        ],
    );
    // the decoding segments and everything from SOS on are byte-identical
    let (segs_in, scan_in) = jpeg_parts(&input);
    let (segs_out, scan_out) = jpeg_parts(&out);
    assert_eq!(decoding_segments(&segs_in), decoding_segments(&segs_out));
    assert_eq!(scan_in, scan_out);
    // JFIF kept, one minimal EXIF block (Orientation 6) where the old one was
    let markers: Vec<u8> = segs_out.iter().map(|(m, _)| *m).collect();
    assert_eq!(&markers[..2], &[0xE0, 0xE1]);
    assert_eq!(segs_out[1].1.len(), 36);
    if let Some(report) = exiftool(&out) {
        assert_no_groups(
            &report,
            &[
                "GPS",
                "XMP",
                "IPTC",
                "Photoshop",
                "ExifIFD",
                "IFD1",
                "MakerNotes",
            ],
        );
        assert_eq!(
            group(&report, "IFD0"),
            ["Orientation : Rotate 90 CW"],
            "{report}"
        );
        assert!(!report.contains("Comment"), "{report}");
        assert!(report.contains("[JFIF]"), "{report}");
        assert!(
            report.contains("ImageWidth : 64")
                || report.contains("ImageWidth                      : 64")
        );
    }
}

#[tokio::test]
async fn jpeg_application_segments() {
    // the sample with ICC, Adobe, IPTC, extended XMP, MPF, APP3/APP15 and an appended image
    let input = sample("photo.jpg");
    let mut j = input[..2].to_vec();
    j.extend(jpeg_segment(0xE2, b"ICC_PROFILE\0\x01\x01fake profile"));
    j.extend(jpeg_segment(
        0xED,
        b"Photoshop 3.0\08BIM\x04\x04\0\0\0\0\0\x0c\x1c\x02\x50\0\x08Jane Doe",
    ));
    j.extend(jpeg_segment(0xE1, b"http://ns.adobe.com/xmp/extension/\0ABCDEF0123456789ABCDEF0123456789\0\0\0\x04\0\0\0\0Jane"));
    j.extend(jpeg_segment(0xE2, b"MPF\0MM\0*\0\0\0\x08"));
    j.extend(jpeg_segment(0xE3, b"Meta Jane"));
    j.extend(jpeg_segment(0xEF, b"Jane"));
    j.extend(jpeg_segment(0xEE, b"Adobe\0\x64\0\0\0\0\x01"));
    j.extend_from_slice(&input[2..]);
    j.extend_from_slice(&input); // an appended second image with all its metadata
    let out = strip_ok(
        "image/jpeg",
        &j,
        &[
            "exif", "gps", "xmp", "comment", "iptc", "mpf", "app3", "app15", "trailer",
        ],
    )
    .await;
    assert_absent(&out, &["Jane", "SN-0042-SECRET", "8BIM", "MPF"]);
    assert!(contains(&out, b"ICC_PROFILE\0\x01\x01fake profile"));
    assert!(contains(&out, b"Adobe\0\x64"));
    let (_, scan_in) = jpeg_parts(&input);
    assert!(out.ends_with(&scan_in));
    if let Some(report) = exiftool(&out) {
        assert_no_groups(&report, &["GPS", "XMP", "IPTC", "Photoshop", "MPF"]);
        assert!(report.contains("[Adobe]"), "{report}");
    }
}

#[tokio::test]
async fn jpeg_orientation_absent_means_no_exif() {
    // the sample's EXIF without its Orientation entry (the tag renamed to an unknown one)
    let mut input = sample("photo.jpg");
    let at = input
        .windows(4)
        .position(|w| w == [0x01, 0x12, 0x00, 0x03])
        .unwrap();
    input[at + 1] = 0x13;
    let out = strip_ok("image/jpeg", &input, &["exif", "gps", "xmp", "comment"]).await;
    let (segs, _) = jpeg_parts(&out);
    assert!(segs.iter().all(|(m, _)| *m != 0xE1));
    if let Some(report) = exiftool(&out) {
        assert!(group(&report, "IFD0").is_empty(), "{report}");
    }
}

// --- PNG

/// (type, data) of each chunk, CRCs checked.
fn png_chunks(p: &[u8]) -> Vec<([u8; 4], Vec<u8>)> {
    let mut pos = 8;
    let mut chunks = vec![];
    while pos < p.len() {
        let len = u32::from_be_bytes(p[pos..pos + 4].try_into().unwrap()) as usize;
        let typ: [u8; 4] = p[pos + 4..pos + 8].try_into().unwrap();
        chunks.push((typ, p[pos + 8..pos + 8 + len].to_vec()));
        pos += 12 + len;
    }
    chunks
}

#[tokio::test]
async fn png_sample() {
    let input = sample("diagram.png");
    let out = strip_ok("image/png", &input, &["png-text", "xmp"]).await;
    assert_absent(
        &out,
        &[
            "Jane",
            "Author",
            "48.8582",
            "XML:com.adobe.xmp",
            "tEXt",
            "zTXt",
            "iTXt",
        ],
    );
    let idat = |p: &[u8]| -> Vec<u8> {
        png_chunks(p)
            .into_iter()
            .filter(|(t, _)| t == b"IDAT")
            .flat_map(|(_, d)| d)
            .collect()
    };
    assert_eq!(idat(&input), idat(&out));
    let kept: Vec<[u8; 4]> = png_chunks(&out).into_iter().map(|(t, _)| t).collect();
    assert_eq!(kept.first(), Some(b"IHDR"));
    assert_eq!(kept.last(), Some(b"IEND"));
    // every CRC is valid: the stripper verifies them
    strip_png(&out, &Limits::default()).unwrap();
    if let Some(report) = exiftool(&out) {
        assert_no_groups(&report, &["XMP"]);
        let png = group(&report, "PNG").join("\n");
        assert!(
            !png.contains("Author") && !png.contains("Comment"),
            "{report}"
        );
        assert!(png.contains("ImageWidth : 32"), "{report}");
    }
}

#[tokio::test]
async fn png_time_exif_and_private_chunks() {
    fn chunk(typ: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut c = (data.len() as u32).to_be_bytes().to_vec();
        c.extend_from_slice(typ);
        c.extend_from_slice(data);
        let crc = crc32(&c[4..]);
        c.extend_from_slice(&crc.to_be_bytes());
        c
    }
    let input = sample("diagram.png");
    let ihdr_end = 8 + 25;
    let mut p = input[..ihdr_end].to_vec();
    p.extend(chunk(b"tIME", &[0x07, 0xE9, 6, 1, 12, 0, 0]));
    p.extend(chunk(b"eXIf", &jpeg_exif_tiff()));
    p.extend(chunk(b"prVt", b"Jane's private data"));
    p.extend(chunk(b"gAMA", &[0, 0, 0xB1, 0x8F]));
    p.extend_from_slice(&input[ihdr_end..]);
    let out = strip_ok(
        "image/png",
        &p,
        &["png-time", "exif", "png-prvt", "png-text", "xmp"],
    )
    .await;
    assert_absent(&out, &["Jane", "SN-0042"]);
    assert!(contains(&out, b"gAMA"));
    if let Some(report) = exiftool(&out) {
        assert_no_groups(&report, &["IFD0", "GPS", "XMP"]);
        assert!(!report.contains("ModifyDate"), "{report}");
    }
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                0xEDB8_8320 ^ (crc >> 1)
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Rewrites every whole chunk's CRC (mutations rarely keep them valid).
fn fix_png_crcs(p: &mut [u8]) {
    let mut pos = 8;
    while pos + 12 <= p.len() {
        let len = u32::from_be_bytes(p[pos..pos + 4].try_into().unwrap()) as usize;
        let Some(end) = (pos + 12).checked_add(len).filter(|&e| e <= p.len()) else {
            break;
        };
        let crc = crc32(&p[pos + 4..end - 4]);
        p[end - 4..end].copy_from_slice(&crc.to_be_bytes());
        pos = end;
    }
}

/// The TIFF structure of the JPEG sample's EXIF.
fn jpeg_exif_tiff() -> Vec<u8> {
    let (segs, _) = jpeg_parts(&sample("photo.jpg"));
    let exif = segs
        .iter()
        .find(|(m, s)| *m == 0xE1 && s[4..].starts_with(b"Exif\0"))
        .unwrap();
    exif.1[10..].to_vec()
}

// --- PDF

#[tokio::test]
async fn pdf_sample() {
    let input = sample("report.pdf");
    let out = strip_ok("application/pdf", &input, &["pdf-info", "xmp"]).await;
    assert_absent(
        &out,
        &[
            "Jane",
            "TarnWriter",
            "Q3 numbers",
            "tarn sample",
            "xpacket",
            "/Info",
            "/Metadata",
        ],
    );
    assert!(
        contains(&out, b"(Quarterly report) Tj"),
        "the page content is kept"
    );
    let text = String::from_utf8_lossy(&out);
    assert_eq!(
        text.matches("\nxref\n").count(),
        1,
        "one xref table, no incremental update"
    );
    assert!(!text.contains("/Prev"));
    if let Some(report) = exiftool(&out) {
        assert_no_groups(&report, &["XMP"]);
        let pdf = group(&report, "PDF").join("\n");
        for tag in ["Author", "Creator", "Producer", "Title"] {
            assert!(!pdf.contains(tag), "{report}");
        }
        assert!(pdf.contains("PageCount : 1"), "{report}");
    }
}

/// exiftool's own PDF edits are incremental: after `exiftool -all=` the old values are still
/// in the file (and can be restored). The strip stage's rewrite drops them.
#[tokio::test]
async fn pdf_after_exiftool_edits() {
    if std::env::var("TARN_SKIP_EXIFTOOL").as_deref() == Ok("1") {
        return;
    }
    require_exiftool();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.pdf");
    std::fs::write(&path, sample("report.pdf")).unwrap();
    let status = Command::new("exiftool")
        .args(["-q", "-overwrite_original", "-all=", "-Author=Someone Else"])
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    let edited = std::fs::read(&path).unwrap();
    assert!(
        contains(&edited, b"Jane Accountant"),
        "exiftool kept the old value in an earlier revision"
    );
    let out = strip_ok(
        "application/pdf",
        &edited,
        &["pdf-info", "xmp", "pdf-history"],
    )
    .await;
    assert_absent(&out, &["Jane", "Someone Else", "TarnWriter"]);
    let report = exiftool(&out).unwrap();
    assert!(
        group(&report, "PDF")
            .iter()
            .all(|l| !l.starts_with("Author")),
        "{report}"
    );
}

/// The data of every stream in `pdf` (from `stream` and its end of line to `endstream`, the end
/// of line before it included).
fn stream_datas(pdf: &[u8]) -> Vec<Vec<u8>> {
    let mut out = vec![];
    let mut pos = 0;
    while let Some(at) = pdf[pos..].windows(7).position(|w| w == b"stream\n") {
        let start = pos + at + 7;
        if pdf[..start - 7].ends_with(b"end") {
            pos = start;
            continue;
        }
        let len = pdf[start..]
            .windows(9)
            .position(|w| w == b"endstream")
            .unwrap();
        out.push(pdf[start..start + len].to_vec());
        pos = start + len + 9;
    }
    out
}

/// Object and cross-reference streams (what Word, browsers, LibreOffice and pdfTeX write): the
/// Info dictionary, catalog and page are in an object stream. The output is a classic file of
/// plain objects; the page content stream is copied byte for byte.
#[tokio::test]
async fn pdf_with_object_streams() {
    for (name, names) in [
        ("report-objstm.pdf", &["pdf-info", "xmp"][..]),
        // the first-page cross-reference section of linearization: an earlier section
        (
            "report-objstm-linearized.pdf",
            &["pdf-info", "xmp", "pdf-history"],
        ),
    ] {
        let input = pdf_fixture(name);
        assert!(contains(&input, b"/Type /ObjStm") && contains(&input, b"/Type /XRef"));
        let out = strip_ok("application/pdf", &input, names).await;
        assert_absent(
            &out,
            &[
                "Jane",
                "TarnWriter",
                "Q3 numbers",
                "tarn sample",
                "xpacket",
                "/Info",
                "/Metadata",
                "/ObjStm",
                "/XRef",
                "/Linearized",
            ],
        );
        let text = String::from_utf8_lossy(&out);
        assert_eq!(text.matches("\nxref\n").count(), 1, "{name}");
        assert!(text.contains("/Type /Catalog") && text.contains("/Type /Page "));
        // the page content: qpdf deflated it, and it is kept as it is (qpdf writes no end of
        // line before endstream, the stripper one)
        let kept = stream_datas(&out);
        assert_eq!(kept.len(), 1, "{name}: only the page content: {text}");
        let kept = kept[0].strip_suffix(b"\n").unwrap();
        assert!(kept.starts_with(b"x\x9c"));
        assert!(stream_datas(&input).iter().any(|d| d == kept), "{name}");
        if let Some(report) = exiftool(&out) {
            assert_no_groups(&report, &["XMP"]);
            let pdf = group(&report, "PDF").join("\n");
            for tag in ["Author", "Creator", "Producer", "Title"] {
                assert!(!pdf.contains(tag), "{report}");
            }
            assert!(pdf.contains("PageCount : 1"), "{report}");
        }
        // qpdf, where installed, reads the output as a sound file
        if Command::new("qpdf").arg("--version").output().is_ok() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("out.pdf");
            std::fs::write(&path, &out).unwrap();
            let check = Command::new("qpdf")
                .arg("--check")
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                check.status.success(),
                "{name}: qpdf --check: {}{}",
                String::from_utf8_lossy(&check.stdout),
                String::from_utf8_lossy(&check.stderr)
            );
        }
    }
}

// --- WebP, GIF

/// (fourcc, data) of each top-level RIFF chunk.
fn riff_chunks(w: &[u8]) -> Vec<([u8; 4], Vec<u8>)> {
    let mut pos = 12;
    let mut chunks = vec![];
    while pos + 8 <= w.len() {
        let typ: [u8; 4] = w[pos..pos + 4].try_into().unwrap();
        let len = u32::from_le_bytes(w[pos + 4..pos + 8].try_into().unwrap()) as usize;
        chunks.push((typ, w[pos + 8..pos + 8 + len].to_vec()));
        pos += 8 + len + (len & 1);
    }
    chunks
}

#[tokio::test]
async fn webp_fixtures() {
    for name in ["lossy.webp", "lossless-alpha.webp"] {
        let input = fixture(name);
        let out = strip_ok("image/webp", &input, &["exif", "gps", "xmp"]).await;
        assert_absent(&out, &["SN-0042-SECRET", "Jane", "TarnCam", "XMP "]);
        let image = |w: &[u8]| -> Vec<([u8; 4], Vec<u8>)> {
            riff_chunks(w)
                .into_iter()
                .filter(|(t, _)| matches!(t, b"VP8 " | b"VP8L" | b"ALPH" | b"ICCP"))
                .collect()
        };
        assert_eq!(image(&input), image(&out), "{name}");
        assert_eq!(
            u32::from_le_bytes(out[4..8].try_into().unwrap()) as usize,
            out.len() - 8
        );
        // VP8X: EXIF flag (the Orientation is kept), no XMP flag
        assert_eq!(&out[12..16], b"VP8X");
        assert_eq!(out[20] & 0x0C, 0x08, "{name}");
        if let Some(report) = exiftool(&out) {
            assert_no_groups(&report, &["GPS", "XMP", "ExifIFD"]);
            assert_eq!(
                group(&report, "IFD0"),
                ["Orientation : Rotate 180"],
                "{name}: {report}"
            );
            assert!(!report.contains("WebP_Flags : XMP"), "{report}");
        }
    }
}

#[tokio::test]
async fn gif_fixture() {
    let input = fixture("comment-xmp.gif");
    let out = strip_ok("image/gif", &input, &["comment", "xmp", "gif-app"]).await;
    assert_absent(
        &out,
        &["Jane", "SN-0042-SECRET", "XMP DataXMP", "TARNTRACKER"],
    );
    // the image descriptor and its data are kept byte for byte
    let image = |g: &[u8]| g[g.iter().rposition(|&b| b == 0x2C).unwrap()..].to_vec();
    assert!(out.ends_with(&image(&input)));
    if let Some(report) = exiftool(&out) {
        assert_no_groups(&report, &["XMP"]);
        assert!(!report.contains("Comment"), "{report}");
        assert!(report.contains("[GIF]"), "{report}");
    }
}

// --- types, malformed inputs

#[tokio::test]
async fn types_without_metadata_pass_and_unknown_types_are_refused() {
    for (ct, body) in [
        ("text/plain", &b"name,place\nJane,home\n"[..]),
        ("text/csv", b"a,b\n"),
        ("application/octet-stream", b"\x00\x01\x02"),
    ] {
        let (verdict, d) = run(ct, body).await;
        assert_eq!(verdict, Verdict::Continue);
        assert_eq!(d.body.as_ref(), body);
        assert!(d.metadata_removed.is_empty());
    }
    for ct in [
        "image/heic",
        "image/tiff",
        "application/zip",
        "application/gzip",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ] {
        let (verdict, _) = run(ct, b"whatever").await;
        assert_eq!(
            verdict,
            Verdict::Quarantine(format!(
                "no metadata stripper for {ct}: refusing to pass it through"
            ))
        );
    }
    // JSON documents are left alone, whatever their bytes
    let mut d = doc(
        "application/json",
        Some("application/json"),
        &sample("photo.jpg"),
    );
    assert_eq!(
        Strip::new().process(&mut d).await.unwrap(),
        Verdict::Continue
    );
    assert_eq!(d.body.as_ref(), sample("photo.jpg").as_slice());
    let mut d = doc("image/jpeg", None, &sample("photo.jpg"));
    d.records = Some(vec![]);
    Strip::new().process(&mut d).await.unwrap();
    assert!(d.metadata_removed.is_empty());
    // without validate's detected type: the bytes say what they are
    let mut d = doc("image/png", None, &sample("photo.jpg"));
    assert_eq!(
        Strip::new().process(&mut d).await.unwrap(),
        Verdict::Continue
    );
    assert!(d.metadata_removed.contains(&"exif".to_string()));
    let mut d = doc("image/heic", None, b"\x00\x00\x00\x18ftypheic");
    assert!(matches!(
        Strip::new().process(&mut d).await.unwrap(),
        Verdict::Quarantine(_)
    ));
}

fn all_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("image/jpeg", sample("photo.jpg")),
        ("image/png", sample("diagram.png")),
        ("application/pdf", sample("report.pdf")),
        ("application/pdf", pdf_fixture("report-objstm.pdf")),
        ("image/webp", fixture("lossy.webp")),
        ("image/webp", fixture("lossless-alpha.webp")),
        ("image/gif", fixture("comment-xmp.gif")),
    ]
}

/// Past its time budget a strip stops and the document is quarantined with a reason naming the
/// budget; within it the same files are stripped.
#[tokio::test]
async fn a_strip_over_its_time_budget_is_quarantined() {
    let none = Strip::with_limits(Limits {
        strip_budget: std::time::Duration::ZERO,
        ..Limits::default()
    });
    assert_eq!(Limits::default().strip_budget.as_secs(), 30);
    for (ct, input) in all_files() {
        let (verdict, _) = run(ct, &input).await;
        assert_eq!(verdict, Verdict::Continue, "{ct}");
        let mut d = doc(ct, Some(ct), &input);
        let verdict = none.process(&mut d).await.unwrap();
        let format = ct.rsplit('/').next().unwrap();
        assert_eq!(
            verdict,
            Verdict::Quarantine(format!(
                "{format}: stripping took longer than its time budget of 0ns: refusing the document"
            )),
            "{ct}"
        );
        assert_eq!(d.body.as_ref(), input.as_slice(), "{ct}");
        assert!(d.metadata_removed.is_empty(), "{ct}");
    }
}

#[tokio::test]
async fn every_truncation_is_quarantined() {
    for (ct, input) in all_files() {
        // a PDF cut after its %%EOF (its last newline) is still whole
        let complete = match ct {
            "application/pdf" => input.windows(5).rposition(|w| w == b"%%EOF").unwrap() + 5,
            _ => input.len(),
        };
        for n in 0..input.len() {
            let (verdict, d) = run(ct, &input[..n]).await;
            if n < complete {
                let Verdict::Quarantine(reason) = &verdict else {
                    panic!("{ct} cut at {n}: {verdict:?}")
                };
                assert!(
                    reason.starts_with(ct.rsplit('/').next().unwrap()),
                    "{reason}"
                );
                assert!(!reason.contains("Jane"));
            } else {
                assert_eq!(verdict, Verdict::Continue, "{ct} cut at {n}");
                assert!(!contains(&d.body, b"Jane"));
            }
        }
    }
}

#[test]
fn bogus_lengths_are_errors() {
    let l = Limits::default();
    // JPEG: the first segment's length past the end, and zero
    let mut j = sample("photo.jpg");
    for len in [[0xFF, 0xFF], [0x00, 0x00], [0x00, 0x01]] {
        j[4..6].copy_from_slice(&len);
        assert!(strip_jpeg(&j, &l).is_err());
    }
    // PNG: a chunk length past the end, and one over 2^31
    let mut p = sample("diagram.png");
    for len in [[0x00, 0x01, 0x00, 0x00], [0xFF, 0xFF, 0xFF, 0xFF]] {
        p[8..12].copy_from_slice(&len);
        assert!(strip_png(&p, &l).is_err());
    }
    // PDF: a stream /Length past the end
    let mut pdf = sample("report.pdf");
    let at = pdf.windows(13).position(|w| w == b"/Length 46 >>").unwrap();
    pdf[at..at + 13].copy_from_slice(b"/Length 999>>");
    let e = strip_pdf(&pdf, &l).unwrap_err();
    assert!(matches!(e, StripError::Truncated { .. }), "{e}");
}

/// A deterministic stand-in for the fuzz targets that runs on stable in CI: random byte flips,
/// insertions, deletions and length-field rewrites of every sample. Each result is an error or a
/// stripped file whose second strip is the same bytes and removes nothing. More rounds:
/// `TARN_STRIP_MUTATIONS=100000`.
#[test]
fn mutations_never_panic_and_stay_idempotent() {
    let rounds: usize = std::env::var("TARN_STRIP_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let limits = Limits::default();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for (ct, input) in all_files() {
        let (mut ok, mut err) = (0, 0);
        for _ in 0..rounds {
            let mut m = input.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % m.len().max(1);
                match next() % 5 {
                    0 => m[at] = next() as u8,
                    1 => m[at] ^= 1 << (next() % 8),
                    2 => m.insert(at, next() as u8),
                    3 if m.len() > 1 => drop(m.remove(at)),
                    _ => m[at] = [0x00, 0xFF, 0x7F, 0x80][(next() % 4) as usize],
                }
            }
            if ct == "image/png" && next() % 2 == 0 {
                fix_png_crcs(&mut m);
            }
            match tarn_lake::strip::strip(ct, &m, &limits) {
                Ok(Some(s)) => {
                    ok += 1;
                    let again = tarn_lake::strip::strip(ct, &s.bytes, &limits)
                        .unwrap_or_else(|e| panic!("{ct}: the stripped output does not strip: {e}"))
                        .unwrap();
                    assert_eq!(again.bytes, s.bytes, "{ct}: not idempotent");
                    assert!(
                        again.removed.is_empty(),
                        "{ct}: second strip removed {:?}",
                        again.removed
                    );
                }
                Ok(None) => unreachable!(),
                Err(_) => err += 1,
            }
        }
        eprintln!("{ct}: {ok} stripped, {err} refused");
    }
}
