//! Verifying a service record: its signature, every order's receipt, journal slice
//! (sealed, v2) and log proof, certifications, and the recomputed aggregates.

use super::*;

/// One check, as bundle verification reports it.
pub use crate::bundle::Check;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordReport {
    pub ok: bool,
    pub engineer: Option<String>,
    pub orders: u32,
    pub logged: u32,
    pub level: Option<u8>,
    /// The verified attestation of the device key ("StrongBox, ..."); `None`: not attested.
    pub key_attested: Option<String>,
    pub checks: Vec<Check>,
    pub text: String,
}

#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// The device key the record must be signed with (as the provider registered it).
    pub device_key: Option<Vec<u8>>,
    /// The provider's log key: every order must then be proven in its log, and
    /// certifications must be signed by it.
    pub log_key: Option<Vec<u8>>,
    /// Roots a key attestation may end at (`None`: the pinned Google and Apple roots).
    pub attestation_trust: Option<crate::attest::Trust>,
    /// Witnesses that must have cosigned the log's tree head each order's proof is of
    /// (docs/adr/0020); `None`: not required.
    pub witness_policy: Option<crate::evidence::log::witness::Policy>,
}

/// [`verify_record`] of a file; a file that cannot be read is a failed check, not an empty
/// record.
pub fn verify_record_file(path: &std::path::Path, opts: &VerifyOptions) -> RecordReport {
    match std::fs::read(path) {
        Ok(bytes) => verify_record(&bytes, opts),
        Err(e) => {
            let checks = vec![Check { check: "record.read".into(), subject: path.display().to_string(), passed: false, detail: e.to_string() }];
            finish(None, checks, 0, 0, None, None)
        }
    }
}

/// Verifies a service record file. Never panics on hostile bytes: every problem is a failed
/// check.
pub fn verify_record(bytes: &[u8], opts: &VerifyOptions) -> RecordReport {
    let mut checks = Vec::new();
    let mut add = |check: &str, subject: &str, result: Result<String, String>| {
        let (passed, detail) = match result {
            Ok(d) => (true, d),
            Err(d) => (false, d),
        };
        checks.push(Check { check: check.into(), subject: subject.into(), passed, detail });
    };
    let signed: SignedRecord = match serde_json::from_slice(bytes) {
        Ok(s) => s,
        Err(e) => {
            add("record.parse", "file", Err(e.to_string()));
            return finish(None, checks, 0, 0, None, None);
        }
    };
    let rec = &signed.record;
    let engineer = Some(rec.engineer.clone());
    add(
        "record.format",
        "record",
        if rec.format == RECORD_FORMAT && RECORD_VERSIONS.contains(&rec.version) {
            Ok(format!("{} v{}", rec.format, rec.version))
        } else {
            Err("unknown format".into())
        },
    );
    let device_key = match unhex(&rec.device_key) {
        Some(k) => k,
        None => {
            // No key: every signature check below fails too, each saying so.
            add("record.device_key", "record", Err("the record's device key is not hex".into()));
            Vec::new()
        }
    };
    if let Some(pinned) = &opts.device_key {
        add("record.device_key", "record", if pinned == &device_key { Ok("the pinned device key".into()) } else { Err("signed by another device key".into()) });
    }
    let sig_ok = crate::jcs::to_vec_of(rec)
        .ok()
        .zip(unhex(&signed.signature))
        .map(|(bytes, sig)| signer::verify(&device_key, &bytes, &sig).unwrap_or(false))
        .unwrap_or(false);
    add(
        "record.signature",
        "record",
        if sig_ok {
            Ok("device signature over the canonical record".into())
        } else {
            Err("the record was changed after signing, or not signed by its device key".into())
        },
    );

    let mut recomputed = Vec::new();
    for o in &rec.orders {
        let subject = o.order_id.as_str();
        let Some(signature) = unhex(&o.receipt.signature) else {
            add("order.receipt", subject, Err("the receipt signature is not hex".into()));
            continue;
        };
        let sr = SignedReceipt {
            order: o.order_id.clone(),
            revision: o.receipt.revision,
            canonical: o.receipt.canonical.clone().into_bytes(),
            receipt_sha256: o.receipt.receipt_sha256.clone(),
            strokes: None,
            strokes_sha256: o.receipt.strokes_sha256.clone(),
            message: o.receipt.message.clone().into_bytes(),
            signature,
            journal_seq: o.receipt.journal_seq,
            signed_at_ms: o.receipt.signed_at_ms,
        };
        // Strokes are not carried (the customer's signature stays in the bundle): check
        // everything else the receipt module checks.
        let r = match verify_receipt_without_strokes(&sr, &device_key) {
            Ok(r) => r,
            Err(e) => {
                add("order.receipt", subject, Err(e));
                continue;
            }
        };
        add("order.receipt", subject, Ok(format!("receipt r{} signed by the device", sr.revision)));
        let slice = match journal::Keys::device(&device_key).with_sessions(&o.sessions, &rec.device_id) {
            Ok(keys) => journal::verify_order_slice(&o.journal, &keys, &rec.device_id, subject),
            Err(p) => journal::Report { entries: o.journal.len(), first_problem: Some(p), unsealed_from: None, countersigned: vec![] },
        };
        add(
            "order.journal",
            subject,
            match slice.first_problem_sealed() {
                None => Ok(format!("{} entries, complete per-order chain", slice.entries)),
                Some(p) => Err(format!("{p:?}")),
            },
        );
        let entry = o.journal.iter().find(|e| e.seq == o.receipt.journal_seq);
        let bound = entry.and_then(|e| e.body().ok()).and_then(|b| b.payload).and_then(|p| p.get("receipt_sha256").and_then(|v| v.as_str()).map(String::from));
        add(
            "order.receipt_entry",
            subject,
            if bound.as_deref() == Some(o.receipt.receipt_sha256.as_str()) {
                Ok(format!("journal entry {} binds the receipt", o.receipt.journal_seq))
            } else {
                Err("no journal entry binds this receipt".into())
            },
        );
        let (visits, ftf, help) = derive(subject, &r, &o.journal);
        let fields_ok = o.category == r.equipment.category
            && o.brand == r.equipment.brand
            && o.fault_kind == r.diagnosis.fault_kind
            && o.work_minutes == r.times.work_minutes
            && o.rating == r.rating.as_ref().map(|x| x.score)
            && o.visits == visits
            && o.first_time_fix == ftf
            && o.help_requests == help
            && matches!(r.outcome, Outcome::Signed { .. });
        add(
            "order.fields",
            subject,
            if fields_ok { Ok("read from the receipt and the journal".into()) } else { Err("the entry claims what its receipt and journal do not say".into()) },
        );
        let logged = match (&o.proof, entry) {
            (Some(p), Some(e)) => match p.verify(&e.hash, opts.log_key.as_deref()) {
                Ok(()) if p.seq == e.seq => {
                    add("order.logged", subject, Ok(format!("leaf {} of the provider's log", p.index)));
                    if let Some(policy) = &opts.witness_policy {
                        add(
                            "order.witnessed",
                            subject,
                            p.witnesses(Some(policy)).map(|names| format!("cosigned by {}", names.join(", "))).map_err(|e| e.to_string()),
                        );
                    }
                    true
                }
                Ok(()) => {
                    add("order.logged", subject, Err("the proof is for another entry".into()));
                    false
                }
                Err(err) => {
                    add("order.logged", subject, Err(err.to_string()));
                    false
                }
            },
            _ if opts.log_key.is_some() => {
                add("order.logged", subject, Err("no proof that the provider's log holds this receipt".into()));
                false
            }
            _ => false,
        };
        let mut copy = o.clone();
        if !logged {
            copy.proof = None;
        }
        recomputed.push(copy);
    }
    let agg = aggregate(&recomputed);
    add(
        "record.aggregates",
        "record",
        if agg == rec.aggregates { Ok(format!("{} orders, recomputed", agg.orders)) } else { Err("the figures do not follow from the orders".into()) },
    );
    let mut level = None;
    for c in &rec.certifications {
        let result = match &opts.log_key {
            Some(k) => c.verify(k),
            None => match rec.log_key.as_deref().and_then(unhex) {
                Some(k) => c.verify(&k),
                None => Err("no log key".to_string()),
            },
        };
        match result {
            Ok(cert) if cert.engineer == rec.engineer => {
                level = level.max(Some(cert.level));
                add("certification", &cert.id, Ok(format!("level {} {}", cert.level, cert.title)));
            }
            Ok(cert) => add("certification", &cert.id, Err("issued to another engineer".into())),
            Err(e) => add("certification", "?", Err(e)),
        }
    }
    let key_attested = match &rec.key_attestation {
        Some(a) => match a.verify(&rec.device_id, &device_key, &opts.attestation_trust.clone().unwrap_or_else(crate::attest::Trust::pinned)) {
            Ok(v) => {
                add("record.key_attestation", "device key", Ok(format!("key attested: {}", v.summary())));
                Some(v.summary())
            }
            Err(e) => {
                add("record.key_attestation", "device key", Err(e.to_string()));
                None
            }
        },
        None => None,
    };
    let logged = agg.logged;
    finish(engineer, checks, rec.orders.len() as u32, logged, level, key_attested)
}

fn verify_receipt_without_strokes(sr: &SignedReceipt, key: &[u8]) -> Result<receipt::Receipt, String> {
    // Signed receipts bind the strokes' hash; the check that the strokes bytes match it
    // needs the strokes, which a résumé does not disclose. `receipt::verify` skips it when
    // both are absent, so present the hash-only form.
    let mut copy = sr.clone();
    let strokes_hash = copy.strokes_sha256.take();
    match receipt::verify(&SignedReceipt { strokes: None, strokes_sha256: None, ..copy.clone() }, key) {
        Err(p) if p.check == "signature_strokes.binding" && strokes_hash.is_some() => {
            // Check the rest with the hash bound, as signed.
            let value = crate::jcs::parse_canonical(&sr.canonical).map_err(|e| e.to_string())?;
            if sha256_hex(&sr.canonical) != sr.receipt_sha256 {
                return Err("receipt bytes do not match their hash".into());
            }
            let r: receipt::Receipt = serde_json::from_value(value).map_err(|e| e.to_string())?;
            let bound = match &r.outcome {
                Outcome::Signed { strokes_sha256, .. } => Some(strokes_sha256.clone()),
                Outcome::Refused { .. } => None,
            };
            if bound != strokes_hash || r.order != sr.order || r.revision != sr.revision {
                return Err("the receipt does not match its entry".into());
            }
            let message = receipt::SigningMessage {
                v: 1,
                kind: receipt::SIGNATURE_KIND.into(),
                order: r.order.clone(),
                revision: r.revision,
                receipt_sha256: sr.receipt_sha256.clone(),
                strokes_sha256: strokes_hash,
                journal_head: r.journal_head.clone(),
            }
            .canonical()
            .map_err(|e| e.to_string())?;
            if message != sr.message || !signer::verify(key, &sr.message, &sr.signature).unwrap_or(false) {
                return Err("the device signature over the receipt does not verify".into());
            }
            Ok(r)
        }
        Err(p) => Err(format!("{}: {}", p.check, p.detail)),
        Ok(r) => Ok(r),
    }
}

fn finish(engineer: Option<String>, checks: Vec<Check>, orders: u32, logged: u32, level: Option<u8>, key_attested: Option<String>) -> RecordReport {
    let ok = !checks.is_empty() && checks.iter().all(|c| c.passed);
    let mut text = format!(
        "service record of {}: {}\n{} orders, {} proven in the provider's log{}\n{}\n",
        engineer.as_deref().unwrap_or("?"),
        if ok { "VALID" } else { "NOT VALID" },
        orders,
        logged,
        level.map(|l| format!(", certified level {l}")).unwrap_or_default(),
        match &key_attested {
            Some(a) => format!("device key attested: {a}"),
            None => "device key not attested".to_string(),
        }
    );
    for c in &checks {
        text.push_str(&format!("  [{}] {} {}: {}\n", if c.passed { "ok" } else { "FAIL" }, c.check, c.subject, c.detail));
    }
    RecordReport { ok, engineer, orders, logged, level, key_attested, checks, text }
}
