//! Content-addressed blob store: `<root>/sha256/ab/cd/<hex>`. Writes go to a temp file in the
//! same directory tree, are fsynced, then renamed into place (atomic on POSIX), so a blob path
//! either holds the complete bytes or does not exist. A blob is re-hashed before it is trusted
//! when the database does not already vouch for it (e.g. after a crash between the rename and
//! the commit that records it).
//!
//! With a key (every device store: docs/adr/0018) each file is encrypted in chunks
//! (`crypt::stream`) while it is hashed; the name stays the SHA-256 of the plaintext, so
//! evidence hashes do not change. Readers go through [`BlobStore::open_blob`], never the path.

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
    /// The root of the files' keys; `None`: files are stored as they are (the server).
    key: Option<[u8; 32]>,
}

/// A blob's plaintext, readable from any offset.
pub trait BlobRead: Read + io::Seek + Send {}
impl<T: Read + io::Seek + Send> BlobRead for T {}

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
    /// A store whose files are encrypted with keys derived from `key` (docs/adr/0018).
    pub fn open_encrypted(root: &Path, key: &crate::crypt::StoreKey) -> Result<Self, Error> {
        let mut store = Self::open(root)?;
        store.key = Some(key.blob_root());
        Ok(store)
    }

    pub fn is_encrypted(&self) -> bool {
        self.key.is_some()
    }

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
        Ok(Self { root: root.to_path_buf(), key: None })
    }

    pub fn path(&self, sha256: &str) -> PathBuf {
        let (a, b) = (sha256.get(0..2).unwrap_or("00"), sha256.get(2..4).unwrap_or("00"));
        self.root.join("sha256").join(a).join(b).join(sha256)
    }

    /// A fresh name in the store's temp directory (removed by its user, or as abandoned).
    pub fn scratch_path(&self) -> PathBuf {
        self.root.join("tmp").join(format!("{}-{}", std::process::id(), unique()))
    }

    pub fn contains(&self, sha256: &str) -> bool {
        crate::hash::is_sha256_hex(sha256) && self.path(sha256).is_file()
    }

    /// Streams `input` into the store in one pass, hashing as it copies.
    pub fn put(&self, mut input: impl Read) -> Result<Stored, Error> {
        let tmp_dir = self.root.join("tmp");
        let tmp = tmp_dir.join(format!("{}-{}", std::process::id(), unique()));
        let file = File::create(&tmp).map_err(io_err(&tmp))?;
        // Held until the file is renamed or removed: `open` in another process leaves it be.
        file.try_lock().map_err(|e| Error::Io { path: tmp.clone(), cause: io::Error::other(e.to_string()) })?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut size = 0u64;
        let mut sealer = match &self.key {
            Some(k) => match crate::crypt::stream::Sealer::new(k, io::BufWriter::with_capacity(256 * 1024, &file)) {
                Ok(s) => Some(s),
                Err(e) => {
                    let _ = fs::remove_file(&tmp);
                    return Err(Error::Io { path: tmp, cause: e });
                }
            },
            None => None,
        };
        let result = (|| -> Result<[u8; 32], Error> {
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
                match sealer.as_mut() {
                    Some(s) => s.write_plain(&buf[..n]).map_err(io_err(&tmp))?,
                    None => (&file).write_all(&buf[..n]).map_err(io_err(&tmp))?,
                }
            }
            if size == 0 {
                return Err(Error::Empty);
            }
            let digest = hasher.finalize();
            if let Some(s) = sealer.take() {
                s.finish(&digest).map_err(io_err(&tmp))?;
            }
            file.sync_all().map_err(io_err(&tmp))?;
            Ok(digest)
        })();
        drop(sealer);
        let digest = match result {
            Ok(d) => d,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        };
        let sha256 = crate::hash::hex(&digest);
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

    /// Re-hashes a blob's plaintext and returns its size: what a reader uses when the
    /// database does not vouch for the file.
    pub fn verify(&self, sha256: &str) -> Result<u64, Error> {
        let path = self.path(sha256);
        let mut f = self.open_blob(sha256)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut size = 0u64;
        loop {
            let n = f.read(&mut buf).map_err(|e| self.damage(sha256, &path, e))?;
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

    /// An authentication failure is damage (or another key's file), not an i/o error.
    fn damage(&self, sha256: &str, path: &Path, e: io::Error) -> Error {
        if e.kind() == io::ErrorKind::InvalidData {
            Error::Corrupt { sha256: sha256.to_string(), actual: format!("unreadable ({e})") }
        } else {
            Error::Io { path: path.to_path_buf(), cause: e }
        }
    }

    /// A blob's plaintext, decrypted as it is read. An encrypted file is checked to be the
    /// blob of this name (its sealed trailer); its chunks are authenticated as they are read.
    pub fn open_blob(&self, sha256: &str) -> Result<Box<dyn BlobRead>, Error> {
        let path = self.path(sha256);
        let file = File::open(&path).map_err(|_| Error::Missing { sha256: sha256.to_string() })?;
        let Some(key) = &self.key else { return Ok(Box::new(file)) };
        let opener = crate::crypt::stream::Opener::new(key, io::BufReader::with_capacity(64 * 1024, file)).map_err(|e| self.damage(sha256, &path, e))?;
        let named = crate::hash::hex(opener.sha256());
        if named != sha256 {
            return Err(Error::Corrupt { sha256: sha256.to_string(), actual: named });
        }
        Ok(Box::new(opener))
    }

    pub fn read(&self, sha256: &str) -> Result<Vec<u8>, Error> {
        let path = self.path(sha256);
        let mut out = Vec::new();
        self.open_blob(sha256)?.read_to_end(&mut out).map_err(|e| self.damage(sha256, &path, e))?;
        Ok(out)
    }

    /// Encrypts the files an unencrypted store left (the migration of docs/adr/0018): each
    /// file is re-hashed, encrypted to a temp file, synced and renamed over the original, so
    /// a crash at any moment leaves every blob whole, either form. A plain file whose bytes
    /// do not match its name is left as it is and counted. Returns (encrypted, damaged).
    pub fn encrypt_existing(&self) -> Result<(u64, u64), Error> {
        let Some(key) = &self.key else { return Ok((0, 0)) };
        let (mut done, mut damaged) = (0, 0);
        let mut dirs = vec![self.root.join("sha256")];
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = fs::read_dir(&dir) else { continue };
            for e in entries.flatten() {
                let path = e.path();
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    dirs.push(path);
                    continue;
                }
                let name = e.file_name().to_string_lossy().to_string();
                if !crate::hash::is_sha256_hex(&name) {
                    continue;
                }
                let mut head = [0u8; 8];
                let n = File::open(&path).and_then(|mut f| f.read(&mut head)).map_err(io_err(&path))?;
                if crate::crypt::stream::looks_encrypted(&head[..n]) && self.open_blob(&name).is_ok() {
                    continue;
                }
                if self.encrypt_file(key, &path, &name)? {
                    done += 1;
                } else {
                    tracing::warn!(blob = %name, "a plain blob does not match its name; left unencrypted");
                    damaged += 1;
                }
            }
        }
        Ok((done, damaged))
    }

    fn encrypt_file(&self, key: &[u8; 32], path: &Path, name: &str) -> Result<bool, Error> {
        let tmp = self.root.join("tmp").join(format!("{}-{}", std::process::id(), unique()));
        let result = (|| -> Result<bool, Error> {
            let mut input = io::BufReader::with_capacity(256 * 1024, File::open(path).map_err(io_err(path))?);
            let out = File::create(&tmp).map_err(io_err(&tmp))?;
            out.try_lock().map_err(|e| Error::Io { path: tmp.clone(), cause: io::Error::other(e.to_string()) })?;
            let mut sealer = crate::crypt::stream::Sealer::new(key, io::BufWriter::with_capacity(256 * 1024, &out)).map_err(io_err(&tmp))?;
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = input.read(&mut buf).map_err(io_err(path))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                sealer.write_plain(&buf[..n]).map_err(io_err(&tmp))?;
            }
            let digest = hasher.finalize();
            if crate::hash::hex(&digest) != name {
                return Ok(false);
            }
            sealer.finish(&digest).map_err(io_err(&tmp))?;
            out.sync_all().map_err(io_err(&tmp))?;
            fs::rename(&tmp, path).map_err(io_err(path))?;
            if let Some(Ok(d)) = path.parent().map(File::open) {
                let _ = d.sync_all();
            }
            Ok(true)
        })();
        let _ = fs::remove_file(&tmp);
        result
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
