//! One order's page for the dispatcher: what was ordered, the timeline of transitions with
//! their GPS fixes (mock fixes flagged, the arrival's distance from the site), the checklist
//! with each answer (corrections marked), photos, consents, receipts, notes, help threads,
//! close-out; and its actions (assign, priority, cancel, close out), each a CSRF-checked form.
//! `blob` serves a photo to the dispatcher with the type its bytes are, never as HTML.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use onsite_core::bundle::distance_m;
use onsite_core::order::checklist::Answer;
use onsite_core::order::document::FieldConflict;
use onsite_core::order::{Event, WorkOrder};
use serde::Deserialize;

use super::i18n::Lang;
use super::session::Signed;
use super::{blocking, check_form, lang, signed_page, time, Fail, Page, Svc};
use crate::service::{Error, PhotoRecord, ReceiptView};

fn event_name(e: &Event) -> String {
    match e {
        Event::Cancel { reason } | Event::MarkUnresolved { reason } | Event::CarryToWorkshop { reason } | Event::Reschedule { reason, .. } => {
            format!("{e:?}").split([' ', '{']).next().unwrap_or("").to_string() + ": " + reason
        }
        other => format!("{other:?}").split([' ', '{']).next().unwrap_or("").to_string(),
    }
}

fn answer_text(a: &Answer) -> String {
    match a {
        Answer::Confirmed => "✓".into(),
        Answer::Photos { photos } => format!("{} photo(s)", photos.len()),
        Answer::Measurement { value } => format!("{value}"),
        Answer::Note { text } => text.clone(),
        Answer::Choice { selected } => selected.join(", "),
        Answer::Barcode { scanned } => scanned.clone(),
        Answer::Parts { parts } => parts.iter().map(|p| format!("{} ×{} ({})", p.part_number, p.quantity, p.serial)).collect::<Vec<_>>().join("; "),
        Answer::Observation { reproduced, started, stopped } => format!("reproduced: {reproduced} ({}–{})", time(started.0), time(stopped.0)),
        Answer::Consent { accepted, signer, .. } => format!("{} — {signer}", if *accepted { "accepted" } else { "refused" }),
        Answer::NotApplicable { reason } => format!("n/a: {reason}"),
    }
}

fn facts(lang: Lang, o: &WorkOrder) -> Markup {
    html! {
        dl.facts {
            dt { (lang.t("status")) } dd { span class={ "status s-" (o.status.as_str()) } { (lang.t(o.status.as_str())) } }
            dt { (lang.t("priority")) } dd { (lang.t(&format!("u_{}", o.priority.as_str()))) }
            dt { (lang.t("engineer")) } dd { (o.engineer.id) " " (o.engineer.name) }
            dt { (lang.t("customer")) } dd { (o.customer.company) " · " (o.customer.contact) " · " (o.customer.phone) }
            dt { (lang.t("site")) } dd { (o.site.address) }
            dt { (lang.t("equipment")) } dd { (o.equipment.category) " " (o.equipment.brand) " " (o.equipment.model) " · " (lang.t("serial")) " " (o.equipment.serial) }
            dt { (lang.t("fault")) } dd { (o.fault.description) }
            @if let Some(w) = o.appointment { dt { (lang.t("appointment")) } dd { (time(w.start.0)) " – " (time(w.end.0)) } }
        }
    }
}

fn timeline(lang: Lang, o: &WorkOrder) -> Markup {
    html! {
        section aria-labelledby="h-timeline" {
            h2 id="h-timeline" { (lang.t("timeline")) }
            table.timeline {
                thead { tr { th scope="col" { (lang.t("when")) } th scope="col" { (lang.t("event")) } th scope="col" { (lang.t("status")) } th scope="col" { (lang.t("gps")) } th scope="col" { (lang.t("device")) } } }
                tbody {
                    @for t in &o.transitions {
                        tr {
                            td { (time(t.at.0)) }
                            td { (event_name(&t.event)) }
                            td { (lang.t(t.from.as_str())) " → " (lang.t(t.to.as_str())) }
                            td {
                                @if let Some(f) = &t.fix {
                                    (format!("{:.5}, {:.5} ±{:.0} m", f.lat, f.lon, f.accuracy_m))
                                    @if let Some(site) = o.site.location {
                                        " · " (format!("{:.0} m", distance_m(f.lat, f.lon, site.lat, site.lon))) " " (lang.t("from_site"))
                                    }
                                    @if f.mock { " " strong.warn { (lang.t("mock")) } }
                                } @else { "—" }
                            }
                            td { code { (t.device.get(..8).unwrap_or(&t.device)) } }
                        }
                    }
                }
            }
        }
    }
}

fn checklist(lang: Lang, o: &WorkOrder) -> Markup {
    // An answer is corrected when the same step is answered again later.
    let mut last: HashMap<&str, usize> = HashMap::new();
    for (i, a) in o.checklist.answers.iter().enumerate() {
        last.insert(a.step.as_str(), i);
    }
    let consents: Vec<_> = o.checklist.answers.iter().filter(|a| matches!(a.value, Answer::Consent { .. })).collect();
    html! {
        section aria-labelledby="h-checklist" {
            h2 id="h-checklist" { (lang.t("checklist")) @if let Some(t) = &o.checklist.template { " " small { (t.id) " v" (t.version) } } }
            table.checklist {
                thead { tr { th scope="col" { (lang.t("step")) } th scope="col" { (lang.t("answer")) } th scope="col" { (lang.t("when")) } } }
                tbody {
                    @for (i, a) in o.checklist.answers.iter().enumerate() {
                        tr class=[(last.get(a.step.as_str()) != Some(&i)).then_some("corrected")] {
                            td { code { (a.step) } }
                            td { (answer_text(&a.value)) @if last.get(a.step.as_str()) != Some(&i) { " " span.tag { (lang.t("corrected")) } } }
                            td { (time(a.at.0)) }
                        }
                    }
                }
            }
        }
        section aria-labelledby="h-consents" {
            h2 id="h-consents" { (lang.t("consents")) }
            ul {
                @for a in &consents {
                    @if let Answer::Consent { accepted, risk_sha256, signer, strokes_sha256, .. } = &a.value {
                        li {
                            code { (a.step) } " · " (if *accepted { lang.t("consent_yes") } else { lang.t("consent_no") }) " · " (lang.t("signer")) " " (signer) " · " (time(a.at.0))
                            br; small { "risk " code.hash { (risk_sha256) } " strokes " code.hash { (strokes_sha256) } }
                        }
                    }
                }
            }
        }
    }
}

/// Photos as the devices' journals recorded them: the thumbnail (or the photo), the step and
/// its label, the camera's EXIF time beside the ingest time, and reuse on other orders.
fn photos(lang: Lang, o: &WorkOrder, records: &[PhotoRecord]) -> Markup {
    let label = |sha: &str| {
        o.checklist.answers.iter().find_map(|a| match &a.value {
            Answer::Photos { photos } => photos.iter().find(|p| p.sha256 == sha).map(|p| p.label.clone()),
            _ => None,
        })
    };
    html! {
        section aria-labelledby="h-photos" {
            h2 id="h-photos" { (lang.t("photos")) " " small { (records.len()) } }
            ul.photos {
                @for p in records {
                    li data-photo=(p.sha256) {
                        a href={ "/console/blobs/" (p.sha256) } {
                            img src={ "/console/blobs/" (p.preview) } alt={ (p.step.as_deref().unwrap_or("")) " " (label(&p.sha256).unwrap_or_default()) } loading="lazy" width="160";
                        }
                        br; small { (p.step.as_deref().unwrap_or("-")) @if let Some(l) = label(&p.sha256) { " · " (l) } }
                        br; small { (lang.t("ingested")) " " (time(p.ingested_at_ms)) }
                        br; small { (lang.t("exif_time")) " " (p.captured_at.as_deref().unwrap_or("—")) }
                        @if !p.reused_on.is_empty() { br; strong.warn.reuse { (lang.t("reused")) " " (p.reused_on.join(", ")) } }
                        br; code.hash { (p.sha256) }
                    }
                }
            }
        }
    }
}

fn rest(lang: Lang, o: &WorkOrder, closed: Option<i64>, receipts: &[ReceiptView], owed: &[String]) -> Markup {
    html! {
        section aria-labelledby="h-receipts" {
            h2 id="h-receipts" { (lang.t("receipts")) }
            ul {
                @for r in receipts {
                    li {
                        a href={ "/console/orders/" (urlencode(&o.id)) "/receipts/" (r.revision) } { (lang.t("customer_copy")) " r" (r.revision) }
                        " · " (r.decision) " · " (r.signer_name) " · " code.hash { (r.sha256) }
                        @match &r.problem { None => { " " span.ok { "✓ " (lang.t("verified")) } } Some(p) => { " " strong.warn { (p) } } }
                    }
                }
            }
            @if let Some(at) = closed { p { strong { (lang.t("closed_at")) } " " (time(at)) } }
        }
        section aria-labelledby="h-parts" {
            h2 id="h-parts" { (lang.t("parts")) }
            @if owed.is_empty() { p.muted { (lang.t("nothing_owed")) } } @else { ul.owed { @for x in owed { li.warn { (x) } } } }
        }
        section aria-labelledby="h-notes" {
            h2 id="h-notes" { (lang.t("notes")) }
            ul { @for n in &o.notes { li { (time(n.at.0)) " · " (n.text) } } }
        }
        section aria-labelledby="h-help" {
            h2 id="h-help" { (lang.t("help")) }
            @for h in &o.help {
                article.help {
                    p { strong { (lang.t("question")) } " " (time(h.at.0)) " · " (h.question) }
                    @let answers: Vec<_> = o.help_answers.iter().filter(|a| a.request_id == h.id).collect();
                    @if answers.is_empty() { p.muted { (lang.t("no_answer")) } }
                    @for a in answers {
                        p { strong { (lang.t("expert_answer")) } " " (a.expert_name) " · " (time(a.at.0)) " · " (a.text) }
                        @if !a.suggested_steps.is_empty() { ol { @for s in &a.suggested_steps { li { (s) } } } }
                    }
                }
            }
        }
    }
}

/// Fields two writers changed concurrently: the value kept first, then the others, each with
/// who wrote it.
fn conflicts_of(lang: Lang, conflicts: &[FieldConflict]) -> Markup {
    html! {
        section aria-labelledby="h-conflicts" {
            h2 id="h-conflicts" { (lang.t("conflicts")) " " small { (conflicts.len()) } }
            @if conflicts.is_empty() { p.muted { (lang.t("no_conflicts")) } }
            ul.conflicts {
                @for c in conflicts {
                    li data-field=(c.field) {
                        code { (c.field) } ": "
                        @for (i, v) in c.values.iter().enumerate() {
                            @if i > 0 { " · " }
                            span class=(if i == 0 { "kept" } else { "lost" }) { (v.value.to_string()) " (" (v.actor.get(..8).unwrap_or(&v.actor)) ")" }
                        }
                    }
                }
            }
        }
    }
}

/// The forms an order allows now: assignment, priority and cancellation until it ends;
/// close-out once it is completed and not yet closed.
fn actions(lang: Lang, o: &WorkOrder, closed: bool, csrf: &str) -> Markup {
    let base = format!("/console/orders/{}", o.id);
    html! {
        section.actions aria-labelledby="h-actions" {
            h2 id="h-actions" { (lang.t("actions")) }
            @if !o.status.is_terminal() {
                form.card method="post" action={ (base) "/assign" } {
                    input type="hidden" name="_csrf" value=(csrf);
                    label { (lang.t("engineer_id")) " " input name="engineer_id" required value=(o.engineer.id); }
                    label { (lang.t("engineer_name")) " " input name="name" value=(o.engineer.name); }
                    button type="submit" { (lang.t("assign")) }
                }
                form.card method="post" action={ (base) "/priority" } {
                    input type="hidden" name="_csrf" value=(csrf);
                    label { (lang.t("priority")) " "
                        select name="priority" { @for p in ["urgent", "normal", "low"] { option value=(p) selected[o.priority.as_str() == p] { (lang.t(&format!("u_{p}"))) } } }
                    }
                    button type="submit" { (lang.t("set_priority")) }
                }
                form.card method="post" action={ (base) "/cancel" } {
                    input type="hidden" name="_csrf" value=(csrf);
                    label { (lang.t("reason")) " " input name="reason" required; }
                    button.danger type="submit" { (lang.t("cancel")) }
                }
            }
            @if o.status == onsite_core::order::Status::Completed && !closed {
                form.card method="post" action={ (base) "/close" } {
                    input type="hidden" name="_csrf" value=(csrf);
                    button type="submit" { (lang.t("close_out")) }
                }
            }
        }
    }
}

pub async fn page(State(svc): Svc, Signed(s): Signed, headers: HeaderMap, Path(id): Path<String>) -> Page {
    let lang = lang(&headers);
    s.require_dispatcher("an order's page").map_err(|e| Fail(e, lang))?;
    let (svc2, provider) = (svc.clone(), s.provider.clone());
    let (o, closed, records, receipts, owed, conflicts) = blocking(lang, move || {
        let (o, conflicts) = svc2.order_with_conflicts(&provider, &id)?;
        let ledger = svc2.parts_ledger(&provider, &o.engineer.id)?;
        let (held, pending) = ledger.unaccounted(&id);
        let owed: Vec<String> = held
            .iter()
            .map(|h| format!("{} ×{} {}", h.part_number, h.quantity, h.serial.as_deref().unwrap_or("")))
            .chain(pending.iter().map(|p| format!("{} ×{} {} (return pending)", p.part_number, p.quantity, p.serial.as_deref().unwrap_or(""))))
            .collect();
        Ok((o, svc2.closeout(&provider, &id)?, svc2.photo_records(&provider, &id)?, svc2.receipt_views(&provider, &id)?, owed, conflicts))
    })
    .await?;
    let title = format!("{} {}", lang.t("order"), o.id);
    signed_page(lang, &s, &svc, &title, |csrf| {
        html! {
            h1 { (title) }
            div.order-grid {
                div { (facts(lang, &o)) (timeline(lang, &o)) (checklist(lang, &o)) (photos(lang, &o, &records)) (rest(lang, &o, closed, &receipts, &owed)) (conflicts_of(lang, &conflicts)) }
                (actions(lang, &o, closed.is_some(), csrf))
            }
        }
    })
}

#[derive(Deserialize)]
pub struct ActionForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    #[serde(default)]
    engineer_id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    priority: String,
}

/// An action on the order, then back to its page (errors are the API's, shown as a page).
pub async fn action(State(svc): Svc, Signed(s): Signed, headers: HeaderMap, Path((id, action)): Path<(String, String)>, Form(f): Form<ActionForm>) -> Page {
    let lang = lang(&headers);
    s.require_dispatcher("acting on an order").map_err(|e| Fail(e, lang))?;
    check_form(&svc, &s, &headers, &f.csrf).map_err(|e| Fail(e, lang))?;
    let (provider, oid) = (s.provider.clone(), id.clone());
    blocking(lang, move || match action.as_str() {
        "assign" => svc.assign(&provider, &oid, f.engineer_id.trim(), f.name.trim()).map(drop),
        "priority" => svc.set_priority(&provider, &oid, &f.priority).map(drop),
        "cancel" if f.reason.trim().is_empty() => Err(Error::BadRequest("a cancellation needs a reason".into())),
        "cancel" => svc.cancel(&provider, &oid, f.reason.trim()).map(drop),
        "close" => svc.close_order(&provider, &oid, "console").map(drop),
        other => Err(Error::NotFound(format!("no action `{other}`"))),
    })
    .await?;
    Ok(Redirect::to(&format!("/console/orders/{}", urlencode(&id))).into_response())
}

/// The customer copy of a receipt revision: the device's printable page, rendered from the
/// receipt verified again here. It has inline styles and data: images, so it gets a CSP of
/// its own: nothing else loads and, sandboxed, nothing runs.
pub async fn customer_copy(State(svc): Svc, Signed(s): Signed, headers: HeaderMap, Path((id, revision)): Path<(String, u32)>) -> Page {
    let lang = lang(&headers);
    s.require_dispatcher("a receipt").map_err(|e| Fail(e, lang))?;
    let provider = s.provider.clone();
    let page = blocking(lang, move || svc.customer_copy(&provider, &id, revision)).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; sandbox"),
        ],
        page,
    )
        .into_response())
}

/// Percent-encodes everything but unreserved characters (order ids are restricted anyway).
pub fn urlencode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

/// The type a photo's bytes are (JPEG, PNG, WebP, HEIC/AVIF); anything else is a download.
pub fn image_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// A blob of the signed-in party's provider: an image as its type, anything else as an
/// attachment (`nosniff` comes from the console's headers), never rendered as a page.
pub async fn blob(State(svc): Svc, Signed(s): Signed, headers: HeaderMap, Path(sha): Path<String>) -> Result<Response, Fail> {
    let lang = lang(&headers);
    if !onsite_core::hash::is_sha256_hex(&sha) {
        return Err(Fail(Error::NotFound("not a blob address".into()), lang));
    }
    let bytes = blocking(lang, move || {
        // An expert reads only the photos shared in the requests routed to it.
        if !s.is_dispatcher() {
            let me = svc.storage().experts(&s.provider)?.into_iter().find(|e| e.id == s.expert).ok_or(Error::Unauthorized)?;
            let shared = svc.help_list(&s.provider, Some(&me.id))?.iter().any(|r| svc.help_view(&me, &r.id).is_ok_and(|v| v.photos.contains(&sha)));
            if !shared {
                return Err(Error::Forbidden("this photo was not shared with you".into()));
            }
        }
        svc.blob_bytes(&s.provider, &sha)
    })
    .await?;
    let resp = match image_type(&bytes) {
        Some(t) => ([(header::CONTENT_TYPE, t), (header::CACHE_CONTROL, "private, max-age=86400, immutable")], bytes).into_response(),
        None => ([(header::CONTENT_TYPE, "application/octet-stream"), (header::CONTENT_DISPOSITION, "attachment")], bytes).into_response(),
    };
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_real_image_bytes_get_an_image_type() {
        assert_eq!(image_type(&[0xFF, 0xD8, 0xFF, 0xE0]), Some("image/jpeg"));
        assert_eq!(image_type(b"\x89PNG\r\n\x1a\nrest"), Some("image/png"));
        assert_eq!(image_type(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(image_type(b"<html><script>alert(1)</script>"), None);
        assert_eq!(image_type(b""), None);
    }

    #[test]
    fn urls_carry_ids_encoded() {
        assert_eq!(urlencode("WO-1_a.b~c"), "WO-1_a.b~c");
        assert_eq!(urlencode("a/b?c"), "a%2Fb%3Fc");
    }
}
