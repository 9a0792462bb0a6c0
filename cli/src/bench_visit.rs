//! `onsite bench store`'s visit figures (ADR 0017): a full seed-003 visit (lifecycle, the
//! onsite-repair checklist with its consents and photo steps, the customer's receipt) on a
//! device whose hardware key takes 100 ms per signature, as a secure element does. The same
//! visit with a software key is the baseline in the same run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use onsite_core::device::PhotoSource;
use onsite_core::evidence::signer::{Error as SignError, Signer, SoftwareSigner};
use onsite_core::sop::{self, Answer, PhotoRef, StepKind};
use onsite_core::{Actor, Device, DeviceOptions, Event};

use crate::bench::{emit, orders_json, percentile, test_photo};

/// A hardware key as slow as a secure element: every signature sleeps `delay`.
pub struct SlowSigner {
    key: SoftwareSigner,
    delay: Duration,
    pub signs: AtomicUsize,
}

impl SlowSigner {
    pub fn new(delay: Duration) -> Result<Self> {
        Ok(Self { key: SoftwareSigner::generate()?, delay, signs: AtomicUsize::new(0) })
    }
}

impl Signer for SlowSigner {
    fn public_key(&self) -> Vec<u8> {
        self.key.public_key()
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        self.signs.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(self.delay);
        self.key.sign(message)
    }
}

/// What one visit measured.
struct Visit {
    edits_ms: Vec<f64>,
    steps: usize,
    consents: usize,
    photos: usize,
    entries: usize,
}

fn timed<T>(out: &mut Vec<f64>, f: impl FnOnce() -> onsite_core::Result<T>) -> Result<T> {
    let t = Instant::now();
    let r = f()?;
    out.push(t.elapsed().as_secs_f64() * 1000.0);
    Ok(r)
}

fn visit(signer: Arc<dyn Signer>) -> Result<Visit> {
    let dir = tempfile::tempdir()?;
    let d = Device::open(DeviceOptions::new(dir.path().join("device")).with_signer(signer))?;
    d.import_orders_json(&orders_json(1))?;
    let id = "BENCH-00000";
    let mut v = Visit { edits_ms: Vec::new(), steps: 0, consents: 0, photos: 0, entries: 0 };
    let now = d.now().0;
    let window = onsite_core::order::TimeWindow { start: onsite_core::order::Timestamp(now + 3_600_000), end: onsite_core::order::Timestamp(now + 7_200_000) };
    for e in [Event::Accept, Event::ContactCustomer { window }, Event::Depart, Event::Arrive, Event::StartWork] {
        timed(&mut v.edits_ms, || d.transition(id, e, Actor::Engineer, None))?;
    }
    timed(&mut v.edits_ms, || d.start_checklist(id, "onsite-repair"))?;
    let photo = test_photo(640, 480, 7);
    loop {
        let view = d.checklist(id)?;
        let Some(step) = view.evaluation.open().first().and_then(|s| view.template.step(s)).cloned() else { break };
        let answer = match &step.kind {
            StepKind::Photo { min, .. } => {
                let mut refs = Vec::new();
                for k in 0..(*min).max(1) {
                    let bytes = crate::bench::variant(&photo, (v.photos + 1) as u32);
                    let rep = d.ingest_photo(id, Some(&step.id), PhotoSource::Bytes(&bytes), None)?;
                    v.photos += 1;
                    refs.push(PhotoRef { sha256: rep.sha256, label: format!("{} #{}", step.label.en, k + 1) });
                }
                Answer::Photos { photos: refs }
            }
            _ => sop::demo::answer_for(&view.template, &view.evaluation, &d.store().get(id)?, &step, d.now()),
        };
        if matches!(answer, Answer::Consent { .. }) {
            v.consents += 1;
        }
        timed(&mut v.edits_ms, || d.answer(id, &step.id, answer))?;
        v.steps += 1;
    }
    timed(&mut v.edits_ms, || d.transition(id, Event::RequestSignature, Actor::Engineer, None))?;
    d.sign_receipt(id, &crate::demo::receipt_input("王女士"))?;
    timed(&mut v.edits_ms, || d.transition(id, Event::Complete, Actor::Engineer, None))?;
    // What a sync does first: countersignatures written, everything sealed.
    d.seal_journal("sync")?;
    let report = d.verify_journal()?;
    if !report.sealed() || report.countersigned.len() != v.consents {
        bail!("the visit's journal is not sealed and countersigned: {report:?}");
    }
    v.entries = report.entries;
    Ok(v)
}

pub fn visit_figures() -> Result<()> {
    let slow = Arc::new(SlowSigner::new(Duration::from_millis(100))?);
    let mut s = visit(slow.clone())?;
    let mut fast = visit(Arc::new(SoftwareSigner::generate()?))?;
    let p95 = percentile(&mut s.edits_ms, 0.95);
    emit("store.edit_slow_signer_p95_ms", p95, "ms");
    emit("store.edit_slow_signer_max_ms", percentile(&mut s.edits_ms, 1.0), "ms");
    emit("store.edit_software_signer_p95_ms", percentile(&mut fast.edits_ms, 0.95), "ms");
    emit("store.hardware_signs_per_visit", slow.signs.load(Ordering::SeqCst) as f64, "count");
    // Before sessions and seals (journal v1) the hardware key signed every entry.
    emit("store.visit_journal_entries", s.entries as f64, "count");
    emit("store.visit_steps", s.steps as f64, "count");
    emit("store.visit_consents", s.consents as f64, "count");
    emit("store.visit_photos", s.photos as f64, "count");
    emit("store.visit_edits", s.edits_ms.len() as f64, "count");
    Ok(())
}
