//! The entry object, one per data directory, and its sub-areas. `Onsite` opens the store
//! with the platform's services (clock, hardware key, location) and hands out one thin
//! object per area: `orders()`, `checklist()`, `evidence()`, `receipts()`, `sync()`. Each
//! forwards to the core's `Device`; nothing here holds logic.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use onsite_core::{Clock, Device, DeviceOptions};

use crate::checklist::ChecklistApi;
use crate::evidence::{DeviceSigner, EvidenceApi, ForeignDecoder, ForeignSigner, ImageDecoder};
use crate::help::HelpApi;
use crate::orders::{from_time, GpsFix, OrdersApi};
use crate::parts::PartsApi;
use crate::profile::ProfileApi;
use crate::receipts::ReceiptsApi;
use crate::sync::SyncApi;
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

/// The platform's location provider (Android FusedLocationProvider, iOS CoreLocation).
/// Asked when an arrival or a photo comes without a fix. An error or no fix records no
/// fix; the engineer's action still goes through.
#[uniffi::export(with_foreign)]
pub trait LocationProvider: Send + Sync {
    fn current_fix(&self) -> Result<Option<GpsFix>, ApiError>;
}

struct ForeignLocation(Arc<dyn LocationProvider>);

impl onsite_core::LocationSource for ForeignLocation {
    fn current_fix(&self) -> Option<onsite_core::GpsFix> {
        match self.0.current_fix() {
            Ok(Some(fix)) => match fix.try_into() {
                Ok(f) => Some(f),
                Err(e) => {
                    tracing::warn!(error = %e, "the location provider gave an invalid fix; none recorded");
                    None
                }
            },
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "the location provider failed; no fix recorded");
                None
            }
        }
    }
}

/// Where a change came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ChangeOrigin {
    /// An edit on this device.
    Local,
    /// Merged from the server or a peer.
    Remote,
}

/// Told which orders changed (after local edits and merges) so screens refresh. Called on
/// the thread that made the change: hop to the main thread before touching UI. A listener
/// that throws is contained; the change itself is already committed.
#[uniffi::export(with_foreign)]
pub trait OrderChangeListener: Send + Sync {
    fn on_orders_changed(&self, order_ids: Vec<String>, origin: ChangeOrigin) -> Result<(), ApiError>;
}

struct ForeignChanges(Arc<dyn OrderChangeListener>);

impl onsite_core::ChangeListener for ForeignChanges {
    fn orders_changed(&self, order_ids: &[String], origin: onsite_core::ChangeOrigin) {
        let origin = match origin {
            onsite_core::ChangeOrigin::Local => ChangeOrigin::Local,
            onsite_core::ChangeOrigin::Remote => ChangeOrigin::Remote,
        };
        if let Err(e) = self.0.on_orders_changed(order_ids.to_vec(), origin) {
            tracing::warn!(error = %e, orders = order_ids.len(), "the app's change listener failed");
        }
    }
}

/// A live registration: delivery stops on `cancel()` or when the handle is freed
/// (Kotlin `close()`, Swift `deinit`).
#[derive(uniffi::Object)]
pub struct ChangeSubscription {
    inner: Mutex<Option<onsite_core::Subscription>>,
}

#[uniffi::export]
impl ChangeSubscription {
    pub fn cancel(&self) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    pub fn is_active(&self) -> bool {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).as_ref().is_some_and(|s| s.is_active())
    }
}

/// The platform's key for the store's encryption at rest (docs/adr/0018): 32 random bytes,
/// created once and kept by the platform (Android: wrapped by an Android Keystore key; iOS: a
/// Keychain item, accessible after first unlock, this device only). An error (keystore
/// locked) fails the open with `ApiError.StoreKey`; nothing is touched.
#[uniffi::export(with_foreign)]
pub trait StoreKeyProvider: Send + Sync {
    fn store_key(&self) -> Result<Vec<u8>, ApiError>;
}

struct ForeignKey(Arc<dyn StoreKeyProvider>);

impl onsite_core::crypt::KeySource for ForeignKey {
    fn store_key(&self) -> Result<onsite_core::crypt::StoreKey, onsite_core::crypt::KeyError> {
        let bytes = self.0.store_key().map_err(|e| onsite_core::crypt::KeyError::Unavailable { reason: e.to_string() })?;
        onsite_core::crypt::StoreKey::from_bytes(&bytes)
    }
}

/// The app's handle on its local data: one per data directory, opened once at start.
#[derive(uniffi::Object)]
pub struct Onsite {
    device: Arc<Device>,
}

#[uniffi::export]
impl Onsite {
    /// Opens (creating if needed) the store in `data_dir`, with a software device key,
    /// encrypted with a key file kept beside the directory (`<data_dir>.key`; desktop).
    #[uniffi::constructor]
    pub fn open(data_dir: String) -> Result<Arc<Self>, ApiError> {
        Self::open_with_platform(data_dir, None, None, None, None)
    }

    /// Opens the store with the platform's services: a clock (tests), the hardware-backed
    /// device key, the location provider, and the key the store is encrypted with (a plain
    /// store from an earlier version is encrypted in place). `None` takes the default.
    #[uniffi::constructor(default(store_key = None))]
    pub fn open_with_platform(
        data_dir: String,
        clock: Option<Arc<dyn ClockSource>>,
        signer: Option<Arc<dyn DeviceSigner>>,
        location: Option<Arc<dyn LocationProvider>>,
        store_key: Option<Arc<dyn StoreKeyProvider>>,
    ) -> Result<Arc<Self>, ApiError> {
        let mut options = DeviceOptions::new(data_dir);
        if let Some(key) = store_key {
            options = options.with_encryption(onsite_core::crypt::Encryption::Key(Arc::new(ForeignKey(key))));
        }
        if let Some(clock) = clock {
            options = options.with_clock(Arc::new(ForeignClock { inner: clock, fallback: onsite_core::SystemClock::new() }));
        }
        if let Some(signer) = signer {
            options = options.with_signer(Arc::new(ForeignSigner(signer)));
        }
        if let Some(location) = location {
            options = options.with_location(Arc::new(ForeignLocation(location)));
        }
        Ok(Arc::new(Self { device: Arc::new(Device::open(options)?) }))
    }

    /// This device's stable id.
    pub fn device_id(&self) -> String {
        self.device.device_id().to_string()
    }

    /// This device's public key (SEC1 uncompressed), as the server registers it.
    pub fn public_key(&self) -> Vec<u8> {
        self.device.public_key()
    }

    pub fn orders(&self) -> Arc<OrdersApi> {
        Arc::new(OrdersApi { device: Handle(Arc::downgrade(&self.device)) })
    }

    pub fn checklist(&self) -> Arc<ChecklistApi> {
        Arc::new(ChecklistApi { device: Handle(Arc::downgrade(&self.device)) })
    }

    pub fn evidence(&self) -> Arc<EvidenceApi> {
        Arc::new(EvidenceApi { device: Handle(Arc::downgrade(&self.device)) })
    }

    pub fn receipts(&self) -> Arc<ReceiptsApi> {
        Arc::new(ReceiptsApi { device: Handle(Arc::downgrade(&self.device)) })
    }

    pub fn sync(&self) -> Arc<SyncApi> {
        Arc::new(SyncApi { device: Handle(Arc::downgrade(&self.device)) })
    }

    /// The spare-part ledger (备件借用).
    pub fn parts(&self) -> Arc<PartsApi> {
        Arc::new(PartsApi { device: Handle(Arc::downgrade(&self.device)) })
    }

    /// Expert help from an order (专家求助).
    pub fn help(&self) -> Arc<HelpApi> {
        Arc::new(HelpApi { device: Handle(Arc::downgrade(&self.device)) })
    }

    /// The engineer's signed service record (数字化履历).
    pub fn profile(&self) -> Arc<ProfileApi> {
        Arc::new(ProfileApi { device: Handle(Arc::downgrade(&self.device)) })
    }

    /// The platform's image decoder (ImageIO, Android ImageDecoder) for photo formats the
    /// core does not decode (HEIC, AVIF...): they then get a thumbnail and a perceptual hash.
    pub fn set_image_decoder(&self, decoder: Arc<dyn ImageDecoder>) {
        self.device.set_image_decoder(Arc::new(ForeignDecoder(decoder)));
    }

    /// Registers `listener` for order changes; keep the handle as long as the screen lives.
    pub fn subscribe(&self, listener: Arc<dyn OrderChangeListener>) -> Arc<ChangeSubscription> {
        let sub = self.device.subscribe(Arc::new(ForeignChanges(listener)));
        Arc::new(ChangeSubscription { inner: Mutex::new(Some(sub)) })
    }
}

/// A sub-area's link to the store: it does not keep the store open. Closing the `Onsite`
/// object closes the database; a sub-area used afterwards answers `ApiError.Closed`.
/// (A running async call holds the store until it finishes.)
pub(crate) struct Handle(pub(crate) std::sync::Weak<Device>);

impl Handle {
    pub(crate) fn get(&self) -> Result<Arc<Device>, ApiError> {
        self.0.upgrade().ok_or(ApiError::Closed)
    }
}
