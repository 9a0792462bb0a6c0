//! Encryption at rest (docs/adr/0018): the store's key, where it comes from, and the keys
//! derived from it. The platform holds one 32-byte master key (Android: wrapped by an Android
//! Keystore key; iOS: a Keychain item, after first unlock, this device only; desktop and CLI:
//! a key file kept beside the data directory, mode 0600). From it, HKDF-SHA256 derives one key
//! per use, so no key serves two ciphers:
//! - `sqlcipher`: SQLCipher's raw page key (the database file, its WAL and journals);
//! - `blobs`: the root of the per-file keys of photos and thumbnails ([`stream`]);
//! - `key id`: a public fingerprint written beside the database, so a wrong key is told
//!   apart from a damaged file.

#[cfg(test)]
mod device_tests;
pub mod stream;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What went wrong getting or using the store's key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The platform could not give the key (Keystore or Keychain locked, key file unreadable).
    #[error("the store's key is unavailable: {reason}")]
    Unavailable { reason: String },
    /// A key was given but it is not the one this store was encrypted with.
    #[error("the key does not open the store at {path}; nothing was changed")]
    Wrong { path: PathBuf },
    /// The store is encrypted and no key was given.
    #[error("the store at {path} is encrypted and no key was given")]
    Missing { path: PathBuf },
    #[error("the store's key must be 32 bytes, not {len}")]
    Length { len: usize },
}

/// The 32-byte master key. Its bytes never appear in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreKey([u8; 32]);

impl std::fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoreKey({})", self.id())
    }
}

impl Drop for StoreKey {
    fn drop(&mut self) {
        // Best effort: the key does not linger in freed memory.
        for b in self.0.iter_mut() {
            // SAFETY: a plain volatile write to an owned, aligned byte.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

impl StoreKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let key: [u8; 32] = bytes.try_into().map_err(|_| KeyError::Length { len: bytes.len() })?;
        Ok(Self(key))
    }

    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<Self, KeyError> {
        let mut key = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key)
            .map_err(|_| KeyError::Unavailable { reason: "the system random source failed".into() })?;
        Ok(Self(key))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// HKDF-SHA256 of the master key for one purpose.
    pub(crate) fn derive(&self, purpose: &str) -> [u8; 32] {
        derive(&self.0, b"onsite at-rest v1", purpose.as_bytes())
    }

    /// SQLCipher's raw key, as the `PRAGMA key` literal (`x'..'`: no passphrase KDF).
    pub(crate) fn sqlcipher_pragma(&self) -> String {
        format!("x'{}'", crate::hash::hex(&self.derive("sqlcipher")))
    }

    /// The root of the blob files' keys.
    pub(crate) fn blob_root(&self) -> [u8; 32] {
        self.derive("blobs")
    }

    /// A public fingerprint of the key (16 bytes, hex): tells a wrong key from a damaged file.
    pub fn id(&self) -> String {
        crate::hash::hex(&self.derive("key id")[..16])
    }
}

/// HKDF-SHA256 (RFC 5869) to 32 bytes.
pub(crate) fn derive(ikm: &[u8], salt: &[u8], info: &[u8]) -> [u8; 32] {
    struct Len32;
    impl ring::hkdf::KeyType for Len32 {
        fn len(&self) -> usize {
            32
        }
    }
    let prk = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, salt).extract(ikm);
    let mut out = [0u8; 32];
    // `expand` and `fill` fail only when the length exceeds 255 hash lengths; 32 never does.
    if let Ok(okm) = prk.expand(&[info], Len32) {
        let _ = okm.fill(&mut out);
    }
    out
}

/// Where the store's key comes from: the app's platform key store, or a key file.
pub trait KeySource: Send + Sync {
    /// The key, created on first use. Called once per store open.
    fn store_key(&self) -> Result<StoreKey, KeyError>;
}

/// A fixed key (tests, and platforms that already hold the key in memory).
pub struct FixedKey(pub StoreKey);

impl KeySource for FixedKey {
    fn store_key(&self) -> Result<StoreKey, KeyError> {
        Ok(self.0.clone())
    }
}

/// The desktop and CLI key: a 32-byte file, created with mode 0600 when missing.
pub struct KeyFile {
    path: PathBuf,
}

impl KeyFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// `ONSITE_KEY_FILE` when set, else `<data_dir>.key` beside the data directory (never
    /// inside it: copying the data directory does not copy its key).
    pub fn for_data_dir(data_dir: &Path) -> Self {
        match std::env::var_os("ONSITE_KEY_FILE") {
            Some(p) if !p.is_empty() => Self::new(p),
            _ => Self::new(beside(data_dir)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn create(&self) -> Result<StoreKey, KeyError> {
        let unavailable = |e: std::io::Error| KeyError::Unavailable { reason: format!("{}: {e}", self.path.display()) };
        if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(unavailable)?;
        }
        let key = StoreKey::generate()?;
        // Written to a temp file and linked into place: a crash leaves no half key, and two
        // processes creating it at once agree on the one that landed.
        let tmp = self.path.with_extension(format!("key-tmp-{}", std::process::id()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let written = (|| {
            let mut f = options.open(&tmp)?;
            f.write_all(key.as_bytes())?;
            f.sync_all()?;
            std::fs::hard_link(&tmp, &self.path)
        })();
        let _ = std::fs::remove_file(&tmp);
        match written {
            Ok(()) => Ok(key),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => self.read(),
            Err(e) => Err(unavailable(e)),
        }
    }

    fn read(&self) -> Result<StoreKey, KeyError> {
        let bytes = std::fs::read(&self.path).map_err(|e| KeyError::Unavailable { reason: format!("{}: {e}", self.path.display()) })?;
        StoreKey::from_bytes(&bytes)
            .map_err(|_| KeyError::Unavailable { reason: format!("{} holds {} bytes, not a 32-byte key", self.path.display(), bytes.len()) })
    }
}

impl KeySource for KeyFile {
    fn store_key(&self) -> Result<StoreKey, KeyError> {
        match self.read() {
            Ok(k) => Ok(k),
            Err(_) if !self.path.exists() => self.create(),
            Err(e) => Err(e),
        }
    }
}

/// `<dir>.key`, beside `dir`.
pub fn beside(data_dir: &Path) -> PathBuf {
    let mut name = data_dir.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "onsite".into());
    name.push(".key");
    data_dir.with_file_name(name)
}

/// How a device's data is kept at rest.
#[derive(Clone)]
pub enum Encryption {
    /// Encrypted with the key from this source (the default everywhere).
    Key(Arc<dyn KeySource>),
    /// Not encrypted: for benchmark baselines and tests that read the files; an encrypted
    /// store refuses to open this way.
    Plain,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_created_once_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let file = KeyFile::new(beside(&dir.path().join("data")));
        assert_eq!(file.path(), dir.path().join("data.key"));
        let a = file.store_key().unwrap();
        let b = file.store_key().unwrap();
        assert_eq!(a, b, "the same key on every open");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(file.path()).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temp file left");
        std::fs::write(file.path(), b"short").unwrap();
        assert!(matches!(file.store_key(), Err(KeyError::Unavailable { .. })), "a damaged key file is not replaced");
        assert_eq!(std::fs::read(file.path()).unwrap(), b"short");
    }

    #[test]
    fn derived_keys_differ_by_purpose_and_debug_hides_the_key() {
        let k = StoreKey::from_bytes(&[7u8; 32]).unwrap();
        assert_ne!(k.derive("sqlcipher"), k.derive("blobs"));
        assert_eq!(k.derive("blobs"), StoreKey::from_bytes(&[7u8; 32]).unwrap().derive("blobs"));
        assert!(!format!("{k:?}").contains("0707"));
        assert!(matches!(StoreKey::from_bytes(&[1; 31]), Err(KeyError::Length { len: 31 })));
        // RFC 5869 test case 1 (first 32 bytes of the 42-byte OKM).
        let okm = derive(&[0x0b; 22], &hex("000102030405060708090a0b0c"), &hex("f0f1f2f3f4f5f6f7f8f9"));
        assert_eq!(crate::hash::hex(&okm), "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf");
    }

    fn hex(s: &str) -> Vec<u8> {
        crate::hash::unhex(s).unwrap()
    }
}
