//! The HTTP edge, before any handler runs: who is calling (auth extractors, checked before a
//! body byte is read), how much a route may receive and how long it may take, the failed
//! credential limiter per source address, and the `{error, reason}` JSON for every non-2xx
//! answer, including the ones axum produces itself (404, 405, rejections).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use onsite_core::sync::protocol::ErrorBody;

use crate::service::Error;
use crate::storage::{DeviceRow, ExpertRow};
use crate::Service;

/// How long a client may take to send a request body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(60);
/// Failed credential attempts per source address per window before it is refused (429).
pub const MAX_FAILURES: u32 = 20;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Inflations (deflate bodies) running at once; more wait for a slot.
pub const INFLATE_SLOTS: usize = 4;

/// Body limits per kind of route (raw bytes on the wire).
pub mod limit {
    /// Small JSON: enrolment, codes, assignment, priority, cancel, certification.
    pub const SMALL: usize = 16 * 1024;
    /// Expert answers, clerk movements, expert registration.
    pub const MEDIUM: usize = 256 * 1024;
    /// The dispatcher's order JSON.
    pub const ORDERS: usize = 8 * 1024 * 1024;
    /// Sync and journal bodies (before inflation; after it the same bound applies).
    pub const SYNC: usize = onsite_core::sync::protocol::MAX_SYNC_BODY;
    /// One blob chunk.
    pub const BLOB_CHUNK: usize = onsite_core::sync::protocol::MAX_BLOB_CHUNK;
}

/// Counts failed credential attempts per source address. Behind a load balancer the TCP peer
/// is the proxy, so for peers listed as trusted proxies the source is taken from
/// `X-Forwarded-For` (the rightmost address that is not itself a trusted proxy); from any other
/// peer the header is ignored, so a client cannot pick its own address.
#[derive(Default)]
pub struct FailureLimiter {
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
    trusted: Vec<IpAddr>,
}

impl FailureLimiter {
    pub fn with_trusted_proxies(trusted: Vec<IpAddr>) -> Self {
        Self { windows: Mutex::default(), trusted }
    }

    /// The address a request's failures count against.
    pub fn source(&self, parts: &Parts) -> IpAddr {
        let peer = peer_ip(parts);
        if !self.trusted.contains(&peer) {
            return peer;
        }
        let hops: Vec<&str> = parts.headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).collect();
        for hop in hops.iter().rev() {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) if self.trusted.contains(&ip) => continue,
                Ok(ip) => return ip,
                // A hop that is not an address: the chain is not trustworthy past here.
                Err(_) => return peer,
            }
        }
        peer
    }

    /// `Err` while `ip` has used up its failures in the current window.
    pub fn check(&self, ip: IpAddr) -> Result<(), Error> {
        let windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        match windows.get(&ip) {
            Some((start, n)) if *n >= MAX_FAILURES && start.elapsed() < FAILURE_WINDOW => {
                let wait = FAILURE_WINDOW.saturating_sub(start.elapsed()).as_secs() + 1;
                Err(Error::TooMany(format!("too many failed credentials from this address; retry in {wait} s")))
            }
            _ => Ok(()),
        }
    }

    /// Records one failure of `ip` (logged when the address reaches the limit).
    pub fn fail(&self, ip: IpAddr) {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if windows.len() > 100_000 {
            windows.retain(|_, (start, _)| start.elapsed() < FAILURE_WINDOW);
        }
        let entry = windows.entry(ip).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= FAILURE_WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
        if entry.1 == 1 {
            tracing::info!(source = %ip, "failed credentials");
        } else if entry.1 == MAX_FAILURES {
            tracing::warn!(source = %ip, failures = entry.1, window_s = FAILURE_WINDOW.as_secs(), "too many failed credentials; refusing this address for the window");
        }
    }
}

/// The caller's address as the limiter counts it (see [`FailureLimiter::source`]), as an extractor.
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<Arc<Service>> for ClientIp {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, svc: &Arc<Service>) -> Result<Self, Error> {
        Ok(ClientIp(svc.limiter().source(parts)))
    }
}

/// The TCP peer's address (`0.0.0.0` when the router runs without a socket, as in unit tests).
fn peer_ip(parts: &Parts) -> IpAddr {
    parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(|t| t.trim().to_string())
}

/// Runs a credential check on the blocking pool, behind the per-address limiter.
async fn credential<T: Send + 'static>(
    parts: &Parts,
    svc: &Arc<Service>,
    check: impl FnOnce(&Service, Option<&str>) -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    let ip = svc.limiter().source(parts);
    svc.limiter().check(ip)?;
    let token = bearer(&parts.headers);
    let s = svc.clone();
    let out = tokio::task::spawn_blocking(move || check(&s, token.as_deref())).await.map_err(|e| Error::Internal(format!("worker failed: {e}")))?;
    if matches!(out, Err(Error::Unauthorized)) {
        svc.limiter().fail(ip);
    }
    out
}

macro_rules! auth_extractor {
    ($(#[$doc:meta])* $name:ident($ty:ty), $check:expr) => {
        $(#[$doc])*
        pub struct $name(pub $ty);

        impl FromRequestParts<Arc<Service>> for $name {
            type Rejection = Error;

            async fn from_request_parts(parts: &mut Parts, svc: &Arc<Service>) -> Result<Self, Error> {
                credential(parts, svc, $check).await.map($name)
            }
        }
    };
}

auth_extractor!(
    /// The admin token (creates providers).
    Admin(()),
    |s: &Service, t: Option<&str>| s.check_admin(t)
);
auth_extractor!(
    /// A provider's dispatcher token; holds the provider id.
    Dispatcher(String),
    |s: &Service, t: Option<&str>| s.dispatcher(t)
);
auth_extractor!(
    /// An enrolled, unrevoked device.
    DeviceAuth(DeviceRow),
    |s: &Service, t: Option<&str>| s.device(t)
);
auth_extractor!(
    /// An expert's token.
    Expert(ExpertRow),
    |s: &Service, t: Option<&str>| s.expert(t)
);
auth_extractor!(
    /// A device or an expert (blob uploads); holds the provider id.
    Uploader(String),
    |s: &Service, t: Option<&str>| s.uploader(t)
);
auth_extractor!(
    /// The dispatcher, a device or an expert of a provider (blob reads); holds the provider.
    AnyParty(String),
    |s: &Service, t: Option<&str>| s.any_party(t)
);

/// An expert or the dispatcher (help lists): `Ok(expert)` or `Err(provider)`.
pub struct ExpertOrDispatcher(pub Result<ExpertRow, String>);

impl FromRequestParts<Arc<Service>> for ExpertOrDispatcher {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, svc: &Arc<Service>) -> Result<Self, Error> {
        credential(parts, svc, |s: &Service, t: Option<&str>| match s.expert(t) {
            Ok(e) => Ok(Ok(e)),
            Err(_) => s.dispatcher(t).map(Err),
        })
        .await
        .map(ExpertOrDispatcher)
    }
}

/// A request body of at most `N` bytes, read within [`BODY_TIMEOUT`]. Put it last in a
/// handler's arguments: the auth extractors before it run first, so an unauthenticated
/// client never gets a body buffered.
pub struct Limited<const N: usize>(pub Bytes);

impl<const N: usize, S: Send + Sync> FromRequest<S> for Limited<N> {
    type Rejection = Error;

    async fn from_request(req: Request, _: &S) -> Result<Self, Error> {
        let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > N as u64) {
            return Err(Error::TooLarge(format!("this route takes at most {N} bytes")));
        }
        match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(req.into_body(), N)).await {
            Err(_) => Err(Error::Timeout("the request body did not arrive in time".into())),
            Ok(Err(e)) if is_length_limit(&e) => Err(Error::TooLarge(format!("this route takes at most {N} bytes"))),
            Ok(Err(e)) => Err(Error::BadRequest(format!("reading the body: {e}"))),
            Ok(Ok(b)) => Ok(Limited(b)),
        }
    }
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = s.source();
    }
    false
}

static INFLATE: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(INFLATE_SLOTS);

/// Decodes a body on the blocking pool: inflates `Content-Encoding: deflate` to at most
/// `limit` bytes (a bomb stops at the limit), with at most [`INFLATE_SLOTS`] at once.
pub async fn decoded(headers: &HeaderMap, body: Bytes, limit: usize) -> Result<Vec<u8>, Error> {
    match headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()) {
        None | Some("identity") => Ok(body.to_vec()),
        Some("deflate") => {
            let _slot = INFLATE.acquire().await.map_err(|e| Error::Internal(e.to_string()))?;
            tokio::task::spawn_blocking(move || onsite_core::sync::protocol::inflate(&body, limit))
                .await
                .map_err(|e| Error::Internal(format!("worker failed: {e}")))?
                .map_err(|e| match e {
                    onsite_core::sync::protocol::Error::TooLarge(_) => Error::TooLarge(format!("the body inflates past {limit} bytes")),
                    other => Error::BadRequest(format!("body: {other}")),
                })
        }
        Some(other) => Err(Error::BadRequest(format!("unsupported content-encoding `{other}`"))),
    }
}

/// Every non-2xx answer that is not JSON yet (axum's own 404/405/413 and rejections)
/// becomes `{error, reason}` JSON.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    // JSON errors are the API's own; HTML ones are the console's pages.
    let is_json =
        resp.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
    if status.is_success() || status.is_redirection() || is_json || status == StatusCode::NOT_MODIFIED {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    };
    let reason = if text.trim().is_empty() { status.canonical_reason().unwrap_or("error").to_lowercase() } else { text.trim().to_string() };
    let mut out = (status, axum::Json(ErrorBody { error: code.into(), reason, acked_seq: None })).into_response();
    for (k, v) in parts.headers.iter() {
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
            out.headers_mut().insert(k.clone(), v.clone());
        }
    }
    out
}

/// The fallback for paths no route has.
pub async fn not_found() -> Error {
    Error::NotFound("no such route".into())
}
