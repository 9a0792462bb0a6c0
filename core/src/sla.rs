//! SLA clocks over a working-day calendar.
//!
//! Three clocks per order (see docs/adr/0004-sla-clocks.md):
//! - `response`: the order is accepted within the priority's response time (seed 002:
//!   urgent 2 h, normal 4 h, low 24 h) of the fault report;
//! - `first_contact`: the customer is contacted within 2 h of the request (seed 003);
//! - `on_site`: the engineer arrives by the end of the 2nd working day after the request
//!   inside the service area, the 3rd within 80 km; beyond that the agreed appointment is
//!   the deadline (negotiated, seed 003 "协商").
//!
//! Working days come from a calendar with a fixed UTC offset, weekend days, holidays and
//! make-up working days (调休), so a Saturday can be a working day.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, TimeZone, Utc, Weekday};
use serde::Serialize;

use crate::order::{Priority, Status, Timestamp, WorkOrder};

#[derive(Debug, Clone)]
pub struct WorkCalendar {
    pub offset: FixedOffset,
    pub weekend: Vec<Weekday>,
    pub holidays: BTreeSet<NaiveDate>,
    /// Weekend days that are working days (调休).
    pub extra_workdays: BTreeSet<NaiveDate>,
}

impl WorkCalendar {
    /// China Standard Time, Saturday and Sunday off, no holidays configured.
    pub fn china_default() -> Self {
        Self {
            offset: FixedOffset::east_opt(8 * 3600).unwrap_or(chrono::Offset::fix(&Utc)),
            weekend: vec![Weekday::Sat, Weekday::Sun],
            holidays: BTreeSet::new(),
            extra_workdays: BTreeSet::new(),
        }
    }

    pub fn is_working_day(&self, d: NaiveDate) -> bool {
        if self.extra_workdays.contains(&d) {
            return true;
        }
        !self.weekend.contains(&d.weekday()) && !self.holidays.contains(&d)
    }

    /// The end (local midnight) of the `n`th working day after the local day of `from`.
    pub fn end_of_nth_working_day_after(&self, from: DateTime<Utc>, n: u32) -> DateTime<Utc> {
        let mut day = from.with_timezone(&self.offset).date_naive();
        let mut counted = 0;
        // A calendar with every day off would loop forever; cap at ten years.
        for _ in 0..3660 {
            if counted >= n {
                break;
            }
            day = day.succ_opt().unwrap_or(day);
            if self.is_working_day(day) {
                counted += 1;
            }
        }
        let next_midnight = day.succ_opt().unwrap_or(day).and_hms_opt(0, 0, 0).unwrap_or_default();
        self.offset.from_local_datetime(&next_midnight).single().map(|t| t.with_timezone(&Utc)).unwrap_or(from)
    }
}

#[derive(Debug, Clone)]
pub struct SlaPolicy {
    pub response_urgent: Duration,
    pub response_normal: Duration,
    pub response_low: Duration,
    pub first_contact: Duration,
    pub on_site_days_in_area: u32,
    pub on_site_days_near: u32,
    pub near_km: f64,
}

impl Default for SlaPolicy {
    fn default() -> Self {
        Self {
            response_urgent: Duration::hours(2),
            response_normal: Duration::hours(4),
            response_low: Duration::hours(24),
            first_contact: Duration::hours(2),
            on_site_days_in_area: 2,
            on_site_days_near: 3,
            near_km: 80.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SlaKind {
    Response,
    FirstContact,
    OnSite,
}

impl SlaKind {
    pub const ALL: [SlaKind; 3] = [SlaKind::Response, SlaKind::FirstContact, SlaKind::OnSite];

    /// The JSON spelling (stored in the summary row's `sla_kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            SlaKind::Response => "response",
            SlaKind::FirstContact => "first_contact",
            SlaKind::OnSite => "on_site",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ClockState {
    Pending,
    Breached,
    Met {
        at: Timestamp,
    },
    MetLate {
        at: Timestamp,
    },
    /// The order ended (cancelled, carried back) before this clock mattered.
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SlaClock {
    pub kind: SlaKind,
    pub deadline: Timestamp,
    pub state: ClockState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlaReport {
    pub clocks: Vec<SlaClock>,
}

impl SlaReport {
    /// The earliest deadline still running (pending or breached): what list screens sort by.
    pub fn next_deadline(&self) -> Option<&SlaClock> {
        self.clocks.iter().filter(|c| matches!(c.state, ClockState::Pending | ClockState::Breached)).min_by_key(|c| c.deadline)
    }

    pub fn breached(&self) -> bool {
        self.clocks.iter().any(|c| matches!(c.state, ClockState::Breached | ClockState::MetLate { .. }))
    }
}

impl SlaPolicy {
    pub fn response_time(&self, p: Priority) -> Duration {
        match p {
            Priority::Urgent => self.response_urgent,
            Priority::Normal => self.response_normal,
            Priority::Low => self.response_low,
        }
    }

    /// The on-site deadline, or `None` when it is negotiated and no appointment exists yet.
    pub fn on_site_deadline(&self, order: &WorkOrder, cal: &WorkCalendar) -> Option<DateTime<Utc>> {
        let reported = order.fault.reported_at.to_datetime();
        if order.site.in_service_area {
            Some(cal.end_of_nth_working_day_after(reported, self.on_site_days_in_area))
        } else if order.site.distance_km <= self.near_km {
            Some(cal.end_of_nth_working_day_after(reported, self.on_site_days_near))
        } else {
            order.appointment.map(|w| w.end.to_datetime())
        }
    }

    pub fn evaluate(&self, order: &WorkOrder, cal: &WorkCalendar, now: DateTime<Utc>) -> SlaReport {
        let reported = order.fault.reported_at.to_datetime();
        let stopped = matches!(order.status, Status::Cancelled | Status::CarriedToWorkshop);
        let mut clocks = Vec::with_capacity(3);
        let mut push = |kind, deadline: DateTime<Utc>, met: Option<Timestamp>| {
            let deadline = Timestamp::from_datetime(deadline);
            let state = match met {
                Some(at) if at <= deadline => ClockState::Met { at },
                Some(at) => ClockState::MetLate { at },
                None if stopped => ClockState::Stopped,
                None if Timestamp::from_datetime(now) > deadline => ClockState::Breached,
                None => ClockState::Pending,
            };
            clocks.push(SlaClock { kind, deadline, state });
        };
        push(SlaKind::Response, reported + self.response_time(order.priority), order.first_reached(Status::Accepted));
        push(SlaKind::FirstContact, reported + self.first_contact, order.first_reached(Status::CustomerContacted));
        if let Some(d) = self.on_site_deadline(order, cal) {
            push(SlaKind::OnSite, d, order.first_reached(Status::OnSite));
        }
        SlaReport { clocks }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::import::{parse_orders, tests::sample_json};

    fn cst(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        FixedOffset::east_opt(8 * 3600).unwrap().with_ymd_and_hms(y, m, d, h, 0, 0).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn working_days_skip_weekends_holidays_and_honour_makeup_days() {
        let mut cal = WorkCalendar::china_default();
        // Friday 2026-11-27 10:00 CST + 2 working days -> Mon 30th, Tue Dec 1st -> end of Tue.
        assert_eq!(cal.end_of_nth_working_day_after(cst(2026, 11, 27, 10), 2), cst(2026, 12, 2, 0));
        // Monday 30th a holiday -> Tue, Wed.
        cal.holidays.insert(NaiveDate::from_ymd_opt(2026, 11, 30).unwrap());
        assert_eq!(cal.end_of_nth_working_day_after(cst(2026, 11, 27, 10), 2), cst(2026, 12, 3, 0));
        // Saturday 28th a make-up working day (调休) -> Sat, Tue.
        cal.extra_workdays.insert(NaiveDate::from_ymd_opt(2026, 11, 28).unwrap());
        assert_eq!(cal.end_of_nth_working_day_after(cst(2026, 11, 27, 10), 2), cst(2026, 12, 2, 0));
        // A request late on Friday evening in UTC terms is still Saturday locally.
        let sat_local = cst(2026, 11, 28, 1);
        assert_eq!(cal.end_of_nth_working_day_after(sat_local, 1), cst(2026, 12, 2, 0));
    }

    #[test]
    fn a_calendar_without_working_days_terminates() {
        let mut cal = WorkCalendar::china_default();
        cal.weekend = vec![Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri, Weekday::Sat, Weekday::Sun];
        let d = cal.end_of_nth_working_day_after(cst(2026, 11, 27, 10), 2);
        assert!(d > cst(2036, 1, 1, 0));
    }

    #[test]
    fn clocks_follow_priority_distance_and_transitions() {
        let mut order = parse_orders(&sample_json("WO-1"), Timestamp(0)).unwrap().remove(0);
        let cal = WorkCalendar::china_default();
        let policy = SlaPolicy::default();
        // Reported Monday 2026-11-23 09:10 CST, urgent, in area.
        let r = policy.evaluate(&order, &cal, cst(2026, 11, 23, 10));
        assert_eq!(r.clocks.len(), 3);
        assert_eq!(r.clocks[0].deadline.to_datetime(), cst(2026, 11, 23, 11) + Duration::minutes(10));
        assert_eq!(r.clocks[2].deadline.to_datetime(), cst(2026, 11, 26, 0));
        assert!(r.clocks.iter().all(|c| c.state == ClockState::Pending));
        assert_eq!(r.next_deadline().unwrap().kind, SlaKind::Response);

        let late = policy.evaluate(&order, &cal, cst(2026, 11, 23, 12));
        assert!(late.breached());
        assert_eq!(late.clocks[0].state, ClockState::Breached);

        order.priority = Priority::Low;
        order.site.in_service_area = false;
        order.site.distance_km = 50.0;
        let r = policy.evaluate(&order, &cal, cst(2026, 11, 23, 10));
        assert_eq!(r.clocks[0].deadline.to_datetime(), cst(2026, 11, 24, 9) + Duration::minutes(10));
        assert_eq!(r.clocks[2].deadline.to_datetime(), cst(2026, 11, 27, 0));

        order.site.distance_km = 300.0;
        let r = policy.evaluate(&order, &cal, cst(2026, 11, 23, 10));
        assert_eq!(r.clocks.len(), 2, "negotiated on-site deadline without appointment");
    }
}
