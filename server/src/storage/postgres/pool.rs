//! A small blocking connection pool: at most `max` connections, idle ones reused, broken ones
//! dropped; it counts operations (one checkout each), their duration and the time callers
//! waited for a connection, for `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

use postgres::{Client, NoTls};

use super::super::{PoolStats, Result};

pub(super) const DEFAULT_MAX: usize = 16;

pub(super) struct Pool {
    pub(super) config: postgres::Config,
    max: usize,
    /// (idle connections, connections open).
    state: Mutex<(Vec<Client>, usize)>,
    freed: Condvar,
    ops: AtomicU64,
    op_micros: AtomicU64,
    wait_micros: AtomicU64,
}

pub(super) struct Conn<'a> {
    pool: &'a Pool,
    client: Option<Client>,
    since: Instant,
}

fn micros(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX)
}

impl Pool {
    pub(super) fn new(config: postgres::Config, max: usize) -> Self {
        Self {
            config,
            max: max.max(1),
            state: Mutex::new((Vec::new(), 0)),
            freed: Condvar::new(),
            ops: AtomicU64::new(0),
            op_micros: AtomicU64::new(0),
            wait_micros: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, (Vec<Client>, usize)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn conn(&self, client: Client, asked: Instant) -> Conn<'_> {
        self.wait_micros.fetch_add(micros(asked), Ordering::Relaxed);
        Conn { pool: self, client: Some(client), since: Instant::now() }
    }

    pub(super) fn get(&self) -> Result<Conn<'_>> {
        let asked = Instant::now();
        let mut st = self.lock();
        loop {
            if let Some(c) = st.0.pop() {
                return Ok(self.conn(c, asked));
            }
            if st.1 < self.max {
                st.1 += 1;
                drop(st);
                return match self.config.connect(NoTls) {
                    Ok(c) => Ok(self.conn(c, asked)),
                    Err(e) => {
                        self.lock().1 -= 1;
                        self.freed.notify_one();
                        Err(e.into())
                    }
                };
            }
            st = self.freed.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    pub(super) fn stats(&self) -> PoolStats {
        let st = self.lock();
        let (idle, open) = (st.0.len() as u64, st.1 as u64);
        PoolStats {
            max: self.max as u64,
            in_use: open.saturating_sub(idle),
            idle,
            ops: self.ops.load(Ordering::Relaxed),
            op_micros: self.op_micros.load(Ordering::Relaxed),
            wait_micros: self.wait_micros.load(Ordering::Relaxed),
        }
    }
}

impl std::ops::Deref for Conn<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client.as_ref().unwrap_or_else(|| unreachable!("a connection is held until drop"))
    }
}

impl std::ops::DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().unwrap_or_else(|| unreachable!("a connection is held until drop"))
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        self.pool.ops.fetch_add(1, Ordering::Relaxed);
        self.pool.op_micros.fetch_add(micros(self.since), Ordering::Relaxed);
        let mut st = self.pool.lock();
        match self.client.take() {
            Some(c) if !c.is_closed() => st.0.push(c),
            _ => st.1 -= 1,
        }
        drop(st);
        self.pool.freed.notify_one();
    }
}
