//! Engine tests over real templates and a real store.

use std::sync::Arc;

use chrono::TimeZone;
use proptest::prelude::*;

use super::template::{Registry, Template};
use super::*;
use crate::order::import::tests::sample_json;
use crate::order::Timestamp;
use crate::{Actor, Device, Event, ManualClock};

fn device(dir: &std::path::Path) -> (Device, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::at(chrono::Utc.with_ymd_and_hms(2026, 11, 23, 2, 0, 0).unwrap()));
    (Device::open(crate::device::testkit::options(dir).with_clock(clock.clone())).unwrap(), clock)
}

fn started(dir: &std::path::Path, template: &str) -> (Device, Arc<ManualClock>) {
    let (d, c) = device(dir);
    d.import_orders_json(&sample_json("WO-1")).unwrap();
    d.start_checklist("WO-1", template).unwrap();
    (d, c)
}

fn state(d: &Device, step: &str) -> StepState {
    let v = d.checklist("WO-1").unwrap();
    v.evaluation.status(&v.template, step).unwrap().state.clone()
}

fn demo(d: &Device, step: &str) -> Answer {
    let v = d.checklist("WO-1").unwrap();
    let order = d.get("WO-1").unwrap().order;
    let s = v.template.step(step).unwrap().clone();
    demo::answer_for(&v.template, &v.evaluation, &order, &s, d.now())
}

/// Answers open steps with demo answers, except `stop_at`, until it is open.
fn walk_until(d: &Device, stop_at: &str) {
    loop {
        let v = d.checklist("WO-1").unwrap();
        let open = v.evaluation.open();
        if open.contains(&stop_at) {
            return;
        }
        let next = open.first().unwrap_or_else(|| panic!("`{stop_at}` never opened")).to_string();
        d.answer("WO-1", &next, demo(d, &next)).unwrap();
    }
}

#[test]
fn builtin_templates_load() {
    let r = Registry::with_builtins().unwrap();
    let ids: Vec<String> = r.list().iter().map(|t| t.id.clone()).collect();
    assert_eq!(ids, ["onsite-repair", "os-reinstall", "workshop-intake"]);
    let repair = r.latest("onsite-repair").unwrap();
    assert!(repair.steps.len() >= 20);
    assert!(repair.steps.iter().all(|s| !s.label.zh.is_empty() && !s.label.en.is_empty()));
}

fn load_err(src: &str) -> Error {
    Template::parse("bad.toml", src).unwrap_err()
}

const HEAD: &str = "id = \"t\"\nversion = 1\ntitle = { zh = \"测\", en = \"T\" }\n";

fn step(id: &str, extra: &str) -> String {
    format!("[[steps]]\nid = \"{id}\"\nkind = \"confirmation\"\nlabel = {{ zh = \"步\", en = \"S\" }}\n{extra}\n")
}

#[test]
fn bad_templates_name_file_step_and_field() {
    let cases: Vec<(String, Option<&str>, &str, &str)> = vec![
        (format!("{HEAD}{}{}", step("a", "after = [\"b\"]"), step("b", "after = [\"a\"]")), Some("a"), "after/when", "cycle"),
        (format!("{HEAD}{}", step("a", "").replace("confirmation", "video")), Some("a"), "kind", "unknown step kind `video`"),
        (format!("{HEAD}{}{}", step("a", ""), step("a", "")), Some("a"), "id", "duplicate"),
        (format!("{HEAD}{}", step("a", "after = [\"ghost\"]")), Some("a"), "after", "missing step `ghost`"),
        (format!("{HEAD}{}", step("a", "when = { field = \"customer.mood\", is = \"happy\" }")), Some("a"), "when", "unknown order field `customer.mood`"),
        (format!("{HEAD}{}{}", step("a", ""), step("b", "when = { step = \"a\", is = \"purple\" }")), Some("b"), "when", "never `purple`"),
        (format!("{HEAD}{}", step("a", "unit = \"V\"")), Some("a"), "unit", "does not apply"),
        (format!("{HEAD}{}", step("a", "colour = 1")), Some("a"), "colour", "unknown field"),
        (format!("{HEAD}{}", step("a", "").replace("confirmation", "consent")), Some("a"), "risk", "risk text"),
        ("id = \"t\"\nversion = 1\n".to_string(), None, "title", "missing field"),
    ];
    for (src, step_id, field, reason) in cases {
        match load_err(&src) {
            Error::Template { file, step, field: f, reason: r } => {
                assert_eq!(file, "bad.toml");
                assert_eq!(step.as_deref(), step_id, "{r}");
                assert!(f.contains(field), "field `{f}` for {r}");
                assert!(r.contains(reason), "`{r}` lacks `{reason}`");
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn hardware_path_completes_and_consent_refusal_skips_repair() {
    let dir = tempfile::tempdir().unwrap();
    let (d, _) = started(dir.path(), "onsite-repair");
    assert_eq!(d.checklist("WO-1").unwrap().evaluation.open(), ["dress_badge", "borrow_parts"]);
    walk_until(&d, "consent_open_chassis");
    assert!(matches!(state(&d, "paid_service_notice"), StepState::NotApplicable { reason: NaReason::Condition }));
    assert!(matches!(state(&d, "repair_parts"), StepState::Locked { .. }));
    let v = d.checklist("WO-1").unwrap();
    let consent_step = v.template.step("consent_open_chassis").unwrap().clone();
    d.answer("WO-1", "consent_open_chassis", demo::consent(&consent_step, false, "王女士")).unwrap();
    // Refused: the repair steps no longer apply; verification and close-out go on.
    for s in ["part_barcodes", "data_at_risk", "software_first", "power_off_antistatic", "repair_parts", "repair_photo"] {
        assert!(matches!(state(&d, s), StepState::NotApplicable { reason: NaReason::Condition }), "{s}");
    }
    let v = d.checklist("WO-1").unwrap();
    let flags = &v.evaluation.status(&v.template, "consent_open_chassis").unwrap().flags;
    assert_eq!(flags, &vec![Flag::ConsentRefused]);
    assert!(d.walk_checklist_demo("WO-1").unwrap() > 0);
    // Only the customer's receipt remains.
    assert_eq!(d.blockers("WO-1").unwrap().iter().map(|b| b.step.as_str()).collect::<Vec<_>>(), ["receipt"]);
    // A signed consent is final.
    assert!(matches!(d.answer("WO-1", "consent_open_chassis", demo::consent(&consent_step, true, "王女士")), Err(crate::Error::Sop(Error::Closed { .. }))));
}

#[test]
fn software_fault_requires_the_paid_service_notice() {
    let dir = tempfile::tempdir().unwrap();
    let (d, _) = started(dir.path(), "onsite-repair");
    walk_until(&d, "fault_kind");
    d.answer("WO-1", "fault_kind", Answer::Choice { selected: vec!["software".into()] }).unwrap();
    walk_until(&d, "paid_service_notice");
    assert!(matches!(state(&d, "consent_open_chassis"), StepState::Locked { ref waiting_for } if waiting_for.contains(&"paid_service_notice".to_string())));
    let blockers = d.blockers("WO-1").unwrap();
    let b = blockers.iter().find(|b| b.step == "paid_service_notice").unwrap();
    assert!(b.reason.en.contains("accept or refuse"), "{}", b.reason.en);
    assert!(b.reason.zh.contains("签字"));
}

#[test]
fn wrong_type_out_of_order_and_na_rules_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (d, _) = started(dir.path(), "onsite-repair");
    let before = d.checklist("WO-1").unwrap().answers.len();
    assert!(matches!(d.answer("WO-1", "dress_badge", Answer::Note { text: "x".into() }), Err(crate::Error::Sop(Error::WrongType { .. }))));
    assert!(
        matches!(d.answer("WO-1", "farewell", Answer::Confirmed), Err(crate::Error::Sop(Error::OutOfOrder { ref waiting_for, .. })) if waiting_for == &["customer_signs"])
    );
    assert!(matches!(d.answer("WO-1", "nope", Answer::Confirmed), Err(crate::Error::Sop(Error::UnknownStep { .. }))));
    assert!(matches!(d.mark_not_applicable("WO-1", "dress_badge", "hot day"), Err(crate::Error::Sop(Error::NaNotAllowed { .. }))));
    let photos = |n: usize| Answer::Photos { photos: (0..n).map(|i| PhotoRef { sha256: crate::hash::sha256_hex(&[i as u8]), label: "p".into() }).collect() };
    walk_until(&d, "introduce_badge");
    assert!(matches!(d.answer("WO-1", "introduce_badge", photos(3)), Err(crate::Error::Sop(Error::Invalid { .. }))));
    let bad_hash = Answer::Photos { photos: vec![PhotoRef { sha256: "abc".into(), label: "p".into() }] };
    assert!(matches!(d.answer("WO-1", "introduce_badge", bad_hash), Err(crate::Error::Sop(Error::Invalid { ref field, .. })) if field == "photos.sha256"));
    let after = d.checklist("WO-1").unwrap().answers.len();
    assert_eq!(after, before + 3, "only the three walked answers were recorded");
    d.answer("WO-1", "introduce_badge", photos(2)).unwrap();
    assert!(matches!(d.start_checklist("WO-1", "os-reinstall"), Err(crate::Error::Sop(Error::AlreadyStarted { .. }))));
}

#[test]
fn barcode_mismatch_and_short_observation_block_until_corrected() {
    let dir = tempfile::tempdir().unwrap();
    let (d, clock) = started(dir.path(), "onsite-repair");
    walk_until(&d, "warranty_packing");
    d.answer("WO-1", "warranty_packing", Answer::Barcode { scanned: "FAKE123".into() }).unwrap();
    assert_eq!(state(&d, "warranty_packing"), StepState::Open);
    assert!(d.blockers("WO-1").unwrap().iter().any(|b| b.step == "warranty_packing" && b.reason.en.contains("FAKE123")));
    assert!(matches!(state(&d, "repair_form"), StepState::Locked { .. }));
    d.answer("WO-1", "warranty_packing", Answer::Barcode { scanned: " pf3xk9z1 ".into() }).unwrap();
    assert_eq!(state(&d, "warranty_packing"), StepState::Done);
    walk_until(&d, "reproduce");
    let now = d.now();
    d.answer("WO-1", "reproduce", Answer::Observation { started: Timestamp(now.0 - 12 * 60_000), stopped: now, reproduced: false }).unwrap();
    let b = d.blockers("WO-1").unwrap();
    let r = b.iter().find(|b| b.step == "reproduce").unwrap();
    assert!(r.reason.en.contains("30 minutes (12 so far)"), "{}", r.reason.en);
    clock.advance(chrono::Duration::minutes(30));
    let now = d.now();
    d.answer("WO-1", "reproduce", Answer::Observation { started: Timestamp(now.0 - 31 * 60_000), stopped: now, reproduced: false }).unwrap();
    assert_eq!(state(&d, "reproduce"), StepState::Done);
    let history = d.step_history("WO-1", "reproduce").unwrap();
    assert_eq!(history.len(), 2, "the short observation stays in history");
}

#[test]
fn completion_is_refused_while_blockers_remain() {
    let dir = tempfile::tempdir().unwrap();
    let (d, _) = started(dir.path(), "os-reinstall");
    let w = crate::order::TimeWindow { start: Timestamp(d.now().0 + 1), end: Timestamp(d.now().0 + 3_600_000) };
    for e in [Event::Accept, Event::ContactCustomer { window: w }, Event::Depart, Event::Arrive, Event::StartWork, Event::RequestSignature] {
        d.transition("WO-1", e, Actor::Engineer, None).unwrap();
    }
    match d.transition("WO-1", Event::Complete, Actor::Engineer, None) {
        Err(crate::Error::Sop(Error::Blocked { count, first })) => {
            assert_eq!(first, "consent_reinstall");
            assert!(count >= 1);
        }
        other => panic!("{other:?}"),
    }
    d.walk_checklist_demo("WO-1").unwrap();
    d.sign_receipt("WO-1", &crate::device::testkit::input()).unwrap();
    d.transition("WO-1", Event::Complete, Actor::Engineer, None).unwrap();
    assert!(matches!(d.answer("WO-1", "install", Answer::Confirmed), Err(crate::Error::Sop(Error::Closed { .. }))));
}

#[test]
fn published_versions_never_rewrite_running_orders() {
    let dir = tempfile::tempdir().unwrap();
    let (d, _) = started(dir.path(), "os-reinstall");
    let v2 = super::template::BUILTIN[2].1.replace("version = 1", "version = 2").replace("\"Size of the backup\"", "\"Backup size\"");
    let t = d.publish_template("os-reinstall-v2.toml", &v2).unwrap();
    assert_eq!(t.version, 2);
    let clash = v2.replace("\"Backup size\"", "\"Different\"");
    assert!(matches!(d.publish_template("x.toml", &clash), Err(crate::Error::Sop(Error::VersionExists { .. }))));
    assert_eq!(d.checklist("WO-1").unwrap().pinned.version, 1);
    drop(d);
    let (d, _) = device(dir.path());
    assert_eq!(d.checklist("WO-1").unwrap().pinned.version, 1, "still v1 after reopen");
    d.import_orders_json(&sample_json("WO-2")).unwrap();
    let v = d.start_checklist("WO-2", "os-reinstall").unwrap();
    assert_eq!(v.pinned.version, 2, "published version survives reopen and is used for new orders");
    assert_eq!(v.template.step("backup_size").unwrap().label.en, "Backup size");
}

/// A measurement is a finite number (`Answer::check`, the rule the server applies too).
#[test]
fn a_measurement_that_is_not_a_number_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (d, _) = started(dir.path(), "os-reinstall");
    walk_until(&d, "backup_size");
    let before = d.checklist("WO-1").unwrap().answers.len();
    for value in [f64::NAN, f64::INFINITY] {
        let e = d.answer("WO-1", "backup_size", Answer::Measurement { value }).unwrap_err();
        assert!(matches!(e, crate::Error::Sop(Error::Invalid { ref field, .. }) if field == "value"), "{e:?}");
    }
    assert_eq!(d.checklist("WO-1").unwrap().answers.len(), before);
    d.answer("WO-1", "backup_size", Answer::Measurement { value: 42.5 }).unwrap();
}

#[test]
fn concurrent_answers_to_one_step_resolve_deterministically_and_keep_both() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, _) = started(da.path(), "onsite-repair");
    let (b, _) = device(db.path());
    b.merge_document(&a.document_bytes("WO-1").unwrap()).unwrap();
    a.answer("WO-1", "borrow_parts", Answer::Parts { parts: vec![] }).unwrap();
    b.answer(
        "WO-1",
        "borrow_parts",
        Answer::Parts { parts: vec![PartUse { part_number: "PN".into(), serial: "SN".into(), quantity: 1, returned_serial: None }] },
    )
    .unwrap();
    // The engineer and the helper answer different steps too.
    a.answer("WO-1", "dress_badge", Answer::Confirmed).unwrap();
    a.merge_document(&b.document_bytes("WO-1").unwrap()).unwrap();
    b.merge_document(&a.document_bytes("WO-1").unwrap()).unwrap();
    let (va, vb) = (a.checklist("WO-1").unwrap(), b.checklist("WO-1").unwrap());
    assert_eq!(va.evaluation, vb.evaluation);
    assert_eq!(a.step_history("WO-1", "borrow_parts").unwrap().len(), 2);
    assert_eq!(va.evaluation.status(&va.template, "dress_badge").unwrap().state, StepState::Done);
}

#[derive(Debug, Clone)]
enum Op {
    A(usize),
    B(usize),
    SyncAtoB,
    SyncBtoA,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    /// Random interleavings of answers on two replicas (with syncs in between) converge to
    /// the same checklist state and blockers once both have everything.
    #[test]
    fn replicas_converge(ops in proptest::collection::vec(prop_oneof![
        (0usize..4).prop_map(Op::A), (0usize..4).prop_map(Op::B), Just(Op::SyncAtoB), Just(Op::SyncBtoA)
    ], 1..16)) {
        let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (a, ca) = started(da.path(), "onsite-repair");
        let (b, cb) = device(db.path());
        b.merge_document(&a.document_bytes("WO-1").unwrap()).unwrap();
        for op in ops {
            ca.advance(chrono::Duration::seconds(7));
            cb.advance(chrono::Duration::seconds(5));
            match op {
                Op::A(k) | Op::B(k) => {
                    let d = if matches!(op, Op::A(_)) { &a } else { &b };
                    let open = d.checklist("WO-1").unwrap().evaluation.open().iter().map(|s| s.to_string()).collect::<Vec<_>>();
                    if let Some(step) = open.get(k % open.len().max(1)) {
                        let answer = demo(d, step);
                        d.answer("WO-1", step, answer).unwrap();
                    }
                }
                Op::SyncAtoB => { b.merge_document(&a.document_bytes("WO-1").unwrap()).unwrap(); }
                Op::SyncBtoA => { a.merge_document(&b.document_bytes("WO-1").unwrap()).unwrap(); }
            }
        }
        a.merge_document(&b.document_bytes("WO-1").unwrap()).unwrap();
        b.merge_document(&a.document_bytes("WO-1").unwrap()).unwrap();
        let (va, vb) = (a.checklist("WO-1").unwrap(), b.checklist("WO-1").unwrap());
        prop_assert_eq!(&va.evaluation, &vb.evaluation);
        prop_assert_eq!(a.blockers("WO-1").unwrap(), b.blockers("WO-1").unwrap());
        prop_assert_eq!(va.answers.len(), vb.answers.len());
    }
}

proptest! {
    /// Template files from outside (published by a provider) never panic the loader: a
    /// built-in template with one byte changed either loads or names what is wrong.
    #[test]
    fn template_loader_never_panics(pos in 0usize..20_000, byte in any::<u8>(), which in 0usize..3) {
        let mut bytes = super::template::BUILTIN[which].1.as_bytes().to_vec();
        let i = pos % bytes.len();
        bytes[i] = byte;
        if let Ok(src) = String::from_utf8(bytes) {
            match Template::parse("mutated.toml", &src) {
                Ok(t) => prop_assert!(!t.steps.is_empty()),
                Err(Error::Template { file, .. }) => prop_assert_eq!(file, "mutated.toml"),
                Err(other) => prop_assert!(false, "unexpected {:?}", other),
            }
        }
    }
}

#[test]
fn the_builtin_consent_texts_are_the_ones_consents_hash() {
    let texts = super::builtin_consent_texts().unwrap();
    assert!(texts.len() >= 3, "{}", texts.len());
    let hashes: Vec<String> = texts.iter().map(super::template::risk_hash).collect();
    let registry = super::Registry::with_builtins().unwrap();
    let t = registry.latest("onsite-repair").unwrap();
    for step in &t.steps {
        if let super::StepKind::Consent { risk_sha256, .. } = &step.kind {
            assert!(hashes.contains(risk_sha256), "{}", step.id);
        }
    }
}
