//! Content-addressed blob store: `<root>/sha256/ab/cd/<hex>`. Writes go to a temp file in the
//! same directory tree, are fsynced, then renamed into place (atomic on POSIX), so a blob path
//! either holds the complete bytes or does not exist. A blob is re-hashed before it is trusted
//! when the database does not already vouch for it (e.g. after a crash between the rename and
//! the commit that records it).

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::hash::Sha256;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cause is part of the message, not a `source` as well: error chains printed whole
    /// (`{:#}`) said it twice.
    #[error("blob i/o at {path}: {cause}")]
    Io { path: PathBuf, cause: io::Error },
    #[error("blob {sha256} is damaged: its bytes hash to {actual}")]
    Corrupt { sha256: String, actual: String },
    #[error("blob {sha256} is not stored")]
    Missing { sha256: String },
    #[error("the input is empty")]
    Empty,
    #[error("the input is larger than {max} bytes")]
    TooLarge { max: u64 },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |cause| Error::Io { path: path.to_path_buf(), cause }
}

pub struct BlobStore {
    root: PathBuf,
}

/// What `put` learned in its single pass over the input.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub sha256: String,
    pub size: u64,
    /// False when the same bytes were already stored (deduplicated).
    pub new: bool,
}

pub const MAX_BLOB: u64 = 200 * 1024 * 1024;
/// An unlocked temp file older than this is an abandoned write.
const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

impl BlobStore {
    pub fn open(root: &Path) -> Result<Self, Error> {
        fs::create_dir_all(root.join("tmp")).map_err(io_err(root))?;
        // Leftover temp files are from writes that never completed: never trusted, removed.
        // A writer holds an exclusive lock on its temp file for as long as it writes (another
        // process, e.g. a share extension or a background sync, may be mid-ingest), so only
        // files nobody holds are abandoned; a lock dies with its process.
        if let Ok(dir) = fs::read_dir(root.join("tmp")) {
            for e in dir.flatten() {
                // A file younger than a minute may be between its creation and its lock.
                let young = e.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok()).is_none_or(|age| age < ABANDONED_AFTER);
                let Ok(f) = File::open(e.path()) else { continue };
                if !young && f.try_lock().is_ok() {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        Ok(Self { root: root.to_path_buf() })
    }

    pub fn path(&self, sha256: &str) -> PathBuf {
        let (a, b) = (sha256.get(0..2).unwrap_or("00"), sha256.get(2..4).unwrap_or("00"));
        self.root.join("sha256").join(a).join(b).join(sha256)
    }

    pub fn contains(&self, sha256: &str) -> bool {
        crate::hash::is_sha256_hex(sha256) && self.path(sha256).is_file()
    }

    /// Streams `input` into the store in one pass, hashing as it copies.
    pub fn put(&self, mut input: impl Read) -> Result<Stored, Error> {
        let tmp_dir = self.root.join("tmp");
        let tmp = tmp_dir.join(format!("{}-{}", std::process::id(), unique()));
        let mut file = File::create(&tmp).map_err(io_err(&tmp))?;
        // Held until the file is renamed or removed: `open` in another process leaves it be.
        file.try_lock().map_err(|e| Error::Io { path: tmp.clone(), cause: io::Error::other(e.to_string()) })?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut size = 0u64;
        let result = (|| -> Result<(), Error> {
            loop {
                let n = match input.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Error::Io { path: tmp.clone(), cause: e }),
                };
                size += n as u64;
                if size > MAX_BLOB {
                    return Err(Error::TooLarge { max: MAX_BLOB });
                }
                hasher.update(&buf[..n]);
                file.write_all(&buf[..n]).map_err(io_err(&tmp))?;
            }
            if size == 0 {
                return Err(Error::Empty);
            }
            file.sync_all().map_err(io_err(&tmp))
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        let sha256 = crate::hash::hex(&hasher.finalize());
        let dest = self.path(&sha256);
        if dest.is_file() {
            let _ = fs::remove_file(&tmp);
            return Ok(Stored { sha256, size, new: false });
        }
        let parent = dest.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&parent).map_err(io_err(&parent))?;
        fs::rename(&tmp, &dest).map_err(io_err(&dest))?;
        drop(file);
        // Make the rename itself durable.
        if let Ok(d) = File::open(&parent) {
            let _ = d.sync_all();
        }
        Ok(Stored { sha256, size, new: true })
    }

    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Stored, Error> {
        self.put(bytes)
    }

    /// Opens a blob after re-hashing it: what a reader uses when the database does not
    /// vouch for the file.
    pub fn verify(&self, sha256: &str) -> Result<u64, Error> {
        let path = self.path(sha256);
        let mut f = File::open(&path).map_err(|_| Error::Missing { sha256: sha256.to_string() })?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut size = 0u64;
        loop {
            let n = f.read(&mut buf).map_err(io_err(&path))?;
            if n == 0 {
                break;
            }
            size += n as u64;
            hasher.update(&buf[..n]);
        }
        let actual = crate::hash::hex(&hasher.finalize());
        if actual != sha256 {
            return Err(Error::Corrupt { sha256: sha256.to_string(), actual });
        }
        Ok(size)
    }

    pub fn read(&self, sha256: &str) -> Result<Vec<u8>, Error> {
        let path = self.path(sha256);
        fs::read(&path).map_err(|_| Error::Missing { sha256: sha256.to_string() })
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    t ^ N.fetch_add(1, Ordering::Relaxed).rotate_left(40)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_dedups_verifies_and_detects_damage() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let a = store.put_bytes(b"abc").unwrap();
        assert_eq!(a.sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert!(a.new);
        assert!(!store.put_bytes(b"abc").unwrap().new, "deduplicated");
        assert_eq!(store.verify(&a.sha256).unwrap(), 3);
        std::fs::write(store.path(&a.sha256), b"abd").unwrap();
        assert!(matches!(store.verify(&a.sha256), Err(Error::Corrupt { .. })));
        assert!(matches!(store.put_bytes(b""), Err(Error::Empty)));
        assert!(matches!(store.verify(&"0".repeat(64)), Err(Error::Missing { .. })));
        // Nothing left behind in tmp.
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn open_removes_only_abandoned_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        drop(BlobStore::open(dir.path()).unwrap());
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        let abandoned = dir.path().join("tmp").join("1-abandoned");
        std::fs::write(&abandoned, b"half a photo").unwrap();
        File::options().write(true).open(&abandoned).unwrap().set_modified(old).unwrap();
        let held_path = dir.path().join("tmp").join("2-writing");
        let held = File::create(&held_path).unwrap();
        held.try_lock().unwrap();
        held.set_modified(old).unwrap();
        let young = dir.path().join("tmp").join("3-just-created");
        std::fs::write(&young, b"x").unwrap();
        drop(BlobStore::open(dir.path()).unwrap());
        assert!(!abandoned.exists(), "an old unlocked temp file is abandoned");
        assert!(held_path.exists(), "another writer's temp file stays");
        assert!(young.exists(), "a file between creation and lock stays");
        // An i/o failure says its cause once, also when a chain is printed whole.
        let e = Error::Io { path: "p".into(), cause: io::Error::new(io::ErrorKind::NotFound, "gone") };
        assert!(std::error::Error::source(&e).is_none());
        assert_eq!(e.to_string().matches("gone").count(), 1);
    }
}
