//! Writes audit events of a time range as NDJSON or CSV for compliance review.

use super::{hash_time, AuditError, AuditEvent};
use crate::db::schema::audit_events;
use crate::db::DbConn;
use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use serde::Serialize;
use std::io::Write;

const PAGE: i64 = 2_000;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Ndjson,
    Csv,
}

/// One exported row: the stored event with its details parsed back into JSON.
#[derive(Debug, Serialize)]
pub struct ExportedEvent {
    pub seq: i64,
    pub occurred_at: String,
    pub actor_kind: String,
    pub actor_id: String,
    pub action: String,
    pub target: String,
    pub details: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

impl From<AuditEvent> for ExportedEvent {
    fn from(e: AuditEvent) -> Self {
        // Details were written by `serde_json`; if a row was edited into invalid JSON it is
        // exported as a string so the export still shows what is there.
        let details =
            serde_json::from_str(&e.details).unwrap_or(serde_json::Value::String(e.details));
        ExportedEvent {
            seq: e.seq,
            occurred_at: hash_time(&e.occurred_at),
            actor_kind: e.actor_kind,
            actor_id: e.actor_id,
            action: e.action,
            target: e.target,
            details,
            prev_hash: e.prev_hash,
            hash: e.hash,
        }
    }
}

/// Parses `--since`/`--until`: RFC 3339, or a bare date meaning its midnight UTC.
pub fn parse_time(value: &str) -> Result<NaiveDateTime, AuditError> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(value) {
        return Ok(t.naive_utc());
    }
    if let Ok(d) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        if let Some(t) = d.and_hms_opt(0, 0, 0) {
            return Ok(t);
        }
    }
    Err(AuditError::BadTime {
        value: value.to_string(),
    })
}

/// Where rows go.
enum Sink<'a> {
    Ndjson(&'a mut dyn Write),
    Csv(Box<csv::Writer<&'a mut dyn Write>>),
}

impl Sink<'_> {
    fn write(&mut self, row: ExportedEvent) -> Result<(), AuditError> {
        match self {
            Sink::Ndjson(out) => {
                serde_json::to_writer(&mut **out, &row)?;
                out.write_all(b"\n")?;
            }
            Sink::Csv(w) => w.write_record([
                row.seq.to_string(),
                row.occurred_at,
                row.actor_kind,
                row.actor_id,
                row.action,
                row.target,
                row.details.to_string(),
                row.prev_hash,
                row.hash,
            ])?,
        }
        Ok(())
    }

    fn finish(self) -> Result<(), AuditError> {
        match self {
            Sink::Ndjson(out) => out.flush()?,
            Sink::Csv(mut w) => w.flush()?,
        }
        Ok(())
    }
}

/// Streams events with `since <= occurred_at < until` in sequence order; returns the count.
pub fn export(
    conn: &mut DbConn,
    since: Option<NaiveDateTime>,
    until: Option<NaiveDateTime>,
    format: Format,
    out: &mut dyn Write,
) -> Result<u64, AuditError> {
    let mut sink = match format {
        Format::Ndjson => Sink::Ndjson(out),
        Format::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record([
                "seq",
                "occurred_at",
                "actor_kind",
                "actor_id",
                "action",
                "target",
                "details",
                "prev_hash",
                "hash",
            ])?;
            Sink::Csv(Box::new(w))
        }
    };
    let mut after = 0i64;
    let mut count = 0u64;
    loop {
        let mut query = audit_events::table
            .filter(audit_events::seq.gt(after))
            .order(audit_events::seq.asc())
            .limit(PAGE)
            .select(AuditEvent::as_select())
            .into_boxed();
        if let Some(since) = since {
            query = query.filter(audit_events::occurred_at.ge(since));
        }
        if let Some(until) = until {
            query = query.filter(audit_events::occurred_at.lt(until));
        }
        let page: Vec<AuditEvent> = query.load(conn)?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for event in page {
            sink.write(ExportedEvent::from(event))?;
            count += 1;
        }
    }
    sink.finish()?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dates_and_rfc3339() {
        assert_eq!(
            hash_time(&parse_time("2026-11-25").unwrap()),
            "2026-11-25T00:00:00.000000Z"
        );
        assert_eq!(
            hash_time(&parse_time("2026-11-25T12:30:00+02:00").unwrap()),
            "2026-11-25T10:30:00.000000Z"
        );
        assert!(matches!(
            parse_time("yesterday"),
            Err(AuditError::BadTime { .. })
        ));
    }
}
