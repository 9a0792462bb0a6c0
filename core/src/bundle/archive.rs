//! The zip container, read defensively: every name is checked before anything is read or
//! written (no absolute paths, no `..`, no backslashes, no duplicates even by case, no
//! directories or symlinks), sizes are capped (per member, in total, and by compression
//! ratio, so a zip bomb is refused from its headers), and a member whose bytes disagree
//! with its declared size is refused while reading.

use std::collections::HashSet;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::hash::Sha256;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use super::Error;

pub const MAX_MEMBERS: usize = 4096;
pub const MAX_MEMBER_BYTES: u64 = 64 << 20;
pub const MAX_TOTAL_BYTES: u64 = 2 << 30;
/// Members larger than `RATIO_FLOOR` may not expand more than `MAX_RATIO` times.
pub const MAX_RATIO: u64 = 100;
pub const RATIO_FLOOR: u64 = 1 << 20;
pub const MAX_NAME: usize = 200;

fn member(name: &str, reason: impl Into<String>) -> Error {
    Error::Member { name: name.to_string(), reason: reason.into() }
}

/// A relative path of plain ASCII segments, never escaping the bundle's root.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(format!("a name has 1 to {MAX_NAME} characters"));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))) {
        return Err(format!("character {c:?} is not allowed in a member name"));
    }
    if name.starts_with('/') {
        return Err("absolute paths are not allowed".into());
    }
    for seg in name.split('/') {
        if seg.is_empty() || seg == "." || seg == ".." {
            return Err("empty, `.` or `..` path segments are not allowed".into());
        }
    }
    Ok(())
}

pub struct Archive<R: Read + Seek> {
    zip: ZipArchive<R>,
    /// Member names in archive order.
    names: Vec<String>,
}

impl<R: Read + Seek> Archive<R> {
    /// Opens and validates the whole directory of the archive.
    pub fn open(reader: R) -> Result<Self, Error> {
        let mut zip = ZipArchive::new(reader).map_err(|e| Error::Archive(e.to_string()))?;
        if zip.len() > MAX_MEMBERS {
            return Err(Error::Archive(format!("{} members, more than {MAX_MEMBERS}", zip.len())));
        }
        if zip.has_duplicate_names() {
            return Err(Error::Archive("two members have the same name".into()));
        }
        let mut names = Vec::with_capacity(zip.len());
        let mut folded = HashSet::new();
        let mut total = 0u64;
        for i in 0..zip.len() {
            let f = zip.by_index_raw(i).map_err(|e| Error::Archive(format!("member {i}: {e}")))?;
            let name = f.name().map_err(|e| Error::Archive(format!("member {i}: {e}")))?.to_string();
            check_name(&name).map_err(|r| member(&name, r))?;
            if f.is_dir() || f.is_symlink() {
                return Err(member(&name, "directories and symbolic links are not allowed"));
            }
            if !folded.insert(name.to_ascii_lowercase()) {
                return Err(member(&name, "another member has the same name (ignoring case)"));
            }
            if f.size() > MAX_MEMBER_BYTES {
                return Err(member(&name, format!("declares {} bytes, more than {MAX_MEMBER_BYTES}", f.size())));
            }
            if f.size() > RATIO_FLOOR && f.size() / f.compressed_size().max(1) > MAX_RATIO {
                return Err(member(&name, format!("expands {}x (a zip bomb?)", f.size() / f.compressed_size().max(1))));
            }
            total += f.size();
            if total > MAX_TOTAL_BYTES {
                return Err(Error::Archive(format!("members add up to more than {MAX_TOTAL_BYTES} bytes")));
            }
            names.push(name);
        }
        Ok(Self { zip, names })
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    fn index(&self, name: &str) -> Result<usize, Error> {
        self.names.iter().position(|n| n == name).ok_or_else(|| member(name, "missing from the archive"))
    }

    /// Streams a member through `sink`, refusing more than `cap` bytes or a size other than
    /// the declared one (the CRC is checked by the zip reader at the end).
    fn stream(&mut self, name: &str, cap: u64, mut sink: impl FnMut(&[u8])) -> Result<u64, Error> {
        let i = self.index(name)?;
        let mut f = self.zip.by_index(i).map_err(|e| member(name, e.to_string()))?;
        let declared = f.size();
        let mut limited = (&mut f).take(cap.min(MAX_MEMBER_BYTES) + 1);
        let mut buf = vec![0u8; 64 * 1024];
        let mut n = 0u64;
        loop {
            let k = limited.read(&mut buf).map_err(|e| member(name, format!("unreadable: {e}")))?;
            if k == 0 {
                break;
            }
            n += k as u64;
            if n > cap {
                return Err(member(name, format!("more than {cap} bytes")));
            }
            sink(&buf[..k]);
        }
        if n != declared {
            return Err(member(name, format!("holds {n} bytes but declares {declared}")));
        }
        Ok(n)
    }

    /// A whole member, at most `cap` bytes.
    pub fn read(&mut self, name: &str, cap: u64) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        self.stream(name, cap, |b| out.extend_from_slice(b))?;
        Ok(out)
    }

    /// SHA-256 (hex) and size of a member, streamed.
    pub fn hash(&mut self, name: &str) -> Result<(String, u64), Error> {
        let mut h = Sha256::new();
        let n = self.stream(name, MAX_MEMBER_BYTES, |b| h.update(b))?;
        Ok((crate::hash::hex(&h.finalize()), n))
    }
}

/// Extracts every member under `dir` (created if needed). All names are validated before
/// the first byte is written; existing files are never overwritten; nothing is written
/// outside `dir`.
pub fn extract(reader: impl Read + Seek, dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut archive = Archive::open(reader)?;
    std::fs::create_dir_all(dir)?;
    let root = dir.canonicalize()?;
    let mut written = Vec::new();
    for name in archive.names.clone() {
        let target = root.join(&name);
        if !target.starts_with(&root) {
            return Err(member(&name, "resolves outside the target directory"));
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
            // A symlinked directory planted beforehand must not redirect the write.
            if !parent.canonicalize()?.starts_with(&root) {
                return Err(member(&name, "resolves outside the target directory"));
            }
        }
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&target).map_err(|e| member(&name, e.to_string()))?;
        let mut err = None;
        archive.stream(&name, MAX_MEMBER_BYTES, |b| {
            if err.is_none() {
                err = f.write_all(b).err();
            }
        })?;
        if let Some(e) = err {
            return Err(e.into());
        }
        f.sync_all()?;
        written.push(target);
    }
    Ok(written)
}

/// Writes members; JSON and text are deflated, photos stored as they are. Timestamps are
/// fixed so the same content gives the same archive bytes.
pub struct Writer<W: Write + Seek> {
    zip: ZipWriter<W>,
}

impl<W: Write + Seek> Writer<W> {
    pub fn new(w: W) -> Self {
        Self { zip: ZipWriter::new(w) }
    }

    pub fn add(&mut self, name: &str, bytes: &[u8], compress: bool) -> Result<(), Error> {
        check_name(name).map_err(|r| member(name, r))?;
        let opts = SimpleFileOptions::default()
            .compression_method(if compress { CompressionMethod::Deflated } else { CompressionMethod::Stored })
            .last_modified_time(zip::DateTime::DEFAULT)
            .unix_permissions(0o644)
            .large_file(bytes.len() as u64 >= u32::MAX as u64);
        self.zip.start_file(name, opts).map_err(|e| member(name, e.to_string()))?;
        self.zip.write_all(bytes)?;
        Ok(())
    }

    /// Streams a member from `reader` (photos: never held in memory whole).
    pub fn add_reader(&mut self, name: &str, reader: &mut impl Read, compress: bool) -> Result<(), Error> {
        check_name(name).map_err(|r| member(name, r))?;
        let opts = SimpleFileOptions::default()
            .compression_method(if compress { CompressionMethod::Deflated } else { CompressionMethod::Stored })
            .last_modified_time(zip::DateTime::DEFAULT)
            .unix_permissions(0o644)
            .large_file(true);
        self.zip.start_file(name, opts).map_err(|e| member(name, e.to_string()))?;
        std::io::copy(reader, &mut self.zip)?;
        Ok(())
    }

    pub fn finish(self) -> Result<W, Error> {
        self.zip.finish().map_err(|e| Error::Archive(e.to_string()))
    }
}
