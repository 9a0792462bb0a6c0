//! Apple App Attest: the attestation object (CBOR `{fmt, attStmt: {x5c, receipt}, authData}`)
//! verified as Apple documents it: the x5c chain up to the pinned App Attestation root, the
//! nonce extension (OID 1.2.840.113635.100.8.2) = SHA-256(authData || SHA-256(clientData)),
//! key id = SHA-256 of the leaf's public key = the credential id, the relying party hash =
//! SHA-256 of an accepted app id, counter 0, and the AAGUID (development or production).

use ciborium::Value;

use super::der::Der;
use super::{Error, Expected, SecurityLevel, Trust, Verdict};

pub const NONCE_OID: &str = "1.2.840.113635.100.8.2";

fn field<'v>(map: &'v [(Value, Value)], name: &str) -> Option<&'v Value> {
    map.iter().find(|(k, _)| k.as_text() == Some(name)).map(|(_, v)| v)
}

/// Verifies an attestation object for `key_id`.
pub fn verify(key_id: &[u8], object: &[u8], expected: &Expected<'_>, trust: &Trust) -> Result<Verdict, Error> {
    if object.len() > 64 * 1024 {
        return Err(Error::Format("the attestation object is too large".into()));
    }
    let value: Value = ciborium::de::from_reader(object).map_err(|e| Error::Format(format!("CBOR: {e}")))?;
    let map = value.as_map().ok_or_else(|| Error::Format("not a CBOR map".into()))?;
    if field(map, "fmt").and_then(Value::as_text) != Some("apple-appattest") {
        return Err(Error::Format("fmt is not apple-appattest".into()));
    }
    let stmt = field(map, "attStmt").and_then(Value::as_map).ok_or_else(|| Error::Format("no attStmt".into()))?;
    let auth_data = field(map, "authData").and_then(Value::as_bytes).ok_or_else(|| Error::Format("no authData".into()))?;
    let x5c: Vec<&Vec<u8>> = field(stmt, "x5c")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::Format("no x5c".into()))?
        .iter()
        .map(|v| v.as_bytes().ok_or_else(|| Error::Format("an x5c entry is not bytes".into())))
        .collect::<Result<_, _>>()?;
    if x5c.len() != 2 {
        return Err(Error::Chain(format!("x5c holds {} certificates, not 2", x5c.len())));
    }
    let certs = super::parse_certs(x5c.iter().map(|c| c.as_slice()))?;
    let apple = trust.roots.iter().find(|r| r.name == "apple-app-attestation").ok_or_else(|| Error::UnknownRoot("Apple App Attestation root".into()))?;
    let root = super::check_chain(&certs, expected.at, trust, Some(apple))?;
    let leaf = &certs[0];

    // The nonce: SHA-256(authData || SHA-256(clientData)), in the leaf's extension.
    let client_hash = crate::hash::Sha256::digest(expected.client_data);
    let mut h = crate::hash::Sha256::new();
    h.update(auth_data);
    h.update(client_hash);
    let nonce = h.finalize();
    let ext =
        leaf.extensions().iter().find(|e| e.oid.to_id_string() == NONCE_OID).ok_or_else(|| Error::Extension("the leaf carries no nonce extension".into()))?;
    let mut top = Der::new(ext.value);
    let mut seq = top.sequence().map_err(|e| Error::Extension(e.0))?;
    top.end().map_err(|e| Error::Extension(e.0))?;
    let tagged = seq.element().map_err(|e| Error::Extension(e.0))?;
    seq.end().map_err(|e| Error::Extension(e.0))?;
    if tagged.class != super::der::CONTEXT || tagged.tag != 1 || !tagged.constructed {
        return Err(Error::Extension("the nonce is not [1] EXPLICIT".into()));
    }
    let mut inner = Der::new(tagged.value);
    let stated = inner.octets().map_err(|e| Error::Extension(e.0))?;
    inner.end().map_err(|e| Error::Extension(e.0))?;
    if stated != nonce {
        return Err(Error::Binding("the nonce does not cover this authenticator data and client data".into()));
    }

    // The key: its id is the SHA-256 of the leaf's public key, and the credential id.
    let public = leaf.public_key().subject_public_key.data.as_ref();
    let computed_id = crate::hash::Sha256::digest(public);
    if computed_id.as_slice() != key_id {
        return Err(Error::Binding("the key id is not the attested key's".into()));
    }
    // authData: rpIdHash(32) flags(1) counter(4) aaguid(16) credIdLen(2) credId.
    if auth_data.len() < 55 {
        return Err(Error::Format("authData is too short".into()));
    }
    let rp_hash = &auth_data[..32];
    let counter = u32::from_be_bytes([auth_data[33], auth_data[34], auth_data[35], auth_data[36]]);
    let aaguid = &auth_data[37..53];
    let cred_len = usize::from(u16::from_be_bytes([auth_data[53], auth_data[54]]));
    let cred = auth_data.get(55..55 + cred_len).ok_or_else(|| Error::Format("authData's credential id is cut short".into()))?;
    if cred != key_id {
        return Err(Error::Binding("the credential id is not the key id".into()));
    }
    let app_id = expected
        .apple_app_ids
        .iter()
        .find(|id| crate::hash::Sha256::digest(id.as_bytes()).as_slice() == rp_hash)
        .ok_or_else(|| Error::Binding("the attestation is for another app".into()))?;
    if counter != 0 {
        return Err(Error::Binding(format!("the counter is {counter}, not 0: not a fresh attestation")));
    }
    let environment = match aaguid {
        b"appattestdevelop" => "development",
        [b'a', b'p', b'p', b'a', b't', b't', b'e', b's', b't', 0, 0, 0, 0, 0, 0, 0] => "production",
        _ => return Err(Error::Binding("an unknown AAGUID".into())),
    };
    Ok(Verdict {
        platform: "apple".into(),
        security_level: SecurityLevel::SecureEnclave,
        root: root.name.to_string(),
        device: None,
        verified_boot: None,
        device_locked: None,
        os_version: None,
        os_patch_level: None,
        app_id: Some(app_id.clone()),
        environment: Some(environment.into()),
        attestation_version: None,
    })
}
