//! Domain events that can start playbooks (`case.created`, `alert.ingested`,
//! `case.updated`), kept in an outbox table written in the same transaction as the change
//! itself: a crash after the commit loses no trigger, and a rolled-back change fires none.
//! The playbook engine's dispatcher reads and deletes them.

use crate::db::schema::engine_events;
use crate::db::{now, DbConn};
use diesel::prelude::*;
use serde_json::Value;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;

use crate::db::notify::{Channel, Notifier};

/// The events playbooks can be triggered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    CaseCreated,
    CaseUpdated,
    AlertIngested,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 3] = [
        EventKind::CaseCreated,
        EventKind::CaseUpdated,
        EventKind::AlertIngested,
    ];

    /// The stored and documented name (`case.created`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::CaseCreated => "case.created",
            EventKind::CaseUpdated => "case.updated",
            EventKind::AlertIngested => "alert.ingested",
        }
    }

    /// The kind called `name`.
    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    fn bit(self) -> u8 {
        match self {
            EventKind::CaseCreated => 1,
            EventKind::CaseUpdated => 2,
            EventKind::AlertIngested => 4,
        }
    }
}

/// Which events anything listens to, and the wake-up for the dispatcher. Shared by the
/// writers of events (ingestion, case updates) and the engine.
#[derive(Debug, Default, Clone)]
pub struct Bus {
    inner: Arc<BusInner>,
}

#[derive(Debug, Default)]
struct BusInner {
    wanted: AtomicU8,
    notify: Notify,
    /// Wake-ups for the dispatchers of other processes (PostgreSQL).
    peers: std::sync::OnceLock<Notifier>,
}

impl Bus {
    /// A bus nobody listens to yet.
    pub fn new() -> Bus {
        Bus::default()
    }

    /// Declares the kinds that loaded playbooks are triggered by; events of other kinds
    /// are not written at all, which keeps ingestion from paying for unused triggers.
    pub fn listen(&self, kinds: impl IntoIterator<Item = EventKind>) {
        let bits = kinds.into_iter().fold(0u8, |acc, k| acc | k.bit());
        self.inner.wanted.store(bits, Ordering::Release);
    }

    /// Whether events of `kind` are wanted.
    pub fn wants(&self, kind: EventKind) -> bool {
        self.inner.wanted.load(Ordering::Acquire) & kind.bit() != 0
    }

    /// Whether any kind is listened to (else writers need not wake the dispatcher).
    pub fn wants_any(&self) -> bool {
        self.inner.wanted.load(Ordering::Acquire) != 0
    }

    /// Sends wake-ups to other processes' dispatchers too, through `notifier`.
    pub fn connect(&self, notifier: Notifier) {
        let _ = self.inner.peers.set(notifier);
    }

    /// Wakes the dispatchers (this process's and, on PostgreSQL, the others') after a
    /// commit that may have written events; nothing when no kind is listened to (a
    /// wake-up costs a dispatcher a query).
    pub fn wake(&self) {
        if self.wants_any() {
            self.inner.notify.notify_one();
            if let Some(peers) = self.inner.peers.get() {
                peers.announce(Channel::Events);
            }
        }
    }

    /// The wake-ups to other processes, when connected.
    pub fn peers(&self) -> Option<&Notifier> {
        self.inner.peers.get()
    }

    /// Wakes this process's dispatcher only (another process announced events).
    pub fn wake_local(&self) {
        self.inner.notify.notify_one();
    }

    /// Waits for [`Bus::wake`].
    pub async fn woken(&self) {
        self.inner.notify.notified().await;
    }

    /// Writes an event in the caller's transaction, if anything listens to its kind.
    /// Returns whether it was written.
    pub fn emit(
        &self,
        conn: &mut DbConn,
        kind: EventKind,
        case_id: Option<i64>,
        alert_id: Option<i64>,
        details: &Value,
    ) -> QueryResult<bool> {
        if !self.wants(kind) {
            return Ok(false);
        }
        diesel::insert_into(engine_events::table)
            .values((
                engine_events::kind.eq(kind.as_str()),
                engine_events::case_id.eq(case_id),
                engine_events::alert_id.eq(alert_id),
                engine_events::details.eq(details.to_string()),
                engine_events::created_at.eq(now()),
            ))
            .execute(conn)?;
        Ok(true)
    }
}

/// A stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: i64,
    /// `None` for a kind this version does not know (the event is dropped).
    pub kind: Option<EventKind>,
    pub case_id: Option<i64>,
    pub alert_id: Option<i64>,
    pub details: Value,
}

/// The `limit` oldest events, without taking them.
pub fn peek(conn: &mut DbConn, limit: i64) -> QueryResult<Vec<Event>> {
    type Row = (i64, String, Option<i64>, Option<i64>, String);
    let rows: Vec<Row> = engine_events::table
        .order(engine_events::id)
        .limit(limit)
        .select((
            engine_events::id,
            engine_events::kind,
            engine_events::case_id,
            engine_events::alert_id,
            engine_events::details,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(id, kind, case_id, alert_id, details)| Event {
            id,
            kind: EventKind::parse(&kind),
            case_id,
            alert_id,
            details: serde_json::from_str(&details).unwrap_or(Value::Null),
        })
        .collect())
}

/// Takes event `id` out of the outbox in the caller's transaction. Returns false when
/// another process took it first, so each event is handled once.
pub fn remove(conn: &mut DbConn, id: i64) -> QueryResult<bool> {
    Ok(diesel::delete(engine_events::table.find(id)).execute(conn)? == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_wanted_kinds_are_wanted() {
        let bus = Bus::new();
        assert!(EventKind::ALL.iter().all(|k| !bus.wants(*k)));
        bus.listen([EventKind::AlertIngested, EventKind::CaseCreated]);
        assert!(bus.wants(EventKind::AlertIngested));
        assert!(bus.wants(EventKind::CaseCreated));
        assert!(!bus.wants(EventKind::CaseUpdated));
        bus.listen([]);
        assert!(!bus.wants(EventKind::AlertIngested));
    }

    #[test]
    fn names_round_trip() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(EventKind::parse("case.deleted"), None);
    }
}
