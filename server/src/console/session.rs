//! Console sessions (docs/adr/0021): a signed cookie, not a server-side table, so every
//! instance behind a load balancer honours it. The cookie names the role, the provider (and
//! the expert), the SHA-256 of the token that signed in and an expiry, under an HMAC-SHA256
//! with the key-store key `console-session-key`. Every request checks the MAC and the expiry
//! and looks the token hash up again, so rotating or revoking the token ends its sessions.
//! Forms carry a CSRF token derived from the cookie (HMAC), and the cookie is
//! `SameSite=Strict; HttpOnly` (`Secure` behind TLS).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::service::{token_hash, Error};
use crate::Service;

pub const COOKIE: &str = "onsite_session";
/// How long a sign-in lasts (one working day and a margin).
pub const SESSION_MS: i64 = 12 * 3600 * 1000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Dispatcher,
    Expert,
}

/// Who is signed in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub role: Role,
    pub provider: String,
    /// The expert's id (empty for a dispatcher).
    pub expert: String,
    /// SHA-256 (hex) of the token that signed in: looked up again on every request.
    pub token: String,
    pub expires_ms: i64,
    /// Random, so two sign-ins never share a cookie or a CSRF token.
    pub nonce: String,
}

type Mac256 = Hmac<Sha256>;

fn mac(key: &[u8], purpose: &str, data: &[u8]) -> Result<Mac256, Error> {
    let mut m = <Mac256 as Mac>::new_from_slice(key).map_err(|e| Error::Internal(format!("console key: {e}")))?;
    m.update(purpose.as_bytes());
    m.update(&[0]);
    m.update(data);
    Ok(m)
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).ok()
}

impl Session {
    /// The session a valid token opens: the dispatcher's, else the expert's.
    pub fn sign_in(svc: &Service, token: &str) -> Result<Session, Error> {
        let token = token.trim();
        let nonce = b64(&rand::random::<[u8; 16]>());
        let expires_ms = svc.now_ms() + SESSION_MS;
        if let Ok(provider) = svc.dispatcher(Some(token)) {
            return Ok(Session { role: Role::Dispatcher, provider, expert: String::new(), token: token_hash(token), expires_ms, nonce });
        }
        let e = svc.expert(Some(token))?;
        Ok(Session { role: Role::Expert, provider: e.provider, expert: e.id, token: token_hash(token), expires_ms, nonce })
    }

    /// The cookie value: `base64url(JSON).base64url(HMAC)`.
    pub fn seal(&self, key: &[u8]) -> Result<String, Error> {
        let body = serde_json::to_vec(self).map_err(|e| Error::Internal(format!("session: {e}")))?;
        let tag = mac(key, "session", &body)?.finalize().into_bytes();
        Ok(format!("{}.{}", b64(&body), b64(&tag)))
    }

    /// The session a cookie value holds, if its MAC is ours and it has not expired. The
    /// token is not looked up here (see [`Session::check`]).
    pub fn open(key: &[u8], value: &str, now_ms: i64) -> Option<Session> {
        let (body, tag) = value.split_once('.')?;
        let (body, tag) = (unb64(body)?, unb64(tag)?);
        mac(key, "session", &body).ok()?.verify_slice(&tag).ok()?;
        let s: Session = serde_json::from_slice(&body).ok()?;
        (s.expires_ms > now_ms).then_some(s)
    }

    /// The token that signed in still opens the same provider (or expert).
    pub fn check(&self, svc: &Service) -> Result<(), Error> {
        let ok = match self.role {
            Role::Dispatcher => svc.storage().provider_by_token(&self.token)?.as_deref() == Some(self.provider.as_str()),
            Role::Expert => svc.storage().expert_by_token(&self.token)?.is_some_and(|e| e.id == self.expert && e.provider == self.provider),
        };
        if ok {
            Ok(())
        } else {
            Err(Error::Unauthorized)
        }
    }

    /// The CSRF token of this session's forms.
    pub fn csrf(&self, key: &[u8]) -> Result<String, Error> {
        Ok(b64(&mac(key, "csrf", self.seal(key)?.as_bytes())?.finalize().into_bytes()))
    }

    /// A form's CSRF token is this session's.
    pub fn check_csrf(&self, key: &[u8], given: &str) -> Result<(), Error> {
        let tag = unb64(given).ok_or_else(|| Error::Forbidden("the form's CSRF token is missing or malformed; reload the page".into()))?;
        mac(key, "csrf", self.seal(key)?.as_bytes())?
            .verify_slice(&tag)
            .map_err(|_| Error::Forbidden("the form's CSRF token is not this session's; reload the page".into()))
    }

    pub fn is_dispatcher(&self) -> bool {
        self.role == Role::Dispatcher
    }

    /// `Forbidden` unless a dispatcher is signed in; `what` names what is the dispatcher's.
    pub fn require_dispatcher(&self, what: &str) -> Result<(), Error> {
        if self.is_dispatcher() {
            Ok(())
        } else {
            Err(Error::Forbidden(format!("{what} is the dispatcher's")))
        }
    }
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// The language cookie (`zh` unless `en`).
pub fn lang_cookie(headers: &HeaderMap) -> Option<&str> {
    cookie(headers, super::i18n::LANG_COOKIE)
}

/// Behind TLS (a proxy that says so) the cookie is `Secure`.
pub fn secure(headers: &HeaderMap) -> bool {
    headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

pub fn set_cookie(value: &str, max_age_s: i64, headers: &HeaderMap) -> String {
    let secure = if secure(headers) { "; Secure" } else { "" };
    format!("{COOKIE}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}")
}

/// A signed-in console user, as an extractor. Without a valid session the request is sent to
/// the sign-in page before its body is read.
pub struct Signed(pub Session);

impl FromRequestParts<Arc<Service>> for Signed {
    type Rejection = super::Fail;

    async fn from_request_parts(parts: &mut Parts, svc: &Arc<Service>) -> Result<Self, super::Fail> {
        let lang = super::lang(&parts.headers);
        Self::extract(parts, svc).await.map_err(|e| super::Fail(e, lang))
    }
}

impl Signed {
    async fn extract(parts: &Parts, svc: &Arc<Service>) -> Result<Self, Error> {
        let value = cookie(&parts.headers, COOKIE).ok_or(Error::Unauthorized)?.to_string();
        let s = svc.clone();
        let session = tokio::task::spawn_blocking(move || {
            let session = Session::open(s.console_key(), &value, s.now_ms()).ok_or(Error::Unauthorized)?;
            session.check(&s)?;
            Ok::<_, Error>(session)
        })
        .await
        .map_err(|e| Error::Internal(format!("worker failed: {e}")))??;
        Ok(Signed(session))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session { role: Role::Dispatcher, provider: "p".into(), expert: String::new(), token: "ab".into(), expires_ms: 1_000, nonce: "n".into() }
    }

    #[test]
    fn a_cookie_opens_only_with_its_key_unaltered_and_before_expiry() {
        let key = [7u8; 32];
        let v = session().seal(&key).unwrap();
        assert_eq!(Session::open(&key, &v, 999), Some(session()));
        assert_eq!(Session::open(&key, &v, 1_000), None, "expired");
        assert_eq!(Session::open(&[8u8; 32], &v, 0), None, "another key");
        // Any change to the body (here: make it an expert's) breaks the MAC.
        let (body, tag) = v.split_once('.').unwrap();
        let mut forged: Session = serde_json::from_slice(&unb64(body).unwrap()).unwrap();
        forged.role = Role::Expert;
        let forged = format!("{}.{tag}", b64(&serde_json::to_vec(&forged).unwrap()));
        assert_eq!(Session::open(&key, &forged, 0), None);
        for bad in ["", ".", "x.y", "e30.", &v[..v.len() - 2]] {
            assert_eq!(Session::open(&key, bad, 0), None, "{bad}");
        }
    }

    #[test]
    fn a_csrf_token_belongs_to_one_session() {
        let key = [7u8; 32];
        let a = session();
        let mut b = session();
        b.nonce = "m".into();
        a.check_csrf(&key, &a.csrf(&key).unwrap()).unwrap();
        assert!(a.check_csrf(&key, &b.csrf(&key).unwrap()).is_err());
        assert!(a.check_csrf(&key, "").is_err());
        assert!(a.check_csrf(&key, "!!").is_err());
    }
}
