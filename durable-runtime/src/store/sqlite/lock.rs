//! The process lock on the database file itself.
//!
//! The lock is an advisory `flock`-style lock ([`File::try_lock`]) on the file the path resolves
//! to, so a second runtime reaching the same database through a symlink or a hard link is
//! refused as well as one using the same path. On Linux it is independent of the `fcntl` locks
//! SQLite takes, but closing *any* descriptor of a file drops every `fcntl` lock the process holds
//! on it: the lock's descriptor therefore stays open until every SQLite connection of the store
//! is closed ([`FileLock`] is dropped last), and a second open attempt in the same process is
//! refused from a table of locked files before it opens a descriptor of its own.

use crate::store::StoreError;
use parking_lot::Mutex;
use std::fs::{File, TryLockError};
use std::path::Path;

/// Identity of a file, whatever path reaches it.
type FileKey = (u64, u64);

/// Files this process holds locked (by identity).
static LOCKED: Mutex<Vec<FileKey>> = Mutex::new(Vec::new());

/// The held lock; released when dropped (or when the process dies, even by `kill -9`).
#[derive(Debug)]
pub(crate) struct FileLock {
    file: Option<File>,
    key: Option<FileKey>,
}

#[cfg(unix)]
fn key_of(metadata: &std::fs::Metadata) -> Option<FileKey> {
    use std::os::unix::fs::MetadataExt;
    Some((metadata.dev(), metadata.ino()))
}

#[cfg(not(unix))]
fn key_of(_metadata: &std::fs::Metadata) -> Option<FileKey> {
    None
}

/// Locks the database file at `path` (created empty if missing), or fails with
/// [`StoreError::Locked`] if another store (in this process or another) holds it.
pub(crate) fn lock(path: &Path) -> Result<FileLock, StoreError> {
    let io_err = |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    };
    let locked = || StoreError::Locked {
        path: path.display().to_string(),
    };
    let mut table = LOCKED.lock();
    // Refuse a file this process holds without opening (and then closing) a descriptor of it.
    if let Some(key) = std::fs::metadata(path).ok().as_ref().and_then(key_of)
        && table.contains(&key)
    {
        return Err(locked());
    }
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io_err)?;
    let key = key_of(&file.metadata().map_err(io_err)?);
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Err(locked()),
        Err(TryLockError::Error(source)) => return Err(io_err(source)),
    }
    if let Some(key) = key {
        table.push(key);
    }
    Ok(FileLock {
        file: Some(file),
        key,
    })
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let mut table = LOCKED.lock();
        // Close (and unlock) first, then let this process lock the file again.
        drop(self.file.take());
        if let Some(key) = self.key {
            table.retain(|held| *held != key);
        }
    }
}
