//! The change feed the console follows to show changes without a reload.
//!
//! Nearly every change is an audit event written in the transaction that made it, so the
//! feed reads the audit trail after a cursor; alerts that join an existing case are not
//! audited one by one, so it also reads cases whose `last_seen_at` moved. Reading the
//! database, rather than hooking every writer, means a change made by another process on
//! the same database shows up too, and a rolled-back change never does.

use crate::db::schema::{approval_gates, audit_events, audit_head, cases, playbook_runs};
use crate::db::{Db, DbConn, DbError};
use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch};

/// How many audit events, or moved cases, one poll reads; more means "much changed" and
/// is sent as one [`Change::bulk`].
const PAGE: i64 = 500;

/// Cases whose `last_seen_at` is this close before the cursor are read again: the time is
/// taken before the writer's commit, so a row can become visible with a time slightly in
/// the past of a poll that already ran.
const SEEN_MARGIN_MS: i64 = 2_000;

/// One change, as the console sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The audit action (`case.updated`, `playbook.step_finished`, ...), `case.seen` when
    /// an alert joined a case, `bulk` when too much changed to list.
    pub action: String,
    /// What changed, as in the audit trail (`case:12`, `run:4`, `approval:7`).
    pub target: String,
    /// The case it belongs to, when there is one.
    pub case: Option<i64>,
}

impl Change {
    /// "Too much changed to list": followers refresh whatever they show.
    pub fn bulk() -> Change {
        Change {
            action: "bulk".into(),
            target: String::new(),
            case: None,
        }
    }
}

/// Where the feed has read up to.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Cursor {
    seq: i64,
    seen: NaiveDateTime,
}

/// The feed: one poller per process, shared by every follower.
#[derive(Clone)]
pub struct Feed {
    tx: broadcast::Sender<Arc<Vec<Change>>>,
    closed: watch::Sender<bool>,
}

/// One follower's view of the feed.
pub struct Subscription {
    /// Batches of changes, one per poll that found any.
    pub changes: broadcast::Receiver<Arc<Vec<Change>>>,
    /// Turns `true` when the process is stopping, so long-lived streams end.
    pub closed: watch::Receiver<bool>,
}

impl Feed {
    /// Starts polling `db` every `every`; must be called inside the tokio runtime. The
    /// poller stops when the feed is closed.
    pub fn start(db: Db, every: Duration) -> Feed {
        let (tx, _) = broadcast::channel(64);
        let (closed, _) = watch::channel(false);
        let feed = Feed { tx, closed };
        tokio::spawn(feed.clone().run(db, every));
        feed
    }

    /// A feed that never polls (for states built outside a server).
    pub fn idle() -> Feed {
        let (tx, _) = broadcast::channel(1);
        let (closed, _) = watch::channel(false);
        Feed { tx, closed }
    }

    /// Follows the feed from now on.
    pub fn subscribe(&self) -> Subscription {
        Subscription {
            changes: self.tx.subscribe(),
            closed: self.closed.subscribe(),
        }
    }

    /// Ends every follower's stream and the poller (the process is stopping).
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    async fn run(self, db: Db, every: Duration) {
        let mut closed = self.closed.subscribe();
        let mut cursor: Option<Cursor> = None;
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = closed.changed() => return,
            }
            if *closed.borrow() {
                return;
            }
            // Nobody follows: only keep the cursor current, so a follower that arrives
            // later is not sent the history in between.
            let following = self.tx.receiver_count() > 0;
            let from = cursor;
            let read = db
                .read(move |conn| -> Result<_, DbError> {
                    Ok(match from {
                        Some(from) if following => changes_since(conn, from)?,
                        _ => (Vec::new(), start_cursor(conn)?),
                    })
                })
                .await;
            match read {
                Ok((changes, next)) => {
                    cursor = Some(next);
                    if !changes.is_empty() {
                        // No follower left in between is not an error.
                        let _ = self.tx.send(Arc::new(changes));
                    }
                }
                Err(err) => tracing::warn!(error = %err, "live feed: reading changes failed"),
            }
        }
    }
}

fn start_cursor(conn: &mut DbConn) -> QueryResult<Cursor> {
    let seq = audit_head::table
        .select(audit_head::seq)
        .first::<i64>(conn)
        .optional()?
        .unwrap_or(0);
    Ok(Cursor {
        seq,
        seen: crate::db::now(),
    })
}

/// Everything that changed after `from`, and the cursor after it.
fn changes_since(conn: &mut DbConn, from: Cursor) -> QueryResult<(Vec<Change>, Cursor)> {
    let now = crate::db::now();
    let events: Vec<(i64, String, String, String)> = audit_events::table
        .filter(audit_events::seq.gt(from.seq))
        .order(audit_events::seq.asc())
        .limit(PAGE)
        .select((
            audit_events::seq,
            audit_events::action,
            audit_events::target,
            audit_events::details,
        ))
        .load(conn)?;
    let seen: Vec<i64> = cases::table
        .filter(cases::last_seen_at.gt(from.seen - chrono::Duration::milliseconds(SEEN_MARGIN_MS)))
        .select(cases::id)
        .limit(PAGE)
        .load(conn)?;
    let mut next = Cursor {
        seq: events.last().map_or(from.seq, |e| e.0),
        seen: now,
    };
    let mut changes = Vec::with_capacity(events.len() + seen.len());
    if events.len() as i64 >= PAGE || seen.len() as i64 >= PAGE {
        // Skip what is left: a follower refreshes from the database anyway.
        next.seq = start_cursor(conn)?.seq.max(next.seq);
        changes.push(Change::bulk());
        return Ok((changes, next));
    }
    let owners = case_owners(conn, &events)?;
    for (_, action, target, details) in events {
        let case = case_of(&target, &details, &owners);
        changes.push(Change {
            action,
            target,
            case,
        });
    }
    for id in seen {
        let target = format!("case:{id}");
        if !changes.iter().any(|c| c.target == target) {
            changes.push(Change {
                action: "case.seen".into(),
                target,
                case: Some(id),
            });
        }
    }
    Ok((changes, next))
}

/// The cases of the runs and approval gates the events name, read in one query each.
fn case_owners(
    conn: &mut DbConn,
    events: &[(i64, String, String, String)],
) -> QueryResult<HashMap<String, i64>> {
    let ids = |prefix: &str| -> Vec<i64> {
        events
            .iter()
            .filter_map(|e| e.2.strip_prefix(prefix)?.parse().ok())
            .collect()
    };
    let mut owners = HashMap::new();
    let runs = ids("run:");
    if !runs.is_empty() {
        for (id, case) in playbook_runs::table
            .filter(playbook_runs::id.eq_any(&runs))
            .select((playbook_runs::id, playbook_runs::case_id))
            .load::<(i64, Option<i64>)>(conn)?
        {
            if let Some(case) = case {
                owners.insert(format!("run:{id}"), case);
            }
        }
    }
    let gates = ids("approval:");
    if !gates.is_empty() {
        for (id, case) in approval_gates::table
            .filter(approval_gates::id.eq_any(&gates))
            .select((approval_gates::id, approval_gates::case_id))
            .load::<(i64, Option<i64>)>(conn)?
        {
            if let Some(case) = case {
                owners.insert(format!("approval:{id}"), case);
            }
        }
    }
    Ok(owners)
}

/// The case an event is about: its target, a run's or gate's case, or `case_id` in its
/// details.
fn case_of(target: &str, details: &str, owners: &HashMap<String, i64>) -> Option<i64> {
    if let Some(id) = target.strip_prefix("case:").and_then(|s| s.parse().ok()) {
        return Some(id);
    }
    if let Some(case) = owners.get(target) {
        return Some(*case);
    }
    serde_json::from_str::<serde_json::Value>(details)
        .ok()?
        .get("case_id")?
        .as_i64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_case_comes_from_the_target_the_owner_or_the_details() {
        let owners = HashMap::from([("run:4".to_string(), 9)]);
        assert_eq!(case_of("case:12", "{}", &owners), Some(12));
        assert_eq!(case_of("run:4", "{}", &owners), Some(9));
        assert_eq!(case_of("run:5", r#"{"case_id": 3}"#, &owners), Some(3));
        assert_eq!(case_of("user:alice", "{}", &owners), None);
        assert_eq!(case_of("user:alice", "not json", &owners), None);
    }
}
