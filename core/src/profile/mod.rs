//! The engineer's verifiable service record (seed 000 数字化履历; seed 001 five levels).
//!
//! Computed only from completed orders whose customer signed the receipt. Each order entry
//! carries what makes it checkable by anyone: the signed receipt (category, brand, fault
//! kind, work time and rating are read from it), the order's journal slice from its first
//! entry (visits and help requests are counted from it; the per-order chain means nothing can
//! be left out), and the server's inclusion proof of the receipt entry (so an order cannot be
//! invented offline). The aggregates are recomputed by the verifier, and the whole record is
//! signed with the device key. Certifications are statements signed by the provider's log
//! key. See docs/adr/0011.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::evidence::journal::{self, Entry};
use crate::evidence::log::InclusionProof;
use crate::evidence::signer::{self, Signer};
use crate::hash::{hex, sha256_hex, unhex};
use crate::receipt::{self, Outcome, SignedReceipt};

pub const RECORD_FORMAT: &str = "onsite-service-record";
/// v2 (ADR 0017): orders carry the sessions that signed their journal seals. v1 still verifies.
pub const RECORD_VERSION: u32 = 2;
pub const RECORD_VERSIONS: [u32; 2] = [1, 2];
pub const CERT_KIND: &str = "onsite-certification";

/// The five levels of seed 001.
pub const LEVELS: [&str; 5] = ["初级售后工程师(一级)", "中级售后工程师(二级)", "高级售后工程师(三级)", "技术专家级售后工程师(四级)", "顾问级售后工程师(五级)"];

/// What building, exporting or checking a service record on the device can fail on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The device is not enrolled, so it has no provider log key to check against.
    #[error("no provider log key (enrol first)")]
    NoLogKey,
    #[error("the certification does not verify: {0}")]
    Certification(String),
    #[error("the certification names another engineer")]
    OtherEngineer,
    #[error("cannot build the service record: {0}")]
    Record(String),
    #[error("cannot write the service record: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certification {
    pub v: u32,
    pub kind: String,
    pub id: String,
    pub provider: String,
    pub engineer: String,
    /// 1 to 5 (seed 001).
    pub level: u8,
    pub title: String,
    pub issued_at: String,
}

/// A certification as the provider signed it: the canonical JSON and an ES256 signature
/// (r || s, hex) by the provider's log key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedCertification {
    pub body: String,
    pub signature: String,
}

impl Certification {
    pub fn new(id: &str, provider: &str, engineer: &str, level: u8, issued_at: &str) -> Result<Self, String> {
        if !(1..=5).contains(&level) {
            return Err("a certification level is 1 to 5".into());
        }
        Ok(Self {
            v: 1,
            kind: CERT_KIND.into(),
            id: id.into(),
            provider: provider.into(),
            engineer: engineer.into(),
            level,
            title: LEVELS[level as usize - 1].into(),
            issued_at: issued_at.into(),
        })
    }

    pub fn sign(&self, key: &dyn Signer) -> Result<SignedCertification, String> {
        let body = crate::jcs::to_vec_of(self).map_err(|e| e.to_string())?;
        let sig = signer::normalize(&key.sign(&body).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
        Ok(SignedCertification { body: String::from_utf8(body).map_err(|e| e.to_string())?, signature: hex(&sig) })
    }
}

impl SignedCertification {
    /// The certification, if `log_key` signed exactly these bytes.
    pub fn verify(&self, log_key: &[u8]) -> Result<Certification, String> {
        let sig = unhex(&self.signature).ok_or("signature is not hex")?;
        if !signer::verify(log_key, self.body.as_bytes(), &sig).unwrap_or(false) {
            return Err("not signed by the provider's key".into());
        }
        crate::jcs::parse_canonical(self.body.as_bytes()).map_err(|e| format!("not canonical: {e}"))?;
        let c: Certification = serde_json::from_str(&self.body).map_err(|e| e.to_string())?;
        if c.kind != CERT_KIND || !(1..=5).contains(&c.level) {
            return Err("not a certification".into());
        }
        Ok(c)
    }
}

/// A signed receipt as the record carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordReceipt {
    pub revision: u32,
    /// The receipt's canonical JSON, as hashed and signed.
    pub canonical: String,
    pub receipt_sha256: String,
    pub strokes_sha256: Option<String>,
    pub message: String,
    pub signature: String,
    pub journal_seq: u64,
    pub signed_at_ms: i64,
}

/// What one completed order contributes, with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderRecord {
    pub order_id: String,
    pub category: String,
    pub brand: String,
    pub fault_kind: Vec<String>,
    pub work_minutes: Option<i64>,
    pub rating: Option<u8>,
    /// Arrivals on site (transitions to on_site) in the journal slice.
    pub visits: u32,
    /// Fixed on the first visit: one arrival, never rescheduled, carried off or unresolved.
    pub first_time_fix: bool,
    pub help_requests: u32,
    pub receipt: RecordReceipt,
    pub journal: Vec<Entry>,
    pub proof: Option<InclusionProof>,
    /// v2: the `session_open` entries whose keys signed the slice's seals.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sessions: Vec<Entry>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Aggregates {
    pub orders: u32,
    pub by_category: BTreeMap<String, u32>,
    /// "category / fault kind" -> orders.
    pub faults_solved: BTreeMap<String, u32>,
    pub first_time_fixes: u32,
    /// First-time-fix rate in per mille (integers keep the canonical form exact).
    pub first_time_fix_permille: u32,
    pub rated: u32,
    /// Average rating ×100 (e.g. 480 = 4.80).
    pub rating_avg_centi: u32,
    pub work_minutes_total: i64,
    pub work_minutes_median: Option<i64>,
    pub help_requests: u32,
    /// Orders whose receipt entry the provider's log holds.
    pub logged: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceRecord {
    pub format: String,
    pub version: u32,
    pub engineer: String,
    pub provider: String,
    pub device_id: String,
    /// SEC1 public key of the device that signed the receipts and the record (hex).
    pub device_key: String,
    pub generated_at: String,
    /// The provider's log key (hex) the proofs and certifications were checked against.
    pub log_key: Option<String>,
    pub orders: Vec<OrderRecord>,
    pub aggregates: Aggregates,
    pub certifications: Vec<SignedCertification>,
    /// The platform's attestation of the device key from its enrolment (docs/adr/0019);
    /// absent from records of devices that sent none (and from older records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_attestation: Option<crate::attest::Record>,
}

impl ServiceRecord {
    /// The highest certification level (and its title) that verifies under the record's log
    /// key and names the record's engineer; `None` without a log key or a valid one.
    pub fn level(&self) -> Option<(u8, String)> {
        let key = crate::hash::unhex(self.log_key.as_deref()?)?;
        self.certifications.iter().filter_map(|c| c.verify(&key).ok()).filter(|c| c.engineer == self.engineer).map(|c| (c.level, c.title)).max()
    }
}

/// The file an engineer shows: the record and the device's signature over its canonical JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedRecord {
    pub record: ServiceRecord,
    pub signature: String,
}

/// Reads an order's fields from its verified receipt and its journal slice.
pub fn derive(order_id: &str, r: &receipt::Receipt, journal: &[Entry]) -> (u32, bool, u32) {
    let mut visits = 0;
    let mut setback = false;
    let mut help = 0;
    for e in journal {
        let Ok(b) = e.body() else { continue };
        if b.order.as_deref() != Some(order_id) {
            continue;
        }
        match b.kind.as_str() {
            "transition" => {
                let to = b.payload.as_ref().and_then(|p| p.get("to")).and_then(|v| v.as_str()).unwrap_or_default();
                match to {
                    "on_site" => visits += 1,
                    "rescheduled" | "carried_to_workshop" | "unresolved" => setback = true,
                    _ => {}
                }
            }
            "help_request" => help += 1,
            _ => {}
        }
    }
    let signed = matches!(r.outcome, Outcome::Signed { .. });
    (visits, signed && visits == 1 && !setback, help)
}

pub fn aggregate(orders: &[OrderRecord]) -> Aggregates {
    let mut a = Aggregates { orders: orders.len() as u32, ..Default::default() };
    let mut minutes = Vec::new();
    let mut rating_sum = 0u32;
    for o in orders {
        *a.by_category.entry(o.category.clone()).or_default() += 1;
        let kinds = if o.fault_kind.is_empty() { vec!["unclassified".to_string()] } else { o.fault_kind.clone() };
        for k in kinds {
            *a.faults_solved.entry(format!("{} / {k}", o.category)).or_default() += 1;
        }
        a.first_time_fixes += o.first_time_fix as u32;
        if let Some(r) = o.rating {
            a.rated += 1;
            rating_sum += r as u32;
        }
        if let Some(m) = o.work_minutes {
            minutes.push(m);
            a.work_minutes_total += m;
        }
        a.help_requests += o.help_requests;
        a.logged += o.proof.is_some() as u32;
    }
    if let Some(permille) = (a.first_time_fixes * 1000).checked_div(a.orders) {
        a.first_time_fix_permille = permille;
    }
    if let Some(centi) = (rating_sum * 100).checked_div(a.rated) {
        a.rating_avg_centi = centi;
    }
    minutes.sort_unstable();
    a.work_minutes_median = minutes.get(minutes.len().saturating_sub(1) / 2).copied().filter(|_| !minutes.is_empty());
    a
}

/// Builds one order's entry from its newest signed receipt, journal slice and proof.
pub fn order_record(
    sr: &SignedReceipt,
    device_key: &[u8],
    journal: Vec<Entry>,
    sessions: Vec<Entry>,
    proof: Option<InclusionProof>,
) -> Result<OrderRecord, String> {
    let r = receipt::verify(sr, device_key).map_err(|p| format!("{}: {}", p.check, p.detail))?;
    let (visits, first_time_fix, help_requests) = derive(&sr.order, &r, &journal);
    Ok(OrderRecord {
        order_id: sr.order.clone(),
        category: r.equipment.category.clone(),
        brand: r.equipment.brand.clone(),
        fault_kind: r.diagnosis.fault_kind.clone(),
        work_minutes: r.times.work_minutes,
        rating: r.rating.as_ref().map(|x| x.score),
        visits,
        first_time_fix,
        help_requests,
        receipt: RecordReceipt {
            revision: sr.revision,
            canonical: String::from_utf8_lossy(&sr.canonical).into_owned(),
            receipt_sha256: sr.receipt_sha256.clone(),
            strokes_sha256: sr.strokes_sha256.clone(),
            message: String::from_utf8_lossy(&sr.message).into_owned(),
            signature: hex(&sr.signature),
            journal_seq: sr.journal_seq,
            signed_at_ms: sr.signed_at_ms,
        },
        journal,
        proof,
        sessions,
    })
}

pub fn sign_record(record: ServiceRecord, key: &dyn Signer) -> Result<SignedRecord, String> {
    let bytes = crate::jcs::to_vec_of(&record).map_err(|e| e.to_string())?;
    let sig = signer::normalize(&key.sign(&bytes).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    Ok(SignedRecord { record, signature: hex(&sig) })
}

mod verify;
pub use verify::{verify_record, verify_record_file, Check, RecordReport, VerifyOptions};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certifications_verify_only_under_the_provider_key() {
        let provider = crate::evidence::SoftwareSigner::generate().unwrap();
        let other = crate::evidence::SoftwareSigner::generate().unwrap();
        let c = Certification::new("c1", "prov", "eng-1", 3, "2026-11-23T00:00:00Z").unwrap();
        assert_eq!(c.title, "高级售后工程师(三级)");
        let s = c.sign(&provider).unwrap();
        assert_eq!(s.verify(&provider.public_key()).unwrap(), c);
        assert!(s.verify(&other.public_key()).is_err());
        let forged = SignedCertification { body: s.body.replace("\"level\":3", "\"level\":5"), ..s.clone() };
        assert!(forged.verify(&provider.public_key()).is_err());
        assert!(Certification::new("c2", "p", "e", 6, "x").is_err());
    }

    #[test]
    fn hostile_bytes_are_a_failed_report() {
        for b in [&b""[..], b"{", b"[]", b"{\"record\":1,\"signature\":\"zz\"}"] {
            let r = verify_record(b, &VerifyOptions::default());
            assert!(!r.ok);
        }
    }

    #[test]
    fn aggregates_use_integers() {
        let a = aggregate(&[]);
        assert_eq!(a.orders, 0);
        assert_eq!(a.work_minutes_median, None);
    }
}
