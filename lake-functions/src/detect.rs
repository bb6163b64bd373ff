//! The real content type of a document, from its first bytes (magic numbers).

/// The media type the bytes are, when they are one tarn recognizes.
pub fn detect(bytes: &[u8]) -> Option<&'static str> {
    let starts = |m: &[u8]| bytes.starts_with(m);
    if starts(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if starts(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.len() >= 12 && starts(b"RIFF") && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else if starts(b"GIF87a") || starts(b"GIF89a") {
        Some("image/gif")
    } else if starts(b"%PDF-") {
        Some("application/pdf")
    } else if starts(b"II*\0") || starts(b"MM\0*") {
        Some("image/tiff")
    } else if bytes.len() >= 12
        && &bytes[4..8] == b"ftyp"
        && matches!(&bytes[8..12], b"heic" | b"heix" | b"mif1" | b"msf1")
    {
        Some("image/heic")
    } else if starts(b"PK\x03\x04") || starts(b"PK\x05\x06") {
        Some("application/zip")
    } else if starts(&[0x1F, 0x8B]) {
        Some("application/gzip")
    } else if looks_like_text(bytes) {
        Some("text/plain")
    } else {
        None
    }
}

fn looks_like_text(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(8192)];
    // valid UTF-8, or valid up to a character the 8 KiB window cut
    let utf8 = match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    };
    !head.is_empty()
        && utf8
        && !head
            .iter()
            .any(|&b| b < 0x09 || (b > 0x0D && b < 0x20 && b != 0x1B))
}

/// Whether bytes detected as `detected` may be declared as `declared`.
pub fn matches_declared(declared: &str, detected: Option<&str>) -> bool {
    match (declared, detected) {
        (d, Some(t)) if d == t => true,
        // text formats are text
        ("text/csv" | "text/plain" | "text/markdown", Some("text/plain")) => true,
        // anything is octets
        ("application/octet-stream", _) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_numbers() {
        assert_eq!(
            detect(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10]),
            Some("image/jpeg")
        );
        assert_eq!(detect(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), Some("image/png"));
        assert_eq!(detect(b"RIFF\x10\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(detect(b"%PDF-1.7\n"), Some("application/pdf"));
        assert_eq!(detect(b"a,b\n1,2\n"), Some("text/plain"));
        assert_eq!(detect(&[0, 1, 2, 3, 0xFF]), None);
        assert_eq!(detect(b""), None);
    }

    #[test]
    fn declared_types() {
        assert!(matches_declared("image/png", Some("image/png")));
        assert!(!matches_declared("image/png", Some("image/jpeg")));
        assert!(!matches_declared("image/jpeg", Some("text/plain")));
        assert!(matches_declared("text/csv", Some("text/plain")));
        assert!(matches_declared("application/octet-stream", None));
        assert!(!matches_declared("application/pdf", None));
    }
}
