//! Where blob bytes live: the [`ObjectStore`] trait (injected, so tests and deployments pick
//! the backend) and its local-directory implementation [`FileStore`]. `s3.rs` implements the
//! same trait over S3. Keys are `/`-separated relative names (`blobs/p/ab/<sha>`); the
//! resumable-upload protocol on top (`super::Blobs`) is written once for every backend.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// An object store failure. `NotFound` is not an error of the trait: reads answer `None`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("object store: {op} `{key}`: {source}")]
    Io {
        op: &'static str,
        key: String,
        #[source]
        source: std::io::Error,
    },
    #[error("object store: {op} `{key}`: {reason}")]
    Remote { op: &'static str, key: String, reason: String },
    #[error("object store key `{0}` is not a plain relative name")]
    BadKey(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    pub modified: SystemTime,
}

/// Bytes by key. Every `put` is atomic: a reader sees the whole object or none of it (a
/// rename on a file system, a single PUT on S3). Blobs go through `super::Blobs`.
pub trait ObjectStore: Send + Sync {
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()>;
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// The size of an object, if it exists.
    fn size(&self, key: &str) -> Result<Option<u64>>;
    /// Every object whose key starts with `prefix` (a directory-like prefix ending in `/`).
    fn list(&self, prefix: &str) -> Result<Vec<Listed>>;
    /// Removes an object; removing one that is gone is not an error.
    fn delete(&self, key: &str) -> Result<()>;
    /// A cheap round trip that proves the store answers (`/health`).
    fn check(&self) -> Result<()>;
    /// What the store is, for logs and `/health` (no credentials).
    fn describe(&self) -> String;
}

/// Refuses keys that could leave the store's root.
pub(crate) fn check_key(key: &str) -> Result<()> {
    let ok = !key.is_empty()
        && !key.starts_with('/')
        && key.split('/').all(|p| !p.is_empty() && p != "." && p != ".." && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)));
    if ok {
        Ok(())
    } else {
        Err(Error::BadKey(key.to_string()))
    }
}

/// Objects as files under a directory, private to this user (0700 directories, 0600 files).
pub struct FileStore {
    root: PathBuf,
}

impl FileStore {
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        super::private_dir(&root).map_err(|source| Error::Io { op: "create", key: root.display().to_string(), source })?;
        Ok(Self { root })
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        check_key(key)?;
        Ok(self.root.join(key))
    }
}

fn io<'a>(op: &'static str, key: &'a str) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io { op, key: key.to_string(), source }
}

fn walk(dir: &Path, rel: &str, out: &mut Vec<Listed>) -> std::io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // Temporary files of a put in progress are not objects.
        if name.starts_with(".tmp-") {
            continue;
        }
        let key = if rel.is_empty() { name } else { format!("{rel}/{name}") };
        let meta = entry.metadata()?;
        if meta.is_dir() {
            walk(&entry.path(), &key, out)?;
        } else {
            out.push(Listed { key, size: meta.len(), modified: meta.modified()? });
        }
    }
    Ok(())
}

impl ObjectStore for FileStore {
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let path = self.path(key)?;
        let dir = path.parent().unwrap_or(&self.root);
        super::private_dir(dir).map_err(io("put", key))?;
        let mut nonce = [0u8; 8];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
        let tmp = dir.join(format!(".tmp-{}", onsite_core::hash::hex(&nonce)));
        let written = (|| {
            let mut f = super::private_file(&tmp, false)?;
            f.write_all(bytes)?;
            f.sync_data()?;
            fs::rename(&tmp, &path)
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written.map_err(io("put", key))
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match fs::read(self.path(key)?) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("get", key)(e)),
        }
    }

    fn size(&self, key: &str) -> Result<Option<u64>> {
        match fs::metadata(self.path(key)?) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("stat", key)(e)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<Listed>> {
        let dir_key = prefix.trim_end_matches('/');
        check_key(dir_key)?;
        let mut out = Vec::new();
        walk(&self.root.join(dir_key), dir_key, &mut out).map_err(io("list", prefix))?;
        out.retain(|l| l.key.starts_with(prefix));
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("delete", key)(e)),
        }
        // Empty parent directories go too (best effort: another writer may be filling them).
        let mut dir = path.parent();
        while let Some(d) = dir.filter(|d| *d != self.root) {
            if fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
        Ok(())
    }

    fn check(&self) -> Result<()> {
        fs::metadata(&self.root).map(|_| ()).map_err(io("check", "."))
    }

    fn describe(&self) -> String {
        format!("file://{}", self.root.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_leave_the_root() {
        for bad in ["", "/etc/passwd", "a/../../b", "a//b", "./a", "a/b c", "a\\b"] {
            assert!(matches!(check_key(bad), Err(Error::BadKey(_))), "{bad:?}");
        }
        check_key("blobs/p-1/ab/abcdef").unwrap();
    }

    #[test]
    fn put_get_list_delete_on_files() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::new(dir.path()).unwrap();
        s.put("uploads/p/x/1", b"one").unwrap();
        s.put("uploads/p/x/2", b"two!").unwrap();
        s.put("blobs/p/ab/c", b"c").unwrap();
        assert_eq!(s.get("uploads/p/x/2").unwrap().as_deref(), Some(&b"two!"[..]));
        assert_eq!(s.size("uploads/p/x/2").unwrap(), Some(4));
        assert_eq!(s.get("nope/x").unwrap(), None);
        let keys: Vec<(String, u64)> = s.list("uploads/p/").unwrap().into_iter().map(|l| (l.key, l.size)).collect();
        assert_eq!(keys, vec![("uploads/p/x/1".into(), 3), ("uploads/p/x/2".into(), 4)]);
        assert!(s.list("uploads/q/").unwrap().is_empty());
        s.delete("uploads/p/x/1").unwrap();
        s.delete("uploads/p/x/2").unwrap();
        s.delete("uploads/p/x/2").unwrap();
        assert!(!dir.path().join("uploads/p/x").exists(), "empty directories are removed");
        assert!(dir.path().join("blobs/p/ab/c").exists());
    }
}
