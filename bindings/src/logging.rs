//! Routes the core's `tracing` events to the platform's log (Logcat, OSLog) through a
//! foreign trait. One global subscriber is installed on first use; later calls swap the sink
//! or the level. A sink that throws or panics loses that one line, never the core; a sink
//! that logs back into the core is not re-entered.

use std::cell::Cell;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

use crate::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, uniffi::Enum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct LogRecord {
    pub level: LogLevel,
    /// The module that logged, e.g. `onsite_core::device::sync` (a Logcat tag, an OSLog category).
    pub target: String,
    /// The message followed by its fields, `key=value`.
    pub message: String,
}

/// The app's log: Logcat on Android, `os.Logger` on iOS. Called on the logging thread.
#[uniffi::export(with_foreign)]
pub trait LogSink: Send + Sync {
    fn log(&self, record: LogRecord) -> Result<(), ApiError>;
}

static SINK: RwLock<Option<Arc<dyn LogSink>>> = RwLock::new(None);
static LEVEL: AtomicU8 = AtomicU8::new(0);
static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();

thread_local! {
    static IN_SINK: Cell<bool> = const { Cell::new(false) };
}

fn rank(level: &tracing::Level) -> u8 {
    match *level {
        tracing::Level::ERROR => 1,
        tracing::Level::WARN => 2,
        tracing::Level::INFO => 3,
        tracing::Level::DEBUG => 4,
        tracing::Level::TRACE => 5,
    }
}

fn level_of(level: &tracing::Level) -> LogLevel {
    match *level {
        tracing::Level::ERROR => LogLevel::Error,
        tracing::Level::WARN => LogLevel::Warn,
        tracing::Level::INFO => LogLevel::Info,
        tracing::Level::DEBUG => LogLevel::Debug,
        tracing::Level::TRACE => LogLevel::Trace,
    }
}

#[derive(Default)]
struct Message {
    text: String,
    fields: String,
}

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.text, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.text.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }
}

struct SinkLayer;

impl<S: Subscriber> Layer<S> for SinkLayer {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        // The level changes at run time: decide per event.
        Interest::sometimes()
    }

    fn enabled(&self, meta: &Metadata<'_>, _: Context<'_, S>) -> bool {
        rank(meta.level()) <= LEVEL.load(Ordering::Relaxed)
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if IN_SINK.with(|f| f.replace(true)) {
            return;
        }
        let sink = SINK.read().ok().and_then(|s| s.clone());
        if let Some(sink) = sink {
            let mut m = Message::default();
            event.record(&mut m);
            let record = LogRecord { level: level_of(event.metadata().level()), target: event.metadata().target().to_string(), message: m.text + &m.fields };
            // A failing sink loses this line only.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sink.log(record)));
        }
        IN_SINK.with(|f| f.set(false));
    }
}

/// Sends the core's log lines at `level` and above to `sink`; `None` stops logging. Fails
/// with `Conflict` when the process already installed another global `tracing` subscriber.
#[uniffi::export]
pub fn set_log_sink(sink: Option<Arc<dyn LogSink>>, level: LogLevel) -> Result<(), ApiError> {
    INSTALLED
        .get_or_init(|| tracing::subscriber::set_global_default(tracing_subscriber::registry().with(SinkLayer)).map_err(|e| e.to_string()))
        .clone()
        .map_err(|reason| ApiError::Conflict { reason: format!("a tracing subscriber is already installed: {reason}") })?;
    let on = sink.is_some();
    *SINK.write().unwrap_or_else(|p| p.into_inner()) = sink;
    let rank = match level {
        LogLevel::Error => 1,
        LogLevel::Warn => 2,
        LogLevel::Info => 3,
        LogLevel::Debug => 4,
        LogLevel::Trace => 5,
    };
    LEVEL.store(if on { rank } else { 0 }, Ordering::Relaxed);
    tracing::callsite::rebuild_interest_cache();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Rec(Mutex<Vec<LogRecord>>);
    impl LogSink for Rec {
        fn log(&self, record: LogRecord) -> Result<(), ApiError> {
            tracing::error!("re-entrant line from the sink"); // must not recurse
            self.0.lock().unwrap().push(record);
            Ok(())
        }
    }
    struct Panics;
    impl LogSink for Panics {
        fn log(&self, _: LogRecord) -> Result<(), ApiError> {
            panic!("sink bug");
        }
    }

    #[test]
    fn routes_events_at_the_level_and_survives_a_failing_sink() {
        let rec = Arc::new(Rec::default());
        set_log_sink(Some(rec.clone()), LogLevel::Info).unwrap();
        tracing::info!(order = "WO-1", "hello");
        tracing::debug!("below the level");
        {
            let lines = rec.0.lock().unwrap();
            assert_eq!(lines.len(), 1, "{lines:?}");
            assert_eq!(lines[0].level, LogLevel::Info);
            assert_eq!(lines[0].message, "hello order=WO-1");
            assert!(lines[0].target.contains("logging"));
        }
        set_log_sink(Some(Arc::new(Panics)), LogLevel::Trace).unwrap();
        tracing::warn!("lost, and nothing breaks");
        set_log_sink(Some(rec.clone()), LogLevel::Debug).unwrap();
        tracing::debug!("now visible");
        assert_eq!(rec.0.lock().unwrap().len(), 2);
        set_log_sink(None, LogLevel::Trace).unwrap();
        tracing::error!("nobody hears this");
        assert_eq!(rec.0.lock().unwrap().len(), 2);
    }
}
