//! The entry object: one per data directory.

use std::sync::Arc;
use std::time::SystemTime;

use onsite_core::{Actor, Clock, Device, DeviceOptions};

use crate::types::{from_time, GpsFix, OrderDetail, OrderFilter, OrderSummary, TransitionRequest};
use crate::ApiError;

/// A clock the app provides (tests use it to control time). A failing callback never takes
/// the core down: the system clock answers instead and the failure is logged.
#[uniffi::export(with_foreign)]
pub trait ClockSource: Send + Sync {
    fn now(&self) -> Result<SystemTime, ApiError>;
    fn monotonic_ms(&self) -> Result<u64, ApiError>;
}

struct ForeignClock {
    inner: Arc<dyn ClockSource>,
    fallback: onsite_core::SystemClock,
}

impl Clock for ForeignClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        match self.inner.now() {
            Ok(t) => from_time(t).to_datetime(),
            Err(e) => {
                tracing::warn!(error = %e, "foreign clock failed; using the system clock");
                self.fallback.now()
            }
        }
    }

    fn monotonic_ms(&self) -> u64 {
        match self.inner.monotonic_ms() {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "foreign monotonic clock failed; using the system clock");
                self.fallback.monotonic_ms()
            }
        }
    }
}

/// The app's handle on its local data: work orders in a directory it owns.
#[derive(uniffi::Object)]
pub struct OnsiteStore {
    device: Device,
}

#[uniffi::export]
impl OnsiteStore {
    /// Opens (creating if needed) the store in `data_dir`.
    #[uniffi::constructor]
    pub fn open(data_dir: String) -> Result<Arc<Self>, ApiError> {
        Ok(Arc::new(Self { device: Device::open(DeviceOptions::new(data_dir))? }))
    }

    /// Opens the store with an app-provided clock.
    #[uniffi::constructor]
    pub fn open_with_clock(data_dir: String, clock: Arc<dyn ClockSource>) -> Result<Arc<Self>, ApiError> {
        let clock = Arc::new(ForeignClock { inner: clock, fallback: onsite_core::SystemClock::new() });
        Ok(Arc::new(Self { device: Device::open(DeviceOptions::new(data_dir).with_clock(clock))? }))
    }

    /// This device's stable id.
    pub fn device_id(&self) -> String {
        self.device.device_id().to_string()
    }

    /// Imports one order or an array of orders (the dispatcher's JSON); returns their ids.
    pub fn import_orders(&self, json: String) -> Result<Vec<String>, ApiError> {
        Ok(self.device.import_orders_json(&json)?)
    }

    pub fn list_orders(&self, filter: OrderFilter) -> Result<Vec<OrderSummary>, ApiError> {
        let filter = onsite_core::OrderFilter {
            statuses: filter.statuses.into_iter().map(Into::into).collect(),
            sort: filter.sort.into(),
        };
        Ok(self.device.list(&filter)?.into_iter().map(Into::into).collect())
    }

    pub fn get_order(&self, id: String) -> Result<OrderDetail, ApiError> {
        Ok(self.device.get(&id)?.into())
    }

    /// Applies a lifecycle event as the engineer, with an optional location fix.
    pub fn transition(&self, id: String, request: TransitionRequest, fix: Option<GpsFix>) -> Result<OrderDetail, ApiError> {
        let fix = fix.map(TryInto::try_into).transpose()?;
        Ok(self.device.transition(&id, request.into(), Actor::Engineer, fix)?.into())
    }

    pub fn add_note(&self, id: String, text: String) -> Result<OrderDetail, ApiError> {
        Ok(self.device.add_note(&id, &text)?.into())
    }

    /// The order's Automerge document (bytes to hand to a peer).
    pub fn document_bytes(&self, id: String) -> Result<Vec<u8>, ApiError> {
        Ok(self.device.document_bytes(&id)?)
    }

    /// Merges a document from a peer; returns the merged order.
    pub fn merge_document(&self, bytes: Vec<u8>) -> Result<OrderDetail, ApiError> {
        Ok(self.device.merge_document(&bytes)?.into())
    }
}
