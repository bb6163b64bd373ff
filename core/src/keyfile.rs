//! Secret key files created exactly once.
//!
//! A key is written to a temporary file with a name no other creator uses, synced, then
//! hard-linked to its final name: `link` fails when the name exists, so a key file, once there,
//! is never replaced or truncated, however many processes race to create it. The key's directory
//! is synced before the key is used, so a key something was sealed under survives a power loss.
//!
//! A crash at any step leaves either no key (the next start creates one) or the whole key, plus
//! at most a temporary file, which [`create_once`] removes once the key is in place.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Makes sure `path` holds a key: when no file is there, writes `make()`'s bytes (mode 0600) and
/// links them into place; a file already there (or one another process linked first) is kept
/// untouched. Returns whether this call's key is the one in place. Syncs the key's directory and
/// removes the temporary files crashed creations left beside it.
pub fn create_once(path: &Path, make: impl FnOnce() -> Result<Vec<u8>>) -> Result<bool> {
    let dir = parent(path)?;
    if !dir.is_dir() {
        std::fs::create_dir_all(dir).map_err(Error::io("creating key directory", dir))?;
        if let Some(up) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(up)?;
        }
    }
    let exists = path
        .try_exists()
        .map_err(Error::io("looking for key file", path))?;
    let created = if exists {
        false
    } else {
        let contents = zeroize::Zeroizing::new(make()?);
        link_new(path, &contents)?
    };
    sync_dir(dir)?;
    remove_leftovers(path);
    Ok(created)
}

/// Writes `contents` to a fresh temporary file beside `path` and links it to `path`. `Ok(false)`
/// when a key was already in place.
fn link_new(path: &Path, contents: &[u8]) -> Result<bool> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = temp_path(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(Error::io("creating key file", &tmp))?;
    if let Err(e) = f.write_all(contents).and_then(|_| f.sync_all()) {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io("writing key file", &tmp)(e));
    }
    drop(f);
    // link, not rename: never replaces a key that already exists
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        // another process's clean-up took the temporary file: that process had the key in place
        Err(_) if path.exists() => Ok(false),
        Err(e) => Err(Error::io("creating key file", path)(e)),
    }
}

/// `<dir>/<name>.<uuid>.tmp`: unique to this creation.
fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!("{name}.{}.tmp", uuid::Uuid::new_v4()))
}

fn parent(path: &Path) -> Result<&Path> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => Ok(p),
        _ => Ok(Path::new(".")),
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("syncing key directory", dir))
}

/// Whether `name` is a temporary file of a creation of the key named `key_name`: this module's
/// `<key name>.<uuid>.tmp`, and the `<stem>.tmp`, `<stem>.<id>.tmp` and `<stem>.tmp<pid>` of
/// earlier versions.
fn is_leftover(name: &str, key_name: &str) -> bool {
    let stem = key_name.split('.').next().unwrap_or(key_name);
    let Some(rest) = name.strip_prefix(stem).and_then(|r| r.strip_prefix('.')) else {
        return false;
    };
    name != key_name
        && (rest == "tmp"
            || rest.ends_with(".tmp")
            || rest
                .strip_prefix("tmp")
                .is_some_and(|pid| pid.bytes().all(|b| b.is_ascii_digit())))
}

/// Removes the temporary files beside `path`. Called only once `path` is in place: a creator
/// still running whose file goes away finds the key there and keeps it.
fn remove_leftovers(path: &Path) {
    let (Some(dir), Some(key_name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let key_name = key_name.to_string_lossy();
    let Ok(entries) = std::fs::read_dir(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    }) else {
        return;
    };
    for entry in entries.flatten() {
        if is_leftover(&entry.file_name().to_string_lossy(), &key_name) {
            // a hard link to the key (a crash between link and unlink) only loses a name
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn creates_once_private_and_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/master.key");
        assert!(create_once(&path, || Ok(b"first".to_vec())).unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!create_once(&path, || panic!("no key is made when one is there")).unwrap());
        // a creator that found no key but lost the race keeps the winner's
        assert!(!link_new(&path, b"second").unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        assert_eq!(names(&dir.path().join("keys")), ["master.key"]);
    }

    #[test]
    fn a_failing_generator_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let err = create_once(&path, || Err(Error::Crypto("no entropy".into()))).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Crypto);
        assert!(names(dir.path()).is_empty());
    }

    #[test]
    fn leftovers_are_recognised() {
        for (name, leftover) in [
            ("master.key.0b7c4b0e-2f3b-4a4c-9a57-5b1e0f6d2c11.tmp", true),
            ("master.tmp", true),
            ("master.0b7c4b0e.tmp", true),
            ("master.tmp4242", true),
            ("master.tmpx", false),
            ("master.key", false),
            ("master.key.bak", false),
            ("issuer.der", false),
            ("masterx.tmp", false),
            ("other.tmp", false),
        ] {
            assert_eq!(is_leftover(name, "master.key"), leftover, "{name}");
        }
    }
}
