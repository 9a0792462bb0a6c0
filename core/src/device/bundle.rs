//! Exporting an order's arbitration bundle (see `crate::bundle` for the layout).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::Device;
use crate::bundle::{self, archive, roles, DeviceKey, Manifest, MemberRef, SignedPart};
use crate::cancel::Cancel;
use crate::hash::{hex, sha256_hex};
use crate::receipt::SigningMessage;
use crate::Result;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportOptions {
    /// Carry the 320 px thumbnails instead of the original photos (a smaller file to mail;
    /// the journal still binds the originals' hashes).
    pub thumbnails_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExportSummary {
    pub path: PathBuf,
    pub bytes: u64,
    pub sha256: String,
    pub members: usize,
    pub receipts: usize,
    pub photos: usize,
    pub journal_entries: usize,
}

/// A member to write: its bytes, or a stored blob streamed (decrypted) from disk.
enum Source {
    Bytes(Vec<u8>),
    Blob(String),
}

impl Device {
    /// Writes the order's bundle to `out` (atomically: a temporary file renamed into place).
    /// Needs at least one signed (or refused) receipt.
    pub fn export_bundle(&self, order_id: &str, out: &Path, opts: ExportOptions) -> Result<ExportSummary> {
        self.export_bundle_cancellable(order_id, out, opts, &Cancel::new())
    }

    /// [`Device::export_bundle`] that stops when `cancel` fires (checked between members);
    /// the partial temporary file is removed and `out` is left untouched.
    pub fn export_bundle_cancellable(&self, order_id: &str, out: &Path, opts: ExportOptions, cancel: &Cancel) -> Result<ExportSummary> {
        self.store.get(order_id)?;
        let receipts = self.store.receipts(order_id)?;
        if receipts.is_empty() {
            return Err(crate::receipt::Error::NotFound { order: order_id.to_string(), revision: 1 }.into());
        }
        let mut members: Vec<(MemberRef, Source, bool)> = Vec::new();
        let mut add = |path: String, role: &str, bytes: Vec<u8>| {
            let m = MemberRef { path, role: role.into(), size: bytes.len() as u64, sha256: sha256_hex(&bytes) };
            members.push((m, Source::Bytes(bytes), true));
        };
        let mut photo_hashes = BTreeSet::new();
        for r in &receipts {
            let n = r.revision;
            let message: SigningMessage = serde_json::from_slice(&r.message).map_err(|e| bundle::Error::Build(e.to_string()))?;
            let part = SignedPart { message, signature: hex(&r.signature), journal_seq: r.journal_seq, signed_at_ms: r.signed_at_ms };
            add(format!("receipt/r{n}.json"), roles::RECEIPT, r.canonical.clone());
            add(format!("receipt/r{n}.signed.json"), roles::RECEIPT_SIGNATURE, crate::jcs::to_vec_of(&part).map_err(|e| bundle::Error::Build(e.to_string()))?);
            if let Some(strokes) = &r.strokes {
                let svg = crate::signature::render_svg(&crate::signature::decode(strokes)?);
                add(format!("signature/r{n}.oss1"), roles::STROKES, strokes.clone());
                add(format!("signature/r{n}.svg"), roles::SVG, svg.into_bytes());
            }
            let parsed: crate::receipt::Receipt = serde_json::from_slice(&r.canonical).map_err(|e| bundle::Error::Build(e.to_string()))?;
            photo_hashes.extend(parsed.photos.into_iter().map(|p| p.sha256));
        }
        // Everything the bundle carries is covered by a signature (ADR 0017).
        self.countersigner.flush();
        self.store.seal_pending(self.stamp(), "export")?;
        let entries = self.store.journal_entries(Some(order_id))?;
        let mut ticket_seqs = BTreeSet::new();
        for e in &entries {
            if let Some(t) = e.body().ok().and_then(|b| b.ticket) {
                ticket_seqs.insert(t.seq);
            }
        }
        let mut tickets = Vec::new();
        for seq in ticket_seqs {
            if let Some(e) = self.store.journal_entry(seq)? {
                tickets.push(e);
            }
        }
        // The sessions whose keys signed the slice's seals and the tickets.
        let sessions = self.sessions_of(&[entries.as_slice(), tickets.as_slice()].concat())?;
        let json = |v: &dyn erased::Json| v.to_json();
        add("journal/order.json".into(), roles::JOURNAL, json(&entries)?);
        if !tickets.is_empty() {
            add("journal/tickets.json".into(), roles::TICKETS, json(&tickets)?);
        }
        if !sessions.is_empty() {
            add("journal/sessions.json".into(), roles::SESSIONS, json(&sessions)?);
        }
        // The server's inclusion proofs for this order's entries (once the journal synced).
        let seqs: BTreeSet<u64> = entries.iter().map(|e| e.seq).collect();
        let proofs: Vec<crate::evidence::log::InclusionProof> = self.log_proofs()?.into_iter().filter(|p| seqs.contains(&p.seq)).collect();
        if !proofs.is_empty() {
            let bytes = serde_json::to_vec(&proofs).map_err(|e| bundle::Error::Build(e.to_string()))?;
            add("log/proofs.json".into(), roles::LOG_PROOFS, bytes);
        }
        if let Some(record) = self.store.meta(crate::store::MetaKey::KeyAttestation)? {
            add("device/attestation.json".into(), roles::KEY_ATTESTATION, record.into_bytes());
        }
        let rows = self.store.photos(order_id)?;
        let mut photos = 0;
        for sha in &photo_hashes {
            let Some(row) = rows.iter().find(|r| &r.sha256 == sha) else { continue };
            let (blob, role) = match (opts.thumbnails_only, &row.thumb_sha256) {
                (false, _) => (sha.clone(), roles::PHOTO),
                (true, Some(t)) => (t.clone(), roles::THUMBNAIL),
                (true, None) => continue,
            };
            let size = self.verify_blob(&blob)?;
            let path = if role == roles::PHOTO { format!("photos/{blob}.jpg") } else { format!("thumbs/{blob}.jpg") };
            members.push((MemberRef { path, role: role.into(), size, sha256: blob.clone() }, Source::Blob(blob.clone()), false));
            photos += 1;
        }
        let manifest = Manifest {
            format: bundle::FORMAT.into(),
            version: bundle::VERSION,
            order: order_id.to_string(),
            created_at: crate::receipt::build::rfc3339(self.now()),
            created_by: format!("onsite-core {}", env!("CARGO_PKG_VERSION")),
            device: DeviceKey {
                id: self.device_id().to_string(),
                public_key: hex(&self.public_key()),
                time_authority: self.store.meta(crate::store::MetaKey::TimeAuthority)?,
            },
            thumbnails_only: opts.thumbnails_only,
            members: members.iter().map(|(m, _, _)| m.clone()).collect(),
        };
        let manifest_bytes = crate::jcs::to_vec_of(&manifest).map_err(|e| bundle::Error::Build(e.to_string()))?;
        let signer = self.store.signer().ok_or(crate::store::Error::NoSigner)?;
        let sig = crate::evidence::signer::normalize(&signer.sign(&manifest_bytes).map_err(|e| bundle::Error::Build(e.to_string()))?)
            .map_err(|e| bundle::Error::Build(e.to_string()))?;

        let dir = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let tmp = tempfile_in(dir)?;
        let file = std::fs::OpenOptions::new().write(true).read(true).truncate(true).open(&tmp).map_err(bundle::Error::from)?;
        let result = (|| -> Result<std::fs::File> {
            let mut w = archive::Writer::new(file);
            w.add(bundle::MANIFEST, &manifest_bytes, true)?;
            w.add(bundle::MANIFEST_SIG, hex(&sig).as_bytes(), false)?;
            for (m, src, compress) in &members {
                cancel.check()?;
                match src {
                    Source::Bytes(b) => w.add(&m.path, b, *compress)?,
                    Source::Blob(sha) => w.add_reader(&m.path, &mut self.open_blob(sha)?, false)?,
                }
            }
            Ok(w.finish()?)
        })();
        let file = match result {
            Ok(f) => f,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        if let Err(e) = cancel.check().and_then(|()| file.sync_all().map_err(|e| bundle::Error::from(e).into())) {
            drop(file);
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        drop(file);
        std::fs::rename(&tmp, out).map_err(bundle::Error::from)?;
        let bytes = std::fs::read(out).map_err(bundle::Error::from)?;
        Ok(ExportSummary {
            path: out.to_path_buf(),
            bytes: bytes.len() as u64,
            sha256: sha256_hex(&bytes),
            members: members.len() + 2,
            receipts: receipts.len(),
            photos,
            journal_entries: entries.len(),
        })
    }
}

fn tempfile_in(dir: &Path) -> Result<PathBuf> {
    for i in 0..100u32 {
        let p = dir.join(format!(".onsite-bundle-{}-{i}.tmp", std::process::id()));
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&p) {
            Ok(_) => return Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(bundle::Error::from(e).into()),
        }
    }
    Err(bundle::Error::Build("cannot create a temporary file".into()).into())
}

mod erased {
    pub trait Json {
        fn to_json(&self) -> crate::Result<Vec<u8>>;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> crate::Result<Vec<u8>> {
            serde_json::to_vec(self).map_err(|e| crate::bundle::Error::Build(e.to_string()).into())
        }
    }
}
