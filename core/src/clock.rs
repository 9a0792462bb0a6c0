//! Injected time. Every record the device writes carries a wall-clock time (which the user or
//! the OS can change) and a monotonic reading (which they cannot), so later checks can spot
//! a wall clock that jumped. Tests drive time with [`ManualClock`].

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, TimeZone, Utc};

/// A source of wall time and a monotonic reading.
pub trait Clock: Send + Sync {
    /// Wall-clock time (UTC).
    fn now(&self) -> DateTime<Utc>;
    /// Milliseconds on a clock that never goes backwards while the process lives
    /// (Android `elapsedRealtime`, iOS `mach_continuous_time`, here `Instant`).
    fn monotonic_ms(&self) -> u64;
}

/// The operating system's clocks.
#[derive(Debug)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    pub fn new() -> Self {
        Self { origin: Instant::now() }
    }

    pub fn shared() -> Arc<dyn Clock> {
        Arc::new(Self::new())
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    /// Milliseconds since boot (CLOCK_BOOTTIME: keeps counting in suspend, like Android's
    /// `elapsedRealtime`), so readings from different processes of one boot compare; falls
    /// back to time since this clock was made.
    fn monotonic_ms(&self) -> u64 {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            // SAFETY: clock_gettime writes into the timespec we own; no other memory is touched.
            let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
            if rc == 0 {
                return (ts.tv_sec as u64).saturating_mul(1000) + (ts.tv_nsec as u64) / 1_000_000;
            }
        }
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// A clock that only moves when told to. Thread-safe, cheap to clone through `Arc`.
#[derive(Debug)]
pub struct ManualClock {
    wall_ms: AtomicI64,
    mono_ms: AtomicU64,
}

impl ManualClock {
    pub fn at(wall: DateTime<Utc>) -> Self {
        Self { wall_ms: AtomicI64::new(wall.timestamp_millis()), mono_ms: AtomicU64::new(0) }
    }

    /// Moves both clocks forward.
    pub fn advance(&self, by: chrono::Duration) {
        let ms = by.num_milliseconds().max(0);
        self.wall_ms.fetch_add(ms, Ordering::SeqCst);
        self.mono_ms.fetch_add(ms as u64, Ordering::SeqCst);
    }

    /// Moves only the wall clock (to any value), as a user changing the phone's time would.
    pub fn set_wall(&self, wall: DateTime<Utc>) {
        self.wall_ms.store(wall.timestamp_millis(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(self.wall_ms.load(Ordering::SeqCst)).single().unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
    }

    fn monotonic_ms(&self) -> u64 {
        self.mono_ms.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 23, 1, 0, 0).unwrap();
        let c = ManualClock::at(t0);
        assert_eq!(c.now(), t0);
        c.advance(chrono::Duration::minutes(5));
        assert_eq!(c.now(), t0 + chrono::Duration::minutes(5));
        assert_eq!(c.monotonic_ms(), 300_000);
        c.set_wall(t0);
        assert_eq!(c.now(), t0);
        assert_eq!(c.monotonic_ms(), 300_000, "wall changes never move the monotonic clock");
    }

    #[test]
    fn system_clock_monotonic_never_goes_back() {
        let c = SystemClock::new();
        let a = c.monotonic_ms();
        let b = c.monotonic_ms();
        assert!(b >= a);
    }
}
