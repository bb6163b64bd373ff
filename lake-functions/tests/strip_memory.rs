//! The PDF stripper's memory on a hostile file, measured by a counting global allocator: the
//! attack is a ~253 KB PDF whose `/Prev` chain holds 33 cross-reference streams, each declaring
//! 8 M one-byte rows (`/W [0 0 1]`) of zeros that deflate ~1000:1. Every section stays inside
//! the per-stream and per-file bounds on inflated bytes and on entries, yet building its tables
//! once took ~1.6 GB (and minutes). The total rows across all sections are bounded in
//! proportion to the file's size and counted before a section is inflated, so the file is
//! refused at once; and the most rows a file of that size may list stay far under the bound.
//!
//! One test in this binary: the allocator's peak is the process's, and tests run in parallel.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use tarn_lake::strip::{Limits, PDF_XREF_ROWS_FLOOR, StripError, strip_pdf};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size > layout.size() {
                grew(new_size - layout.size());
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The bound the stripper's peak allocation stays under on the attack file.
const PEAK_BOUND: usize = 64 << 20;

/// The attack: `sections` cross-reference streams chained by /Prev, each with `rows` one-byte
/// rows of zeros, deflated; padded with a comment to `size` bytes (when larger).
fn xref_bomb(sections: u32, rows: u32, size: usize) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..rows as usize / zeros.len() {
        e.write_all(&zeros).unwrap();
    }
    e.write_all(&zeros[..rows as usize % zeros.len()]).unwrap();
    let data = e.finish().unwrap();
    let mut out = b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n".to_vec();
    out.extend_from_slice(b"1 0 obj\n<< /Type /Catalog >>\nendobj\n");
    let tail = |at: usize| format!("startxref\n{at}\n%%EOF\n");
    let mut prev: Option<usize> = None;
    for i in 0..sections {
        let at = out.len();
        let prev_entry = prev.map(|p| format!(" /Prev {p}")).unwrap_or_default();
        out.extend_from_slice(
            format!(
                "{} 0 obj\n<< /Type /XRef /Size {rows} /W [0 0 1] /Root 1 0 R /Filter /FlateDecode /Length {}{prev_entry} >>\nstream\n",
                i + 2,
                data.len()
            )
            .as_bytes(),
        );
        out.extend_from_slice(&data);
        out.extend_from_slice(b"\nendstream\nendobj\n");
        prev = Some(at);
    }
    let tail = tail(prev.unwrap());
    if out.len() + tail.len() + 2 < size {
        out.push(b'%');
        out.resize(size - tail.len() - 1, b'x');
        out.push(b'\n');
    }
    out.extend_from_slice(tail.as_bytes());
    out
}

/// Strips `input`, returning the result and the peak bytes allocated meanwhile.
fn measured(
    input: &[u8],
    limits: &Limits,
) -> (Result<tarn_lake::strip::Stripped, StripError>, usize) {
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let started = std::time::Instant::now();
    let result = strip_pdf(input, limits);
    let elapsed = started.elapsed();
    let peak = PEAK.load(Ordering::Relaxed) - before;
    eprintln!(
        "{} bytes: peak {peak} bytes, {elapsed:?}: {:?}",
        input.len(),
        result.as_ref().map(|s| &s.removed)
    );
    (result, peak)
}

#[test]
fn a_cross_reference_bomb_is_refused_with_a_small_peak() {
    let limits = Limits::default();
    // inside every per-stream and per-file bound but the rows': 8 M rows = max_pdf_objects × 4
    // per section, 33 × 8 MB inflated ≤ 256 MiB
    let rows = (limits.max_pdf_objects * 4) as u32;
    let sections = (limits.max_pdf_inflated_bytes / rows as u64) as u32;
    assert_eq!(sections, 33);
    let input = xref_bomb(sections, rows, 0);
    assert!((240_000..270_000).contains(&input.len()), "{}", input.len());
    let (result, peak) = measured(&input, &limits);
    let e = result.unwrap_err();
    assert!(
        matches!(
            e,
            StripError::TooLarge {
                what: "cross-reference rows",
                value: 8_000_000,
                ..
            }
        ),
        "{e}"
    );
    assert!(peak < PEAK_BOUND, "peak {peak} bytes >= {PEAK_BOUND}");

    // the most a file of 256 KiB may list: its rows in one section, then in 33 (refused at the
    // second); both within the bound
    let size = 256 << 10;
    let most = (PDF_XREF_ROWS_FLOOR + size as u64 / limits.pdf_bytes_per_xref_row) as u32;
    let one = xref_bomb(1, most, size);
    assert_eq!(one.len(), size);
    let (result, peak) = measured(&one, &limits);
    // the rows all point at offset 0, where the header's comments are skipped to the catalog
    assert_eq!(result.unwrap().removed, ["pdf-history"]);
    assert!(peak < PEAK_BOUND, "peak {peak} bytes >= {PEAK_BOUND}");
    let many = xref_bomb(sections, most, size);
    let (result, peak) = measured(&many, &limits);
    let e = result.unwrap_err();
    assert!(
        matches!(
            e,
            StripError::TooLarge {
                what: "cross-reference rows",
                ..
            }
        ),
        "{e}"
    );
    assert!(peak < PEAK_BOUND, "peak {peak} bytes >= {PEAK_BOUND}");
}
