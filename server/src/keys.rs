//! The server's private keys (the evidence log key, the time authority key), kept out of the
//! database: a database backup or a replica must not carry them. [`KeyStore`] is injected;
//! [`FileKeys`] keeps each key in `DIR/<name>.key` (hex, mode 0600, directory 0700), and a
//! deployment can put a platform secret store behind the same trait.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("key `{name}` at {path}: {reason}")]
    File { name: String, path: PathBuf, reason: String },
}

/// Where the server's secret keys live.
pub trait KeyStore: Send + Sync {
    /// The secret bytes of key `name`, if it exists.
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, Error>;
    /// Stores a new key (refuses to overwrite: a key never changes under a running log).
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
            Ok(text) => onsite_core::hash::unhex(text.trim()).map(Some).ok_or_else(|| err(name, &path, "not hex")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(err(name, &path, e)),
        }
    }

    fn create(&self, name: &str, secret: &[u8]) -> Result<(), Error> {
        let path = self.path(name);
        crate::blobs::private_dir(&self.dir).map_err(|e| err(name, &self.dir, e))?;
        let tmp = self.dir.join(format!(".{name}.key.tmp"));
        {
            use std::io::Write;
            let mut f = crate::blobs::private_file(&tmp, false).map_err(|e| err(name, &tmp, e))?;
            f.write_all(onsite_core::hash::hex(secret).as_bytes()).map_err(|e| err(name, &tmp, e))?;
            f.sync_all().map_err(|e| err(name, &tmp, e))?;
        }
        if path.exists() {
            let _ = std::fs::remove_file(&tmp);
            return Err(err(name, &path, "already exists"));
        }
        std::fs::rename(&tmp, &path).map_err(|e| err(name, &path, e))
    }
}
