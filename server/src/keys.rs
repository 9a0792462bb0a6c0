//! The server's private keys (the evidence log key, the time authority key), kept out of the
//! database: a database backup or a replica must not carry them. [`KeyStore`] is injected;
//! [`FileKeys`] keeps each key in `DIR/<name>.key` (hex, mode 0600, directory 0700), and a
//! deployment can put a platform secret store behind the same trait.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("key `{name}` at {path}: {reason}")]
    File { name: String, path: PathBuf, reason: String },
    /// Another process created the key first (read it back).
    #[error("key `{name}` already exists")]
    Exists { name: String },
}

/// Where the server's secret keys live.
pub trait KeyStore: Send + Sync {
    /// The secret bytes of key `name`, if it exists.
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, Error>;
    /// Stores a new key (refuses to overwrite: a key never changes under a running log);
    /// [`Error::Exists`] when it is already there.
    fn create(&self, name: &str, secret: &[u8]) -> Result<(), Error>;
}

pub struct FileKeys {
    dir: PathBuf,
}

impl FileKeys {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.key"))
    }
}

fn err(name: &str, path: &Path, e: impl std::fmt::Display) -> Error {
    Error::File { name: name.to_string(), path: path.to_path_buf(), reason: e.to_string() }
}

impl KeyStore for FileKeys {
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, Error> {
        let path = self.path(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => onsite_core::hash::unhex_typed(&text).map(Some).ok_or_else(|| err(name, &path, "not hex")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(err(name, &path, e)),
        }
    }

    fn create(&self, name: &str, secret: &[u8]) -> Result<(), Error> {
        let path = self.path(name);
        crate::blobs::private_dir(&self.dir).map_err(|e| err(name, &self.dir, e))?;
        let mut nonce = [0u8; 8];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
        let tmp = self.dir.join(format!(".{name}.key.{}.tmp", onsite_core::hash::hex(&nonce)));
        {
            use std::io::Write;
            let mut f = crate::blobs::private_file(&tmp, false).map_err(|e| err(name, &tmp, e))?;
            f.write_all(onsite_core::hash::hex(secret).as_bytes()).map_err(|e| err(name, &tmp, e))?;
            f.sync_all().map_err(|e| err(name, &tmp, e))?;
        }
        // A hard link never replaces an existing file: of two instances creating the key at
        // the same instant on a shared directory, exactly one wins.
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::Exists { name: name.to_string() }),
            Err(e) => Err(err(name, &path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn of_many_creators_at_once_exactly_one_wins_and_all_read_its_key() {
        for round in 0..50 {
            let dir = tempfile::tempdir().unwrap();
            let start = std::sync::Barrier::new(16);
            let results: Vec<Result<(), Error>> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..16u8)
                    .map(|i| {
                        let (keys, start) = (FileKeys::new(dir.path().join("keys")), &start);
                        s.spawn(move || {
                            start.wait();
                            keys.create("log", &[i; 32])
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "round {round}: {results:?}");
            assert!(results.iter().all(|r| matches!(r, Ok(()) | Err(Error::Exists { .. }))), "{results:?}");
            let keys = FileKeys::new(dir.path().join("keys"));
            let secret = keys.get("log").unwrap().unwrap();
            assert_eq!(secret.len(), 32);
            assert!(secret.iter().all(|b| *b == secret[0]), "one creator's bytes, whole");
            // No temporary files are left behind.
            assert_eq!(std::fs::read_dir(dir.path().join("keys")).unwrap().count(), 1);
        }
    }
}
