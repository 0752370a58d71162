//! Walks the chain from the first event and names the first one that does not fit.

use super::{AuditError, AuditEvent, GENESIS_HASH};
use crate::db::schema::{audit_events, audit_head};
use crate::db::DbConn;
use diesel::prelude::*;
use serde::Serialize;

/// Events read per query, so verifying a long chain uses bounded memory.
const PAGE: i64 = 2_000;

/// The outcome of a verification.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Report {
    /// Events checked before stopping.
    pub events_checked: u64,
    /// The sequence number and hash recorded as the head of the chain.
    pub head_seq: i64,
    pub head_hash: String,
    /// The first event that breaks the chain, if any.
    pub first_bad: Option<BadEvent>,
}

/// Where and why the chain breaks.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BadEvent {
    /// Sequence number of the offending event (for a truncated tail: the missing one).
    pub seq: i64,
    pub reason: String,
}

impl Report {
    /// True when every event fits.
    pub fn intact(&self) -> bool {
        self.first_bad.is_none()
    }
}

/// Verifies the whole chain.
pub fn verify(conn: &mut DbConn) -> Result<Report, AuditError> {
    let (head_seq, head_hash): (i64, String) = audit_head::table
        .filter(audit_head::id.eq(1))
        .select((audit_head::seq, audit_head::hash))
        .first(conn)?;
    let mut checked = 0u64;
    let mut expected_seq = 1i64;
    let mut prev_hash = GENESIS_HASH.to_string();
    let report = |checked, first_bad| Report {
        events_checked: checked,
        head_seq,
        head_hash: head_hash.clone(),
        first_bad,
    };
    loop {
        let page: Vec<AuditEvent> = audit_events::table
            .filter(audit_events::seq.ge(expected_seq))
            .order(audit_events::seq.asc())
            .limit(PAGE)
            .select(AuditEvent::as_select())
            .load(conn)?;
        if page.is_empty() {
            break;
        }
        for event in page {
            if let Some(bad) = check(&event, expected_seq, &prev_hash) {
                return Ok(report(checked, Some(bad)));
            }
            checked += 1;
            expected_seq = event.seq + 1;
            prev_hash = event.hash;
        }
    }
    let last_seq = expected_seq - 1;
    let first_bad = if last_seq != head_seq {
        Some(BadEvent {
            seq: last_seq + 1,
            reason: format!(
                "the chain ends at event {last_seq} but its head records event {head_seq}: \
                 events after {last_seq} were deleted, or the head was altered"
            ),
        })
    } else if prev_hash != head_hash {
        Some(BadEvent {
            seq: last_seq,
            reason: "the last event's hash does not match the recorded head".into(),
        })
    } else {
        None
    };
    Ok(report(checked, first_bad))
}

fn check(event: &AuditEvent, expected_seq: i64, prev_hash: &str) -> Option<BadEvent> {
    let bad = |reason: String| {
        Some(BadEvent {
            seq: event.seq,
            reason,
        })
    };
    if event.seq != expected_seq {
        return bad(format!(
            "expected event {expected_seq} next but found {}: events were deleted or inserted",
            event.seq
        ));
    }
    if event.prev_hash != prev_hash {
        return bad(
            "its previous-hash does not match the event before it: an event was \
             inserted, removed or reordered here"
                .into(),
        );
    }
    if event.computed_hash() != event.hash {
        return bad("its contents do not match its hash: the event was edited".into());
    }
    None
}
