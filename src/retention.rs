//! Data retention: raw alert payloads and closed cases are removed after the configured
//! number of days; audit events never are.
//!
//! The audit chain hashes only its own rows, so deleting cases, alerts and runs leaves
//! `tocsin audit verify` intact. Audit details keep the ids (and, for steps, the redacted
//! inputs and outputs) of what was removed; each pass that removes anything records
//! `retention.purged` with the cutoffs, the counts and the removed case ids, so a reader
//! of the trail can tell a purged case from a missing one. Work is done in batches of
//! short transactions, so a pass never holds the write lock for long.

use crate::audit::{self, Actor, AuditError, NewEvent};
use crate::config::RetentionConfig;
use crate::db::schema::{alerts, approval_gates, cases, playbook_runs};
use crate::db::{now, Db, DbError};
use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;
use serde_json::json;

/// Cases (or alerts) handled per transaction.
const BATCH: i64 = 500;

/// Retention failures.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

impl From<diesel::result::Error> for RetentionError {
    fn from(err: diesel::result::Error) -> Self {
        RetentionError::Db(DbError::Query(err))
    }
}

/// What one pass removed.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Purged {
    /// Alerts whose raw payload was removed.
    pub raw_payloads: usize,
    /// Closed cases removed (with their alerts, comments, tags and runs).
    pub cases: usize,
    /// Alerts removed with those cases.
    pub alerts: usize,
    /// Playbook runs removed with those cases.
    pub runs: usize,
}

/// Runs one retention pass at `at` by `actor`; returns what it removed.
pub async fn run(
    db: &Db,
    config: &RetentionConfig,
    at: NaiveDateTime,
    actor: &Actor,
) -> Result<Purged, RetentionError> {
    let mut purged = Purged::default();
    if config.raw_payload_days > 0 {
        let cutoff = at - chrono::Duration::days(i64::from(config.raw_payload_days));
        loop {
            let actor = actor.clone();
            let n = db
                .write(move |conn| {
                    let ids: Vec<i64> = alerts::table
                        .filter(alerts::last_seen_at.lt(cutoff))
                        .filter(alerts::raw.ne(""))
                        .order(alerts::id)
                        .limit(BATCH)
                        .select(alerts::id)
                        .load(conn)?;
                    if ids.is_empty() {
                        return Ok::<_, RetentionError>(0);
                    }
                    let n = diesel::update(alerts::table.filter(alerts::id.eq_any(&ids)))
                        .set(alerts::raw.eq(""))
                        .execute(conn)?;
                    audit::append(
                        conn,
                        NewEvent::new(
                            &actor,
                            "retention.purged",
                            "alerts",
                            json!({
                                "what": "raw_payloads",
                                "last_seen_before": crate::db::utc::format(&cutoff),
                                "alerts": n,
                                "first_alert_id": ids.first(),
                                "last_alert_id": ids.last(),
                            }),
                        ),
                    )?;
                    Ok(n)
                })
                .await?;
            purged.raw_payloads += n;
            if n < BATCH as usize {
                break;
            }
        }
    }
    if config.closed_case_days > 0 {
        let cutoff = at - chrono::Duration::days(i64::from(config.closed_case_days));
        loop {
            let actor = actor.clone();
            let (n, a, r) = db
                .write(move |conn| purge_closed_cases(conn, cutoff, &actor))
                .await?;
            purged.cases += n;
            purged.alerts += a;
            purged.runs += r;
            if n < BATCH as usize {
                break;
            }
        }
    }
    Ok(purged)
}

/// One batch of closed cases older than `cutoff`, in the caller's transaction. A case
/// with a run still going is kept until the run ends. Returns (cases, alerts, runs).
fn purge_closed_cases(
    conn: &mut crate::db::DbConn,
    cutoff: NaiveDateTime,
    actor: &Actor,
) -> Result<(usize, usize, usize), RetentionError> {
    let busy = playbook_runs::table
        .filter(playbook_runs::status.eq_any(["pending", "running", "waiting"]))
        .filter(playbook_runs::case_id.is_not_null())
        .select(playbook_runs::case_id.assume_not_null());
    let ids: Vec<i64> = cases::table
        .filter(cases::status.eq("closed"))
        .filter(cases::closed_at.lt(cutoff))
        .filter(cases::id.ne_all(busy))
        .order(cases::id)
        .limit(BATCH)
        .select(cases::id)
        .load(conn)?;
    if ids.is_empty() {
        return Ok((0, 0, 0));
    }
    // Runs go with their case (step runs, gates, decisions, links and gate e-mail
    // cascade); a run's gate may name the case too.
    let runs = diesel::delete(playbook_runs::table.filter(playbook_runs::case_id.eq_any(&ids)))
        .execute(conn)?;
    diesel::delete(approval_gates::table.filter(approval_gates::case_id.eq_any(&ids)))
        .execute(conn)?;
    // Observables cascade with their alert.
    let alerts_n =
        diesel::delete(alerts::table.filter(alerts::case_id.eq_any(&ids))).execute(conn)?;
    // A case kept elsewhere may point at a purged one it was merged into.
    diesel::update(cases::table.filter(cases::merged_into_id.eq_any(&ids)))
        .set(cases::merged_into_id.eq(None::<i64>))
        .execute(conn)?;
    // Comments and tags cascade with the case.
    let n = diesel::delete(cases::table.filter(cases::id.eq_any(&ids))).execute(conn)?;
    audit::append(
        conn,
        NewEvent::new(
            actor,
            "retention.purged",
            "cases",
            json!({
                "what": "closed_cases",
                "closed_before": crate::db::utc::format(&cutoff),
                "cases": n,
                "case_ids": ids,
                "alerts": alerts_n,
                "runs": runs,
            }),
        ),
    )?;
    Ok((n, alerts_n, runs))
}

/// Runs a pass every `interval_minutes` while the process lives (roles `all` and
/// `worker`). Several processes may run it: each batch is a transaction, and a row gone
/// already is simply not found again.
pub async fn run_periodically(db: Db, config: RetentionConfig) {
    if config.raw_payload_days == 0 && config.closed_case_days == 0 {
        return;
    }
    let every = std::time::Duration::from_secs(u64::from(config.interval_minutes) * 60);
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        match run(&db, &config, now(), &Actor::system("retention")).await {
            Ok(p) if p == Purged::default() => {}
            Ok(p) => tracing::info!(
                raw_payloads = p.raw_payloads,
                cases = p.cases,
                alerts = p.alerts,
                runs = p.runs,
                "retention pass"
            ),
            Err(e) => tracing::warn!(error = %e, "retention pass failed"),
        }
    }
}
