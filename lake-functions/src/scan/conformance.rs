//! The conformance suite of the [`Scanner`] port: one async function every engine must pass,
//! run by the tests against each implementation (clamd over TCP and over a unix socket, with
//! and without sessions). It panics (asserts) on the first broken guarantee.
//!
//! The test files are made here at run time: the EICAR test file is assembled from pieces (so
//! this repository does not hold the signature itself), zips are written by hand (stored, no
//! compression: a local header per entry, a central directory, its end record).

use super::{ScanVerdict, Scanner};

/// The EICAR anti-virus test file (68 bytes), assembled at run time.
pub fn eicar() -> Vec<u8> {
    let parts: [&[u8]; 4] = [
        b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$",
        b"EICAR-STANDARD-",
        b"ANTIVIRUS-TEST-",
        b"FILE!$H+H*",
    ];
    let out = parts.concat();
    debug_assert_eq!(out.len(), 68);
    out
}

/// A zip archive holding `entries` (name, bytes) stored without compression.
pub fn stored_zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in entries {
        let offset = u32::try_from(out.len()).expect("a test zip under 4 GiB");
        let crc = crc32(data);
        let size = u32::try_from(data.len()).expect("a test zip under 4 GiB");
        let name_len = u16::try_from(name.len()).expect("a short entry name");
        // local file header
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        out.extend_from_slice(&10u16.to_le_bytes()); // version needed: 1.0
        out.extend_from_slice(&0u16.to_le_bytes()); // flags
        out.extend_from_slice(&0u16.to_le_bytes()); // method: stored
        out.extend_from_slice(&0u16.to_le_bytes()); // time
        out.extend_from_slice(&0x21u16.to_le_bytes()); // date: 1980-01-01
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes()); // compressed
        out.extend_from_slice(&size.to_le_bytes()); // uncompressed
        out.extend_from_slice(&name_len.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes()); // extra length
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        // central directory header
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes()); // version made by
        central.extend_from_slice(&10u16.to_le_bytes()); // version needed
        central.extend_from_slice(&0u16.to_le_bytes()); // flags
        central.extend_from_slice(&0u16.to_le_bytes()); // method
        central.extend_from_slice(&0u16.to_le_bytes()); // time
        central.extend_from_slice(&0x21u16.to_le_bytes()); // date
        central.extend_from_slice(&crc.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&name_len.to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes()); // extra length
        central.extend_from_slice(&0u16.to_le_bytes()); // comment length
        central.extend_from_slice(&0u16.to_le_bytes()); // disk number
        central.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
        central.extend_from_slice(&0u32.to_le_bytes()); // external attributes
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let count = u16::try_from(entries.len()).expect("a test zip with few entries");
    let central_offset = u32::try_from(out.len()).expect("a test zip under 4 GiB");
    let central_size = u32::try_from(central.len()).expect("a test zip under 4 GiB");
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes()); // this disk
    out.extend_from_slice(&0u16.to_le_bytes()); // disk with the central directory
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&central_size.to_le_bytes());
    out.extend_from_slice(&central_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes()); // comment length
    out
}

/// CRC-32 (IEEE, as zip uses it), bit by bit: test files are small.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Harmless text of `len` bytes (lines of words and numbers), the same every time.
pub fn clean_text(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 64);
    let mut i = 0u64;
    while out.len() < len {
        out.extend_from_slice(
            format!(
                "line {i}: the quick brown fox jumps over the lazy dog {}\n",
                i * 7919 % 1000
            )
            .as_bytes(),
        );
        i += 1;
    }
    out.truncate(len);
    out
}

async fn expect_infected(scanner: &dyn Scanner, body: &[u8], what: &str) -> String {
    match scanner.scan(body).await {
        Ok(ScanVerdict::Infected(name)) => {
            assert!(
                !name.is_empty(),
                "{what}: an infected verdict names its signature"
            );
            name
        }
        other => panic!("{what}: expected an infected verdict, got {other:?}"),
    }
}

async fn expect_clean(scanner: &dyn Scanner, body: &[u8], what: &str) {
    match scanner.scan(body).await {
        Ok(ScanVerdict::Clean) => {}
        other => panic!("{what}: expected clean, got {other:?}"),
    }
}

/// Scanner guarantees. `live` is a working engine with a database that detects EICAR;
/// `unreachable` is the same kind of scanner pointed at an engine that is not there (nothing
/// listening, a socket path that does not exist). `over_limit`, when the engine has a stream
/// size limit, is a body size over it (clamd: more than its `StreamMaxLength`).
pub async fn scanner(live: &dyn Scanner, unreachable: &dyn Scanner, over_limit: Option<usize>) {
    // the engine answers and names itself
    live.ping().await.expect("ping a live engine");
    let version = live.version().await.expect("version of a live engine");
    assert!(
        !version.engine.is_empty() && !version.version.is_empty(),
        "the version names the engine: {version:?}"
    );

    // EICAR, bare, in a zip, in a zip in a zip
    let eicar = eicar();
    expect_infected(live, &eicar, "the EICAR test file").await;
    let zip = stored_zip(&[("readme.txt", b"nothing to see"), ("eicar.com", &eicar)]);
    expect_infected(live, &zip, "EICAR inside a zip").await;
    let nested = stored_zip(&[("inner.zip", &zip)]);
    expect_infected(live, &nested, "EICAR inside a zip inside a zip").await;

    // clean files pass: empty, small, spanning many chunks, a zip of clean files
    expect_clean(live, b"", "an empty body").await;
    expect_clean(
        live,
        b"{\"user\": \"ada\", \"n\": 1}",
        "a small JSON document",
    )
    .await;
    let big = clean_text(300 * 1024 + 17);
    expect_clean(live, &big, "a 300 KiB text").await;
    expect_clean(
        live,
        &stored_zip(&[("a.txt", b"hello"), ("b.txt", &big[..1000])]),
        "a zip of clean files",
    )
    .await;
    // a detected member after a large clean one is still found
    expect_infected(
        live,
        &stored_zip(&[("big.txt", &big), ("eicar.com", &eicar)]),
        "EICAR after a large zip member",
    )
    .await;

    // scans are independent: concurrent scans each get their own verdict
    let bodies: Vec<Vec<u8>> = (0..12)
        .map(|i| {
            if i % 3 == 0 {
                eicar.clone()
            } else {
                clean_text(1000 + i * 4099)
            }
        })
        .collect();
    let verdicts = futures::future::join_all(bodies.iter().map(|b| live.scan(b))).await;
    for (i, v) in verdicts.into_iter().enumerate() {
        match (i % 3 == 0, v) {
            (true, Ok(ScanVerdict::Infected(_))) | (false, Ok(ScanVerdict::Clean)) => {}
            (infected, other) => {
                panic!("concurrent scan {i} (infected: {infected}): got {other:?}")
            }
        }
    }

    // a body over the engine's limit is not clean, and the scanner recovers from it
    if let Some(size) = over_limit {
        let body = clean_text(size);
        let got = live.scan(&body).await;
        assert!(
            got.is_err(),
            "a {size}-byte body over the engine's limit must fail, got {got:?}"
        );
        expect_clean(live, b"after the limit", "a clean body after a refused one").await;
        expect_infected(live, &eicar, "EICAR after a refused body").await;
    }

    // an engine that is not there is never clean
    for body in [&b""[..], b"clean text", &eicar] {
        let got = unreachable.scan(body).await;
        assert!(
            got.is_err(),
            "a scan by an unreachable engine must fail, got {got:?}"
        );
    }
    assert!(
        unreachable.ping().await.is_err(),
        "ping of an unreachable engine fails"
    );
    assert!(
        unreachable.version().await.is_err(),
        "version of an unreachable engine fails"
    );

    // and the live one still works after all that
    live.ping().await.expect("ping at the end");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn eicar_is_assembled() {
        let e = eicar();
        assert_eq!(e.len(), 68);
        assert!(e.starts_with(b"X5O!P%@AP"));
        assert!(e.ends_with(b"$H+H*"));
    }

    #[test]
    fn stored_zip_layout() {
        let z = stored_zip(&[("a.txt", b"hello")]);
        assert_eq!(&z[..4], b"PK\x03\x04");
        // local header 30 + name 5 + data 5; central 46 + name 5; end 22
        assert_eq!(z.len(), 30 + 5 + 5 + 46 + 5 + 22);
        let end = &z[z.len() - 22..];
        assert_eq!(&end[..4], b"PK\x05\x06");
        assert_eq!(
            u32::from_le_bytes(end[16..20].try_into().unwrap()),
            40,
            "central directory offset"
        );
        assert_eq!(&z[40..44], b"PK\x01\x02");
    }

    #[test]
    fn clean_text_has_the_length_asked() {
        assert_eq!(clean_text(0).len(), 0);
        assert_eq!(clean_text(12345).len(), 12345);
        assert_eq!(clean_text(100), clean_text(100));
    }
}
