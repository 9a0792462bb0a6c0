//! Work orders at the boundary: the records and enums of the list and detail screens
//! (converted from and to the core's types) and `OrdersApi`. Times cross as `SystemTime`
//! (Kotlin `java.time.Instant`, Swift `Date`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use onsite_core::order::{self, Timestamp};
use onsite_core::sla;

use onsite_core::Actor;

use crate::checklist::{Blocker, ChecklistView};
use crate::evidence::PhotoInfo;
use crate::receipts::SignedReceiptInfo;
use crate::sync::FieldConflict;
use crate::ApiError;

pub(crate) fn to_time(t: Timestamp) -> SystemTime {
    let ms = t.millis();
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

/// Rounds to the nearest millisecond: Swift's `Date` is a `Double`, so `.123` s may arrive
/// as 0.122999... s, which truncation would turn into the wrong millisecond.
pub(crate) fn from_time(t: SystemTime) -> Timestamp {
    let round_ms = |d: Duration| i64::try_from((d.as_nanos() + 500_000) / 1_000_000).unwrap_or(i64::MAX);
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => Timestamp(round_ms(d)),
        Err(e) => Timestamp(-round_ms(e.duration())),
    }
}

pub(crate) fn ms_to_time(ms: i64) -> SystemTime {
    to_time(Timestamp(ms))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum OrderStatus {
    Assigned,
    Accepted,
    CustomerContacted,
    EnRoute,
    OnSite,
    InProgress,
    AwaitingSignature,
    Completed,
    Rescheduled,
    CarriedToWorkshop,
    Cancelled,
    Unresolved,
}

macro_rules! mirror_enum {
    ($ffi:ident, $core:path, [$($v:ident),* $(,)?]) => {
        impl From<$core> for $ffi {
            fn from(v: $core) -> Self {
                use $core as C;
                match v { $(C::$v => $ffi::$v),* }
            }
        }
        impl From<$ffi> for $core {
            fn from(v: $ffi) -> Self {
                use $core as C;
                match v { $($ffi::$v => C::$v),* }
            }
        }
    };
}

mirror_enum!(
    OrderStatus,
    order::Status,
    [Assigned, Accepted, CustomerContacted, EnRoute, OnSite, InProgress, AwaitingSignature, Completed, Rescheduled, CarriedToWorkshop, Cancelled, Unresolved]
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Priority {
    Urgent,
    Normal,
    Low,
}
mirror_enum!(Priority, order::Priority, [Urgent, Normal, Low]);

#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum WarrantyStatus {
    InWarranty,
    OutOfWarranty,
    Unknown,
}
mirror_enum!(WarrantyStatus, order::WarrantyStatus, [InWarranty, OutOfWarranty, Unknown]);

#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Channel {
    Phone,
    Web,
    App,
    Email,
    WalkIn,
    Other,
}
mirror_enum!(Channel, order::Channel, [Phone, Web, App, Email, WalkIn, Other]);

#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum LocationSource {
    Gps,
    Network,
    Fused,
    Manual,
}
mirror_enum!(LocationSource, order::LocationSource, [Gps, Network, Fused, Manual]);

#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum SlaKind {
    Response,
    FirstContact,
    OnSite,
}
mirror_enum!(SlaKind, sla::SlaKind, [Response, FirstContact, OnSite]);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, uniffi::Enum)]
pub enum SortBy {
    #[default]
    SlaDeadline,
    Updated,
}
mirror_enum!(SortBy, onsite_core::store::SortBy, [SlaDeadline, Updated]);

#[derive(Debug, Clone, Copy, PartialEq, uniffi::Record)]
pub struct TimeWindow {
    pub start: SystemTime,
    pub end: SystemTime,
}

impl From<order::TimeWindow> for TimeWindow {
    fn from(w: order::TimeWindow) -> Self {
        Self { start: to_time(w.start), end: to_time(w.end) }
    }
}

impl From<TimeWindow> for order::TimeWindow {
    fn from(w: TimeWindow) -> Self {
        Self { start: from_time(w.start), end: from_time(w.end) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, uniffi::Record)]
pub struct GpsFix {
    pub lat: f64,
    pub lon: f64,
    pub accuracy_m: f64,
    pub source: LocationSource,
    pub mock: bool,
}

impl From<order::GpsFix> for GpsFix {
    fn from(f: order::GpsFix) -> Self {
        Self { lat: f.lat, lon: f.lon, accuracy_m: f.accuracy_m, source: f.source.into(), mock: f.mock }
    }
}

impl TryFrom<GpsFix> for order::GpsFix {
    type Error = ApiError;
    fn try_from(f: GpsFix) -> Result<Self, ApiError> {
        let fix = order::GpsFix { lat: f.lat, lon: f.lon, accuracy_m: f.accuracy_m, source: f.source.into(), mock: f.mock };
        fix.check()?;
        Ok(fix)
    }
}

/// What the engineer asks the lifecycle to do.
#[derive(Debug, Clone, PartialEq, uniffi::Enum)]
pub enum TransitionRequest {
    Accept,
    ContactCustomer {
        window: TimeWindow,
    },
    Depart,
    Arrive,
    StartWork,
    RequestSignature,
    Complete,
    Reschedule {
        reason: String,
        window: TimeWindow,
    },
    CarryToWorkshop {
        reason: String,
    },
    MarkUnresolved {
        reason: String,
    },
    /// Dispatcher only: a device raising it gets `NotPermitted`.
    Cancel {
        reason: String,
    },
}

impl From<TransitionRequest> for order::Event {
    fn from(r: TransitionRequest) -> Self {
        use order::Event as E;
        match r {
            TransitionRequest::Accept => E::Accept,
            TransitionRequest::ContactCustomer { window } => E::ContactCustomer { window: window.into() },
            TransitionRequest::Depart => E::Depart,
            TransitionRequest::Arrive => E::Arrive,
            TransitionRequest::StartWork => E::StartWork,
            TransitionRequest::RequestSignature => E::RequestSignature,
            TransitionRequest::Complete => E::Complete,
            TransitionRequest::Reschedule { reason, window } => E::Reschedule { reason, window: window.into() },
            TransitionRequest::CarryToWorkshop { reason } => E::CarryToWorkshop { reason },
            TransitionRequest::MarkUnresolved { reason } => E::MarkUnresolved { reason },
            TransitionRequest::Cancel { reason } => E::Cancel { reason },
        }
    }
}

impl From<order::Event> for TransitionRequest {
    fn from(e: order::Event) -> Self {
        use order::Event as E;
        match e {
            E::Accept => Self::Accept,
            E::ContactCustomer { window } => Self::ContactCustomer { window: window.into() },
            E::Depart => Self::Depart,
            E::Arrive => Self::Arrive,
            E::StartWork => Self::StartWork,
            E::RequestSignature => Self::RequestSignature,
            E::Complete => Self::Complete,
            E::Reschedule { reason, window } => Self::Reschedule { reason, window: window.into() },
            E::CarryToWorkshop { reason } => Self::CarryToWorkshop { reason },
            E::MarkUnresolved { reason } => Self::MarkUnresolved { reason },
            E::Cancel { reason } => Self::Cancel { reason },
        }
    }
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct OrderFilter {
    /// Only these statuses; empty means all.
    pub statuses: Vec<OrderStatus>,
    pub sort: SortBy,
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct OrderSummary {
    pub id: String,
    pub status: OrderStatus,
    pub priority: Priority,
    pub customer: String,
    pub site: String,
    pub equipment: String,
    pub reported_at: SystemTime,
    pub appointment: Option<TimeWindow>,
    pub sla_deadline: Option<SystemTime>,
    pub sla_kind: Option<SlaKind>,
    pub sla_breached: bool,
    pub updated_at: SystemTime,
}

impl From<onsite_core::OrderSummary> for OrderSummary {
    fn from(s: onsite_core::OrderSummary) -> Self {
        let appointment = match (s.appointment_start, s.appointment_end) {
            (Some(a), Some(b)) => Some(TimeWindow { start: ms_to_time(a), end: ms_to_time(b) }),
            _ => None,
        };
        let sla_kind = match s.sla_kind.as_deref() {
            Some("response") => Some(SlaKind::Response),
            Some("first_contact") => Some(SlaKind::FirstContact),
            Some("on_site") => Some(SlaKind::OnSite),
            _ => None,
        };
        Self {
            priority: order::Priority::parse(&s.priority).unwrap_or(order::Priority::Normal).into(),
            id: s.id,
            status: s.status.into(),
            customer: s.customer,
            site: s.site,
            equipment: s.equipment,
            reported_at: ms_to_time(s.reported_at),
            appointment,
            sla_deadline: s.sla_deadline.map(ms_to_time),
            sla_kind,
            sla_breached: s.breached,
            updated_at: ms_to_time(s.updated_at),
        }
    }
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Customer {
    pub company: String,
    pub contact: String,
    pub phone: String,
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Site {
    pub address: String,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub in_service_area: bool,
    pub distance_km: f64,
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Equipment {
    pub category: String,
    pub brand: String,
    pub model: String,
    pub serial: String,
    pub warranty: WarrantyStatus,
    pub warranty_ends: Option<String>,
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct FaultReport {
    pub description: String,
    pub reported_at: SystemTime,
    pub channel: Channel,
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct TransitionRecord {
    pub from: OrderStatus,
    pub to: OrderStatus,
    pub event: TransitionRequest,
    pub at: SystemTime,
    pub monotonic_ms: u64,
    pub device: String,
    pub fix: Option<GpsFix>,
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct EngineerNote {
    pub at: SystemTime,
    pub device: String,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, uniffi::Enum)]
pub enum SlaState {
    Pending,
    Breached,
    Met { at: SystemTime },
    MetLate { at: SystemTime },
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, uniffi::Record)]
pub struct SlaClock {
    pub kind: SlaKind,
    pub deadline: SystemTime,
    pub state: SlaState,
}

/// Everything an order detail screen shows.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct OrderDetail {
    pub id: String,
    pub provider_id: String,
    pub provider_name: String,
    pub customer: Customer,
    pub site: Site,
    pub equipment: Equipment,
    pub fault: FaultReport,
    pub priority: Priority,
    pub appointment: Option<TimeWindow>,
    pub engineer_id: String,
    pub engineer_name: String,
    pub status: OrderStatus,
    pub transitions: Vec<TransitionRecord>,
    pub notes: Vec<EngineerNote>,
    pub sla: Vec<SlaClock>,
    /// Lifecycle events the engineer can raise now (`accept`, `depart`, ...).
    pub next_events: Vec<String>,
}

impl From<onsite_core::OrderView> for OrderDetail {
    fn from(v: onsite_core::OrderView) -> Self {
        let o = v.order;
        Self {
            id: o.id,
            provider_id: o.provider.id,
            provider_name: o.provider.name,
            customer: Customer { company: o.customer.company, contact: o.customer.contact, phone: o.customer.phone },
            site: Site {
                address: o.site.address,
                lat: o.site.location.map(|p| p.lat),
                lon: o.site.location.map(|p| p.lon),
                in_service_area: o.site.in_service_area,
                distance_km: o.site.distance_km,
            },
            equipment: Equipment {
                category: o.equipment.category,
                brand: o.equipment.brand,
                model: o.equipment.model,
                serial: o.equipment.serial,
                warranty: o.equipment.warranty.into(),
                warranty_ends: o.equipment.warranty_ends,
            },
            fault: FaultReport { description: o.fault.description, reported_at: to_time(o.fault.reported_at), channel: o.fault.channel.into() },
            priority: o.priority.into(),
            appointment: o.appointment.map(Into::into),
            engineer_id: o.engineer.id,
            engineer_name: o.engineer.name,
            status: o.status.into(),
            transitions: o
                .transitions
                .into_iter()
                .map(|t| TransitionRecord {
                    from: t.from.into(),
                    to: t.to.into(),
                    event: t.event.into(),
                    at: to_time(t.at),
                    monotonic_ms: t.monotonic_ms,
                    device: t.device,
                    fix: t.fix.map(Into::into),
                })
                .collect(),
            notes: o.notes.into_iter().map(|n| EngineerNote { at: to_time(n.at), device: n.device, text: n.text }).collect(),
            sla: v
                .sla
                .clocks
                .into_iter()
                .map(|c| SlaClock {
                    kind: c.kind.into(),
                    deadline: to_time(c.deadline),
                    state: match c.state {
                        sla::ClockState::Pending => SlaState::Pending,
                        sla::ClockState::Breached => SlaState::Breached,
                        sla::ClockState::Met { at } => SlaState::Met { at: to_time(at) },
                        sla::ClockState::MetLate { at } => SlaState::MetLate { at: to_time(at) },
                        sla::ClockState::Stopped => SlaState::Stopped,
                    },
                })
                .collect(),
            next_events: v.next_events.into_iter().map(String::from).collect(),
        }
    }
}

/// Everything the order detail screen shows, in one call.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct OrderScreen {
    pub detail: OrderDetail,
    /// `None` until the checklist is started.
    pub checklist: Option<ChecklistView>,
    /// Why the order cannot be completed yet (empty when it can).
    pub blockers: Vec<Blocker>,
    pub photos: Vec<PhotoInfo>,
    pub receipts: Vec<SignedReceiptInfo>,
    /// Fields whose concurrent edits merge resolved (see `orders().conflicts(id)`).
    pub conflicted_fields: Vec<String>,
    /// Expert-help requests and answers (show each answer with its step).
    pub help: Vec<crate::help::HelpThread>,
    /// What the order still owes in spare parts before close-out.
    pub parts_owed: u32,
}

/// Work orders: the list and detail screens, lifecycle events, notes, peer merge.
#[derive(uniffi::Object)]
pub struct OrdersApi {
    pub(crate) device: crate::onsite::Handle,
}

#[uniffi::export]
impl OrdersApi {
    /// Imports one order or an array of orders (the dispatcher's JSON); returns their ids.
    pub fn import_json(&self, json: String) -> Result<Vec<String>, ApiError> {
        Ok(self.device.get()?.import_orders_json(&json)?)
    }

    /// The list screen: summary rows only (no document is loaded).
    pub fn list(&self, filter: OrderFilter) -> Result<Vec<OrderSummary>, ApiError> {
        let filter = onsite_core::OrderFilter { statuses: filter.statuses.into_iter().map(Into::into).collect(), sort: filter.sort.into() };
        Ok(self.device.get()?.list(&filter)?.into_iter().map(Into::into).collect())
    }

    pub fn get(&self, id: String) -> Result<OrderDetail, ApiError> {
        Ok(self.device.get()?.get(&id)?.into())
    }

    /// The detail screen in one record: order, checklist, blockers, photos, receipts
    /// (assembled by the core from one load of the order's document).
    pub fn screen(&self, id: String) -> Result<OrderScreen, ApiError> {
        let s = self.device.get()?.screen(&id)?;
        Ok(OrderScreen {
            detail: s.view.into(),
            checklist: s.checklist.map(Into::into),
            blockers: s.blockers.iter().map(Into::into).collect(),
            photos: s.photos.into_iter().map(Into::into).collect(),
            receipts: s.receipts.into_iter().map(crate::receipts::info).collect::<Result<_, _>>()?,
            conflicted_fields: s.conflicts.into_iter().map(|c| c.field).collect(),
            help: s.help.into_iter().map(crate::help::thread).collect(),
            parts_owed: s.closeout.owed() as u32,
        })
    }

    /// Applies a lifecycle event as the engineer. Without a fix, the location provider is
    /// asked (when the app gave one).
    pub fn transition(&self, id: String, request: TransitionRequest, fix: Option<GpsFix>) -> Result<OrderDetail, ApiError> {
        let fix = fix.map(TryInto::try_into).transpose()?;
        Ok(self.device.get()?.transition(&id, request.into(), Actor::Engineer, fix)?.into())
    }

    pub fn add_note(&self, id: String, text: String) -> Result<OrderDetail, ApiError> {
        Ok(self.device.get()?.add_note(&id, &text)?.into())
    }

    /// The order's Automerge document (bytes to hand to a peer).
    pub fn document_bytes(&self, id: String) -> Result<Vec<u8>, ApiError> {
        Ok(self.device.get()?.document_bytes(&id)?)
    }

    /// Merges a document from a peer; returns the merged order.
    pub fn merge_document(&self, bytes: Vec<u8>) -> Result<OrderDetail, ApiError> {
        Ok(self.device.get()?.merge_document(&bytes)?.into())
    }

    /// Fields of an order whose concurrent values merge resolved, with their authors.
    pub fn conflicts(&self, order_id: String) -> Result<Vec<FieldConflict>, ApiError> {
        Ok(self.device.get()?.conflicts(&order_id)?.into_iter().map(crate::sync::conflict).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_including_before_the_epoch() {
        for ms in [0, 1, 1_795_000_000_123, -1, -86_400_000] {
            assert_eq!(from_time(to_time(Timestamp(ms))), Timestamp(ms));
        }
        let almost = UNIX_EPOCH + Duration::from_nanos(1_795_000_000_122_999_999);
        assert_eq!(from_time(almost), Timestamp(1_795_000_000_123));
    }
}
