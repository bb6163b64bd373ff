//! The extended attributes of an object's body file: its user metadata (`user.tarn.meta`, JSON)
//! and its ETag (`user.tarn.etag`, a random token given at every write). Both are set on the temp
//! file before it is renamed into place, so they appear with the body; a hard link (a copy)
//! shares them.

use rustix::io::Errno;
use std::fs::{self, File};
use std::io;
use std::path::Path;

/// The attribute that holds an object's user metadata.
pub(super) const META: &str = "user.tarn.meta";
/// The attribute that holds an object's ETag.
pub(super) const ETAG: &str = "user.tarn.etag";

/// Sets the attribute `name` on an open file.
pub(super) fn set(file: &File, name: &str, value: &[u8]) -> io::Result<()> {
    rustix::fs::fsetxattr(file, name, value, rustix::fs::XattrFlags::empty()).map_err(Into::into)
}

/// A file, by path or open.
#[derive(Clone, Copy)]
pub(super) enum Of<'a> {
    Path(&'a Path),
    File(&'a File),
}

/// The attribute `name` of the file at `path`: `Ok(None)` when it has none.
pub(super) fn get(path: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    get_of(Of::Path(path), name)
}

/// The attribute `name` of a file: `Ok(None)` when it has none.
pub(super) fn get_of(of: Of<'_>, name: &str) -> io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 1024];
    loop {
        let got = match of {
            Of::Path(p) => rustix::fs::getxattr(p, name, &mut buf[..]),
            Of::File(f) => rustix::fs::fgetxattr(f, name, &mut buf[..]),
        };
        match got {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(Errno::NODATA) => return Ok(None),
            Err(Errno::RANGE) if buf.len() < 1 << 20 => buf.resize(buf.len() * 4, 0),
            Err(e) => return Err(e.into()),
        }
    }
}

/// A fresh ETag for a new write.
pub(super) fn new_etag() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Sets a fresh ETag on an open file.
pub(super) fn set_new_etag(file: &File) -> io::Result<()> {
    set(file, ETAG, new_etag().as_bytes())
}

/// The ETag of the file at `path` (`Ok(None)` when there is no file).
pub(super) fn etag(path: &Path, xattrs: bool) -> io::Result<Option<String>> {
    let md = match fs::metadata(path) {
        Ok(md) if md.is_file() => md,
        Ok(_) => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    etag_of(Of::Path(path), &md, xattrs).map(Some)
}

/// The ETag of a file whose metadata is `md`: its `user.tarn.etag`, or, where xattrs are not
/// used or the file predates them, a token of its inode, modification time and size.
pub(super) fn etag_of(of: Of<'_>, md: &fs::Metadata, xattrs: bool) -> io::Result<String> {
    if xattrs {
        match get_of(of, ETAG) {
            Ok(Some(v)) => return Ok(String::from_utf8_lossy(&v).into_owned()),
            Ok(None) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    use std::os::unix::fs::MetadataExt;
    Ok(format!(
        "{:x}-{:x}.{:x}-{:x}",
        md.ino(),
        md.mtime(),
        md.mtime_nsec(),
        md.size()
    ))
}

/// Whether files in `dir` take user xattrs (ext4, xfs, btrfs, tmpfs on recent kernels do).
pub(super) fn work(dir: &Path) -> bool {
    let probe = dir.join(format!(".probe-{}", uuid::Uuid::new_v4()));
    let ok = File::create(&probe)
        .and_then(|f| set(&f, META, b"{}"))
        .is_ok()
        && matches!(get(&probe, META), Ok(Some(v)) if v == b"{}");
    let _ = fs::remove_file(&probe);
    ok
}
