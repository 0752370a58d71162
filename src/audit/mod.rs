//! The append-only, hash-chained audit trail.
//!
//! Every event stores the SHA-256 of the previous event; `audit_head` holds the last
//! sequence number and hash. Callers append inside the same transaction as the change
//! they record, so a change and its audit event commit together or not at all.

pub mod export;
pub mod search;
pub mod verify;

use crate::db::schema::{audit_events, audit_head};
use crate::db::{DbConn, DbError};
use crate::on_backend;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Audit failures.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot serialize audit details: {0}")]
    Details(#[from] serde_json::Error),
    #[error("cannot write the export: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot write the export: {0}")]
    Csv(#[from] csv::Error),
    #[error(
        "invalid time {value:?}: expected RFC 3339 (2026-01-31T12:00:00Z) or a date (2026-01-31)"
    )]
    BadTime { value: String },
}

impl From<diesel::result::Error> for AuditError {
    fn from(err: diesel::result::Error) -> Self {
        AuditError::Db(DbError::Query(err))
    }
}

/// Who did something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    User,
    ApiToken,
    Playbook,
    System,
}

impl ActorKind {
    /// The stored name of the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::User => "user",
            ActorKind::ApiToken => "api_token",
            ActorKind::Playbook => "playbook",
            ActorKind::System => "system",
        }
    }
}

/// The actor of an audit event: a kind and an identifier within it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub kind: ActorKind,
    pub id: String,
}

impl Actor {
    /// A person using the console or the API with a session.
    pub fn user(username: &str) -> Actor {
        Actor {
            kind: ActorKind::User,
            id: username.to_string(),
        }
    }

    /// An API token, identified as `owner/token-id`.
    pub fn api_token(owner: &str, token_id: i64) -> Actor {
        Actor {
            kind: ActorKind::ApiToken,
            id: format!("{owner}/{token_id}"),
        }
    }

    /// A playbook run, identified as `playbook-id#run-id`.
    pub fn playbook(playbook: &str, run_id: i64) -> Actor {
        Actor {
            kind: ActorKind::Playbook,
            id: format!("{playbook}#{run_id}"),
        }
    }

    /// Tocsin itself, or an operator at the command line (`system` / `cli`).
    pub fn system(id: &str) -> Actor {
        Actor {
            kind: ActorKind::System,
            id: id.to_string(),
        }
    }
}

/// An event to append.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub actor: Actor,
    /// Dotted verb such as `user.created` or `auth.login_failed`.
    pub action: String,
    /// What was acted on, such as `user:alice`.
    pub target: String,
    pub details: serde_json::Value,
}

impl NewEvent {
    /// An event with details.
    pub fn new(
        actor: &Actor,
        action: &str,
        target: impl Into<String>,
        details: serde_json::Value,
    ) -> NewEvent {
        NewEvent {
            actor: actor.clone(),
            action: action.to_string(),
            target: target.into(),
            details,
        }
    }
}

/// A stored audit event.
#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = audit_events)]
pub struct AuditEvent {
    pub seq: i64,
    pub occurred_at: NaiveDateTime,
    pub actor_kind: String,
    pub actor_id: String,
    pub action: String,
    pub target: String,
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

/// Appends one event after the current head. Must run inside a write transaction
/// (`Db::write`), whose other changes the event records.
pub fn append(conn: &mut DbConn, event: NewEvent) -> Result<i64, AuditError> {
    // One event is a batch of one: `append_all` returns its sequence number.
    Ok(append_all(conn, vec![event])?.unwrap_or_default())
}

/// Appends several events in order, in one pass over the chain's head: one bump of the
/// head for all of them instead of two statements each. Same transaction rules as
/// [`append`]; the chain is the same as appending them one by one. Returns the last
/// sequence number, or `None` when `events` is empty.
pub fn append_all(conn: &mut DbConn, events: Vec<NewEvent>) -> Result<Option<i64>, AuditError> {
    let count = events.len() as i64;
    if count == 0 {
        return Ok(None);
    }
    // Bumping the head first takes its row lock (PostgreSQL) or the write lock (SQLite)
    // before the previous hash is read, so two appenders cannot fork the chain. One
    // statement reserves every sequence number and returns the previous hash.
    let (last, mut prev_hash): (i64, String) = on_backend!(conn, |c| diesel::update(
        audit_head::table.filter(audit_head::id.eq(1))
    )
    .set(audit_head::seq.eq(audit_head::seq + count))
    .returning((audit_head::seq, audit_head::hash))
    .get_result(c))?;
    let occurred_at = crate::db::now();
    for (seq, event) in (last - count + 1..).zip(events) {
        let details = serde_json::to_string(&event.details)?;
        let hash = event_hash(
            seq,
            &occurred_at,
            event.actor.kind.as_str(),
            &event.actor.id,
            &event.action,
            &event.target,
            &details,
            &prev_hash,
        );
        on_backend!(conn, |c| diesel::insert_into(audit_events::table)
            .values((
                audit_events::seq.eq(seq),
                audit_events::occurred_at.eq(occurred_at),
                audit_events::actor_kind.eq(event.actor.kind.as_str()),
                audit_events::actor_id.eq(&event.actor.id),
                audit_events::action.eq(&event.action),
                audit_events::target.eq(&event.target),
                audit_events::details.eq(&details),
                audit_events::prev_hash.eq(&prev_hash),
                audit_events::hash.eq(&hash),
            ))
            .execute(c))?;
        prev_hash = hash;
    }
    on_backend!(conn, |c| diesel::update(
        audit_head::table.filter(audit_head::id.eq(1))
    )
    .set(audit_head::hash.eq(&prev_hash))
    .execute(c))?;
    Ok(Some(last))
}

/// The canonical timestamp text inside the hash: UTC, microseconds.
pub fn hash_time(t: &NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// SHA-256 over every field, each prefixed with its length so no two different events
/// can encode to the same bytes.
#[allow(clippy::too_many_arguments)]
pub fn event_hash(
    seq: i64,
    occurred_at: &NaiveDateTime,
    actor_kind: &str,
    actor_id: &str,
    action: &str,
    target: &str,
    details: &str,
    prev_hash: &str,
) -> String {
    let mut hasher = Sha256::new();
    let time = hash_time(occurred_at);
    let seq_text = seq.to_string();
    for field in [
        seq_text.as_str(),
        time.as_str(),
        actor_kind,
        actor_id,
        action,
        target,
        details,
        prev_hash,
    ] {
        hasher.update((field.len() as u64).to_be_bytes());
        hasher.update(field.as_bytes());
    }
    hex::encode(hasher.finalize())
}

impl AuditEvent {
    /// The hash this event should carry given its fields.
    pub fn computed_hash(&self) -> String {
        event_hash(
            self.seq,
            &self.occurred_at,
            &self.actor_kind,
            &self.actor_id,
            &self.action,
            &self.target,
            &self.details,
            &self.prev_hash,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> NaiveDateTime {
        chrono::DateTime::parse_from_rfc3339("2026-11-25T10:00:00.123456Z")
            .unwrap()
            .naive_utc()
    }

    #[test]
    fn hash_depends_on_every_field() {
        let base = event_hash(1, &t(), "user", "alice", "a", "t", "{}", GENESIS_HASH);
        assert_eq!(base.len(), 64);
        let variants = [
            event_hash(2, &t(), "user", "alice", "a", "t", "{}", GENESIS_HASH),
            event_hash(1, &t(), "system", "alice", "a", "t", "{}", GENESIS_HASH),
            event_hash(1, &t(), "user", "bob", "a", "t", "{}", GENESIS_HASH),
            event_hash(1, &t(), "user", "alice", "b", "t", "{}", GENESIS_HASH),
            event_hash(1, &t(), "user", "alice", "a", "u", "{}", GENESIS_HASH),
            event_hash(
                1,
                &t(),
                "user",
                "alice",
                "a",
                "t",
                "{\"x\":1}",
                GENESIS_HASH,
            ),
            event_hash(1, &t(), "user", "alice", "a", "t", "{}", &"1".repeat(64)),
        ];
        for v in variants {
            assert_ne!(v, base);
        }
    }

    #[test]
    fn field_boundaries_cannot_be_shifted() {
        let a = event_hash(1, &t(), "user", "ab", "c", "t", "{}", GENESIS_HASH);
        let b = event_hash(1, &t(), "user", "a", "bc", "t", "{}", GENESIS_HASH);
        assert_ne!(a, b);
    }

    /// Events appended together chain exactly like events appended one by one.
    #[test]
    fn append_all_extends_the_chain_in_order() {
        let (_dir, db) = crate::db::scratch_sqlite();
        let event = |n: usize| {
            NewEvent::new(
                &Actor::system("test"),
                "case.created",
                format!("case:{n}"),
                serde_json::json!({ "n": n }),
            )
        };
        let before = db.write_sync(|conn| append(conn, event(0))).unwrap();
        let last = db
            .write_sync(|conn| append_all(conn, (1..=3).map(event).collect()))
            .unwrap();
        assert_eq!(last, Some(before + 3));
        let none = db.write_sync(|conn| append_all(conn, Vec::new())).unwrap();
        assert_eq!(none, None);
        let after = db.write_sync(|conn| append(conn, event(4))).unwrap();
        assert_eq!(after, before + 4);
        let report = db.read_sync(verify::verify).unwrap();
        assert!(report.intact(), "{report:?}");
        assert_eq!(report.head_seq, after);
        let targets: Vec<String> = db
            .read_sync(|conn| {
                audit_events::table
                    .filter(audit_events::seq.gt(before))
                    .order(audit_events::seq)
                    .select(audit_events::target)
                    .load(conn)
                    .map_err(AuditError::from)
            })
            .unwrap();
        assert_eq!(targets, ["case:1", "case:2", "case:3", "case:4"]);
    }

    #[test]
    fn hash_time_keeps_microseconds() {
        assert_eq!(hash_time(&t()), "2026-11-25T10:00:00.123456Z");
    }
}
