//! Storing normalized alerts: deduplicate repeats, group related alerts into open cases,
//! open new cases with SLA due times. Runs inside the ingestion writer's transaction.

use super::correlate;
use super::CaseError;
use crate::alert::{AlertState, NewAlert, Severity};
use crate::audit::{self, Actor, NewEvent};
use crate::config::{CasesConfig, SlaTarget};
use crate::db::schema::{alert_observables, alerts, cases};
use crate::db::DbConn;
use crate::events::{Bus, EventKind};
use crate::on_backend;
use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use serde::Serialize;
use serde_json::json;

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
    let mut audit_events = Vec::new();
    let out = record_deferring_audit(
        conn,
        config,
        bus,
        source_id,
        source_name,
        batch,
        now,
        &mut audit_events,
    )?;
    audit::append_all(conn, audit_events)?;
    Ok(out)
}

/// [`record`], leaving the audit events of opened cases in `audit_events` for the caller
/// to append in the same transaction: a group commit appends those of all its requests
/// in one pass over the chain's head.
#[allow(clippy::too_many_arguments)]
pub fn record_deferring_audit(
    conn: &mut DbConn,
    config: &CasesConfig,
    bus: &Bus,
    source_id: i64,
    source_name: &str,
    batch: &[PreparedAlert],
    now: NaiveDateTime,
    audit_events: &mut Vec<NewEvent>,
) -> Result<Vec<Recorded>, CaseError> {
    let dedup_since = now - Duration::minutes(i64::from(config.dedup_window_minutes));
    let group_since = now - Duration::minutes(i64::from(config.correlation_window_minutes));
    let mut out = Vec::with_capacity(batch.len());
    // Case updates are gathered and written once per case at the end of the batch: many
    // alerts of a batch land in the same few cases.
    let mut touches: std::collections::BTreeMap<i64, Touch> = std::collections::BTreeMap::new();
    for p in batch {
        let severity = p.alert.severity.id();
        let state = match p.alert.state {
            AlertState::Active => "active",
            AlertState::Resolved => "resolved",
        };
        let existing: Option<(i64, i64, i32)> = on_backend!(conn, |c| alerts::table
            .filter(alerts::source_id.eq(source_id))
            .filter(alerts::fingerprint.eq(&p.fingerprint))
            .filter(alerts::last_seen_at.ge(dedup_since))
            .order(alerts::last_seen_at.desc())
            .select((alerts::id, alerts::case_id, alerts::severity))
            .first(c)
            .optional())?;
        if let Some((alert_id, case_id, old_severity)) = existing {
            on_backend!(conn, |c| diesel::update(alerts::table.find(alert_id))
                .set((
                    alerts::occurrences.eq(alerts::occurrences + 1),
                    alerts::last_seen_at.eq(now),
                    alerts::state.eq(state),
                    alerts::severity.eq(severity.max(old_severity)),
                ))
                .execute(c))?;
            touches
                .entry(case_id)
                .or_default()
                .add(p.alert.severity, false);
            out.push(Recorded {
                alert_id,
                case_id,
                deduplicated: true,
                case_created: false,
            });
            continue;
        }

        let open_case: Option<i64> = on_backend!(conn, |c| cases::table
            .filter(cases::correlation_key.eq(&p.correlation_key))
            .filter(cases::status.ne("resolved"))
            .filter(cases::status.ne("closed"))
            .filter(cases::merged_into_id.is_null())
            .filter(cases::last_seen_at.ge(group_since))
            .order(cases::last_seen_at.desc())
            .select(cases::id)
            .first(c)
            .optional())?;
        let (case_id, case_created) = match open_case {
            Some(id) => {
                touches.entry(id).or_default().add(p.alert.severity, true);
                (id, false)
            }
            None => {
                let id = open_case_for(conn, config, source_id, p, now)?;
                audit_events.push(case_created_event(id, source_name, p));
                bus.emit(
                    conn,
                    EventKind::CaseCreated,
                    Some(id),
                    None,
                    &json!({ "source": source_name }),
                )?;
                (id, true)
            }
        };

        let alert_id: i64 = on_backend!(conn, |c| diesel::insert_into(alerts::table)
            .values((
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
                alerts::received_at.eq(now),
                alerts::last_seen_at.eq(now),
                alerts::occurrences.eq(1),
                alerts::tags.eq(&p.tags_json),
                alerts::raw.eq(&p.raw),
            ))
            .returning(alerts::id)
            .get_result(c))?;
        // One statement per observable: each is prepared once and reused, which measured
        // faster than a multi-row insert whose SQL differs with the row count.
        for o in &p.alert.observables {
            on_backend!(conn, |c| diesel::insert_into(alert_observables::table)
                .values((
                    alert_observables::alert_id.eq(alert_id),
                    alert_observables::kind.eq(o.kind.as_str()),
                    alert_observables::value.eq(o.value.as_str()),
                    alert_observables::role.eq(o.role.map_or("related", |r| r.as_str())),
                ))
                .execute(c))?;
        }
        // Checked first so the details are not built for an event nobody listens to.
        if bus.wants(EventKind::AlertIngested) {
            bus.emit(
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
    for (case_id, touch) in touches {
        touch_case(conn, config, case_id, touch, now)?;
    }
    Ok(out)
}

/// What a batch did to one case.
#[derive(Debug, Default, Clone, Copy)]
struct Touch {
    /// The highest severity among the batch's alerts for the case.
    severity: Option<Severity>,
    /// New alerts added (repeats do not count).
    new_alerts: i32,
}

impl Touch {
    fn add(&mut self, severity: Severity, new_alert: bool) {
        self.severity = Some(self.severity.map_or(severity, |s| s.max(severity)));
        self.new_alerts += i32::from(new_alert);
    }
}

fn open_case_for(
    conn: &mut DbConn,
    config: &CasesConfig,
    source_id: i64,
    p: &PreparedAlert,
    now: NaiveDateTime,
) -> Result<i64, CaseError> {
    let (ack_due, resolve_due) = due_times(config, p.alert.severity, now);
    let case_id = on_backend!(conn, |c| diesel::insert_into(cases::table)
        .values((
            cases::title.eq(&p.alert.title),
            cases::status.eq("new"),
            cases::severity.eq(p.alert.severity.id()),
            cases::correlation_key.eq(&p.correlation_key),
            cases::source_id.eq(source_id),
            cases::alert_count.eq(1),
            cases::first_seen_at.eq(now),
            cases::last_seen_at.eq(now),
            cases::created_at.eq(now),
            cases::updated_at.eq(now),
            cases::ack_due_at.eq(ack_due),
            cases::resolve_due_at.eq(resolve_due),
        ))
        .returning(cases::id)
        .get_result::<i64>(c))?;
    Ok(case_id)
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

/// Alerts new or repeated on a case: bump last-seen, raise severity (tightening SLA due
/// times to the new severity's targets), and count the new alerts.
fn touch_case(
    conn: &mut DbConn,
    config: &CasesConfig,
    case_id: i64,
    touch: Touch,
    now: NaiveDateTime,
) -> Result<(), CaseError> {
    let severity = touch.severity.unwrap_or(Severity::Unknown);
    let (current, created_at, ack_due, resolve_due): (
        i32,
        NaiveDateTime,
        Option<NaiveDateTime>,
        Option<NaiveDateTime>,
    ) = on_backend!(conn, |c| cases::table
        .find(case_id)
        .select((
            cases::severity,
            cases::created_at,
            cases::ack_due_at,
            cases::resolve_due_at,
        ))
        .first(c))?;
    let increment = touch.new_alerts;
    if severity.id() > current {
        let (new_ack, new_resolve) = due_times(config, severity, created_at);
        let earlier = |a: Option<NaiveDateTime>, b: Option<NaiveDateTime>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        on_backend!(conn, |c| diesel::update(cases::table.find(case_id))
            .set((
                cases::severity.eq(severity.id()),
                cases::ack_due_at.eq(earlier(ack_due, new_ack)),
                cases::resolve_due_at.eq(earlier(resolve_due, new_resolve)),
                cases::last_seen_at.eq(now),
                cases::updated_at.eq(now),
                cases::alert_count.eq(cases::alert_count + increment),
            ))
            .execute(c))?;
    } else {
        on_backend!(conn, |c| diesel::update(cases::table.find(case_id))
            .set((
                cases::last_seen_at.eq(now),
                cases::updated_at.eq(now),
                cases::alert_count.eq(cases::alert_count + increment),
            ))
            .execute(c))?;
    }
    Ok(())
}
