use super::*;
use crate::device::testkit::{self, input, worked_order};
use crate::order::{Actor, Event, Status};

#[test]
fn a_signed_receipt_binds_the_whole_visit_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let clock = testkit::clock();
    let d = testkit::device(dir.path(), clock.clone());
    let photos = worked_order(&d, &clock, "WO-1");
    assert!(photos.len() >= 4, "{photos:?}");

    // Completion waits for the receipt.
    let err = d.transition("WO-1", Event::Complete, Actor::Engineer, None).unwrap_err();
    assert!(matches!(err, crate::Error::Sop(crate::sop::Error::Blocked { ref first, .. }) if first == "receipt"), "{err:?}");

    clock.advance(chrono::Duration::minutes(3));
    let head_before = d.journal(None).unwrap().last().unwrap().clone();
    let sr = d.sign_receipt("WO-1", &input()).unwrap();
    assert_eq!(sr.revision, 1);
    let r = verify(&sr, &d.public_key()).unwrap();
    assert_eq!(r, d.verify_receipt(&sr).unwrap());

    // Content: from the order, the checklist, the photo records and the input.
    assert_eq!(r.order, "WO-1");
    assert_eq!(r.customer.company, "华信会计师事务所");
    assert_eq!(r.engineer.id, d.get("WO-1").unwrap().order.engineer.id);
    assert_eq!(r.diagnosis.fault_kind, vec!["hardware".to_string()]);
    let cl = r.checklist.as_ref().unwrap();
    assert_eq!(cl.template, "onsite-repair");
    assert_eq!(cl.consents.len(), cl.consents.iter().filter(|c| c.accepted).count());
    assert!(cl.consents.len() >= 2, "{:?}", cl.consents);
    assert!(!r.parts.is_empty());
    let mut bound: Vec<&str> = r.photos.iter().map(|p| p.sha256.as_str()).collect();
    bound.sort();
    let mut want: Vec<&str> = photos.iter().map(String::as_str).collect();
    want.sort();
    assert_eq!(bound, want, "every ingested photo, each with its step and journal entry");
    assert!(r.photos.iter().all(|p| p.step.is_some() && p.journal_seq.is_some()));
    assert_eq!(r.charges.total_cents, 8000);
    assert_eq!(r.charges.payable_cents, 8000);
    assert_eq!(r.charges.coverage, "mixed");
    assert_eq!(r.rating.as_ref().unwrap().score, 5);
    assert!(r.times.arrived_at.is_some() && r.times.started_at.is_some() && r.times.finished_at.is_some());
    assert!(r.times.on_site_minutes.unwrap() > 0 && r.times.work_minutes.unwrap() > 0);
    // Signed Monday 2026-11-23: 3 and 7 working days later are Thursday 26th and 2 Dec.
    assert_eq!((r.follow_up.earliest.as_str(), r.follow_up.latest.as_str()), ("2026-11-26", "2026-12-02"));
    assert!(matches!(&r.outcome, Outcome::Signed { strokes: 2, .. }));
    assert_eq!(r.journal_head, HeadRef { seq: head_before.seq, hash: head_before.hash.clone() });

    // The signing is a journal entry right after the bound head, and the chain holds.
    let entry = d.journal(Some("WO-1")).unwrap().into_iter().find(|e| e.seq == sr.journal_seq).unwrap();
    let body = entry.body().unwrap();
    assert_eq!(body.kind, "receipt_signed");
    assert_eq!(body.prev, head_before.hash);
    assert_eq!(body.payload.unwrap()["receipt_sha256"], sr.receipt_sha256);
    assert!(d.verify_journal().unwrap().ok());

    // The document records it; the order can now complete.
    let order = d.get("WO-1").unwrap().order;
    assert_eq!(order.receipts.len(), 1);
    assert_eq!(order.receipts[0].sha256, sr.receipt_sha256);
    d.transition("WO-1", Event::Complete, Actor::Engineer, None).unwrap();

    // Stored bytes are exactly the signed ones, and canonical.
    let stored = d.receipt("WO-1", None).unwrap();
    assert_eq!(stored, sr);
    assert_eq!(crate::jcs::parse_canonical(&stored.canonical).unwrap(), serde_json::to_value(&r).unwrap());
}

#[test]
fn any_change_to_a_signed_receipt_fails_verification() {
    let dir = tempfile::tempdir().unwrap();
    let clock = testkit::clock();
    let d = testkit::device(dir.path(), clock.clone());
    worked_order(&d, &clock, "WO-1");
    let sr = d.sign_receipt("WO-1", &input()).unwrap();
    let pk = d.public_key();
    for pos in (0..sr.canonical.len()).step_by(7) {
        let mut t = sr.clone();
        t.canonical[pos] ^= 0x01;
        assert!(verify(&t, &pk).is_err(), "receipt byte {pos}");
    }
    // A forger who also fixes up the hash still fails on the signature.
    let mut t = sr.clone();
    let text = String::from_utf8(t.canonical.clone()).unwrap().replace("\"payable_cents\":8000", "\"payable_cents\":80000");
    t.canonical = text.into_bytes();
    t.receipt_sha256 = sha256_hex(&t.canonical);
    assert!(matches!(verify(&t, &pk), Err(Problem { check: "receipt.message", .. })));
    let strokes = sr.strokes.clone().unwrap();
    for pos in (0..strokes.len()).step_by(13) {
        let mut t = sr.clone();
        t.strokes.as_mut().unwrap()[pos] ^= 0x01;
        assert!(verify(&t, &pk).is_err(), "strokes byte {pos}");
    }
    for pos in 0..sr.signature.len() {
        let mut t = sr.clone();
        t.signature[pos] ^= 0x01;
        assert_eq!(verify(&t, &pk).unwrap_err().check, "receipt.signature", "signature byte {pos}");
    }
    let other = crate::evidence::SoftwareSigner::generate().unwrap();
    assert_eq!(verify(&sr, &crate::evidence::Signer::public_key(&other)).unwrap_err().check, "receipt.signature");
}

#[test]
fn a_refusal_is_an_outcome_and_corrections_are_new_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let clock = testkit::clock();
    let d = testkit::device(dir.path(), clock.clone());
    worked_order(&d, &clock, "WO-1");
    let mut refused = input();
    refused.decision = CustomerDecision::Refused { reason: "认为收费过高 / disputes the service fee".into() };
    refused.rating = None;
    let r1 = d.sign_receipt("WO-1", &refused).unwrap();
    assert_eq!(r1.strokes, None);
    let parsed = verify(&r1, &d.public_key()).unwrap();
    assert!(matches!(&parsed.outcome, Outcome::Refused { reason, .. } if reason.contains("disputes")));
    d.transition("WO-1", Event::Complete, Actor::Engineer, None).unwrap();

    // A correction needs a reason, and supersedes revision 1 by its hash.
    let mut fixed = input();
    assert!(matches!(d.sign_receipt("WO-1", &fixed), Err(crate::Error::Receipt(Error::Invalid { ref field, .. })) if field == "correction_reason"));
    fixed.charges.pop();
    fixed.correction_reason = Some("服务费减免,客户同意签字 / fee waived; the customer signs".into());
    let r2 = d.sign_receipt("WO-1", &fixed).unwrap();
    assert_eq!(r2.revision, 2);
    let p2 = verify(&r2, &d.public_key()).unwrap();
    assert_eq!(p2.supersedes.as_ref().unwrap().sha256, r1.receipt_sha256);
    assert_eq!(p2.charges.payable_cents, 0);
    let all = d.receipts("WO-1").unwrap();
    assert_eq!(all, vec![r1.clone(), r2]);

    // The stored revision cannot be changed, even by SQL.
    let conn = crate::device::testkit::raw_db(dir.path());
    let e = conn.execute("UPDATE receipts SET canonical = x'00' WHERE revision = 1", []).unwrap_err();
    assert!(e.to_string().contains("immutable"), "{e}");
    assert!(conn.execute("DELETE FROM receipts", []).is_err());
    assert_eq!(d.receipt("WO-1", Some(1)).unwrap(), r1);
}

#[test]
fn receipts_refuse_bad_input_and_the_wrong_moment() {
    let dir = tempfile::tempdir().unwrap();
    let clock = testkit::clock();
    let d = testkit::device(dir.path(), clock.clone());
    d.import_orders_json(&crate::order::import::tests::sample_json("WO-EARLY")).unwrap();
    let e = d.sign_receipt("WO-EARLY", &input()).unwrap_err();
    assert!(matches!(e, crate::Error::Receipt(Error::WrongStatus { .. })), "{e:?}");
    assert!(matches!(d.sign_receipt("WO-NONE", &input()), Err(crate::Error::Store(crate::store::Error::NotFound { .. }))));

    worked_order(&d, &clock, "WO-1");
    let field_of = |i: ReceiptInput| match d.sign_receipt("WO-1", &i) {
        Err(crate::Error::Receipt(Error::Invalid { field, .. })) => field,
        other => panic!("{other:?}"),
    };
    let mut i = input();
    i.rating = Some(Rating { score: 6, comment: String::new() });
    assert_eq!(field_of(i), "rating.score");
    let mut i = input();
    i.diagnosis = "   ".into();
    assert_eq!(field_of(i), "diagnosis");
    let mut i = input();
    i.currency = "cny".into();
    assert_eq!(field_of(i), "currency");
    let mut i = input();
    i.charges[1].amount_cents = -1;
    assert_eq!(field_of(i), "charges[1].amount_cents");
    let mut i = input();
    i.decision = CustomerDecision::Signed { strokes: vec![] };
    assert_eq!(field_of(i), "strokes");
    let mut i = input();
    i.decision = CustomerDecision::Refused { reason: "".into() };
    assert_eq!(field_of(i), "refusal_reason");
    // Strokes with NaN are refused by the encoder, not stored.
    let mut i = input();
    i.decision = CustomerDecision::Signed { strokes: vec![vec![crate::signature::StrokePoint { x: f32::NAN, y: 0.0, t_ms: 0, pressure: 0.5 }]] };
    assert!(matches!(d.sign_receipt("WO-1", &i), Err(crate::Error::Receipt(Error::Strokes(_)))));
    assert!(d.receipts("WO-1").unwrap().is_empty(), "nothing was stored by refused attempts");
    assert_eq!(d.get("WO-1").unwrap().order.status, Status::AwaitingSignature);
}

#[test]
fn the_customer_copy_shows_everything_and_escapes_text() {
    let dir = tempfile::tempdir().unwrap();
    let clock = testkit::clock();
    let d = testkit::device(dir.path(), clock.clone());
    let photos = worked_order(&d, &clock, "WO-1");
    let mut i = input();
    i.work_done = "<script>alert(1)</script> & done".into();
    let sr = d.sign_receipt("WO-1", &i).unwrap();
    let html = d.customer_copy_html("WO-1", None).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(!html.contains("<script>"), "text is escaped");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; done"));
    assert!(html.contains("data:image/svg+xml;base64,"), "signature image");
    assert_eq!(html.matches("data:image/jpeg;base64,").count(), photos.len(), "a thumbnail per photo");
    assert!(html.contains(&sr.receipt_sha256));
    assert!(html.contains("王女士") && html.contains("CNY 80.00"));
    // Times in the site's zone with the offset, and words instead of machine names.
    assert!(html.contains("(UTC+08:00)"), "local times");
    assert!(
        !html.contains(".000Z"),
        "no raw UTC ISO strings: {}",
        &html[html.find(".000Z").map(|i| i.saturating_sub(200)).unwrap_or(0)..][..300.min(html.len())]
    );
    assert!(!html.contains("in_warranty") && html.contains("In warranty"), "human labels");
}
