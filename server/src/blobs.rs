//! Blob files: `DATA/blobs/<provider>/<aa>/<sha256>` once complete, and a partial upload at
//! `DATA/uploads/<provider>/<sha256>.part` with its declared length beside it. Providers
//! never share blobs (dedup across providers would tell one that another holds a photo).

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

pub enum PutOutcome {
    /// Stored up to this offset; more to come.
    Partial(u64),
    /// The client's offset is stale; the upload stands here.
    Conflict(u64),
    /// The chunk runs past the declared length.
    TooLong,
    /// All bytes arrived but they hash to something else; the partial was discarded.
    Mismatch,
    Complete,
}

pub struct Blobs {
    root: PathBuf,
    lock: Mutex<()>,
}

impl Blobs {
    pub fn open(data: &Path) -> std::io::Result<Self> {
        fs::create_dir_all(data.join("blobs"))?;
        fs::create_dir_all(data.join("uploads"))?;
        Ok(Self { root: data.to_path_buf(), lock: Mutex::new(()) })
    }

    fn path(&self, provider: &str, sha: &str) -> PathBuf {
        self.root.join("blobs").join(provider).join(&sha[..2]).join(sha)
    }

    fn part(&self, provider: &str, sha: &str) -> (PathBuf, PathBuf) {
        let dir = self.root.join("uploads").join(provider);
        (dir.join(format!("{sha}.part")), dir.join(format!("{sha}.len")))
    }

    pub fn size(&self, provider: &str, sha: &str) -> std::io::Result<u64> {
        Ok(fs::metadata(self.path(provider, sha))?.len())
    }

    pub fn read(&self, provider: &str, sha: &str) -> std::io::Result<Vec<u8>> {
        fs::read(self.path(provider, sha))
    }

    /// (offset, declared length) of a partial upload.
    pub fn partial(&self, provider: &str, sha: &str) -> std::io::Result<Option<(u64, u64)>> {
        let (part, len) = self.part(provider, sha);
        match (fs::metadata(&part), fs::read_to_string(&len)) {
            (Ok(m), Ok(l)) => Ok(l.trim().parse().ok().map(|l| (m.len(), l))),
            _ => Ok(None),
        }
    }

    pub fn put(&self, provider: &str, sha: &str, offset: u64, length: u64, bytes: &[u8]) -> std::io::Result<PutOutcome> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let (part, len_file) = self.part(provider, sha);
        fs::create_dir_all(part.parent().unwrap_or(&self.root))?;
        let current = match fs::metadata(&part) {
            Ok(m) => {
                let declared: Option<u64> = fs::read_to_string(&len_file).ok().and_then(|l| l.trim().parse().ok());
                if declared != Some(length) {
                    // A different declared length restarts the upload.
                    fs::remove_file(&part)?;
                    0
                } else {
                    m.len()
                }
            }
            Err(_) => 0,
        };
        if offset != current {
            return Ok(PutOutcome::Conflict(current));
        }
        if offset + bytes.len() as u64 > length {
            return Ok(PutOutcome::TooLong);
        }
        fs::write(&len_file, length.to_string())?;
        let mut f = OpenOptions::new().create(true).append(true).open(&part)?;
        f.write_all(bytes)?;
        f.sync_data()?;
        let now = current + bytes.len() as u64;
        if now < length {
            return Ok(PutOutcome::Partial(now));
        }
        let mut hasher = Sha256::new();
        let mut file = fs::File::open(&part)?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let got: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        if got != sha {
            fs::remove_file(&part)?;
            let _ = fs::remove_file(&len_file);
            return Ok(PutOutcome::Mismatch);
        }
        let dest = self.path(provider, sha);
        fs::create_dir_all(dest.parent().unwrap_or(&self.root))?;
        fs::rename(&part, &dest)?;
        let _ = fs::remove_file(&len_file);
        Ok(PutOutcome::Complete)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(b: &[u8]) -> String {
        Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn resumable_upload_checks_offsets_and_the_hash() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::open(dir.path()).unwrap();
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        let h = sha(&data);
        assert!(matches!(blobs.put("p", &h, 0, 1000, &data[..400]).unwrap(), PutOutcome::Partial(400)));
        assert_eq!(blobs.partial("p", &h).unwrap(), Some((400, 1000)));
        // A stale or future offset is told where the upload stands.
        assert!(matches!(blobs.put("p", &h, 0, 1000, &data[..400]).unwrap(), PutOutcome::Conflict(400)));
        assert!(matches!(blobs.put("p", &h, 800, 1000, &data[800..]).unwrap(), PutOutcome::Conflict(400)));
        assert!(matches!(blobs.put("p", &h, 400, 1000, &data[400..]).unwrap(), PutOutcome::Complete));
        assert_eq!(blobs.read("p", &h).unwrap(), data);
        assert_eq!(blobs.partial("p", &h).unwrap(), None);
        // Another provider does not see it.
        assert!(blobs.read("q", &h).is_err());
        // Bytes that hash to something else are discarded.
        let other = sha(b"other");
        assert!(matches!(blobs.put("p", &other, 0, 5, b"xther").unwrap(), PutOutcome::Mismatch));
        assert_eq!(blobs.partial("p", &other).unwrap(), None);
        assert!(matches!(blobs.put("p", &other, 0, 3, b"xther").unwrap(), PutOutcome::TooLong));
    }
}
