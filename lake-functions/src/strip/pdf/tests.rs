use super::*;

/// A PDF with these objects (numbered from 1) and trailer entries (besides /Size).
fn pdf(objects: &[&[u8]], trailer: &str) -> Vec<u8> {
    let mut out = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = vec![];
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(o);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} {trailer} >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn strip(input: &[u8]) -> Result<Stripped, StripError> {
    strip_pdf(input, &Limits::default())
}

const PAGE: &[&[u8]] = &[
    b"<< /Type /Catalog /Pages 2 0 R /Metadata 6 0 R >>",
    b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
    b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 100] /Contents 4 0 R /PieceInfo << /App << /Private (Jane's layers) >> >> >>",
    b"<< /Length 5 0 R >>\nstream\nBT (hello) Tj ET\nendstream",
    b"16",
    b"<< /Type /Metadata /Subtype /XML /Length 16 >>\nstream\n<x>Jane XMP</x>  \nendstream",
    b"<< /Author (Jane \\(the\\) Author) /Title <4a616e65> >>",
];

#[test]
fn strips_info_metadata_and_pieceinfo() {
    let input = pdf(PAGE, "/Root 1 0 R /Info 7 0 R /ID [<01> <02>]");
    let s = strip(&input).unwrap();
    assert_eq!(s.removed, ["pdf-info", "xmp", "pdf-pieceinfo"]);
    for secret in [
        &b"Jane"[..],
        b"4a616e65",
        b"Author",
        b"Metadata",
        b"PieceInfo",
        b"Info",
    ] {
        assert!(
            !contains(&s.bytes, secret),
            "{}",
            String::from_utf8_lossy(secret)
        );
    }
    assert!(contains(&s.bytes, b"stream\nBT (hello) Tj ET\nendstream"));
    assert!(contains(&s.bytes, b"/Length 16 >>"));
    let again = strip(&s.bytes).unwrap();
    assert_eq!(
        again.bytes,
        s.bytes,
        "{}",
        String::from_utf8_lossy(&again.bytes)
    );
    assert!(again.removed.is_empty(), "{:?}", again.removed);
}

#[test]
fn free_entries_may_have_any_generation() {
    // Pillow writes `0000000000 65536 f` for entry 0
    let replace = |from: &[u8], to: &[u8]| {
        let mut out = pdf(PAGE, "/Root 1 0 R");
        let at = out.windows(from.len()).position(|w| w == from).unwrap();
        out[at..at + from.len()].copy_from_slice(to);
        out
    };
    let s = strip(&replace(b"65535 f", b"65536 f")).unwrap();
    assert!(contains(&s.bytes, b"0000000000 65535 f"));
    assert!(strip(&replace(b"00000 n", b"65536 n")).is_err());
}

#[test]
fn the_output_is_a_whole_file() {
    let s = strip(&pdf(PAGE, "/Root 1 0 R /Info 7 0 R")).unwrap();
    let text = String::from_utf8_lossy(&s.bytes).into_owned();
    assert!(text.starts_with("%PDF-1.4\n"));
    assert_eq!(text.matches("\nxref\n").count(), 1, "{text}");
    assert_eq!(
        text.matches(" obj\n").count(),
        4,
        "catalog, pages, page, content: {text}"
    );
    // every offset points at its object
    let xref = Xref::read_for_test(&s.bytes);
    for (n, e) in &xref.entries {
        if *n > 0 {
            let Loc::At(offset) = e.loc else {
                panic!("{e:?}")
            };
            assert!(s.bytes[offset as usize..].starts_with(format!("{n} 0 obj").as_bytes()));
        }
    }
    assert!(!text.contains("/Prev"));
}

impl Xref<'_> {
    fn read_for_test(input: &[u8]) -> Xref<'_> {
        read_xref(
            input,
            &Limits::default(),
            &Deadline::start(&Limits::default()),
        )
        .unwrap()
    }
}

#[test]
fn earlier_revisions_are_dropped() {
    // an incremental update that replaced the Info dictionary (what exiftool does)
    let mut input = pdf(
        &[
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [] /Count 0 >>",
            b"<< /Author (Old Jane) >>",
        ],
        "/Root 1 0 R /Info 3 0 R",
    );
    let prev = rfind(&input, b"\nxref\n").unwrap() + 1;
    let obj = input.len();
    input.extend_from_slice(
        b"3 0 obj\n<< /Author (New) >>\nendobj\n4 0 obj\n(orphan Jane)\nendobj\n",
    );
    let xref = input.len();
    input.extend_from_slice(
        format!("xref\n3 2\n{obj:010} 00000 n \n{:010} 00000 n \ntrailer\n<< /Size 5 /Root 1 0 R /Info 3 0 R /Prev {prev} >>\nstartxref\n{xref}\n%%EOF\n", obj + 35)
            .as_bytes(),
    );
    let s = strip(&input).unwrap();
    assert_eq!(s.removed, ["pdf-info", "pdf-history"]);
    assert!(!contains(&s.bytes, b"Jane") && !contains(&s.bytes, b"New"));
    assert!(strip(&s.bytes).unwrap().removed.is_empty());
}

#[test]
fn reference_loops_and_dangling_references() {
    let input = pdf(
        &[
            b"<< /Type /Catalog /Pages 2 0 R /Loop 1 0 R /Gone 9 0 R /OldGen 2 5 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 /Parent 2 0 R >>",
            b"<< /Type /Page /Parent 2 0 R /Self 3 0 R >>",
        ],
        "/Root 1 0 R",
    );
    let s = strip(&input).unwrap();
    assert!(contains(&s.bytes, b"/Loop 1 0 R /Gone null /OldGen null"));
    // a /Length that refers to its own object, or to a stream
    for length in ["1 0 R", "2 0 R", "-4", "99999999999999999999", "(7)"] {
        let obj = format!("<< /Type /Catalog /Length {length} >>\nstream\nabc\nendstream");
        let input = pdf(
            &[obj.as_bytes(), b"<< /Length 3 >>\nstream\nabc\nendstream"],
            "/Root 1 0 R",
        );
        assert!(strip(&input).is_err(), "{length}");
    }
    // a /Prev chain that loops
    let mut input = pdf(&[b"<< /Type /Catalog >>"], "/Root 1 0 R");
    let xref = rfind(&input, b"\nxref\n").unwrap() + 1;
    let tail =
        format!("trailer\n<< /Size 2 /Root 1 0 R /Prev {xref} >>\nstartxref\n{xref}\n%%EOF\n");
    let at = rfind(&input, b"trailer").unwrap();
    input.truncate(at);
    input.extend_from_slice(tail.as_bytes());
    let e = strip(&input).unwrap_err();
    assert!(e.to_string().contains("loops"), "{e}");
}

#[test]
fn unsafe_constructions_are_refused() {
    let refused = |input: Vec<u8>| match strip(&input) {
        Err(StripError::Refused { what, .. }) => what,
        other => panic!("{other:?}"),
    };
    let cat: &[u8] = b"<< /Type /Catalog >>";
    assert!(
        refused(pdf(&[cat], "/Root 1 0 R /Encrypt << /Filter /Standard >>")).contains("encrypted")
    );
    let ef = pdf(&[b"<< /Type /Catalog /Names << /EmbeddedFiles << /Names [(a.jpg) << /EF << /F 2 0 R >> >>] >> >> >>", b"<< /Length 1 >>\nstream\nx\nendstream"], "/Root 1 0 R");
    assert!(refused(ef).contains("embedded files"));
    // an embedded file in an object stream
    let ef = XrefStreamPdf::new()
        .compressed(1, b"<< /Type /Catalog /AF [<< /EF << /F 2 0 R >> >>] >>")
        .plain(2, b"<< /Length 1 >>\nstream\nx\nendstream")
        .build("/Root 1 0 R", None);
    assert!(refused(ef).contains("embedded files"));
    // encryption in a cross-reference stream's dictionary
    let enc = XrefStreamPdf::new()
        .compressed(1, cat)
        .build("/Root 1 0 R /Encrypt << /Filter /Standard >>", Some(12));
    assert!(refused(enc).contains("encrypted"));
}

#[test]
fn malformed_inputs_are_errors() {
    let input = pdf(PAGE, "/Root 1 0 R /Info 7 0 R");
    let complete = rfind(&input, b"%%EOF").unwrap() + 5;
    for n in 0..input.len() {
        let r = strip(&input[..n]);
        assert_eq!(r.is_ok(), n >= complete, "truncated at {n}: {r:?}");
    }
    // absurd stream length
    let big = pdf(
        &[
            b"<< /Type /Catalog /C 2 0 R >>",
            b"<< /Length 999999999999 >>\nstream\nabc\nendstream",
        ],
        "/Root 1 0 R",
    );
    assert!(matches!(strip(&big), Err(StripError::Truncated { .. })));
    // wrong length
    let wrong = pdf(
        &[
            b"<< /Type /Catalog /C 2 0 R >>",
            b"<< /Length 2 >>\nstream\nabc\nendstream",
        ],
        "/Root 1 0 R",
    );
    assert!(strip(&wrong).is_err());
    // xref offsets that point elsewhere
    let mut shifted = pdf(&[b"<< /Type /Catalog >>"], "/Root 1 0 R");
    shifted.splice(9..9, *b"  ");
    assert!(strip(&shifted).is_err());
    // deep nesting
    let deep = format!(
        "<< /Type /Catalog /A {}{} >>",
        "[".repeat(500),
        "]".repeat(500)
    );
    assert!(matches!(
        strip(&pdf(&[deep.as_bytes()], "/Root 1 0 R")),
        Err(StripError::TooLarge { .. })
    ));
    assert!(strip(&pdf(&[b"<< /Type /Catalog >>"], "/Info 1 0 R")).is_err());
    assert!(strip(b"%PDF-x\n").is_err());
}

#[test]
fn embedded_jpeg_images_are_stripped() {
    let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xFE, 0x00, 0x0A];
    jpeg.extend_from_slice(b"Jane Doe");
    jpeg.extend_from_slice(&[
        0xFF, 0xDA, 0x00, 0x08, 1, 1, 0, 0, 63, 0, 0x12, 0x34, 0xFF, 0xD9,
    ]);
    let mut image = format!(
        "<< /Type /XObject /Subtype /Image /Filter /DCTDecode /Length {} >>\nstream\n",
        jpeg.len()
    )
    .into_bytes();
    image.extend_from_slice(&jpeg);
    image.extend_from_slice(b"\nendstream");
    let input = pdf(&[b"<< /Type /Catalog /Im 2 0 R >>", &image], "/Root 1 0 R");
    let s = strip(&input).unwrap();
    assert_eq!(s.removed, ["comment"]);
    assert!(!contains(&s.bytes, b"Jane"));
    assert!(contains(
        &s.bytes,
        b"/Length 16 >>\nstream\n\xFF\xD8\xFF\xDA"
    ));
    assert_eq!(strip(&s.bytes).unwrap().bytes, s.bytes);
}

// --- PDF 1.5 compression: cross-reference streams and object streams

fn deflate(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A PDF 1.5 file: objects at the top level (`plain`) and in one object stream (`compressed`,
/// the object stream numbered after them), found through a cross-reference stream (numbered
/// after that) with /W [1 4 2].
#[derive(Default, Clone)]
struct XrefStreamPdf {
    plain: Vec<(u32, Vec<u8>)>,
    compressed: Vec<(u32, Vec<u8>)>,
    /// cross-reference entries written instead of the real ones
    overrides: Vec<(u32, Loc)>,
    /// the object stream's number (default: after the objects)
    objstm: Option<u32>,
}

impl XrefStreamPdf {
    fn new() -> Self {
        Self::default()
    }

    fn plain(mut self, num: u32, body: &[u8]) -> Self {
        self.plain.push((num, body.to_vec()));
        self
    }

    fn compressed(mut self, num: u32, body: &[u8]) -> Self {
        self.compressed.push((num, body.to_vec()));
        self
    }

    fn entry(mut self, num: u32, loc: Loc) -> Self {
        self.overrides.push((num, loc));
        self
    }

    fn objstm(mut self, num: u32) -> Self {
        self.objstm = Some(num);
        self
    }

    /// (object stream number, cross-reference stream number)
    fn numbers(&self) -> (u32, u32) {
        let max = self
            .plain
            .iter()
            .chain(&self.compressed)
            .map(|(n, _)| *n)
            .chain(self.objstm)
            .max()
            .unwrap_or(0);
        (self.objstm.unwrap_or(max + 1), max + 2)
    }

    /// The file up to its cross-reference: the objects and where they are.
    fn body(&self, version: &str) -> (Vec<u8>, BTreeMap<u32, Loc>) {
        let mut out = format!("%PDF-{version}\n%\u{e2}\u{e3}\n").into_bytes();
        let mut locs = BTreeMap::new();
        for (n, body) in &self.plain {
            locs.insert(*n, Loc::At(out.len() as u64));
            out.extend_from_slice(format!("{n} 0 obj\n").as_bytes());
            out.extend_from_slice(body);
            out.extend_from_slice(b"\nendobj\n");
        }
        let (objstm, _) = self.numbers();
        if !self.compressed.is_empty() {
            let (mut header, mut objects) = (String::new(), Vec::new());
            for (i, (n, body)) in self.compressed.iter().enumerate() {
                header.push_str(&format!("{n} {} ", objects.len()));
                objects.extend_from_slice(body);
                objects.push(b'\n');
                locs.insert(
                    *n,
                    Loc::In {
                        stream: objstm,
                        index: i as u32,
                    },
                );
            }
            let first = header.len();
            let data = deflate(&[header.as_bytes(), &objects].concat());
            locs.insert(objstm, Loc::At(out.len() as u64));
            out.extend_from_slice(
                format!(
                    "{objstm} 0 obj\n<< /Type /ObjStm /N {} /First {first} /Filter /FlateDecode /Length {} >>\nstream\n",
                    self.compressed.len(),
                    data.len()
                )
                .as_bytes(),
            );
            out.extend_from_slice(&data);
            out.extend_from_slice(b"\nendstream\nendobj\n");
        }
        for (n, loc) in &self.overrides {
            locs.insert(*n, *loc);
        }
        (out, locs)
    }

    /// Rows of /W [1 4 2] for `nums` (free when not in `locs`), with the PNG Up predictor when
    /// `up`.
    fn rows(locs: &BTreeMap<u32, Loc>, nums: impl Iterator<Item = u32>, up: bool) -> Vec<u8> {
        let mut out = vec![];
        let mut prev = [0u8; 7];
        for n in nums {
            let (t, a, b) = match locs.get(&n) {
                Some(Loc::At(o)) => (1u8, *o as u32, 0u16),
                Some(Loc::In { stream, index }) => (2, *stream, *index as u16),
                _ => (0, 0, if n == 0 { 65535 } else { 0 }),
            };
            let mut row = [0u8; 7];
            row[0] = t;
            row[1..5].copy_from_slice(&a.to_be_bytes());
            row[5..7].copy_from_slice(&b.to_be_bytes());
            if up {
                out.push(2);
                out.extend(row.iter().zip(prev).map(|(r, p)| r.wrapping_sub(p)));
            } else {
                out.extend_from_slice(&row);
            }
            prev = row;
        }
        out
    }

    /// The whole file with a cross-reference stream; `predictor`: its /Predictor (rows
    /// encoded with PNG Up from 10).
    fn build(&self, trailer: &str, predictor: Option<i64>) -> Vec<u8> {
        let (mut out, mut locs) = self.body("1.5");
        let (_, xref) = self.numbers();
        let at = out.len();
        locs.entry(xref).or_insert(Loc::At(at as u64));
        let up = predictor.is_some_and(|p| p >= 10);
        let data = deflate(&Self::rows(&locs, 0..xref + 1, up));
        let parms = predictor
            .map(|p| format!("/DecodeParms << /Predictor {p} /Columns 7 >> "))
            .unwrap_or_default();
        out.extend_from_slice(
            format!(
                "{xref} 0 obj\n<< /Type /XRef /Size {} /W [1 4 2] /Filter /FlateDecode {parms}/Length {} {trailer} >>\nstream\n",
                xref + 1,
                data.len()
            )
            .as_bytes(),
        );
        out.extend_from_slice(&data);
        out.extend_from_slice(format!("\nendstream\nendobj\nstartxref\n{at}\n%%EOF\n").as_bytes());
        out
    }

    /// A hybrid file: a classic table of the top-level objects (the compressed ones marked
    /// free), and /XRefStm, a cross-reference stream of the compressed ones (with /Index).
    fn hybrid(&self, trailer: &str) -> Vec<u8> {
        let (mut out, locs) = self.body("1.4");
        let (_, xref) = self.numbers();
        let compressed: Vec<u32> = self.compressed.iter().map(|(n, _)| *n).collect();
        let data = deflate(&Self::rows(&locs, compressed.iter().copied(), false));
        let index: Vec<String> = compressed.iter().map(|n| format!("{n} 1")).collect();
        let stm = out.len();
        out.extend_from_slice(
            format!(
                "{xref} 0 obj\n<< /Type /XRef /Size {} /W [1 4 2] /Index [{}] /Filter /FlateDecode /Length {} >>\nstream\n",
                xref + 1,
                index.join(" "),
                data.len()
            )
            .as_bytes(),
        );
        out.extend_from_slice(&data);
        out.extend_from_slice(b"\nendstream\nendobj\n");
        let table = out.len();
        out.extend_from_slice(format!("xref\n0 {}\n", xref + 1).as_bytes());
        for n in 0..=xref {
            let line = match locs.get(&n) {
                Some(Loc::At(o)) => format!("{o:010} 00000 n \n"),
                _ if n == xref => format!("{stm:010} 00000 n \n"),
                _ => "0000000000 65535 f \n".to_string(),
            };
            out.extend_from_slice(line.as_bytes());
        }
        out.extend_from_slice(
            format!(
                "trailer\n<< /Size {} /XRefStm {stm} {trailer} >>\nstartxref\n{table}\n%%EOF\n",
                xref + 1
            )
            .as_bytes(),
        );
        out
    }
}

/// The test document of PAGE, its catalog, page tree, page and Info dictionary in an object
/// stream; the page content (deflated) and the XMP stream at the top level.
fn compressed_page() -> (XrefStreamPdf, Vec<u8>) {
    let content = deflate(b"BT (hello) Tj ET");
    let mut stream = format!(
        "<< /Filter /FlateDecode /Length {} >>\nstream\n",
        content.len()
    )
    .into_bytes();
    stream.extend_from_slice(&content);
    stream.extend_from_slice(b"\nendstream");
    let file = XrefStreamPdf::new()
        .compressed(1, PAGE[0])
        .compressed(2, PAGE[1])
        .compressed(3, PAGE[2])
        .plain(4, &stream)
        .plain(6, PAGE[5])
        .compressed(
            7,
            b"<< /Author (Jane \\(the\\) Author) /Title <4a616e65> /Producer (SecretWriter 1.0) >>",
        );
    (file, content)
}

const SECRETS: &[&[u8]] = &[
    b"Jane",
    b"4a616e65",
    b"SecretWriter",
    b"Author",
    b"Metadata",
    b"PieceInfo",
    b"Info",
    b"ObjStm",
    b"XRef",
];

/// Strips `input` and checks: the names, no secret, the page content byte for byte, a classic
/// file of catalog, pages, page and content, and a second strip that changes nothing.
fn check_compressed(input: &[u8], content: &[u8]) -> Stripped {
    let s = strip(input).unwrap();
    assert_eq!(s.removed, ["pdf-info", "xmp", "pdf-pieceinfo"]);
    for secret in SECRETS {
        assert!(
            !contains(&s.bytes, secret),
            "{}",
            String::from_utf8_lossy(secret)
        );
    }
    let mut raw = b"stream\n".to_vec();
    raw.extend_from_slice(content);
    raw.extend_from_slice(b"\nendstream");
    assert!(contains(&s.bytes, &raw), "the page content is kept");
    let text = String::from_utf8_lossy(&s.bytes).into_owned();
    assert_eq!(text.matches(" obj\n").count(), 4, "{text}");
    assert_eq!(text.matches("\nxref\n").count(), 1, "{text}");
    assert!(text.contains("/Type /Page /Parent 2 0 R"), "{text}");
    let again = strip(&s.bytes).unwrap();
    assert_eq!(again.bytes, s.bytes, "{text}");
    assert!(again.removed.is_empty(), "{:?}", again.removed);
    s
}

#[test]
fn xref_streams_and_object_streams() {
    let (file, content) = compressed_page();
    let trailer = "/Root 1 0 R /Info 7 0 R /ID [<01> <02>]";
    for predictor in [None, Some(1), Some(12), Some(15)] {
        let input = file.build(trailer, predictor);
        let xref = Xref::read_for_test(&input);
        assert_eq!(
            xref.entries[&1].loc,
            Loc::In {
                stream: 8,
                index: 0
            }
        );
        assert!(get(&xref.trailer, b"W").is_none());
        assert_eq!(xref.containers, HashSet::from([8, 9]));
        let s = check_compressed(&input, &content);
        // the same as the classic file of the same objects
        assert!(s.bytes.starts_with(b"%PDF-1.5\n"));
    }
    // the same objects in a classic file strip to the same objects (but the header)
    let classic = strip(&file.build(trailer, None)).unwrap();
    let plain = {
        let mut f = XrefStreamPdf::new();
        for (n, b) in file.compressed.iter().chain(&file.plain) {
            f = f.plain(*n, b);
        }
        f.plain.sort();
        f.build(trailer, Some(12))
    };
    assert_eq!(strip(&plain).unwrap().bytes, classic.bytes);
}

#[test]
fn hybrid_files() {
    let (file, content) = compressed_page();
    let input = file.hybrid("/Root 1 0 R /Info 7 0 R");
    let xref = Xref::read_for_test(&input);
    assert_eq!(
        xref.entries[&3].loc,
        Loc::In {
            stream: 8,
            index: 2
        }
    );
    assert_eq!(xref.sections, 1);
    check_compressed(&input, &content);
    // a /Length in an object stream
    let mut file = file;
    file.plain.retain(|(n, _)| *n != 4);
    let file = file
        .plain(
            4,
            b"<< /Length 5 0 R >>\nstream\nBT (hello) Tj ET\nendstream",
        )
        .compressed(5, b"16");
    let s = strip(&file.hybrid("/Root 1 0 R /Info 7 0 R")).unwrap();
    assert!(contains(
        &s.bytes,
        b"/Length 16 >>\nstream\nBT (hello) Tj ET\nendstream"
    ));
    assert_eq!(s.removed, ["pdf-info", "xmp", "pdf-pieceinfo"]);
    // the XMP stream's /Length in an object stream too: not history
    let mut file = file;
    file.plain.retain(|(n, _)| *n != 6);
    let file = file.plain(
        6,
        b"<< /Type /Metadata /Subtype /XML /Length 9 0 R >>\nstream\n<x>Jane XMP</x>  \nendstream",
    );
    let file = file.compressed(9, b"16").objstm(10);
    let s = strip(&file.hybrid("/Root 1 0 R /Info 7 0 R")).unwrap();
    assert_eq!(s.removed, ["pdf-info", "xmp", "pdf-pieceinfo"]);
    assert!(!contains(&s.bytes, b"Jane"));
}

#[test]
fn an_incremental_update_over_a_compressed_file() {
    // a newer xref stream replaces the Info dictionary and the catalog; /Prev to the first
    let (file, _) = compressed_page();
    let mut input = file.build("/Root 1 0 R /Info 7 0 R", Some(12));
    let prev = rfind(&input, b"startxref\n").unwrap();
    let prev: usize = String::from_utf8_lossy(&input[prev + 10..])
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let update = XrefStreamPdf::new()
        .compressed(1, b"<< /Type /Catalog /Pages 2 0 R /Lang (en) >>")
        .compressed(7, b"<< /Author (Janet) >>")
        .objstm(19);
    let (body, mut locs) = update.body("1.5");
    // the update's objects at their place after the first file
    let header = b"%PDF-1.5\n%\xc3\xa2\xc3\xa3\n".len();
    let body = &body[header..];
    let shift = (input.len() - header) as u64;
    for loc in locs.values_mut() {
        if let Loc::At(o) = loc {
            *o += shift;
        }
    }
    input.extend_from_slice(body);
    let xref_num = 20;
    let at = input.len();
    locs.insert(xref_num, Loc::At(at as u64));
    let nums: Vec<u32> = locs.keys().copied().collect();
    let data = deflate(&XrefStreamPdf::rows(&locs, nums.iter().copied(), false));
    let index: Vec<String> = nums.iter().map(|n| format!("{n} 1")).collect();
    input.extend_from_slice(
        format!(
            "{xref_num} 0 obj\n<< /Type /XRef /Size 21 /Index [{}] /W [1 4 2] /Root 1 0 R /Info 7 0 R /Prev {prev} /Filter /FlateDecode /Length {} >>\nstream\n",
            index.join(" "),
            data.len()
        )
        .as_bytes(),
    );
    input.extend_from_slice(&data);
    input.extend_from_slice(format!("\nendstream\nendobj\nstartxref\n{at}\n%%EOF\n").as_bytes());
    let s = strip(&input).unwrap();
    assert_eq!(s.removed, ["pdf-info", "pdf-pieceinfo", "pdf-history"]);
    assert!(contains(&s.bytes, b"/Lang (en)"));
    for secret in SECRETS {
        assert!(
            !contains(&s.bytes, secret),
            "{}",
            String::from_utf8_lossy(secret)
        );
    }
    assert_eq!(strip(&s.bytes).unwrap().bytes, s.bytes);
}

#[test]
fn a_reference_to_a_container_reads_as_null() {
    let input = XrefStreamPdf::new()
        .compressed(1, b"<< /Type /Catalog /S 2 0 R /X 3 0 R >>")
        .build("/Root 1 0 R", None);
    let s = strip(&input).unwrap();
    assert!(
        contains(&s.bytes, b"/S null /X null"),
        "{}",
        String::from_utf8_lossy(&s.bytes)
    );
    assert!(s.removed.is_empty(), "{:?}", s.removed);
}

#[test]
fn malformed_compression_is_an_error() {
    let malformed = |input: &[u8]| match strip(input) {
        Err(StripError::Malformed { what, .. }) => what,
        other => panic!("{other:?}"),
    };
    let cat: &[u8] = b"<< /Type /Catalog /P 2 0 R >>";
    let file = XrefStreamPdf::new()
        .compressed(1, cat)
        .compressed(2, b"<< /Type /Pages /Kids [] /Count 0 >>");
    let good = file.build("/Root 1 0 R", Some(12));
    strip(&good).unwrap();
    // an object stream in an object stream, or in itself
    for stream in [1, 3] {
        let bad = file
            .clone()
            .entry(3, Loc::In { stream, index: 0 })
            .build("/Root 1 0 R", None);
        assert!(malformed(&bad).contains("object stream 3"), "{stream}");
    }
    // an object that is not where the entry says
    let bad = file
        .clone()
        .entry(
            2,
            Loc::In {
                stream: 1,
                index: 0,
            },
        )
        .build("/Root 1 0 R", None);
    assert!(malformed(&bad).contains("object stream 1"));
    let bad = file
        .clone()
        .entry(
            2,
            Loc::In {
                stream: 3,
                index: 9,
            },
        )
        .build("/Root 1 0 R", None);
    strip(&bad).unwrap();
    // bad /W, /Index, /Size, /Predictor
    let replace = |from: &str, to: &str| {
        let mut out = good.clone();
        let at = rfind(&out, from.as_bytes()).unwrap();
        out.splice(at..at + from.len(), to.bytes());
        out
    };
    for (from, to) in [
        ("/W [1 4 2]", "/W [1 9 2]"),
        ("/W [1 4 2]", "/W [0 0 0]"),
        ("/W [1 4 2]", "/W [1 4]"),
        ("/W [1 4 2]", "/W [1 -4 2]"),
        ("/W [1 4 2]", ""),
        ("/W [1 4 2]", "/W [1 4 2] /Index [0 99]"),
        ("/W [1 4 2]", "/W [1 4 2] /Index [0]"),
        ("/W [1 4 2]", "/W [1 4 2] /Index [4294967295 2]"),
        ("/Size 5", "/Size 99"),
        ("/Size 5", "/Size -1"),
        ("/Predictor 12", "/Predictor 7"),
        ("/Columns 7", "/Columns 6"),
        ("/Columns 7", "/Columns 9999"),
    ] {
        let e = strip(&replace(from, to)).unwrap_err();
        assert!(matches!(e, StripError::Malformed { .. }), "{to}: {e}");
    }
    // a /Length that is a reference, a stream that is not /Type /XRef, flate that is not
    let e = malformed(&replace("/Length", "/Length 1 0 R /L"));
    assert!(e.contains("/Length"), "{e}");
    assert!(malformed(&replace("/Type /XRef", "/Type /XRaf")).contains("not a cross-reference"));
    let mut bad = good.clone();
    let at = rfind(&bad, b">>\nstream\n").unwrap() + 10;
    bad[at] ^= 0xFF;
    assert!(malformed(&bad).contains("flate"));
    // the TIFF predictor and other filters are refused, not guessed
    for (from, to) in [
        ("/Predictor 12", "/Predictor 2"),
        ("/Filter /FlateDecode", "/Filter /LZWDecode"),
    ] {
        let e = strip(&replace(from, to)).unwrap_err();
        assert!(matches!(e, StripError::Refused { .. }), "{to}: {e}");
    }
    // the object stream's header
    let objstm = |n: &str, first: Option<&str>, data: &[u8]| {
        let data = deflate(data);
        let mut o = format!(
            "<< /Type /ObjStm /N {n} {} /Filter /FlateDecode /Length {} >>\nstream\n",
            first.map(|f| format!("/First {f}")).unwrap_or_default(),
            data.len()
        )
        .into_bytes();
        o.extend_from_slice(&data);
        o.extend_from_slice(b"\nendstream");
        XrefStreamPdf::new()
            .plain(1, b"<< /Type /Catalog /P 3 0 R >>")
            .plain(2, &o)
            .entry(
                3,
                Loc::In {
                    stream: 2,
                    index: 0,
                },
            )
            .build("/Root 1 0 R", None)
    };
    assert!(strip(&objstm("1", Some("4"), b"3 0 << /A 1 >>")).is_ok());
    for (n, first, data) in [
        ("2", Some("4"), &b"3 0 << /A 1 >>"[..]),
        ("1", Some("99"), b"3 0 << /A 1 >>"),
        ("1", None, b"3 0 << /A 1 >>"),
        ("(1)", Some("4"), b"3 0 << /A 1 >>"),
        ("1", Some("4"), b"3 9 << /A 1 >>"),
        ("1", Some("4"), b"3 0 << /A 1 "),
        ("1", Some("4"), b"3 0 (open"),
        ("1", Some("4"), b"9999999999 0"),
    ] {
        let e = malformed(&objstm(n, first, data));
        assert!(e.contains("object stream 2"), "{n} {first:?}: {e}");
    }
    // every truncation is an error, never a panic
    let complete = rfind(&good, b"%%EOF").unwrap() + 5;
    for n in 0..good.len() {
        assert_eq!(strip(&good[..n]).is_ok(), n >= complete, "{n}");
    }
}

#[test]
fn decompression_bombs_are_refused() {
    let bomb = deflate(&vec![b' '; 1 << 20]);
    let mut o = format!(
        "<< /Type /ObjStm /N 1 /First 4 /Filter /FlateDecode /Length {} >>\nstream\n",
        bomb.len()
    )
    .into_bytes();
    o.extend_from_slice(&bomb);
    o.extend_from_slice(b"\nendstream");
    let input = XrefStreamPdf::new()
        .plain(1, b"<< /Type /Catalog /P 3 0 R >>")
        .plain(2, &o)
        .entry(
            3,
            Loc::In {
                stream: 2,
                index: 0,
            },
        )
        .build("/Root 1 0 R", None);
    let small = Limits {
        max_pdf_stream_bytes: 1 << 19,
        ..Limits::default()
    };
    assert!(matches!(
        strip_pdf(&input, &small),
        Err(StripError::TooLarge { limit, .. }) if limit == 1 << 19
    ));
    let total = Limits {
        max_pdf_inflated_bytes: 1 << 19,
        ..Limits::default()
    };
    assert!(matches!(
        strip_pdf(&input, &total),
        Err(StripError::TooLarge { limit, .. }) if limit == 1 << 19
    ));
    // under the bounds: the header is blank, so object 3 is not there
    assert!(strip(&input).is_err());
    // entries past the bound
    let few = Limits {
        max_pdf_objects: 1,
        ..Limits::default()
    };
    assert!(matches!(
        strip_pdf(&input, &few),
        Err(StripError::TooLarge {
            what: "cross-reference entries",
            ..
        })
    ));
}

#[test]
fn mutations_of_compressed_files_never_panic() {
    let (file, _) = compressed_page();
    let limits = Limits::default();
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for input in [
        file.build("/Root 1 0 R /Info 7 0 R", Some(12)),
        file.hybrid("/Root 1 0 R /Info 7 0 R"),
    ] {
        for _ in 0..2000 {
            let mut m = input.clone();
            for _ in 0..1 + next() % 3 {
                let at = (next() as usize) % m.len();
                match next() % 4 {
                    0 => m[at] = next() as u8,
                    1 => m[at] ^= 1 << (next() % 8),
                    2 => m.insert(at, next() as u8),
                    _ => drop(m.remove(at)),
                }
            }
            if let Ok(s) = strip_pdf(&m, &limits) {
                let again = strip_pdf(&s.bytes, &limits).unwrap();
                assert_eq!(again.bytes, s.bytes);
                assert!(again.removed.is_empty());
            }
        }
    }
}

#[test]
fn markup_annotations_lose_their_author_and_dates() {
    let objects: &[&[u8]] = &[
        b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [6 0 R] >> >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 100] /Annots [4 0 R << /Subtype /Highlight /Rect [1 1 9 9] /QuadPoints [1 1 9 1 1 9 9 9] /T (Jane Highlighter) /CreationDate (D:20190102030405Z) /Contents (see here) >> 5 0 R 6 0 R] >>",
        b"<< /Type /Annot /Subtype /Text /Rect [10 10 30 30] /T <4a616e65> /M (D:20200102030405+01'00') /Contents (a note) /Popup 5 0 R >>",
        b"<< /Type /Annot /Subtype /Link /Rect [40 40 60 60] /M (D:20210102030405Z) /A << /S /URI /URI (https://example.com) >> >>",
        b"<< /Type /Annot /Subtype /Widget /FT /Tx /T (customer) /Rect [70 70 90 90] /V (x) >>",
    ];
    let input = pdf(objects, "/Root 1 0 R");
    let s = strip(&input).unwrap();
    assert_eq!(
        s.removed,
        ["pdf-annotation-author", "pdf-annotation-dates"],
        "{}",
        String::from_utf8_lossy(&s.bytes)
    );
    for secret in [
        &b"Jane"[..],
        b"4a616e65",
        b"D:2019",
        b"D:2020",
        b"/CreationDate",
    ] {
        assert!(
            !contains(&s.bytes, secret),
            "{}",
            String::from_utf8_lossy(secret)
        );
    }
    // the annotations' content is kept; not markup: the link's date and the field's name
    for kept in [
        &b"(see here)"[..],
        b"(a note)",
        b"/Subtype /Highlight",
        b"/Subtype /Text",
        b"(D:20210102030405Z)",
        b"/T (customer)",
    ] {
        assert!(
            contains(&s.bytes, kept),
            "{}: {}",
            String::from_utf8_lossy(kept),
            String::from_utf8_lossy(&s.bytes)
        );
    }
    let again = strip(&s.bytes).unwrap();
    assert_eq!(again.bytes, s.bytes);
    assert!(again.removed.is_empty(), "{:?}", again.removed);
}

/// A file of `rows - 1` objects (the catalog, then nulls) whose classic table (of `rows` rows)
/// is listed `sections` times, each section's /Prev the one before.
fn many_sections(rows: usize, sections: usize) -> Vec<u8> {
    let mut objects: Vec<&[u8]> = vec![b"<< /Type /Catalog >>"];
    objects.resize(rows - 1, b"null");
    let mut out = pdf(&objects, "/Root 1 0 R");
    let startxref = rfind(&out, b"startxref\n").unwrap();
    let first = rfind(&out, b"\nxref\n").unwrap() + 1;
    let table = String::from_utf8(out[first..startxref].to_vec()).unwrap();
    out.truncate(startxref);
    let mut prev = first;
    for _ in 1..sections {
        let at = out.len();
        out.extend_from_slice(
            table
                .replace(" >>", &format!(" /Prev {prev} >>"))
                .as_bytes(),
        );
        prev = at;
    }
    out.extend_from_slice(format!("startxref\n{prev}\n%%EOF\n").as_bytes());
    out
}

#[test]
fn cross_reference_rows_are_bounded_by_the_file_size_across_sections() {
    // at most the floor of rows: any file may list 4096
    let tight = Limits {
        pdf_bytes_per_xref_row: u64::MAX,
        ..Limits::default()
    };
    assert_eq!(PDF_XREF_ROWS_FLOOR, 4096);
    let one = many_sections(3000, 1);
    assert!(strip_pdf(&one, &tight).is_ok());
    // two sections of 3000 rows each are 6000 rows
    let two = many_sections(3000, 2);
    let e = strip_pdf(&two, &tight).unwrap_err();
    assert_eq!(
        e,
        StripError::TooLarge {
            format: F,
            what: "cross-reference rows",
            value: 6000,
            limit: 4096
        }
    );
    assert_eq!(
        e.to_string(),
        "pdf: cross-reference rows too large: 6000 > 4096"
    );
    // the default: one row per 4 bytes of the file (each classic row is 20)
    let s = strip(&two).unwrap();
    assert_eq!(s.removed, ["pdf-history"]);
    // a cross-reference stream's rows are counted before its data is inflated (this one's is
    // not even zlib)
    let mut input = b"%PDF-1.5\n1 0 obj\n<< /Type /Catalog >>\nendobj\n".to_vec();
    let at = input.len();
    input.extend_from_slice(
        format!(
            "2 0 obj\n<< /Type /XRef /Size 4100 /W [0 0 1] /Root 1 0 R /Filter /FlateDecode /Length 8 >>\nstream\nnot zlib\nendstream\nendobj\nstartxref\n{at}\n%%EOF\n"
        )
        .as_bytes(),
    );
    assert!(matches!(
        strip_pdf(&input, &tight),
        Err(StripError::TooLarge {
            what: "cross-reference rows",
            value: 4100,
            limit: 4096,
            ..
        })
    ));
    let e = strip(&input).unwrap_err();
    assert!(e.to_string().contains("bad flate data"), "{e}");
}

#[test]
fn a_spent_time_budget_stops_the_strip() {
    let none = Limits {
        strip_budget: std::time::Duration::ZERO,
        ..Limits::default()
    };
    let (file, _) = compressed_page();
    for input in [
        pdf(PAGE, "/Root 1 0 R /Info 7 0 R"),
        file.build("/Root 1 0 R /Info 7 0 R", Some(12)),
        many_sections(3000, 3),
    ] {
        assert!(strip(&input).is_ok());
        let e = strip_pdf(&input, &none).unwrap_err();
        assert!(
            matches!(e, StripError::OverBudget { format: "pdf", budget } if budget.is_zero()),
            "{e}"
        );
        assert!(e.to_string().contains("time budget"), "{e}");
    }
}
