//! The dispatcher's board: every order of the provider with status, priority, engineer,
//! appointment window and the running SLA clock (ADR 0004) as a countdown, filtered and
//! searched, sorted by deadline. `rows` renders the table body alone (what the page's script
//! swaps in); `events` is the SSE stream that says when the provider's orders changed.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use maud::{html, Markup};
use onsite_core::order::Status;
use serde::Deserialize;

use super::i18n::Lang;
use super::session::Signed;
use super::{blocking, lang, signed_page, time, Fail, Page, Svc};
use crate::service::{BoardRow, Error};
use crate::storage::OrderRow;
use crate::Service;

/// An SLA clock with less than this left is shown amber.
pub const AMBER_MS: i64 = 3600 * 1000;
/// Changes closer together than this make one event (a sync commits many orders at once).
const DEBOUNCE: Duration = Duration::from_millis(150);

#[derive(Debug, Default, Deserialize)]
pub struct Filters {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub engineer: String,
    #[serde(default)]
    pub priority: String,
    #[serde(default)]
    pub breached: String,
    #[serde(default)]
    pub q: String,
}

impl Filters {
    fn keep(&self, row: &OrderRow, b: &BoardRow) -> bool {
        let q = self.q.trim().to_lowercase();
        (self.status.is_empty() || row.status == self.status)
            && (self.engineer.trim().is_empty() || row.engineer_id == self.engineer.trim())
            && (self.priority.is_empty() || row.priority == self.priority)
            && (self.breached.is_empty() || b.order.breached)
            && (q.is_empty() || [&row.id, &b.order.customer, &b.serial].iter().any(|f| f.to_lowercase().contains(&q)))
    }
}

fn priority_rank(p: &str) -> u8 {
    match p {
        "urgent" => 0,
        "normal" => 1,
        _ => 2,
    }
}

/// The rows the filters keep, earliest running deadline first (orders without one last),
/// then priority, then id.
pub fn select(mut rows: Vec<(OrderRow, BoardRow)>, f: &Filters) -> Vec<(OrderRow, BoardRow)> {
    rows.retain(|(r, b)| f.keep(r, b));
    rows.sort_by(|(ra, a), (rb, b)| {
        (a.order.sla_deadline.is_none(), a.order.sla_deadline, priority_rank(&ra.priority), &ra.id).cmp(&(
            b.order.sla_deadline.is_none(),
            b.order.sla_deadline,
            priority_rank(&rb.priority),
            &rb.id,
        ))
    });
    rows
}

/// "1h 05m" left, or "-0h 12m" past.
pub fn countdown(left_ms: i64) -> String {
    let m = left_ms.abs() / 60_000;
    format!("{}{}h {:02}m", if left_ms < 0 { "-" } else { "" }, m / 60, m % 60)
}

fn sla_cell(lang: Lang, b: &BoardRow, now: i64) -> Markup {
    match b.order.sla_deadline {
        Some(d) => {
            let left = d - now;
            let class = if left <= 0 {
                "sla red"
            } else if left < AMBER_MS {
                "sla amber"
            } else {
                "sla"
            };
            let kind = b.order.sla_kind.as_deref().unwrap_or("");
            html! {
                span class=(class) data-deadline=(d) title={ (kind) " · " (time(d)) } {
                    (countdown(left)) @if left <= 0 { " " span.tag { (lang.t("breached")) } }
                }
            }
        }
        None => html! { span.sla.stopped { (lang.t("stopped")) } },
    }
}

fn tbody(lang: Lang, rows: &[(OrderRow, BoardRow)], now: i64) -> Markup {
    html! {
        tbody id="board-rows" data-count=(rows.len()) {
            @for (r, b) in rows {
                tr data-order=(r.id) data-status=(r.status) {
                    td { a href={ "/console/orders/" (r.id) } { (r.id) } }
                    td { span class={ "status s-" (r.status) } { (lang.t(&r.status)) } }
                    td { span class={ "prio p-" (r.priority) } { (lang.t(&format!("u_{}", r.priority))) } }
                    td { (r.engineer_id) @if !b.engineer_name.is_empty() { br; small { (b.engineer_name) } } }
                    td { (b.order.customer) br; small { (b.serial) } }
                    td {
                        @if let (Some(s), Some(e)) = (b.order.appointment_start, b.order.appointment_end) {
                            (time(s)) " – " (time(e).get(11..).unwrap_or(""))
                        } @else { "—" }
                    }
                    td { (sla_cell(lang, b, now)) }
                }
            }
        }
    }
}

fn load(svc: &Arc<Service>, provider: &str, f: &Filters) -> Result<(Vec<(OrderRow, BoardRow)>, i64), Error> {
    let rows = svc.board(provider)?;
    Ok((select(rows, f), svc.now_ms()))
}

/// What the dispatcher sees of one engineer: open orders, breached ones, the order being
/// worked now (travelling or on site) and when a device of theirs last synced.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EngineerState {
    pub id: String,
    pub name: String,
    pub open: usize,
    pub breached: usize,
    /// (order, status) of the order under way.
    pub current: Option<(String, String)>,
    pub last_sync_ms: Option<i64>,
}

/// Engineers from every order of the provider (filters do not apply) and its devices.
pub fn engineers(rows: &[(OrderRow, BoardRow)], devices: &[crate::storage::DeviceRow]) -> Vec<EngineerState> {
    let mut out: Vec<EngineerState> = Vec::new();
    for (r, b) in rows {
        let i = match out.iter().position(|e| e.id == r.engineer_id) {
            Some(i) => i,
            None => {
                out.push(EngineerState { id: r.engineer_id.clone(), ..Default::default() });
                out.len() - 1
            }
        };
        let e = &mut out[i];
        if e.name.is_empty() {
            e.name = b.engineer_name.clone();
        }
        if !b.order.status.is_terminal() {
            e.open += 1;
            e.breached += usize::from(b.order.breached);
        }
        let under_way = matches!(r.status.as_str(), "en_route" | "on_site" | "in_progress" | "awaiting_signature");
        if under_way && e.current.is_none() {
            e.current = Some((r.id.clone(), r.status.clone()));
        }
    }
    for e in &mut out {
        e.last_sync_ms = devices.iter().filter(|d| d.engineer_id == e.id && !d.revoked).filter_map(|d| d.last_seen_ms).max();
    }
    out.sort_by(|a, b| b.breached.cmp(&a.breached).then(b.open.cmp(&a.open)).then(a.id.cmp(&b.id)));
    out
}

fn engineers_section(lang: Lang, list: &[EngineerState]) -> Markup {
    html! {
        section id="engineers" aria-labelledby="h-engineers" {
            h2 id="h-engineers" { (lang.t("engineers")) }
            table.engineers {
                thead { tr {
                    th scope="col" { (lang.t("engineer")) } th scope="col" { (lang.t("open_orders")) } th scope="col" { (lang.t("breached")) }
                    th scope="col" { (lang.t("under_way")) } th scope="col" { (lang.t("last_sync")) }
                } }
                tbody {
                    @for e in list {
                        tr data-engineer=(e.id) {
                            td { (e.id) @if !e.name.is_empty() { " " small { (e.name) } } }
                            td { (e.open) }
                            td { @if e.breached > 0 { span.sla.red { (e.breached) } } @else { "0" } }
                            td { @if let Some((o, st)) = &e.current { a href={ "/console/orders/" (super::order::urlencode(o)) } { (o) } " " span class={ "status s-" (st) } { (lang.t(st)) } } @else { "—" } }
                            td { @match e.last_sync_ms { Some(t) => (time(t)), None => (lang.t("never")) } }
                        }
                    }
                }
            }
        }
    }
}

fn load_engineers(svc: &Arc<Service>, provider: &str) -> Result<Vec<EngineerState>, Error> {
    Ok(engineers(&svc.board(provider)?, &svc.devices(provider)?))
}

/// The engineers panel alone (the page's script swaps it in on each event).
pub async fn engineers_fragment(State(svc): Svc, Signed(s): Signed, headers: HeaderMap) -> Page {
    let lang = lang(&headers);
    s.require_dispatcher("the board").map_err(|e| Fail(e, lang))?;
    let provider = s.provider.clone();
    let list = blocking(lang, move || load_engineers(&svc, &provider)).await?;
    Ok(([(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")], engineers_section(lang, &list).into_string()).into_response())
}

pub async fn page(State(svc): Svc, Signed(s): Signed, headers: HeaderMap, Query(f): Query<Filters>) -> Page {
    let lang = lang(&headers);
    if !s.is_dispatcher() {
        return Ok(axum::response::Redirect::to("/console/help").into_response());
    }
    let (svc2, provider) = (svc.clone(), s.provider.clone());
    let f = Arc::new(f);
    let f2 = f.clone();
    let (rows, now, team) = blocking(lang, move || {
        let all = svc2.board(&provider)?;
        let team = engineers(&all, &svc2.devices(&provider)?);
        Ok((select(all, &f2), svc2.now_ms(), team))
    })
    .await?;
    signed_page(lang, &s, &svc, lang.t("board"), |_| {
        html! {
            h1 { (lang.t("board")) " " small.count { span id="board-count" { (rows.len()) } " " (lang.t("orders_count")) } " " span.live id="live" hidden { (lang.t("live")) } }
            form.filters method="get" action="/console/" role="search" {
                label { (lang.t("status")) " "
                    select name="status" {
                        option value="" { (lang.t("all")) }
                        @for st in Status::ALL { option value=(st.as_str()) selected[f.status == st.as_str()] { (lang.t(st.as_str())) } }
                    }
                }
                label { (lang.t("priority")) " "
                    select name="priority" {
                        option value="" { (lang.t("all")) }
                        @for p in ["urgent", "normal", "low"] { option value=(p) selected[f.priority == p] { (lang.t(&format!("u_{p}"))) } }
                    }
                }
                label { (lang.t("engineer")) " " input name="engineer" value=(f.engineer) size="10"; }
                label { input type="checkbox" name="breached" value="1" checked[!f.breached.is_empty()]; " " (lang.t("only_breached")) }
                label { (lang.t("search")) " " input type="search" name="q" value=(f.q); }
                button type="submit" { (lang.t("filter")) }
            }
            table.board id="board" data-live="/console/events" {
                caption.sr-only { (lang.t("board")) }
                thead { tr {
                    th scope="col" { (lang.t("order")) } th scope="col" { (lang.t("status")) } th scope="col" { (lang.t("priority")) }
                    th scope="col" { (lang.t("engineer")) } th scope="col" { (lang.t("customer")) } th scope="col" { (lang.t("appointment")) }
                    th scope="col" { (lang.t("sla")) }
                } }
                (tbody(lang, &rows, now))
            }
            (engineers_section(lang, &team))
        }
    })
}

/// The table body alone, for the same filters (the page's script fetches it on each event).
pub async fn rows(State(svc): Svc, Signed(s): Signed, headers: HeaderMap, Query(f): Query<Filters>) -> Page {
    let lang = lang(&headers);
    s.require_dispatcher("the board").map_err(|e| Fail(e, lang))?;
    let provider = s.provider.clone();
    let (rows, now) = blocking(lang, move || load(&svc, &provider, &f)).await?;
    Ok(([(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")], tbody(lang, &rows, now).into_string()).into_response())
}

/// The highest feed position among the provider's orders: it moves exactly when one of them
/// changed, so other providers' work wakes no one here.
fn provider_head(svc: &Service, provider: &str) -> Result<u64, Error> {
    Ok(svc.storage().orders(provider, None)?.iter().map(|r| r.updated_seq).max().unwrap_or(0))
}

/// SSE: an event `change` (data: the provider's head) each time the provider's orders change,
/// comments to keep the connection alive, and the end of the stream when the server drains.
pub async fn events(State(svc): Svc, Signed(s): Signed) -> Result<Response, Error> {
    s.require_dispatcher("the board's event stream")?;
    let provider = s.provider.clone();
    let (svc2, p2) = (svc.clone(), provider.clone());
    let start = tokio::task::spawn_blocking(move || provider_head(&svc2, &p2)).await.map_err(|e| Error::Internal(e.to_string()))??;
    let stream = changes(svc, provider, start);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response())
}

fn changes(svc: Arc<Service>, provider: String, start: u64) -> impl Stream<Item = Result<Event, Infallible>> {
    let rx = svc.notifier().subscribe();
    let closing = svc.notifier().closing();
    futures::stream::unfold((svc, provider, start, rx, closing), |(svc, provider, last, mut rx, mut closing)| async move {
        loop {
            tokio::select! {
                changed = rx.changed() => { changed.ok()?; }
                _ = closing.wait_for(|c| *c) => return None,
            }
            tokio::time::sleep(DEBOUNCE).await;
            rx.borrow_and_update();
            let (s, p) = (svc.clone(), provider.clone());
            let head = match tokio::task::spawn_blocking(move || provider_head(&s, &p)).await {
                Ok(Ok(h)) => h,
                _ => continue,
            };
            if head > last {
                let event = Event::default().event("change").data(head.to_string());
                return Some((Ok(event), (svc, provider, head, rx, closing)));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use onsite_core::OrderSummary;

    fn row(id: &str, status: &str, priority: &str, deadline: Option<i64>, breached: bool) -> (OrderRow, BoardRow) {
        let r = OrderRow {
            provider: "p".into(),
            id: id.into(),
            engineer_id: "eng-1".into(),
            status: status.into(),
            priority: priority.into(),
            customer: format!("Customer {id}"),
            updated_seq: 0,
            assigned_seq: 0,
            compacted_seq: 0,
            summary: String::new(),
        };
        let order = OrderSummary {
            id: id.into(),
            status: Status::Assigned,
            priority: priority.into(),
            customer: format!("Customer {id}"),
            site: String::new(),
            equipment: String::new(),
            engineer_id: "eng-1".into(),
            reported_at: 0,
            appointment_start: None,
            appointment_end: None,
            sla_deadline: deadline,
            sla_kind: None,
            updated_at: 0,
            breached,
        };
        (r, BoardRow { order, serial: format!("SN-{id}"), engineer_name: String::new() })
    }

    #[test]
    fn rows_sort_by_deadline_then_priority_and_filters_combine() {
        let rows = vec![
            row("A", "assigned", "low", None, false),
            row("B", "assigned", "normal", Some(50), true),
            row("C", "en_route", "urgent", Some(50), true),
            row("D", "assigned", "urgent", Some(10), true),
        ];
        let ids = |v: Vec<(OrderRow, BoardRow)>| v.into_iter().map(|(r, _)| r.id).collect::<Vec<_>>();
        assert_eq!(ids(select(rows.clone(), &Filters::default())), ["D", "C", "B", "A"]);
        let f = Filters { status: "assigned".into(), breached: "1".into(), ..Default::default() };
        assert_eq!(ids(select(rows.clone(), &f)), ["D", "B"]);
        let f = Filters { q: "sn-c".into(), ..Default::default() };
        assert_eq!(ids(select(rows.clone(), &f)), ["C"], "search finds the serial, case-insensitively");
        let f = Filters { q: "customer a".into(), priority: "low".into(), ..Default::default() };
        assert_eq!(ids(select(rows, &f)), ["A"]);
    }

    #[test]
    fn engineers_show_open_and_breached_orders_the_one_under_way_and_their_last_sync() {
        let mut rows =
            vec![row("A", "assigned", "low", Some(10), true), row("B", "on_site", "normal", Some(50), false), row("C", "completed", "urgent", None, false)];
        rows[2].0.engineer_id = "eng-2".into();
        rows[2].1.order.status = Status::Completed;
        let device = |id: &str, engineer: &str, seen: Option<i64>, revoked: bool| crate::storage::DeviceRow {
            id: id.into(),
            provider: "p".into(),
            engineer_id: engineer.into(),
            public_key: Vec::new(),
            revoked,
            journal_seq: 0,
            journal_head: None,
            attestation: None,
            last_seen_ms: seen,
        };
        let list = engineers(&rows, &[device("d1", "eng-1", Some(5), false), device("d2", "eng-1", Some(9), true), device("d3", "eng-1", Some(7), false)]);
        assert_eq!(list.len(), 2);
        assert_eq!((list[0].id.as_str(), list[0].open, list[0].breached), ("eng-1", 2, 1));
        assert_eq!(list[0].current, Some(("B".to_string(), "on_site".to_string())));
        assert_eq!(list[0].last_sync_ms, Some(7), "a revoked device's sync does not count");
        assert_eq!((list[1].id.as_str(), list[1].open, list[1].current.clone(), list[1].last_sync_ms), ("eng-2", 0, None, None));
    }

    #[test]
    fn countdowns_read_hours_and_minutes_either_side_of_the_deadline() {
        assert_eq!(countdown(65 * 60_000 + 59_000), "1h 05m");
        assert_eq!(countdown(-12 * 60_000), "-0h 12m");
        assert_eq!(countdown(0), "0h 00m");
    }
}
