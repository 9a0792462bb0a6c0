//! HTTP: thin handlers. The caller is authenticated by an extractor of `http` before the
//! body is read (its size limited per route); then the body is decoded, [`Service`] runs on
//! the blocking pool and the answer is encoded. `Content-Encoding: deflate` is accepted on
//! sync, journal and order bodies and, when asked for, returned on sync and journal answers.

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, head, post, put, MethodRouter};
use axum::{Json, Router};
use onsite_core::sync::protocol::{self, EnrolRequest, ErrorBody};

use crate::http::{self, limit, Admin, AnyParty, DeviceAuth, Dispatcher, Expert, ExpertOrDispatcher, Limited, Uploader};
use crate::openapi::{Auth, Endpoint};
use serde::Deserialize;

use crate::service::{Error, Service};

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
            Error::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            Error::TooMany(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
            Error::Timeout(_) => (StatusCode::REQUEST_TIMEOUT, "timeout"),
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

/// Runs `f` on the blocking pool (SQLite and hashing must not stall the reactor).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, Error> + Send + 'static) -> Result<T, Error> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::Internal(format!("worker failed: {e}")))?
}

fn wants_deflate(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok()).is_some_and(|v| v.split(',').any(|e| e.trim() == "deflate"))
}

fn encoded(headers: &HeaderMap, content_type: &'static str, body: Vec<u8>) -> Response {
    // Compression fails only when memory does; the answer then goes uncompressed.
    let (deflate, body) = match wants_deflate(headers).then(|| protocol::deflate(&body)) {
        Some(Ok(compressed)) => (true, compressed),
        _ => (false, body),
    };
    let mut resp = (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response();
    if deflate {
        resp.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("deflate"));
    }
    resp
}

fn json<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::BadRequest(format!("JSON: {e}")))
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Json<serde_json::Value>, Error> {
    Ok(Json(serde_json::to_value(v).map_err(|e| Error::Internal(e.to_string()))?))
}

type Small = Limited<{ limit::SMALL }>;
type Medium = Limited<{ limit::MEDIUM }>;

/// Every operation the server has, with its description: the router and the OpenAPI
/// document are both built from this list.
pub fn endpoints() -> Vec<(Endpoint, MethodRouter<Arc<Service>>)> {
    const JSON: &str = "application/json";
    const CBOR: &str = "application/cbor";
    macro_rules! ep {
        ($m:literal $path:literal, $auth:ident, $summary:literal, $req:expr, $ok:expr, $errors:expr, $handler:expr) => {
            (Endpoint { method: $m, path: $path, auth: Auth::$auth, summary: $summary, request: $req, ok: $ok, errors: $errors }, $handler)
        };
    }
    vec![
        ep!("GET" "/health", None, "liveness and the feed head", None, (200, JSON, "{ok, version, feed_seq, database, objects}"), &[503], get(health)),
        ep!("GET" "/metrics", None, "Prometheus counters", None, (200, "text/plain", "text format 0.0.4"), &[], get(metrics)),
        ep!("GET" "/v1/openapi.json", None, "this description", None, (200, JSON, "OpenAPI 3.1"), &[], get(openapi)),
        ep!("POST" "/v1/admin/providers", Admin, "create a provider", Some((JSON, "{id, name}")), (200, JSON, "{id, dispatcher_token}"), &[409], post(create_provider)),
        ep!("POST" "/v1/enrolment-codes", Dispatcher, "a one-time enrolment code", Some((JSON, "{engineer_id, ttl_minutes?: 1..43200}")), (200, JSON, "{code, expires_at_ms}"), &[], post(create_code)),
        ep!("GET" "/v1/devices", Dispatcher, "the provider's devices", None, (200, JSON, "[{id, engineer_id, revoked, journal_seq, last_seen_ms?, attestation: {attested, verdict?, problem?}?}]"), &[], get(list_devices)),
        ep!("POST" "/v1/devices/{id}/revoke", Dispatcher, "revoke a device and its tokens", None, (204, "", "revoked"), &[404], post(revoke_device)),
        ep!("POST" "/v1/orders", Dispatcher, "import orders (one or an array; deflate accepted)", Some((JSON, "dispatcher order JSON")), (201, JSON, "{created: [ids]}"), &[403, 409], post(create_orders)),
        ep!("GET" "/v1/orders", Dispatcher, "order summary rows (?engineer=)", None, (200, JSON, "[OrderRow]"), &[], get(list_orders)),
        ep!("GET" "/v1/orders/{id}", Dispatcher, "one order as JSON", None, (200, JSON, "WorkOrder"), &[404], get(get_order)),
        ep!("POST" "/v1/orders/{id}/assign", Dispatcher, "reassign", Some((JSON, "{engineer_id, name?}")), (200, JSON, "WorkOrder"), &[404, 409], post(assign)),
        ep!("POST" "/v1/orders/{id}/cancel", Dispatcher, "cancel (lifecycle rules apply)", Some((JSON, "{reason}")), (200, JSON, "WorkOrder"), &[404, 409], post(cancel)),
        ep!("POST" "/v1/orders/{id}/priority", Dispatcher, "set the priority", Some((JSON, "{priority: urgent|normal|low}")), (200, JSON, "WorkOrder"), &[404], post(priority)),
        ep!("POST" "/v1/orders/{id}/close", Dispatcher, "close out a completed order (refused while parts are owed)", Some((JSON, "{by?} or empty")), (200, JSON, "{closed_at}"), &[404, 409], post(close_order)),
        ep!("GET" "/v1/log/checkpoint", Dispatcher, "a signed checkpoint of the provider's log", None, (200, JSON, "Checkpoint"), &[], get(checkpoint)),
        ep!("GET" "/v1/log/{provider}/checkpoint", None, "the provider log's latest checkpoint as a C2SP signed note (tlog-checkpoint, Ed25519), with its witnesses' cosignatures", None, (200, "text/plain", "signed note"), &[404], get(checkpoint_note)),
        ep!("GET" "/v1/log/{provider}/key", None, "the verifier key of the provider log's checkpoints (C2SP signed-note)", None, (200, "text/plain", "name+id+key"), &[404], get(log_key)),
        ep!("GET" "/v1/log/{provider}/tile/{*path}", None, "C2SP tlog-tiles: hash tiles <L>/<N>[.p/<W>] and entry bundles entries/<N>[.p/<W>] (immutable)", None, (200, "application/octet-stream", "tile bytes"), &[404], get(log_tile)),
        ep!("GET" "/v1/log/consistency", AnyParty, "RFC 9162 consistency proof between two sizes of the provider's log (?from=&to=; to defaults to the current size)", None, (200, JSON, "{from, to, path: [hex]}"), &[400], get(consistency)),
        ep!("POST" "/v1/enrol", Code, "enrol a device with a one-time code (and the key attestation its provider's policy asks for)", Some((JSON, "{code, device_id, public_key, signature, attestation?: {kind: android_key_chain, chain} | {kind: apple_app_attest, key_id, object}}")), (200, JSON, "{token, provider, engineer_id, time_authority, log_key, attestation?}"), &[401, 403, 409, 429], post(enrol)),
        ep!("POST" "/v1/sync", Device, "push changes, pull the feed (deflate both ways)", Some((CBOR, "SyncRequest")), (200, CBOR, "SyncResponse"), &[], post(sync)),
        ep!("POST" "/v1/journal", Device, "upload journal entries and receipts into the evidence log", Some((CBOR, "JournalUpload")), (200, JSON, "JournalAck"), &[409, 422], post(journal)),
        ep!("HEAD" "/v1/blobs/{sha}", Uploader, "upload state (Upload-Offset, Upload-Length)", None, (200, "", "partial or complete"), &[404], head(head_blob)),
        ep!("PUT" "/v1/blobs/{sha}", Uploader, "one chunk of a resumable upload", Some(("application/octet-stream", "bytes at Upload-Offset of Upload-Length")), (200, "", "201 when complete"), &[409, 422, 429], put(put_blob)),
        ep!("GET" "/v1/blobs/{sha}", AnyParty, "a stored blob (re-hashed on the way out)", None, (200, "application/octet-stream", "the bytes"), &[404], get(get_blob)),
        ep!("POST" "/v1/parts/movements", Dispatcher, "the clerk issues or receives a part", Some((JSON, "ClerkMovement")), (200, JSON, "Movement"), &[409], post(clerk_movement)),
        ep!("GET" "/v1/parts/ledger", Dispatcher, "an engineer's parts (?engineer=)", None, (200, JSON, "{held, pending_returns, anomalies}"), &[], get(parts_ledger)),
        ep!("POST" "/v1/experts", Dispatcher, "register an expert", Some((JSON, "ExpertInput")), (200, JSON, "{token}"), &[409], post(add_expert)),
        ep!("GET" "/v1/help", ExpertOrDispatcher, "help requests (an expert sees its own)", None, (200, JSON, "[HelpRow]"), &[], get(help_list)),
        ep!("GET" "/v1/help/{id}", Expert, "what the engineer shared", None, (200, JSON, "HelpView"), &[403, 404], get(help_view)),
        ep!("POST" "/v1/help/{id}/answer", Expert, "answer a help request", Some((JSON, "AnswerInput")), (200, JSON, "HelpAnswer"), &[403, 404, 409], post(help_answer)),
        ep!("POST" "/v1/certifications", Dispatcher, "certify an engineer's level", Some((JSON, "{engineer_id, level}")), (200, JSON, "Certification"), &[], post(certify)),
    ]
}

pub fn router(service: Arc<Service>) -> Router {
    let mut by_path: Vec<(&'static str, MethodRouter<Arc<Service>>)> = Vec::new();
    for (e, handler) in endpoints() {
        match by_path.iter_mut().find(|(p, _)| *p == e.path) {
            Some((_, mr)) => *mr = std::mem::take(mr).merge(handler),
            None => by_path.push((e.path, handler)),
        }
    }
    let mut router = Router::new();
    for (path, mr) in by_path {
        router = router.route(path, mr);
    }
    router
        .merge(crate::console::routes())
        .fallback(http::not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(http::json_errors))
        .layer(middleware::from_fn_with_state(service.clone(), count))
        .with_state(service)
}

async fn openapi() -> Json<serde_json::Value> {
    let endpoints: Vec<Endpoint> = endpoints().into_iter().map(|(e, _)| e).collect();
    Json(crate::openapi::document(&endpoints))
}

async fn method_not_allowed() -> Response {
    let body = ErrorBody { error: "method_not_allowed".into(), reason: "this route does not take that method".into(), acked_seq: None };
    (StatusCode::METHOD_NOT_ALLOWED, Json(body)).into_response()
}

async fn count(State(svc): Svc, req: Request, next: Next) -> Response {
    svc.metrics().requests.inc();
    let resp = next.run(req).await;
    if resp.status().is_client_error() {
        svc.metrics().errors_4xx.inc();
    } else if resp.status().is_server_error() {
        svc.metrics().errors_5xx.inc();
    }
    resp
}

/// 200 when the database and the object store both answer, else 503; each part says why.
async fn health(State(svc): Svc) -> Result<Response, Error> {
    let s = svc.clone();
    let (seq, database, objects) = blocking(move || {
        let part = |r: Result<(), String>, what: String| match r {
            Ok(()) => serde_json::json!({ "ok": true, "backend": what }),
            Err(e) => serde_json::json!({ "ok": false, "backend": what, "error": e }),
        };
        let seq = s.head().ok();
        let db = part(s.storage().check().map_err(|e| e.to_string()), s.storage().describe());
        let obj = part(s.blob_store().check().map_err(|e| e.to_string()), s.blob_store().describe());
        Ok((seq, db, obj))
    })
    .await?;
    let ok = database["ok"] == true && objects["ok"] == true;
    let body = serde_json::json!({ "ok": ok, "version": env!("CARGO_PKG_VERSION"), "feed_seq": seq, "database": database, "objects": objects });
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    Ok((status, Json(body)).into_response())
}

async fn metrics(State(svc): Svc) -> impl IntoResponse {
    let mut text = svc.metrics().render();
    if let Some(p) = svc.storage().pool_stats() {
        text.push_str(&crate::metrics::render_pool(&p));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

#[derive(Deserialize)]
struct NewProvider {
    id: String,
    name: String,
}

async fn create_provider(State(svc): Svc, _: Admin, Limited(body): Small) -> Result<Json<serde_json::Value>, Error> {
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

async fn create_code(State(svc): Svc, Dispatcher(provider): Dispatcher, Limited(body): Small) -> Result<Json<serde_json::Value>, Error> {
    let req: NewCode = json(&body)?;
    let (code, expires) = blocking(move || svc.create_code(&provider, &req.engineer_id, req.ttl_minutes)).await?;
    Ok(Json(serde_json::json!({ "code": code, "expires_at_ms": expires })))
}

async fn list_devices(State(svc): Svc, Dispatcher(provider): Dispatcher) -> Result<Json<serde_json::Value>, Error> {
    let devices = blocking(move || svc.devices(&provider)).await?;
    let list: Vec<_> = devices
        .iter()
        .map(|d| {
            // The attestation record as stored (JSON); unreadable is shown as absent.
            let attestation = d.attestation.as_deref().and_then(|a| serde_json::from_str::<serde_json::Value>(a).ok());
            serde_json::json!({ "id": d.id, "engineer_id": d.engineer_id, "revoked": d.revoked, "journal_seq": d.journal_seq, "last_seen_ms": d.last_seen_ms, "attestation": attestation })
        })
        .collect();
    Ok(Json(serde_json::Value::Array(list)))
}

async fn revoke_device(State(svc): Svc, Dispatcher(provider): Dispatcher, Path(id): Path<String>) -> Result<StatusCode, Error> {
    blocking(move || svc.revoke_device(&provider, &id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn create_orders(
    State(svc): Svc,
    Dispatcher(provider): Dispatcher,
    headers: HeaderMap,
    Limited(body): Limited<{ limit::ORDERS }>,
) -> Result<(StatusCode, Json<serde_json::Value>), Error> {
    let bytes = http::decoded(&headers, body, limit::ORDERS).await?;
    let text = String::from_utf8(bytes).map_err(|_| Error::BadRequest("the body is not UTF-8".into()))?;
    let ids = blocking(move || svc.create_orders(&provider, &text)).await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "created": ids }))))
}

#[derive(Deserialize)]
struct ListQuery {
    engineer: Option<String>,
}

async fn list_orders(State(svc): Svc, Dispatcher(provider): Dispatcher, Query(q): Query<ListQuery>) -> Result<Json<serde_json::Value>, Error> {
    let rows = blocking(move || svc.orders(&provider, q.engineer.as_deref())).await?;
    to_json(&rows)
}

async fn get_order(State(svc): Svc, Dispatcher(provider): Dispatcher, Path(id): Path<String>) -> Result<Json<serde_json::Value>, Error> {
    let order = blocking(move || svc.order(&provider, &id)).await?;
    to_json(&order)
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
    provider: String,
    f: impl FnOnce(&Service, &str) -> Result<onsite_core::WorkOrder, Error> + Send + 'static,
) -> Result<Json<serde_json::Value>, Error> {
    let order = blocking(move || f(&svc, &provider)).await?;
    to_json(&order)
}

async fn assign(State(svc): Svc, Dispatcher(provider): Dispatcher, Path(id): Path<String>, Limited(body): Small) -> Result<Json<serde_json::Value>, Error> {
    let a: Assign = json(&body)?;
    dispatcher_edit(svc, provider, move |s, p| s.assign(p, &id, &a.engineer_id, &a.name)).await
}

async fn cancel(State(svc): Svc, Dispatcher(provider): Dispatcher, Path(id): Path<String>, Limited(body): Small) -> Result<Json<serde_json::Value>, Error> {
    let c: Cancel = json(&body)?;
    dispatcher_edit(svc, provider, move |s, p| s.cancel(p, &id, &c.reason)).await
}

async fn priority(State(svc): Svc, Dispatcher(provider): Dispatcher, Path(id): Path<String>, Limited(body): Small) -> Result<Json<serde_json::Value>, Error> {
    let c: SetPriority = json(&body)?;
    dispatcher_edit(svc, provider, move |s, p| s.set_priority(p, &id, &c.priority)).await
}

async fn checkpoint(State(svc): Svc, Dispatcher(provider): Dispatcher) -> Result<Json<serde_json::Value>, Error> {
    let cp = blocking(move || svc.checkpoint(&provider)).await?;
    to_json(&cp)
}

/// A provider's public log: the provider must exist (no credentials: witnesses and auditors
/// read it; it holds only hashes).
fn public_log(svc: &Service, provider: &str) -> Result<(), Error> {
    if svc.storage().provider_name(provider)?.is_none() {
        return Err(Error::NotFound(format!("no log `{provider}`")));
    }
    Ok(())
}

async fn checkpoint_note(State(svc): Svc, Path(provider): Path<String>) -> Result<Response, Error> {
    let note = blocking(move || {
        public_log(&svc, &provider)?;
        svc.cosigned_checkpoint(&provider)
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], note).into_response())
}

async fn log_key(State(svc): Svc, Path(provider): Path<String>) -> Result<Response, Error> {
    let key = blocking(move || {
        public_log(&svc, &provider)?;
        svc.log_verifier_key(&provider)
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{key}\n")).into_response())
}

async fn log_tile(State(svc): Svc, Path((provider, path)): Path<(String, String)>) -> Result<Response, Error> {
    let tile = crate::service::parse_tile_path(&path).ok_or_else(|| Error::NotFound(format!("`{path}` is not a tile path")))?;
    let bytes = blocking(move || {
        public_log(&svc, &provider)?;
        svc.tile(&provider, tile)
    })
    .await?;
    // A tile never changes once served (a partial one is only ever superseded by a wider one).
    Ok(([(header::CONTENT_TYPE, "application/octet-stream"), (header::CACHE_CONTROL, "public, max-age=31536000, immutable")], bytes).into_response())
}

#[derive(Deserialize)]
struct ConsistencyQuery {
    from: u64,
    to: Option<u64>,
}

async fn consistency(State(svc): Svc, AnyParty(provider): AnyParty, Query(q): Query<ConsistencyQuery>) -> Result<Json<serde_json::Value>, Error> {
    let proof = blocking(move || svc.consistency(&provider, q.from, q.to)).await?;
    to_json(&proof)
}

/// Enrolment has no token: the one-time code is the credential, so failures count against
/// the caller's address like a wrong token.
async fn enrol(State(svc): Svc, client: http::ClientIp, Limited(body): Small) -> Result<Json<serde_json::Value>, Error> {
    svc.limiter().check(client.0)?;
    let req: EnrolRequest = json(&body)?;
    let s = svc.clone();
    let resp = blocking(move || s.enrol(&req)).await;
    if matches!(resp, Err(Error::Unauthorized)) {
        svc.limiter().fail(client.0);
    }
    to_json(&resp?)
}

#[derive(Deserialize, Default)]
struct SyncParams {
    /// Long-poll: with nothing to send, wait up to this long (capped) for news.
    wait_ms: Option<u64>,
}

async fn sync(
    State(svc): Svc,
    DeviceAuth(device): DeviceAuth,
    Query(params): Query<SyncParams>,
    headers: HeaderMap,
    Limited(body): Limited<{ limit::SYNC }>,
) -> Result<Response, Error> {
    svc.metrics().sync_requests.inc();
    svc.metrics().sync_bytes_in.add(body.len() as u64);
    let bytes = http::decoded(&headers, body, limit::SYNC).await?;
    let (s, d) = (svc.clone(), device.clone());
    let (resp, quiet) = blocking(move || {
        let req = protocol::decode_request(&bytes).map_err(|e| Error::BadRequest(e.to_string()))?;
        let quiet = req.push.is_empty() && req.full.is_empty() && req.parts.as_ref().is_none_or(|p| p.movements.is_empty());
        Ok((s.sync(&d, req)?, quiet))
    })
    .await?;
    let wait = std::time::Duration::from_millis(params.wait_ms.unwrap_or(0).min(protocol::MAX_WAIT_MS));
    let resp = if quiet && !wait.is_zero() { long_poll(&svc, &device, resp, wait).await? } else { resp };
    let out = protocol::encode(&resp).map_err(|e| Error::Internal(e.to_string()))?;
    let resp = encoded(&headers, "application/cbor", out);
    if let Some(len) = resp.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok()) {
        svc.metrics().sync_bytes_out.add(len);
    }
    Ok(resp)
}

/// While the answer has nothing for the device, waits for the feed head to pass its cursor
/// (this instance's commits, or another instance's through the backend's notifications) and
/// answers again; at the deadline, the last (empty) answer goes.
async fn long_poll(
    svc: &Arc<Service>,
    device: &crate::storage::DeviceRow,
    mut resp: protocol::SyncResponse,
    wait: std::time::Duration,
) -> Result<protocol::SyncResponse, Error> {
    let deadline = tokio::time::Instant::now() + wait;
    let idle = |r: &protocol::SyncResponse| {
        r.docs.is_empty() && r.removed.is_empty() && r.rejected.is_empty() && !r.more && r.parts.as_ref().is_none_or(|p| p.movements.is_empty())
    };
    while idle(&resp) {
        let head = svc.notifier().wait_past(resp.cursor, deadline).await;
        if head <= resp.cursor {
            break;
        }
        let (s, d, cursor) = (svc.clone(), device.clone(), resp.cursor);
        let pull = protocol::SyncRequest { v: protocol::VERSION, cursor, push: Vec::new(), ticket_nonce: None, parts: None, full: Vec::new() };
        let next = blocking(move || s.sync(&d, pull)).await?;
        // The first answer's ticket and parts stay; the documents are the news.
        resp.cursor = next.cursor;
        resp.docs = next.docs;
        resp.removed = next.removed;
        resp.more = next.more;
    }
    Ok(resp)
}

async fn journal(State(svc): Svc, DeviceAuth(device): DeviceAuth, headers: HeaderMap, Limited(body): Limited<{ limit::SYNC }>) -> Result<Response, Error> {
    let bytes = http::decoded(&headers, body, limit::SYNC).await?;
    let out = blocking(move || {
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

async fn head_blob(State(svc): Svc, Uploader(provider): Uploader, Path(sha): Path<String>) -> Result<Response, Error> {
    let state = blocking(move || svc.blob_state(&provider, &sha)).await?;
    Ok(match state {
        Some((offset, length)) => (StatusCode::OK, offset_headers(offset, length)).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    })
}

fn header_u64(headers: &HeaderMap, name: &str) -> Result<u64, Error> {
    headers.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).ok_or_else(|| Error::BadRequest(format!("the `{name}` header is required")))
}

async fn put_blob(
    State(svc): Svc,
    Uploader(provider): Uploader,
    headers: HeaderMap,
    Path(sha): Path<String>,
    Limited(body): Limited<{ limit::BLOB_CHUNK }>,
) -> Result<Response, Error> {
    let offset = header_u64(&headers, protocol::UPLOAD_OFFSET)?;
    let length = header_u64(&headers, protocol::UPLOAD_LENGTH)?;
    let (at, complete) = blocking(move || svc.blob_put(&provider, &sha, offset, length, &body)).await?;
    let status = if complete { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, offset_headers(at, length)).into_response())
}

async fn get_blob(State(svc): Svc, AnyParty(provider): AnyParty, Path(sha): Path<String>) -> Result<Response, Error> {
    let bytes = blocking(move || svc.blob_bytes(&provider, &sha)).await?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

async fn clerk_movement(State(svc): Svc, Dispatcher(provider): Dispatcher, Limited(body): Medium) -> Result<Json<serde_json::Value>, Error> {
    let input: crate::service::ClerkMovement = json(&body)?;
    let m = blocking(move || svc.clerk_movement(&provider, input)).await?;
    to_json(&m)
}

#[derive(Deserialize)]
struct EngineerQuery {
    engineer: String,
}

async fn parts_ledger(State(svc): Svc, Dispatcher(provider): Dispatcher, Query(q): Query<EngineerQuery>) -> Result<Json<serde_json::Value>, Error> {
    let ledger = blocking(move || svc.parts_ledger(&provider, &q.engineer)).await?;
    let held: Vec<_> = ledger.held().into_iter().cloned().collect();
    to_json(&serde_json::json!({ "held": held, "pending_returns": ledger.pending_returns, "anomalies": ledger.anomalies }))
}

#[derive(Deserialize)]
struct CloseBody {
    #[serde(default)]
    by: String,
}

async fn close_order(
    State(svc): Svc,
    Dispatcher(provider): Dispatcher,
    Path(id): Path<String>,
    Limited(body): Small,
) -> Result<Json<serde_json::Value>, Error> {
    let c: CloseBody = if body.is_empty() { CloseBody { by: String::new() } } else { json(&body)? };
    let at = blocking(move || {
        let by = if c.by.trim().is_empty() { "coordinator".to_string() } else { c.by };
        svc.close_order(&provider, &id, &by)
    })
    .await?;
    to_json(&serde_json::json!({ "closed_at": at }))
}

async fn add_expert(State(svc): Svc, Dispatcher(provider): Dispatcher, Limited(body): Medium) -> Result<Json<serde_json::Value>, Error> {
    let input: crate::service::ExpertInput = json(&body)?;
    let t = blocking(move || svc.add_expert(&provider, input)).await?;
    to_json(&serde_json::json!({ "token": t }))
}

async fn help_list(State(svc): Svc, ExpertOrDispatcher(who): ExpertOrDispatcher) -> Result<Json<serde_json::Value>, Error> {
    let rows = blocking(move || match who {
        Ok(e) => svc.help_list(&e.provider, Some(&e.id)),
        Err(provider) => svc.help_list(&provider, None),
    })
    .await?;
    to_json(&rows)
}

async fn help_view(State(svc): Svc, Expert(e): Expert, Path(id): Path<String>) -> Result<Json<serde_json::Value>, Error> {
    let v = blocking(move || svc.help_view(&e, &id)).await?;
    to_json(&v)
}

async fn help_answer(State(svc): Svc, Expert(e): Expert, Path(id): Path<String>, Limited(body): Medium) -> Result<Json<serde_json::Value>, Error> {
    let input: crate::service::AnswerInput = json(&body)?;
    let a = blocking(move || svc.help_answer(&e, &id, input)).await?;
    to_json(&a)
}

#[derive(Deserialize)]
struct CertifyBody {
    engineer_id: String,
    level: u8,
}

async fn certify(State(svc): Svc, Dispatcher(provider): Dispatcher, Limited(body): Small) -> Result<Json<serde_json::Value>, Error> {
    let c: CertifyBody = json(&body)?;
    let cert = blocking(move || svc.certify(&provider, &c.engineer_id, c.level)).await?;
    to_json(&cert)
}
