//! The web console (`/console/`, docs/adr/0021): server-rendered HTML (maud escapes every
//! value it prints), one stylesheet and two scripts embedded in the binary, no inline script
//! (the Content-Security-Policy forbids it), live board updates over SSE. Pages authorize like
//! the API: a dispatcher session sees its provider, an expert session only its requests.
//!
//! Rooms: `session` (signed cookie, CSRF), `i18n` (zh-CN default, English), `board` (the
//! board, its rows fragment and the SSE stream), `order` (one order's page and its actions),
//! `admin` (new orders, devices and enrolment codes, experts, parts desk), `expert` (inbox and
//! answers). The verifier page (`/console/verify`) runs `assets/verify*.js` in the browser.

mod admin;
mod board;
mod expert;
pub mod i18n;
mod order;
pub mod session;

use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use serde::Deserialize;

use crate::service::Error;
use crate::Service;
use i18n::Lang;
use session::{Session, Signed};

type Svc = State<Arc<Service>>;

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");
const VERIFY_JS: &str = include_str!("assets/verify.js");
const VERIFY_BUNDLE_JS: &str = include_str!("assets/verify-bundle.js");
const VERIFY_RECORD_JS: &str = include_str!("assets/verify-record.js");
const VERIFY_PAGE_JS: &str = include_str!("assets/verify-page.js");

/// Every page: no inline script or style, nothing from another origin, never framed.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; \
                       form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub fn routes() -> Router<Arc<Service>> {
    Router::new()
        .route("/console", get(|| async { Redirect::permanent("/console/") }))
        .route("/console/", get(board::page))
        .route("/console/board/rows", get(board::rows))
        .route("/console/board/engineers", get(board::engineers_fragment))
        .route("/console/events", get(board::events))
        .route("/console/signin", get(signin_page).post(signin))
        .route("/console/signout", post(signout))
        .route("/console/lang", get(set_lang))
        .route("/console/orders/new", get(admin::new_order_page).post(admin::create_orders))
        .route("/console/orders/{id}", get(order::page))
        .route("/console/orders/{id}/{action}", post(order::action))
        .route("/console/orders/{id}/receipts/{revision}", get(order::customer_copy))
        .route("/console/blobs/{sha}", get(order::blob))
        .route("/console/devices", get(admin::devices_page))
        .route("/console/devices/{id}/revoke", post(admin::revoke))
        .route("/console/codes", post(admin::new_code))
        .route("/console/experts", get(admin::experts_page).post(admin::add_expert))
        .route("/console/parts", get(admin::parts_page).post(admin::clerk))
        .route("/console/help", get(expert::inbox))
        .route(
            "/console/help/{id}",
            get(expert::request)
                .post(expert::answer)
                .layer(axum::extract::DefaultBodyLimit::max(expert::MAX_REFERENCE_PHOTOS * expert::MAX_REFERENCE_BYTES + 64 * 1024)),
        )
        .route("/console/verify", get(verify_page))
        .route("/console/verify/offline.html", get(verify_offline))
        .route("/console/assets/verify.js", get(|| asset("text/javascript; charset=utf-8", VERIFY_JS)))
        .route("/console/assets/verify-bundle.js", get(|| asset("text/javascript; charset=utf-8", VERIFY_BUNDLE_JS)))
        .route("/console/assets/verify-record.js", get(|| asset("text/javascript; charset=utf-8", VERIFY_RECORD_JS)))
        .route("/console/assets/verify-page.js", get(|| asset("text/javascript; charset=utf-8", VERIFY_PAGE_JS)))
        .route("/console/assets/console.css", get(|| asset("text/css; charset=utf-8", CSS)))
        .route("/console/assets/console.js", get(|| asset("text/javascript; charset=utf-8", JS)))
        .layer(middleware::from_fn(security_headers))
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    // A page that set a stricter policy of its own (the customer copy) keeps it.
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    }
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// A page's failure: no session → the sign-in page; anything else → an HTML page saying what
/// went wrong, with the API's status code.
pub struct Fail(pub Error, pub Lang);

impl From<(Error, Lang)> for Fail {
    fn from((e, l): (Error, Lang)) -> Self {
        Fail(e, l)
    }
}

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        let Fail(e, lang) = self;
        let status = match &e {
            Error::Unauthorized => return Redirect::to("/console/signin").into_response(),
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict { .. } => StatusCode::CONFLICT,
            Error::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            Error::Internal(_) => {
                tracing::error!(error = %e, "console request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let body = html! {
            h1 { (lang.t("error")) }
            p.error role="alert" { (status.as_u16()) " — " (e) }
            p { a href="/console/" { (lang.t("back")) } }
        };
        (status, layout(lang, None, lang.t("error"), body)).into_response()
    }
}

pub type Page = Result<Response, Fail>;

pub fn lang(headers: &HeaderMap) -> Lang {
    Lang::from_cookie(session::lang_cookie(headers))
}

/// Runs `f` on the blocking pool (storage reads, document loads).
pub async fn blocking<T: Send + 'static>(lang: Lang, f: impl FnOnce() -> Result<T, Error> + Send + 'static) -> Result<T, Fail> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| Fail(e, lang)),
        Err(e) => Err(Fail(Error::Internal(format!("worker failed: {e}")), lang)),
    }
}

/// The frame of every page: header with navigation for the session's role, the language
/// switch and sign-out, then `body` in `<main>`.
pub fn layout(lang: Lang, who: Option<(&Session, &str)>, title: &str, body: Markup) -> Markup {
    let (other, other_name) = lang.other();
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (lang.t("app")) }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/console/" { (lang.t("app")) }
                    nav aria-label=(lang.t("app")) {
                        @if let Some((s, _)) = who {
                            @if s.is_dispatcher() {
                                a href="/console/" { (lang.t("board")) }
                                a href="/console/orders/new" { (lang.t("new_order")) }
                                a href="/console/devices" { (lang.t("devices")) }
                                a href="/console/experts" { (lang.t("experts")) }
                                a href="/console/parts" { (lang.t("clerk")) }
                            } @else {
                                a href="/console/help" { (lang.t("inbox")) }
                            }
                        }
                        a href="/console/verify" { (lang.t("verify")) }
                    }
                    span.spacer {}
                    a.lang href={ "/console/lang?to=" (other) } lang=(if other == "en" { "en" } else { "zh-CN" }) { (other_name) }
                    @if let Some((s, csrf)) = who {
                        span.who { (s.provider) @if !s.expert.is_empty() { " · " (s.expert) } }
                        form.inline method="post" action="/console/signout" {
                            input type="hidden" name="_csrf" value=(csrf);
                            button type="submit" { (lang.t("sign_out")) }
                        }
                    }
                }
                main id="main" { (body) }
            }
        }
    }
}

/// A page for a signed-in user: the layout with its navigation and CSRF token.
pub fn signed_page(lang: Lang, s: &Session, svc: &Service, title: &str, body: impl FnOnce(&str) -> Markup) -> Page {
    let csrf = s.csrf(svc.console_key()).map_err(|e| Fail(e, lang))?;
    let page = layout(lang, Some((s, &csrf)), title, body(&csrf));
    Ok(page.into_response())
}

/// A form's CSRF token must be the session's, and a browser that says where the form came
/// from must say this host.
pub fn check_form(svc: &Service, s: &Session, headers: &HeaderMap, csrf: &str) -> Result<(), Error> {
    same_origin(headers)?;
    s.check_csrf(svc.console_key(), csrf)
}

/// A browser that says where a form came from must say this host (`Origin: null`, sent for
/// opaque origins, is another origin).
fn same_origin(headers: &HeaderMap) -> Result<(), Error> {
    if let (Some(origin), Some(host)) = (headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()), headers.get(header::HOST).and_then(|v| v.to_str().ok())) {
        let origin_host = origin.split("://").nth(1).unwrap_or(origin);
        if origin_host != host {
            return Err(Error::Forbidden(format!("a form from {origin} is not this console's")));
        }
    }
    Ok(())
}

async fn signin_page(headers: HeaderMap) -> Response {
    signin_form(lang(&headers), None, StatusCode::OK)
}

fn signin_form(lang: Lang, problem: Option<String>, status: StatusCode) -> Response {
    let body = html! {
        h1 { (lang.t("sign_in")) }
        @if let Some(p) = problem { p.error role="alert" { (p) } }
        form.card method="post" action="/console/signin" {
            label for="token" { (lang.t("token_hint")) }
            input id="token" name="token" type="password" autocomplete="current-password" required;
            button type="submit" { (lang.t("sign_in")) }
        }
    };
    (status, layout(lang, None, lang.t("sign_in"), body)).into_response()
}

#[derive(Deserialize)]
struct SignIn {
    token: String,
}

/// Sign-in: failed tokens count against the caller's address like the API's (429 past the
/// limit), a good one sets the session cookie.
async fn signin(State(svc): Svc, client: crate::http::ClientIp, headers: HeaderMap, Form(f): Form<SignIn>) -> Response {
    let lang = lang(&headers);
    // Another site cannot sign a browser in (to an account of its choosing).
    if let Err(e) = same_origin(&headers) {
        return Fail(e, lang).into_response();
    }
    if let Err(e) = svc.limiter().check(client.0) {
        return signin_form(lang, Some(e.to_string()), StatusCode::TOO_MANY_REQUESTS);
    }
    let s = svc.clone();
    let out = tokio::task::spawn_blocking(move || Session::sign_in(&s, &f.token).and_then(|session| session.seal(s.console_key())))
        .await
        .unwrap_or_else(|e| Err(Error::Internal(format!("worker failed: {e}"))));
    match out {
        Ok(cookie) => {
            let mut resp = Redirect::to("/console/").into_response();
            if let Ok(v) = HeaderValue::from_str(&session::set_cookie(&cookie, session::SESSION_MS / 1000, &headers)) {
                resp.headers_mut().insert(header::SET_COOKIE, v);
            }
            resp
        }
        Err(Error::Unauthorized) => {
            svc.limiter().fail(client.0);
            let msg = if lang == Lang::En { "That token opens nothing here." } else { "令牌无效。" };
            signin_form(lang, Some(msg.into()), StatusCode::UNAUTHORIZED)
        }
        Err(e) => Fail(e, lang).into_response(),
    }
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    #[serde(rename = "_csrf")]
    pub csrf: String,
}

async fn signout(State(svc): Svc, Signed(s): Signed, headers: HeaderMap, Form(f): Form<CsrfOnly>) -> Page {
    check_form(&svc, &s, &headers, &f.csrf).map_err(|e| Fail(e, lang(&headers)))?;
    let mut resp = Redirect::to("/console/signin").into_response();
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie("", 0, &headers)) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(resp)
}

#[derive(Deserialize)]
struct LangQuery {
    to: String,
}

/// Switches the language and goes back to the board (the cookie only picks words).
async fn set_lang(Query(q): Query<LangQuery>) -> Response {
    let v = if q.to == "en" { "en" } else { "zh" };
    let mut resp = Redirect::to("/console/").into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("{}={v}; Path=/console; SameSite=Strict; Max-Age=31536000", i18n::LANG_COOKIE)) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// The risk texts of the built-in templates' consent steps, as JSON: the verifier shows the
/// exact text beside a consent only when its SHA-256 is the one the customer's consent binds.
fn risk_texts() -> &'static str {
    static TEXTS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXTS.get_or_init(|| match onsite_core::sop::builtin_consent_texts() {
        Ok(texts) => serde_json::to_string(&texts).unwrap_or_else(|_| "[]".into()),
        Err(e) => {
            tracing::error!(error = %e, "the built-in templates do not parse; the verifier shows consents by hash only");
            "[]".into()
        }
    })
}

fn verifier(lang: Lang, log_key: Option<String>, authority: Option<String>) -> Markup {
    html! {
        h1 { (lang.t("verify")) }
        p.muted.noprint { (lang.t("verify_hint")) " " a href="/console/verify/offline.html" download="onsite-verify.html" { (lang.t("verify_offline")) } }
        div id="verifier" data-lang=(if lang == Lang::En { "en" } else { "zh" }) data-log-key=[log_key] data-authority=[authority] data-risks=(risk_texts()) {}
    }
}

/// The verifier page: the bundle is checked in the browser (assets/verify*.js); nothing is
/// sent. A signed-in user's page comes with this server's log and time-authority keys pinned.
async fn verify_page(State(svc): Svc, signed: Result<Signed, Fail>, headers: HeaderMap) -> Response {
    let lang = lang(&headers);
    let signed_in = signed.is_ok();
    let log_key = signed_in.then(|| onsite_core::hash::hex(&svc.log_key()));
    let authority = signed_in.then(|| onsite_core::hash::hex(&svc.time_authority_key()));
    let body = html! {
        (verifier(lang, log_key, authority))
        script src="/console/assets/verify.js" defer {}
        script src="/console/assets/verify-bundle.js" defer {}
        script src="/console/assets/verify-record.js" defer {}
        script src="/console/assets/verify-page.js" defer {}
    };
    layout(lang, None, lang.t("verify"), body).into_response()
}

/// The same verifier as one self-contained file to keep and open offline (a download: it is
/// never rendered from this origin, where inline script would be refused anyway).
async fn verify_offline(headers: HeaderMap) -> Response {
    let lang = lang(&headers);
    let page = html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                title { (lang.t("verify")) " · " (lang.t("app")) }
                style { (PreEscaped(CSS)) }
            }
            body {
                main id="main" { (verifier(lang, None, None)) }
                script { (PreEscaped(VERIFY_JS)) }
                script { (PreEscaped(VERIFY_BUNDLE_JS)) }
                script { (PreEscaped(VERIFY_RECORD_JS)) }
                script { (PreEscaped(VERIFY_PAGE_JS)) }
            }
        }
    };
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CONTENT_DISPOSITION, "attachment; filename=\"onsite-verify.html\"")], page.into_string())
        .into_response()
}

/// Unix ms as China time (UTC+8, no daylight saving), which is what the console's users read.
pub fn time(ms: i64) -> String {
    let (Some(t), Some(tz)) = (chrono::DateTime::from_timestamp_millis(ms), chrono::FixedOffset::east_opt(8 * 3600)) else {
        return ms.to_string();
    };
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string()
}
