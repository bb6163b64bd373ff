//! How old a ClamAV signature database is: the build time in the 512-byte header of its
//! `*.cvd` and `*.cld` files (`ClamAV-VDB:<date>:<version>:<signatures>:<level>:<md5>:<signature>:<builder>:<unix time>`).

use chrono::{DateTime, Utc};
use std::io::Read;
use std::path::Path;

/// The build time of the newest database file in `dir`; `None` when it holds none (or only
/// tarn's test signatures, which carry no header).
pub fn built_at(dir: &Path) -> Option<DateTime<Utc>> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .is_some_and(|x| x.eq_ignore_ascii_case("cvd") || x.eq_ignore_ascii_case("cld"))
        })
        .filter_map(|p| {
            let mut head = [0u8; 512];
            let mut f = std::fs::File::open(&p).ok()?;
            let n = f.read(&mut head).ok()?;
            header_time(&head[..n])
        })
        .max()
}

/// The build time in a database header.
pub fn header_time(head: &[u8]) -> Option<DateTime<Utc>> {
    let text = std::str::from_utf8(head.split(|b| *b == 0).next()?).ok()?;
    let fields: Vec<&str> = text.trim_end().split(':').collect();
    if fields.first() != Some(&"ClamAV-VDB") {
        return None;
    }
    let secs: i64 = fields.get(8)?.trim().parse().ok()?;
    DateTime::from_timestamp(secs, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(stime: i64) -> Vec<u8> {
        let mut h = format!(
            "ClamAV-VDB:30 Nov 2026 09-21 +0000:27480:2067012:90:0123abcd:sig:builder:{stime}"
        )
        .into_bytes();
        h.resize(512, b' ');
        h
    }

    #[test]
    fn the_newest_database_header_tells_the_age() {
        let dir = tempfile::tempdir().unwrap();
        let mut daily = header(1_764_494_461);
        daily.extend_from_slice(b"\x1f\x8b rest of the archive");
        std::fs::write(dir.path().join("daily.cld"), daily).unwrap();
        std::fs::write(dir.path().join("main.cvd"), header(1_700_000_000)).unwrap();
        std::fs::write(dir.path().join("tarn-test.ndb"), b"Test:0:*:414243").unwrap();
        assert_eq!(
            built_at(dir.path()),
            DateTime::from_timestamp(1_764_494_461, 0)
        );
        assert_eq!(header_time(b"not a database"), None);
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(built_at(empty.path()), None);
        assert_eq!(built_at(&dir.path().join("missing")), None);
    }
}
