//! Storing normalized alerts: deduplicate repeats, group related alerts into open cases,
//! open new cases with SLA due times. Runs inside the ingestion writer's transaction.

use super::correlate;
use super::CaseError;
use crate::alert::{AlertState, NewAlert, Observable, Severity};
use crate::audit::{self, Actor, NewEvent};
use crate::config::{CasesConfig, SlaTarget};
use crate::db::kept::{bind, kept};
use crate::db::schema::{alert_observables, alerts, cases};
use crate::db::stamp::Stamp;
use crate::db::DbConn;
use crate::events::{Bus, EventKind};
use crate::on_backend;
use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text, Timestamp};
use serde::Serialize;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};

/// Inserts one row (`$values`) into `$table` and gives its id (`$id`): with `RETURNING`
/// on PostgreSQL, one round trip; on SQLite as a plain insert followed by reading the
/// rowid, because SQLite runs `RETURNING` as a trigger, and a statement with a trigger
/// copies every page it changes into a statement journal first (8% of the ingestion
/// writer's time in its profile).
macro_rules! insert_id {
    ($conn:expr, $table:expr, $id:expr, $values:expr $(,)?) => {{
        let values = $values;
        match $conn {
            DbConn::Postgres(c) => diesel::insert_into($table)
                .values(values)
                .returning($id)
                .get_result::<i64>(c),
            DbConn::Sqlite(c) => diesel::insert_into($table)
                .values(values)
                .execute(c)
                .and_then(|_| crate::db::last_rowid(c)),
        }
    }};
}

/// An alert ready to store: normalized, with its raw payload and identities.
#[derive(Debug, Clone)]
pub struct PreparedAlert {
    pub alert: NewAlert,
    /// The event exactly as received.
    pub raw: String,
    pub fingerprint: String,
    pub correlation_key: String,
    /// The alert's tags as stored (a JSON array), serialized before the writer runs.
    pub tags_json: String,
}

impl PreparedAlert {
    /// Computes the fingerprint and correlation key for an alert from `source_id`.
    pub fn new(
        source_id: i64,
        alert: NewAlert,
        raw: String,
        correlate_by: &[correlate::CorrelationField],
    ) -> PreparedAlert {
        PreparedAlert {
            fingerprint: correlate::fingerprint(source_id, &alert),
            correlation_key: correlate::correlation_key(correlate_by, source_id, &alert),
            tags_json: serde_json::to_string(&alert.tags).unwrap_or_else(|_| "[]".into()),
            alert,
            raw,
        }
    }
}

/// What happened to one alert.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Recorded {
    pub alert_id: i64,
    pub case_id: i64,
    /// A repeat within the dedup window: the existing alert's counter went up.
    pub deduplicated: bool,
    /// This alert opened a new case.
    pub case_created: bool,
}

/// The SLA target for a severity.
pub fn sla_for(config: &CasesConfig, severity: Severity) -> SlaTarget {
    let s = &config.sla;
    match severity {
        Severity::Fatal => s.fatal,
        Severity::Critical => s.critical,
        Severity::High => s.high,
        Severity::Medium => s.medium,
        Severity::Low => s.low,
        Severity::Informational => s.informational,
        Severity::Unknown => s.unknown,
    }
}

/// Due times from `created_at` for a severity; `None` where the target is 0.
pub fn due_times(
    config: &CasesConfig,
    severity: Severity,
    created_at: NaiveDateTime,
) -> (Option<NaiveDateTime>, Option<NaiveDateTime>) {
    let target = sla_for(config, severity);
    let due =
        |minutes: u32| (minutes > 0).then(|| created_at + Duration::minutes(i64::from(minutes)));
    (due(target.ack_minutes), due(target.resolve_minutes))
}

/// Records alerts from one source at time `now`, in the caller's transaction, with the
/// `case.created` and `alert.ingested` events that playbooks listen to.
pub fn record(
    conn: &mut DbConn,
    config: &CasesConfig,
    bus: &Bus,
    source_id: i64,
    source_name: &str,
    batch: &[PreparedAlert],
    now: NaiveDateTime,
) -> Result<Vec<Recorded>, CaseError> {
    let mut recorder = Recorder::new(config, bus, now);
    let out = recorder.record(conn, source_id, source_name, batch)?;
    recorder.finish(conn)?;
    Ok(out)
}

/// A case the transaction has read or written, and what its alerts do to it.
#[derive(Debug, Clone, Copy, Default)]
struct CaseEntry {
    /// Its row as read (or as created here); `None` until needed.
    row: Option<CaseRow>,
    /// The highest severity among the alerts and repeats that reached the case after its
    /// row was read or created; `None` while none did (nothing to write).
    severity: Option<Severity>,
    /// New alerts added beyond those counted when the row was written (repeats do not count).
    new_alerts: i32,
}

/// The case columns a touch needs.
#[derive(Debug, Clone, Copy, QueryableByName)]
struct CaseRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Integer)]
    severity: i32,
    #[diesel(sql_type = Timestamp)]
    created_at: NaiveDateTime,
    #[diesel(sql_type = Nullable<Timestamp>)]
    ack_due_at: Option<NaiveDateTime>,
    #[diesel(sql_type = Nullable<Timestamp>)]
    resolve_due_at: Option<NaiveDateTime>,
}

/// The newest open, unmerged case of a correlation key seen since a time. The status and
/// merge terms are written as in the partial index `cases_open_correlation`, which
/// holds only such cases, so both databases can use it.
const OPEN_CASE_BY_KEY: &str = "SELECT id, severity, created_at, ack_due_at, resolve_due_at \
     FROM cases WHERE correlation_key = ? AND status NOT IN ('resolved', 'closed') \
     AND merged_into_id IS NULL AND last_seen_at >= ? ORDER BY id DESC LIMIT 1";

const CASE_BY_ID: &str =
    "SELECT id, severity, created_at, ack_due_at, resolve_due_at FROM cases WHERE id = ?";

/// The alert an alert repeats: the newest with its source and fingerprint seen within
/// the dedup window (the newest is the only one a repeat can have moved into the
/// window). The prefix term is the key of the index `alerts_dedup_key`, written as there;
/// the rest is compared as a suffix because a term `fingerprint = ?` would let SQLite
/// substitute the value into the prefix term, which then no longer matches the index.
const REPEAT_OF: &str = "SELECT id, case_id, severity FROM alerts WHERE source_id = ? \
     AND substr(fingerprint, 1, 16) = ? AND substr(fingerprint, 17) = ? \
     AND last_seen_at >= ? ORDER BY id DESC LIMIT 1";

/// The alert a repeat updates.
#[derive(Debug, Clone, Copy, QueryableByName)]
struct RepeatOf {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    case_id: i64,
    #[diesel(sql_type = Integer)]
    severity: i32,
}

const REPEAT_ALERT: &str = "UPDATE alerts SET occurrences = occurrences + 1, last_seen_at = ?, \
     state = ?, severity = ? WHERE id = ?";

const TOUCH_CASE: &str = "UPDATE cases SET last_seen_at = ?, updated_at = ?, \
     alert_count = alert_count + ? WHERE id = ?";

const RAISE_CASE: &str = "UPDATE cases SET severity = ?, ack_due_at = ?, resolve_due_at = ?, \
     last_seen_at = ?, updated_at = ?, alert_count = alert_count + ? WHERE id = ?";

/// Records the alerts of one transaction, which may hold the requests of several
/// sources (a group commit). Open cases found or opened for a correlation key are
/// remembered, so later alerts with that key need no lookup, and each case touched is
/// updated once, in [`Recorder::finish`], however many alerts reached it.
pub struct Recorder<'a> {
    config: &'a CasesConfig,
    bus: &'a Bus,
    now: NaiveDateTime,
    /// `now`, and the starts of the two windows, as bound (formatted once per commit).
    stamp: Stamp,
    dedup_since: Stamp,
    group_since: Stamp,
    /// Correlation key → the open case alerts with that key join in this transaction.
    open_cases: HashMap<String, i64>,
    cases: BTreeMap<i64, CaseEntry>,
    /// Cases opened here, added to the title index at the end of the transaction.
    opened: Vec<i64>,
    audit: Vec<NewEvent>,
}

impl<'a> Recorder<'a> {
    /// A recorder for a transaction at time `now`.
    pub fn new(config: &'a CasesConfig, bus: &'a Bus, now: NaiveDateTime) -> Recorder<'a> {
        Recorder {
            config,
            bus,
            now,
            stamp: Stamp::new(now),
            dedup_since: Stamp::new(
                now - Duration::minutes(i64::from(config.dedup_window_minutes)),
            ),
            group_since: Stamp::new(
                now - Duration::minutes(i64::from(config.correlation_window_minutes)),
            ),
            open_cases: HashMap::new(),
            cases: BTreeMap::new(),
            opened: Vec::new(),
            audit: Vec::new(),
        }
    }

    /// Stores one request's alerts: deduplicates repeats, adds new alerts to the open
    /// case of their correlation key or opens one.
    pub fn record(
        &mut self,
        conn: &mut DbConn,
        source_id: i64,
        source_name: &str,
        batch: &[PreparedAlert],
    ) -> Result<Vec<Recorded>, CaseError> {
        let mut out = Vec::with_capacity(batch.len());
        for p in batch {
            let severity = p.alert.severity.id();
            let state = match p.alert.state {
                AlertState::Active => "active",
                AlertState::Resolved => "resolved",
            };
            let existing: Option<RepeatOf> = on_backend!(conn, |c| kept(
                REPEAT_OF,
                (
                    bind::<BigInt, _>(source_id),
                    bind::<Text, _>(p.fingerprint.get(..16).unwrap_or(&p.fingerprint)),
                    bind::<Text, _>(p.fingerprint.get(16..).unwrap_or_default()),
                    bind::<Timestamp, _>(&self.dedup_since),
                ),
            )
            .get_result::<RepeatOf>(c)
            .optional())?;
            if let Some(RepeatOf {
                id: alert_id,
                case_id,
                severity: old_severity,
            }) = existing
            {
                on_backend!(conn, |c| kept(
                    REPEAT_ALERT,
                    (
                        bind::<Timestamp, _>(&self.stamp),
                        bind::<Text, _>(state),
                        bind::<Integer, _>(severity.max(old_severity)),
                        bind::<BigInt, _>(alert_id),
                    ),
                )
                .execute(c))?;
                self.touch(case_id, p.alert.severity, false);
                out.push(Recorded {
                    alert_id,
                    case_id,
                    deduplicated: true,
                    case_created: false,
                });
                continue;
            }

            let (case_id, case_created) = match self.open_case(conn, &p.correlation_key)? {
                Some(id) => {
                    self.touch(id, p.alert.severity, true);
                    (id, false)
                }
                None => {
                    let id = self.open_case_for(conn, source_id, source_name, p)?;
                    (id, true)
                }
            };

            let alert_id = insert_id!(
                conn,
                alerts::table,
                alerts::id,
                (
                    alerts::case_id.eq(case_id),
                    alerts::source_id.eq(source_id),
                    alerts::fingerprint.eq(&p.fingerprint),
                    alerts::class.eq(p.alert.class.as_str()),
                    alerts::severity.eq(severity),
                    alerts::state.eq(state),
                    alerts::title.eq(&p.alert.title),
                    alerts::description.eq(&p.alert.description),
                    alerts::vendor.eq(&p.alert.vendor),
                    alerts::product.eq(&p.alert.product),
                    alerts::rule_id.eq(&p.alert.rule_id),
                    alerts::rule_name.eq(&p.alert.rule_name),
                    alerts::external_id.eq(&p.alert.external_id),
                    alerts::event_time.eq(p.alert.event_time.map(|t| t.naive_utc())),
                    alerts::received_at.eq(&self.stamp),
                    alerts::last_seen_at.eq(&self.stamp),
                    alerts::occurrences.eq(1),
                    alerts::tags.eq(&p.tags_json),
                    alerts::raw.eq(&p.raw),
                )
            )?;
            insert_observables(conn, alert_id, &p.alert.observables)?;
            // Checked first so the details are not built for an event nobody listens to.
            if self.bus.wants(EventKind::AlertIngested) {
                self.bus.emit(
                    conn,
                    EventKind::AlertIngested,
                    Some(case_id),
                    Some(alert_id),
                    &json!({ "source": source_name, "case_created": case_created }),
                )?;
            }
            out.push(Recorded {
                alert_id,
                case_id,
                deduplicated: false,
                case_created,
            });
        }
        Ok(out)
    }

    /// Writes the touched cases and the audit events of opened cases; the transaction
    /// is complete after this.
    pub fn finish(self, conn: &mut DbConn) -> Result<(), CaseError> {
        for (case_id, entry) in &self.cases {
            let Some(severity) = entry.severity else {
                continue;
            };
            let row = match entry.row {
                Some(row) => row,
                None => on_backend!(conn, |c| kept(CASE_BY_ID, (bind::<BigInt, _>(*case_id),))
                    .get_result::<CaseRow>(c))?,
            };
            if severity.id() > row.severity {
                let (new_ack, new_resolve) = due_times(self.config, severity, row.created_at);
                // The earlier of the two, or whichever is set.
                let earlier = |a: Option<NaiveDateTime>, b: Option<NaiveDateTime>| {
                    a.into_iter().chain(b).min()
                };
                on_backend!(conn, |c| kept(
                    RAISE_CASE,
                    (
                        bind::<Integer, _>(severity.id()),
                        bind::<Nullable<Timestamp>, _>(earlier(row.ack_due_at, new_ack)),
                        bind::<Nullable<Timestamp>, _>(earlier(row.resolve_due_at, new_resolve)),
                        bind::<Timestamp, _>(&self.stamp),
                        bind::<Timestamp, _>(&self.stamp),
                        bind::<Integer, _>(entry.new_alerts),
                        bind::<BigInt, _>(*case_id),
                    ),
                )
                .execute(c))?;
            } else {
                on_backend!(conn, |c| kept(
                    TOUCH_CASE,
                    (
                        bind::<Timestamp, _>(&self.stamp),
                        bind::<Timestamp, _>(&self.stamp),
                        bind::<Integer, _>(entry.new_alerts),
                        bind::<BigInt, _>(*case_id),
                    ),
                )
                .execute(c))?;
            }
        }
        audit::append_all(conn, self.audit)?;
        // Last, so no statement of this transaction follows a write to the index.
        super::query::index_titles(conn, &self.opened)?;
        Ok(())
    }

    /// Notes an alert (new, or a repeat) reaching a case.
    fn touch(&mut self, case_id: i64, severity: Severity, new_alert: bool) {
        let entry = self.cases.entry(case_id).or_default();
        entry.severity = Some(entry.severity.map_or(severity, |s| s.max(severity)));
        entry.new_alerts += i32::from(new_alert);
    }

    /// The open case alerts with `key` join, if there is one.
    fn open_case(&mut self, conn: &mut DbConn, key: &str) -> Result<Option<i64>, CaseError> {
        if let Some(id) = self.open_cases.get(key) {
            return Ok(Some(*id));
        }
        let row: Option<CaseRow> = on_backend!(conn, |c| kept(
            OPEN_CASE_BY_KEY,
            (
                bind::<Text, _>(key),
                bind::<Timestamp, _>(&self.group_since)
            ),
        )
        .get_result::<CaseRow>(c)
        .optional())?;
        Ok(row.map(|row| {
            self.open_cases.insert(key.to_string(), row.id);
            self.cases.entry(row.id).or_default().row = Some(row);
            row.id
        }))
    }

    /// Opens a case for an alert (it counts as the case's first alert).
    fn open_case_for(
        &mut self,
        conn: &mut DbConn,
        source_id: i64,
        source_name: &str,
        p: &PreparedAlert,
    ) -> Result<i64, CaseError> {
        let now = self.now;
        let (ack_due, resolve_due) = due_times(self.config, p.alert.severity, now);
        let id = insert_id!(
            conn,
            cases::table,
            cases::id,
            (
                cases::title.eq(&p.alert.title),
                cases::status.eq("new"),
                cases::severity.eq(p.alert.severity.id()),
                cases::correlation_key.eq(&p.correlation_key),
                cases::source_id.eq(source_id),
                cases::alert_count.eq(1),
                cases::first_seen_at.eq(&self.stamp),
                cases::last_seen_at.eq(&self.stamp),
                cases::created_at.eq(&self.stamp),
                cases::updated_at.eq(&self.stamp),
                cases::ack_due_at.eq(ack_due),
                cases::resolve_due_at.eq(resolve_due),
            )
        )?;
        self.open_cases.insert(p.correlation_key.clone(), id);
        self.cases.insert(
            id,
            CaseEntry {
                row: Some(CaseRow {
                    id,
                    severity: p.alert.severity.id(),
                    created_at: now,
                    ack_due_at: ack_due,
                    resolve_due_at: resolve_due,
                }),
                ..CaseEntry::default()
            },
        );
        self.opened.push(id);
        self.audit.push(case_created_event(id, source_name, p));
        self.bus.emit(
            conn,
            EventKind::CaseCreated,
            Some(id),
            None,
            &json!({ "source": source_name }),
        )?;
        Ok(id)
    }
}

/// Stores an alert's observables. On PostgreSQL, where every statement waits for its
/// answer, in one multi-row statement; on SQLite one cached statement per row, which
/// measured faster than a multi-row insert whose text (so its preparation) differs with
/// the row count.
fn insert_observables(
    conn: &mut DbConn,
    alert_id: i64,
    observables: &[Observable],
) -> Result<(), CaseError> {
    match conn {
        DbConn::Postgres(c) => {
            if !observables.is_empty() {
                let rows: Vec<_> = observables
                    .iter()
                    .map(|o| {
                        (
                            alert_observables::alert_id.eq(alert_id),
                            alert_observables::kind.eq(o.kind.as_str()),
                            alert_observables::value.eq(o.value.as_str()),
                            alert_observables::role.eq(o.role.map_or("related", |r| r.as_str())),
                        )
                    })
                    .collect();
                diesel::insert_into(alert_observables::table)
                    .values(rows)
                    .execute(c)?;
            }
        }
        DbConn::Sqlite(c) => {
            for o in observables {
                diesel::insert_into(alert_observables::table)
                    .values((
                        alert_observables::alert_id.eq(alert_id),
                        alert_observables::kind.eq(o.kind.as_str()),
                        alert_observables::value.eq(o.value.as_str()),
                        alert_observables::role.eq(o.role.map_or("related", |r| r.as_str())),
                    ))
                    .execute(c)?;
            }
        }
    }
    Ok(())
}

/// The audit event of a case opened by an alert.
fn case_created_event(case_id: i64, source_name: &str, p: &PreparedAlert) -> NewEvent {
    NewEvent::new(
        &Actor::system("ingest"),
        "case.created",
        format!("case:{case_id}"),
        json!({
            "source": source_name,
            "title": p.alert.title,
            "severity": p.alert.severity,
            "rule_id": p.alert.rule_id,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::sql_types::Text;

    #[derive(QueryableByName)]
    struct PlanRow {
        #[diesel(sql_type = Text)]
        detail: String,
    }

    fn plan(sql: &str) -> String {
        let (_dir, db) = crate::db::scratch_sqlite();
        db.write_sync(|conn| match conn {
            DbConn::Sqlite(c) => diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}"))
                .load::<PlanRow>(c)
                .map_err(crate::db::DbError::Query),
            DbConn::Postgres(_) => unreachable!("a SQLite scratch database"),
        })
        .unwrap()
        .into_iter()
        .map(|r| r.detail)
        .collect::<Vec<_>>()
        .join("; ")
    }

    /// A case opened by ingestion is found by a word of its title: the title index is
    /// fed by the writer at the end of its transaction, not by a trigger.
    #[test]
    fn opened_cases_are_found_by_title() {
        use crate::alert::{AlertClass, NewAlert};
        use crate::cases::query::{self, Filter, Sort};
        let (_dir, db) = crate::db::scratch_sqlite();
        let config = CasesConfig::default();
        let bus = Bus::new();
        let alert = |title: &str| {
            let a = NewAlert::new(
                AlertClass::DetectionFinding,
                Severity::High,
                title,
                "V",
                "P",
            );
            PreparedAlert::new(1, a, "{}".into(), &correlate::DEFAULT_CORRELATION)
        };
        let source = crate::ingest::sources::scratch(&db);
        let recorded = db
            .write_sync(|conn| {
                let batch = [
                    alert("Beaconing to quuxotic domain"),
                    alert("Brute force on SSH"),
                ];
                record(
                    conn,
                    &config,
                    &bus,
                    source.id,
                    "s",
                    &batch,
                    crate::db::now(),
                )
            })
            .unwrap();
        assert!(recorded.iter().all(|r| r.case_created), "{recorded:?}");
        let found = |text: &str| {
            db.read_sync(|conn| {
                let filter = Filter {
                    text: Some(text.into()),
                    ..Filter::default()
                };
                query::list(conn, &filter, Sort::default(), 50, None)
            })
            .unwrap()
            .cases
            .into_iter()
            .map(|c| c.title)
            .collect::<Vec<_>>()
        };
        assert_eq!(found("quuxotic"), ["Beaconing to quuxotic domain"]);
        assert_eq!(found("brute ssh"), ["Brute force on SSH"]);
        assert!(found("nowhere").is_empty());
    }

    /// The writer's per-alert lookups find their rows through the indexes made for them
    /// (a small change to the text, such as comparing the whole fingerprint, can make
    /// SQLite fall back to scanning every alert of the source).
    #[test]
    fn lookups_use_their_indexes() {
        let repeat = plan(REPEAT_OF);
        assert_eq!(
            repeat,
            "SEARCH alerts USING INDEX alerts_dedup_key (source_id=? AND <expr>=?)"
        );
        let open = plan(OPEN_CASE_BY_KEY);
        assert!(
            open.starts_with("SEARCH cases USING INDEX cases_open_correlation (correlation_key=?)")
                && !open.contains("TEMP B-TREE"),
            "{open}"
        );
    }
}
