//! The feed listener: one dedicated connection per instance runs `LISTEN onsite_feed`; on
//! every notification (and every few seconds without one, in case a notification was lost
//! while reconnecting) it reads `feed_head` back and publishes it. The payload is never
//! trusted: the table is the truth.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fallible_iterator::FallibleIterator;
use postgres::NoTls;

/// How long the listener waits for a notification before reading the head anyway.
const IDLE_READ: Duration = Duration::from_secs(5);

fn listen_once(config: &postgres::Config, stop: &AtomicBool, publish: &(dyn Fn(u64) + Send + Sync)) -> Result<(), postgres::Error> {
    let mut client = config.connect(NoTls)?;
    client.batch_execute(&format!("LISTEN {}", super::FEED_CHANNEL))?;
    let head = |c: &mut postgres::Client| -> Result<(), postgres::Error> {
        let seq: i64 = c.query_one("SELECT seq FROM feed_head", &[])?.try_get(0)?;
        publish(u64::try_from(seq).unwrap_or(0));
        Ok(())
    };
    // Anything committed while we were not listening.
    head(&mut client)?;
    while !stop.load(Ordering::Relaxed) {
        {
            let mut n = client.notifications();
            // One notification (or the idle timeout) wakes us; then drain what else is
            // already buffered: one read of the head answers all of them.
            let _ = n.timeout_iter(IDLE_READ).next()?;
            while n.iter().next()?.is_some() {}
        }
        head(&mut client)?;
    }
    Ok(())
}

/// Starts the listener thread; it reconnects (after a second) until `stop` is set.
pub(super) fn spawn(config: postgres::Config, stop: Arc<AtomicBool>, publish: Arc<dyn Fn(u64) + Send + Sync>) -> std::io::Result<()> {
    std::thread::Builder::new().name("onsite-pg-listen".into()).spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            if let Err(e) = listen_once(&config, &stop, &*publish) {
                tracing::warn!(error = %e, "feed listener lost its connection; reconnecting");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    })?;
    Ok(())
}
