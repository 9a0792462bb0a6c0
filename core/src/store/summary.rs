//! The summary row of each order: what list screens read (never the documents), written in
//! the same transaction as the document change, only in the columns that changed.

use rusqlite::{Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::{doc_error, Error, Store};
use crate::order::{Status, WorkOrder};
use crate::sla::{SlaPolicy, WorkCalendar};

/// What a list screen shows; read from summary columns only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderSummary {
    pub id: String,
    pub status: Status,
    pub priority: String,
    pub customer: String,
    pub site: String,
    pub equipment: String,
    pub engineer_id: String,
    pub reported_at: i64,
    pub appointment_start: Option<i64>,
    pub appointment_end: Option<i64>,
    /// Earliest running SLA deadline (UTC ms) and which clock it is.
    pub sla_deadline: Option<i64>,
    pub sla_kind: Option<String>,
    pub updated_at: i64,
    /// The running deadline has passed (computed at read time against the device clock).
    pub breached: bool,
}

/// Sort orders for list screens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortBy {
    /// Earliest running SLA deadline first (ties: higher priority first); orders without one last.
    #[default]
    SlaDeadline,
    /// Most recently changed first.
    Updated,
}

impl OrderSummary {
    /// The summary of an order, its SLA clocks evaluated at `now`.
    pub fn of(order: &WorkOrder, sla: &SlaPolicy, calendar: &WorkCalendar, now: chrono::DateTime<chrono::Utc>) -> Self {
        let report = sla.evaluate(order, calendar, now);
        let next = report.next_deadline();
        OrderSummary {
            id: order.id.clone(),
            status: order.status,
            priority: order.priority.as_str().to_string(),
            customer: order.customer.company.clone(),
            site: order.site.address.clone(),
            equipment: format!("{} {}", order.equipment.brand, order.equipment.model),
            engineer_id: order.engineer.id.clone(),
            reported_at: order.fault.reported_at.0,
            appointment_start: order.appointment.map(|w| w.start.0),
            appointment_end: order.appointment.map(|w| w.end.0),
            sla_deadline: next.map(|c| c.deadline.0),
            sla_kind: next.map(|c| c.kind.as_str().to_string()),
            updated_at: order.last_activity().0,
            breached: false,
        }
    }
}

impl Store {
    /// Summary rows, optionally only some statuses; reads summary columns only.
    pub fn list(&self, statuses: &[Status], sort: SortBy) -> Result<Vec<OrderSummary>, Error> {
        let conn = self.reader();
        let order_by = match sort {
            SortBy::SlaDeadline => {
                "sla_deadline IS NULL, sla_deadline, \
                 CASE priority WHEN 'urgent' THEN 0 WHEN 'normal' THEN 1 ELSE 2 END, id"
            }
            SortBy::Updated => "updated_at DESC, id",
        };
        // Orders the dispatcher reassigned away stay stored (nothing accepted is lost) but
        // leave the list.
        let mut filter = "WHERE NOT EXISTS (SELECT 1 FROM sync_docs s WHERE s.order_id = orders.id AND s.state = 'removed')".to_string();
        if !statuses.is_empty() {
            let list: Vec<String> = statuses.iter().map(|s| format!("'{}'", s.as_str())).collect();
            filter.push_str(&format!(" AND status IN ({})", list.join(",")));
        }
        let sql = format!("SELECT {SUMMARY_COLUMNS} FROM orders {filter} ORDER BY {order_by}");
        let mut st = conn.prepare_cached(&sql)?;
        let rows = st.query_map([], summary_from_row)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row??);
        }
        Ok(out)
    }
}

const SUMMARY_COLUMNS: &str = "id, status, priority, customer, site, equipment, engineer_id, reported_at, \
     appointment_start, appointment_end, sla_deadline, sla_kind, updated_at";

type RowResult = rusqlite::Result<Result<OrderSummary, Error>>;

fn summary_from_row(r: &rusqlite::Row<'_>) -> RowResult {
    let id: String = r.get(0)?;
    let status: String = r.get(1)?;
    let status = match Status::parse(&status) {
        Ok(s) => s,
        Err(e) => return Ok(Err(doc_error(&id, e))),
    };
    Ok(Ok(OrderSummary {
        id,
        status,
        priority: r.get(2)?,
        customer: r.get(3)?,
        site: r.get(4)?,
        equipment: r.get(5)?,
        engineer_id: r.get(6)?,
        reported_at: r.get(7)?,
        appointment_start: r.get(8)?,
        appointment_end: r.get(9)?,
        sla_deadline: r.get(10)?,
        sla_kind: r.get(11)?,
        updated_at: r.get(12)?,
        breached: false,
    }))
}

pub(super) fn read_summary(conn: &Connection, id: &str) -> Result<OrderSummary, Error> {
    conn.prepare_cached(&format!("SELECT {SUMMARY_COLUMNS} FROM orders WHERE id = ?1"))?
        .query_row([id], summary_from_row)
        .optional()?
        .ok_or_else(|| Error::NotFound { id: id.to_string() })?
}

/// The summary's columns (all but `id`) as SQL values, in `SUMMARY_COLUMNS` order.
fn summary_values(s: &OrderSummary) -> [(&'static str, rusqlite::types::Value); 12] {
    use rusqlite::types::Value;
    [
        ("status", Value::Text(s.status.as_str().to_string())),
        ("priority", Value::Text(s.priority.clone())),
        ("customer", Value::Text(s.customer.clone())),
        ("site", Value::Text(s.site.clone())),
        ("equipment", Value::Text(s.equipment.clone())),
        ("engineer_id", Value::Text(s.engineer_id.clone())),
        ("reported_at", Value::Integer(s.reported_at)),
        ("appointment_start", s.appointment_start.map_or(Value::Null, Value::Integer)),
        ("appointment_end", s.appointment_end.map_or(Value::Null, Value::Integer)),
        ("sla_deadline", s.sla_deadline.map_or(Value::Null, Value::Integer)),
        ("sla_kind", s.sla_kind.clone().map_or(Value::Null, Value::Text)),
        ("updated_at", Value::Integer(s.updated_at)),
    ]
}

/// Writes the summary row: all of it when `old` is `None`, else only the changed columns.
pub(super) fn write_summary(tx: &rusqlite::Transaction<'_>, old: Option<&OrderSummary>, s: &OrderSummary) -> rusqlite::Result<()> {
    use rusqlite::types::Value;
    let columns = summary_values(s);
    let Some(old) = old.filter(|o| o.id == s.id) else {
        let mut values = vec![Value::Text(s.id.clone())];
        values.extend(columns.into_iter().map(|(_, v)| v));
        tx.prepare_cached(&format!(
            "INSERT INTO orders ({SUMMARY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
             ON CONFLICT (id) DO UPDATE SET status = excluded.status, priority = excluded.priority, \
             customer = excluded.customer, site = excluded.site, equipment = excluded.equipment, \
             engineer_id = excluded.engineer_id, reported_at = excluded.reported_at, \
             appointment_start = excluded.appointment_start, appointment_end = excluded.appointment_end, \
             sla_deadline = excluded.sla_deadline, sla_kind = excluded.sla_kind, updated_at = excluded.updated_at"
        ))?
        .execute(rusqlite::params_from_iter(values))?;
        return Ok(());
    };
    let before = summary_values(old);
    let mut sets = Vec::new();
    let mut values = vec![Value::Text(s.id.clone())];
    for ((name, value), (_, was)) in columns.into_iter().zip(before) {
        if value != was {
            values.push(value);
            sets.push(format!("{name} = ?{}", values.len()));
        }
    }
    if sets.is_empty() {
        return Ok(());
    }
    tx.prepare_cached(&format!("UPDATE orders SET {} WHERE id = ?1", sets.join(", ")))?.execute(rusqlite::params_from_iter(values))?;
    Ok(())
}
