//! Prometheus text-format counters (`GET /metrics`).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
pub struct Metrics {
    pub requests: Counter,
    pub errors_4xx: Counter,
    pub errors_5xx: Counter,
    pub auth_failures: Counter,
    pub sync_requests: Counter,
    pub sync_bytes_in: Counter,
    pub sync_bytes_out: Counter,
    pub pushes_applied: Counter,
    pub pushes_rejected: Counter,
    pub docs_sent: Counter,
    pub orders_created: Counter,
    pub journal_entries: Counter,
    pub blobs_stored: Counter,
    pub blob_bytes: Counter,
}

/// CPU time of this process (user + system), from /proc; 0 where unavailable.
pub fn process_cpu_ms() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0 };
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { return 0 };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15 (1-based) of the whole line: 11 and 12 here.
    let hz = 100; // sysconf(_SC_CLK_TCK) is 100 on Linux
    (ticks(11) + ticks(12)) * 1000 / hz
}

/// Resident memory of this process in bytes, from /proc; 0 where unavailable.
pub fn process_rss_bytes() -> u64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else { return 0 };
    // The second field is resident pages; pages are 4 KiB on the platforms the server runs on.
    statm.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()).map_or(0, |pages| pages * 4096)
}

/// The database pool's gauges and latency sums (PostgreSQL), in the same text format.
pub fn render_pool(p: &crate::storage::PoolStats) -> String {
    let mut out = String::new();
    let rows: [(&str, &str, &str, String); 6] = [
        ("onsite_db_pool_max", "gauge", "connections the pool may open", p.max.to_string()),
        ("onsite_db_pool_in_use", "gauge", "connections checked out now", p.in_use.to_string()),
        ("onsite_db_pool_idle", "gauge", "open idle connections", p.idle.to_string()),
        ("onsite_db_ops_total", "counter", "database operations (one connection checkout each)", p.ops.to_string()),
        ("onsite_db_op_seconds_total", "counter", "summed duration of database operations", format!("{:.6}", p.op_micros as f64 / 1e6)),
        ("onsite_db_pool_wait_seconds_total", "counter", "summed time waiting for a free connection", format!("{:.6}", p.wait_micros as f64 / 1e6)),
    ];
    for (name, kind, help, v) in rows {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
    }
    out
}

impl Metrics {
    pub fn render(&self) -> String {
        let mut out = String::new();
        let rows: [(&str, &str, u64); 14] = [
            ("onsite_http_requests_total", "HTTP requests served", self.requests.get()),
            ("onsite_http_client_errors_total", "4xx answers", self.errors_4xx.get()),
            ("onsite_http_server_errors_total", "5xx answers", self.errors_5xx.get()),
            ("onsite_auth_failures_total", "requests refused for credentials", self.auth_failures.get()),
            ("onsite_sync_requests_total", "sync requests", self.sync_requests.get()),
            ("onsite_sync_bytes_in_total", "sync request bytes (compressed)", self.sync_bytes_in.get()),
            ("onsite_sync_bytes_out_total", "sync response bytes (compressed)", self.sync_bytes_out.get()),
            ("onsite_sync_pushes_applied_total", "pushed orders accepted", self.pushes_applied.get()),
            ("onsite_sync_pushes_rejected_total", "pushed orders refused", self.pushes_rejected.get()),
            ("onsite_sync_docs_sent_total", "orders sent to devices", self.docs_sent.get()),
            ("onsite_orders_created_total", "orders created by dispatchers", self.orders_created.get()),
            ("onsite_journal_entries_total", "journal entries verified and logged", self.journal_entries.get()),
            ("onsite_blobs_stored_total", "blobs stored", self.blobs_stored.get()),
            ("onsite_blob_bytes_total", "blob bytes stored", self.blob_bytes.get()),
        ];
        for (name, help, v) in rows {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        }
        let cpu = process_cpu_ms();
        let _ = writeln!(
            out,
            "# HELP onsite_process_cpu_ms CPU time used by the server process\n# TYPE onsite_process_cpu_ms counter\nonsite_process_cpu_ms {cpu}"
        );
        let rss = process_rss_bytes();
        let _ = writeln!(
            out,
            "# HELP onsite_process_resident_bytes resident memory of the server process\n# TYPE onsite_process_resident_bytes gauge\nonsite_process_resident_bytes {rss}"
        );
        out
    }
}
