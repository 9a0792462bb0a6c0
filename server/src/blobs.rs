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
    /// A partial upload of this blob exists with another declared length (it is kept).
    LengthMismatch {
        declared: u64,
        at: u64,
    },
    /// The provider has too many partial uploads open (or too many bytes in them).
    Quota,
    /// The client's offset is stale; the upload stands here.
    Conflict(u64),
    /// The chunk runs past the declared length.
    TooLong,
    /// All bytes arrived but they hash to something else; the partial was discarded.
    Mismatch,
    Complete,
}

/// Partial uploads a provider may have open at once, and their bytes.
pub const MAX_PARTIALS: usize = 256;
pub const MAX_PARTIAL_BYTES: u64 = 4 * 1024 * 1024 * 1024;
/// A partial upload untouched this long is abandoned and removed.
pub const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// Creates `dir` (and parents) readable by this user only.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

/// Opens (creating) a file readable by this user only.
pub fn private_file(path: &Path, append: bool) -> std::io::Result<fs::File> {
    let mut o = OpenOptions::new();
    o.create(true).write(true);
    if append {
        o.append(true);
    } else {
        o.truncate(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)
}

pub struct Blobs {
    root: PathBuf,
    lock: Mutex<()>,
}

impl Blobs {
    pub fn open(data: &Path) -> std::io::Result<Self> {
        private_dir(&data.join("blobs"))?;
        private_dir(&data.join("uploads"))?;
        let blobs = Self { root: data.to_path_buf(), lock: Mutex::new(()) };
        blobs.remove_abandoned()?;
        Ok(blobs)
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

    /// Removes partial uploads nobody touched for [`ABANDONED_AFTER`].
    pub fn remove_abandoned(&self) -> std::io::Result<usize> {
        let mut n = 0;
        let Ok(providers) = fs::read_dir(self.root.join("uploads")) else { return Ok(0) };
        for p in providers.flatten() {
            let Ok(files) = fs::read_dir(p.path()) else { continue };
            for f in files.flatten() {
                let old = f.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok()).is_some_and(|age| age > ABANDONED_AFTER);
                if old && fs::remove_file(f.path()).is_ok() {
                    n += 1;
                }
            }
        }
        Ok(n)
    }

    /// (count, bytes) of a provider's partial uploads.
    fn partials(&self, provider: &str) -> (usize, u64) {
        let Ok(files) = fs::read_dir(self.root.join("uploads").join(provider)) else { return (0, 0) };
        files
            .flatten()
            .filter(|f| f.file_name().to_string_lossy().ends_with(".part"))
            .fold((0, 0), |(n, b), f| (n + 1, b + f.metadata().map(|m| m.len()).unwrap_or(0)))
    }

    pub fn put(&self, provider: &str, sha: &str, offset: u64, length: u64, bytes: &[u8]) -> std::io::Result<PutOutcome> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let (part, len_file) = self.part(provider, sha);
        private_dir(part.parent().unwrap_or(&self.root))?;
        let current = match fs::metadata(&part) {
            Ok(m) => {
                let declared: Option<u64> = fs::read_to_string(&len_file).ok().and_then(|l| l.trim().parse().ok());
                match declared {
                    // Another declared length never wipes bytes already accepted.
                    Some(d) if d != length && m.len() > 0 => return Ok(PutOutcome::LengthMismatch { declared: d, at: m.len() }),
                    Some(d) if d == length => m.len(),
                    _ => {
                        fs::remove_file(&part)?;
                        0
                    }
                }
            }
            Err(_) => {
                let (n, b) = self.partials(provider);
                if n >= MAX_PARTIALS || b + length > MAX_PARTIAL_BYTES {
                    return Ok(PutOutcome::Quota);
                }
                0
            }
        };
        if offset != current {
            return Ok(PutOutcome::Conflict(current));
        }
        if offset + bytes.len() as u64 > length {
            return Ok(PutOutcome::TooLong);
        }
        private_file(&len_file, false)?.write_all(length.to_string().as_bytes())?;
        let mut f = private_file(&part, true)?;
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
        private_dir(dest.parent().unwrap_or(&self.root))?;
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

    #[test]
    fn another_length_keeps_the_partial_and_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::open(dir.path()).unwrap();
        let data = vec![7u8; 1000];
        let h = sha(&data);
        assert!(matches!(blobs.put("p", &h, 0, 1000, &data[..400]).unwrap(), PutOutcome::Partial(400)));
        assert!(matches!(blobs.put("p", &h, 0, 5, &data[..5]).unwrap(), PutOutcome::LengthMismatch { declared: 1000, at: 400 }));
        assert_eq!(blobs.partial("p", &h).unwrap(), Some((400, 1000)), "the accepted bytes are still there");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let (part, _) = blobs.part("p", &h);
            assert_eq!(fs::metadata(&part).unwrap().permissions().mode() & 0o777, 0o600);
            assert_eq!(fs::metadata(dir.path().join("uploads")).unwrap().permissions().mode() & 0o777, 0o700);
            assert!(matches!(blobs.put("p", &h, 400, 1000, &data[400..]).unwrap(), PutOutcome::Complete));
            assert_eq!(fs::metadata(blobs.path("p", &h)).unwrap().permissions().mode() & 0o777, 0o600);
        }
        // An abandoned partial goes at the next start.
        let g = sha(b"abandoned");
        assert!(matches!(blobs.put("p", &g, 0, 9, b"aban").unwrap(), PutOutcome::Partial(4)));
        let (part, len) = blobs.part("p", &g);
        let old = std::time::SystemTime::now() - ABANDONED_AFTER - std::time::Duration::from_secs(60);
        for f in [&part, &len] {
            fs::File::options().write(true).open(f).unwrap().set_modified(old).unwrap();
        }
        drop(blobs);
        let blobs = Blobs::open(dir.path()).unwrap();
        assert_eq!(blobs.partial("p", &g).unwrap(), None);
    }
}
