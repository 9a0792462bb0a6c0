//! HTTP: thin handlers that authenticate, decode, call [`Service`] on the blocking pool and
//! encode. Bodies up to 48 MiB; `Content-Encoding: deflate` accepted and, when asked for,
//! returned on sync and journal answers.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use onsite_core::sync::protocol::{self, EnrolRequest, ErrorBody};
use serde::Deserialize;

use crate::service::{Error, Service};

const BODY_LIMIT: usize = 48 * 1024 * 1024;
const INFLATED_LIMIT: usize = 64 * 1024 * 1024;

type Svc = State<Arc<Service>>;

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            Error::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Error::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Error::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Error::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Error::Conflict { .. } => (StatusCode::CONFLICT, "conflict"),
            Error::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable"),
            Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let (acked_seq, offset) = match &self {
            Error::Conflict { acked_seq, offset, .. } => (*acked_seq, *offset),
            _ => (None, None),
        };
        let body = ErrorBody { error: code.into(), reason: self.to_string(), acked_seq };
        let mut resp = (status, Json(body)).into_response();
        if let Some(o) = offset.and_then(|o| HeaderValue::from_str(&o.to_string()).ok()) {
            resp.headers_mut().insert(protocol::UPLOAD_OFFSET, o);
        }
        resp
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(|t| t.trim().to_string())
}

/// Runs `f` on the blocking pool (SQLite and hashing must not stall the reactor).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, Error> + Send + 'static) -> Result<T, Error> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::Internal(format!("worker failed: {e}")))?
}

fn body_bytes(headers: &HeaderMap, body: Bytes) -> Result<Vec<u8>, Error> {
    match headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()) {
        None | Some("identity") => Ok(body.to_vec()),
        Some("deflate") => protocol::inflate(&body, INFLATED_LIMIT).map_err(|e| Error::BadRequest(format!("body: {e}"))),
        Some(other) => Err(Error::BadRequest(format!("unsupported content-encoding `{other}`"))),
    }
}

fn wants_deflate(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok()).is_some_and(|v| v.split(',').any(|e| e.trim() == "deflate"))
}

fn encoded(headers: &HeaderMap, content_type: &'static str, body: Vec<u8>) -> Response {
    let deflate = wants_deflate(headers);
    let body = if deflate { protocol::deflate(&body) } else { body };
    let mut resp = (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response();
    if deflate {
        resp.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("deflate"));
    }
    resp
}

fn json<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::BadRequest(format!("JSON: {e}")))
}

pub fn router(service: Arc<Service>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/v1/admin/providers", post(create_provider))
        .route("/v1/enrolment-codes", post(create_code))
        .route("/v1/devices", get(list_devices))
        .route("/v1/devices/{id}/revoke", post(revoke_device))
        .route("/v1/orders", post(create_orders).get(list_orders))
        .route("/v1/orders/{id}", get(get_order))
        .route("/v1/orders/{id}/assign", post(assign))
        .route("/v1/orders/{id}/cancel", post(cancel))
        .route("/v1/orders/{id}/priority", post(priority))
        .route("/v1/log/checkpoint", get(checkpoint))
        .route("/v1/enrol", post(enrol))
        .route("/v1/sync", post(sync))
        .route("/v1/journal", post(journal))
        .route("/v1/blobs/{sha}", get(get_blob).head(head_blob).put(put_blob))
        .route("/v1/parts/movements", post(clerk_movement))
        .route("/v1/parts/ledger", get(parts_ledger))
        .route("/v1/orders/{id}/close", post(close_order))
        .route("/v1/experts", post(add_expert))
        .route("/v1/help", get(help_list))
        .route("/v1/help/{id}", get(help_view))
        .route("/v1/help/{id}/answer", post(help_answer))
        .route("/v1/certifications", post(certify))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(service.clone(), count))
        .with_state(service)
}

async fn count(State(svc): Svc, req: Request, next: Next) -> Response {
    svc.metrics.requests.inc();
    let resp = next.run(req).await;
    if resp.status().is_client_error() {
        svc.metrics.errors_4xx.inc();
    } else if resp.status().is_server_error() {
        svc.metrics.errors_5xx.inc();
    }
    resp
}

async fn health(State(svc): Svc) -> Result<Json<serde_json::Value>, Error> {
    let s = svc.clone();
    let seq = blocking(move || Ok(s.storage.max_seq()?)).await?;
    Ok(Json(serde_json::json!({ "ok": true, "version": env!("CARGO_PKG_VERSION"), "feed_seq": seq })))
}

async fn metrics(State(svc): Svc) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], svc.metrics.render())
}

#[derive(Deserialize)]
struct NewProvider {
    id: String,
    name: String,
}

async fn create_provider(State(svc): Svc, headers: HeaderMap, body: Bytes) -> Result<Json<serde_json::Value>, Error> {
    svc.check_admin(bearer(&headers).as_deref())?;
    let p: NewProvider = json(&body)?;
    let token = blocking(move || svc.create_provider(&p.id, &p.name).map(|t| (p.id, t))).await?;
    Ok(Json(serde_json::json!({ "id": token.0, "dispatcher_token": token.1 })))
}

#[derive(Deserialize)]
struct NewCode {
    engineer_id: String,
    #[serde(default)]
    ttl_minutes: Option<i64>,
}

async fn create_code(State(svc): Svc, headers: HeaderMap, body: Bytes) -> Result<Json<serde_json::Value>, Error> {
    let token = bearer(&headers);
    let req: NewCode = json(&body)?;
    let (code, expires) = blocking(move || {
        let provider = svc.dispatcher(token.as_deref())?;
        svc.create_code(&provider, &req.engineer_id, req.ttl_minutes.map(|m| m * 60_000))
    })
    .await?;
    Ok(Json(serde_json::json!({ "code": code, "expires_at_ms": expires })))
}

async fn list_devices(State(svc): Svc, headers: HeaderMap) -> Result<Json<serde_json::Value>, Error> {
    let token = bearer(&headers);
    let devices = blocking(move || {
        let provider = svc.dispatcher(token.as_deref())?;
        Ok(svc.storage.devices(&provider)?)
    })
    .await?;
    let list: Vec<_> = devices
        .iter()
        .map(|d| serde_json::json!({ "id": d.id, "engineer_id": d.engineer_id, "revoked": d.revoked, "journal_seq": d.journal_seq }))
        .collect();
    Ok(Json(serde_json::Value::Array(list)))
}

async fn revoke_device(State(svc): Svc, headers: HeaderMap, Path(id): Path<String>) -> Result<StatusCode, Error> {
    let token = bearer(&headers);
    blocking(move || {
        let provider = svc.dispatcher(token.as_deref())?;
        svc.revoke_device(&provider, &id)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn create_orders(State(svc): Svc, headers: HeaderMap, body: Bytes) -> Result<(StatusCode, Json<serde_json::Value>), Error> {
    let token = bearer(&headers);
    let text = String::from_utf8(body_bytes(&headers, body)?).map_err(|_| Error::BadRequest("the body is not UTF-8".into()))?;
    let ids = blocking(move || {
        let provider = svc.dispatcher(token.as_deref())?;
        svc.create_orders(&provider, &text)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "created": ids }))))
}

#[derive(Deserialize)]
struct ListQuery {
    engineer: Option<String>,
}

async fn list_orders(State(svc): Svc, headers: HeaderMap, Query(q): Query<ListQuery>) -> Result<Json<serde_json::Value>, Error> {
    let token = bearer(&headers);
    let rows = blocking(move || {
        let provider = svc.dispatcher(token.as_deref())?;
        svc.orders(&provider, q.engineer.as_deref())
    })
    .await?;
    Ok(Json(serde_json::to_value(rows).map_err(|e| Error::Internal(e.to_string()))?))
}

async fn get_order(State(svc): Svc, headers: HeaderMap, Path(id): Path<String>) -> Result<Json<serde_json::Value>, Error> {
    let token = bearer(&headers);
    let order = blocking(move || {
        let provider = svc.dispatcher(token.as_deref())?;
        svc.order(&provider, &id)
    })
    .await?;
    Ok(Json(serde_json::to_value(order).map_err(|e| Error::Internal(e.to_string()))?))
}

#[derive(Deserialize)]
struct Assign {
    engineer_id: String,
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct Cancel {
    reason: String,
}

#[derive(Deserialize)]
struct SetPriority {
    priority: String,
}

async fn dispatcher_edit(
    svc: Arc<Service>,
    headers: &HeaderMap,
    f: impl FnOnce(&Service, &str) -> Result<onsite_core::WorkOrder, Error> + Send + 'static,
) -> Result<Json<serde_json::Value>, Error> {
    let token = bearer(headers);
    let order = blocking(move || {
        let provider = svc.dispatcher(token.as_deref())?;
        f(&svc, &provider)
    })
    .await?;
    Ok(Json(serde_json::to_value(order).map_err(|e| Error::Internal(e.to_string()))?))
}

async fn assign(State(svc): Svc, headers: HeaderMap, Path(id): Path<String>, body: Bytes) -> Result<Json<serde_json::Value>, Error> {
    let a: Assign = json(&body)?;
    dispatcher_edit(svc, &headers, move |s, p| s.assign(p, &id, &a.engineer_id, &a.name)).await
}

async fn cancel(State(svc): Svc, headers: HeaderMap, Path(id): Path<String>, body: Bytes) -> Result<Json<serde_json::Value>, Error> {
    let c: Cancel = json(&body)?;
    dispatcher_edit(svc, &headers, move |s, p| s.cancel(p, &id, &c.reason)).await
}

async fn priority(State(svc): Svc, headers: HeaderMap, Path(id): Path<String>, body: Bytes) -> Result<Json<serde_json::Value>, Error> {
    let c: SetPriority = json(&body)?;
    dispatcher_edit(svc, &headers, move |s, p| s.set_priority(p, &id, &c.priority)).await
}

async fn checkpoint(State(svc): Svc, headers: HeaderMap) -> Result<Json<serde_json::Value>, Error> {
    let token = bearer(&headers);
    let cp = blocking(move || {
        let provider = svc.dispatcher(token.as_deref())?;
        svc.checkpoint(&provider)
    })
    .await?;
    Ok(Json(serde_json::to_value(cp).map_err(|e| Error::Internal(e.to_string()))?))
}

async fn enrol(State(svc): Svc, body: Bytes) -> Result<Json<serde_json::Value>, Error> {
    let req: EnrolRequest = json(&body)?;
    let resp = blocking(move || svc.enrol(&req)).await?;
    Ok(Json(serde_json::to_value(resp).map_err(|e| Error::Internal(e.to_string()))?))
}

async fn sync(State(svc): Svc, headers: HeaderMap, body: Bytes) -> Result<Response, Error> {
    let token = bearer(&headers);
    svc.metrics.sync_requests.inc();
    svc.metrics.sync_bytes_in.add(body.len() as u64);
    let bytes = body_bytes(&headers, body)?;
    let s = svc.clone();
    let out = blocking(move || {
        let device = s.device(token.as_deref())?;
        let req = protocol::decode_request(&bytes).map_err(|e| Error::BadRequest(e.to_string()))?;
        let resp = s.sync(&device, req)?;
        protocol::encode(&resp).map_err(|e| Error::Internal(e.to_string()))
    })
    .await?;
    let resp = encoded(&headers, "application/cbor", out);
    if let Some(len) = resp.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok()) {
        svc.metrics.sync_bytes_out.add(len);
    }
    Ok(resp)
}

async fn journal(State(svc): Svc, headers: HeaderMap, body: Bytes) -> Result<Response, Error> {
    let token = bearer(&headers);
    let bytes = body_bytes(&headers, body)?;
    let out = blocking(move || {
        let device = svc.device(token.as_deref())?;
        let upload = protocol::decode_journal_upload(&bytes).map_err(|e| Error::BadRequest(e.to_string()))?;
        let ack = svc.journal(&device, upload)?;
        serde_json::to_vec(&ack).map_err(|e| Error::Internal(e.to_string()))
    })
    .await?;
    Ok(encoded(&headers, "application/json", out))
}

fn offset_headers(offset: u64, length: u64) -> [(&'static str, String); 2] {
    [(protocol::UPLOAD_OFFSET, offset.to_string()), (protocol::UPLOAD_LENGTH, length.to_string())]
}

async fn head_blob(State(svc): Svc, headers: HeaderMap, Path(sha): Path<String>) -> Result<Response, Error> {
    let token = bearer(&headers);
    let state = blocking(move || {
        let provider = svc.uploader(token.as_deref())?;
        svc.blob_state(&provider, &sha)
    })
    .await?;
    Ok(match state {
        Some((offset, length)) => (StatusCode::OK, offset_headers(offset, length)).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    })
}

fn header_u64(headers: &HeaderMap, name: &str) -> Result<u64, Error> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Error::BadRequest(format!("the `{name}` header is required")))
}

async fn put_blob(State(svc): Svc, headers: HeaderMap, Path(sha): Path<String>, body: Bytes) -> Result<Response, Error> {
    let token = bearer(&headers);
    let offset = header_u64(&headers, protocol::UPLOAD_OFFSET)?;
    let length = header_u64(&headers, protocol::UPLOAD_LENGTH)?;
    let (at, complete) = blocking(move || {
        let provider = svc.uploader(token.as_deref())?;
        svc.blob_put(&provider, &sha, offset, length, &body)
    })
    .await?;
    let status = if complete { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, offset_headers(at, length)).into_response())
}

async fn get_blob(State(svc): Svc, headers: HeaderMap, Path(sha): Path<String>) -> Result<Response, Error> {
    let token = bearer(&headers);
    let bytes = blocking(move || {
        let provider = svc.any_party(token.as_deref())?;
        svc.blob_bytes(&provider, &sha)
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Json<serde_json::Value>, Error> {
    Ok(Json(serde_json::to_value(v).map_err(|e| Error::Internal(e.to_string()))?))
}

async fn clerk_movement(State(svc): Svc, headers: HeaderMap, body: Bytes) -> Result<Json<serde_json::Value>, Error> {
    let token = bearer(&headers);
    let input: crate::service::ClerkMovement = json(&body)?;
    let m = blocking(move || {
        let provider = svc.dispatcher(token.as_deref())?;
        svc.clerk_movement(&provider, input)
    })
    .await?;
    to_json(&m)
}

#[derive(Deserialize)]
struct EngineerQuery {
    engineer: String,
}

async fn parts_ledger(State(svc): Svc, headers: HeaderMap, Query(q): Query<EngineerQuery>) -> Result<Json<serde_json::Value>, Error> {
    let token = bearer(&headers);
    let ledger = blocking(move || {
        let provider = svc.dispatcher(token.as_deref())?;
        svc.parts_ledger(&provider, &q.engineer)
    })
    .await?;
    let held: Vec<_> = ledger.held().into_iter().cloned().collect();
    to_json(&serde_json::json!({ "held": held, "pending_returns": ledger.pending_returns, "anomalies": ledger.anomalies }))
}

#[derive(Deserialize)]
struct CloseBody {
    #[serde(default)]
    by: String,
}

async fn close_order(State(svc): Svc, headers: HeaderMap, Path(id): Path<String>, body: Bytes) -> Result<Json<serde_json::Value>, Error> {
    let token = bearer(&headers);
    let c: CloseBody = if body.is_empty() { CloseBody { by: String::new() } } else { json(&body)? };
    let at = blocking(move || {
        let provider = svc.dispatcher(token.as_deref())?;
        let by = if c.by.trim().is_empty() { "coordinator".to_string() } else { c.by };
        svc.close_order(&provider, &id, &by)
    })
    .await?;
    to_json(&serde_json::json!({ "closed_at": at }))
}

async fn add_expert(State(svc): Svc, headers: HeaderMap, body: Bytes) -> Result<Json<serde_json::Value>, Error> {
    let token = bearer(&headers);
    let input: crate::service::ExpertInput = json(&body)?;
    let t = blocking(move || {
        let provider = svc.dispatcher(token.as_deref())?;
        svc.add_expert(&provider, input)
    })
    .await?;
    to_json(&serde_json::json!({ "token": t }))
}

async fn help_list(State(svc): Svc, headers: HeaderMap) -> Result<Json<serde_json::Value>, Error> {
    let token = bearer(&headers);
    let rows = blocking(move || match svc.expert(token.as_deref()) {
        Ok(e) => svc.help_list(&e.provider, Some(&e.id)),
        Err(_) => {
            let provider = svc.dispatcher(token.as_deref())?;
            svc.help_list(&provider, None)
        }
    })
    .await?;
    to_json(&rows)
}

async fn help_view(State(svc): Svc, headers: HeaderMap, Path(id): Path<String>) -> Result<Json<serde_json::Value>, Error> {
    let token = bearer(&headers);
    let v = blocking(move || {
        let e = svc.expert(token.as_deref())?;
        svc.help_view(&e, &id)
    })
    .await?;
    to_json(&v)
}

async fn help_answer(State(svc): Svc, headers: HeaderMap, Path(id): Path<String>, body: Bytes) -> Result<Json<serde_json::Value>, Error> {
    let token = bearer(&headers);
    let input: crate::service::AnswerInput = json(&body)?;
    let a = blocking(move || {
        let e = svc.expert(token.as_deref())?;
        svc.help_answer(&e, &id, input)
    })
    .await?;
    to_json(&a)
}

#[derive(Deserialize)]
struct CertifyBody {
    engineer_id: String,
    level: u8,
}

async fn certify(State(svc): Svc, headers: HeaderMap, body: Bytes) -> Result<Json<serde_json::Value>, Error> {
    let token = bearer(&headers);
    let c: CertifyBody = json(&body)?;
    let cert = blocking(move || {
        let provider = svc.dispatcher(token.as_deref())?;
        svc.certify(&provider, &c.engineer_id, c.level)
    })
    .await?;
    to_json(&cert)
}
