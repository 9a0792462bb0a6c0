//! Async exports without an async runtime: the blocking core call runs on its own thread and
//! the returned future completes when it is done.
//!
//! Cancellation, two ways: dropping the future (a cancelled Kotlin coroutine: the generated
//! code cancels and frees it) or a [`CancelToken`] passed to the call (Swift: the generated
//! code does not forward `Task` cancellation, so the `Onsite` package wraps each async call in
//! `withTaskCancellationHandler` with a token). Either one fires the core's [`Cancel`], so the
//! work stops at its next safe point, and the call answers `ApiError.Cancelled` at once. Work
//! that already reached its commit point stays committed (and is announced to change
//! listeners): cancelling never loses accepted data.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use onsite_core::Cancel;

use crate::ApiError;

struct Slot<T> {
    value: Option<T>,
    closed: bool,
    waker: Option<Waker>,
}

struct Sender<T>(Arc<Mutex<Slot<T>>>);

impl<T> Sender<T> {
    fn send(self, value: T) {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        slot.value = Some(value);
        // Drop wakes the receiver.
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
            slot.closed = true;
            slot.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// Cancels async calls it is passed to; one token may serve several calls.
#[derive(Default, uniffi::Object)]
pub struct CancelToken {
    cancel: Cancel,
    wakers: Mutex<Vec<Waker>>,
}

#[uniffi::export]
impl CancelToken {
    #[uniffi::constructor]
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Stops the calls using this token; they answer `ApiError.Cancelled`.
    pub fn cancel(&self) {
        self.cancel.cancel();
        let wakers = std::mem::take(&mut *self.wakers.lock().unwrap_or_else(|p| p.into_inner()));
        for w in wakers {
            w.wake();
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
}

/// The waiting side; fires the cancel token when dropped before the result arrived.
struct Job<T> {
    slot: Arc<Mutex<Slot<T>>>,
    cancel: Cancel,
    token: Option<Arc<CancelToken>>,
    finished: bool,
}

enum Outcome<T> {
    Done(T),
    Lost,
    Cancelled,
}

impl<T> Future for Job<T> {
    type Output = Outcome<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(token) = &self.token {
            if token.is_cancelled() {
                // Answer now; the worker stops at its next safe point (Drop fires `cancel`).
                return Poll::Ready(Outcome::Cancelled);
            }
            token.wakers.lock().unwrap_or_else(|p| p.into_inner()).push(cx.waker().clone());
        }
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = slot.value.take() {
            drop(slot);
            self.finished = true;
            return Poll::Ready(Outcome::Done(v));
        }
        if slot.closed {
            drop(slot);
            self.finished = true;
            return Poll::Ready(Outcome::Lost);
        }
        slot.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl<T> Unpin for Job<T> {}

impl<T> Drop for Job<T> {
    fn drop(&mut self) {
        if !self.finished {
            tracing::debug!("async call dropped before it finished: cancelling");
            self.cancel.cancel();
        }
    }
}

/// Runs `work` on a new thread with a cancel token; the caller awaits the result.
pub(crate) async fn blocking<T, F>(name: &'static str, token: Option<Arc<CancelToken>>, work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Cancel) -> Result<T, ApiError> + Send + 'static,
{
    let cancel = token.as_ref().map(|t| t.cancel.clone()).unwrap_or_default();
    if cancel.is_cancelled() {
        return Err(ApiError::Cancelled);
    }
    let slot = Arc::new(Mutex::new(Slot { value: None, closed: false, waker: None }));
    let tx = Sender(slot.clone());
    let worker_cancel = cancel.clone();
    std::thread::Builder::new()
        .name(format!("onsite-{name}"))
        .spawn(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&worker_cancel)))
                .unwrap_or_else(|_| Err(ApiError::Internal { reason: format!("{name} failed unexpectedly") }));
            tx.send(result);
        })
        .map_err(|e| ApiError::Internal { reason: format!("cannot start {name}: {e}") })?;
    match (Job { slot, cancel, token, finished: false }).await {
        Outcome::Done(result) => result,
        Outcome::Cancelled => Err(ApiError::Cancelled),
        Outcome::Lost => Err(ApiError::Internal { reason: format!("{name} ended without a result") }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::Wake;

    struct Flag(AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        let mut f = Box::pin(f);
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        loop {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
            while !flag.0.swap(false, Ordering::SeqCst) {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
    }

    #[test]
    fn result_and_errors_come_back() {
        assert_eq!(block_on(blocking("t", None, |_| Ok(41 + 1))).unwrap(), 42);
        let e = block_on(blocking::<(), _>("t", None, |_| Err(ApiError::NotFound { id: "x".into() })));
        assert!(matches!(e, Err(ApiError::NotFound { .. })));
        let p = block_on(blocking::<(), _>("t", None, |_| panic!("bug")));
        assert!(matches!(p, Err(ApiError::Internal { .. })));
    }

    #[test]
    fn dropping_the_future_cancels_the_work() {
        let seen = Arc::new(AtomicBool::new(false));
        let s = seen.clone();
        let mut fut = Box::pin(blocking("t", None, move |c: &Cancel| {
            let stopped = c.sleep(std::time::Duration::from_secs(20));
            s.store(stopped, Ordering::SeqCst);
            Ok(())
        }));
        let waker = Waker::from(Arc::new(Flag(AtomicBool::new(false))));
        assert!(fut.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
        drop(fut);
        for _ in 0..200 {
            if seen.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("the worker never saw the cancel");
    }

    #[test]
    fn a_token_answers_cancelled_at_once_and_stops_the_worker() {
        let token = CancelToken::new();
        let seen = Arc::new(AtomicBool::new(false));
        let s = seen.clone();
        let t = token.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            t.cancel();
        });
        let started = std::time::Instant::now();
        let r = block_on(blocking("t", Some(token.clone()), move |c: &Cancel| {
            s.store(c.sleep(std::time::Duration::from_secs(20)), Ordering::SeqCst);
            Ok(())
        }));
        assert!(matches!(r, Err(ApiError::Cancelled)), "{r:?}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        // A cancelled token refuses new calls without starting them.
        assert!(matches!(block_on(blocking("t", Some(token), |_| Ok(()))), Err(ApiError::Cancelled)));
        for _ in 0..200 {
            if seen.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("the worker never saw the cancel");
    }
}
