//! PNG: chunks are walked (lengths and CRCs checked) and copied whole, CRC included, when they
//! affect how the image decodes or displays; the rest is dropped. Bytes after IEND are dropped.

use super::budget::Deadline;
use super::{Limits, Removed, StripError, Stripped, crc, tag_name};

const F: &str = "png";
const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
const XMP_KEYWORD: &[u8] = b"XML:com.adobe.xmp";

/// Chunks kept: the critical ones, transparency, colour (ICC, sRGB, gamma, chromaticities, HDR
/// signalling), physical size, significant bits, background, histogram, and APNG animation.
const KEEP: &[&[u8; 4]] = &[
    b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"iCCP", b"sRGB", b"gAMA", b"cHRM", b"pHYs",
    b"sBIT", b"bKGD", b"hIST", b"cICP", b"mDCV", b"mDCv", b"cLLI", b"cLLi", b"acTL", b"fcTL",
    b"fdAT",
];

/// Removes eXIf (`exif`), tEXt and zTXt (`png-text`), iTXt (`xmp` for the XMP packet,
/// `png-text` otherwise), tIME (`png-time`), every other ancillary chunk (`png-<type>`: sPLT,
/// dSIG, caBX, vendor chunks...) and bytes after IEND (`trailer`). An unknown critical chunk is
/// refused (a decoder could not show the image without it).
pub fn strip_png(input: &[u8], limits: &Limits) -> Result<Stripped, StripError> {
    if !input.starts_with(SIGNATURE) {
        return Err(StripError::malformed(F, "no png signature"));
    }
    let mut out = Vec::with_capacity(input.len());
    let mut removed = Removed::default();
    out.extend_from_slice(SIGNATURE);
    let mut pos = SIGNATURE.len();
    let mut first = true;
    let deadline = Deadline::start(limits);
    loop {
        deadline.check(F)?;
        let Some(head) = input.get(pos..pos + 8) else {
            return Err(StripError::truncated(
                F,
                format!("chunk header at offset {pos} cut (no iend)"),
            ));
        };
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let typ: [u8; 4] = [head[4], head[5], head[6], head[7]];
        if !typ.iter().all(u8::is_ascii_alphabetic) {
            return Err(StripError::malformed(
                F,
                format!("chunk at offset {pos} has an invalid type"),
            ));
        }
        let name = tag_name(&typ);
        if len > 0x7FFF_FFFF {
            return Err(StripError::malformed(
                F,
                format!("chunk {name} at offset {pos} has length {len}"),
            ));
        }
        let end = pos + 12 + len as usize;
        if end > input.len() {
            return Err(StripError::truncated(
                F,
                format!(
                    "chunk {name} at offset {pos} claims {len} bytes, {} left",
                    input.len() - pos - 8
                ),
            ));
        }
        let data = &input[pos + 8..end - 4];
        let stored = u32::from_be_bytes(input[end - 4..end].try_into().expect("4 bytes"));
        if crc::update(0, &input[pos + 4..end - 4]) != stored {
            return Err(StripError::malformed(
                F,
                format!("chunk {name} at offset {pos} fails its crc"),
            ));
        }
        if first != (&typ == b"IHDR") {
            return Err(StripError::malformed(
                F,
                "ihdr is not the first chunk (or is repeated)",
            ));
        }
        first = false;
        let chunk = &input[pos..end];
        pos = end;
        match &typ {
            b"IHDR" => {
                check_header(data, limits)?;
                out.extend_from_slice(chunk);
            }
            b"IEND" => {
                out.extend_from_slice(chunk);
                break;
            }
            t if KEEP.contains(&t) => out.extend_from_slice(chunk),
            b"eXIf" | b"exIf" => removed.add("exif"),
            b"tEXt" | b"zTXt" => removed.add("png-text"),
            b"iTXt" => {
                let keyword = data.split(|&b| b == 0).next().unwrap_or_default();
                removed.add(if keyword == XMP_KEYWORD {
                    "xmp"
                } else {
                    "png-text"
                });
            }
            b"tIME" => removed.add("png-time"),
            t if t[0].is_ascii_uppercase() => {
                return Err(StripError::refused(
                    F,
                    format!("unknown critical chunk {name}"),
                ));
            }
            _ => removed.add(&format!("png-{name}")),
        }
    }
    if pos < input.len() {
        removed.add("trailer");
    }
    Ok(Stripped {
        bytes: out,
        removed: removed.into_vec(),
    })
}

fn check_header(data: &[u8], limits: &Limits) -> Result<(), StripError> {
    if data.len() != 13 {
        return Err(StripError::malformed(
            F,
            format!("ihdr has {} bytes, not 13", data.len()),
        ));
    }
    let width = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as u64;
    let height = u32::from_be_bytes([data[4], data[5], data[6], data[7]]) as u64;
    if width == 0 || height == 0 || width > 0x7FFF_FFFF || height > 0x7FFF_FFFF {
        return Err(StripError::malformed(
            F,
            format!("image size {width}x{height}"),
        ));
    }
    if width * height > limits.max_pixels {
        return Err(StripError::TooLarge {
            format: F,
            what: "image (pixels)",
            value: width * height,
            limit: limits.max_pixels,
        });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn chunk(typ: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut c = (data.len() as u32).to_be_bytes().to_vec();
        c.extend_from_slice(typ);
        c.extend_from_slice(data);
        let crc = crc::update(0, &c[4..]);
        c.extend_from_slice(&crc.to_be_bytes());
        c
    }

    fn png(chunks: &[Vec<u8>]) -> Vec<u8> {
        let mut p = SIGNATURE.to_vec();
        p.extend(chunk(b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0]));
        for c in chunks {
            p.extend_from_slice(c);
        }
        p.extend(chunk(b"IDAT", &[0x78, 0x9C, 0x63, 0x60, 0, 0, 0, 2, 0, 1]));
        p.extend(chunk(b"IEND", &[]));
        p
    }

    #[test]
    fn chunks_are_classified() {
        let input = png(&[
            chunk(b"gAMA", &[0, 0, 0xB1, 0x8F]),
            chunk(b"eXIf", b"MM\0*"),
            chunk(b"tEXt", b"Author\0Jane"),
            chunk(b"zTXt", b"Comment\0\0x"),
            chunk(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0<x/>"),
            chunk(b"iTXt", b"Title\0\0\0\0\0t"),
            chunk(b"tIME", &[7, 0xE9, 1, 1, 0, 0, 0]),
            chunk(b"caBX", b"c2pa"),
            chunk(b"pHYs", &[0, 0, 0x0B, 0x13, 0, 0, 0x0B, 0x13, 1]),
        ]);
        let s = strip_png(&input, &Limits::default()).unwrap();
        assert_eq!(
            s.removed,
            ["exif", "png-text", "xmp", "png-time", "png-cabx"]
        );
        let expected = png(&[
            chunk(b"gAMA", &[0, 0, 0xB1, 0x8F]),
            chunk(b"pHYs", &[0, 0, 0x0B, 0x13, 0, 0, 0x0B, 0x13, 1]),
        ]);
        assert_eq!(s.bytes, expected);
        let again = strip_png(&s.bytes, &Limits::default()).unwrap();
        assert_eq!((again.bytes, again.removed.len()), (expected, 0));
    }

    #[test]
    fn malformed_inputs_are_errors() {
        let l = Limits::default();
        let good = png(&[]);
        for n in 0..good.len() {
            assert!(strip_png(&good[..n], &l).is_err(), "truncated at {n}");
        }
        let mut bad_crc = good.clone();
        let last = bad_crc.len() - 1;
        bad_crc[last] ^= 1;
        assert!(matches!(
            strip_png(&bad_crc, &l),
            Err(StripError::Malformed { .. })
        ));
        assert!(matches!(
            strip_png(&png(&[chunk(b"ABCD", b"")]), &l),
            Err(StripError::Refused { .. })
        ));
        let mut huge = SIGNATURE.to_vec();
        huge.extend(chunk(
            b"IHDR",
            &[0x7F, 0, 0, 0, 0x7F, 0, 0, 0, 8, 0, 0, 0, 0],
        ));
        assert!(matches!(
            strip_png(&huge, &l),
            Err(StripError::TooLarge { .. })
        ));
        let mut long = SIGNATURE.to_vec();
        long.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xF0]);
        long.extend_from_slice(b"IHDR");
        assert!(strip_png(&long, &l).is_err());
        let mut trailer = good.clone();
        trailer.extend_from_slice(b"hidden");
        let s = strip_png(&trailer, &l).unwrap();
        assert_eq!((s.bytes, s.removed), (good, vec!["trailer".to_string()]));
    }
}
