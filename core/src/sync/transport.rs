//! The network, as an injected trait: the engine speaks `Request`/`Response`, the app gives
//! it [`HttpTransport`] (reqwest) and tests give it a transport that drops, duplicates,
//! delays or fails requests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    /// Path and query, e.g. `/v1/sync`.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Self { method, path: path.into(), headers: Vec::new(), body: Vec::new() }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }

    /// Bytes on the wire: request line, headers and body (HTTP/1.1 framing).
    pub fn wire_len(&self) -> u64 {
        let line = self.method.as_str().len() + self.path.len() + 12;
        let headers: usize = self.headers.iter().map(|(n, v)| n.len() + v.len() + 4).sum();
        (line + headers + 2 + self.body.len()) as u64
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn wire_len(&self) -> u64 {
        let headers: usize = self.headers.iter().map(|(n, v)| n.len() + v.len() + 4).sum();
        (17 + headers + 2 + self.body.len()) as u64
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// The request never got an answer (nothing is known about whether the server acted on it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetError {
    #[error("cannot reach the server: {0}")]
    Unreachable(String),
    #[error("the request timed out")]
    Timeout,
    #[error("the connection failed mid-request: {0}")]
    Io(String),
}

pub trait Transport: Send + Sync {
    fn send(&self, request: &Request) -> Result<Response, NetError>;
}

/// HTTP over reqwest's blocking client (rustls). Counts round trips and wire bytes.
pub struct HttpTransport {
    base: String,
    client: reqwest::blocking::Client,
    round_trips: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
}

impl HttpTransport {
    pub fn new(base_url: &str) -> Result<Self, NetError> {
        let client = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| NetError::Unreachable(e.to_string()))?;
        Ok(Self {
            base: base_url.trim_end_matches('/').to_string(),
            client,
            round_trips: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// (round trips, bytes sent, bytes received) since creation.
    pub fn counters(&self) -> (u64, u64, u64) {
        (self.round_trips.load(Ordering::Relaxed), self.bytes_sent.load(Ordering::Relaxed), self.bytes_received.load(Ordering::Relaxed))
    }
}

impl Transport for HttpTransport {
    fn send(&self, request: &Request) -> Result<Response, NetError> {
        let method = match request.method {
            Method::Get => reqwest::Method::GET,
            Method::Head => reqwest::Method::HEAD,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
        };
        let mut builder = self.client.request(method, format!("{}{}", self.base, request.path));
        for (n, v) in &request.headers {
            builder = builder.header(n.as_str(), v.as_str());
        }
        if !request.body.is_empty() || matches!(request.method, Method::Post | Method::Put) {
            builder = builder.body(request.body.clone());
        }
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        self.bytes_sent.fetch_add(request.wire_len(), Ordering::Relaxed);
        let resp = builder.send().map_err(|e| {
            if e.is_timeout() {
                NetError::Timeout
            } else if e.is_connect() {
                NetError::Unreachable(e.to_string())
            } else {
                NetError::Io(e.to_string())
            }
        })?;
        let status = resp.status().as_u16();
        let headers = resp.headers().iter().map(|(n, v)| (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect();
        let body = resp.bytes().map_err(|e| NetError::Io(e.to_string()))?.to_vec();
        let response = Response { status, headers, body };
        self.bytes_received.fetch_add(response.wire_len(), Ordering::Relaxed);
        Ok(response)
    }
}
