//! Certifications (seed 001 levels), issued and signed by the server.

use onsite_core::profile::{Certification, SignedCertification};

use super::{internal, random_hex, Error, Result, Service};

impl Service {
    /// Issues a certification level (seed 001) to an engineer, signed with the log key.
    pub fn certify(&self, provider: &str, engineer: &str, level: u8) -> Result<SignedCertification> {
        let now = self.now_ms();
        let issued = chrono::DateTime::from_timestamp_millis(now).ok_or_else(|| internal(format!("the clock reads {now} ms, not a date")))?;
        let issued = issued.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let id = format!("cert-{}", random_hex(8));
        let c = Certification::new(&id, provider, engineer, level, &issued).map_err(Error::BadRequest)?;
        let signed = c.sign(&self.log_key).map_err(internal)?;
        self.storage.add_certification(&id, provider, engineer, &signed.body, &signed.signature)?;
        Ok(signed)
    }
}
