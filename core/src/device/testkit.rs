//! Test fixtures: a device with an order worked on site up to the customer's signature,
//! with real photos ingested for every photo step.

use std::sync::Arc;

use chrono::TimeZone;

use super::{Device, DeviceOptions, PhotoSource};
use crate::clock::ManualClock;
use crate::order::{Actor, Event, GpsFix, LocationSource, TimeWindow, Timestamp};
use crate::receipt::{ChargeBasis, ChargeLine, CustomerDecision, Rating, ReceiptInput};
use crate::sop::{self, Answer, PhotoRef, StepKind};

pub fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::at(chrono::Utc.with_ymd_and_hms(2026, 11, 23, 1, 30, 0).unwrap()))
}

pub fn fix() -> GpsFix {
    GpsFix { lat: 39.915, lon: 116.404, accuracy_m: 8.0, source: LocationSource::Gps, mock: false }
}

/// The key test devices are encrypted with (a key file beside a temp dir would outlive it).
pub fn key() -> crate::crypt::StoreKey {
    crate::crypt::StoreKey::from_bytes(&[0x42; 32]).unwrap()
}

/// Options for a test device: encrypted with [`key`].
pub fn options(dir: impl Into<std::path::PathBuf>) -> DeviceOptions {
    DeviceOptions::new(dir).with_encryption(crate::crypt::Encryption::Key(Arc::new(crate::crypt::FixedKey(key()))))
}

/// The test device's database, opened raw (to tamper with it).
pub fn raw_db(dir: &std::path::Path) -> rusqlite::Connection {
    crate::store::cipher::open_connection(&dir.join(crate::store::DB_FILE), Some(&key())).unwrap()
}

pub fn device(dir: &std::path::Path, clock: Arc<ManualClock>) -> Device {
    Device::open(options(dir).with_clock(clock)).unwrap()
}

/// Imports `id`, drives it on site, walks the seed-003 checklist answering photo steps with
/// real ingested JPEGs, and requests the signature. Returns the photo hashes.
pub fn worked_order(d: &Device, clock: &ManualClock, id: &str) -> Vec<String> {
    d.import_orders_json(&crate::order::import::tests::sample_json(id)).unwrap();
    let w = TimeWindow { start: Timestamp(d.now().0 + 3_600_000), end: Timestamp(d.now().0 + 7_200_000) };
    for e in [Event::Accept, Event::ContactCustomer { window: w }, Event::Depart, Event::Arrive, Event::StartWork] {
        clock.advance(chrono::Duration::minutes(10));
        d.transition(id, e, Actor::Engineer, Some(fix())).unwrap();
    }
    d.start_checklist(id, "onsite-repair").unwrap();
    let mut photos = Vec::new();
    let mut seed = 1u8;
    loop {
        clock.advance(chrono::Duration::minutes(2));
        let view = d.checklist(id).unwrap();
        let Some(step) = view.evaluation.open().first().and_then(|s| view.template.step(s)).cloned() else { break };
        let answer = match &step.kind {
            StepKind::Photo { min, .. } => {
                let mut refs = Vec::new();
                for k in 0..(*min).max(1) {
                    let jpeg = crate::evidence::photo::tests::make_jpeg(96, 64, seed, None);
                    seed = seed.wrapping_add(37);
                    let rep = d.ingest_photo(id, Some(&step.id), PhotoSource::Bytes(&jpeg), Some(fix())).unwrap();
                    photos.push(rep.sha256.clone());
                    refs.push(PhotoRef { sha256: rep.sha256, label: format!("{} #{}", step.label.en, k + 1) });
                }
                Answer::Photos { photos: refs }
            }
            _ => {
                let order = d.store().get(id).unwrap();
                sop::demo::answer_for(&view.template, &view.evaluation, &order, &step, d.now())
            }
        };
        d.answer(id, &step.id, answer).unwrap();
    }
    clock.advance(chrono::Duration::minutes(5));
    d.transition(id, Event::RequestSignature, Actor::Engineer, Some(fix())).unwrap();
    photos
}

pub fn input() -> ReceiptInput {
    ReceiptInput {
        diagnosis: "主板 DC-in 接口虚焊 / DC-in jack solder joint cracked".into(),
        work_done: "更换 DC-in 小板,复验开机正常 / replaced the DC-in board, verified boot".into(),
        charges: vec![
            ChargeLine { description: "DC-in 小板 (保修)".into(), amount_cents: 0, basis: ChargeBasis::Warranty },
            ChargeLine { description: "上门服务费".into(), amount_cents: 8000, basis: ChargeBasis::Paid },
        ],
        currency: "CNY".into(),
        rating: Some(Rating { score: 5, comment: "很专业".into() }),
        signer_name: "王女士".into(),
        decision: CustomerDecision::Signed { strokes: crate::signature::sample_strokes() },
        correction_reason: None,
    }
}
