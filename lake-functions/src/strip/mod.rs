//! The strip stage: removes the metadata that identifies a document's owner (EXIF with GPS and
//! serial numbers, XMP, IPTC, comments, text chunks, PDF Info and XMP) before the document can
//! become readable in the lake, without re-encoding anything: the pixels (and PDF page content)
//! are copied byte for byte.
//!
//! Each format is a plain function over bytes that returns the stripped bytes and the names of
//! what it removed, or a [`StripError`] when the input is malformed or cannot be made safe:
//! - [`strip_jpeg`]: walks the marker segments up to SOS, then the entropy-coded data to EOI;
//!   keeps JFIF, ICC and Adobe segments and rewrites EXIF as a minimal block holding only the
//!   Orientation tag;
//! - [`strip_png`]: walks the chunks (CRCs verified), keeps the ones that affect decoding;
//! - [`strip_webp`]: walks the RIFF chunks, drops EXIF/XMP, fixes the VP8X flags and RIFF size;
//! - [`strip_gif`]: walks the blocks, drops comments and application extensions but looping and
//!   ICC;
//! - [`strip_pdf`]: parses the objects reachable from the catalog through the cross-reference
//!   tables or streams (object streams decoded) and writes the whole file anew without the Info dictionary, XMP streams and
//!   unreferenced objects (earlier revisions), so old values are nowhere in the output.
//!
//! [`strip`] picks the function from the media type; [`Strip`] is the pipeline [`Stage`]
//! (`crate::stage::Stage`). Every function is idempotent: stripping its own output changes
//! nothing and removes nothing.
//!
//! [`Stage`]: crate::stage::Stage

mod budget;
mod crc;
mod error;
mod gif;
mod jpeg;
mod pdf;
mod png;
mod stage;
mod webp;

pub use error::StripError;
pub use gif::strip_gif;
pub use jpeg::strip_jpeg;
pub use pdf::strip_pdf;
pub use png::strip_png;
pub use stage::Strip;
pub use webp::strip_webp;

use std::time::Duration;

/// Bounds that keep a hostile file from costing more than it should.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// the largest width × height an image may declare (decompression bombs are refused)
    pub max_pixels: u64,
    /// the most objects a PDF may have reachable from its catalog
    pub max_pdf_objects: usize,
    /// the deepest nesting of PDF arrays and dictionaries
    pub max_pdf_depth: usize,
    /// the most bytes one PDF cross-reference stream or object stream may inflate to (a
    /// decompression bomb is refused, not allocated)
    pub max_pdf_stream_bytes: usize,
    /// the most bytes all the cross-reference and object streams of one PDF may inflate to
    pub max_pdf_inflated_bytes: u64,
    /// the fewest bytes of the file per cross-reference row: all the sections of a PDF together
    /// (every revision's, each row counted once per section that lists it) may list at most
    /// [`PDF_XREF_ROWS_FLOOR`] + file size / this rows (and at most 4 × `max_pdf_objects`), so a
    /// small file cannot declare millions of rows
    pub pdf_bytes_per_xref_row: u64,
    /// the longest one document's strip may take: past it, the work stops and the document is
    /// refused ([`StripError::OverBudget`])
    pub strip_budget: Duration,
}

/// The cross-reference rows any PDF may list, however small the file.
pub const PDF_XREF_ROWS_FLOOR: u64 = 4096;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_pixels: 1 << 29,
            max_pdf_objects: 2_000_000,
            max_pdf_depth: 100,
            max_pdf_stream_bytes: 64 << 20,
            max_pdf_inflated_bytes: 256 << 20,
            pdf_bytes_per_xref_row: 4,
            strip_budget: Duration::from_secs(30),
        }
    }
}

/// A stripped document: its new bytes and the names of what was removed (each once, in the
/// order first met: `exif`, `gps`, `xmp`, `iptc`, `comment`, `app<N>`, `png-text`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stripped {
    pub bytes: Vec<u8>,
    pub removed: Vec<String>,
}

/// The media types that cannot carry metadata beyond their content: they pass unchanged.
pub const NO_METADATA_TYPES: &[&str] = &[
    "text/plain",
    "text/csv",
    "text/markdown",
    "application/octet-stream",
];

/// The media types with a stripper.
pub const STRIPPED_TYPES: &[&str] = &[
    "image/jpeg",
    "image/png",
    "image/webp",
    "image/gif",
    "application/pdf",
];

/// Strips `body` as the media type `media_type` (the detected one, not the declared one).
/// `Ok(None)`: the type has no metadata container and passes unchanged. Any other type (HEIC,
/// TIFF, zip, office documents, ...) is refused with [`StripError::Unsupported`].
pub fn strip(
    media_type: &str,
    body: &[u8],
    limits: &Limits,
) -> Result<Option<Stripped>, StripError> {
    let stripped = match media_type {
        "image/jpeg" => strip_jpeg(body, limits)?,
        "image/png" => strip_png(body, limits)?,
        "image/webp" => strip_webp(body, limits)?,
        "image/gif" => strip_gif(body, limits)?,
        "application/pdf" => strip_pdf(body, limits)?,
        t if NO_METADATA_TYPES.contains(&t) => return Ok(None),
        t => return Err(StripError::Unsupported(t.to_string())),
    };
    Ok(Some(stripped))
}

/// The names of what was removed, each once.
#[derive(Debug, Default)]
pub(crate) struct Removed(Vec<String>);

impl Removed {
    pub(crate) fn add(&mut self, name: &str) {
        if !self.0.iter().any(|n| n == name) {
            self.0.push(name.to_string());
        }
    }

    pub(crate) fn into_vec(self) -> Vec<String> {
        self.0
    }
}

/// A short printable form of a four-byte tag for names and messages: lowercase letters and
/// digits as they are, anything else as `_`.
pub(crate) fn tag_name(tag: &[u8]) -> String {
    tag.iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() {
                b.to_ascii_lowercase() as char
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_end_matches('_')
        .to_string()
}
