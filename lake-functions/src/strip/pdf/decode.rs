//! Decoding the data of the containers of PDF 1.5 compression (cross-reference streams and
//! object streams): FlateDecode, with the PNG predictors (/Predictor 10 to 15) or none. Page
//! content and other streams are never decoded. Inflating is bounded by [`Limits`], per stream
//! and for the whole file.

use super::F;
use super::object::{Dict, Obj, get};
use crate::strip::budget::Deadline;
use crate::strip::{Limits, StripError};
use std::io::Read;

/// The decoded data of stream object `num` (its dictionary and raw data). `inflated`: the bytes
/// the file's streams inflated to so far, bounded by `limits.max_pdf_inflated_bytes`. Inflating
/// checks `deadline` every [`INFLATE_STEP`] bytes.
pub(crate) fn decode(
    num: u32,
    dict: &Dict,
    data: &[u8],
    limits: &Limits,
    deadline: &Deadline,
    inflated: &mut u64,
) -> Result<Vec<u8>, StripError> {
    let unsupported = || {
        StripError::refused(
            F,
            format!(
                "object {num}: a filter other than FlateDecode on a cross-reference or object stream is not supported"
            ),
        )
    };
    let (flate, parms) = match (get(dict, b"Filter"), get(dict, b"DecodeParms")) {
        (None | Some(Obj::Null), _) => (false, None),
        (Some(Obj::Array(filters)), _) if filters.is_empty() => (false, None),
        (Some(f), parms) => {
            let (name, parms) = match (f, parms) {
                (Obj::Array(filters), Some(Obj::Array(parms))) if filters.len() == 1 => {
                    (&filters[0], parms.first())
                }
                (Obj::Array(filters), parms) if filters.len() == 1 => (&filters[0], parms),
                (Obj::Array(_), _) => return Err(unsupported()),
                (name, parms) => (name, parms),
            };
            if !name.is_name(b"FlateDecode") {
                return Err(if matches!(name, Obj::Name(_)) {
                    unsupported()
                } else {
                    StripError::malformed(F, format!("object {num}: bad /Filter"))
                });
            }
            (true, parms)
        }
    };
    let raw = if flate {
        inflate(num, data, limits, deadline, inflated)?
    } else {
        data.to_vec()
    };
    match parms {
        None | Some(Obj::Null) => Ok(raw),
        Some(Obj::Dict(parms)) => unpredict(num, parms, raw),
        Some(_) => Err(StripError::malformed(
            F,
            format!("object {num}: bad /DecodeParms"),
        )),
    }
}

/// The bytes inflated between two checks of the deadline.
const INFLATE_STEP: u64 = 1 << 20;

fn inflate(
    num: u32,
    data: &[u8],
    limits: &Limits,
    deadline: &Deadline,
    inflated: &mut u64,
) -> Result<Vec<u8>, StripError> {
    let per_stream = limits.max_pdf_stream_bytes as u64;
    let left = limits.max_pdf_inflated_bytes.saturating_sub(*inflated);
    let limit = per_stream.min(left);
    let mut out = Vec::new();
    let mut z = flate2::read::ZlibDecoder::new(data).take(limit.saturating_add(1));
    loop {
        deadline.check(F)?;
        let n = (&mut z)
            .take(INFLATE_STEP)
            .read_to_end(&mut out)
            .map_err(|_| StripError::malformed(F, format!("object {num}: bad flate data")))?;
        if n == 0 {
            break;
        }
    }
    if out.len() as u64 > limit {
        return Err(if per_stream <= left {
            StripError::TooLarge {
                format: F,
                what: "inflated cross-reference or object stream",
                value: out.len() as u64,
                limit: per_stream,
            }
        } else {
            StripError::TooLarge {
                format: F,
                what: "inflated cross-reference and object streams",
                value: *inflated + out.len() as u64,
                limit: limits.max_pdf_inflated_bytes,
            }
        });
    }
    *inflated += out.len() as u64;
    Ok(out)
}

/// Undoes the predictor of /DecodeParms: none (1) or PNG (10 to 15, each row tagged with its
/// own: None, Sub, Up, Average, Paeth). TIFF (2) is refused.
fn unpredict(num: u32, parms: &Dict, data: Vec<u8>) -> Result<Vec<u8>, StripError> {
    let int = |key: &[u8], default: i64| match get(parms, key) {
        None => Ok(default),
        Some(v) => v
            .as_int()
            .ok_or_else(|| StripError::malformed(F, format!("object {num}: bad /DecodeParms"))),
    };
    let bad = |what: &str| StripError::malformed(F, format!("object {num}: {what}"));
    match int(b"Predictor", 1)? {
        1 => return Ok(data),
        2 => {
            return Err(StripError::refused(
                F,
                format!("object {num}: the tiff predictor is not supported"),
            ));
        }
        10..=15 => {}
        _ => return Err(bad("bad /Predictor")),
    }
    if data.is_empty() {
        return Ok(data);
    }
    let colors = int(b"Colors", 1)?;
    let bits = int(b"BitsPerComponent", 8)?;
    let columns = int(b"Columns", 1)?;
    if !(1..=32).contains(&colors) || ![1, 2, 4, 8, 16].contains(&bits) || columns < 1 {
        return Err(bad("bad /DecodeParms"));
    }
    let pixel_bits = (colors * bits) as u64;
    // bytes per pixel (at least one) and per row
    let bpp = pixel_bits.div_ceil(8) as usize;
    let row = (columns as u64)
        .checked_mul(pixel_bits)
        .map(|b| b.div_ceil(8))
        .filter(|&r| r < data.len() as u64)
        .ok_or_else(|| bad("predictor rows longer than the data"))? as usize;
    let mut out = Vec::with_capacity(data.len() / (row + 1) * row + row);
    let mut prev = vec![0u8; row];
    let mut cur = vec![0u8; row];
    for chunk in data.chunks(row + 1) {
        let (tag, bytes) = (chunk[0], &chunk[1..]);
        // a short last row is decoded as far as it goes
        let cur = &mut cur[..bytes.len()];
        for i in 0..bytes.len() {
            let left = if i >= bpp { cur[i - bpp] } else { 0 };
            let up = prev[i];
            let up_left = if i >= bpp { prev[i - bpp] } else { 0 };
            let predicted = match tag {
                0 => 0,
                1 => left,
                2 => up,
                3 => ((left as u16 + up as u16) / 2) as u8,
                4 => paeth(left, up, up_left),
                _ => return Err(bad("bad png predictor row type")),
            };
            cur[i] = bytes[i].wrapping_add(predicted);
        }
        out.extend_from_slice(cur);
        prev[..cur.len()].copy_from_slice(cur);
    }
    Ok(out)
}

fn paeth(a: u8, b: u8, c: u8) -> u8 {
    let p = a as i16 + b as i16 - c as i16;
    let (pa, pb, pc) = (
        (p - a as i16).abs(),
        (p - b as i16).abs(),
        (p - c as i16).abs(),
    );
    if pa <= pb && pa <= pc {
        a
    } else if pb <= pc {
        b
    } else {
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;
    use std::io::Write;

    fn name(n: &'static [u8]) -> Obj<'static> {
        Obj::Name(Cow::Borrowed(n))
    }

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn predictor(p: i64, columns: i64) -> Dict<'static> {
        vec![
            (Cow::Borrowed(b"Predictor"), Obj::Int(p)),
            (Cow::Borrowed(b"Columns"), Obj::Int(columns)),
        ]
    }

    #[test]
    fn png_predictors() {
        // rows of 3 bytes: None, Sub, Up, Average, Paeth
        let rows: &[u8] = &[
            0, 10, 20, 30, //
            1, 1, 2, 3, //
            2, 1, 1, 1, //
            3, 5, 5, 5, //
            4, 1, 2, 3,
        ];
        let out = unpredict(1, &predictor(12, 3), rows.to_vec()).unwrap();
        let r0 = [10u8, 20, 30];
        let r1 = [1u8, 3, 6];
        let r2 = [2u8, 4, 7];
        // average: left (of the decoded row) and up
        let r3a = 5 + 2 / 2;
        let r3b = 5 + ((r3a as u16 + 4) / 2) as u8;
        let r3c = 5 + ((r3b as u16 + 7) / 2) as u8;
        let r3 = [r3a, r3b, r3c];
        let r4a = 1 + paeth(0, r3[0], 0);
        let r4b = 2 + paeth(r4a, r3[1], r3[0]);
        let r4c = 3 + paeth(r4b, r3[2], r3[1]);
        let want: Vec<u8> = [&r0[..], &r1, &r2, &r3, &[r4a, r4b, r4c]].concat();
        assert_eq!(out, want);
        // a short last row
        assert_eq!(
            unpredict(1, &predictor(12, 3), vec![0, 1, 2, 3, 2, 1]).unwrap(),
            [1, 2, 3, 2]
        );
        assert!(unpredict(1, &predictor(12, 3), vec![5, 1, 2, 3]).is_err());
        assert!(unpredict(1, &predictor(12, 9), vec![0, 1, 2, 3]).is_err());
        assert!(unpredict(1, &predictor(12, 0), vec![0, 1]).is_err());
        assert!(unpredict(1, &predictor(9, 3), vec![0, 1, 2, 3]).is_err());
        assert!(matches!(
            unpredict(1, &predictor(2, 3), vec![0, 1, 2, 3]),
            Err(StripError::Refused { .. })
        ));
        assert_eq!(unpredict(1, &predictor(1, 3), vec![9, 9]).unwrap(), [9, 9]);
    }

    #[test]
    fn flate_and_its_bounds() {
        let limits = Limits::default();
        let dict: Dict = vec![(Cow::Borrowed(b"Filter"), name(b"FlateDecode"))];
        let mut used = 0;
        let data = vec![7u8; 100_000];
        assert_eq!(
            decode(
                1,
                &dict,
                &deflate(&data),
                &limits,
                &Deadline::start(&limits),
                &mut used
            )
            .unwrap(),
            data
        );
        assert_eq!(used, 100_000);
        assert!(
            decode(
                1,
                &dict,
                b"not zlib",
                &limits,
                &Deadline::start(&limits),
                &mut used
            )
            .is_err()
        );
        // a bomb: 64 MiB + 1 of zeros
        let bomb = deflate(&vec![0u8; (64 << 20) + 1]);
        assert!(bomb.len() < 100_000);
        let e = decode(
            1,
            &dict,
            &bomb,
            &limits,
            &Deadline::start(&limits),
            &mut used,
        )
        .unwrap_err();
        assert!(
            matches!(e, StripError::TooLarge { limit, .. } if limit == 64 << 20),
            "{e}"
        );
        // the whole file's budget
        let small = Limits {
            max_pdf_inflated_bytes: 150_000,
            ..limits
        };
        let e = decode(
            1,
            &dict,
            &deflate(&data),
            &small,
            &Deadline::start(&small),
            &mut used,
        )
        .unwrap_err();
        assert!(
            matches!(e, StripError::TooLarge { limit: 150_000, .. }),
            "{e}"
        );
        // other filters: refused; no filter: the data as it is
        let lzw: Dict = vec![(Cow::Borrowed(b"Filter"), name(b"LZWDecode"))];
        assert!(matches!(
            decode(1, &lzw, b"x", &limits, &Deadline::start(&limits), &mut 0),
            Err(StripError::Refused { .. })
        ));
        let two: Dict = vec![(
            Cow::Borrowed(b"Filter"),
            Obj::Array(vec![name(b"FlateDecode"), name(b"FlateDecode")]),
        )];
        assert!(decode(1, &two, b"x", &limits, &Deadline::start(&limits), &mut 0).is_err());
        assert_eq!(
            decode(
                1,
                &vec![],
                b"abc",
                &limits,
                &Deadline::start(&limits),
                &mut 0
            )
            .unwrap(),
            b"abc"
        );
        // a filter array with its parameters array
        let arr: Dict = vec![
            (
                Cow::Borrowed(b"Filter"),
                Obj::Array(vec![name(b"FlateDecode")]),
            ),
            (
                Cow::Borrowed(b"DecodeParms"),
                Obj::Array(vec![Obj::Dict(predictor(12, 2))]),
            ),
        ];
        assert_eq!(
            decode(
                1,
                &arr,
                &deflate(&[2, 1, 2, 2, 1, 1]),
                &limits,
                &Deadline::start(&limits),
                &mut 0
            )
            .unwrap(),
            [1, 2, 2, 3]
        );
    }
}
