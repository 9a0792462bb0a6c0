//! `Device`: the entry point an app (through the FFI), the CLI and tests use. It ties the
//! pure order logic and SLA rules to the store and an injected clock.

mod bundle;
mod checklist;
mod countersign;
mod help;
mod journal;
mod orders;
mod parts;
mod photos;
mod profile;
mod receipts;
mod screen;
mod sync;
#[cfg(test)]
pub(crate) mod testkit;
#[cfg(test)]
mod tests;

pub use bundle::{ExportOptions, ExportSummary};
pub use checklist::ChecklistView;
pub use help::{HelpCost, HelpQuestion, HelpThread};
pub use orders::{OrderFilter, OrderView};
pub use parts::{Closeout, MovementInput};
pub use photos::{IngestReport, PhotoSource, NEAR_DUPLICATE_BITS, REUSE_HITS_JOURNALED};
pub use screen::OrderScreen;
pub use sync::{Error as SyncError, Phase, RejectedOrder, SyncObserver, SyncOptions, SyncProgress, SyncReport, SyncStatus};

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use crate::changes::{ChangeFeed, ChangeListener, ChangeOrigin, Subscription};
use crate::clock::{Clock, SystemClock};
use crate::crypt::Encryption;
use crate::evidence::blob::BlobStore;
use crate::evidence::{photo, EvidenceError, Signer, SoftwareSigner};
use crate::location::LocationSource;
use crate::order::{GpsFix, Timestamp, WorkOrder};
use crate::sla::{SlaPolicy, WorkCalendar};
use crate::sop::{Registry, Template};
use crate::store::{MetaKey, OrderSummary, Stamp, Store};
use crate::Result;

pub struct DeviceOptions {
    pub data_dir: PathBuf,
    pub clock: Arc<dyn Clock>,
    pub calendar: WorkCalendar,
    pub sla: SlaPolicy,
    /// Refuse to complete an order that never started a checklist (default true: the SOP
    /// is how the platform later proves what was done).
    pub require_checklist: bool,
    /// Refuse to complete an order whose customer has neither signed nor refused the receipt
    /// (default true: the signed receipt is the record disputes are settled on).
    pub require_receipt: bool,
    /// The device key. `None`: a software P-256 key kept in the store (desktop, tests).
    pub signer: Option<Arc<dyn Signer>>,
    /// The public key (SEC1) of the authority whose time tickets this device accepts.
    pub time_authority: Option<Vec<u8>>,
    /// The platform's location provider, asked when an action comes without a fix.
    pub location: Option<Arc<dyn LocationSource>>,
    /// How the data is kept at rest. Default: encrypted with the key file beside the data
    /// directory (`crypt::KeyFile::for_data_dir`); apps pass their platform's key.
    pub encryption: Encryption,
}

impl DeviceOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        Self {
            encryption: Encryption::Key(Arc::new(crate::crypt::KeyFile::for_data_dir(&data_dir))),
            data_dir,
            clock: SystemClock::shared(),
            calendar: WorkCalendar::china_default(),
            sla: SlaPolicy::default(),
            require_checklist: true,
            require_receipt: true,
            signer: None,
            time_authority: None,
            location: None,
        }
    }

    pub fn with_signer(mut self, signer: Arc<dyn Signer>) -> Self {
        self.signer = Some(signer);
        self
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn with_encryption(mut self, encryption: Encryption) -> Self {
        self.encryption = encryption;
        self
    }

    pub fn with_location(mut self, location: Arc<dyn LocationSource>) -> Self {
        self.location = Some(location);
        self
    }
}

pub struct Device {
    store: Arc<Store>,
    /// The hardware key's countersignatures, taken on their own thread (ADR 0017).
    countersigner: countersign::Countersigner,
    /// The device key (also installed in the store, which seals journal entries with it).
    signer: Arc<dyn Signer>,
    clock: Arc<dyn Clock>,
    calendar: WorkCalendar,
    sla: SlaPolicy,
    require_checklist: bool,
    require_receipt: bool,
    templates: RwLock<Registry>,
    blobs: BlobStore,
    photo_limits: photo::Limits,
    /// The platform's decoder for what the core does not decode (HEIC, AVIF).
    image_decoder: RwLock<Option<Arc<dyn photo::PlatformDecoder>>>,
    location: Option<Arc<dyn LocationSource>>,
    changes: ChangeFeed,
}

impl Device {
    pub fn open(options: DeviceOptions) -> Result<Self> {
        // A path that cannot be a directory is a storage error, before any key is asked for.
        std::fs::create_dir_all(&options.data_dir).map_err(|e| crate::store::Error::Open { path: options.data_dir.clone(), reason: e.to_string() })?;
        let key = match &options.encryption {
            Encryption::Key(source) => Some(source.store_key().map_err(crate::store::Error::from)?),
            Encryption::Plain => None,
        };
        let store = Arc::new(Store::open_with(&options.data_dir, key.as_ref())?);
        let signer: Arc<dyn Signer> = match options.signer {
            Some(s) => s,
            None => match store.meta(MetaKey::DeviceKey)? {
                Some(hex) => {
                    let bytes = crate::hash::unhex(&hex).ok_or(crate::store::Error::NoSigner)?;
                    Arc::new(SoftwareSigner::from_secret(&bytes).map_err(crate::evidence::journal::Error::from).map_err(crate::store::Error::from)?)
                }
                None => {
                    let s = SoftwareSigner::generate().map_err(crate::evidence::journal::Error::from).map_err(crate::store::Error::from)?;
                    store.set_meta(MetaKey::DeviceKey, &crate::hash::hex(&s.secret()))?;
                    Arc::new(s)
                }
            },
        };
        let public = crate::hash::hex(&signer.public_key());
        match store.meta(MetaKey::DevicePublicKey)? {
            Some(known) if known != public => return Err(crate::evidence::EvidenceError::KeyMismatch.into()),
            Some(_) => {}
            None => store.set_meta(MetaKey::DevicePublicKey, &public)?,
        }
        store.set_signer(signer.clone());
        if let Some(a) = &options.time_authority {
            store.set_meta(MetaKey::TimeAuthority, &crate::hash::hex(a))?;
        }
        let mut templates = Registry::with_builtins()?;
        for t in store.published_templates()? {
            templates.add(Template::parse(&t.name, &t.source)?)?;
        }
        let blobs = match &key {
            Some(k) => BlobStore::open_encrypted(&options.data_dir.join("blobs"), k),
            None => BlobStore::open(&options.data_dir.join("blobs")),
        }
        .map_err(EvidenceError::from)?;
        // The plain-store migration's last step (docs/adr/0018): blob files left plain are
        // encrypted one by one, each atomically; a crash resumes it on the next open.
        if blobs.is_encrypted() && store.meta(MetaKey::BlobsEncrypted)?.is_none() {
            let (encrypted, damaged) = blobs.encrypt_existing().map_err(EvidenceError::from)?;
            if encrypted > 0 || damaged > 0 {
                tracing::info!(encrypted, damaged, "blob files encrypted");
            }
            store.set_meta(MetaKey::BlobsEncrypted, "1")?;
        }
        let device = Self {
            countersigner: countersign::Countersigner::start(store.clone(), signer.clone(), options.clock.clone()),
            store,
            signer,
            blobs,
            photo_limits: photo::Limits::default(),
            image_decoder: RwLock::new(None),
            clock: options.clock,
            calendar: options.calendar,
            sla: options.sla,
            require_checklist: options.require_checklist,
            require_receipt: options.require_receipt,
            templates: RwLock::new(templates),
            location: options.location,
            changes: ChangeFeed::default(),
        };
        // Entries the last run wrote but never sealed (the app was killed): sealed now by a
        // new session, whose `session_open` entry says which (ADR 0017).
        if device.store.has_unsealed()? {
            device.store.seal_pending(device.stamp(), "reopen")?;
        }
        for seq in device.store.uncountersigned()? {
            device.countersigner.request(seq, true);
        }
        Ok(device)
    }

    /// Registers a listener told which orders changed (after local edits and merges);
    /// delivery stops when the returned handle is dropped.
    /// Hands HEIC, AVIF and other formats the core does not decode to the platform's codecs
    /// (thumbnail and perceptual hash from its small image; the original is hashed here).
    pub fn set_image_decoder(&self, decoder: Arc<dyn photo::PlatformDecoder>) {
        *self.image_decoder.write().unwrap_or_else(|p| p.into_inner()) = Some(decoder);
    }

    pub fn subscribe(&self, listener: Arc<dyn ChangeListener>) -> Subscription {
        self.changes.subscribe(listener)
    }

    pub(crate) fn changed(&self, id: &str, origin: ChangeOrigin) {
        self.changes.emit([id.to_string()], origin);
    }

    pub(crate) fn changed_many(&self, ids: impl IntoIterator<Item = String>, origin: ChangeOrigin) {
        self.changes.emit(ids, origin);
    }

    /// The fix to record: the caller's, refused when it is not a fix ([`GpsFix::check`]),
    /// else the platform provider's (a failing provider, or one answering with something that
    /// is not a fix, records no fix; the engineer's action still goes through).
    pub(crate) fn fix_or_current(&self, fix: Option<GpsFix>) -> Result<Option<GpsFix>> {
        if let Some(f) = fix {
            f.check()?;
            return Ok(Some(f));
        }
        let Some(source) = self.location.as_ref() else { return Ok(None) };
        Ok(match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| source.current_fix())) {
            Ok(Some(f)) => match f.check() {
                Ok(()) => Some(f),
                Err(e) => {
                    tracing::warn!(error = %e, "the location provider's fix is not a fix; none recorded");
                    None
                }
            },
            Ok(None) => None,
            Err(_) => {
                tracing::warn!("the location provider failed; no fix recorded");
                None
            }
        })
    }

    pub fn device_id(&self) -> &str {
        self.store.device_id()
    }

    /// The store, for tests and tools that inspect it. Apps (through the FFI) and the CLI
    /// use `Device`'s methods only.
    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn now(&self) -> Timestamp {
        Timestamp::from_datetime(self.clock.now())
    }

    /// Wall and monotonic readings taken together.
    pub fn stamp(&self) -> Stamp {
        Stamp { at_ms: self.now().0, mono_ms: self.clock.monotonic_ms() }
    }

    pub(crate) fn summarize(&self, order: &WorkOrder) -> OrderSummary {
        OrderSummary::of(order, &self.sla, &self.calendar, self.clock.now())
    }

    pub(crate) fn registry(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.templates.read().unwrap_or_else(|p| p.into_inner())
    }
}
