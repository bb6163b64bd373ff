//! GIF: the blocks are walked (header, colour tables, extensions and images as sub-block
//! chains); images, colour tables, graphic control and plain text extensions are copied whole.

use super::budget::Deadline;
use super::{Limits, Removed, StripError, Stripped};

const F: &str = "gif";

/// Application extensions kept: looping (Netscape, AnimExts) and the ICC profile.
const KEEP_APPS: &[&[u8; 11]] = &[b"NETSCAPE2.0", b"ANIMEXTS1.0", b"ICCRGBG1012"];

/// Removes comment extensions (`comment`), the XMP application extension (`xmp`), every other
/// application extension (`gif-app`), unknown extensions (`gif-ext`) and bytes after the trailer
/// (`trailer`).
pub fn strip_gif(input: &[u8], limits: &Limits) -> Result<Stripped, StripError> {
    if !(input.starts_with(b"GIF87a") || input.starts_with(b"GIF89a")) {
        return Err(StripError::malformed(F, "no gif header"));
    }
    let Some(screen) = input.get(6..13) else {
        return Err(StripError::truncated(F, "logical screen descriptor cut"));
    };
    let width = u16::from_le_bytes([screen[0], screen[1]]) as u64;
    let height = u16::from_le_bytes([screen[2], screen[3]]) as u64;
    check_pixels(width * height, limits)?;
    let mut pos = 13 + color_table(screen[4]);
    if pos > input.len() {
        return Err(StripError::truncated(F, "global colour table cut"));
    }
    let mut out = Vec::with_capacity(input.len());
    let mut removed = Removed::default();
    out.extend_from_slice(&input[..pos]);
    let deadline = Deadline::start(limits);
    loop {
        deadline.check(F)?;
        let Some(&block) = input.get(pos) else {
            return Err(StripError::truncated(F, "no trailer"));
        };
        match block {
            0x3B => {
                out.push(0x3B);
                pos += 1;
                break;
            }
            0x2C => {
                let Some(desc) = input.get(pos..pos + 10) else {
                    return Err(StripError::truncated(
                        F,
                        format!("image descriptor at offset {pos} cut"),
                    ));
                };
                let w = u16::from_le_bytes([desc[5], desc[6]]) as u64;
                let h = u16::from_le_bytes([desc[7], desc[8]]) as u64;
                check_pixels(w * h, limits)?;
                // descriptor, local colour table, lzw code size, then the data sub-blocks
                let data = pos + 10 + color_table(desc[9]) + 1;
                let end = sub_blocks_end(input, data)?;
                out.extend_from_slice(&input[pos..end]);
                pos = end;
            }
            0x21 => {
                let Some(&label) = input.get(pos + 1) else {
                    return Err(StripError::truncated(
                        F,
                        format!("extension at offset {pos} cut"),
                    ));
                };
                let end = sub_blocks_end(input, pos + 2)?;
                match label {
                    // graphic control, plain text (rendered content)
                    0xF9 | 0x01 => out.extend_from_slice(&input[pos..end]),
                    0xFE => removed.add("comment"),
                    0xFF => {
                        let app = input
                            .get(pos + 2..pos + 14)
                            .filter(|a| a[0] == 11)
                            .map(|a| &a[1..]);
                        match app {
                            Some(id) if KEEP_APPS.iter().any(|k| &k[..] == id) => {
                                out.extend_from_slice(&input[pos..end])
                            }
                            Some(b"XMP DataXMP") => removed.add("xmp"),
                            _ => removed.add("gif-app"),
                        }
                    }
                    _ => removed.add("gif-ext"),
                }
                pos = end;
            }
            other => {
                return Err(StripError::malformed(
                    F,
                    format!("unknown block 0x{other:02x} at offset {pos}"),
                ));
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

/// The size of the colour table a packed field announces.
fn color_table(packed: u8) -> usize {
    if packed & 0x80 != 0 {
        3 << ((packed & 7) + 1)
    } else {
        0
    }
}

/// The offset after the sub-block chain starting at `pos` (its 0 terminator included).
fn sub_blocks_end(input: &[u8], mut pos: usize) -> Result<usize, StripError> {
    loop {
        let Some(&n) = input.get(pos) else {
            return Err(StripError::truncated(
                F,
                format!("sub-block at offset {pos} cut"),
            ));
        };
        pos += 1 + n as usize;
        if n == 0 {
            return Ok(pos);
        }
    }
}

fn check_pixels(pixels: u64, limits: &Limits) -> Result<(), StripError> {
    if pixels > limits.max_pixels {
        return Err(StripError::TooLarge {
            format: F,
            what: "image (pixels)",
            value: pixels,
            limit: limits.max_pixels,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(label: u8, blocks: &[&[u8]]) -> Vec<u8> {
        let mut e = vec![0x21, label];
        for b in blocks {
            e.push(b.len() as u8);
            e.extend_from_slice(b);
        }
        e.push(0);
        e
    }

    fn gif(blocks: &[Vec<u8>]) -> Vec<u8> {
        let mut g = b"GIF89a\x01\x00\x01\x00\x80\x00\x00".to_vec();
        g.extend_from_slice(&[0, 0, 0, 255, 255, 255]);
        for b in blocks {
            g.extend_from_slice(b);
        }
        g.extend_from_slice(&[0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 2, 0x4C, 0x01, 0]);
        g.push(0x3B);
        g
    }

    #[test]
    fn extensions_are_classified() {
        let input = gif(&[
            ext(0xFF, &[b"NETSCAPE2.0", &[1, 0, 0]]),
            ext(0xFE, &[b"made by Jane"]),
            ext(0xFF, &[b"XMP DataXMP", b"<x/>"]),
            ext(0xFF, &[b"MGK8BIM0000", b"iptc"]),
            ext(0xF9, &[&[0, 0, 0, 0]]),
        ]);
        let s = strip_gif(&input, &Limits::default()).unwrap();
        assert_eq!(s.removed, ["comment", "xmp", "gif-app"]);
        let expected = gif(&[
            ext(0xFF, &[b"NETSCAPE2.0", &[1, 0, 0]]),
            ext(0xF9, &[&[0, 0, 0, 0]]),
        ]);
        assert_eq!(s.bytes, expected);
        let again = strip_gif(&s.bytes, &Limits::default()).unwrap();
        assert_eq!((again.bytes, again.removed.len()), (expected, 0));
    }

    #[test]
    fn malformed_inputs_are_errors() {
        let l = Limits::default();
        let good = gif(&[ext(0xFE, &[b"c"])]);
        for n in 0..good.len() {
            assert!(strip_gif(&good[..n], &l).is_err(), "truncated at {n}");
        }
        let mut bad = good.clone();
        bad[19] = 0x99;
        assert!(strip_gif(&bad, &l).is_err());
        let mut huge = good.clone();
        huge[6..10].copy_from_slice(&[0xFF; 4]);
        assert!(matches!(
            strip_gif(&huge, &l),
            Err(StripError::TooLarge { .. })
        ));
    }
}
