//! The entry object: one per data directory.

use std::sync::Arc;
use std::time::SystemTime;

use onsite_core::{Actor, Clock, Device, DeviceOptions};

use crate::checklist::{AnswerRecord, Blocker, ChecklistView, StepAnswer, TemplateInfo};
use crate::evidence::{DeviceSigner, ForeignSigner, IngestReport, JournalEntry, JournalReport};
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
    pub(crate) device: Device,
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

    /// Opens the store with the app's clock and hardware-backed device key.
    #[uniffi::constructor]
    pub fn open_with_platform(data_dir: String, clock: Option<Arc<dyn ClockSource>>, signer: Option<Arc<dyn DeviceSigner>>) -> Result<Arc<Self>, ApiError> {
        let mut options = DeviceOptions::new(data_dir);
        if let Some(clock) = clock {
            options = options.with_clock(Arc::new(ForeignClock { inner: clock, fallback: onsite_core::SystemClock::new() }));
        }
        if let Some(signer) = signer {
            options = options.with_signer(Arc::new(ForeignSigner(signer)));
        }
        Ok(Arc::new(Self { device: Device::open(options)? }))
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

    /// The latest version of every checklist template on this device.
    pub fn list_templates(&self) -> Vec<TemplateInfo> {
        self.device.templates().iter().map(|t| t.as_ref().into()).collect()
    }

    /// Publishes a template version (TOML) to this device; running orders keep theirs.
    pub fn publish_template(&self, file_name: String, toml: String) -> Result<TemplateInfo, ApiError> {
        Ok(self.device.publish_template(&file_name, &toml)?.as_ref().into())
    }

    /// Starts the order's checklist on the latest version of `template_id`.
    pub fn start_checklist(&self, order_id: String, template_id: String) -> Result<ChecklistView, ApiError> {
        Ok(self.device.start_checklist(&order_id, &template_id)?.into())
    }

    pub fn checklist(&self, order_id: String) -> Result<ChecklistView, ApiError> {
        Ok(self.device.checklist(&order_id)?.into())
    }

    /// Records an answer; a correction is a new answer (history keeps the old ones).
    pub fn answer_step(&self, order_id: String, step_id: String, answer: StepAnswer) -> Result<ChecklistView, ApiError> {
        Ok(self.device.answer(&order_id, &step_id, answer.try_into()?)?.into())
    }

    pub fn mark_not_applicable(&self, order_id: String, step_id: String, reason: String) -> Result<ChecklistView, ApiError> {
        Ok(self.device.mark_not_applicable(&order_id, &step_id, &reason)?.into())
    }

    /// Every answer given to a step, oldest first.
    pub fn step_history(&self, order_id: String, step_id: String) -> Result<Vec<AnswerRecord>, ApiError> {
        Ok(self.device.step_history(&order_id, &step_id)?.iter().map(Into::into).collect())
    }

    /// Why the order cannot be completed yet (empty when it can).
    pub fn blockers(&self, order_id: String) -> Result<Vec<Blocker>, ApiError> {
        Ok(self.device.blockers(&order_id)?.iter().map(Into::into).collect())
    }

    /// Stores a photo file as evidence for an order (optionally a checklist step).
    pub fn ingest_photo_file(&self, order_id: String, step_id: Option<String>, path: String, fix: Option<GpsFix>) -> Result<IngestReport, ApiError> {
        let fix = fix.map(TryInto::try_into).transpose()?;
        let source = onsite_core::device::PhotoSource::Path(std::path::Path::new(&path));
        Ok(self.device.ingest_photo(&order_id, step_id.as_deref(), source, fix)?.into())
    }

    /// Stores photo bytes as evidence for an order (optionally a checklist step).
    pub fn ingest_photo_bytes(&self, order_id: String, step_id: Option<String>, bytes: Vec<u8>, fix: Option<GpsFix>) -> Result<IngestReport, ApiError> {
        let fix = fix.map(TryInto::try_into).transpose()?;
        Ok(self.device.ingest_photo(&order_id, step_id.as_deref(), onsite_core::device::PhotoSource::Bytes(&bytes), fix)?.into())
    }

    /// A stored blob (photo or thumbnail) by SHA-256.
    pub fn blob(&self, sha256: String) -> Result<Vec<u8>, ApiError> {
        Ok(self.device.blob(&sha256)?)
    }

    /// The operation log, all of it or one order's.
    pub fn journal(&self, order_id: Option<String>) -> Result<Vec<JournalEntry>, ApiError> {
        self.device.journal(order_id.as_deref())?.into_iter().map(TryInto::try_into).collect()
    }

    /// Verifies the whole journal: hash chain, signatures, no gaps.
    pub fn verify_journal(&self) -> Result<JournalReport, ApiError> {
        Ok(self.device.verify_journal()?.into())
    }

    /// This device's public key (SEC1 uncompressed).
    pub fn public_key(&self) -> Vec<u8> {
        self.device.public_key()
    }
}
