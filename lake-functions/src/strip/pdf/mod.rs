//! PDF: a full rewrite. The cross-reference sections are read (following /Prev): classic tables,
//! cross-reference streams (PDF 1.5) and hybrid files (a table with /XRefStm). The objects
//! reachable from the catalog are parsed, those in object streams (/Type /ObjStm) decoded out of
//! them, stripped of metadata and written out anew as plain objects with fresh numbers, a classic
//! xref table and a trailer without /Info; the object and cross-reference streams themselves are
//! not written. Streams are copied byte for byte (never decoded), but for a JPEG image (sole
//! filter DCTDecode), which is stripped like any JPEG. Objects not reachable from the catalog
//! (earlier revisions of incremental updates, the Info dictionary, XMP streams) are not written,
//! so their values are nowhere in the output.
//!
//! Refused (quarantined) rather than passed through: encryption, embedded files, and object or
//! cross-reference streams with a filter other than FlateDecode or with the TIFF predictor (PNG
//! predictors are decoded). Inflating is bounded by [`Limits::max_pdf_stream_bytes`] and
//! [`Limits::max_pdf_inflated_bytes`]; the rows of all the cross-reference sections together by
//! the file's size ([`Limits::pdf_bytes_per_xref_row`]), counted before a section is read; the
//! whole work by [`Limits::strip_budget`], checked in every loop over objects, rows and inflated
//! bytes.

mod decode;
mod object;

use super::budget::Deadline;
use super::jpeg::strip_jpeg_within;
use super::{Limits, PDF_XREF_ROWS_FLOOR, Removed, StripError, Stripped};
use decode::decode;
use object::{Dict, Obj, Parser, get, is_ws, write};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};

pub(crate) const F: &str = "pdf";

/// Removes the trailer's Info dictionary (`pdf-info`), every /Metadata entry and every
/// /Type /Metadata stream (`xmp`), /PieceInfo application data (`pdf-pieceinfo`), the author
/// (`pdf-annotation-author`) and dates (`pdf-annotation-dates`) of markup annotations, the metadata
/// of embedded JPEG images (`exif`, `gps`, `xmp`, `comment`, ...), and objects no longer
/// referenced from the catalog: earlier revisions, linearization data (`pdf-history`).
pub fn strip_pdf(input: &[u8], limits: &Limits) -> Result<Stripped, StripError> {
    let deadline = Deadline::start(limits);
    let version = header_version(input)?;
    let xref = read_xref(input, limits, &deadline)?;
    let trailer = &xref.trailer;
    let Some(Obj::Ref(root_num, root_gen)) = get(trailer, b"Root") else {
        return Err(StripError::malformed(
            F,
            "the trailer has no /Root reference",
        ));
    };
    let mut removed = Removed::default();
    let mut excluded = HashSet::new();
    match get(trailer, b"Info") {
        Some(Obj::Ref(n, _)) => {
            excluded.insert(*n);
            removed.add("pdf-info");
        }
        Some(Obj::Dict(_)) => removed.add("pdf-info"),
        _ => {}
    }

    // the objects reachable from the catalog, stripped
    let mut objects: BTreeMap<u32, Indirect> = BTreeMap::new();
    let mut reader = Reader {
        input,
        xref: &xref,
        limits,
        length_objects: HashSet::new(),
        compressed: HashMap::new(),
        loaded: HashSet::new(),
        inflated: xref.inflated,
        deadline: &deadline,
    };
    // objects referred to from the entries scrub removed
    let mut detached = Vec::new();
    let mut stack = vec![(*root_num, *root_gen)];
    while let Some((num, gen_)) = stack.pop() {
        deadline.check(F)?;
        if objects.contains_key(&num) || excluded.contains(&num) {
            continue;
        }
        let Some(entry) = xref
            .entries
            .get(&num)
            .filter(|e| e.in_use() && e.gen_ == gen_)
        else {
            continue; // a reference to nothing reads as null
        };
        if objects.len() >= limits.max_pdf_objects {
            return Err(StripError::TooLarge {
                format: F,
                what: "reachable objects",
                value: objects.len() as u64 + 1,
                limit: limits.max_pdf_objects as u64,
            });
        }
        let mut ind = reader.object(num, entry)?;
        if let (Obj::Dict(dict), Some(_)) = (&ind.obj, &ind.stream) {
            let typ = get(dict, b"Type");
            if typ.is_some_and(|t| t.is_name(b"Metadata")) {
                removed.add("xmp");
                excluded.insert(num);
                continue;
            }
            // containers, never written: a reference to one reads as null
            if typ.is_some_and(|t| t.is_name(b"ObjStm") || t.is_name(b"XRef")) {
                excluded.insert(num);
                continue;
            }
            if typ.is_some_and(|t| t.is_name(b"EmbeddedFile")) {
                return Err(StripError::refused(
                    F,
                    "embedded files (attachments) may carry their own metadata",
                ));
            }
        }
        scrub(&mut ind.obj, &mut removed, &mut detached)?;
        if let (Obj::Dict(dict), Some(data)) = (&mut ind.obj, &mut ind.stream) {
            let filter = get(dict, b"Filter");
            let jpeg = filter.is_some_and(|f| match f {
                Obj::Array(a) => a.len() == 1 && a[0].is_name(b"DCTDecode"),
                f => f.is_name(b"DCTDecode"),
            });
            if jpeg {
                let stripped = strip_jpeg_within(data, limits, &deadline).map_err(|e| match e {
                    e @ StripError::OverBudget { .. } => e,
                    e => StripError::malformed(F, format!("the jpeg image in object {num}: {e}")),
                })?;
                for name in &stripped.removed {
                    removed.add(name);
                }
                if stripped.bytes != data.as_ref() {
                    *data = Cow::Owned(stripped.bytes);
                }
            }
            dict.retain(|(k, _)| k.as_ref() != b"Length");
            dict.push((Cow::Borrowed(b"Length"), Obj::Int(data.len() as i64)));
        }
        collect_refs(&ind.obj, &mut stack);
        objects.insert(num, ind);
    }
    if !objects.contains_key(root_num) {
        return Err(StripError::malformed(F, "the catalog (/Root) is missing"));
    }
    let detached: HashSet<u32> = detached.into_iter().map(|(n, _)| n).collect();
    // nor are the /Length objects of the streams it detached (XMP) history
    for n in &detached {
        if let Some(e) = xref.entries.get(n).filter(|e| matches!(e.loc, Loc::At(_)))
            && let Ok(mut p) = object_at(input, *n, e, limits)
            && let Ok(Obj::Dict(dict)) = p.object(0)
            && let Some(Obj::Ref(length, _)) = get(&dict, b"Length")
        {
            reader.length_objects.insert(*length);
        }
    }
    let dropped = xref.entries.iter().any(|(n, e)| {
        e.in_use()
            && *n != 0
            && !objects.contains_key(n)
            && !excluded.contains(n)
            && !reader.length_objects.contains(n)
            && !detached.contains(n)
            && !xref.containers.contains(n)
    });
    if xref.sections > 1 || dropped {
        removed.add("pdf-history");
    }

    // the whole file anew
    let numbers: HashMap<u32, (u32, u16)> = objects
        .iter()
        .enumerate()
        .map(|(i, (num, ind))| (*num, (i as u32 + 1, ind.gen_)))
        .collect();
    let renumber = |n: u32, g: u16| {
        numbers
            .get(&n)
            .filter(|(_, gen_)| *gen_ == g)
            .map(|(new, _)| *new)
    };
    let mut out = Vec::with_capacity(input.len() + 256);
    out.extend_from_slice(b"%PDF-");
    out.extend_from_slice(version);
    out.extend_from_slice(b"\n%\xE2\xE3\xCF\xD3\n");
    let mut offsets = Vec::with_capacity(objects.len());
    for (i, ind) in objects.values().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        write(&ind.obj, &mut out, &renumber);
        if let Some(data) = &ind.stream {
            out.extend_from_slice(b"\nstream\n");
            out.extend_from_slice(data);
            out.extend_from_slice(b"\nendstream");
        }
        out.extend_from_slice(b"\nendobj\n");
    }
    // the file identifier: from the content, so the same content gets the same identifier
    let id = hex::encode(&Sha256::digest(&out)[..16]);
    let xref_at = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f\r\n", offsets.len() + 1).as_bytes(),
    );
    for off in &offsets {
        out.extend_from_slice(format!("{off:010} 00000 n\r\n").as_bytes());
    }
    let root = renumber(*root_num, *root_gen).expect("the root is written");
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root {root} 0 R /ID [<{id}> <{id}>] >>\nstartxref\n{xref_at}\n%%EOF\n",
            offsets.len() + 1
        )
        .as_bytes(),
    );
    Ok(Stripped {
        bytes: out,
        removed: removed.into_vec(),
    })
}

/// `1.7` from `%PDF-1.7`.
fn header_version(input: &[u8]) -> Result<&[u8], StripError> {
    let Some(rest) = input.strip_prefix(b"%PDF-") else {
        return Err(StripError::malformed(F, "no %PDF- header"));
    };
    let end = rest
        .iter()
        .position(|&b| is_ws(b) || b == b'%')
        .unwrap_or(rest.len());
    let v = &rest[..end];
    let ok = v.len() <= 4
        && v.iter().filter(|&&b| b == b'.').count() == 1
        && v.iter().all(|b| b.is_ascii_digit() || *b == b'.')
        && v.first().is_some_and(u8::is_ascii_digit)
        && v.last().is_some_and(u8::is_ascii_digit);
    if !ok {
        return Err(StripError::malformed(F, "bad version in the %PDF- header"));
    }
    Ok(v)
}

/// Where an object is, per the cross-reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loc {
    Free,
    /// at this offset in the file
    At(u64),
    /// in object stream `stream`, its `index`th object (PDF 1.5)
    In {
        stream: u32,
        index: u32,
    },
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    loc: Loc,
    gen_: u16,
}

impl Entry {
    fn in_use(&self) -> bool {
        self.loc != Loc::Free
    }
}

struct Xref<'a> {
    entries: HashMap<u32, Entry>,
    /// the newest trailer (a cross-reference stream's dictionary without its stream entries)
    trailer: Dict<'a>,
    /// how many xref sections the /Prev chain had
    sections: usize,
    /// the cross-reference streams and the object streams: containers, never written
    containers: HashSet<u32>,
    /// the bytes the cross-reference streams inflated to
    inflated: u64,
}

/// The cross-reference rows a file may still list across all its sections.
struct RowBudget {
    left: u64,
    limit: u64,
    /// the bound's name in the error: `cross-reference entries` (the absolute bound, from
    /// [`Limits::max_pdf_objects`]) or `cross-reference rows` (the bound for the file's size)
    what: &'static str,
}

impl RowBudget {
    fn new(input: &[u8], limits: &Limits) -> Self {
        let absolute = (limits.max_pdf_objects as u64).saturating_mul(4);
        let for_size = PDF_XREF_ROWS_FLOOR
            .saturating_add(input.len() as u64 / limits.pdf_bytes_per_xref_row.max(1));
        let (limit, what) = if absolute <= for_size {
            (absolute, "cross-reference entries")
        } else {
            (for_size, "cross-reference rows")
        };
        Self {
            left: limit,
            limit,
            what,
        }
    }

    /// Counts `rows` more rows, refused past the bound (before they are read).
    fn take(&mut self, rows: u64) -> Result<(), StripError> {
        if rows > self.left {
            return Err(StripError::TooLarge {
                format: F,
                what: self.what,
                value: (self.limit - self.left).saturating_add(rows),
                limit: self.limit,
            });
        }
        self.left -= rows;
        Ok(())
    }
}

/// How many rows are read between two checks of the deadline.
const ROWS_PER_CHECK: u64 = 4096;

fn read_xref<'a>(
    input: &'a [u8],
    limits: &Limits,
    deadline: &Deadline,
) -> Result<Xref<'a>, StripError> {
    let Some(at) = rfind(input, b"startxref") else {
        return Err(StripError::truncated(F, "no startxref"));
    };
    let mut p = Parser::new(input, at + b"startxref".len(), limits.max_pdf_depth);
    let Some(mut offset) = p.uint() else {
        return Err(StripError::truncated(F, "no offset after startxref"));
    };
    while input.get(p.pos).is_some_and(|&b| is_ws(b)) {
        p.pos += 1;
    }
    if !input[p.pos..].starts_with(b"%%EOF") {
        return Err(StripError::truncated(F, "no %%EOF after startxref"));
    }
    let max_entries = limits.max_pdf_objects.saturating_mul(4);
    let mut rows = RowBudget::new(input, limits);
    let mut entries = HashMap::new();
    let mut trailer = None;
    let mut visited = HashSet::new();
    let mut containers = HashSet::new();
    let mut inflated = 0;
    loop {
        deadline.check(F)?;
        if !visited.insert(offset) {
            return Err(StripError::malformed(
                F,
                "the /Prev chain of cross-reference sections loops",
            ));
        }
        let start = usize::try_from(offset)
            .ok()
            .filter(|&o| o < input.len())
            .ok_or_else(|| {
                StripError::malformed(
                    F,
                    format!("cross-reference offset {offset} is past the end"),
                )
            })?;
        let mut p = Parser::new(input, start, limits.max_pdf_depth);
        let mut section = HashMap::new();
        let dict = if p.eat_keyword(b"xref") {
            let dict = read_table(&mut p, &mut section, &mut rows, deadline)?;
            refuse_encrypted(&dict)?;
            // a hybrid file: the table lists the objects outside object streams, the stream
            // at /XRefStm all of them; the table's entries in use win
            if let Some(at) = get(&dict, b"XRefStm") {
                let at = at
                    .as_int()
                    .and_then(|a| usize::try_from(a).ok())
                    .filter(|&a| a < input.len())
                    .ok_or_else(|| StripError::malformed(F, "bad /XRefStm in the trailer"))?;
                let (num, _) = read_xref_stream(
                    input,
                    at,
                    limits,
                    (&mut rows, deadline, &mut inflated),
                    &mut |num, e| {
                        if !section.get(&num).is_some_and(Entry::in_use) {
                            section.insert(num, e);
                        }
                    },
                )?;
                containers.insert(num);
            }
            dict
        } else {
            // a newer section (read first) wins, and within a section the first row
            let (num, mut dict) = read_xref_stream(
                input,
                start,
                limits,
                (&mut rows, deadline, &mut inflated),
                &mut |num, e| {
                    entries.entry(num).or_insert(e);
                },
            )?;
            containers.insert(num);
            dict.retain(|(k, _)| {
                !matches!(
                    k.as_ref(),
                    b"Type" | b"Length" | b"Filter" | b"DecodeParms" | b"W" | b"Index"
                )
            });
            dict
        };
        // a newer section (read first) wins
        for (num, e) in section {
            entries.entry(num).or_insert(e);
        }
        if entries.len() > max_entries {
            return Err(StripError::TooLarge {
                format: F,
                what: "cross-reference entries",
                value: entries.len() as u64,
                limit: max_entries as u64,
            });
        }
        let prev = get(&dict, b"Prev").map(|p| p.as_int().and_then(|p| u64::try_from(p).ok()));
        if trailer.is_none() {
            trailer = Some(dict);
        }
        match prev {
            None => break,
            Some(Some(p)) => offset = p,
            Some(None) => return Err(StripError::malformed(F, "bad /Prev in the trailer")),
        }
    }
    for e in entries.values() {
        if let Loc::In { stream, .. } = e.loc {
            containers.insert(stream);
        }
    }
    Ok(Xref {
        entries,
        trailer: trailer.expect("one section read"),
        sections: visited.len(),
        containers,
        inflated,
    })
}

fn refuse_encrypted(trailer: &Dict) -> Result<(), StripError> {
    if get(trailer, b"Encrypt").is_some_and(|e| *e != Obj::Null) {
        return Err(StripError::refused(F, "the document is encrypted"));
    }
    Ok(())
}

/// A classic cross-reference table after its `xref` keyword, up to its trailer dictionary.
fn read_table<'a>(
    p: &mut Parser<'a>,
    section: &mut HashMap<u32, Entry>,
    rows: &mut RowBudget,
    deadline: &Deadline,
) -> Result<Dict<'a>, StripError> {
    while !p.eat_keyword(b"trailer") {
        let (Some(first), Some(count)) = (p.uint(), p.uint()) else {
            return Err(StripError::malformed(
                F,
                format!("bad cross-reference subsection at offset {}", p.pos),
            ));
        };
        if first.saturating_add(count) > u32::MAX as u64 {
            return Err(StripError::malformed(
                F,
                "cross-reference subsection out of range",
            ));
        }
        rows.take(count)?;
        for num in first..first + count {
            if (num - first) % ROWS_PER_CHECK == 0 {
                deadline.check(F)?;
            }
            let (Some(off), Some(gen_)) = (p.uint(), p.uint()) else {
                return Err(StripError::malformed(
                    F,
                    format!("bad cross-reference entry at offset {}", p.pos),
                ));
            };
            let in_use = if p.eat_keyword(b"n") {
                true
            } else if p.eat_keyword(b"f") {
                false
            } else {
                return Err(StripError::malformed(
                    F,
                    format!("bad cross-reference entry at offset {}", p.pos),
                ));
            };
            // free entries' generations are not used (Pillow writes 65536 for entry 0)
            let gen_ = match u16::try_from(gen_) {
                Ok(g) => g,
                Err(_) if !in_use => u16::MAX,
                Err(_) => {
                    return Err(StripError::malformed(
                        F,
                        "cross-reference generation out of range",
                    ));
                }
            };
            let loc = if in_use { Loc::At(off) } else { Loc::Free };
            section.entry(num as u32).or_insert(Entry { loc, gen_ });
        }
    }
    let Obj::Dict(dict) = p.object(0)? else {
        return Err(StripError::malformed(F, "the trailer is not a dictionary"));
    };
    Ok(dict)
}

/// The cross-reference stream (PDF 32000-1 §7.5.8) at `start`: `n g obj << /Type /XRef ... >>`.
/// Gives each of its rows to `row` (in order) and returns its object number and dictionary.
/// Its rows are counted in `rows` before its data is inflated (into `inflated`).
fn read_xref_stream<'a>(
    input: &'a [u8],
    start: usize,
    limits: &Limits,
    (rows, deadline, inflated): (&mut RowBudget, &Deadline, &mut u64),
    row: &mut dyn FnMut(u32, Entry),
) -> Result<(u32, Dict<'a>), StripError> {
    let mut p = Parser::new(input, start, limits.max_pdf_depth);
    let num = p.uint().and_then(|n| u32::try_from(n).ok());
    let (Some(num), Some(_), true) = (num, p.uint(), p.eat_keyword(b"obj")) else {
        return Err(StripError::malformed(
            F,
            format!("no cross-reference table or stream at offset {start}"),
        ));
    };
    let not_xref = || {
        StripError::malformed(
            F,
            format!("object {num} at offset {start} is not a cross-reference stream"),
        )
    };
    let Obj::Dict(dict) = p.object(0)? else {
        return Err(not_xref());
    };
    if !get(&dict, b"Type").is_some_and(|t| t.is_name(b"XRef")) {
        return Err(not_xref());
    }
    refuse_encrypted(&dict)?;
    if !p.eat_keyword(b"stream") {
        return Err(not_xref());
    }
    let bad =
        |what: &str| StripError::malformed(F, format!("cross-reference stream {num}: {what}"));
    let length = match get(&dict, b"Length") {
        Some(Obj::Ref(..)) => return Err(bad("/Length is not a direct number")),
        Some(v) => v.as_int(),
        None => None,
    };
    let data = stream_data(input, &mut p, num, length)?;
    if !p.eat_keyword(b"endobj") {
        return Err(StripError::malformed(
            F,
            format!("object {num} has no endobj"),
        ));
    }
    let w = match get(&dict, b"W") {
        Some(Obj::Array(w)) if w.len() == 3 => w
            .iter()
            .map(|v| {
                v.as_int()
                    .filter(|n| (0..=8).contains(n))
                    .map(|n| n as usize)
            })
            .collect::<Option<Vec<_>>>(),
        _ => None,
    };
    let Some(w) = w.filter(|w| w.iter().sum::<usize>() > 0) else {
        return Err(bad("bad /W"));
    };
    let row_len = w.iter().sum::<usize>();
    let size = get(&dict, b"Size")
        .and_then(Obj::as_int)
        .and_then(|s| u32::try_from(s).ok())
        .ok_or_else(|| bad("bad /Size"))?;
    let index = match get(&dict, b"Index") {
        None => Some(vec![(0, size)]),
        Some(Obj::Array(a)) if a.len() % 2 == 0 => a
            .chunks(2)
            .map(|c| {
                let first = u32::try_from(c[0].as_int()?).ok()?;
                let count = u32::try_from(c[1].as_int()?).ok()?;
                first.checked_add(count).map(|_| (first, count))
            })
            .collect(),
        _ => None,
    };
    let Some(index) = index else {
        return Err(bad("bad /Index"));
    };
    let count: u64 = index.iter().map(|&(_, count)| count as u64).sum();
    rows.take(count)?;
    let data = decode(num, &dict, data, limits, deadline, inflated)?;
    if count.saturating_mul(row_len as u64) > data.len() as u64 {
        return Err(bad(&format!(
            "{count} entries of {row_len} bytes but {} bytes of data",
            data.len()
        )));
    }
    let field = |bytes: &[u8]| bytes.iter().fold(0u64, |v, &b| v << 8 | b as u64);
    let mut data_rows = data.chunks_exact(row_len);
    for (first, count) in index {
        for num in first..first + count {
            if ((num - first) as u64).is_multiple_of(ROWS_PER_CHECK) {
                deadline.check(F)?;
            }
            let Some(r) = data_rows.next() else {
                return Err(bad("fewer entries than its /Index says"));
            };
            let (a, rest) = r.split_at(w[0]);
            let (b, c) = rest.split_at(w[1]);
            let typ = if w[0] == 0 { 1 } else { field(a) };
            let (b, c) = (field(b), field(c));
            let entry = match typ {
                1 => Entry {
                    loc: Loc::At(b),
                    gen_: u16::try_from(c).map_err(|_| bad("generation out of range"))?,
                },
                2 => {
                    let (Ok(stream), Ok(index)) = (u32::try_from(b), u32::try_from(c)) else {
                        return Err(bad("object stream entry out of range"));
                    };
                    Entry {
                        loc: Loc::In { stream, index },
                        gen_: 0,
                    }
                }
                // 0, and unknown types: a reference to them is a reference to null
                _ => Entry {
                    loc: Loc::Free,
                    gen_: 0,
                },
            };
            row(num, entry);
        }
    }
    Ok((num, dict))
}

fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}

/// The data of stream object `num`, `p` just after its `stream` keyword: `length` bytes after
/// the end of line, then `endstream`.
fn stream_data<'a>(
    input: &'a [u8],
    p: &mut Parser<'a>,
    num: u32,
    length: Option<i64>,
) -> Result<&'a [u8], StripError> {
    match (input.get(p.pos), input.get(p.pos + 1)) {
        (Some(b'\r'), Some(b'\n')) => p.pos += 2,
        (Some(b'\n' | b'\r'), _) => p.pos += 1,
        _ => {
            return Err(StripError::malformed(
                F,
                format!("object {num}: no end of line after stream"),
            ));
        }
    }
    let Some(length) = length.and_then(|l| usize::try_from(l).ok()) else {
        return Err(StripError::malformed(
            F,
            format!("object {num}: a stream without a valid /Length"),
        ));
    };
    let start = p.pos;
    if length > input.len() - start {
        return Err(StripError::truncated(
            F,
            format!(
                "object {num}: stream claims {length} bytes, {} left",
                input.len() - start
            ),
        ));
    }
    p.pos = start + length;
    if !p.eat_keyword(b"endstream") {
        return Err(StripError::malformed(
            F,
            format!("object {num}: the stream does not end where its /Length says"),
        ));
    }
    Ok(&input[start..start + length])
}

struct Indirect<'a> {
    gen_: u16,
    obj: Obj<'a>,
    stream: Option<Cow<'a, [u8]>>,
}

/// Reads the objects the cross-reference points at, in the file or in object streams.
struct Reader<'a, 'x> {
    input: &'a [u8],
    xref: &'x Xref<'a>,
    limits: &'x Limits,
    /// the objects holding a stream's /Length
    length_objects: HashSet<u32>,
    /// the objects of the object streams read so far (owned: the decoded data is dropped)
    compressed: HashMap<u32, Obj<'static>>,
    /// the object streams read so far
    loaded: HashSet<u32>,
    /// the bytes the file's streams inflated to so far
    inflated: u64,
    deadline: &'x Deadline,
}

impl<'a> Reader<'a, '_> {
    /// Object `num` (`entry` in use).
    fn object(&mut self, num: u32, entry: &Entry) -> Result<Indirect<'a>, StripError> {
        match entry.loc {
            Loc::At(_) => self.parse_indirect(num, entry),
            Loc::In { stream, .. } => Ok(Indirect {
                gen_: 0,
                obj: self.in_object_stream(num, stream)?,
                stream: None,
            }),
            Loc::Free => Err(StripError::malformed(F, format!("object {num} is free"))),
        }
    }

    fn parse_indirect(&mut self, num: u32, entry: &Entry) -> Result<Indirect<'a>, StripError> {
        let mut p = object_at(self.input, num, entry, self.limits)?;
        let obj = p.object(0)?;
        let mut stream = None;
        if p.eat_keyword(b"stream") {
            let Obj::Dict(dict) = &obj else {
                return Err(StripError::malformed(
                    F,
                    format!("object {num}: a stream without a dictionary"),
                ));
            };
            let length = self.length(num, dict, true)?;
            stream = Some(Cow::Borrowed(stream_data(self.input, &mut p, num, length)?));
        }
        if !p.eat_keyword(b"endobj") {
            return Err(StripError::malformed(
                F,
                format!("object {num} has no endobj"),
            ));
        }
        Ok(Indirect {
            gen_: entry.gen_,
            obj,
            stream,
        })
    }

    /// The /Length of stream object `num`: direct, or an object in the file, or (when
    /// `compressed`) in an object stream.
    fn length(
        &mut self,
        num: u32,
        dict: &Dict,
        compressed: bool,
    ) -> Result<Option<i64>, StripError> {
        let (n, g) = match get(dict, b"Length") {
            Some(Obj::Ref(n, g)) => (*n, *g),
            Some(direct) => return Ok(direct.as_int()),
            None => return Ok(None),
        };
        self.length_objects.insert(n);
        let target = self
            .xref
            .entries
            .get(&n)
            .filter(|e| e.in_use() && e.gen_ == g && n != num)
            .copied();
        match target.map(|e| (e, e.loc)) {
            Some((e, Loc::At(_))) => {
                let mut q = object_at(self.input, n, &e, self.limits)?;
                let value = q.object(0)?;
                if !q.eat_keyword(b"endobj") {
                    return Err(StripError::malformed(
                        F,
                        format!("object {n} (a /Length) has no endobj"),
                    ));
                }
                Ok(value.as_int())
            }
            Some((_, Loc::In { stream, .. })) if compressed => {
                Ok(self.in_object_stream(n, stream)?.as_int())
            }
            _ => Err(StripError::malformed(
                F,
                format!("object {num}: /Length refers to no object"),
            )),
        }
    }

    /// Object `num`, which the cross-reference puts in object stream `stream`.
    fn in_object_stream(&mut self, num: u32, stream: u32) -> Result<Obj<'static>, StripError> {
        if self.loaded.insert(stream) {
            self.load(stream)?;
        }
        self.compressed.get(&num).cloned().ok_or_else(|| {
            StripError::malformed(F, format!("object {num} is not in object stream {stream}"))
        })
    }

    /// Decodes object stream `stream` (PDF 32000-1 §7.5.7) and parses the objects in it that
    /// the cross-reference puts there.
    fn load(&mut self, stream: u32) -> Result<(), StripError> {
        let bad = |what: &str| StripError::malformed(F, format!("object stream {stream}: {what}"));
        // not free, not itself in an object stream (nested, or in itself)
        let entry = match self.xref.entries.get(&stream) {
            Some(e) if matches!(e.loc, Loc::At(_)) => *e,
            _ => return Err(bad("not an object of the file")),
        };
        let mut p = object_at(self.input, stream, &entry, self.limits)?;
        let Obj::Dict(dict) = p.object(0)? else {
            return Err(bad("not a stream"));
        };
        if !get(&dict, b"Type").is_some_and(|t| t.is_name(b"ObjStm")) {
            return Err(bad("not /Type /ObjStm"));
        }
        if !p.eat_keyword(b"stream") {
            return Err(bad("not a stream"));
        }
        let length = self.length(stream, &dict, false)?;
        let data = stream_data(self.input, &mut p, stream, length)?;
        if !p.eat_keyword(b"endobj") {
            return Err(bad("no endobj"));
        }
        let data = decode(
            stream,
            &dict,
            data,
            self.limits,
            self.deadline,
            &mut self.inflated,
        )?;
        let count = get(&dict, b"N")
            .and_then(Obj::as_int)
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| bad("bad /N"))?;
        let first = get(&dict, b"First")
            .and_then(Obj::as_int)
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n <= data.len())
            .ok_or_else(|| bad("bad /First"))?;
        // N pairs of object number and offset (from /First)
        let mut header = Parser::new(&data[..first], 0, self.limits.max_pdf_depth);
        let mut pairs = Vec::new();
        for i in 0..count {
            if i % ROWS_PER_CHECK == 0 {
                self.deadline.check(F)?;
            }
            let (Some(num), Some(offset)) = (header.uint(), header.uint()) else {
                return Err(bad("fewer objects than its /N says"));
            };
            pairs.push((num, offset));
        }
        for (i, (num, offset)) in pairs.into_iter().enumerate() {
            if (i as u64).is_multiple_of(ROWS_PER_CHECK) {
                self.deadline.check(F)?;
            }
            let Ok(num) = u32::try_from(num) else {
                return Err(bad("object number out of range"));
            };
            let Some(Entry {
                loc: Loc::In { stream: s, index },
                ..
            }) = self.xref.entries.get(&num)
            else {
                continue;
            };
            // an object listed twice: the one at the entry's index
            if *s != stream || (self.compressed.contains_key(&num) && *index as usize != i) {
                continue;
            }
            let at = usize::try_from(offset)
                .ok()
                .and_then(|o| o.checked_add(first))
                .filter(|&at| at < data.len())
                .ok_or_else(|| bad(&format!("object {num} is past the end")))?;
            let obj = Parser::new(&data, at, self.limits.max_pdf_depth)
                .object(0)
                .map_err(|e| match e {
                    StripError::Malformed { what, .. } | StripError::Truncated { what, .. } => {
                        bad(&format!("object {num}: {what}"))
                    }
                    e => e,
                })?;
            self.compressed.insert(num, obj.into_owned());
        }
        Ok(())
    }
}

/// A parser placed after `num gen obj` at the entry's offset.
fn object_at<'a>(
    input: &'a [u8],
    num: u32,
    entry: &Entry,
    limits: &Limits,
) -> Result<Parser<'a>, StripError> {
    let bad = || {
        StripError::malformed(
            F,
            format!("the cross-reference entry of object {num} does not point at it"),
        )
    };
    let Loc::At(offset) = entry.loc else {
        return Err(bad());
    };
    let start = usize::try_from(offset)
        .ok()
        .filter(|&o| o < input.len())
        .ok_or_else(bad)?;
    let mut p = Parser::new(input, start, limits.max_pdf_depth);
    let (n, g) = (p.uint(), p.uint());
    if n != Some(num as u64) || g != Some(entry.gen_ as u64) || !p.eat_keyword(b"obj") {
        return Err(bad());
    }
    Ok(p)
}

/// Drops /Metadata and /PieceInfo everywhere in `obj`, and the author (/T) and dates (/M,
/// /CreationDate) of markup annotations (the references they held go to `detached`); refuses
/// file attachments.
fn scrub(
    obj: &mut Obj,
    removed: &mut Removed,
    detached: &mut Vec<(u32, u16)>,
) -> Result<(), StripError> {
    match obj {
        Obj::Dict(dict) => {
            if get(dict, b"EF").is_some() {
                return Err(StripError::refused(
                    F,
                    "embedded files (attachments) may carry their own metadata",
                ));
            }
            let markup = is_markup_annotation(dict);
            dict.retain(|(k, v)| {
                let name = match k.as_ref() {
                    b"Metadata" => "xmp",
                    b"PieceInfo" => "pdf-pieceinfo",
                    b"T" if markup => "pdf-annotation-author",
                    b"M" | b"CreationDate" if markup => "pdf-annotation-dates",
                    _ => return true,
                };
                removed.add(name);
                collect_refs(v, detached);
                false
            });
            for (_, v) in dict.iter_mut() {
                scrub(v, removed, detached)?;
            }
        }
        Obj::Array(items) => {
            for v in items {
                scrub(v, removed, detached)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The subtypes of markup annotations (PDF 32000-1 §12.5.6.2, and Projection of PDF 2.0): the
/// ones that carry an author (/T) and dates (/M, /CreationDate).
const MARKUP_SUBTYPES: &[&[u8]] = &[
    b"Text",
    b"FreeText",
    b"Line",
    b"Square",
    b"Circle",
    b"Polygon",
    b"PolyLine",
    b"Highlight",
    b"Underline",
    b"Squiggly",
    b"StrikeOut",
    b"Caret",
    b"Stamp",
    b"Ink",
    b"FileAttachment",
    b"Sound",
    b"Redact",
    b"Projection",
];

/// An annotation dictionary (/Type /Annot or no /Type, and the /Rect every annotation has)
/// with a markup /Subtype. Form fields' widgets, whose /T is the field's name, are not markup.
fn is_markup_annotation(dict: &Dict) -> bool {
    get(dict, b"Type").is_none_or(|t| t.is_name(b"Annot"))
        && get(dict, b"Rect").is_some()
        && get(dict, b"Subtype").is_some_and(|s| MARKUP_SUBTYPES.iter().any(|m| s.is_name(m)))
}

fn collect_refs(obj: &Obj, stack: &mut Vec<(u32, u16)>) {
    match obj {
        Obj::Ref(n, g) => stack.push((*n, *g)),
        Obj::Dict(dict) => dict.iter().for_each(|(_, v)| collect_refs(v, stack)),
        Obj::Array(items) => items.iter().for_each(|v| collect_refs(v, stack)),
        _ => {}
    }
}

#[cfg(test)]
mod tests;
