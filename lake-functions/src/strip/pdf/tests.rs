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
            assert!(s.bytes[e.offset as usize..].starts_with(format!("{n} 0 obj").as_bytes()));
        }
    }
    assert!(!text.contains("/Prev"));
}

impl Xref<'_> {
    fn read_for_test(input: &[u8]) -> Xref<'_> {
        read_xref(input, &Limits::default()).unwrap()
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
    assert!(refused(pdf(&[cat], "/Root 1 0 R /XRefStm 99")).contains("cross-reference streams"));
    let ef = pdf(&[b"<< /Type /Catalog /Names << /EmbeddedFiles << /Names [(a.jpg) << /EF << /F 2 0 R >> >>] >> >> >>", b"<< /Length 1 >>\nstream\nx\nendstream"], "/Root 1 0 R");
    assert!(refused(ef).contains("embedded files"));
    let objstm = pdf(
        &[
            b"<< /Type /Catalog /X 2 0 R >>",
            b"<< /Type /ObjStm /N 0 /First 0 /Length 0 >>\nstream\n\nendstream",
        ],
        "/Root 1 0 R",
    );
    assert!(refused(objstm).contains("object streams"));
    // startxref pointing at an xref stream object
    let mut xs = pdf(
        &[cat, b"<< /Type /XRef /Length 0 >>\nstream\n\nendstream"],
        "/Root 1 0 R",
    );
    let obj2 = rfind(&xs, b"2 0 obj").unwrap();
    let at = rfind(&xs, b"startxref\n").unwrap();
    xs.truncate(at);
    xs.extend_from_slice(format!("startxref\n{obj2}\n%%EOF\n").as_bytes());
    assert!(refused(xs).contains("cross-reference streams"));
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
