//! Field ownership at the sync boundary. The server runs [`check_engineer_change`] on every
//! order an engineer device pushes (comparing the order before and after the merge), and a
//! device whose push was refused rebuilds the order with [`rebase`]: the server's document
//! plus every valid local item.
//!
//! Rules (the table is `order::ownership::FIELD_OWNERS`):
//! - dispatcher-owned and immutable fields must not change;
//! - engineer-owned lists (transitions, notes, checklist answers, receipts) are append-only:
//!   every item the server had is still there, unchanged and in order; concurrent appends
//!   from other replicas may interleave;
//! - a new item names the pushing device as its author (no writing in another's name);
//! - a new transition is an engineer's event (cancelling is the dispatcher's);
//! - a signed receipt entry never changes (that is where the customer's rating lives).

use serde_json::Value;

use crate::order::ownership::{owner_of, Owner};
use crate::order::{lifecycle, Actor, Event, Status, WorkOrder};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("change to `{field}` refused: {reason}")]
pub struct Forbidden {
    pub field: String,
    pub reason: String,
}

fn forbidden(field: &str, reason: impl Into<String>) -> Forbidden {
    Forbidden { field: field.to_string(), reason: reason.into() }
}

/// The lists an engineer device may only append to, as (path, key) into the JSON form.
const APPEND_ONLY: &[&str] = &["transitions", "notes", "checklist.answers", "receipts", "help"];

fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, k| v.get(k).unwrap_or(&Value::Null))
}

/// Positions of the items of `after` that are not matched, in order, by `before` (a
/// subsequence check). `Err` when some item of `before` is missing or changed.
fn appended(before: &[Value], after: &[Value]) -> Result<Vec<usize>, usize> {
    let mut i = 0;
    let mut new = Vec::new();
    for (k, item) in after.iter().enumerate() {
        if i < before.len() && &before[i] == item {
            i += 1;
        } else {
            new.push(k);
        }
    }
    if i == before.len() {
        Ok(new)
    } else {
        Err(i)
    }
}

/// The device id the server writes dispatcher transitions under (devices never have it).
pub const SERVER_ORIGIN: &str = "server";

/// Checks that `after` differs from `before` only in what device `device` may write, and
/// that its lifecycle is a legal path of the state machine ([`check_lifecycle`]).
/// `delivered_receipts`: canonical SHA-256s of the receipts of this order the server holds
/// (a completion must rest on one of them).
pub fn check_engineer_change(
    before: &WorkOrder,
    after: &WorkOrder,
    root_keys: &[String],
    device: &str,
    delivered_receipts: &[String],
) -> Result<(), Forbidden> {
    for key in root_keys {
        if owner_of(key).is_none() {
            return Err(forbidden(key, "not a field of a work order"));
        }
    }
    let b = serde_json::to_value(before).map_err(|e| forbidden("*", e.to_string()))?;
    let a = serde_json::to_value(after).map_err(|e| forbidden("*", e.to_string()))?;
    let (Some(bm), Some(am)) = (b.as_object(), a.as_object()) else {
        return Err(forbidden("*", "not an object"));
    };
    for (key, bv) in bm {
        let av = am.get(key).unwrap_or(&Value::Null);
        match owner_of(key) {
            Some(Owner::Dispatcher) | Some(Owner::Immutable) if av != bv => {
                return Err(forbidden(key, "owned by the dispatcher"));
            }
            _ => {}
        }
    }
    for path in APPEND_ONLY {
        let empty = Vec::new();
        let bl = at(&b, path).as_array().unwrap_or(&empty);
        let al = at(&a, path).as_array().unwrap_or(&empty);
        let new = appended(bl, al).map_err(|i| forbidden(path, format!("entry {i} was changed or removed (append-only)")))?;
        for k in new {
            if al[k].get("device").and_then(Value::as_str) != Some(device) {
                return Err(forbidden(path, "a new entry must name the device that wrote it"));
            }
            check_new_item(after, path, k)?;
        }
    }
    check_lifecycle(before, after, &LifecycleRule { author: Some(device), delivered_receipts: Some(delivered_receipts) })
}

/// What a new entry must hold whatever its list: a step's fix is a fix, an answer's value
/// passes [`crate::order::checklist::Answer::check`]. Only new entries: one accepted before
/// this check existed stays as it was (append-only), and does not block the order.
fn check_new_item(after: &WorkOrder, path: &str, k: usize) -> Result<(), Forbidden> {
    let problem = match path {
        "transitions" => after.transitions.get(k).and_then(|t| t.fix.as_ref()).map(|f| f.check()),
        "checklist.answers" => after.checklist.answers.get(k).map(|a| a.value.check()),
        _ => None,
    };
    match problem {
        Some(Err(e)) => Err(forbidden(path, format!("entry {k}: {e}"))),
        _ => Ok(()),
    }
}

/// What a lifecycle check takes as given.
#[derive(Debug, Clone, Copy)]
pub struct LifecycleRule<'a> {
    /// `Some(device)`: every new transition must name this device (a push to the server).
    /// `None`: a peer's document, whose transitions may come from any engineer device, and
    /// from the server (a dispatcher's cancel) by way of that peer.
    pub author: Option<&'a str>,
    /// `Some(hashes)`: a completion must rest on one of these receipts (the server: those the
    /// journal upload delivered). `None`: on a receipt the document itself references.
    pub delivered_receipts: Option<&'a [String]>,
}

/// The status history of `after` must be a legal path of the lifecycle: every transition
/// `after` adds to `before` starts where the previous one ended, is an edge of the state
/// machine for its actor (an engineer's event, or on a peer's document a dispatcher cancel
/// written by the server), names its author as the rule says; `status` equals the last
/// transition's target; a new completion is backed by a signed receipt.
pub fn check_lifecycle(before: &WorkOrder, after: &WorkOrder, rule: &LifecycleRule<'_>) -> Result<(), Forbidden> {
    let initial = before.transitions.first().map(|t| t.from).unwrap_or(before.status);
    // The whole list must chain once anything is added: a new step inserted before an old
    // one (a concurrent step from a stale status) breaks the old one's `from`. A history
    // that was already broken before (data from older versions) is only checked from the
    // new steps on.
    let before_chains = before.transitions.windows(2).all(|w| w[0].to == w[1].from);
    let mut current = initial;
    let mut added = false;
    let mut completed = false;
    for (i, t) in after.transitions.iter().enumerate() {
        if before.transitions.contains(t) {
            if added && before_chains && t.from != current {
                return Err(forbidden(
                    "transitions",
                    format!("entry {i} (`{}`, already recorded) no longer follows from `{current}`: a concurrent step", t.event.name()),
                ));
            }
            current = t.to;
            continue;
        }
        added = true;
        if t.from != current {
            return Err(forbidden("transitions", format!("entry {i} starts at `{}` but the order was `{current}`", t.from)));
        }
        let actor = match (rule.author, &t.event) {
            (None, Event::Cancel { .. }) if t.device == SERVER_ORIGIN => Actor::Dispatcher,
            _ => Actor::Engineer,
        };
        if actor == Actor::Engineer && t.event.required_actor() == Actor::Dispatcher {
            return Err(forbidden("transitions", format!("`{}` is the dispatcher's event", t.event.name())));
        }
        match lifecycle::next_status(t.from, &t.event, actor) {
            Ok(to) if to == t.to => {}
            Ok(to) => return Err(forbidden("transitions", format!("entry {i}: `{}` from `{}` leads to `{to}`, not `{}`", t.event.name(), t.from, t.to))),
            Err(e) => return Err(forbidden("transitions", format!("entry {i}: {e}"))),
        }
        if let Some(author) = rule.author {
            if t.device != author {
                return Err(forbidden("transitions", "a new entry must name the device that wrote it"));
            }
        }
        completed |= t.to == Status::Completed;
        current = t.to;
    }
    if (added || after.status != before.status) && after.status != current {
        return Err(forbidden("status", format!("`{}` is not where the transitions lead (`{current}`)", after.status)));
    }
    if completed {
        let backed = after.receipts.iter().any(|r| match rule.delivered_receipts {
            Some(delivered) => delivered.contains(&r.sha256),
            None => true,
        });
        if !backed {
            return Err(forbidden("transitions", "completion needs the customer's signed receipt (delivered by the journal upload)"));
        }
    }
    Ok(())
}

/// A whole order's history must be a legal path from `assigned` (a peer's new order).
pub fn check_history(order: &WorkOrder, rule: &LifecycleRule<'_>) -> Result<(), Forbidden> {
    let mut start = order.clone();
    start.transitions.clear();
    start.status = Status::Assigned;
    start.receipts.clear();
    check_lifecycle(&start, order, rule)
}

/// The order rebuilt on the server's version: dispatcher fields and every server entry from
/// `server`, then every local list entry the server lacks (in local order). A local
/// transition is kept only when it continues the lifecycle from where the server's ends;
/// `status` follows the last transition, the appointment the last one that set a window.
pub fn rebase(server: &WorkOrder, local: &WorkOrder) -> WorkOrder {
    fn extend<T: PartialEq + Clone>(into: &mut Vec<T>, local: &[T]) {
        let missing: Vec<T> = local.iter().filter(|x| !into.contains(x)).cloned().collect();
        into.extend(missing);
    }
    let mut out = server.clone();
    let mut current = out.transitions.last().map(|t| t.to).unwrap_or(out.status);
    for t in local.transitions.iter().filter(|t| !server.transitions.contains(t)) {
        let legal = t.from == current
            && t.event.required_actor() == Actor::Engineer
            && lifecycle::next_status(t.from, &t.event, Actor::Engineer).is_ok_and(|to| to == t.to);
        if !legal {
            continue;
        }
        if let Some(w) = t.event.new_window() {
            out.appointment = Some(w);
        }
        current = t.to;
        out.transitions.push(t.clone());
    }
    out.status = current;
    extend(&mut out.notes, &local.notes);
    if out.checklist.template.is_none() {
        out.checklist.template = local.checklist.template.clone();
    }
    extend(&mut out.checklist.answers, &local.checklist.answers);
    extend(&mut out.receipts, &local.receipts);
    extend(&mut out.help, &local.help);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::import::{parse_orders, tests::sample_json};
    use crate::order::{EngineerNote, Event, Priority, Status, Timestamp, TransitionRecord};

    fn order() -> WorkOrder {
        parse_orders(&sample_json("WO-1"), Timestamp(0)).unwrap().remove(0)
    }

    fn keys(o: &WorkOrder) -> Vec<String> {
        serde_json::to_value(o).unwrap().as_object().unwrap().keys().cloned().collect()
    }

    fn transition(device: &str, event: Event, to: Status) -> TransitionRecord {
        TransitionRecord { from: Status::Assigned, to, event, at: Timestamp(5), monotonic_ms: 1, device: device.into(), fix: None }
    }

    #[test]
    fn engineer_fields_pass_dispatcher_fields_do_not() {
        let before = order();
        let mut after = before.clone();
        after.transitions.push(transition("dev-a", Event::Accept, Status::Accepted));
        after.status = Status::Accepted;
        after.notes.push(EngineerNote { at: Timestamp(6), device: "dev-a".into(), text: "on my way".into() });
        assert_eq!(check_engineer_change(&before, &after, &keys(&after), "dev-a", &[]), Ok(()));

        let mut p = after.clone();
        p.priority = Priority::Low;
        assert_eq!(check_engineer_change(&before, &p, &keys(&p), "dev-a", &[]).unwrap_err().field, "priority");
        let mut c = after.clone();
        c.customer.company = "Someone else".into();
        assert_eq!(check_engineer_change(&before, &c, &keys(&c), "dev-a", &[]).unwrap_err().field, "customer");
        let mut e = after.clone();
        e.engineer.id = "me-instead".into();
        assert_eq!(check_engineer_change(&before, &e, &keys(&e), "dev-a", &[]).unwrap_err().field, "engineer");
        let mut extra = keys(&after);
        extra.push("hacked".into());
        assert_eq!(check_engineer_change(&before, &after, &extra, "dev-a", &[]).unwrap_err().field, "hacked");
    }

    #[test]
    fn lists_are_append_only_and_attributed() {
        let mut before = order();
        before.notes.push(EngineerNote { at: Timestamp(1), device: "dev-a".into(), text: "first".into() });
        let mut edited = before.clone();
        edited.notes[0].text = "rewritten".into();
        assert_eq!(check_engineer_change(&before, &edited, &keys(&edited), "dev-a", &[]).unwrap_err().field, "notes");
        let mut removed = before.clone();
        removed.notes.clear();
        assert!(check_engineer_change(&before, &removed, &keys(&removed), "dev-a", &[]).is_err());
        let mut impersonating = before.clone();
        impersonating.notes.push(EngineerNote { at: Timestamp(2), device: "dev-b".into(), text: "not me".into() });
        assert!(check_engineer_change(&before, &impersonating, &keys(&impersonating), "dev-a", &[]).is_err());
        // A concurrent append that sorts before ours is fine.
        let mut interleaved = before.clone();
        interleaved.notes.insert(0, EngineerNote { at: Timestamp(2), device: "dev-a".into(), text: "mine".into() });
        assert_eq!(check_engineer_change(&before, &interleaved, &keys(&interleaved), "dev-a", &[]), Ok(()));
        let mut cancel = before.clone();
        cancel.transitions.push(transition("dev-a", Event::Cancel { reason: "no".into() }, Status::Cancelled));
        assert_eq!(check_engineer_change(&before, &cancel, &keys(&cancel), "dev-a", &[]).unwrap_err().field, "transitions");
    }

    #[test]
    fn rebase_keeps_server_fields_and_local_work() {
        let server = {
            let mut o = order();
            o.priority = Priority::Low;
            o.notes.push(EngineerNote { at: Timestamp(1), device: "dev-b".into(), text: "from b".into() });
            o
        };
        let mut local = order();
        local.priority = Priority::Normal; // the forbidden local change
        local.transitions.push(transition("dev-a", Event::Accept, Status::Accepted));
        local.status = Status::Accepted;
        local.notes.push(EngineerNote { at: Timestamp(2), device: "dev-a".into(), text: "from a".into() });
        let r = rebase(&server, &local);
        assert_eq!(r.priority, Priority::Low);
        assert_eq!(r.status, Status::Accepted);
        assert_eq!(r.notes.iter().map(|n| n.text.as_str()).collect::<Vec<_>>(), ["from b", "from a"]);
        assert_eq!(check_engineer_change(&server, &r, &keys(&r), "dev-a", &[]), Ok(()));
    }

    fn step(from: Status, event: Event, to: Status, device: &str) -> TransitionRecord {
        TransitionRecord { from, to, event, at: Timestamp(5), monotonic_ms: 1, device: device.into(), fix: None }
    }

    fn push(before: &WorkOrder, after: &WorkOrder, receipts: &[String]) -> Result<(), Forbidden> {
        check_engineer_change(before, after, &keys(after), "dev-a", receipts)
    }

    #[test]
    fn the_lifecycle_cannot_be_set_without_the_lifecycle() {
        let before = order();
        // Writing `status` directly: no transition leads there.
        for forged in [Status::Cancelled, Status::Completed, Status::OnSite] {
            let mut a = before.clone();
            a.status = forged;
            assert_eq!(push(&before, &a, &[]).unwrap_err().field, "status", "{forged}");
        }
        // A transition that is not an edge, or lies about where it leads or starts.
        let mut skip = before.clone();
        skip.transitions.push(step(Status::Assigned, Event::Arrive, Status::OnSite, "dev-a"));
        skip.status = Status::OnSite;
        assert_eq!(push(&before, &skip, &[]).unwrap_err().field, "transitions");
        let mut lie = before.clone();
        lie.transitions.push(step(Status::Assigned, Event::Accept, Status::Completed, "dev-a"));
        lie.status = Status::Completed;
        assert_eq!(push(&before, &lie, &[]).unwrap_err().field, "transitions");
        let mut wrong_from = before.clone();
        wrong_from.transitions.push(step(Status::AwaitingSignature, Event::Complete, Status::Completed, "dev-a"));
        wrong_from.status = Status::Completed;
        assert_eq!(push(&before, &wrong_from, &[]).unwrap_err().field, "transitions");
        // Another device's name.
        let mut other = before.clone();
        other.transitions.push(step(Status::Assigned, Event::Accept, Status::Accepted, "dev-b"));
        other.status = Status::Accepted;
        assert!(push(&before, &other, &[]).is_err());
        // A legal step passes; status must follow it.
        let mut ok = before.clone();
        ok.transitions.push(step(Status::Assigned, Event::Accept, Status::Accepted, "dev-a"));
        ok.status = Status::Accepted;
        assert_eq!(push(&before, &ok, &[]), Ok(()));
        let mut lagging = ok.clone();
        lagging.status = Status::Assigned;
        assert_eq!(push(&before, &lagging, &[]).unwrap_err().field, "status");
    }

    #[test]
    fn completion_needs_a_delivered_receipt_and_concurrent_steps_are_refused() {
        let mut before = order();
        before.status = Status::AwaitingSignature;
        before.transitions.push(step(Status::InProgress, Event::RequestSignature, Status::AwaitingSignature, "dev-a"));
        let mut done = before.clone();
        done.transitions.push(step(Status::AwaitingSignature, Event::Complete, Status::Completed, "dev-a"));
        done.status = Status::Completed;
        assert!(push(&before, &done, &[]).is_err(), "no receipt at all");
        done.receipts.push(crate::order::ReceiptRef {
            revision: 1,
            sha256: "ab".repeat(32),
            decision: "signed".into(),
            signed_at: Timestamp(4),
            device: "dev-a".into(),
        });
        assert!(push(&before, &done, &[]).is_err(), "a receipt the journal did not deliver");
        assert_eq!(push(&before, &done, &["ab".repeat(32)]), Ok(()));
        // On a peer's document, the receipt in the document is what there is.
        let peer = LifecycleRule { author: None, delivered_receipts: None };
        assert_eq!(check_lifecycle(&before, &done, &peer), Ok(()));

        // Two devices step from the same status: whichever sorts first, the list no longer chains.
        let base = order();
        let mut a = base.clone();
        a.transitions.push(step(Status::Assigned, Event::Accept, Status::Accepted, "dev-b"));
        a.status = Status::Accepted;
        let mut both = a.clone();
        both.transitions.insert(0, step(Status::Assigned, Event::Accept, Status::Accepted, "dev-a"));
        assert_eq!(push(&a, &both, &[]).unwrap_err().field, "transitions");
        let mut after = a.clone();
        after.transitions.push(step(Status::Assigned, Event::Accept, Status::Accepted, "dev-a"));
        assert_eq!(push(&a, &after, &[]).unwrap_err().field, "transitions");
        // The peer rule accepts the server's cancel, never an engineer's.
        let mut cancelled = base.clone();
        cancelled.transitions.push(step(Status::Assigned, Event::Cancel { reason: "x".into() }, Status::Cancelled, SERVER_ORIGIN));
        cancelled.status = Status::Cancelled;
        assert_eq!(check_lifecycle(&base, &cancelled, &peer), Ok(()));
        cancelled.transitions[0].device = "dev-b".into();
        assert!(check_lifecycle(&base, &cancelled, &peer).is_err());
    }

    #[test]
    fn rebase_drops_local_steps_that_no_longer_follow() {
        let base = order();
        let mut server = base.clone();
        server.transitions.push(step(Status::Assigned, Event::Cancel { reason: "withdrawn".into() }, Status::Cancelled, SERVER_ORIGIN));
        server.status = Status::Cancelled;
        let mut local = base.clone();
        local.transitions.push(step(Status::Assigned, Event::Accept, Status::Accepted, "dev-a"));
        local.status = Status::Accepted;
        local.notes.push(EngineerNote { at: Timestamp(2), device: "dev-a".into(), text: "kept".into() });
        let r = rebase(&server, &local);
        assert_eq!(r.status, Status::Cancelled);
        assert_eq!(r.transitions.len(), 1);
        assert_eq!(r.notes.len(), 1);
        assert_eq!(check_engineer_change(&server, &r, &keys(&r), "dev-a", &[]), Ok(()));
    }

    /// A pushed step or answer must carry numbers a receiver can rely on: no NaN or
    /// out-of-range fix (an arrival "NaN m from the site" is no distance), no NaN measurement.
    #[test]
    fn new_entries_carry_real_fixes_and_finite_measurements() {
        use crate::order::checklist::{Answer, AnswerRecord};
        use crate::order::{GpsFix, LocationSource};
        let before = order();
        let fix = |lat: f64, lon: f64, accuracy_m: f64| Some(GpsFix { lat, lon, accuracy_m, source: LocationSource::Gps, mock: false });
        let with_fix = |f: Option<GpsFix>| {
            let mut a = before.clone();
            a.transitions.push(TransitionRecord { fix: f, ..transition("dev-a", Event::Accept, Status::Accepted) });
            a.status = Status::Accepted;
            a
        };
        assert_eq!(check_engineer_change(&before, &with_fix(fix(39.9, 116.4, 8.0)), &keys(&before), "dev-a", &[]), Ok(()));
        assert_eq!(check_engineer_change(&before, &with_fix(fix(90.0, -180.0, 0.0)), &keys(&before), "dev-a", &[]), Ok(()));
        for (bad, field) in [
            (fix(f64::NAN, 116.4, 8.0), "fix.lat"),
            (fix(91.0, 116.4, 8.0), "fix.lat"),
            (fix(39.9, f64::INFINITY, 8.0), "fix.lon"),
            (fix(39.9, -180.5, 8.0), "fix.lon"),
            (fix(39.9, 116.4, -1.0), "fix.accuracy_m"),
            (fix(39.9, 116.4, f64::NAN), "fix.accuracy_m"),
        ] {
            let e = check_engineer_change(&before, &with_fix(bad), &keys(&before), "dev-a", &[]).unwrap_err();
            assert_eq!(e.field, "transitions", "{bad:?}");
            assert!(e.reason.contains(field), "{bad:?}: {e}");
        }
        let answer =
            |value: f64| AnswerRecord { step: "s1".into(), value: Answer::Measurement { value }, at: Timestamp(6), monotonic_ms: 2, device: "dev-a".into() };
        let mut ok = before.clone();
        ok.checklist.answers.push(answer(21.5));
        assert_eq!(check_engineer_change(&before, &ok, &keys(&before), "dev-a", &[]), Ok(()));
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let mut a = before.clone();
            a.checklist.answers.push(answer(v));
            assert_eq!(check_engineer_change(&before, &a, &keys(&before), "dev-a", &[]).unwrap_err().field, "checklist.answers", "{v}");
        }
        // An entry accepted before this check (already in the server's order) does not
        // block the next push; only new entries are judged.
        let mut old = before.clone();
        old.checklist.answers.push(answer(f64::INFINITY));
        let mut next = old.clone();
        next.checklist.answers.push(answer(3.0));
        assert_eq!(check_engineer_change(&old, &next, &keys(&old), "dev-a", &[]), Ok(()));
    }
}
