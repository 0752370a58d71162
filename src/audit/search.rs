//! Finding audit events (by actor, action, target, time and text, newest first, in pages)
//! and remembering the outcome of the last chain verification.

use super::verify::Report;
use super::{AuditError, AuditEvent, NewEvent};
use crate::audit::Actor;
use crate::db::schema::audit_events;
use crate::db::DbConn;
use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use serde::Serialize;

diesel::define_sql_function!(fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text);

/// The action recorded each time someone verifies the chain from the console.
pub const VERIFIED_ACTION: &str = "audit.verified";

/// Most events one page may hold.
pub const MAX_LIMIT: i64 = 200;

/// What to look for; empty fields match everything.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Filter {
    /// The actor's identifier (`alice`, `system/ingest` is kind `system` id `ingest`).
    pub actor: Option<String>,
    /// An action (`user.created`), or a prefix ending in `*` or `.` (`user.*`).
    pub action: Option<String>,
    /// The target exactly (`user:alice`, `case:12`).
    pub target: Option<String>,
    /// Events at or after this time.
    pub since: Option<NaiveDateTime>,
    /// Events before this time.
    pub until: Option<NaiveDateTime>,
    /// Words that must all appear (any case) in the action, target, actor or details.
    pub text: Option<String>,
}

/// One page of events, newest first.
#[derive(Debug, Serialize)]
pub struct Page {
    pub events: Vec<AuditEvent>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    pub next_before: Option<i64>,
}

/// Parses a time bound from a form: RFC 3339, a browser's `datetime-local` value
/// (`2026-12-01T10:30`, read as UTC) or a date (its midnight UTC).
pub fn parse_bound(field: &'static str, value: &str) -> Result<NaiveDateTime, AuditError> {
    let value = value.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(value) {
        return Ok(t.naive_utc());
    }
    for format in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(value, format) {
            return Ok(t);
        }
    }
    if let Some(t) = NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
    {
        return Ok(t);
    }
    Err(AuditError::BadTime {
        value: format!("{field}={value}"),
    })
}

fn like_pattern(word: &str) -> String {
    let escaped = word
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

fn nonblank(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// A page of at most `limit` events matching `filter` with `seq < before`, newest first.
pub fn search(
    conn: &mut DbConn,
    filter: &Filter,
    before: Option<i64>,
    limit: i64,
) -> Result<Page, AuditError> {
    let limit = limit.clamp(1, MAX_LIMIT);
    let mut q = audit_events::table
        .select(AuditEvent::as_select())
        .order(audit_events::seq.desc())
        .limit(limit + 1)
        .into_boxed();
    if let Some(before) = before {
        q = q.filter(audit_events::seq.lt(before));
    }
    if let Some(actor) = nonblank(&filter.actor) {
        // `kind/id` as the page shows it, or the id alone.
        q = match actor.split_once('/') {
            Some((kind, id)) if ["user", "api_token", "playbook", "system"].contains(&kind) => q
                .filter(audit_events::actor_kind.eq(kind.to_string()))
                .filter(audit_events::actor_id.eq(id.to_string())),
            _ => q.filter(audit_events::actor_id.eq(actor.to_string())),
        };
    }
    if let Some(action) = nonblank(&filter.action) {
        q = match action.strip_suffix('*') {
            Some(prefix) => {
                let escaped = prefix
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_");
                q.filter(
                    audit_events::action
                        .like(format!("{escaped}%"))
                        .escape('\\'),
                )
            }
            None => q.filter(audit_events::action.eq(action.to_string())),
        };
    }
    if let Some(target) = nonblank(&filter.target) {
        q = q.filter(audit_events::target.eq(target.to_string()));
    }
    if let Some(since) = filter.since {
        q = q.filter(audit_events::occurred_at.ge(since));
    }
    if let Some(until) = filter.until {
        q = q.filter(audit_events::occurred_at.lt(until));
    }
    if let Some(text) = nonblank(&filter.text) {
        for word in text.split_whitespace().take(8) {
            let pattern = like_pattern(word);
            q = q.filter(
                lower(audit_events::details)
                    .like(pattern.clone())
                    .escape('\\')
                    .or(lower(audit_events::target)
                        .like(pattern.clone())
                        .escape('\\'))
                    .or(lower(audit_events::action)
                        .like(pattern.clone())
                        .escape('\\'))
                    .or(lower(audit_events::actor_id).like(pattern).escape('\\')),
            );
        }
    }
    let mut events: Vec<AuditEvent> = q.load(conn)?;
    let more = events.len() as i64 > limit;
    events.truncate(limit as usize);
    let next_before = if more {
        events.last().map(|e| e.seq)
    } else {
        None
    };
    Ok(Page {
        events,
        next_before,
    })
}

/// The outcome of a verification as the console shows it, read back from its event.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Verification {
    /// The event that recorded this verification.
    pub seq: i64,
    #[serde(serialize_with = "crate::db::utc::serialize")]
    pub at: NaiveDateTime,
    /// Who asked (`user/alice`).
    pub by: String,
    pub intact: bool,
    pub events_checked: u64,
    pub head_seq: i64,
    pub head_hash: String,
    /// Where the chain breaks, when it does.
    pub first_bad_seq: Option<i64>,
    pub reason: Option<String>,
}

/// Records a verification's outcome as an audit event (so who verified when is itself in
/// the trail); call in a write transaction.
pub fn record_verification(
    conn: &mut DbConn,
    actor: &Actor,
    report: &Report,
) -> Result<i64, AuditError> {
    let details = serde_json::json!({
        "intact": report.intact(),
        "events_checked": report.events_checked,
        "head_seq": report.head_seq,
        "head_hash": report.head_hash,
        "first_bad": report.first_bad,
    });
    super::append(
        conn,
        NewEvent::new(actor, VERIFIED_ACTION, "audit:chain", details),
    )
}

/// The most recent recorded verification, if any.
pub fn last_verification(conn: &mut DbConn) -> Result<Option<Verification>, AuditError> {
    let event: Option<AuditEvent> = audit_events::table
        .filter(audit_events::action.eq(VERIFIED_ACTION))
        .order(audit_events::seq.desc())
        .select(AuditEvent::as_select())
        .first(conn)
        .optional()?;
    Ok(event.map(|e| {
        let d: serde_json::Value = serde_json::from_str(&e.details).unwrap_or_default();
        Verification {
            seq: e.seq,
            at: e.occurred_at,
            by: format!("{}/{}", e.actor_kind, e.actor_id),
            intact: d["intact"].as_bool().unwrap_or(false),
            events_checked: d["events_checked"].as_u64().unwrap_or(0),
            head_seq: d["head_seq"].as_i64().unwrap_or(0),
            head_hash: d["head_hash"].as_str().unwrap_or_default().to_string(),
            first_bad_seq: d["first_bad"]["seq"].as_i64(),
            reason: d["first_bad"]["reason"].as_str().map(str::to_string),
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_accept_forms_and_rfc3339() {
        let t = |v| super::super::hash_time(&parse_bound("since", v).unwrap());
        assert_eq!(t("2026-12-01T10:30"), "2026-12-01T10:30:00.000000Z");
        assert_eq!(t("2026-12-01"), "2026-12-01T00:00:00.000000Z");
        assert_eq!(
            t("2026-12-01T12:30:00+02:00"),
            "2026-12-01T10:30:00.000000Z"
        );
        let err = parse_bound("until", "soon").unwrap_err().to_string();
        assert!(err.contains("until=soon"), "{err}");
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("50%_A"), "%50\\%\\_a%");
    }
}
