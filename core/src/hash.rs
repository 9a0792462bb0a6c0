//! Content hashes used across the model (template pins, consent risk texts, strokes, blobs,
//! journal entries, the Merkle log), in one room so the backend is one line to change. SHA-256
//! is ring's (BoringSSL's assembly, with the SHA extensions where the CPU has them). Measured
//! on an Intel Xeon with SHA-NI, streaming through a resident 256 KiB block as the blob store
//! does, it runs at 1.00x `openssl speed -evp sha256 -bytes 262144` (~2 GB/s) and at the speed
//! of the `sha2` crate; a cold 64 MiB buffer hashed once is memory-bound (~1.2 GB/s). `onsite
//! bench photo` prints all of them.

/// An incremental SHA-256 (streamed blobs, tree nodes).
#[derive(Clone)]
pub struct Sha256(ring::digest::Context);

impl Default for Sha256 {
    fn default() -> Self {
        Self::new()
    }
}

impl Sha256 {
    pub fn new() -> Self {
        Self(ring::digest::Context::new(&ring::digest::SHA256))
    }

    pub fn update(&mut self, bytes: impl AsRef<[u8]>) {
        self.0.update(bytes.as_ref());
    }

    pub fn finalize(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.0.finish().as_ref());
        out
    }

    /// The digest of `bytes` in one call.
    pub fn digest(bytes: impl AsRef<[u8]>) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, bytes.as_ref()).as_ref());
        out
    }
}

/// SHA-256 as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lowercase hex of any bytes.
pub fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

/// Bytes from lowercase hex, the one spelling this code writes; `None` for anything else
/// (`A`–`F`, a sign, an odd length). Signed and hashed data is read only in its canonical
/// form, so no other spelling of the same bytes passes for it. Hex a person typed goes
/// through [`unhex_typed`].
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let s = s.as_bytes();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.chunks_exact(2).map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?)).collect()
}

/// Bytes from hex a person typed or pasted (a command-line flag, an operator's key file):
/// either case, surrounding whitespace ignored.
pub fn unhex_typed(s: &str) -> Option<Vec<u8>> {
    unhex(&s.trim().to_ascii_lowercase())
}

/// True for 64 lowercase hex characters.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Serde for bytes as lowercase hex strings.
pub mod hex_serde {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::hex(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        super::unhex(&s).ok_or_else(|| serde::de::Error::custom("not hex"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_is_read_in_its_one_spelling() {
        assert_eq!(super::unhex("00ff7a"), Some(vec![0, 255, 0x7a]));
        assert_eq!(super::unhex(""), Some(vec![]));
        for bad in ["00FF", "0A", "+a", "-1", " 0a", "0", "0g", "ａa"] {
            assert_eq!(super::unhex(bad), None, "{bad:?}");
        }
        assert_eq!(super::unhex_typed(" 00FF\n"), Some(vec![0, 255]));
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(super::unhex(&super::hex(&all)), Some(all));
    }

    #[test]
    fn known_vector() {
        // FIPS 180-2 example: SHA-256("abc").
        assert_eq!(super::sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert!(super::is_sha256_hex(&super::sha256_hex(b"")));
        assert!(!super::is_sha256_hex("BA7816BF"));
    }
}
