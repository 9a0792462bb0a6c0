//! Countersignatures off the edit path (ADR 0017): a consent is journaled and sealed by the
//! session key at once; the hardware key's countersignature over the entry is taken on this
//! worker thread, so a tap never waits on a slow secure element. A consent the worker did not
//! reach before the app was killed is countersigned when the store opens again (`late`).

use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use crate::clock::Clock;
use crate::evidence::journal::{countersign_message, Countersign, Draft, JournalKind};
use crate::evidence::{signer, Signer};
use crate::hash::hex;
use crate::store::{Stamp, Store};

struct Request {
    seq: u64,
    late: bool,
}

pub(crate) struct Countersigner {
    queue: Mutex<Option<Sender<Request>>>,
    pending: Arc<(Mutex<usize>, Condvar)>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl Countersigner {
    pub fn start(store: Arc<Store>, signer: Arc<dyn Signer>, clock: Arc<dyn Clock>) -> Self {
        let (tx, rx) = channel::<Request>();
        let pending: Arc<(Mutex<usize>, Condvar)> = Arc::default();
        let done = pending.clone();
        let worker = std::thread::Builder::new().name("onsite-countersign".into()).spawn(move || {
            for r in rx {
                if let Err(e) = countersign(&store, signer.as_ref(), clock.as_ref(), &r) {
                    tracing::error!(seq = r.seq, error = %e, "countersignature failed; retried when the store opens again");
                }
                let (count, cv) = &*done;
                let mut n = count.lock().unwrap_or_else(|p| p.into_inner());
                *n = n.saturating_sub(1);
                cv.notify_all();
            }
        });
        let worker = match worker {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::error!(error = %e, "no countersignature thread; consents are countersigned when the store opens again");
                None
            }
        };
        let queue = worker.is_some().then_some(tx);
        Self { queue: Mutex::new(queue), pending, worker: Mutex::new(worker) }
    }

    /// Asks for entry `seq` to be countersigned (returns at once).
    pub fn request(&self, seq: u64, late: bool) {
        let queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = queue.as_ref() {
            *self.pending.0.lock().unwrap_or_else(|p| p.into_inner()) += 1;
            if tx.send(Request { seq, late }).is_err() {
                *self.pending.0.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
            }
        }
    }

    /// Waits until every requested countersignature is written (before a sync or export).
    pub fn flush(&self) {
        let (count, cv) = &*self.pending;
        let mut n = count.lock().unwrap_or_else(|p| p.into_inner());
        while *n > 0 {
            n = cv.wait(n).unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl Drop for Countersigner {
    fn drop(&mut self) {
        // Closing the queue lets the worker finish what it holds, then stop.
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(w) = self.worker.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = w.join();
        }
    }
}

fn countersign(store: &Store, hardware: &dyn Signer, clock: &dyn Clock, r: &Request) -> crate::Result<()> {
    let entry = store.journal_entry(r.seq)?.ok_or(crate::store::Error::NotFound { id: format!("journal entry {}", r.seq) })?;
    let body = entry.body().map_err(crate::store::Error::from)?;
    let message = countersign_message(store.device_id(), r.seq, &entry.hash);
    let signature = signer::normalize(&hardware.sign(&message).map_err(crate::evidence::journal::Error::from).map_err(crate::store::Error::from)?)
        .map_err(crate::evidence::journal::Error::from)
        .map_err(crate::store::Error::from)?;
    let c = Countersign { seq: r.seq, hash: entry.hash, signature: hex(&signature), late: r.late };
    let draft = Draft::of(JournalKind::Countersign, body.order.as_deref(), &c).map_err(crate::store::Error::from)?;
    let stamp = Stamp { at_ms: clock.now().timestamp_millis(), mono_ms: clock.monotonic_ms() };
    store.append_journal(stamp, &draft)?;
    Ok(())
}
