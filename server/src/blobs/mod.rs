//! Blobs: content-addressed, per provider, uploaded in resumable chunks. The protocol is
//! written once here over an injected [`ObjectStore`] (`store.rs`: a directory, the default;
//! `s3.rs`: an S3 bucket), so every instance behind a load balancer sees the same uploads.
//!
//! - A complete blob is the object `blobs/<provider>/<aa>/<sha256>`. Providers never share
//!   blobs (dedup across providers would tell one that another holds a photo).
//! - A partial upload is a run of chunk objects `uploads/<provider>/<sha256>/<length>/<offset>`
//!   (offset zero-padded to 20 digits). Its offset is where the contiguous run from 0 ends, so
//!   a PUT that continues on another instance resumes exactly there; a chunk object is written
//!   whole or not at all, so a killed instance never leaves half a chunk counted.
//! - The last chunk triggers the hash check over all chunks; only bytes that hash to the name
//!   are written to the blob key, and only then does the caller record the blob (visible).

use std::fs::{self, OpenOptions};
use std::path::Path;
use std::sync::{Arc, Mutex};

use onsite_core::hash::Sha256;

pub mod s3;
pub mod store;

pub use store::{FileStore, ObjectStore};

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

/// The object store a `--blobs` URL names: `file://DIR` or `s3://BUCKET?endpoint=...` (`s3.rs`).
pub fn open_store(url: &str) -> store::Result<Arc<dyn ObjectStore>> {
    if let Some(dir) = url.strip_prefix("file://") {
        return Ok(Arc::new(FileStore::new(dir)?));
    }
    if url.starts_with("s3://") {
        return Ok(Arc::new(s3::S3Store::open(url)?));
    }
    Err(store::Error::Remote { op: "open", key: url.to_string(), reason: "blobs live at file://DIR or s3://BUCKET?endpoint=...".into() })
}

pub struct Blobs {
    store: Arc<dyn ObjectStore>,
    /// Serializes this instance's puts (instances share nothing else; see the module doc).
    lock: Mutex<()>,
}

/// The chunks of one partial upload: (declared length, contiguous end, chunk keys in order).
struct Partial {
    length: u64,
    at: u64,
    keys: Vec<String>,
}

impl Blobs {
    /// Blobs under `data` as files (the default layout: `DATA/blobs`, `DATA/uploads`).
    pub fn open(data: &Path) -> store::Result<Self> {
        Self::new(Arc::new(FileStore::new(data)?))
    }

    /// Opens `--blobs URL` (see [`open_store`]).
    pub fn open_url(url: &str) -> store::Result<Self> {
        Self::new(open_store(url)?)
    }

    pub fn new(store: Arc<dyn ObjectStore>) -> store::Result<Self> {
        let blobs = Self { store, lock: Mutex::new(()) };
        blobs.remove_abandoned()?;
        Ok(blobs)
    }

    pub fn store(&self) -> &dyn ObjectStore {
        &*self.store
    }

    fn key(provider: &str, sha: &str) -> String {
        format!("blobs/{provider}/{}/{sha}", &sha[..2.min(sha.len())])
    }

    fn upload_prefix(provider: &str, sha: &str) -> String {
        format!("uploads/{provider}/{sha}/")
    }

    pub fn size(&self, provider: &str, sha: &str) -> store::Result<Option<u64>> {
        self.store.size(&Self::key(provider, sha))
    }

    pub fn read(&self, provider: &str, sha: &str) -> store::Result<Option<Vec<u8>>> {
        self.store.get(&Self::key(provider, sha))
    }

    /// Writes a whole blob whose bytes were already checked against `sha` (the migration).
    pub fn put_verified(&self, provider: &str, sha: &str, bytes: &[u8]) -> store::Result<()> {
        self.store.put(&Self::key(provider, sha), bytes)
    }

    /// The partial upload of a blob, from its chunk objects. Chunks of another declared
    /// length than the first one found, or past a gap, do not count.
    fn partial_state(&self, provider: &str, sha: &str) -> store::Result<Option<Partial>> {
        let prefix = Self::upload_prefix(provider, sha);
        let mut chunks: Vec<(u64, u64, u64, String)> = Vec::new();
        for l in self.store.list(&prefix)? {
            let rest = &l.key[prefix.len()..];
            let Some((len, off)) = rest.split_once('/') else { continue };
            if let (Ok(len), Ok(off)) = (len.parse::<u64>(), off.parse::<u64>()) {
                chunks.push((len, off, l.size, l.key));
            }
        }
        let Some(length) = chunks.iter().find(|c| c.1 == 0).or(chunks.first()).map(|c| c.0) else { return Ok(None) };
        chunks.retain(|c| c.0 == length);
        chunks.sort_by_key(|c| c.1);
        let (mut at, mut keys) = (0u64, Vec::new());
        for (_, off, size, key) in chunks {
            if off == at && size > 0 {
                at += size;
                keys.push(key);
            }
        }
        Ok(Some(Partial { length, at, keys }))
    }

    /// (offset, declared length) of a partial upload.
    pub fn partial(&self, provider: &str, sha: &str) -> store::Result<Option<(u64, u64)>> {
        Ok(self.partial_state(provider, sha)?.map(|p| (p.at, p.length)))
    }

    fn discard(&self, provider: &str, sha: &str) -> store::Result<()> {
        for l in self.store.list(&Self::upload_prefix(provider, sha))? {
            self.store.delete(&l.key)?;
        }
        Ok(())
    }

    /// Removes partial uploads nobody touched for [`ABANDONED_AFTER`].
    pub fn remove_abandoned(&self) -> store::Result<usize> {
        let mut n = 0;
        for l in self.store.list("uploads/")? {
            if l.modified.elapsed().is_ok_and(|age| age > ABANDONED_AFTER) {
                self.store.delete(&l.key)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// (uploads, bytes) a provider has open.
    fn partials(&self, provider: &str) -> store::Result<(usize, u64)> {
        let prefix = format!("uploads/{provider}/");
        let listed = self.store.list(&prefix)?;
        let mut shas: Vec<&str> = listed.iter().filter_map(|l| l.key[prefix.len()..].split('/').next()).collect();
        shas.dedup();
        Ok((shas.len(), listed.iter().map(|l| l.size).sum()))
    }

    pub fn put(&self, provider: &str, sha: &str, offset: u64, length: u64, bytes: &[u8]) -> store::Result<PutOutcome> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        // Already complete (e.g. an instance stored it and died before recording it).
        if self.store.size(&Self::key(provider, sha))? == Some(length) {
            self.discard(provider, sha)?;
            return Ok(PutOutcome::Complete);
        }
        let (current, mut keys) = match self.partial_state(provider, sha)? {
            // Another declared length never wipes bytes already accepted.
            Some(p) if p.length != length && p.at > 0 => return Ok(PutOutcome::LengthMismatch { declared: p.length, at: p.at }),
            Some(p) if p.length == length => (p.at, p.keys),
            Some(_) => {
                self.discard(provider, sha)?;
                (0, Vec::new())
            }
            None => {
                let (n, b) = self.partials(provider)?;
                if n >= MAX_PARTIALS || b + length > MAX_PARTIAL_BYTES {
                    return Ok(PutOutcome::Quota);
                }
                (0, Vec::new())
            }
        };
        // Every byte is there (a chunk whose answer was lost): only the hash check is left.
        if offset != current && current < length {
            return Ok(PutOutcome::Conflict(current));
        }
        if offset + bytes.len() as u64 > length {
            return Ok(PutOutcome::TooLong);
        }
        if !bytes.is_empty() && current < length {
            let key = format!("{}{length}/{offset:020}", Self::upload_prefix(provider, sha));
            self.store.put(&key, bytes)?;
            keys.push(key);
        }
        let now = if current < length { current + bytes.len() as u64 } else { length };
        if now < length {
            return Ok(PutOutcome::Partial(now));
        }
        let mut hasher = Sha256::new();
        let mut whole = Vec::with_capacity(usize::try_from(length).unwrap_or(0));
        for key in &keys {
            match self.store.get(key)? {
                Some(chunk) => {
                    hasher.update(&chunk);
                    whole.extend_from_slice(&chunk);
                }
                // Another instance finished this upload meanwhile: its blob decides.
                None => return Ok(if self.store.size(&Self::key(provider, sha))? == Some(length) { PutOutcome::Complete } else { PutOutcome::Conflict(0) }),
            }
        }
        let got = onsite_core::hash::hex(&hasher.finalize());
        if got != sha || whole.len() as u64 != length {
            self.discard(provider, sha)?;
            return Ok(PutOutcome::Mismatch);
        }
        self.store.put(&Self::key(provider, sha), &whole)?;
        self.discard(provider, sha)?;
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
        assert_eq!(blobs.read("p", &h).unwrap().unwrap(), data);
        assert_eq!(blobs.partial("p", &h).unwrap(), None);
        assert!(blobs.store().list("uploads/").unwrap().is_empty(), "chunks are removed once the blob is stored");
        // The file layout is the one earlier versions wrote.
        assert!(dir.path().join("blobs/p").join(&h[..2]).join(&h).exists());
        // Another provider does not see it.
        assert_eq!(blobs.read("q", &h).unwrap(), None);
        // Bytes that hash to something else are discarded.
        let other = sha(b"other");
        assert!(matches!(blobs.put("p", &other, 0, 5, b"xther").unwrap(), PutOutcome::Mismatch));
        assert_eq!(blobs.partial("p", &other).unwrap(), None);
        assert!(matches!(blobs.put("p", &other, 0, 3, b"xther").unwrap(), PutOutcome::TooLong));
    }

    #[test]
    fn an_upload_continues_on_another_instance_at_the_right_offset() {
        let dir = tempfile::tempdir().unwrap();
        // Two instances, one store (a shared directory here; the postgres suite does it on S3).
        let (a, b) = (Blobs::open(dir.path()).unwrap(), Blobs::open(dir.path()).unwrap());
        let data: Vec<u8> = (0..3000u32).map(|i| (i * 13 % 241) as u8).collect();
        let h = sha(&data);
        assert!(matches!(a.put("p", &h, 0, 3000, &data[..1000]).unwrap(), PutOutcome::Partial(1000)));
        assert_eq!(b.partial("p", &h).unwrap(), Some((1000, 3000)), "the other instance sees the offset");
        assert!(matches!(b.put("p", &h, 0, 3000, &data[..1000]).unwrap(), PutOutcome::Conflict(1000)));
        assert!(matches!(b.put("p", &h, 1000, 3000, &data[1000..2000]).unwrap(), PutOutcome::Partial(2000)));
        assert!(matches!(a.put("p", &h, 2000, 3000, &data[2000..]).unwrap(), PutOutcome::Complete));
        assert_eq!(b.read("p", &h).unwrap().unwrap(), data);
        // A chunk past a gap (a lost request) does not move the offset.
        let g = sha(&data[..10]);
        a.store().put(&format!("uploads/p/{g}/10/{:020}", 7), &data[7..10]).unwrap();
        assert_eq!(a.partial("p", &g).unwrap(), Some((0, 10)));
        assert!(matches!(b.put("p", &g, 0, 10, &data[..5]).unwrap(), PutOutcome::Partial(5)));
        assert!(matches!(b.put("p", &g, 5, 10, &data[5..10]).unwrap(), PutOutcome::Complete));
        assert_eq!(a.read("p", &g).unwrap().unwrap(), &data[..10]);
    }

    #[test]
    fn a_blob_stored_by_an_instance_that_died_before_recording_it_completes() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::open(dir.path()).unwrap();
        let data = b"stored, never recorded".to_vec();
        let h = sha(&data);
        blobs.put_verified("p", &h, &data).unwrap();
        assert!(matches!(blobs.put("p", &h, 0, data.len() as u64, &data[..4]).unwrap(), PutOutcome::Complete));
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
            let chunk = dir.path().join(format!("uploads/p/{h}/1000/{:020}", 0));
            assert_eq!(fs::metadata(&chunk).unwrap().permissions().mode() & 0o777, 0o600);
            assert_eq!(fs::metadata(dir.path().join("uploads")).unwrap().permissions().mode() & 0o777, 0o700);
            assert!(matches!(blobs.put("p", &h, 400, 1000, &data[400..]).unwrap(), PutOutcome::Complete));
            let stored = dir.path().join("blobs/p").join(&h[..2]).join(&h);
            assert_eq!(fs::metadata(stored).unwrap().permissions().mode() & 0o777, 0o600);
        }
        // An abandoned partial goes at the next start.
        let g = sha(b"abandoned");
        assert!(matches!(blobs.put("p", &g, 0, 9, b"aban").unwrap(), PutOutcome::Partial(4)));
        let chunk = dir.path().join(format!("uploads/p/{g}/9/{:020}", 0));
        let old = std::time::SystemTime::now() - ABANDONED_AFTER - std::time::Duration::from_secs(60);
        fs::File::options().write(true).open(&chunk).unwrap().set_modified(old).unwrap();
        drop(blobs);
        let blobs = Blobs::open(dir.path()).unwrap();
        assert_eq!(blobs.partial("p", &g).unwrap(), None);
    }
}
