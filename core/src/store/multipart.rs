//! Multipart uploads of the object store port, shaped after S3's: an upload is started for a key
//! with the object's metadata, its parts are stored by number (by the caller, or by whoever holds
//! a presigned part URL), and completing it assembles the parts, in order, into the object.
//! What every implementation guarantees is listed on [`super::ObjectStore`] and checked by
//! [`crate::conformance::object_store`].

use crate::error::{Error, Result};

/// The smallest part but the last (S3's `EntityTooSmall` below it).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

/// The largest part (S3's limit).
pub const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;

/// The highest part number (S3's limit); numbers start at 1.
pub const MAX_PARTS: u32 = 10_000;

/// One stored part of an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// 1 to [`MAX_PARTS`]
    pub number: u32,
    /// the part's version token (compare it, never parse it)
    pub etag: String,
    /// its size in bytes, as stored
    pub size: u64,
}

/// Refuses a part number outside 1..=[`MAX_PARTS`].
pub fn check_part_number(number: u32) -> Result<()> {
    if number == 0 || number > MAX_PARTS {
        return Err(Error::InvalidInput(format!(
            "part number {number} is out of range: number parts from 1 to {MAX_PARTS}"
        )));
    }
    Ok(())
}

/// Checks the parts a completion names against the parts stored (`stored`, by number): at least
/// one, numbers strictly ascending, each stored with the named ETag, every part but the last at
/// least [`MIN_PART_SIZE`]. The stored parts in completion order.
pub fn check_completion(key: &str, named: &[Part], stored: &[Part]) -> Result<Vec<Part>> {
    if named.is_empty() {
        return Err(Error::InvalidInput(format!(
            "completing the upload of {key} names no part: upload at least one part first"
        )));
    }
    let mut out = Vec::with_capacity(named.len());
    for (i, p) in named.iter().enumerate() {
        if i > 0 && p.number <= named[i - 1].number {
            return Err(Error::InvalidInput(format!(
                "the parts of {key} are not in ascending order: name each part once, by number"
            )));
        }
        let s = stored
            .iter()
            .find(|s| s.number == p.number && s.etag.trim_matches('"') == p.etag.trim_matches('"'))
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "part {} of {key} is not stored with etag {}: list the parts again",
                    p.number, p.etag
                ))
            })?;
        out.push(s.clone());
    }
    for p in &out[..out.len() - 1] {
        if p.size < MIN_PART_SIZE {
            return Err(Error::InvalidInput(format!(
                "part {} of {key} has {} bytes: every part but the last needs at least {MIN_PART_SIZE}",
                p.number, p.size
            )));
        }
    }
    Ok(out)
}

/// The error of a store without multipart uploads.
pub(crate) fn unsupported(op: &str) -> Error {
    Error::Config(format!(
        "{op}: this object store has no multipart uploads; use a local or S3 store"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(number: u32, etag: &str, size: u64) -> Part {
        Part {
            number,
            etag: etag.into(),
            size,
        }
    }

    #[test]
    fn completions_are_checked_against_the_stored_parts() {
        let stored = [
            part(1, "a", MIN_PART_SIZE),
            part(2, "b", 3),
            part(3, "c", 1),
        ];
        let ok = check_completion("k", &[part(1, "\"a\"", 0), part(2, "b", 0)], &stored).unwrap();
        assert_eq!(ok, stored[..2].to_vec(), "sizes come from the store");
        for bad in [
            vec![],
            vec![part(2, "b", 0), part(1, "a", 0)],
            vec![part(1, "x", 0)],
            vec![part(4, "d", 0)],
            // part 2 is too small to be followed
            vec![part(1, "a", 0), part(2, "b", 0), part(3, "c", 0)],
        ] {
            let e = check_completion("k", &bad, &stored).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidInput, "{bad:?}");
        }
        check_part_number(1).unwrap();
        check_part_number(MAX_PARTS).unwrap();
        assert!(check_part_number(0).is_err() && check_part_number(MAX_PARTS + 1).is_err());
    }
}
