//! The HTTP API described as OpenAPI 3.1, generated from the same table the router is built
//! from (`routes::endpoints`), so the description cannot list a route the server lacks or miss
//! one it has. Served at `GET /v1/openapi.json`; bodies of CBOR routes are described in
//! docs/sync-protocol.md, which the description links.

use serde_json::{json, Map, Value};

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    None,
    Admin,
    Dispatcher,
    Device,
    Expert,
    /// A device or an expert.
    Uploader,
    /// The dispatcher, a device or an expert.
    AnyParty,
    /// An expert or the dispatcher.
    ExpertOrDispatcher,
    /// None; the one-time enrolment code in the body is the credential.
    Code,
}

/// One operation: method, path (axum syntax `{id}`), who, what goes in and what comes out.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub method: &'static str,
    pub path: &'static str,
    pub auth: Auth,
    pub summary: &'static str,
    /// Media type and description of the request body, if any.
    pub request: Option<(&'static str, &'static str)>,
    /// Success status, media type and description of the answer.
    pub ok: (u16, &'static str, &'static str),
    /// Error statuses this operation answers besides the generic ones.
    pub errors: &'static [u16],
}

fn error_description(code: u16) -> &'static str {
    match code {
        400 => "bad_request: the body, a header or a parameter is malformed",
        401 => "unauthorized: missing, unknown or revoked credentials",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "timeout: the body did not arrive in time",
        409 => "conflict (an offset or sequence to resume from may be given)",
        413 => "too_large: the body exceeds this route's limit, or inflates past it",
        422 => "unprocessable: the content does not verify",
        429 => "too_many_requests: too many failed credentials from this address",
        _ => "internal",
    }
}

fn scheme(auth: Auth) -> Option<Vec<&'static str>> {
    match auth {
        Auth::None | Auth::Code => None,
        Auth::Admin => Some(vec!["admin"]),
        Auth::Dispatcher => Some(vec!["dispatcher"]),
        Auth::Device => Some(vec!["device"]),
        Auth::Expert => Some(vec!["expert"]),
        Auth::Uploader => Some(vec!["device", "expert"]),
        Auth::AnyParty => Some(vec!["dispatcher", "device", "expert"]),
        Auth::ExpertOrDispatcher => Some(vec!["expert", "dispatcher"]),
    }
}

/// The OpenAPI 3.1 document of `endpoints`.
pub fn document(endpoints: &[Endpoint]) -> Value {
    let mut paths = Map::new();
    for e in endpoints {
        let params: Vec<Value> = e
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        let mut responses = Map::new();
        let (status, media, desc) = e.ok;
        responses.insert(
            status.to_string(),
            if media.is_empty() { json!({ "description": desc }) } else { json!({ "description": desc, "content": { media: {} } }) },
        );
        let mut codes: Vec<u16> = e.errors.to_vec();
        codes.extend([400, 405, 500]);
        if e.auth != Auth::None {
            codes.extend([401, 429]);
        }
        if e.request.is_some() {
            codes.extend([408, 413]);
        }
        codes.sort_unstable();
        codes.dedup();
        for c in codes {
            responses.insert(
                c.to_string(),
                json!({ "description": error_description(c), "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }),
            );
        }
        let mut op = json!({
            "operationId": format!("{}{}", e.method.to_lowercase(), e.path.replace(['/', '{', '}', '-'], "_")),
            "summary": e.summary,
            "responses": responses,
        });
        if !params.is_empty() {
            op["parameters"] = Value::Array(params);
        }
        if let Some((media, desc)) = e.request {
            op["requestBody"] = json!({ "required": true, "description": desc, "content": { media: {} } });
        }
        op["security"] = match scheme(e.auth) {
            Some(schemes) => Value::Array(schemes.into_iter().map(|s| json!({ s: [] })).collect()),
            None => json!([]),
        };
        let item = paths.entry(e.path.to_string()).or_insert_with(|| json!({}));
        item[e.method.to_lowercase()] = op;
    }
    let bearer = |what: &str| json!({ "type": "http", "scheme": "bearer", "description": what });
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Onsite sync server",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Enrolment, dispatcher API, batched Automerge sync (CBOR), journal into the evidence log, resumable blobs, parts, expert help. Wire formats: docs/sync-protocol.md."
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "admin": bearer("the server's admin token (creates providers)"),
                "dispatcher": bearer("a provider's dispatcher token"),
                "device": bearer("a device token from enrolment"),
                "expert": bearer("an expert's token"),
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "reason"],
                    "properties": {
                        "error": { "type": "string", "description": "a code: bad_request, unauthorized, forbidden, not_found, method_not_allowed, timeout, conflict, too_large, unprocessable, too_many_requests, internal" },
                        "reason": { "type": "string" },
                        "acked_seq": { "type": "integer", "minimum": 0 }
                    }
                }
            }
        }
    })
}
