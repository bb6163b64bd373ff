//! tarn's built-in scanning engine, for machines without clamd: byte-pattern signatures shipped
//! with tarn (the EICAR test file and tarn's test marker), searched in the whole body and inside
//! stored (uncompressed) zip members. It knows no real malware: it exists so that a platform
//! without clamd still runs every document through a scan that can say "infected", and it names
//! itself in every `documents` row (`tarn-builtin 1/test-signatures`). It refuses, rather than
//! passes, what it cannot read: compressed archives (zip deflate, gzip) and bodies over its size
//! limit are errors, never clean. Configure clamd (`--clamd`) for real protection.

use super::{EngineVersion, ScanError, ScanVerdict, Scanner};
use async_trait::async_trait;

/// The largest body the built-in engine reads.
pub const MAX_BYTES: usize = 64 << 20;

#[derive(Debug, Clone)]
pub struct BuiltinScanner {
    signatures: Vec<(&'static str, Vec<u8>)>,
    max_bytes: usize,
}

impl Default for BuiltinScanner {
    fn default() -> Self {
        // assembled from pieces, so this source file is not itself detected as EICAR
        let eicar = [
            "X5O!P%@AP[4\\PZX54(P^)7CC)7}$",
            "EICAR-STANDARD-ANTIVIRUS-TEST-FILE",
            "!$H+H*",
        ]
        .concat();
        Self {
            signatures: vec![
                ("Eicar-Test-Signature.TARN", eicar.into_bytes()),
                (
                    "Tarn-Test-Malware-Marker.TARN",
                    ["TARN-TEST-", "MALWARE-MARKER"].concat().into_bytes(),
                ),
            ],
            max_bytes: MAX_BYTES,
        }
    }
}

impl BuiltinScanner {
    pub fn with_max_bytes(mut self, n: usize) -> Self {
        self.max_bytes = n;
        self
    }

    fn find(&self, body: &[u8]) -> Option<&'static str> {
        self.signatures
            .iter()
            .find(|(_, pattern)| {
                !pattern.is_empty() && body.windows(pattern.len()).any(|w| w == pattern.as_slice())
            })
            .map(|(name, _)| *name)
    }
}

/// Whether a zip has a member whose bytes are compressed (so a byte search cannot see them).
fn zip_has_compressed_member(body: &[u8]) -> bool {
    let mut i = 0;
    while i + 30 <= body.len() {
        if &body[i..i + 4] == b"PK\x03\x04" {
            let method = u16::from_le_bytes([body[i + 8], body[i + 9]]);
            if method != 0 {
                return true;
            }
        }
        i += 1;
    }
    false
}

#[async_trait]
impl Scanner for BuiltinScanner {
    async fn scan(&self, body: &[u8]) -> Result<ScanVerdict, ScanError> {
        if body.len() > self.max_bytes {
            return Err(ScanError::Refused(format!(
                "the built-in engine reads at most {} bytes",
                self.max_bytes
            )));
        }
        if let Some(name) = self.find(body) {
            return Ok(ScanVerdict::Infected(name.to_string()));
        }
        if body.starts_with(&[0x1F, 0x8B])
            || (body.starts_with(b"PK") && zip_has_compressed_member(body))
        {
            return Err(ScanError::Refused(
                "the built-in engine cannot look inside compressed archives; configure clamd (--clamd)".into(),
            ));
        }
        Ok(ScanVerdict::Clean)
    }

    async fn version(&self) -> Result<EngineVersion, ScanError> {
        Ok(EngineVersion {
            engine: "tarn-builtin".into(),
            version: "1".into(),
            database: Some("test-signatures".into()),
        })
    }

    async fn ping(&self) -> Result<(), ScanError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::{ClamdScanner, Timeouts, conformance};

    #[tokio::test]
    async fn builtin_engine_passes_the_scanner_conformance_suite() {
        let dead = ClamdScanner::connect("tcp://127.0.0.1:9", Timeouts::default()).unwrap();
        conformance::scanner(
            &BuiltinScanner::default().with_max_bytes(1 << 20),
            &dead,
            Some(2 << 20),
        )
        .await;
    }

    #[tokio::test]
    async fn compressed_archives_are_not_clean() {
        let s = BuiltinScanner::default();
        let mut deflated_zip = b"PK\x03\x04\x14\x00\x00\x00\x08\x00".to_vec();
        deflated_zip.resize(64, 0);
        assert!(s.scan(&deflated_zip).await.is_err());
        assert!(s.scan(&[0x1F, 0x8B, 8, 0, 0, 0]).await.is_err());
        assert_eq!(s.scan(b"just text").await.unwrap(), ScanVerdict::Clean);
    }
}
