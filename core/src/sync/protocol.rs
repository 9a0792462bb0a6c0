//! The wire protocol between a device and the sync server (docs/sync-protocol.md is the
//! normative description). `POST /v1/sync` bodies are CBOR (RFC 8949) maps; every other
//! endpoint speaks JSON. Document payloads are standard Automerge binary: a full document
//! (`save()`) or incremental chunks (`save_after()`), both loadable with `load_incremental`.

use serde::{Deserialize, Serialize};

use crate::evidence::log::{Checkpoint, InclusionProof};
use crate::evidence::time::TimeTicket;
use crate::evidence::Entry;

pub const VERSION: u32 = 1;
/// Largest sync body either side accepts.
pub const MAX_SYNC_BODY: usize = 32 * 1024 * 1024;
/// A response stops adding orders past this many document bytes and says `more`.
pub const RESPONSE_SOFT_LIMIT: usize = 8 * 1024 * 1024;
/// Blob upload chunk size the client uses (the server accepts any size up to 4 MiB).
pub const BLOB_CHUNK: usize = 256 * 1024;
pub const MAX_BLOB_CHUNK: usize = 4 * 1024 * 1024;
/// Longest a sync may wait for news (`POST /v1/sync?wait_ms=`): shorter than any proxy's idle
/// timeout worth having.
pub const MAX_WAIT_MS: u64 = 25_000;
/// Largest blob the server takes (a photo; Sync Gateway caps attachments at 20 MB).
pub const MAX_BLOB: u64 = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("message too large: {0} bytes")]
    TooLarge(usize),
    #[error("unsupported protocol version {0}")]
    Version(u32),
}

/// A device's sync request: what it has seen, and its local changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SyncRequest {
    pub v: u32,
    /// Every server change with a sequence number up to here is applied on the device.
    pub cursor: u64,
    pub push: Vec<DocPush>,
    /// Ask for a time ticket with this nonce (piggybacked, no extra round trip).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_nonce: Option<String>,
    /// The spare-part ledger rides along (no extra round trip); sent in a pass's first
    /// request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<PartsSyncRequest>,
    /// Orders the device wants whole (it could not apply the changes it was sent: their
    /// history is missing). The server answers each with `full: true` if it is in scope.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub full: Vec<String>,
}

/// Most orders one request may push or ask for whole.
pub const MAX_PUSH_ORDERS: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocPush {
    pub id: String,
    /// Automerge changes the server does not have yet (`save_after(synced heads)`), or the
    /// whole document.
    #[serde(with = "serde_bytes_compat")]
    pub changes: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SyncResponse {
    pub v: u32,
    /// The device may store this as its new cursor once it applied `docs`.
    pub cursor: u64,
    pub docs: Vec<DocPull>,
    pub rejected: Vec<Rejection>,
    /// Orders no longer in this device's scope (reassigned or withdrawn).
    pub removed: Vec<String>,
    /// More changes are waiting: send another request with the new cursor.
    pub more: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<TimeTicket>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<PartsSyncResponse>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocPull {
    pub id: String,
    /// True when `bytes` is the whole document (a newly assigned order, or the device is
    /// behind the server's compaction); else incremental changes.
    pub full: bool,
    #[serde(with = "serde_bytes_compat")]
    pub bytes: Vec<u8>,
}

/// Why the server refused a pushed order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectCode {
    /// The order is not assigned to this device's engineer (or does not exist).
    NotInScope,
    /// The change touches a field the device does not own; `field` names it.
    ForbiddenField,
    /// The changes depend on history the server does not have: push the whole document.
    ResendFull,
    /// The bytes are not an Automerge document of a work order.
    Invalid,
}

impl RejectCode {
    pub const ALL: [RejectCode; 4] = [RejectCode::NotInScope, RejectCode::ForbiddenField, RejectCode::ResendFull, RejectCode::Invalid];

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectCode::NotInScope => "not_in_scope",
            RejectCode::ForbiddenField => "forbidden_field",
            RejectCode::ResendFull => "resend_full",
            RejectCode::Invalid => "invalid",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rejection {
    pub id: String,
    pub code: RejectCode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub reason: String,
    /// For `forbidden_field`: the server's whole document, to rebase on.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_bytes")]
    pub server_doc: Option<Vec<u8>>,
}

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(value, &mut out).map_err(|e| Error::Malformed(e.to_string()))?;
    Ok(out)
}

pub fn decode_request(bytes: &[u8]) -> Result<SyncRequest, Error> {
    let r: SyncRequest = decode(bytes)?;
    if r.v != VERSION {
        return Err(Error::Version(r.v));
    }
    Ok(r)
}

pub fn decode_response(bytes: &[u8]) -> Result<SyncResponse, Error> {
    let r: SyncResponse = decode(bytes)?;
    if r.v != VERSION {
        return Err(Error::Version(r.v));
    }
    Ok(r)
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, Error> {
    if bytes.len() > MAX_SYNC_BODY {
        return Err(Error::TooLarge(bytes.len()));
    }
    // ciborium bounds recursion (default 256) so hostile nesting cannot overflow the stack.
    ciborium::de::from_reader(bytes).map_err(|e| Error::Malformed(e.to_string()))
}

/// Byte strings as CBOR major type 2 (not arrays of integers).
pub(crate) mod serde_bytes_compat {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(b)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
        }
        d.deserialize_byte_buf(V)
    }
}

pub(crate) mod opt_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match b {
            Some(b) => s.serialize_bytes(b),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        #[derive(Deserialize)]
        struct W(#[serde(with = "super::serde_bytes_compat")] Vec<u8>);
        Ok(Option::<W>::deserialize(d)?.map(|w| w.0))
    }
}

/// `Content-Encoding: deflate` bodies (zlib, RFC 1950). Compression into memory fails only
/// if memory does; the error is returned rather than an empty body sent.
pub fn deflate(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut e = flate2::write::ZlibEncoder::new(Vec::with_capacity(bytes.len() / 3 + 64), flate2::Compression::new(6));
    e.write_all(bytes)?;
    e.finish()
}

/// Inflates at most `max` bytes; a body that expands further is refused (a zip bomb).
pub fn inflate(bytes: &[u8], max: usize) -> Result<Vec<u8>, Error> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(bytes).take(max as u64 + 1).read_to_end(&mut out).map_err(|e| Error::Malformed(format!("deflate: {e}")))?;
    if out.len() > max {
        return Err(Error::TooLarge(out.len()));
    }
    Ok(out)
}

// ----- JSON endpoints -----

/// `POST /v1/enrol`: a device proves it holds its key and redeems a one-time code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrolRequest {
    pub code: String,
    pub device_id: String,
    /// SEC1 P-256 public key, hex.
    pub public_key: String,
    /// ES256 over [`enrol_message`], hex.
    pub signature: String,
    /// The platform's attestation of `public_key` (Android Key Attestation chain, Apple App
    /// Attest object), bound to this enrolment (docs/adr/0019).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<crate::attest::Evidence>,
}

/// An enrolment code as the server keys it: letters and digits, upper case (the groups'
/// dashes and the case the engineer typed do not matter).
pub fn normalize_code(code: &str) -> String {
    code.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_uppercase()).collect()
}

pub fn enrol_message(code: &str, device_id: &str, public_key_hex: &str) -> String {
    format!("onsite-enrol/v1\n{code}\n{device_id}\n{public_key_hex}\n")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrolResponse {
    pub token: String,
    pub provider: String,
    pub engineer_id: String,
    /// SEC1 keys, hex: the time authority (tickets) and the evidence log (checkpoints).
    pub time_authority: String,
    pub log_key: String,
    /// What the server concluded from the attestation (when its policy checks them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<crate::attest::Verdict>,
}

/// `POST /v1/journal` (CBOR): entries after the server's acknowledged seq, and the receipts
/// signed in them. v1 carries each entry's canonical body and signature (`entries`); v2
/// carries only what the server cannot recompute (`compact`, see `journal_wire`) and the
/// `session_open` entries, already logged, whose keys sign seals of this upload
/// (`sessions`). The server recomputes every hash and link either way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct JournalUpload {
    pub v: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entries: Vec<WireEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compact: Vec<super::journal_wire::CompactEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sessions: Vec<WireEntry>,
    #[serde(default)]
    pub receipts: Vec<ReceiptUpload>,
    /// The size of the last log checkpoint this device saw: the answer then proves the new
    /// one consistent with it, with no extra round trip (docs/adr/0020).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_size: Option<u64>,
}

/// Journal upload versions: 1 (whole entries), 2 (compact entries and sessions).
pub const JOURNAL_VERSIONS: [u32; 2] = [1, 2];
pub const JOURNAL_VERSION: u32 = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireEntry {
    pub seq: u64,
    /// The canonical body exactly as hashed and signed.
    #[serde(with = "serde_bytes_compat")]
    pub body: Vec<u8>,
    /// ES256 r||s.
    #[serde(with = "serde_bytes_compat")]
    pub signature: Vec<u8>,
}

impl WireEntry {
    pub fn from_entry(e: &Entry) -> Self {
        Self { seq: e.seq, body: e.body.clone(), signature: e.signature.clone() }
    }

    pub fn into_entry(self) -> Entry {
        let hash = crate::hash::sha256_hex(&self.body);
        Entry { seq: self.seq, body: self.body, hash, signature: self.signature }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReceiptUpload {
    pub order_id: String,
    pub revision: u32,
    /// The canonical receipt, the OSS1 strokes, the signing message and signature.
    #[serde(with = "serde_bytes_compat")]
    pub canonical: Vec<u8>,
    #[serde(default, with = "opt_bytes")]
    pub strokes: Option<Vec<u8>>,
    #[serde(with = "serde_bytes_compat")]
    pub message: Vec<u8>,
    #[serde(with = "serde_bytes_compat")]
    pub signature: Vec<u8>,
    pub journal_seq: u64,
}

pub fn decode_journal_upload(bytes: &[u8]) -> Result<JournalUpload, Error> {
    let r: JournalUpload = decode(bytes)?;
    if !JOURNAL_VERSIONS.contains(&r.v) {
        return Err(Error::Version(r.v));
    }
    if r.v == 1 && !(r.compact.is_empty() && r.sessions.is_empty()) {
        return Err(Error::Malformed("a v1 journal upload carries whole entries only".into()));
    }
    Ok(r)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalAck {
    /// The server holds this device's journal up to here (verified, logged).
    pub acked_seq: u64,
    pub checkpoint: Option<Checkpoint>,
    /// Inclusion proofs of the receipt entries and of the last entry of the upload.
    pub proofs: Vec<InclusionProof>,
    /// RFC 9162 consistency proof (hex) from the upload's `log_size` to the checkpoint's size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency: Option<Consistency>,
}

/// A consistency proof between two sizes of the log (hex hashes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consistency {
    pub from: u64,
    pub to: u64,
    pub path: Vec<String>,
}

/// Error body of every non-2xx answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub reason: String,
    /// For a journal upload that does not continue the server's copy: where it stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked_seq: Option<u64>,
}

/// `HEAD`/`PUT /v1/blobs/{sha256}` headers (resumable upload, tus-like).
pub const UPLOAD_OFFSET: &str = "upload-offset";
pub const UPLOAD_LENGTH: &str = "upload-length";

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn idle_request_is_tiny() {
        let r = SyncRequest { v: VERSION, cursor: 123_456, push: vec![], ticket_nonce: None, parts: None, full: vec![] };
        let b = encode(&r).unwrap();
        assert!(b.len() < 32, "{}", b.len());
        assert_eq!(decode_request(&b).unwrap(), r);
    }

    #[test]
    fn bad_bytes_are_typed_errors() {
        assert!(matches!(decode_request(b"\xff\x00garbage"), Err(Error::Malformed(_))));
        let wrong = encode(&SyncRequest { v: 9, ..Default::default() }).unwrap();
        assert_eq!(decode_request(&wrong), Err(Error::Version(9)));
        // Deep nesting is refused, not a stack overflow.
        let deep: Vec<u8> = std::iter::repeat_n(0x81u8, 100_000).collect();
        assert!(decode_request(&deep).is_err());
    }

    #[test]
    fn journal_uploads_round_trip_with_recomputed_hashes() {
        let key = crate::evidence::SoftwareSigner::generate().unwrap();
        let draft = crate::evidence::journal::Draft::new(crate::evidence::journal::JournalKind::Note, Some("WO-1"), serde_json::json!({ "text": "hi" }));
        let (entries, _) = crate::evidence::journal::seal(&crate::evidence::journal::Head::genesis(), "dev", 1, 1, &draft, &key).unwrap();
        let upload = JournalUpload { v: VERSION, entries: entries.iter().map(WireEntry::from_entry).collect(), ..Default::default() };
        let back = decode_journal_upload(&encode(&upload).unwrap()).unwrap();
        let restored: Vec<Entry> = back.entries.into_iter().map(WireEntry::into_entry).collect();
        assert_eq!(restored, entries, "the hash is recomputed, identical");
        assert_eq!(decode_journal_upload(&encode(&JournalUpload { v: 3, ..Default::default() }).unwrap()), Err(Error::Version(3)));
    }

    #[test]
    fn deflate_round_trips_and_bombs_are_refused() {
        let data = b"onsite ".repeat(1000);
        assert_eq!(inflate(&deflate(&data).unwrap(), 10_000).unwrap(), data);
        let bomb = deflate(&vec![0u8; 10_000_000]).unwrap();
        assert!(bomb.len() < 20_000);
        assert_eq!(inflate(&bomb, 1_000_000), Err(Error::TooLarge(1_000_001)));
        assert!(matches!(inflate(b"not zlib", 100), Err(Error::Malformed(_))));
    }

    /// Writes the fuzzer's seed inputs (`cargo test -p onsite-core write_sync_seeds -- --ignored`).
    #[test]
    #[ignore]
    fn write_sync_seeds() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-crashers/sync");
        std::fs::create_dir_all(&dir).unwrap();
        let order = crate::order::import::parse_orders(&crate::order::import::tests::sample_json("WO-1"), crate::order::Timestamp(0)).unwrap().remove(0);
        let mut doc = automerge::AutoCommit::new();
        autosurgeon::reconcile(&mut doc, &order).unwrap();
        let full = doc.save();
        let req = SyncRequest {
            v: VERSION,
            cursor: 7,
            push: vec![DocPush { id: "WO-1".into(), changes: full.clone() }],
            ticket_nonce: Some("n".into()),
            parts: None,
            full: vec![],
        };
        std::fs::write(dir.join("request-full-doc.cbor"), encode(&req).unwrap()).unwrap();
        std::fs::write(dir.join("request-idle.cbor"), encode(&SyncRequest { v: VERSION, cursor: 99, ..Default::default() }).unwrap()).unwrap();
        let resp = SyncResponse {
            v: VERSION,
            cursor: 9,
            more: false,
            removed: vec!["WO-2".into()],
            ticket: None,
            parts: None,
            docs: vec![DocPull { id: "WO-1".into(), full: true, bytes: full.clone() }],
            rejected: vec![Rejection {
                id: "WO-3".into(),
                code: RejectCode::ForbiddenField,
                field: Some("priority".into()),
                reason: "r".into(),
                server_doc: Some(full),
            }],
        };
        std::fs::write(dir.join("response.cbor"), encode(&resp).unwrap()).unwrap();
        std::fs::write(dir.join("request-deflated.bin"), deflate(&encode(&req).unwrap()).unwrap()).unwrap();
        let key = crate::evidence::SoftwareSigner::generate().unwrap();
        let draft = crate::evidence::journal::Draft::new(crate::evidence::journal::JournalKind::Note, Some("WO-1"), serde_json::json!({ "text": "hi" }));
        let (entries, _) = crate::evidence::journal::seal(&crate::evidence::journal::Head::genesis(), "dev", 1, 1, &draft, &key).unwrap();
        let upload = JournalUpload { v: VERSION, entries: entries.iter().map(WireEntry::from_entry).collect(), ..Default::default() };
        std::fs::write(dir.join("journal-upload.cbor"), encode(&upload).unwrap()).unwrap();
        // v2: a session, unsigned notes, a seal, compact.
        use crate::evidence::journal::{seal_with, Session, Signing};
        let (skey, open) = Session::begin(1, None).unwrap();
        let (mut entries, mut head) = seal_with(&crate::evidence::journal::Head::genesis(), "dev", 1, 1, &open, None, Signing::Every(&key)).unwrap();
        let session = Session::new(1, skey, 1);
        let mut order_prev = crate::evidence::journal::ZERO_HASH.to_string();
        for (i, kind) in [crate::evidence::journal::JournalKind::Note, crate::evidence::journal::JournalKind::Note, crate::evidence::journal::JournalKind::Seal]
            .into_iter()
            .enumerate()
        {
            let d = crate::evidence::journal::Draft::new(kind, Some("WO-1"), serde_json::json!({ "text": format!("n{i}"), "reason": "sync" }));
            let (es, h) = seal_with(&head, "dev", 2 + i as i64, 2 + i as u64, &d, Some(&order_prev), Signing::Session(&session)).unwrap();
            order_prev = es[0].hash.clone();
            entries.extend(es);
            head = h;
        }
        let compact = crate::sync::journal_wire::compact(&entries, |_, _| None).unwrap();
        let upload = JournalUpload { v: JOURNAL_VERSION, compact, ..Default::default() };
        std::fs::write(dir.join("journal-upload-v2.cbor"), encode(&upload).unwrap()).unwrap();
    }

    proptest! {
        #[test]
        fn round_trips(cursor in any::<u64>(), ids in proptest::collection::vec("[A-Z0-9-]{1,12}", 0..5), bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let push: Vec<DocPush> = ids.iter().map(|id| DocPush { id: id.clone(), changes: bytes.clone() }).collect();
            let r = SyncRequest { v: VERSION, cursor, push, ticket_nonce: Some("n".into()), parts: None, full: vec![] };
            prop_assert_eq!(decode_request(&encode(&r).unwrap()).unwrap(), r);
            let resp = SyncResponse {
                v: VERSION, cursor, more: cursor % 2 == 0,
                docs: ids.iter().map(|id| DocPull { id: id.clone(), full: true, bytes: bytes.clone() }).collect(),
                rejected: ids.iter().map(|id| Rejection { id: id.clone(), code: RejectCode::ForbiddenField, field: Some("priority".into()), reason: "r".into(), server_doc: Some(bytes.clone()) }).collect(),
                removed: ids.clone(), ticket: None,
                parts: (cursor % 3 == 0).then(|| PartsSyncResponse { cursor, acked: ids.clone(), movements: vec![], certifications: vec![] }),
            };
            prop_assert_eq!(decode_response(&encode(&resp).unwrap()).unwrap(), resp);
        }

        #[test]
        fn decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_request(&bytes);
            let _ = decode_response(&bytes);
        }
    }
}

// ----- spare parts and certifications (JSON, POST /v1/parts/sync) -----

/// A device's unsent part movements and its cursor in the engineer's movement feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartsSyncRequest {
    pub cursor: u64,
    pub movements: Vec<crate::parts::Movement>,
    /// How many certifications the device holds; the server sends them when it has others.
    #[serde(default)]
    pub certs_known: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartsSyncResponse {
    pub cursor: u64,
    /// Ids of the request's movements the server now holds.
    pub acked: Vec<String>,
    /// The engineer's movements after the cursor that this device did not write (the
    /// clerk's, other devices').
    pub movements: Vec<crate::parts::Movement>,
    /// Every certification the provider issued to the engineer (empty when the device
    /// already holds as many).
    #[serde(default)]
    pub certifications: Vec<crate::profile::SignedCertification>,
}
