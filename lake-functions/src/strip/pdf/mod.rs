//! PDF: a full rewrite. The classic cross-reference table(s) are read (following /Prev), the
//! objects reachable from the catalog are parsed, stripped of metadata and written out anew with
//! fresh numbers, a fresh xref table and a trailer without /Info. Streams are copied byte for
//! byte (never decoded), but for a JPEG image (sole filter DCTDecode), which is stripped like any
//! JPEG. Objects not reachable from the catalog (earlier revisions of incremental updates, the
//! Info dictionary, XMP streams) are not written, so their values are nowhere in the output.
//!
//! Refused (quarantined) rather than passed through: encryption, cross-reference streams and
//! object streams (PDF 1.5 compression), embedded files.

mod object;

use super::{Limits, Removed, StripError, Stripped, strip_jpeg};
use object::{Dict, Obj, Parser, get, is_ws, write};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};

pub(crate) const F: &str = "pdf";

/// Removes the trailer's Info dictionary (`pdf-info`), every /Metadata entry and every
/// /Type /Metadata stream (`xmp`), /PieceInfo application data (`pdf-pieceinfo`), the metadata
/// of embedded JPEG images (`exif`, `gps`, `xmp`, `comment`, ...), and objects no longer
/// referenced from the catalog: earlier revisions, linearization data (`pdf-history`).
pub fn strip_pdf(input: &[u8], limits: &Limits) -> Result<Stripped, StripError> {
    let version = header_version(input)?;
    let xref = read_xref(input, limits)?;
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
    let mut length_objects = HashSet::new();
    // objects referred to from the entries scrub removed
    let mut detached = Vec::new();
    let mut stack = vec![(*root_num, *root_gen)];
    while let Some((num, gen_)) = stack.pop() {
        if objects.contains_key(&num) || excluded.contains(&num) {
            continue;
        }
        let Some(entry) = xref
            .entries
            .get(&num)
            .filter(|e| e.in_use && e.gen_ == gen_)
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
        let mut ind = parse_indirect(input, num, entry, &xref, limits, &mut length_objects)?;
        if let (Obj::Dict(dict), Some(_)) = (&ind.obj, &ind.stream) {
            let typ = get(dict, b"Type");
            if typ.is_some_and(|t| t.is_name(b"Metadata")) {
                removed.add("xmp");
                excluded.insert(num);
                continue;
            }
            if typ.is_some_and(|t| t.is_name(b"ObjStm") || t.is_name(b"XRef")) {
                return Err(StripError::refused(
                    F,
                    "object streams (pdf 1.5 compression) are not supported",
                ));
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
                let stripped = strip_jpeg(data, limits).map_err(|e| {
                    StripError::malformed(F, format!("the jpeg image in object {num}: {e}"))
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
    let dropped = xref.entries.iter().any(|(n, e)| {
        e.in_use
            && *n != 0
            && !objects.contains_key(n)
            && !excluded.contains(n)
            && !length_objects.contains(n)
            && !detached.contains(n)
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

#[derive(Debug, Clone, Copy)]
struct Entry {
    offset: u64,
    gen_: u16,
    in_use: bool,
}

struct Xref<'a> {
    entries: HashMap<u32, Entry>,
    /// the newest trailer
    trailer: Dict<'a>,
    /// how many xref sections the /Prev chain had
    sections: usize,
}

fn read_xref<'a>(input: &'a [u8], limits: &Limits) -> Result<Xref<'a>, StripError> {
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
    let mut entries = HashMap::new();
    let mut trailer = None;
    let mut visited = HashSet::new();
    loop {
        if !visited.insert(offset) {
            return Err(StripError::malformed(
                F,
                "the /Prev chain of cross-reference tables loops",
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
        if !p.eat_keyword(b"xref") {
            let object = p.uint().is_some() && p.uint().is_some() && p.eat_keyword(b"obj");
            return Err(if object {
                StripError::refused(
                    F,
                    "cross-reference streams (pdf 1.5 compression) are not supported",
                )
            } else {
                StripError::malformed(F, format!("no cross-reference table at offset {offset}"))
            });
        }
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
            for num in first..first + count {
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
                // a newer section (read first) wins
                entries.entry(num as u32).or_insert(Entry {
                    offset: off,
                    gen_,
                    in_use,
                });
            }
        }
        let Obj::Dict(dict) = p.object(0)? else {
            return Err(StripError::malformed(F, "the trailer is not a dictionary"));
        };
        if get(&dict, b"Encrypt").is_some_and(|e| *e != Obj::Null) {
            return Err(StripError::refused(F, "the document is encrypted"));
        }
        if get(&dict, b"XRefStm").is_some() {
            return Err(StripError::refused(
                F,
                "cross-reference streams (pdf 1.5 compression) are not supported",
            ));
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
    Ok(Xref {
        entries,
        trailer: trailer.expect("one section read"),
        sections: visited.len(),
    })
}

fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}

struct Indirect<'a> {
    gen_: u16,
    obj: Obj<'a>,
    stream: Option<Cow<'a, [u8]>>,
}

fn parse_indirect<'a>(
    input: &'a [u8],
    num: u32,
    entry: &Entry,
    xref: &Xref,
    limits: &Limits,
    length_objects: &mut HashSet<u32>,
) -> Result<Indirect<'a>, StripError> {
    let mut p = object_at(input, num, entry, limits)?;
    let obj = p.object(0)?;
    let mut stream = None;
    if p.eat_keyword(b"stream") {
        let Obj::Dict(dict) = &obj else {
            return Err(StripError::malformed(
                F,
                format!("object {num}: a stream without a dictionary"),
            ));
        };
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
        let length = match get(dict, b"Length") {
            Some(Obj::Ref(n, g)) => {
                length_objects.insert(*n);
                let target = xref.entries.get(n).filter(|e| e.in_use && e.gen_ == *g);
                let Some(target) = target.filter(|_| *n != num) else {
                    return Err(StripError::malformed(
                        F,
                        format!("object {num}: /Length refers to no object"),
                    ));
                };
                let mut q = object_at(input, *n, target, limits)?;
                let value = q.object(0)?;
                if !q.eat_keyword(b"endobj") {
                    return Err(StripError::malformed(
                        F,
                        format!("object {n} (a /Length) has no endobj"),
                    ));
                }
                value.as_int()
            }
            Some(direct) => direct.as_int(),
            None => None,
        };
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
        stream = Some(Cow::Borrowed(&input[start..start + length]));
        p.pos = start + length;
        if !p.eat_keyword(b"endstream") {
            return Err(StripError::malformed(
                F,
                format!("object {num}: the stream does not end where its /Length says"),
            ));
        }
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
    let start = usize::try_from(entry.offset)
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

/// Drops /Metadata and /PieceInfo everywhere in `obj` (the references they held go to
/// `detached`); refuses file attachments.
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
            dict.retain(|(k, v)| {
                let name = match k.as_ref() {
                    b"Metadata" => "xmp",
                    b"PieceInfo" => "pdf-pieceinfo",
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
