//! WebP: the RIFF chunks are walked (and those inside animation frames); image chunks are copied
//! whole, EXIF, XMP and unknown chunks dropped, then the VP8X flags and the sizes are fixed.

use super::budget::Deadline;
use super::jpeg::{minimal_tiff, read_exif};
use super::{Limits, Removed, StripError, Stripped, tag_name};

const F: &str = "webp";
const FLAG_EXIF: u8 = 0x08;
const FLAG_XMP: u8 = 0x04;
/// an ANMF payload's header before its frame's chunks
const ANMF_HEADER: usize = 16;

/// Removes EXIF (`exif`, and `gps` when it had a GPS IFD) but its Orientation, written back as a
/// minimal EXIF chunk, XMP (`xmp`), unknown chunks (`webp-<fourcc>`), also inside animation
/// frames, and bytes after the RIFF (`trailer`); fixes the EXIF and XMP flags of VP8X and writes
/// the new RIFF size. Keeps VP8X, ICCP, ANIM, ANMF, ALPH, VP8 and VP8L.
pub fn strip_webp(input: &[u8], limits: &Limits) -> Result<Stripped, StripError> {
    if input.len() < 12 || &input[..4] != b"RIFF" || &input[8..12] != b"WEBP" {
        return Err(StripError::malformed(F, "no riff webp header"));
    }
    let size = u32::from_le_bytes(input[4..8].try_into().expect("4 bytes")) as usize;
    let riff_end = size
        .checked_add(8)
        .filter(|&e| e <= input.len())
        .ok_or_else(|| {
            StripError::truncated(
                F,
                format!("riff claims {size} bytes, {} there", input.len() - 8),
            )
        })?;
    if size < 4 {
        return Err(StripError::malformed(F, format!("riff size {size}")));
    }
    let mut out = Vec::with_capacity(riff_end);
    let mut removed = Removed::default();
    out.extend_from_slice(&input[..12]);
    let mut first = true;
    // where the VP8X flags are in `out`, and whether a minimal EXIF chunk was written
    let mut flags_at = None;
    let mut exif_kept = false;
    let mut image = false;
    let deadline = Deadline::start(limits);
    for chunk in Chunks::new(input, 12, riff_end) {
        deadline.check(F)?;
        let chunk = chunk?;
        match &chunk.fourcc {
            b"VP8X" if first => {
                let d = chunk.data;
                if d.len() < 10 {
                    return Err(StripError::malformed(F, "vp8x chunk too short"));
                }
                let width = 1 + u32::from_le_bytes([d[4], d[5], d[6], 0]) as u64;
                let height = 1 + u32::from_le_bytes([d[7], d[8], d[9], 0]) as u64;
                if width * height > limits.max_pixels {
                    return Err(StripError::TooLarge {
                        format: F,
                        what: "canvas (pixels)",
                        value: width * height,
                        limit: limits.max_pixels,
                    });
                }
                // flags: the first payload byte, set when the chunks are known
                flags_at = Some(out.len() + 8);
                out.extend_from_slice(chunk.whole);
            }
            b"VP8X" => return Err(StripError::malformed(F, "vp8x is not the first chunk")),
            b"VP8 " | b"VP8L" => {
                image = true;
                out.extend_from_slice(chunk.whole);
            }
            b"ICCP" | b"ANIM" | b"ALPH" => out.extend_from_slice(chunk.whole),
            b"EXIF" => {
                let tiff = chunk.data.strip_prefix(b"Exif\0\0").unwrap_or(chunk.data);
                let facts = read_exif(tiff);
                match facts.orientation.filter(|_| !exif_kept).map(minimal_tiff) {
                    Some(minimal) if minimal.as_slice() == chunk.data => {
                        out.extend_from_slice(chunk.whole)
                    }
                    Some(minimal) => {
                        out.extend_from_slice(b"EXIF");
                        out.extend_from_slice(&(minimal.len() as u32).to_le_bytes());
                        out.extend_from_slice(&minimal);
                        removed.add("exif");
                    }
                    None => removed.add("exif"),
                }
                exif_kept |= facts.orientation.is_some();
                if facts.gps {
                    removed.add("gps");
                }
            }
            b"ANMF" => {
                if chunk.data.len() < ANMF_HEADER {
                    return Err(StripError::malformed(F, "anmf chunk too short"));
                }
                image = true;
                let start = out.len();
                out.extend_from_slice(&chunk.whole[..8 + ANMF_HEADER]);
                let frame_start = chunk.offset + 8;
                let frame_end = frame_start + chunk.data.len();
                for sub in Chunks::new(input, frame_start + ANMF_HEADER, frame_end) {
                    let sub = sub?;
                    match &sub.fourcc {
                        b"ALPH" | b"VP8 " | b"VP8L" => out.extend_from_slice(sub.whole),
                        other => removed.add(&name(other)),
                    }
                }
                let len = (out.len() - start - 8) as u32;
                out[start + 4..start + 8].copy_from_slice(&len.to_le_bytes());
                if len % 2 == 1 {
                    // cannot happen (sub-chunks are padded), but keep the RIFF aligned
                    out.push(0);
                }
            }
            other => removed.add(&name(other)),
        }
        first = false;
    }
    if !image {
        return Err(StripError::malformed(
            F,
            "no image chunk (vp8, vp8l or anmf)",
        ));
    }
    if let Some(at) = flags_at {
        out[at] &= !(FLAG_EXIF | FLAG_XMP);
        if exif_kept {
            out[at] |= FLAG_EXIF;
        }
    }
    let riff = (out.len() - 8) as u32;
    out[4..8].copy_from_slice(&riff.to_le_bytes());
    if riff_end < input.len() {
        removed.add("trailer");
    }
    Ok(Stripped {
        bytes: out,
        removed: removed.into_vec(),
    })
}

fn name(fourcc: &[u8; 4]) -> String {
    match fourcc {
        b"EXIF" => "exif".into(),
        b"XMP " => "xmp".into(),
        other => format!("webp-{}", tag_name(other)),
    }
}

struct Chunk<'a> {
    offset: usize,
    fourcc: [u8; 4],
    data: &'a [u8],
    /// header, data and padding byte
    whole: &'a [u8],
}

/// The chunks in `input[from..end]`, each checked to fit.
struct Chunks<'a> {
    input: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Chunks<'a> {
    fn new(input: &'a [u8], pos: usize, end: usize) -> Self {
        Self { input, pos, end }
    }
}

impl<'a> Iterator for Chunks<'a> {
    type Item = Result<Chunk<'a>, StripError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.end {
            return None;
        }
        let pos = self.pos;
        let Some(head) = self.input[..self.end].get(pos..pos + 8) else {
            self.pos = self.end;
            return Some(Err(StripError::truncated(
                F,
                format!("chunk header at offset {pos} cut"),
            )));
        };
        let fourcc: [u8; 4] = head[..4].try_into().expect("4 bytes");
        let len = u32::from_le_bytes(head[4..8].try_into().expect("4 bytes")) as usize;
        let padded = len + (len & 1);
        if pos + 8 + padded > self.end {
            self.pos = self.end;
            return Some(Err(StripError::truncated(
                F,
                format!(
                    "chunk {} at offset {pos} claims {len} bytes, {} left",
                    tag_name(&fourcc),
                    self.end - pos - 8
                ),
            )));
        }
        self.pos = pos + 8 + padded;
        Some(Ok(Chunk {
            offset: pos,
            fourcc,
            data: &self.input[pos + 8..pos + 8 + len],
            whole: &self.input[pos..pos + 8 + padded],
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(fourcc: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut c = fourcc.to_vec();
        c.extend_from_slice(&(data.len() as u32).to_le_bytes());
        c.extend_from_slice(data);
        if data.len() % 2 == 1 {
            c.push(0);
        }
        c
    }

    fn riff(chunks: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = chunks.concat();
        let mut r = b"RIFF".to_vec();
        r.extend_from_slice(&((body.len() + 4) as u32).to_le_bytes());
        r.extend_from_slice(b"WEBP");
        r.extend(body);
        r
    }

    fn vp8x(flags: u8) -> Vec<u8> {
        chunk(b"VP8X", &[flags, 0, 0, 0, 9, 0, 0, 9, 0, 0])
    }

    #[test]
    fn extended_file() {
        let input = riff(&[
            vp8x(0x20 | 0x10 | FLAG_EXIF | FLAG_XMP),
            chunk(b"ICCP", b"icc"),
            chunk(b"ALPH", b"a"),
            chunk(b"VP8L", b"\x2fpixels"),
            chunk(b"EXIF", b"MM\0*gps"),
            chunk(
                b"EXIF",
                &[b"Exif\0\0".as_slice(), &minimal_tiff(6)].concat(),
            ),
            chunk(b"XMP ", b"<x/>"),
            chunk(b"ABCD", b"vendor"),
        ]);
        let s = strip_webp(&input, &Limits::default()).unwrap();
        assert_eq!(s.removed, ["exif", "xmp", "webp-abcd"]);
        let expected = riff(&[
            vp8x(0x30 | FLAG_EXIF),
            chunk(b"ICCP", b"icc"),
            chunk(b"ALPH", b"a"),
            chunk(b"VP8L", b"\x2fpixels"),
            chunk(b"EXIF", &minimal_tiff(6)),
        ]);
        assert_eq!(s.bytes, expected);
        let again = strip_webp(&s.bytes, &Limits::default()).unwrap();
        assert_eq!((again.bytes, again.removed.len()), (expected, 0));
    }

    #[test]
    fn animation_frames() {
        let frame = |extra: &[Vec<u8>]| {
            let mut d = vec![0u8; ANMF_HEADER];
            d.extend(chunk(b"VP8L", b"\x2fframe"));
            for e in extra {
                d.extend_from_slice(e);
            }
            chunk(b"ANMF", &d)
        };
        let input = riff(&[
            vp8x(0x02 | FLAG_EXIF),
            chunk(b"ANIM", &[0; 6]),
            frame(&[chunk(b"XYZW", b"odd")]),
            frame(&[]),
        ]);
        let s = strip_webp(&input, &Limits::default()).unwrap();
        assert_eq!(s.removed, ["webp-xyzw"]);
        assert_eq!(
            s.bytes,
            riff(&[vp8x(0x02), chunk(b"ANIM", &[0; 6]), frame(&[]), frame(&[])])
        );
    }

    #[test]
    fn malformed_inputs_are_errors() {
        let l = Limits::default();
        let good = riff(&[vp8x(0), chunk(b"VP8L", b"\x2fpix")]);
        for n in 0..good.len() {
            assert!(strip_webp(&good[..n], &l).is_err(), "truncated at {n}");
        }
        assert!(
            strip_webp(
                &riff(&[chunk(b"VP8X", &[0; 10]), chunk(b"VP8X", &[0; 10])]),
                &l
            )
            .is_err()
        );
        assert!(matches!(
            strip_webp(
                &riff(&[chunk(
                    b"VP8X",
                    &[0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
                )]),
                &l
            ),
            Err(StripError::TooLarge { .. })
        ));
        let mut bogus = good.clone();
        bogus[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(strip_webp(&bogus, &l).is_err());
        assert!(strip_webp(&riff(&[]), &l).is_err());
        assert!(strip_webp(&riff(&[vp8x(0), chunk(b"EXIF", b"MM\0*")]), &l).is_err());
    }
}
