//! The work-order lifecycle state machine. Pure: no I/O, no clock.
//!
//! ```text
//! assigned -> accepted -> customer_contacted -> en_route -> on_site -> in_progress
//!          -> awaiting_signature -> completed
//! side exits: rescheduled (reason, new window), carried_to_workshop (带回检修),
//!             cancelled (dispatcher only), unresolved (needs another visit)
//! ```

use autosurgeon::{Hydrate, Reconcile};
use serde::{Deserialize, Serialize};

use super::model::TimeWindow;
use super::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Reconcile, Hydrate)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Assigned,
    Accepted,
    CustomerContacted,
    EnRoute,
    OnSite,
    InProgress,
    AwaitingSignature,
    Completed,
    Rescheduled,
    CarriedToWorkshop,
    Cancelled,
    Unresolved,
}

impl Status {
    pub const ALL: [Status; 12] = [
        Status::Assigned,
        Status::Accepted,
        Status::CustomerContacted,
        Status::EnRoute,
        Status::OnSite,
        Status::InProgress,
        Status::AwaitingSignature,
        Status::Completed,
        Status::Rescheduled,
        Status::CarriedToWorkshop,
        Status::Cancelled,
        Status::Unresolved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Assigned => "assigned",
            Status::Accepted => "accepted",
            Status::CustomerContacted => "customer_contacted",
            Status::EnRoute => "en_route",
            Status::OnSite => "on_site",
            Status::InProgress => "in_progress",
            Status::AwaitingSignature => "awaiting_signature",
            Status::Completed => "completed",
            Status::Rescheduled => "rescheduled",
            Status::CarriedToWorkshop => "carried_to_workshop",
            Status::Cancelled => "cancelled",
            Status::Unresolved => "unresolved",
        }
    }

    pub fn parse(s: &str) -> Result<Self, Error> {
        Status::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| Error::UnknownStatus { value: s.to_string() })
    }

    /// No event leaves these states (a carried-back device continues as a workshop order).
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Completed | Status::Cancelled | Status::CarriedToWorkshop)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who asks for a transition. Devices act as the engineer; cancellations come from the
/// dispatcher (through sync, or the dispatcher console).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    Engineer,
    Dispatcher,
}

/// What happened. Events carry their own data (reasons, windows) so a record is self-contained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Reconcile, Hydrate)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    Accept,
    /// First contact with the customer; the appointment window was agreed.
    ContactCustomer {
        window: TimeWindow,
    },
    Depart,
    Arrive,
    StartWork,
    RequestSignature,
    Complete,
    Reschedule {
        reason: String,
        window: TimeWindow,
    },
    CarryToWorkshop {
        reason: String,
    },
    Cancel {
        reason: String,
    },
    MarkUnresolved {
        reason: String,
    },
}

impl Event {
    pub fn name(&self) -> &'static str {
        match self {
            Event::Accept => "accept",
            Event::ContactCustomer { .. } => "contact_customer",
            Event::Depart => "depart",
            Event::Arrive => "arrive",
            Event::StartWork => "start_work",
            Event::RequestSignature => "request_signature",
            Event::Complete => "complete",
            Event::Reschedule { .. } => "reschedule",
            Event::CarryToWorkshop { .. } => "carry_to_workshop",
            Event::Cancel { .. } => "cancel",
            Event::MarkUnresolved { .. } => "mark_unresolved",
        }
    }

    /// The role allowed to raise this event.
    pub fn required_actor(&self) -> Actor {
        match self {
            Event::Cancel { .. } => Actor::Dispatcher,
            _ => Actor::Engineer,
        }
    }

    /// The appointment window this event sets, if any.
    pub fn new_window(&self) -> Option<TimeWindow> {
        match self {
            Event::ContactCustomer { window } | Event::Reschedule { window, .. } => Some(*window),
            _ => None,
        }
    }

    fn validate(&self) -> Result<(), Error> {
        if let Some(w) = self.new_window() {
            if w.end <= w.start {
                return Err(Error::Invalid { field: "window".into(), reason: "the window must end after it starts".into() });
            }
        }
        match self {
            Event::Reschedule { reason, .. } | Event::CarryToWorkshop { reason } | Event::Cancel { reason } | Event::MarkUnresolved { reason }
                if reason.trim().is_empty() =>
            {
                Err(Error::Invalid { field: "reason".into(), reason: "a reason is required".into() })
            }
            _ => Ok(()),
        }
    }
}

/// The target state of `event` from `from`, or `None` when the machine has no such edge.
fn edge(from: Status, event: &Event) -> Option<Status> {
    use Status::*;
    let to = match (from, event) {
        (Assigned, Event::Accept) => Accepted,
        (Accepted | Rescheduled | Unresolved, Event::ContactCustomer { .. }) => CustomerContacted,
        (CustomerContacted | Rescheduled, Event::Depart) => EnRoute,
        (EnRoute, Event::Arrive) => OnSite,
        (OnSite, Event::StartWork) => InProgress,
        (InProgress, Event::RequestSignature) => AwaitingSignature,
        (AwaitingSignature, Event::Complete) => Completed,
        (Accepted | CustomerContacted | EnRoute | OnSite | Rescheduled | Unresolved, Event::Reschedule { .. }) => Rescheduled,
        (OnSite | InProgress | AwaitingSignature, Event::CarryToWorkshop { .. }) => CarriedToWorkshop,
        (OnSite | InProgress | AwaitingSignature, Event::MarkUnresolved { .. }) => Unresolved,
        (s, Event::Cancel { .. }) if !s.is_terminal() => Cancelled,
        _ => return None,
    };
    Some(to)
}

/// Checks `event` against the machine and the actor's role; returns the new status.
pub fn next_status(from: Status, event: &Event, actor: Actor) -> Result<Status, Error> {
    event.validate()?;
    if event.required_actor() != actor {
        return Err(Error::NotPermitted { event: event.name().to_string(), actor });
    }
    edge(from, event).ok_or_else(|| Error::IllegalTransition { from, event: event.name().to_string() })
}

/// Names of the events an engineer can raise from `from` (for UI buttons).
/// Who raised an event, when and where: what the transition record keeps besides the event.
#[derive(Debug, Clone, PartialEq)]
pub struct Raised {
    pub actor: Actor,
    pub at: super::Timestamp,
    pub monotonic_ms: u64,
    /// The device id (or the server's origin for dispatcher events).
    pub device: String,
    pub fix: Option<super::GpsFix>,
}

/// Applies an event to an order, the one way device and server do it: checks the edge,
/// appends the transition record, sets the status, and takes a new appointment window the
/// event carries. Returns the new status; on an error the order is unchanged.
pub fn apply(order: &mut super::WorkOrder, event: Event, raised: Raised) -> Result<Status, Error> {
    let to = next_status(order.status, &event, raised.actor)?;
    if let Some(w) = event.new_window() {
        order.appointment = Some(w);
    }
    let Raised { at, monotonic_ms, device, fix, .. } = raised;
    order.transitions.push(super::TransitionRecord { from: order.status, to, event, at, monotonic_ms, device, fix });
    order.status = to;
    Ok(to)
}

pub fn engineer_events(from: Status) -> Vec<&'static str> {
    let w = TimeWindow { start: super::Timestamp(0), end: super::Timestamp(1) };
    let samples = [
        Event::Accept,
        Event::ContactCustomer { window: w },
        Event::Depart,
        Event::Arrive,
        Event::StartWork,
        Event::RequestSignature,
        Event::Complete,
        Event::Reschedule { reason: "x".into(), window: w },
        Event::CarryToWorkshop { reason: "x".into() },
        Event::MarkUnresolved { reason: "x".into() },
    ];
    samples.iter().filter(|e| edge(from, e).is_some()).map(Event::name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::Timestamp;
    use proptest::prelude::*;

    fn w() -> TimeWindow {
        TimeWindow { start: Timestamp(1_000), end: Timestamp(2_000) }
    }

    #[test]
    fn happy_path_reaches_completed() {
        let path =
            [Event::Accept, Event::ContactCustomer { window: w() }, Event::Depart, Event::Arrive, Event::StartWork, Event::RequestSignature, Event::Complete];
        let mut s = Status::Assigned;
        for e in &path {
            s = next_status(s, e, Actor::Engineer).unwrap();
        }
        assert_eq!(s, Status::Completed);
        assert!(s.is_terminal());
    }

    #[test]
    fn illegal_transition_is_typed() {
        let err = next_status(Status::Assigned, &Event::Arrive, Actor::Engineer).unwrap_err();
        assert!(matches!(err, Error::IllegalTransition { from: Status::Assigned, ref event } if event == "arrive"));
        let err = next_status(Status::Completed, &Event::Accept, Actor::Engineer).unwrap_err();
        assert!(matches!(err, Error::IllegalTransition { .. }));
    }

    #[test]
    fn only_dispatcher_cancels() {
        let cancel = Event::Cancel { reason: "customer withdrew".into() };
        assert!(matches!(next_status(Status::Accepted, &cancel, Actor::Engineer), Err(Error::NotPermitted { .. })));
        assert_eq!(next_status(Status::Accepted, &cancel, Actor::Dispatcher).unwrap(), Status::Cancelled);
        assert!(next_status(Status::Completed, &cancel, Actor::Dispatcher).is_err());
        assert!(matches!(next_status(Status::Accepted, &Event::Accept, Actor::Dispatcher), Err(Error::NotPermitted { .. })));
    }

    #[test]
    fn reschedule_needs_reason_and_valid_window() {
        let bad = Event::Reschedule { reason: " ".into(), window: w() };
        assert!(matches!(next_status(Status::Accepted, &bad, Actor::Engineer), Err(Error::Invalid { .. })));
        let inverted = TimeWindow { start: Timestamp(5), end: Timestamp(5) };
        let bad = Event::ContactCustomer { window: inverted };
        assert!(matches!(next_status(Status::Accepted, &bad, Actor::Engineer), Err(Error::Invalid { ref field, .. }) if field == "window"));
        let ok = Event::Reschedule { reason: "customer away".into(), window: w() };
        assert_eq!(next_status(Status::EnRoute, &ok, Actor::Engineer).unwrap(), Status::Rescheduled);
        assert_eq!(next_status(Status::Rescheduled, &Event::Depart, Actor::Engineer).unwrap(), Status::EnRoute);
    }

    #[test]
    fn unresolved_can_be_revisited_and_workshop_is_terminal() {
        let s = next_status(Status::InProgress, &Event::MarkUnresolved { reason: "part on order".into() }, Actor::Engineer).unwrap();
        assert_eq!(s, Status::Unresolved);
        assert_eq!(next_status(s, &Event::ContactCustomer { window: w() }, Actor::Engineer).unwrap(), Status::CustomerContacted);
        let s = next_status(Status::OnSite, &Event::CarryToWorkshop { reason: "board fault".into() }, Actor::Engineer).unwrap();
        assert!(engineer_events(s).is_empty());
    }

    #[test]
    fn status_names_round_trip_and_unknown_is_typed() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()).unwrap(), s);
        }
        assert!(matches!(Status::parse("teleported"), Err(Error::UnknownStatus { .. })));
    }

    fn any_event() -> impl Strategy<Value = Event> {
        prop_oneof![
            Just(Event::Accept),
            Just(Event::ContactCustomer { window: w() }),
            Just(Event::Depart),
            Just(Event::Arrive),
            Just(Event::StartWork),
            Just(Event::RequestSignature),
            Just(Event::Complete),
            Just(Event::Reschedule { reason: "r".into(), window: w() }),
            Just(Event::CarryToWorkshop { reason: "r".into() }),
            Just(Event::Cancel { reason: "r".into() }),
            Just(Event::MarkUnresolved { reason: "r".into() }),
        ]
    }

    proptest! {
        /// Any event sequence: terminal states are never left, and the UI's list of
        /// engineer events agrees exactly with what the machine accepts.
        #[test]
        fn machine_is_consistent(events in proptest::collection::vec(any_event(), 0..40)) {
            let mut s = Status::Assigned;
            for e in &events {
                let actor = e.required_actor();
                match next_status(s, e, actor) {
                    Ok(next) => {
                        prop_assert!(!s.is_terminal(), "left terminal {s}");
                        if actor == Actor::Engineer {
                            prop_assert!(engineer_events(s).contains(&e.name()));
                        }
                        s = next;
                    }
                    Err(Error::IllegalTransition { from, .. }) => {
                        prop_assert_eq!(from, s);
                        if actor == Actor::Engineer {
                            prop_assert!(!engineer_events(s).contains(&e.name()));
                        }
                    }
                    Err(other) => prop_assert!(false, "unexpected {other:?}"),
                }
            }
        }
    }
}
