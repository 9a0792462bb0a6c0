//! The dispatcher's other pages: new orders (a form, or dispatcher JSON pasted or loaded from
//! a file), devices with their last sync and revocation, one-time enrolment codes shown as a
//! QR code for the engineer's phone, the expert registry, and the parts desk (the clerk
//! issues and receives parts; an engineer's ledger).

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Redirect};
use axum::Form;
use maud::{html, Markup, PreEscaped};
use serde::Deserialize;

use super::i18n::Lang;
use super::session::{Session, Signed};
use super::{blocking, check_form, lang, signed_page, time, CsrfOnly, Fail, Page, Svc};
use crate::service::{ClerkMovement, Error, ExpertInput};

fn dispatcher(s: Session, lang: Lang) -> Result<Session, Fail> {
    s.require_dispatcher("this page").map_err(|e| Fail(e, lang))?;
    Ok(s)
}

fn field(lang: Lang, key: &str, name: &str, required: bool) -> Markup {
    html! { label { (lang.t(key)) " " input name=(name) required[required]; } }
}

pub async fn new_order_page(State(svc): Svc, Signed(s): Signed, headers: HeaderMap) -> Page {
    let lang = lang(&headers);
    let s = dispatcher(s, lang)?;
    signed_page(lang, &s, &svc, lang.t("new_order"), |csrf| {
        html! {
            h1 { (lang.t("new_order")) }
            form.card.grid method="post" action="/console/orders/new" {
                input type="hidden" name="_csrf" value=(csrf);
                (field(lang, "order_id", "id", true))
                (field(lang, "customer", "company", true))
                (field(lang, "contact", "contact", true))
                (field(lang, "phone", "phone", true))
                (field(lang, "site", "address", true))
                (field(lang, "category", "category", true))
                (field(lang, "brand", "brand", true))
                (field(lang, "model", "model", true))
                (field(lang, "serial", "serial", false))
                (field(lang, "fault", "fault", true))
                label { (lang.t("priority")) " " select name="priority" { @for p in ["urgent", "normal", "low"] { option value=(p) selected[p == "normal"] { (lang.t(&format!("u_{p}"))) } } } }
                (field(lang, "engineer_id", "engineer_id", true))
                (field(lang, "engineer_name", "engineer_name", true))
                button type="submit" name="mode" value="form" { (lang.t("create")) }
            }
            form.card method="post" action="/console/orders/new" {
                input type="hidden" name="_csrf" value=(csrf);
                h2 { (lang.t("or_json")) }
                label for="json-file" { (lang.t("json")) " (.json)" }
                input id="json-file" type="file" accept=".json,application/json" data-fills="json";
                label for="json" { (lang.t("json")) }
                textarea id="json" name="json" rows="8" {}
                button type="submit" name="mode" value="json" { (lang.t("create")) }
            }
        }
    })
}

#[derive(Deserialize)]
pub struct NewOrder {
    #[serde(rename = "_csrf")]
    csrf: String,
    mode: String,
    #[serde(default)]
    json: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    company: String,
    #[serde(default)]
    contact: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    brand: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    serial: String,
    #[serde(default)]
    fault: String,
    #[serde(default)]
    priority: String,
    #[serde(default)]
    engineer_id: String,
    #[serde(default)]
    engineer_name: String,
}

impl NewOrder {
    /// The form as dispatcher JSON: the one import path (`order::import`) checks it.
    fn to_json(&self, provider: &str, now_ms: i64) -> String {
        let reported = chrono::DateTime::from_timestamp_millis(now_ms).map(|t| t.to_rfc3339()).unwrap_or_default();
        serde_json::json!({
            "id": self.id.trim(),
            "provider": {"id": provider, "name": provider},
            "customer": {"company": self.company.trim(), "contact": self.contact.trim(), "phone": self.phone.trim()},
            "site": {"address": self.address.trim(), "in_service_area": true, "distance_km": 0.0},
            "equipment": {"category": self.category.trim(), "brand": self.brand.trim(), "model": self.model.trim(), "serial": self.serial.trim(), "warranty": "unknown"},
            "fault": {"description": self.fault.trim(), "reported_at": reported, "channel": "phone"},
            "priority": self.priority,
            "engineer": {"id": self.engineer_id.trim(), "name": self.engineer_name.trim()},
        })
        .to_string()
    }
}

pub async fn create_orders(State(svc): Svc, Signed(s): Signed, headers: HeaderMap, Form(f): Form<NewOrder>) -> Page {
    let lang = lang(&headers);
    let s = dispatcher(s, lang)?;
    check_form(&svc, &s, &headers, &f.csrf).map_err(|e| Fail(e, lang))?;
    let (svc2, provider) = (svc.clone(), s.provider.clone());
    let ids = blocking(lang, move || {
        let json = if f.mode == "json" { f.json.clone() } else { f.to_json(&provider, svc2.now_ms()) };
        svc2.create_orders(&provider, &json)
    })
    .await?;
    match ids.as_slice() {
        [one] => Ok(Redirect::to(&format!("/console/orders/{}", super::order::urlencode(one))).into_response()),
        _ => Ok(Redirect::to("/console/").into_response()),
    }
}

/// A code just made, shown once on the page that answers the form (never in a URL).
pub struct CodeShown {
    code: String,
    engineer: String,
    expires: i64,
}

/// What the engineer's phone scans: the server's address and the one-time code.
pub fn enrol_uri(server: &str, code: &str) -> String {
    format!("onsite://enrol?server={}&code={}", super::order::urlencode(server), super::order::urlencode(code))
}

fn qr_svg(text: &str) -> Result<String, Error> {
    let code = qrcode::QrCode::new(text.as_bytes()).map_err(|e| Error::Internal(format!("QR code: {e}")))?;
    Ok(code.render::<qrcode::render::svg::Color>().min_dimensions(240, 240).quiet_zone(true).build())
}

/// This server's address as the browser reached it (behind a TLS proxy, https).
fn server_url(headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("localhost");
    let scheme = if super::session::secure(headers) { "https" } else { "http" };
    format!("{scheme}://{host}")
}

pub async fn devices_page(State(svc): Svc, Signed(s): Signed, headers: HeaderMap) -> Page {
    let lang = lang(&headers);
    let s = dispatcher(s, lang)?;
    devices_view(svc, s, lang, &headers, None).await
}

async fn devices_view(svc: std::sync::Arc<crate::Service>, s: Session, lang: Lang, headers: &HeaderMap, shown: Option<CodeShown>) -> Page {
    let (svc2, provider) = (svc.clone(), s.provider.clone());
    let devices = blocking(lang, move || svc2.devices(&provider)).await?;
    let qr = match &shown {
        Some(c) => Some((qr_svg(&enrol_uri(&server_url(headers), &c.code)).map_err(|e| Fail(e, lang))?, c)),
        None => None,
    };
    signed_page(lang, &s, &svc, lang.t("devices"), |csrf| {
        html! {
            h1 { (lang.t("devices")) }
            @if let Some((svg, shown)) = qr {
                section.card.enrol aria-labelledby="h-code" {
                    h2 id="h-code" { (lang.t("enrol_code")) " · " (shown.engineer) }
                    // The SVG is generated here from the code alone (no outside text in it).
                    figure id="enrol-qr" role="img" aria-label=(lang.t("scan_hint")) { (PreEscaped(svg)) }
                    p { code id="enrol-code" { (shown.code) } " · " (lang.t("expires")) " " (time(shown.expires)) }
                    p.muted { (lang.t("scan_hint")) }
                }
            }
            form.card method="post" action="/console/codes" {
                input type="hidden" name="_csrf" value=(csrf);
                label { (lang.t("engineer_id")) " " input name="engineer_id" required; }
                button type="submit" { (lang.t("new_code")) }
            }
            table {
                thead { tr { th scope="col" { (lang.t("device")) } th scope="col" { (lang.t("engineer")) } th scope="col" { (lang.t("last_sync")) } th scope="col" { (lang.t("journal")) } th scope="col" { (lang.t("attested")) } th scope="col" { (lang.t("status")) } } }
                tbody {
                    @for d in &devices {
                        tr {
                            td { code { (d.id) } }
                            td { (d.engineer_id) }
                            td.last-sync { @match d.last_seen_ms { Some(t) => (time(t)), None => (lang.t("never")) } }
                            td { (d.journal_seq) }
                            td { (if d.attestation.is_some() { "✓" } else { lang.t("none") }) }
                            td {
                                @if d.revoked { (lang.t("revoked")) } @else {
                                    (lang.t("active")) " "
                                    form.inline method="post" action={ "/console/devices/" (d.id) "/revoke" } {
                                        input type="hidden" name="_csrf" value=(csrf);
                                        button.danger type="submit" { (lang.t("revoke")) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    })
}

#[derive(Deserialize)]
pub struct NewCode {
    #[serde(rename = "_csrf")]
    csrf: String,
    engineer_id: String,
}

/// A code is shown once, on the page that answers the form (it is never stored in clear).
pub async fn new_code(State(svc): Svc, Signed(s): Signed, headers: HeaderMap, Form(f): Form<NewCode>) -> Page {
    let lang = lang(&headers);
    let s = dispatcher(s, lang)?;
    check_form(&svc, &s, &headers, &f.csrf).map_err(|e| Fail(e, lang))?;
    let provider = s.provider.clone();
    let engineer = f.engineer_id.trim().to_string();
    let e2 = engineer.clone();
    let svc2 = svc.clone();
    let (code, expires) = blocking(lang, move || svc2.create_code(&provider, &e2, None)).await?;
    devices_view(svc, s, lang, &headers, Some(CodeShown { code, engineer, expires })).await
}

pub async fn revoke(State(svc): Svc, Signed(s): Signed, headers: HeaderMap, Path(id): Path<String>, Form(f): Form<CsrfOnly>) -> Page {
    let lang = lang(&headers);
    let s = dispatcher(s, lang)?;
    check_form(&svc, &s, &headers, &f.csrf).map_err(|e| Fail(e, lang))?;
    let provider = s.provider.clone();
    blocking(lang, move || svc.revoke_device(&provider, &id)).await?;
    Ok(Redirect::to("/console/devices").into_response())
}

pub async fn experts_page(State(svc): Svc, Signed(s): Signed, headers: HeaderMap) -> Page {
    let lang = lang(&headers);
    let s = dispatcher(s, lang)?;
    let (svc2, provider) = (svc.clone(), s.provider.clone());
    let (experts, requests) = blocking(lang, move || Ok((svc2.storage().experts(&provider)?, svc2.help_list(&provider, None)?))).await?;
    signed_page(lang, &s, &svc, lang.t("experts"), |csrf| {
        html! {
            h1 { (lang.t("experts")) }
            table {
                thead { tr { th scope="col" { "ID" } th scope="col" { (lang.t("name")) } th scope="col" { (lang.t("category")) } th scope="col" { (lang.t("brand")) } th scope="col" { (lang.t("fee")) } th scope="col" { (lang.t("inbox")) } } }
                tbody {
                    @for e in &experts {
                        tr {
                            td { (e.id) } td { (e.name) } td { (e.categories.join(", ")) } td { (e.brands.join(", ")) } td { (e.fee_cents) }
                            td { (requests.iter().filter(|r| r.expert_id.as_deref() == Some(e.id.as_str()) && r.status != "answered").count()) }
                        }
                    }
                }
            }
            form.card.grid method="post" action="/console/experts" {
                h2 { (lang.t("add_expert")) }
                input type="hidden" name="_csrf" value=(csrf);
                (field(lang, "engineer_id", "id", true))
                (field(lang, "name", "name", true))
                (field(lang, "categories", "categories", false))
                (field(lang, "brands", "brands", false))
                label { (lang.t("fee")) " " input name="fee_cents" type="number" min="0" value="0" required; }
                button type="submit" { (lang.t("add_expert")) }
            }
        }
    })
}

#[derive(Deserialize)]
pub struct NewExpert {
    #[serde(rename = "_csrf")]
    csrf: String,
    id: String,
    name: String,
    #[serde(default)]
    categories: String,
    #[serde(default)]
    brands: String,
    fee_cents: i64,
}

fn list(s: &str) -> Vec<String> {
    s.split([',', '，']).map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect()
}

/// Registers an expert and shows its token once (as the API does).
pub async fn add_expert(State(svc): Svc, Signed(s): Signed, headers: HeaderMap, Form(f): Form<NewExpert>) -> Page {
    let lang = lang(&headers);
    let s = dispatcher(s, lang)?;
    check_form(&svc, &s, &headers, &f.csrf).map_err(|e| Fail(e, lang))?;
    let (svc2, provider) = (svc.clone(), s.provider.clone());
    let input =
        ExpertInput { id: f.id.trim().into(), name: f.name.trim().into(), categories: list(&f.categories), brands: list(&f.brands), fee_cents: f.fee_cents };
    let token = blocking(lang, move || svc2.add_expert(&provider, input)).await?;
    signed_page(lang, &s, &svc, lang.t("experts"), |_| {
        html! {
            h1 { (lang.t("experts")) }
            p { (lang.t("expert_token")) } p { code id="expert-token" { (token) } }
            p { a href="/console/experts" { (lang.t("back")) } }
        }
    })
}

#[derive(Deserialize, Default)]
pub struct LedgerQuery {
    #[serde(default)]
    engineer: String,
}

pub async fn parts_page(State(svc): Svc, Signed(s): Signed, headers: HeaderMap, Query(q): Query<LedgerQuery>) -> Page {
    let lang = lang(&headers);
    let s = dispatcher(s, lang)?;
    let (svc2, provider, engineer) = (svc.clone(), s.provider.clone(), q.engineer.trim().to_string());
    let ledger = if engineer.is_empty() { None } else { Some(blocking(lang, move || svc2.parts_ledger(&provider, &engineer)).await?) };
    signed_page(lang, &s, &svc, lang.t("clerk"), |csrf| {
        html! {
            h1 { (lang.t("clerk")) }
            form.filters method="get" action="/console/parts" {
                label { (lang.t("engineer_id")) " " input name="engineer" value=(q.engineer); }
                button type="submit" { (lang.t("filter")) }
            }
            @if let Some(l) = &ledger {
                h2 { (lang.t("held")) }
                ul { @for h in l.held() { li { (h.part_number) " ×" (h.quantity) @if let Some(sn) = &h.serial { " · " (sn) } @if let Some(o) = &h.order_id { " · " (o) } } } }
                h2 { (lang.t("owed")) }
                ul { @for p in &l.pending_returns { li { (p.part_number) " ×" (p.quantity) @if let Some(sn) = &p.serial { " · " (sn) } } } }
            }
            form.card.grid method="post" action="/console/parts" {
                input type="hidden" name="_csrf" value=(csrf);
                label { (lang.t("engineer_id")) " " input name="engineer_id" required value=(q.engineer); }
                label { (lang.t("event")) " " select name="kind" { option value="issue" { (lang.t("issue")) } option value="receive" { (lang.t("receive")) } } }
                (field(lang, "part_number", "part_number", true))
                (field(lang, "serial", "serial", false))
                label { (lang.t("quantity")) " " input name="quantity" type="number" min="1" value="1"; }
                (field(lang, "order_id", "order_id", false))
                button type="submit" { (lang.t("submit")) }
            }
        }
    })
}

#[derive(Deserialize)]
pub struct ClerkForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    engineer_id: String,
    kind: String,
    part_number: String,
    #[serde(default)]
    serial: String,
    #[serde(default)]
    quantity: Option<u32>,
    #[serde(default)]
    order_id: String,
}

pub async fn clerk(State(svc): Svc, Signed(s): Signed, headers: HeaderMap, Form(f): Form<ClerkForm>) -> Page {
    let lang = lang(&headers);
    let s = dispatcher(s, lang)?;
    check_form(&svc, &s, &headers, &f.csrf).map_err(|e| Fail(e, lang))?;
    let provider = s.provider.clone();
    let engineer = f.engineer_id.trim().to_string();
    let opt = |v: &str| (!v.trim().is_empty()).then(|| v.trim().to_string());
    let m = ClerkMovement {
        engineer_id: engineer.clone(),
        kind: f.kind.clone(),
        part_number: f.part_number.trim().into(),
        serial: opt(&f.serial),
        quantity: f.quantity.unwrap_or(1),
        order_id: opt(&f.order_id),
        clerk: "console".into(),
        note: String::new(),
    };
    blocking(lang, move || svc.clerk_movement(&provider, m)).await?;
    Ok(Redirect::to(&format!("/console/parts?engineer={}", super::order::urlencode(&engineer))).into_response())
}
