//! A blocking client for the admin and dispatcher APIs (the demo, tests, benchmarks and
//! scripts use it; a dispatcher console would speak the same JSON).

use onsite_core::sync::transport::{HttpTransport, Method, Request, Transport};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("network: {0}")]
    Net(#[from] onsite_core::sync::NetError),
    #[error("HTTP {status}: {body}")]
    Http { status: u16, body: String },
    #[error("bad answer: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the answer has no `{0}`")]
    Missing(&'static str),
}

/// A string field the server's answer must carry (a missing one is an error, never "").
fn field(v: &Value, name: &'static str) -> Result<String, ClientError> {
    v[name].as_str().map(str::to_string).ok_or(ClientError::Missing(name))
}

pub struct DispatcherClient {
    http: HttpTransport,
    token: String,
}

fn call(http: &HttpTransport, token: &str, method: Method, path: &str, body: Option<Vec<u8>>) -> Result<Value, ClientError> {
    let mut req = Request::new(method, path).header("authorization", format!("Bearer {token}"));
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b);
    }
    let resp = http.send(&req)?;
    if !resp.is_success() {
        return Err(ClientError::Http { status: resp.status, body: String::from_utf8_lossy(&resp.body).into_owned() });
    }
    if resp.body.is_empty() {
        return Ok(Value::Null);
    }
    Ok(serde_json::from_slice(&resp.body)?)
}

/// Creates a provider with the admin token; returns its dispatcher token.
pub fn create_provider(base_url: &str, admin_token: &str, id: &str, name: &str) -> Result<String, ClientError> {
    let http = HttpTransport::new(base_url)?;
    let body = serde_json::to_vec(&serde_json::json!({ "id": id, "name": name }))?;
    let v = call(&http, admin_token, Method::Post, "/v1/admin/providers", Some(body))?;
    field(&v, "dispatcher_token")
}

impl DispatcherClient {
    pub fn new(base_url: &str, token: &str) -> Result<Self, ClientError> {
        Ok(Self { http: HttpTransport::new(base_url)?, token: token.to_string() })
    }

    fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        call(&self.http, &self.token, Method::Post, path, Some(serde_json::to_vec(body)?))
    }

    fn get(&self, path: &str) -> Result<Value, ClientError> {
        call(&self.http, &self.token, Method::Get, path, None)
    }

    /// Creates orders from the import JSON format (an array or one object).
    pub fn create_orders(&self, json: &str) -> Result<Vec<String>, ClientError> {
        let v = call(&self.http, &self.token, Method::Post, "/v1/orders", Some(json.as_bytes().to_vec()))?;
        let created = v["created"].as_array().ok_or(ClientError::Missing("created"))?;
        created.iter().map(|x| x.as_str().map(str::to_string).ok_or(ClientError::Missing("created[]"))).collect()
    }

    pub fn enrolment_code(&self, engineer_id: &str) -> Result<String, ClientError> {
        let v = self.post("/v1/enrolment-codes", &serde_json::json!({ "engineer_id": engineer_id }))?;
        field(&v, "code")
    }

    pub fn order(&self, id: &str) -> Result<Value, ClientError> {
        self.get(&format!("/v1/orders/{id}"))
    }

    pub fn orders(&self) -> Result<Value, ClientError> {
        self.get("/v1/orders")
    }

    pub fn assign(&self, id: &str, engineer_id: &str, name: &str) -> Result<Value, ClientError> {
        self.post(&format!("/v1/orders/{id}/assign"), &serde_json::json!({ "engineer_id": engineer_id, "name": name }))
    }

    pub fn cancel(&self, id: &str, reason: &str) -> Result<Value, ClientError> {
        self.post(&format!("/v1/orders/{id}/cancel"), &serde_json::json!({ "reason": reason }))
    }

    pub fn set_priority(&self, id: &str, priority: &str) -> Result<Value, ClientError> {
        self.post(&format!("/v1/orders/{id}/priority"), &serde_json::json!({ "priority": priority }))
    }

    pub fn revoke_device(&self, device_id: &str) -> Result<(), ClientError> {
        self.post(&format!("/v1/devices/{device_id}/revoke"), &Value::Null).map(|_| ())
    }

    pub fn devices(&self) -> Result<Value, ClientError> {
        self.get("/v1/devices")
    }

    pub fn checkpoint(&self) -> Result<Value, ClientError> {
        self.get("/v1/log/checkpoint")
    }

    /// The RFC 9162 consistency proof between two sizes of the provider's log (`to`: the
    /// current size when `None`).
    pub fn consistency(&self, from: u64, to: Option<u64>) -> Result<Value, ClientError> {
        match to {
            Some(to) => self.get(&format!("/v1/log/consistency?from={from}&to={to}")),
            None => self.get(&format!("/v1/log/consistency?from={from}")),
        }
    }

    /// The parts clerk records handing a part out (`issue`) or getting one back (`receive`).
    pub fn clerk(&self, body: &Value) -> Result<Value, ClientError> {
        self.post("/v1/parts/movements", body)
    }

    pub fn parts_ledger(&self, engineer: &str) -> Result<Value, ClientError> {
        self.get(&format!("/v1/parts/ledger?engineer={engineer}"))
    }

    /// The coordinator's close-out; refused (409) while parts are unaccounted for.
    pub fn close(&self, id: &str, by: &str) -> Result<Value, ClientError> {
        self.post(&format!("/v1/orders/{id}/close"), &serde_json::json!({ "by": by }))
    }

    /// Registers an expert; returns the expert's token.
    pub fn add_expert(&self, body: &Value) -> Result<String, ClientError> {
        field(&self.post("/v1/experts", body)?, "token")
    }

    pub fn help_requests(&self) -> Result<Value, ClientError> {
        self.get("/v1/help")
    }

    /// Issues a certification level (1-5, seed 001) to an engineer.
    pub fn certify(&self, engineer: &str, level: u8) -> Result<Value, ClientError> {
        self.post("/v1/certifications", &serde_json::json!({ "engineer_id": engineer, "level": level }))
    }

    pub fn blob(&self, sha256: &str) -> Result<Vec<u8>, ClientError> {
        let req = Request::new(Method::Get, format!("/v1/blobs/{sha256}")).header("authorization", format!("Bearer {}", self.token));
        let resp = self.http.send(&req)?;
        if !resp.is_success() {
            return Err(ClientError::Http { status: resp.status, body: String::from_utf8_lossy(&resp.body).into_owned() });
        }
        Ok(resp.body)
    }
}

/// An expert's side: requests routed to them, the shared evidence, answers.
pub struct ExpertClient {
    http: HttpTransport,
    token: String,
}

impl ExpertClient {
    pub fn new(base_url: &str, token: &str) -> Result<Self, ClientError> {
        Ok(Self { http: HttpTransport::new(base_url)?, token: token.to_string() })
    }

    pub fn requests(&self) -> Result<Value, ClientError> {
        call(&self.http, &self.token, Method::Get, "/v1/help", None)
    }

    pub fn request(&self, id: &str) -> Result<Value, ClientError> {
        call(&self.http, &self.token, Method::Get, &format!("/v1/help/{id}"), None)
    }

    /// Uploads a reference photo (one request); returns its SHA-256.
    pub fn upload(&self, bytes: &[u8]) -> Result<String, ClientError> {
        let sha = onsite_core::hash::sha256_hex(bytes);
        let req = Request::new(Method::Put, format!("/v1/blobs/{sha}"))
            .header("authorization", format!("Bearer {}", self.token))
            .header(onsite_core::sync::protocol::UPLOAD_OFFSET, "0")
            .header(onsite_core::sync::protocol::UPLOAD_LENGTH, bytes.len().to_string())
            .body(bytes.to_vec());
        let resp = self.http.send(&req)?;
        if !resp.is_success() {
            return Err(ClientError::Http { status: resp.status, body: String::from_utf8_lossy(&resp.body).into_owned() });
        }
        Ok(sha)
    }

    pub fn answer(&self, id: &str, body: &Value) -> Result<Value, ClientError> {
        call(&self.http, &self.token, Method::Post, &format!("/v1/help/{id}/answer"), Some(serde_json::to_vec(body)?))
    }
}

/// Import-format orders for tests and benchmarks: `n` orders `{prefix}-0001`... of
/// `provider`, assigned to `engineer`, built on the CLI's first sample order.
pub fn sample_orders(provider: &str, engineer: &str, prefix: &str, n: usize) -> String {
    let mut base: Value = serde_json::from_str(SAMPLE).unwrap_or(Value::Null);
    let base = base.as_array_mut().and_then(|a| a.first().cloned()).unwrap_or(Value::Null);
    let orders: Vec<Value> = (1..=n)
        .map(|i| {
            let mut o = base.clone();
            o["id"] = Value::String(format!("{prefix}-{i:04}"));
            o["provider"]["id"] = Value::String(provider.to_string());
            o["engineer"]["id"] = Value::String(engineer.to_string());
            o
        })
        .collect();
    serde_json::to_string(&orders).unwrap_or_default()
}

const SAMPLE: &str = include_str!("../../cli/samples/orders.json");
