//! Checkpoints as C2SP signed notes (c2sp.org/signed-note, c2sp.org/tlog-checkpoint), so
//! standard transparency-log tooling and witnesses read the log (ADR 0020).
//!
//! A checkpoint's text is `<origin>\n<size>\n<base64 root>\n`; a signature line is
//! `— <key name> <base64(key id (4 bytes) || signature)>`. The log signs with Ed25519 (the
//! note format's algorithm 0x01); a verifier key is written `<name>+<hex key id>+<base64(0x01
//! || public key)>`, and the key id is the first 4 bytes of SHA-256(name || "\n" || 0x01 ||
//! public key).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};

use super::Hash;

const ALG_ED25519: u8 = 0x01;
/// Notes larger than this are refused unread (C2SP: verifiers may set a limit).
const MAX_NOTE: usize = 1 << 16;
/// At most this many signature lines.
const MAX_SIGNATURES: usize = 100;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("the note is malformed: {0}")]
    Malformed(&'static str),
    #[error("the verifier key is malformed")]
    BadKey,
    #[error("no signature from {0} verifies")]
    Unsigned(String),
}

/// A key id: SHA-256(name || "\n" || algorithm || public key)[:4] (signed notes, and
/// cosignatures with their own algorithm byte).
pub(super) fn key_id(name: &str, alg: u8, public_key: &[u8]) -> [u8; 4] {
    let mut h = crate::hash::Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([alg]);
    h.update(public_key);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

pub(super) fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| !c.is_whitespace() && !c.is_control() && c != '+')
}

/// `<name>+<hex key id>+<base64(algorithm || public key)>`.
pub(super) fn verifier_key(name: &str, alg: u8, public_key: &[u8]) -> String {
    let mut encoded = vec![alg];
    encoded.extend_from_slice(public_key);
    format!("{name}+{}+{}", crate::hash::hex(&key_id(name, alg, public_key)), B64.encode(encoded))
}

/// A verifier key of algorithm `alg` with a 32-byte (Ed25519) key whose id matches:
/// (name, id, public key).
pub(super) fn parse_verifier_key(vkey: &str, alg: u8) -> Result<(String, [u8; 4], Vec<u8>), Error> {
    let mut parts = vkey.trim().splitn(3, '+');
    let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else { return Err(Error::BadKey) };
    let encoded = B64.decode(key).map_err(|_| Error::BadKey)?;
    let id: [u8; 4] = crate::hash::unhex(id).and_then(|b| b.try_into().ok()).ok_or(Error::BadKey)?;
    if !valid_name(name) || encoded.len() != 33 || encoded[0] != alg || key_id(name, alg, &encoded[1..]) != id {
        return Err(Error::BadKey);
    }
    Ok((name.to_string(), id, encoded[1..].to_vec()))
}

/// The log's Ed25519 note key.
pub struct NoteSigner {
    name: String,
    key: Ed25519KeyPair,
    id: [u8; 4],
}

impl NoteSigner {
    /// The signer named `name` (the log's origin, by convention) from a 32-byte seed.
    pub fn from_seed(name: &str, seed: &[u8]) -> Result<Self, Error> {
        if !valid_name(name) {
            return Err(Error::BadKey);
        }
        let key = Ed25519KeyPair::from_seed_unchecked(seed).map_err(|_| Error::BadKey)?;
        Ok(Self { name: name.to_string(), id: key_id(name, ALG_ED25519, key.public_key().as_ref()), key })
    }

    /// The verifier key that checks this signer's notes.
    pub fn verifier_key(&self) -> String {
        verifier_key(&self.name, ALG_ED25519, self.key.public_key().as_ref())
    }

    /// `text` (which must end in a newline) signed: the whole note.
    pub fn sign(&self, text: &str) -> String {
        let mut sig = self.id.to_vec();
        sig.extend_from_slice(self.key.sign(text.as_bytes()).as_ref());
        format!("{text}\n\u{2014} {} {}\n", self.name, B64.encode(sig))
    }
}

/// A verifier key, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verifier {
    pub name: String,
    id: [u8; 4],
    public_key: Vec<u8>,
}

impl Verifier {
    pub fn parse(vkey: &str) -> Result<Self, Error> {
        let (name, id, public_key) = parse_verifier_key(vkey, ALG_ED25519)?;
        Ok(Self { name, id, public_key })
    }

    fn accepts(&self, name: &str, sig: &[u8], text: &str) -> bool {
        name == self.name
            && sig.len() == 68
            && sig[..4] == self.id
            && UnparsedPublicKey::new(&ED25519, &self.public_key).verify(text.as_bytes(), &sig[4..]).is_ok()
    }
}

/// A note split into its text and signature lines (name, decoded signature).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub text: String,
    pub signatures: Vec<(String, Vec<u8>)>,
}

impl Note {
    pub fn parse(note: &str) -> Result<Self, Error> {
        if note.len() > MAX_NOTE {
            return Err(Error::Malformed("too large"));
        }
        if note.chars().any(|c| c < ' ' && c != '\n') {
            return Err(Error::Malformed("control characters"));
        }
        let (text, sigs) = note.rsplit_once("\n\n").ok_or(Error::Malformed("no signature block"))?;
        let sigs = sigs.strip_suffix('\n').ok_or(Error::Malformed("no final newline"))?;
        let mut signatures = Vec::new();
        for line in sigs.split('\n') {
            let rest = line.strip_prefix("\u{2014} ").ok_or(Error::Malformed("a signature line"))?;
            let (name, b64) = rest.split_once(' ').ok_or(Error::Malformed("a signature line"))?;
            let sig = B64.decode(b64).map_err(|_| Error::Malformed("a signature's base64"))?;
            if !valid_name(name) || sig.len() < 5 {
                return Err(Error::Malformed("a signature line"));
            }
            signatures.push((name.to_string(), sig));
        }
        if signatures.len() > MAX_SIGNATURES {
            return Err(Error::Malformed("too many signatures"));
        }
        Ok(Self { text: format!("{text}\n"), signatures })
    }

    /// Whether `v` signed this note.
    pub fn signed_by(&self, v: &Verifier) -> bool {
        self.signatures.iter().any(|(name, sig)| v.accepts(name, sig, &self.text))
    }
}

/// A checkpoint's body (c2sp.org/tlog-checkpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointBody {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl CheckpointBody {
    pub fn text(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, B64.encode(self.root))
    }

    /// Parses a checkpoint's text (extension lines after the root are allowed and ignored).
    pub fn parse(text: &str) -> Result<Self, Error> {
        let mut lines = text.split('\n');
        let origin = lines.next().filter(|o| !o.is_empty()).ok_or(Error::Malformed("origin"))?;
        let size = lines.next().filter(|s| s == &"0" || !s.starts_with('0')).and_then(|s| s.parse().ok()).ok_or(Error::Malformed("size"))?;
        let root = lines.next().and_then(|r| B64.decode(r).ok()).and_then(|r| r.try_into().ok()).ok_or(Error::Malformed("root hash"))?;
        Ok(Self { origin: origin.to_string(), size, root })
    }
}

/// Opens a signed checkpoint: the body, if `log` signed it.
pub fn open_checkpoint(note: &str, log: &Verifier) -> Result<CheckpointBody, Error> {
    let n = Note::parse(note)?;
    let body = CheckpointBody::parse(&n.text)?;
    if !n.signed_by(log) {
        return Err(Error::Unsigned(log.name.clone()));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> NoteSigner {
        NoteSigner::from_seed("onsite/prov-a", &[7u8; 32]).expect("seed")
    }

    #[test]
    fn a_signed_checkpoint_opens_with_its_key_and_no_other() {
        let s = signer();
        let body = CheckpointBody { origin: "onsite/prov-a".into(), size: 42, root: [9u8; 32] };
        let note = s.sign(&body.text());
        let v = Verifier::parse(&s.verifier_key()).expect("vkey");
        assert_eq!(open_checkpoint(&note, &v), Ok(body.clone()));
        let other = NoteSigner::from_seed("onsite/prov-a", &[8u8; 32]).expect("seed");
        assert!(matches!(open_checkpoint(&note, &Verifier::parse(&other.verifier_key()).expect("vkey")), Err(Error::Unsigned(_))));
        // Any change to the text breaks the signature.
        let forged = note.replacen("42", "43", 1);
        assert!(open_checkpoint(&forged, &v).is_err());
    }

    #[test]
    fn malformed_notes_and_keys_are_refused() {
        let s = signer();
        let note = s.sign("onsite/prov-a\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n");
        let v = Verifier::parse(&s.verifier_key()).expect("vkey");
        for bad in [
            note.trim_end().to_string(),
            note.replace("\n\n", "\n"),
            note.replace('\u{2014}', "-"),
            format!("x\u{7}{note}"),
            "onsite/prov-a\n01\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n\u{2014} a AAAAAA==\n".to_string(),
        ] {
            assert!(open_checkpoint(&bad, &v).is_err(), "{bad:?}");
        }
        let vk = s.verifier_key();
        for bad in [vk.replace("+", "-"), format!("{vk}A"), vk.replacen("onsite", "other", 1), "a+00000000+AQ==".into()] {
            assert!(Verifier::parse(&bad).is_err(), "{bad}");
        }
    }
}
