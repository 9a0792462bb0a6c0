//! Blob files encrypted in chunks (AES-256-GCM, the shape of Tink's streaming AEAD): constant
//! memory for any size, random access for ranged reads (uploads resume mid-file).
//!
//! ```text
//! header   "ONSBLOB1" | salt (24 random bytes)            file key = HKDF(blob root, salt)
//! chunk i  AES-256-GCM(file key, nonce = i (u64 BE) | 0u32, 64 KiB of plaintext) + tag
//! trailer  AES-256-GCM(file key, nonce = n (u64 BE) | 1u32, size (u64 BE) | SHA-256) + tag
//! ```
//! A fresh key per file makes the counter nonce safe. The trailer is the last chunk (its
//! flag differs), so truncation, reordering and chunk swaps fail authentication; it carries
//! the plaintext's SHA-256, the file's content address, so a file moved to another blob's
//! name is refused without hashing it.

use std::io::{self, Read, Seek, SeekFrom, Write};

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};

pub const MAGIC: &[u8; 8] = b"ONSBLOB1";
const SALT: usize = 24;
pub const HEADER: u64 = 8 + SALT as u64;
pub const CHUNK: usize = 64 * 1024;
const TAG: usize = 16;
const CT_CHUNK: u64 = (CHUNK + TAG) as u64;
const TRAILER_PLAIN: usize = 8 + 32;
const TRAILER: u64 = (TRAILER_PLAIN + TAG) as u64;

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

fn file_key(root: &[u8; 32], salt: &[u8]) -> LessSafeKey {
    let key = super::derive(root, salt, b"onsite blob file");
    // 32 bytes is AES-256's key length: `new` cannot fail.
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).unwrap_or_else(|_| unreachable!("a 32-byte AES-256 key")))
}

fn nonce(index: u64, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(&index.to_be_bytes());
    n[11] = u8::from(last);
    Nonce::assume_unique_for_key(n)
}

/// Encrypts a stream into the format above; the caller hashes the plaintext it feeds.
pub struct Sealer<W: Write> {
    out: W,
    key: LessSafeKey,
    buf: Vec<u8>,
    index: u64,
    size: u64,
}

impl<W: Write> Sealer<W> {
    pub fn new(root: &[u8; 32], mut out: W) -> io::Result<Self> {
        let mut salt = [0u8; SALT];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt).map_err(|_| io::Error::other("the system random source failed"))?;
        out.write_all(MAGIC)?;
        out.write_all(&salt)?;
        Ok(Self { out, key: file_key(root, &salt), buf: Vec::with_capacity(CHUNK + TAG), index: 0, size: 0 })
    }

    pub fn write_plain(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let take = (CHUNK - self.buf.len()).min(bytes.len());
            self.buf.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            self.size += take as u64;
            if self.buf.len() == CHUNK {
                self.seal_chunk()?;
            }
        }
        Ok(())
    }

    fn seal_chunk(&mut self) -> io::Result<()> {
        self.key.seal_in_place_append_tag(nonce(self.index, false), Aad::empty(), &mut self.buf).map_err(|_| io::Error::other("sealing failed"))?;
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        self.index += 1;
        Ok(())
    }

    /// Seals the last partial chunk and the trailer naming the plaintext's SHA-256.
    pub fn finish(mut self, sha256: &[u8; 32]) -> io::Result<W> {
        if !self.buf.is_empty() {
            self.seal_chunk()?;
        }
        let mut trailer = Vec::with_capacity(TRAILER as usize);
        trailer.extend_from_slice(&self.size.to_be_bytes());
        trailer.extend_from_slice(sha256);
        self.key.seal_in_place_append_tag(nonce(self.index, true), Aad::empty(), &mut trailer).map_err(|_| io::Error::other("sealing failed"))?;
        self.out.write_all(&trailer)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Decrypts a blob file with random access. Every chunk read is authenticated; the trailer
/// is checked when the reader opens.
pub struct Opener<R: Read + Seek> {
    input: R,
    key: LessSafeKey,
    size: u64,
    sha256: [u8; 32],
    chunks: u64,
    pos: u64,
    /// The decrypted chunk at this index (its plaintext is `buf`).
    loaded: Option<u64>,
    buf: Vec<u8>,
}

impl<R: Read + Seek> Opener<R> {
    pub fn new(root: &[u8; 32], mut input: R) -> io::Result<Self> {
        let len = input.seek(SeekFrom::End(0))?;
        if len < HEADER + TRAILER {
            return Err(invalid("not an encrypted blob: too short"));
        }
        input.seek(SeekFrom::Start(0))?;
        let mut header = [0u8; HEADER as usize];
        input.read_exact(&mut header)?;
        if &header[..8] != MAGIC {
            return Err(invalid("not an encrypted blob: no header"));
        }
        let key = file_key(root, &header[8..]);
        let data = len - HEADER - TRAILER;
        let (full, rem) = (data / CT_CHUNK, data % CT_CHUNK);
        if rem != 0 && rem <= TAG as u64 {
            return Err(invalid("encrypted blob: a chunk is cut short"));
        }
        let chunks = full + u64::from(rem != 0);
        let size = full * CHUNK as u64 + rem.saturating_sub(TAG as u64);
        input.seek(SeekFrom::Start(HEADER + data))?;
        let mut trailer = vec![0u8; TRAILER as usize];
        input.read_exact(&mut trailer)?;
        let plain = key.open_in_place(nonce(chunks, true), Aad::empty(), &mut trailer).map_err(|_| invalid("encrypted blob: wrong key or damaged trailer"))?;
        let mut stated = [0u8; 8];
        stated.copy_from_slice(&plain[..8]);
        if u64::from_be_bytes(stated) != size {
            return Err(invalid("encrypted blob: its length does not match its trailer"));
        }
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(&plain[8..TRAILER_PLAIN]);
        Ok(Self { input, key, size, sha256, chunks, pos: 0, loaded: None, buf: Vec::with_capacity(CHUNK + TAG) })
    }

    /// The plaintext's length.
    pub fn len(&self) -> u64 {
        self.size
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// The plaintext's SHA-256 as sealed in the trailer.
    pub fn sha256(&self) -> &[u8; 32] {
        &self.sha256
    }

    fn load(&mut self, index: u64) -> io::Result<()> {
        if self.loaded == Some(index) {
            return Ok(());
        }
        self.loaded = None;
        let ct = if index + 1 == self.chunks { (self.size - index * CHUNK as u64) as usize + TAG } else { CHUNK + TAG };
        self.buf.resize(ct, 0);
        self.input.seek(SeekFrom::Start(HEADER + index * CT_CHUNK))?;
        self.input.read_exact(&mut self.buf)?;
        let n = self
            .key
            .open_in_place(nonce(index, false), Aad::empty(), &mut self.buf)
            .map_err(|_| invalid(format!("encrypted blob: chunk {index} is damaged")))?
            .len();
        self.buf.truncate(n);
        self.loaded = Some(index);
        Ok(())
    }
}

impl<R: Read + Seek> Read for Opener<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.size || out.is_empty() {
            return Ok(0);
        }
        let index = self.pos / CHUNK as u64;
        self.load(index)?;
        let at = (self.pos - index * CHUNK as u64) as usize;
        let n = (self.buf.len() - at).min(out.len());
        out[..n].copy_from_slice(&self.buf[at..at + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read + Seek> Seek for Opener<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}

/// Whether `head` (the first bytes of a file) starts like an encrypted blob.
pub fn looks_encrypted(head: &[u8]) -> bool {
    head.starts_with(MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn seal(root: &[u8; 32], plain: &[u8]) -> Vec<u8> {
        let mut s = Sealer::new(root, Vec::new()).unwrap();
        for part in plain.chunks(10_000) {
            s.write_plain(part).unwrap();
        }
        s.finish(&crate::hash::Sha256::digest(plain)).unwrap()
    }

    #[test]
    fn round_trips_every_size_around_chunk_edges_with_random_access() {
        let root = [3u8; 32];
        for size in [0, 1, 17, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 5] {
            let plain: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
            let sealed = seal(&root, &plain);
            assert_eq!(sealed.len() as u64, HEADER + TRAILER + plain.len().div_ceil(CHUNK) as u64 * TAG as u64 + size as u64);
            let mut o = Opener::new(&root, Cursor::new(&sealed)).unwrap();
            assert_eq!(o.len(), size as u64);
            assert_eq!(o.sha256(), &crate::hash::Sha256::digest(&plain));
            let mut back = Vec::new();
            o.read_to_end(&mut back).unwrap();
            assert_eq!(back, plain, "size {size}");
            if size > 10 {
                let at = size as u64 - 7;
                o.seek(SeekFrom::Start(at)).unwrap();
                let mut tail = Vec::new();
                o.read_to_end(&mut tail).unwrap();
                assert_eq!(tail, &plain[at as usize..]);
            }
        }
    }

    #[test]
    fn every_flip_truncation_swap_and_wrong_key_is_refused() {
        let root = [9u8; 32];
        let plain: Vec<u8> = (0..(2 * CHUNK + 100)).map(|i| i as u8).collect();
        let sealed = seal(&root, &plain);
        let read_all = |bytes: &[u8], root: &[u8; 32]| -> io::Result<Vec<u8>> {
            let mut out = Vec::new();
            Opener::new(root, Cursor::new(bytes))?.read_to_end(&mut out)?;
            Ok(out)
        };
        assert!(read_all(&sealed, &[8u8; 32]).is_err(), "wrong key");
        // A flip in every region: header magic, salt, each chunk, the trailer.
        for at in [0, 9, HEADER as usize + 5, HEADER as usize + CT_CHUNK as usize + 1, sealed.len() - 60, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[at] ^= 0x20;
            let e = read_all(&bad, &root).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "flip at {at}");
        }
        // Truncated to a chunk boundary (the trailer dropped), and two chunks swapped.
        assert!(read_all(&sealed[..(HEADER + 2 * CT_CHUNK) as usize], &root).is_err());
        let mut swapped = sealed.clone();
        let (a, b) = (HEADER as usize, (HEADER + CT_CHUNK) as usize);
        let first = sealed[a..b].to_vec();
        swapped.copy_within(b..b + CT_CHUNK as usize, a);
        swapped[b..b + CT_CHUNK as usize].copy_from_slice(&first);
        assert!(read_all(&swapped, &root).is_err());
        assert!(!looks_encrypted(b"\xff\xd8\xff"));
        assert!(looks_encrypted(&sealed));
    }
}
