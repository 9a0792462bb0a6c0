//! The work order (派工单 / 工单) as it lives in its Automerge document.
//!
//! One document per order. The root map has the fields below; `ownership` says which party
//! may change each of them. Times are UTC milliseconds (`Timestamp`) so the document stays
//! language-neutral for any Automerge implementation that reads it.

use autosurgeon::{Hydrate, Reconcile};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::lifecycle::{Event, Status};

/// Version of the document layout; bumped with a documented migration when the shape changes.
pub const DOC_SCHEMA: u32 = 1;

/// UTC milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Reconcile, Hydrate)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn from_datetime(t: DateTime<Utc>) -> Self {
        Self(t.timestamp_millis())
    }

    pub fn to_datetime(self) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(self.0).single().unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
    }

    pub fn millis(self) -> i64 {
        self.0
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(t: DateTime<Utc>) -> Self {
        Self::from_datetime(t)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_datetime().to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| Timestamp::from_datetime(t.with_timezone(&Utc)))
            .map_err(|e| serde::de::Error::custom(format!("not an RFC 3339 time ({e})")))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Reconcile, Hydrate)]
pub struct Provider {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Reconcile, Hydrate)]
pub struct Customer {
    pub company: String,
    pub contact: String,
    pub phone: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Reconcile, Hydrate)]
pub struct GeoPoint {
    pub lat: f64,
    pub lon: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Reconcile, Hydrate)]
pub struct Site {
    pub address: String,
    pub location: Option<GeoPoint>,
    /// Inside the provider's service area (服务区域内).
    pub in_service_area: bool,
    /// Road distance from the provider's station, km.
    pub distance_km: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Reconcile, Hydrate)]
#[serde(rename_all = "snake_case")]
pub enum WarrantyStatus {
    InWarranty,
    OutOfWarranty,
    Unknown,
}

impl WarrantyStatus {
    pub const ALL: [WarrantyStatus; 3] = [WarrantyStatus::InWarranty, WarrantyStatus::OutOfWarranty, WarrantyStatus::Unknown];

    /// The JSON spelling (what templates and receipts compare against).
    pub fn as_str(self) -> &'static str {
        match self {
            WarrantyStatus::InWarranty => "in_warranty",
            WarrantyStatus::OutOfWarranty => "out_of_warranty",
            WarrantyStatus::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Reconcile, Hydrate)]
pub struct Equipment {
    pub category: String,
    pub brand: String,
    pub model: String,
    pub serial: String,
    pub warranty: WarrantyStatus,
    /// `YYYY-MM-DD`, the last day covered.
    pub warranty_ends: Option<String>,
}

impl Equipment {
    pub fn warranty_end_date(&self) -> Option<NaiveDate> {
        self.warranty_ends.as_deref().and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Reconcile, Hydrate)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Phone,
    Web,
    App,
    Email,
    WalkIn,
    Other,
}

impl Channel {
    pub const ALL: [Channel; 6] = [Channel::Phone, Channel::Web, Channel::App, Channel::Email, Channel::WalkIn, Channel::Other];

    /// The JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Phone => "phone",
            Channel::Web => "web",
            Channel::App => "app",
            Channel::Email => "email",
            Channel::WalkIn => "walk_in",
            Channel::Other => "other",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Reconcile, Hydrate)]
pub struct FaultReport {
    pub description: String,
    pub reported_at: Timestamp,
    pub channel: Channel,
}

/// Priority with the response times of seed 002 (紧急 2 h, 常规 4 h, 低 24 h).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Reconcile, Hydrate)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Urgent,
    Normal,
    Low,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Urgent => "urgent",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "urgent" => Some(Priority::Urgent),
            "normal" => Some(Priority::Normal),
            "low" => Some(Priority::Low),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Reconcile, Hydrate)]
pub struct TimeWindow {
    pub start: Timestamp,
    pub end: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Reconcile, Hydrate)]
pub struct Engineer {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Reconcile, Hydrate)]
#[serde(rename_all = "snake_case")]
pub enum LocationSource {
    Gps,
    Network,
    Fused,
    Manual,
}

/// A location fix as the platform reported it. `mock` is Android's `isFromMockProvider` /
/// iOS `sourceInformation.isSimulatedBySoftware`: recorded, never silently dropped.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Reconcile, Hydrate)]
pub struct GpsFix {
    pub lat: f64,
    pub lon: f64,
    pub accuracy_m: f64,
    pub source: LocationSource,
    pub mock: bool,
}

impl GpsFix {
    /// A fix anyone downstream can rely on: latitude within ±90°, longitude within ±180°,
    /// accuracy finite and not negative (NaN is none of these). The device refuses other
    /// fixes from its caller, drops them from the platform's provider, and the server refuses
    /// a pushed step that carries one (a distance from the site computed from NaN is no
    /// distance, and an arbitrator would read it as one).
    pub fn check(&self) -> Result<(), super::Error> {
        let bad = |field: &str, reason: &str| Err(super::Error::Invalid { field: format!("fix.{field}"), reason: reason.into() });
        if !(-90.0..=90.0).contains(&self.lat) {
            return bad("lat", "must be within -90..90");
        }
        if !(-180.0..=180.0).contains(&self.lon) {
            return bad("lon", "must be within -180..180");
        }
        if !self.accuracy_m.is_finite() || self.accuracy_m < 0.0 {
            return bad("accuracy_m", "must be a finite number >= 0");
        }
        Ok(())
    }
}

/// One lifecycle step, as recorded: who, when (wall + monotonic), where.
#[derive(Debug, Clone, PartialEq, Serialize, Reconcile, Hydrate)]
pub struct TransitionRecord {
    pub from: Status,
    pub to: Status,
    pub event: Event,
    pub at: Timestamp,
    pub monotonic_ms: u64,
    pub device: String,
    pub fix: Option<GpsFix>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Reconcile, Hydrate)]
pub struct EngineerNote {
    pub at: Timestamp,
    pub device: String,
    pub text: String,
}

/// The whole work order document.
#[derive(Debug, Clone, PartialEq, Serialize, Reconcile, Hydrate)]
pub struct WorkOrder {
    pub schema: u32,
    pub id: String,
    pub provider: Provider,
    pub customer: Customer,
    pub site: Site,
    pub equipment: Equipment,
    pub fault: FaultReport,
    pub priority: Priority,
    pub appointment: Option<TimeWindow>,
    pub engineer: Engineer,
    pub status: Status,
    pub transitions: Vec<TransitionRecord>,
    pub notes: Vec<EngineerNote>,
    /// The SOP checklist: pinned template and append-only answers (created empty with the
    /// order, so concurrent first answers from two devices land in the same list).
    pub checklist: super::checklist::Checklist,
    /// Signed receipts, one per revision (append-only; the canonical bytes live in the
    /// device's store and in bundles, the document carries what binds them).
    #[autosurgeon(missing = "Vec::new")]
    pub receipts: Vec<ReceiptRef>,
    /// Expert-help requests (seed 000 专家求助), appended by the engineer's device.
    #[autosurgeon(missing = "Vec::new")]
    pub help: Vec<HelpRequest>,
    /// What the platform and the experts answered (server-written): routing and answers.
    #[autosurgeon(missing = "Vec::new")]
    pub help_answers: Vec<HelpAnswer>,
    pub created_at: Timestamp,
}

/// A request for expert help, with the evidence the engineer chose to share.
#[derive(Debug, Clone, PartialEq, Serialize, Reconcile, Hydrate)]
pub struct HelpRequest {
    /// Unique: the device id and a random suffix.
    pub id: String,
    pub at: Timestamp,
    pub device: String,
    pub question: String,
    /// The checklist step the question concerns.
    pub step: Option<String>,
    /// SHA-256 of the order's photos shared with the expert.
    pub photos: Vec<String>,
    /// Share the fault report and the engineer's notes.
    pub include_fault: bool,
    pub include_notes: bool,
}

/// The platform's and the expert's side of a help request.
#[derive(Debug, Clone, PartialEq, Serialize, Reconcile, Hydrate)]
pub struct HelpAnswer {
    pub request_id: String,
    pub at: Timestamp,
    /// `routed` (an expert was chosen), `unrouted` (no expert matches yet) or `answer`.
    pub kind: String,
    pub expert_id: String,
    pub expert_name: String,
    pub text: String,
    /// SHA-256 of reference photos the expert attached (fetched by sync).
    pub reference_photos: Vec<String>,
    pub suggested_steps: Vec<String>,
    /// The checklist step the answer concerns (the request's, unless the expert chose one).
    pub step: Option<String>,
    /// What the answer costs the provider (分), kept for reimbursement (seed 000 2.1).
    pub cost_cents: i64,
}

/// A signed receipt revision as the order's document records it.
#[derive(Debug, Clone, PartialEq, Serialize, Reconcile, Hydrate)]
pub struct ReceiptRef {
    pub revision: u32,
    /// SHA-256 of the receipt's canonical JSON.
    pub sha256: String,
    /// `signed` or `refused`.
    pub decision: String,
    pub signed_at: Timestamp,
    pub device: String,
}

impl WorkOrder {
    /// When the order first reached `status`, if it ever did.
    pub fn first_reached(&self, status: Status) -> Option<Timestamp> {
        self.transitions.iter().find(|t| t.to == status).map(|t| t.at)
    }

    /// Time of the latest change recorded in the document.
    pub fn last_activity(&self) -> Timestamp {
        let t = self.transitions.last().map(|t| t.at).unwrap_or(self.created_at);
        let n = self.notes.last().map(|n| n.at).unwrap_or(self.created_at);
        t.max(n)
    }
}
