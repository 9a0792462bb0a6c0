//! `profile()`: the engineer's signed service record (数字化履历) at the boundary.

use crate::onsite::Handle;
use crate::ApiError;

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CategoryCount {
    pub name: String,
    pub orders: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ServiceSummary {
    pub engineer_id: String,
    pub orders: u32,
    pub by_category: Vec<CategoryCount>,
    pub faults_solved: Vec<CategoryCount>,
    pub first_time_fix_permille: u32,
    pub rated: u32,
    /// Average rating ×100.
    pub rating_avg_centi: u32,
    pub work_minutes_median: Option<i64>,
    pub help_requests: u32,
    /// Orders whose receipt the provider's log holds.
    pub logged: u32,
    /// Highest certified level (1-5, seed 001), if any.
    pub level: Option<u8>,
    pub level_title: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RecordVerification {
    pub ok: bool,
    pub engineer_id: Option<String>,
    pub orders: u32,
    pub logged: u32,
    pub level: Option<u8>,
    pub text: String,
}

/// The engineer's digital résumé (seed 000 数字化履历).
#[derive(uniffi::Object)]
pub struct ProfileApi {
    pub(crate) device: Handle,
}

#[uniffi::export]
impl ProfileApi {
    /// The figures, computed from completed orders with signed receipts only.
    pub fn summary(&self) -> Result<ServiceSummary, ApiError> {
        let device = self.device.get()?;
        let r = device.service_record()?;
        let level = r.level();
        let a = r.aggregates;
        let counts = |m: std::collections::BTreeMap<String, u32>| m.into_iter().map(|(name, orders)| CategoryCount { name, orders }).collect();
        Ok(ServiceSummary {
            engineer_id: r.engineer,
            orders: a.orders,
            by_category: counts(a.by_category),
            faults_solved: counts(a.faults_solved),
            first_time_fix_permille: a.first_time_fix_permille,
            rated: a.rated,
            rating_avg_centi: a.rating_avg_centi,
            work_minutes_median: a.work_minutes_median,
            help_requests: a.help_requests,
            logged: a.logged,
            level: level.as_ref().map(|(l, _)| *l),
            level_title: level.map(|(_, t)| t),
        })
    }

    /// Writes the signed service record (JSON) to `path`; another provider checks it with
    /// `verify_service_record` or `onsite verify --record`.
    pub fn export(&self, path: String) -> Result<u32, ApiError> {
        let signed = self.device.get()?.export_service_record(std::path::Path::new(&path))?;
        Ok(signed.record.orders.len() as u32)
    }
}

/// Verifies a service record file. `device_key` pins the signing device; `log_key` (the
/// provider's) requires every order to be proven in its log and checks certifications.
#[uniffi::export]
pub fn verify_service_record(path: String, device_key: Option<Vec<u8>>, log_key: Option<Vec<u8>>) -> RecordVerification {
    let r = onsite_core::profile::verify_record_file(
        std::path::Path::new(&path),
        &onsite_core::profile::VerifyOptions { device_key, log_key, attestation_trust: None, witness_policy: None },
    );
    RecordVerification { ok: r.ok, engineer_id: r.engineer, orders: r.orders, logged: r.logged, level: r.level, text: r.text }
}
