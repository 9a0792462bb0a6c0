//! The expert's side: the inbox of requests routed to the signed-in expert, one request with
//! only what the engineer shared, and the answer form (text and suggested steps; the answer
//! goes into the order and reaches the engineer's device by sync). `Service::help_view`
//! refuses requests routed to anyone else.

use axum::extract::{Multipart, Path};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect};
use maud::html;

use super::i18n::Lang;
use super::session::Signed;
use super::{blocking, check_form, lang, signed_page, time, Fail, Page, Svc};
use crate::service::{AnswerInput, Error};
use crate::storage::ExpertRow;

/// The signed-in expert's row (a dispatcher session is refused: the inbox is the expert's).
async fn expert(svc: &Svc, s: super::session::Session, lang: Lang) -> Result<(super::session::Session, ExpertRow), Fail> {
    if s.is_dispatcher() {
        return Err(Fail(Error::Forbidden("the help inbox is an expert's".into()), lang));
    }
    let (svc, provider, id) = (svc.0.clone(), s.provider.clone(), s.expert.clone());
    let row = blocking(lang, move || svc.storage().experts(&provider)?.into_iter().find(|e| e.id == id).ok_or(Error::Unauthorized)).await?;
    Ok((s, row))
}

pub async fn inbox(svc: Svc, Signed(s): Signed, headers: HeaderMap) -> Page {
    let lang = lang(&headers);
    let (s, e) = expert(&svc, s, lang).await?;
    let svc2 = svc.0.clone();
    let rows = blocking(lang, move || svc2.help_list(&e.provider, Some(&e.id))).await?;
    signed_page(lang, &s, &svc.0, lang.t("inbox"), |_| {
        html! {
            h1 { (lang.t("inbox")) }
            table {
                thead { tr { th scope="col" { (lang.t("question")) } th scope="col" { (lang.t("order")) } th scope="col" { (lang.t("when")) } th scope="col" { (lang.t("status")) } } }
                tbody {
                    @for r in &rows {
                        tr data-request=(r.id) {
                            td { a href={ "/console/help/" (super::order::urlencode(&r.id)) } { (r.id) } }
                            td { (r.order_id) }
                            td { (time(r.created_at)) }
                            td { (r.status) }
                        }
                    }
                }
            }
        }
    })
}

pub async fn request(svc: Svc, Signed(s): Signed, headers: HeaderMap, Path(id): Path<String>) -> Page {
    let lang = lang(&headers);
    let (s, e) = expert(&svc, s, lang).await?;
    let svc2 = svc.0.clone();
    let view = blocking(lang, move || svc2.help_view(&e, &id)).await?;
    let answered = view.request.status == "answered";
    signed_page(lang, &s, &svc.0, lang.t("question"), |csrf| {
        html! {
            h1 { (lang.t("question")) " " small { (view.request.id) } }
            section.card aria-labelledby="h-shared" {
                h2 id="h-shared" { (lang.t("shared")) }
                dl.facts {
                    dt { (lang.t("equipment")) } dd { (view.equipment) }
                    dt { (lang.t("question")) } dd id="question" { (view.question) }
                    @if let Some(st) = &view.step { dt { (lang.t("step")) } dd { code { (st) } } }
                    @if let Some(f) = &view.fault { dt { (lang.t("fault")) } dd { (f) } }
                    @if !view.notes.is_empty() { dt { (lang.t("notes")) } dd { ul { @for n in &view.notes { li { (n) } } } } }
                }
                ul.photos {
                    @for p in &view.photos {
                        li { a href={ "/console/blobs/" (p) } { img src={ "/console/blobs/" (p) } alt=(lang.t("photos")) width="160" loading="lazy"; } }
                    }
                }
            }
            @if answered { p.ok { (lang.t("expert_answer")) " ✓" } }
            form.card method="post" enctype="multipart/form-data" action={ "/console/help/" (super::order::urlencode(&view.request.id)) } {
                input type="hidden" name="_csrf" value=(csrf);
                label for="answer-text" { (lang.t("text")) }
                textarea id="answer-text" name="text" rows="5" required maxlength="4000" {}
                label for="answer-steps" { (lang.t("suggested_steps")) }
                textarea id="answer-steps" name="steps" rows="4" {}
                label for="answer-photos" { (lang.t("reference_photos")) }
                input id="answer-photos" name="photos" type="file" accept="image/jpeg,image/png,image/webp" multiple;
                button type="submit" { (lang.t("send_answer")) }
            }
        }
    })
}

/// Reference photos an answer may carry, and their size.
pub const MAX_REFERENCE_PHOTOS: usize = 4;
pub const MAX_REFERENCE_BYTES: usize = onsite_core::sync::protocol::MAX_BLOB_CHUNK;

/// The answer form (multipart: text, suggested steps, up to four reference photos). The
/// photos are stored content-addressed like any blob, after the CSRF token was checked, and
/// only if their bytes are an image.
pub async fn answer(svc: Svc, Signed(s): Signed, headers: HeaderMap, Path(id): Path<String>, mut form: Multipart) -> Page {
    let lang = lang(&headers);
    let (s, e) = expert(&svc, s, lang).await?;
    let bad = |m: String| Fail(Error::BadRequest(m), lang);
    let (mut csrf, mut text, mut steps, mut photos) = (String::new(), String::new(), String::new(), Vec::new());
    while let Some(field) = form.next_field().await.map_err(|e| bad(format!("the form: {e}")))? {
        let name = field.name().unwrap_or("").to_string();
        let is_file = field.file_name().is_some_and(|f| !f.is_empty());
        let bytes = field.bytes().await.map_err(|e| bad(format!("the form: {e}")))?;
        match name.as_str() {
            "_csrf" => csrf = String::from_utf8_lossy(&bytes).into_owned(),
            "text" => text = String::from_utf8_lossy(&bytes).into_owned(),
            "steps" => steps = String::from_utf8_lossy(&bytes).into_owned(),
            "photos" if is_file && !bytes.is_empty() => {
                if photos.len() == MAX_REFERENCE_PHOTOS {
                    return Err(bad(format!("at most {MAX_REFERENCE_PHOTOS} reference photos")));
                }
                if bytes.len() > MAX_REFERENCE_BYTES || super::order::image_type(&bytes).is_none() {
                    return Err(bad(format!("a reference photo is a JPEG, PNG or WebP of at most {MAX_REFERENCE_BYTES} bytes")));
                }
                photos.push(bytes.to_vec());
            }
            _ => {}
        }
    }
    check_form(&svc.0, &s, &headers, &csrf).map_err(|e| Fail(e, lang))?;
    let suggested = steps.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
    let (svc2, rid) = (svc.0.clone(), id.clone());
    blocking(lang, move || {
        let mut reference_photos = Vec::new();
        for bytes in photos {
            let sha = onsite_core::hash::sha256_hex(&bytes);
            svc2.blob_put(&e.provider, &sha, 0, bytes.len() as u64, &bytes)?;
            reference_photos.push(sha);
        }
        svc2.help_answer(&e, &rid, AnswerInput { text, suggested_steps: suggested, reference_photos, step: None })
    })
    .await?;
    Ok(Redirect::to(&format!("/console/help/{}", super::order::urlencode(&id))).into_response())
}
