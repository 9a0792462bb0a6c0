//! Device keys. Everything the device records is signed with a P-256 ECDSA key (ES256): the
//! key type iOS Secure Enclave and Android StrongBox hold. Apps implement [`Signer`] with a
//! hardware key; [`SoftwareSigner`] (key in the app's database) serves desktop and tests.
//! See docs/adr/0006-device-keys.md.

use p256::ecdsa::{Signature, VerifyingKey};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    #[error("signing failed: {0}")]
    Signing(String),
    #[error("bad public key: {0}")]
    BadKey(String),
    #[error("bad signature encoding: {0}")]
    BadSignature(String),
}

/// Signs messages with the device's key. `sign` returns the 64-byte `r || s` form.
pub trait Signer: Send + Sync {
    /// SEC1 uncompressed public key (65 bytes, 0x04 || X || Y).
    fn public_key(&self) -> Vec<u8>;
    /// ECDSA P-256 over SHA-256 of `message`; 64 bytes `r || s`.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error>;
}

/// A P-256 key held in memory, persisted by the store as a PKCS#8 document. Signing uses
/// ring's constant-time, assembly-optimized P-256 (~25 us; the pure-Rust p256 crate takes
/// ~180 us, and the journal signs every edit).
pub struct SoftwareSigner {
    pair: ring::signature::EcdsaKeyPair,
    pkcs8: Vec<u8>,
    rng: ring::rand::SystemRandom,
}

const ALG: &ring::signature::EcdsaSigningAlgorithm = &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING;

impl SoftwareSigner {
    pub fn generate() -> Result<Self, Error> {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(ALG, &rng).map_err(|e| Error::BadKey(format!("key generation failed: {e}")))?;
        Self::from_secret(pkcs8.as_ref())
    }

    /// Loads a key from its PKCS#8 document (as returned by [`SoftwareSigner::secret`]).
    pub fn from_secret(pkcs8: &[u8]) -> Result<Self, Error> {
        let rng = ring::rand::SystemRandom::new();
        let pair = ring::signature::EcdsaKeyPair::from_pkcs8(ALG, pkcs8, &rng).map_err(|e| Error::BadKey(e.to_string()))?;
        Ok(Self { pair, pkcs8: pkcs8.to_vec(), rng })
    }

    /// The PKCS#8 document to persist.
    pub fn secret(&self) -> Vec<u8> {
        self.pkcs8.clone()
    }
}

impl Signer for SoftwareSigner {
    fn public_key(&self) -> Vec<u8> {
        use ring::signature::KeyPair;
        self.pair.public_key().as_ref().to_vec()
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        let sig = self.pair.sign(&self.rng, message).map_err(|e| Error::Signing(e.to_string()))?;
        Ok(sig.as_ref().to_vec())
    }
}

/// Verifies an ES256 signature (64-byte `r || s`, or DER as Android/iOS APIs produce) with
/// ring's assembly P-256 (the server verifies every journal entry: ~4x faster than the
/// pure-Rust p256 crate on the same machine, see `onsite bench sync`). A key that is not a
/// valid SEC1 P-256 point is `BadKey`, an unparsable signature `BadSignature`, a signature
/// that does not verify `Ok(false)`.
pub fn verify(public_key: &[u8], message: &[u8], signature: &[u8]) -> Result<bool, Error> {
    let key = VerifyingKey::from_sec1_bytes(public_key).map_err(|e| Error::BadKey(e.to_string()))?;
    // ring takes the uncompressed form; a compressed key (valid SEC1 too) is expanded first.
    let uncompressed;
    let public_key = if public_key.first() == Some(&0x04) {
        public_key
    } else {
        uncompressed = key.to_encoded_point(false);
        uncompressed.as_bytes()
    };
    let algorithm = match signature.len() {
        64 => &ring::signature::ECDSA_P256_SHA256_FIXED,
        _ => {
            // Parse first so a malformed DER is told apart from a wrong signature.
            Signature::from_der(signature).map_err(|e| Error::BadSignature(e.to_string()))?;
            &ring::signature::ECDSA_P256_SHA256_ASN1
        }
    };
    Ok(ring::signature::UnparsedPublicKey::new(algorithm, public_key).verify(message, signature).is_ok())
}

/// True when `public_key` is a valid SEC1 P-256 point.
pub fn is_valid_key(public_key: &[u8]) -> bool {
    VerifyingKey::from_sec1_bytes(public_key).is_ok()
}

/// Normalizes a signature from a platform signer (DER from Android Keystore / iOS
/// SecKeyCreateSignature) to the 64-byte form stored in records.
pub fn normalize(signature: &[u8]) -> Result<Vec<u8>, Error> {
    if signature.len() == 64 {
        return Ok(signature.to_vec());
    }
    Signature::from_der(signature).map(|s| s.to_bytes().to_vec()).map_err(|e| Error::BadSignature(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_tamper() {
        let s = SoftwareSigner::generate().unwrap();
        let sig = s.sign(b"hello").unwrap();
        assert_eq!(sig.len(), 64);
        assert!(verify(&s.public_key(), b"hello", &sig).unwrap());
        assert!(!verify(&s.public_key(), b"hellp", &sig).unwrap());
        let mut bad = sig.clone();
        bad[10] ^= 1;
        assert!(!verify(&s.public_key(), b"hello", &bad).unwrap_or(false));
        let restored = SoftwareSigner::from_secret(&s.secret()).unwrap();
        assert_eq!(restored.public_key(), s.public_key());
        // DER signatures from platform keystores are accepted and normalized.
        let der = Signature::from_slice(&sig).unwrap().to_der().as_bytes().to_vec();
        assert!(SoftwareSigner::from_secret(b"not pkcs8").is_err());
        assert!(verify(&s.public_key(), b"hello", &der).unwrap());
        assert_eq!(normalize(&der).unwrap(), sig);
        assert!(verify(b"not a key", b"hello", &sig).is_err());
        // A compressed SEC1 key verifies the same signatures.
        let compressed = VerifyingKey::from_sec1_bytes(&s.public_key()).unwrap().to_encoded_point(true).as_bytes().to_vec();
        assert!(verify(&compressed, b"hello", &sig).unwrap());
        assert!(!verify(&compressed, b"hellp", &sig).unwrap());
        // A high-S twin of a valid signature: both libraries accept it (ECDSA is malleable;
        // the journal binds entries by the hash of their body, never by the signature bytes).
        let twin = {
            let p = Signature::from_slice(&sig).unwrap();
            let (r, s_) = p.split_scalars();
            Signature::from_scalars(r, -*s_).unwrap().to_bytes().to_vec()
        };
        assert_eq!(verify(&s.public_key(), b"hello", &twin).unwrap(), {
            use p256::ecdsa::signature::Verifier as _;
            VerifyingKey::from_sec1_bytes(&s.public_key()).unwrap().verify(b"hello", &Signature::from_slice(&twin).unwrap()).is_ok()
        });
    }
}
