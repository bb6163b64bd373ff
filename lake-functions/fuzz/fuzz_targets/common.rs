//! The property every strip target checks: on any input the stripper returns (no panic, no
//! hang); when it strips, stripping its output again gives the same bytes and removes nothing
//! (the stage is idempotent, and what it writes is something it accepts).

use tarn_lake::strip::{Limits, StripError, Stripped};

pub fn check(strip: fn(&[u8], &Limits) -> Result<Stripped, StripError>, data: &[u8]) {
    // small limits, so huge declared sizes are exercised too
    let limits = Limits {
        max_pixels: 1 << 24,
        max_pdf_objects: 10_000,
        max_pdf_depth: 32,
        max_pdf_stream_bytes: 1 << 20,
        max_pdf_inflated_bytes: 4 << 20,
        pdf_bytes_per_xref_row: 4,
        // no budget: a slow input is libFuzzer's timeout to find, not an error to return
        strip_budget: std::time::Duration::MAX,
    };
    if let Ok(stripped) = strip(data, &limits) {
        let again = match strip(&stripped.bytes, &limits) {
            Ok(again) => again,
            Err(e) => panic!("the stripped output does not strip again: {e}"),
        };
        assert!(
            again.bytes == stripped.bytes,
            "a second strip changed the bytes"
        );
        assert!(
            again.removed.is_empty(),
            "a second strip removed {:?}",
            again.removed
        );
    }
}
