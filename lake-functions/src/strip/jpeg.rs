//! JPEG: marker segments are walked up to the first SOS, then the entropy-coded data is scanned
//! for markers (0xFF followed by anything but 0x00, RSTn or fill) up to EOI, so segments between
//! progressive scans are seen too. The entropy-coded bytes, DQT/DHT/SOF/SOS/DRI segments are
//! copied verbatim; identifying segments are dropped; bytes after EOI (appended images, editors'
//! trailers, the uncropped originals of some screenshot tools) are dropped.

use super::budget::Deadline;
use super::{Limits, Removed, StripError, Stripped};

const F: &str = "jpeg";

const EXIF_ID: &[u8] = b"Exif\0";
const XMP_ID: &[u8] = b"http://ns.adobe.com/xap/1.0/\0";
const XMP_EXT_ID: &[u8] = b"http://ns.adobe.com/xmp/extension/\0";
const ICC_ID: &[u8] = b"ICC_PROFILE\0";
const MPF_ID: &[u8] = b"MPF\0";
const PHOTOSHOP_ID: &[u8] = b"Photoshop 3.0\0";
const JFIF_ID: &[u8] = b"JFIF\0";
const ADOBE_ID: &[u8] = b"Adobe";

/// The size of the EXIF APP1 segment [`minimal_exif`] writes.
pub(crate) const MINIMAL_EXIF_LEN: usize = 10 + MINIMAL_TIFF_LEN;
/// The size of [`minimal_tiff`].
pub(crate) const MINIMAL_TIFF_LEN: usize = 26;

/// Removes EXIF (but Orientation, written back as a minimal EXIF block), XMP and extended XMP,
/// IPTC/Photoshop, comments, MPF, JFXX thumbnails, other application segments (APP3..APP13,
/// APP15 and unknown APP0/1/2/14 payloads) and anything after EOI. Keeps APP0 JFIF, APP2
/// ICC_PROFILE and APP14 Adobe.
///
/// Names: `exif`, `gps` (the EXIF had a GPS IFD), `xmp`, `iptc` (Photoshop IRB), `comment`,
/// `mpf`, `app<N>`, `trailer`.
pub fn strip_jpeg(input: &[u8], limits: &Limits) -> Result<Stripped, StripError> {
    strip_jpeg_within(input, limits, &Deadline::start(limits))
}

/// [`strip_jpeg`] within `deadline` (a PDF's, for the images in it).
pub(crate) fn strip_jpeg_within(
    input: &[u8],
    limits: &Limits,
    deadline: &Deadline,
) -> Result<Stripped, StripError> {
    if !input.starts_with(&[0xFF, 0xD8]) {
        return Err(StripError::malformed(F, "no start-of-image marker"));
    }
    let mut out = Vec::with_capacity(input.len() + MINIMAL_EXIF_LEN);
    let mut removed = Removed::default();
    out.extend_from_slice(&input[..2]);
    let mut pos = 2;
    let mut exif_written = false;
    let mut in_scan = false;
    loop {
        deadline.check(F)?;
        // the next marker: in the header, right here (after optional fill bytes, dropped); after
        // a scan has begun, past the entropy-coded data, which is copied as it is. `lead`: where
        // a kept segment's bytes start (its fill bytes in a scan, which are kept with it: dropped
        // with a removed segment, so that the data before and after it cannot meet into a marker)
        let (lead, at) = if in_scan {
            let (fill, at) = next_marker(input, pos)?;
            out.extend_from_slice(&input[pos..fill]);
            (fill, at)
        } else {
            let mut at = pos;
            if input.get(at) != Some(&0xFF) {
                return match input.get(at) {
                    None => Err(StripError::truncated(
                        F,
                        format!("no marker at offset {at}"),
                    )),
                    Some(_) => Err(StripError::malformed(
                        F,
                        format!("expected a marker at offset {at}"),
                    )),
                };
            }
            while input.get(at + 1) == Some(&0xFF) {
                at += 1;
            }
            (at, at)
        };
        let Some(&marker) = input.get(at + 1) else {
            return Err(StripError::truncated(
                F,
                format!("marker at offset {at} cut"),
            ));
        };
        pos = at + 2;
        match marker {
            0xD9 if in_scan => {
                out.extend_from_slice(&input[lead..pos]);
                break;
            }
            0xD9 => return Err(StripError::malformed(F, "end of image before any scan")),
            0xD8 => {
                return Err(StripError::malformed(
                    F,
                    format!("second start-of-image at offset {at}"),
                ));
            }
            0x00 => {
                return Err(StripError::malformed(
                    F,
                    format!("invalid marker 0xff00 at offset {at}"),
                ));
            }
            // standalone markers: no length
            0x01 | 0xD0..=0xD7 => out.extend_from_slice(&input[lead..pos]),
            _ => {
                let Some(len) = input.get(pos..pos + 2) else {
                    return Err(StripError::truncated(
                        F,
                        format!("segment 0x{marker:02x} at offset {at} cut"),
                    ));
                };
                let len = u16::from_be_bytes([len[0], len[1]]) as usize;
                if len < 2 {
                    return Err(StripError::malformed(
                        F,
                        format!("segment 0x{marker:02x} at offset {at} has length {len}"),
                    ));
                }
                let end = pos + len;
                if end > input.len() {
                    return Err(StripError::truncated(
                        F,
                        format!(
                            "segment 0x{marker:02x} at offset {at} claims {len} bytes, {} left",
                            input.len() - pos
                        ),
                    ));
                }
                let segment = &input[lead..end];
                let whole = &input[at..end];
                let payload = &input[pos + 2..end];
                pos = end;
                match marker {
                    0xE0..=0xEF => match classify_app(marker - 0xE0, payload) {
                        App::Keep => out.extend_from_slice(segment),
                        App::Remove(name) => removed.add(&name),
                        App::Exif => {
                            let exif = read_exif(&payload[EXIF_ID.len() + 1..]);
                            let keep = exif.orientation.filter(|_| !exif_written).map(minimal_exif);
                            match keep {
                                Some(minimal) if minimal.as_slice() == whole => {
                                    out.extend_from_slice(segment)
                                }
                                Some(minimal) => {
                                    out.extend_from_slice(&minimal);
                                    removed.add("exif");
                                }
                                None => removed.add("exif"),
                            }
                            exif_written |= exif.orientation.is_some();
                            if exif.gps {
                                removed.add("gps");
                            }
                        }
                    },
                    0xFE => removed.add("comment"),
                    0xDA => {
                        out.extend_from_slice(segment);
                        in_scan = true;
                    }
                    // SOFn (not DHT 0xC4, JPG 0xC8, DAC 0xCC): the frame size
                    0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                        check_frame(payload, limits)?;
                        out.extend_from_slice(segment);
                    }
                    _ => out.extend_from_slice(segment),
                }
            }
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

enum App {
    Keep,
    Exif,
    Remove(String),
}

fn classify_app(n: u8, payload: &[u8]) -> App {
    let starts = |id: &[u8]| payload.starts_with(id);
    match n {
        0 if starts(JFIF_ID) => App::Keep,
        1 if starts(EXIF_ID) && payload.len() > EXIF_ID.len() => App::Exif,
        1 if starts(XMP_ID) || starts(XMP_EXT_ID) => App::Remove("xmp".into()),
        2 if starts(ICC_ID) => App::Keep,
        2 if starts(MPF_ID) => App::Remove("mpf".into()),
        13 if starts(PHOTOSHOP_ID) => App::Remove("iptc".into()),
        14 if starts(ADOBE_ID) => App::Keep,
        n => App::Remove(format!("app{n}")),
    }
}

fn check_frame(payload: &[u8], limits: &Limits) -> Result<(), StripError> {
    let Some(p) = payload.get(..5) else {
        return Err(StripError::malformed(F, "frame header too short"));
    };
    let height = u16::from_be_bytes([p[1], p[2]]) as u64;
    let width = u16::from_be_bytes([p[3], p[4]]) as u64;
    let pixels = width * height;
    if pixels > limits.max_pixels {
        return Err(StripError::TooLarge {
            format: F,
            what: "frame (pixels)",
            value: pixels,
            limit: limits.max_pixels,
        });
    }
    Ok(())
}

/// The next marker's offset at or after `from` in entropy-coded data: an 0xFF followed by
/// neither a stuffed 0x00, nor RSTn, nor another 0xFF (fill; the last 0xFF of a run is the
/// marker's).
/// Returns where the run of fill bytes before it starts, and the marker's offset.
fn next_marker(data: &[u8], mut from: usize) -> Result<(usize, usize), StripError> {
    let mut fill = None;
    loop {
        let Some(i) = find_ff(data, from) else {
            return Err(StripError::truncated(F, "no end-of-image marker"));
        };
        match data.get(i + 1) {
            None => return Err(StripError::truncated(F, "no end-of-image marker")),
            Some(0x00 | 0xD0..=0xD7) => {
                fill = None;
                from = i + 2;
            }
            Some(0xFF) => {
                fill = fill.or(Some(i));
                from = i + 1;
            }
            Some(_) => return Ok((fill.unwrap_or(i), i)),
        }
    }
}

/// The first 0xFF at or after `from`: 32 bytes at a time (a loop the compiler vectorizes), then
/// the rest one by one.
fn find_ff(data: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(block) = data.get(i..i + 32) {
        if block.iter().fold(false, |any, &b| any | (b == 0xFF)) {
            return block.iter().position(|&b| b == 0xFF).map(|p| i + p);
        }
        i += 32;
    }
    data.get(i..)?
        .iter()
        .position(|&b| b == 0xFF)
        .map(|p| i + p)
}

/// What the stripper keeps or reports from an EXIF block.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ExifFacts {
    /// the Orientation tag of IFD0, when it holds a valid value (1..=8)
    pub orientation: Option<u16>,
    /// IFD0 points to a GPS IFD
    pub gps: bool,
}

/// Reads IFD0 of a TIFF structure (the EXIF payload after `Exif\0\0`). Anything unreadable
/// yields no facts: the block is dropped whole all the same.
pub(crate) fn read_exif(tiff: &[u8]) -> ExifFacts {
    let mut facts = ExifFacts::default();
    let big = match tiff.get(..4) {
        Some(b"MM\0*") => true,
        Some(b"II*\0") => false,
        _ => return facts,
    };
    let u16_at = |o: usize| {
        tiff.get(o..o + 2).map(|b| {
            if big {
                u16::from_be_bytes([b[0], b[1]])
            } else {
                u16::from_le_bytes([b[0], b[1]])
            }
        })
    };
    let u32_at = |o: usize| {
        tiff.get(o..o + 4).map(|b| {
            let a = [b[0], b[1], b[2], b[3]];
            if big {
                u32::from_be_bytes(a)
            } else {
                u32::from_le_bytes(a)
            }
        })
    };
    let Some(ifd) = u32_at(4).map(|o| o as usize) else {
        return facts;
    };
    let Some(count) = u16_at(ifd) else {
        return facts;
    };
    for i in 0..count as usize {
        let e = ifd + 2 + 12 * i;
        let (Some(tag), Some(typ), Some(n)) = (u16_at(e), u16_at(e + 2), u32_at(e + 4)) else {
            break;
        };
        match tag {
            0x0112 if typ == 3 && n == 1 => {
                facts.orientation = u16_at(e + 8).filter(|o| (1..=8).contains(o));
            }
            0x8825 => facts.gps = true,
            _ => {}
        }
    }
    facts
}

/// A TIFF structure (EXIF) holding only IFD0 with one Orientation entry, big-endian.
pub(crate) fn minimal_tiff(orientation: u16) -> [u8; MINIMAL_TIFF_LEN] {
    let o = orientation.to_be_bytes();
    #[rustfmt::skip]
    let tiff = [
        b'M', b'M', 0x00, 0x2A, 0x00, 0x00, 0x00, 0x08, // TIFF header, IFD0 at 8
        0x00, 0x01, // one entry
        0x01, 0x12, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01, o[0], o[1], 0x00, 0x00, // Orientation SHORT 1
        0x00, 0x00, 0x00, 0x00, // no next IFD
    ];
    tiff
}

/// An APP1 EXIF segment holding [`minimal_tiff`].
pub(crate) fn minimal_exif(orientation: u16) -> [u8; MINIMAL_EXIF_LEN] {
    let mut seg = [0u8; MINIMAL_EXIF_LEN];
    seg[..10].copy_from_slice(&[0xFF, 0xE1, 0x00, 0x22, b'E', b'x', b'i', b'f', 0, 0]);
    seg[10..].copy_from_slice(&minimal_tiff(orientation));
    seg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(marker: u8, payload: &[u8]) -> Vec<u8> {
        let mut s = vec![0xFF, marker];
        s.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
        s.extend_from_slice(payload);
        s
    }

    /// SOI, the segments, a tiny frame and scan, EOI
    fn jpeg(segments: &[Vec<u8>]) -> Vec<u8> {
        let mut j = vec![0xFF, 0xD8];
        for s in segments {
            j.extend_from_slice(s);
        }
        j.extend(seg(0xDB, &[0; 65]));
        j.extend(seg(0xC0, &[8, 0, 16, 0, 16, 1, 1, 0x11, 0]));
        j.extend(seg(0xDA, &[1, 1, 0, 0, 63, 0]));
        j.extend_from_slice(&[0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD3, 0x56, 0xFF, 0xFF, 0xD9]);
        j
    }

    fn tiff_le(entries: &[(u16, u16, u32, u32)]) -> Vec<u8> {
        let mut t = b"II*\0\x08\0\0\0".to_vec();
        t.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        for (tag, typ, n, v) in entries {
            t.extend_from_slice(&tag.to_le_bytes());
            t.extend_from_slice(&typ.to_le_bytes());
            t.extend_from_slice(&n.to_le_bytes());
            t.extend_from_slice(&v.to_le_bytes());
        }
        t.extend_from_slice(&[0; 4]);
        t
    }

    fn exif(entries: &[(u16, u16, u32, u32)]) -> Vec<u8> {
        let mut p = b"Exif\0\0".to_vec();
        p.extend(tiff_le(entries));
        seg(0xE1, &p)
    }

    #[test]
    fn segments_are_classified() {
        let input = jpeg(&[
            seg(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"),
            exif(&[(0x010F, 2, 4, 0), (0x0112, 3, 1, 8), (0x8825, 4, 1, 100)]),
            seg(0xE1, b"http://ns.adobe.com/xap/1.0/\0<x/>"),
            seg(0xE1, b"http://ns.adobe.com/xmp/extension/\0abc"),
            seg(0xE2, b"ICC_PROFILE\0\x01\x01icc"),
            seg(0xE2, b"MPF\0II*\0"),
            seg(0xE3, b"meta"),
            seg(0xED, b"Photoshop 3.0\08BIM"),
            seg(0xEE, b"Adobe\0\x64\0\0\0\0\x01"),
            seg(0xEF, b"x"),
            seg(0xFE, b"secret"),
        ]);
        let s = strip_jpeg(&input, &Limits::default()).unwrap();
        assert_eq!(
            s.removed,
            [
                "exif", "gps", "xmp", "mpf", "app3", "iptc", "app15", "comment"
            ]
        );
        let expected = jpeg(&[
            seg(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"),
            minimal_exif(8).to_vec(),
            seg(0xE2, b"ICC_PROFILE\0\x01\x01icc"),
            seg(0xEE, b"Adobe\0\x64\0\0\0\0\x01"),
        ]);
        assert_eq!(s.bytes, expected);
        let again = strip_jpeg(&s.bytes, &Limits::default()).unwrap();
        assert_eq!(again.bytes, s.bytes);
        assert!(again.removed.is_empty());
        assert_eq!(
            read_exif(&minimal_exif(8)[10..]),
            ExifFacts {
                orientation: Some(8),
                gps: false
            }
        );
    }

    #[test]
    fn exif_without_orientation_is_dropped_whole() {
        let input = jpeg(&[exif(&[(0x010F, 2, 4, 0)]), exif(&[(0x0112, 3, 1, 9)])]);
        let s = strip_jpeg(&input, &Limits::default()).unwrap();
        assert_eq!(s.bytes, jpeg(&[]));
        assert_eq!(s.removed, ["exif"]);
        // garbage after the identifier
        let s = strip_jpeg(&jpeg(&[seg(0xE1, b"Exif\0\0garbage")]), &Limits::default()).unwrap();
        assert_eq!(s.bytes, jpeg(&[]));
        // two orientation blocks: one is kept
        let input = jpeg(&[exif(&[(0x0112, 3, 1, 3)]), exif(&[(0x0112, 3, 1, 6)])]);
        let s = strip_jpeg(&input, &Limits::default()).unwrap();
        assert_eq!(s.bytes, jpeg(&[minimal_exif(3).to_vec()]));
    }

    #[test]
    fn segments_between_scans_and_trailers() {
        let mut input = jpeg(&[]);
        input.truncate(input.len() - 2);
        input.extend(seg(0xFE, b"between scans"));
        input.extend(seg(0xC4, &[0; 20]));
        input.extend(seg(0xDA, &[1, 1, 0, 0, 63, 0]));
        input.extend_from_slice(&[0x01, 0x02, 0xFF, 0xD9]);
        input.extend_from_slice(b"\xFF\xD8\xFF\xE1 appended image with its own exif");
        let s = strip_jpeg(&input, &Limits::default()).unwrap();
        assert_eq!(s.removed, ["comment", "trailer"]);
        assert!(!s.bytes.windows(13).any(|w| w == b"between scans"));
        assert!(s.bytes.ends_with(&[0x01, 0x02, 0xFF, 0xD9]));
    }

    #[test]
    fn fill_bytes_go_with_a_removed_segment() {
        // entropy-coded data, fill bytes, a comment, more data: without the comment, the fill
        // bytes and the data after it must not meet into a marker (0xFF 0x05)
        let mut input = jpeg(&[]);
        input.truncate(input.len() - 3);
        input.extend_from_slice(&[0x12, 0xFF, 0xFF, 0xFF]);
        input.extend(seg(0xFE, b"c"));
        input.extend_from_slice(&[0x05, 0x06, 0xFF, 0xFF, 0xD9]);
        let s = strip_jpeg(&input, &Limits::default()).unwrap();
        assert_eq!(s.removed, ["comment"]);
        assert!(
            s.bytes
                .ends_with(&[0x56, 0x12, 0x05, 0x06, 0xFF, 0xFF, 0xD9]),
            "{:02x?}",
            s.bytes
        );
        let again = strip_jpeg(&s.bytes, &Limits::default()).unwrap();
        assert_eq!((again.bytes, again.removed.len()), (s.bytes, 0));
    }

    #[test]
    fn malformed_inputs_are_errors() {
        let l = Limits::default();
        let good = jpeg(&[exif(&[(0x0112, 3, 1, 6)])]);
        for n in 0..good.len() {
            assert!(strip_jpeg(&good[..n], &l).is_err(), "truncated at {n}");
        }
        assert!(strip_jpeg(&[0xFF, 0xD8, 0xFF, 0xE1, 0xFF, 0xFF, 0], &l).is_err());
        assert!(strip_jpeg(&[0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x01], &l).is_err());
        assert!(strip_jpeg(&[0xFF, 0xD8, 0x00], &l).is_err());
        assert!(strip_jpeg(&[0xFF, 0xD8, 0xFF, 0xD9], &l).is_err());
        let huge = jpeg(&[]);
        let at = huge.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        let mut huge = huge;
        huge[at + 5..at + 9].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
        let e = strip_jpeg(&huge, &l).unwrap_err();
        assert!(matches!(e, StripError::TooLarge { .. }), "{e}");
    }

    #[test]
    fn find_ff_finds_the_first() {
        let mut d = vec![0u8; 100];
        for at in 0..100 {
            d.iter_mut().for_each(|b| *b = 0xFE);
            d[at] = 0xFF;
            if at + 3 < 100 {
                d[at + 3] = 0xFF;
            }
            for from in 0..=at {
                assert_eq!(find_ff(&d, from), Some(at));
            }
        }
        assert_eq!(find_ff(&[0u8; 17], 0), None);
        assert_eq!(find_ff(&[0u8; 17], 17), None);
    }
}
