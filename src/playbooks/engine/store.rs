//! Rows of runs and step runs, and the transitions the engine commits. Every function
//! runs in the caller's transaction; the driver decides what to write.

use super::EngineError;
use crate::db::schema::{playbook_definitions, playbook_runs, step_runs};
use crate::db::{now, DbConn};
use crate::playbooks::definition::Playbook;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Created, not yet picked up.
    Pending,
    /// Being driven, or ready to be.
    Running,
    /// Parked until a timer (`wake_at`) or a decision wakes it.
    Waiting,
    Succeeded,
    Failed,
    Cancelled,
}

impl RunStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Running => "running",
            RunStatus::Waiting => "waiting",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    /// The status called `s` (unknown names read as failed, which stops nothing twice).
    pub fn parse(s: &str) -> RunStatus {
        match s {
            "pending" => RunStatus::Pending,
            "running" => RunStatus::Running,
            "waiting" => RunStatus::Waiting,
            "succeeded" => RunStatus::Succeeded,
            "cancelled" => RunStatus::Cancelled,
            _ => RunStatus::Failed,
        }
    }

    /// Whether the run has ended.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled
        )
    }
}

/// Where a step (or one `foreach` item of it) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Not started.
    Pending,
    /// An attempt is in flight.
    Running,
    /// Waiting for the next attempt (`next_attempt_at`).
    Retrying,
    /// Waiting for a timer (`wait`) or a child run (`playbook.run`).
    Waiting,
    WaitingApproval,
    Succeeded,
    Failed,
    /// Its `if` was false, or an `on_failure: goto` jumped over it.
    Skipped,
    /// Its approval gate was rejected or timed out; it did not run.
    Rejected,
    Cancelled,
}

impl StepStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Running => "running",
            StepStatus::Retrying => "retrying",
            StepStatus::Waiting => "waiting",
            StepStatus::WaitingApproval => "waiting_approval",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
            StepStatus::Rejected => "rejected",
            StepStatus::Cancelled => "cancelled",
        }
    }

    /// The status called `s`.
    pub fn parse(s: &str) -> StepStatus {
        match s {
            "running" => StepStatus::Running,
            "retrying" => StepStatus::Retrying,
            "waiting" => StepStatus::Waiting,
            "waiting_approval" => StepStatus::WaitingApproval,
            "succeeded" => StepStatus::Succeeded,
            "failed" => StepStatus::Failed,
            "skipped" => StepStatus::Skipped,
            "rejected" => StepStatus::Rejected,
            "cancelled" => StepStatus::Cancelled,
            _ => StepStatus::Pending,
        }
    }

    /// Whether the step is over (the steps waiting on it may start).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            StepStatus::Succeeded
                | StepStatus::Failed
                | StepStatus::Skipped
                | StepStatus::Rejected
                | StepStatus::Cancelled
        )
    }
}

/// Every column of a run.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = playbook_runs)]
pub struct RunRow {
    pub id: i64,
    pub playbook_id: String,
    pub playbook_version: i32,
    pub definition_hash: String,
    pub case_id: Option<i64>,
    pub trigger_kind: String,
    pub trigger_data: String,
    pub inputs: String,
    pub requested_by: String,
    pub parent_step_run_id: Option<i64>,
    pub status: String,
    pub error: Option<String>,
    pub created_at: NaiveDateTime,
    pub started_at: Option<NaiveDateTime>,
    pub finished_at: Option<NaiveDateTime>,
    pub updated_at: NaiveDateTime,
    pub wake_at: Option<NaiveDateTime>,
    pub signal: i64,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<NaiveDateTime>,
    pub cancel_requested_at: Option<NaiveDateTime>,
    pub cancel_requested_by: Option<String>,
}

/// Every column of a step run.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = step_runs)]
pub struct StepRow {
    pub id: i64,
    pub run_id: i64,
    pub step_id: String,
    pub item_index: i32,
    pub status: String,
    pub attempts: i32,
    pub item: Option<String>,
    pub items: Option<String>,
    pub input: Option<String>,
    pub output: Option<String>,
    pub error: Option<String>,
    pub idempotency_key: Option<String>,
    pub child_run_id: Option<i64>,
    pub created_at: NaiveDateTime,
    pub started_at: Option<NaiveDateTime>,
    pub finished_at: Option<NaiveDateTime>,
    pub next_attempt_at: Option<NaiveDateTime>,
}

/// The content hash a definition is stored under.
pub fn definition_hash(pb: &Playbook) -> (String, String) {
    let text = serde_json::to_string(pb).unwrap_or_default();
    let hash = hex::encode(Sha256::digest(text.as_bytes()));
    (hash, text)
}

/// Stores a playbook definition unless it is already stored; returns its hash.
pub fn save_definition(conn: &mut DbConn, pb: &Playbook) -> QueryResult<String> {
    let (hash, text) = definition_hash(pb);
    let exists: i64 = playbook_definitions::table
        .filter(playbook_definitions::hash.eq(&hash))
        .count()
        .get_result(conn)?;
    if exists == 0 {
        diesel::insert_into(playbook_definitions::table)
            .values((
                playbook_definitions::hash.eq(&hash),
                playbook_definitions::playbook_id.eq(&pb.id),
                playbook_definitions::version.eq(i32::try_from(pb.version).unwrap_or(i32::MAX)),
                playbook_definitions::definition.eq(&text),
                playbook_definitions::created_at.eq(now()),
            ))
            .execute(conn)?;
    }
    Ok(hash)
}

/// The stored definition with `hash`.
pub fn load_definition(conn: &mut DbConn, hash: &str) -> Result<Playbook, EngineError> {
    let text: String = playbook_definitions::table
        .find(hash)
        .select(playbook_definitions::definition)
        .first(conn)?;
    serde_json::from_str(&text)
        .map_err(|e| EngineError::Internal(format!("stored definition {hash} is unreadable: {e}")))
}

/// A run to create.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    pub playbook: &'a Playbook,
    pub definition_hash: &'a str,
    pub case_id: Option<i64>,
    pub trigger_kind: &'a str,
    pub trigger_data: &'a Value,
    pub inputs: &'a Value,
    pub requested_by: &'a str,
    pub parent_step_run_id: Option<i64>,
}

/// Inserts a pending run; returns its id.
pub fn insert_run(conn: &mut DbConn, run: &NewRun) -> QueryResult<i64> {
    let t = now();
    crate::on_backend!(conn, |c| diesel::insert_into(playbook_runs::table)
        .values((
            playbook_runs::playbook_id.eq(&run.playbook.id),
            playbook_runs::playbook_version
                .eq(i32::try_from(run.playbook.version).unwrap_or(i32::MAX)),
            playbook_runs::definition_hash.eq(run.definition_hash),
            playbook_runs::case_id.eq(run.case_id),
            playbook_runs::trigger_kind.eq(run.trigger_kind),
            playbook_runs::trigger_data.eq(run.trigger_data.to_string()),
            playbook_runs::inputs.eq(run.inputs.to_string()),
            playbook_runs::requested_by.eq(run.requested_by),
            playbook_runs::parent_step_run_id.eq(run.parent_step_run_id),
            playbook_runs::status.eq(RunStatus::Pending.as_str()),
            playbook_runs::created_at.eq(t),
            playbook_runs::updated_at.eq(t),
            playbook_runs::signal.eq(0i64),
        ))
        .returning(playbook_runs::id)
        .get_result(c))
}

/// One run.
pub fn run(conn: &mut DbConn, id: i64) -> Result<RunRow, EngineError> {
    playbook_runs::table
        .find(id)
        .select(RunRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(EngineError::RunNotFound(id))
}

/// The step rows of a run, in insertion order.
pub fn steps(conn: &mut DbConn, run_id: i64) -> QueryResult<Vec<StepRow>> {
    step_runs::table
        .filter(step_runs::run_id.eq(run_id))
        .order(step_runs::id)
        .select(StepRow::as_select())
        .load(conn)
}

/// Ids of runs this process may take now: new or running ones nobody holds (or whose
/// holder's lease ran out), and parked ones whose timer is due. Oldest first.
pub fn claimable(conn: &mut DbConn, at: NaiveDateTime, limit: i64) -> QueryResult<Vec<i64>> {
    let free = playbook_runs::lease_owner
        .is_null()
        .or(playbook_runs::lease_expires_at.lt(at));
    let ready = playbook_runs::status
        .eq_any(["pending", "running"])
        .or(playbook_runs::status
            .eq("waiting")
            .and(playbook_runs::wake_at.le(at)));
    playbook_runs::table
        .filter(ready)
        .filter(free)
        .order(playbook_runs::id)
        .limit(limit)
        .select(playbook_runs::id)
        .load(conn)
}

/// Claims up to `limit` runnable runs for `owner` until `until` in one statement
/// (PostgreSQL): rows another process is claiming at this moment are skipped (`FOR UPDATE
/// SKIP LOCKED`) rather than waited for, so several runners never queue on each other;
/// parked runs become running. Runs in `driving` (this process still drives them, though
/// their lease may have run out) are never taken a second time. Returns the ids claimed,
/// oldest first.
pub fn claim_batch_pg(
    conn: &mut diesel::PgConnection,
    owner: &str,
    at: NaiveDateTime,
    until: NaiveDateTime,
    limit: i64,
    driving: &[i64],
) -> QueryResult<Vec<i64>> {
    use diesel::sql_types::{Array, BigInt, Text, Timestamp};
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    let mut ids: Vec<i64> = diesel::sql_query(
        "UPDATE playbook_runs r SET lease_owner = $1, lease_expires_at = $2, \
           status = CASE WHEN r.status = 'waiting' THEN 'running' ELSE r.status END, \
           wake_at = CASE WHEN r.status = 'waiting' THEN NULL ELSE r.wake_at END \
         WHERE r.id IN ( \
           SELECT id FROM playbook_runs \
           WHERE (status IN ('pending', 'running') OR (status = 'waiting' AND wake_at <= $3)) \
             AND (lease_owner IS NULL OR lease_expires_at < $3) \
             AND id <> ALL($5) \
           ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED) \
           AND (r.lease_owner IS NULL OR r.lease_expires_at < $3) \
         RETURNING r.id",
    )
    .bind::<Text, _>(owner)
    .bind::<Timestamp, _>(until)
    .bind::<Timestamp, _>(at)
    .bind::<BigInt, _>(limit)
    .bind::<Array<BigInt>, _>(driving)
    .load::<Id>(conn)?
    .into_iter()
    .map(|r| r.id)
    .collect();
    ids.sort_unstable();
    Ok(ids)
}

/// The earliest time a run may become claimable without any wake-up: a parked run's
/// timer, or the end of a lease (the holder may have died), to sleep until.
pub fn next_wake(conn: &mut DbConn) -> QueryResult<Option<NaiveDateTime>> {
    let timer: Option<NaiveDateTime> = playbook_runs::table
        .filter(playbook_runs::status.eq("waiting"))
        .select(diesel::dsl::min(playbook_runs::wake_at))
        .first(conn)?;
    let lease: Option<NaiveDateTime> = playbook_runs::table
        .filter(playbook_runs::status.eq_any(["pending", "running"]))
        .select(diesel::dsl::min(playbook_runs::lease_expires_at))
        .first(conn)?;
    Ok(timer.into_iter().chain(lease).min())
}

/// Takes a run for `owner` until `until`, if it is still free; a parked run becomes
/// running. Returns whether this process got it.
pub fn claim(
    conn: &mut DbConn,
    id: i64,
    owner: &str,
    at: NaiveDateTime,
    until: NaiveDateTime,
) -> QueryResult<bool> {
    let free = playbook_runs::lease_owner
        .is_null()
        .or(playbook_runs::lease_expires_at.lt(at));
    let n = diesel::update(
        playbook_runs::table
            .find(id)
            .filter(free)
            .filter(playbook_runs::status.eq_any(["pending", "running", "waiting"])),
    )
    .set((
        playbook_runs::lease_owner.eq(owner),
        playbook_runs::lease_expires_at.eq(until),
    ))
    .execute(conn)?;
    if n == 1 {
        diesel::update(
            playbook_runs::table
                .find(id)
                .filter(playbook_runs::status.eq("waiting")),
        )
        .set((
            playbook_runs::status.eq("running"),
            playbook_runs::wake_at.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)?;
    }
    Ok(n == 1)
}

/// What a fenced transaction learned about its run.
#[derive(Debug, Clone, Copy)]
pub struct Fence {
    pub cancel_requested: bool,
    pub signal: i64,
}

/// Proves this process still holds the run (and extends its lease) before a transition
/// is written in the same transaction; fails with `LeaseLost` otherwise, which rolls the
/// transition back.
pub fn fence(
    conn: &mut DbConn,
    run_id: i64,
    owner: &str,
    until: NaiveDateTime,
) -> Result<Fence, EngineError> {
    // One statement: the renewal returns what the driver must know.
    let seen: Option<(Option<NaiveDateTime>, i64)> = crate::on_backend!(conn, |c| diesel::update(
        playbook_runs::table
            .find(run_id)
            .filter(playbook_runs::lease_owner.eq(owner)),
    )
    .set((
        playbook_runs::lease_expires_at.eq(until),
        playbook_runs::updated_at.eq(now()),
    ))
    .returning((playbook_runs::cancel_requested_at, playbook_runs::signal))
    .get_result(c)
    .optional())?;
    let (cancel, signal) = seen.ok_or(EngineError::LeaseLost(run_id))?;
    Ok(Fence {
        cancel_requested: cancel.is_some(),
        signal,
    })
}

/// Marks a pending run as started.
pub fn mark_started(conn: &mut DbConn, run_id: i64) -> QueryResult<bool> {
    let n = diesel::update(
        playbook_runs::table
            .find(run_id)
            .filter(playbook_runs::status.eq("pending")),
    )
    .set((
        playbook_runs::status.eq("running"),
        playbook_runs::started_at.eq(now()),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// Parks a run until `wake_at` (or a wake-up) and lets go of it, unless its signal moved
/// since `seen_signal` (something it waits for happened meanwhile). Returns whether it
/// was parked.
pub fn park(
    conn: &mut DbConn,
    run_id: i64,
    owner: &str,
    wake_at: Option<NaiveDateTime>,
    seen_signal: i64,
) -> QueryResult<bool> {
    let n = diesel::update(
        playbook_runs::table
            .find(run_id)
            .filter(playbook_runs::lease_owner.eq(owner))
            .filter(playbook_runs::signal.eq(seen_signal))
            .filter(playbook_runs::cancel_requested_at.is_null()),
    )
    .set((
        playbook_runs::status.eq("waiting"),
        playbook_runs::wake_at.eq(wake_at),
        playbook_runs::lease_owner.eq(None::<String>),
        playbook_runs::lease_expires_at.eq(None::<NaiveDateTime>),
        playbook_runs::updated_at.eq(now()),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// Parks a run this process holds until `at`, whatever else happened: driving it failed
/// (the database may be back by then).
pub fn retry_later(
    conn: &mut DbConn,
    run_id: i64,
    owner: &str,
    at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(
        playbook_runs::table
            .find(run_id)
            .filter(playbook_runs::lease_owner.eq(owner)),
    )
    .set((
        playbook_runs::status.eq("waiting"),
        playbook_runs::wake_at.eq(at),
        playbook_runs::lease_owner.eq(None::<String>),
        playbook_runs::lease_expires_at.eq(None::<NaiveDateTime>),
    ))
    .execute(conn)?;
    Ok(())
}

/// Lets go of every run any process holds; returns how many. Only for SQLite, which one
/// process owns: leases left by its previous life are stale.
pub fn release_all(conn: &mut DbConn) -> QueryResult<usize> {
    diesel::update(playbook_runs::table.filter(playbook_runs::lease_owner.is_not_null()))
        .set((
            playbook_runs::lease_owner.eq(None::<String>),
            playbook_runs::lease_expires_at.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)
}

/// Lets go of a run without changing its status (shutdown, lost work).
pub fn release(conn: &mut DbConn, run_id: i64, owner: &str) -> QueryResult<()> {
    diesel::update(
        playbook_runs::table
            .find(run_id)
            .filter(playbook_runs::lease_owner.eq(owner)),
    )
    .set((
        playbook_runs::lease_owner.eq(None::<String>),
        playbook_runs::lease_expires_at.eq(None::<NaiveDateTime>),
    ))
    .execute(conn)?;
    Ok(())
}

/// Ends a run.
pub fn finish(
    conn: &mut DbConn,
    run_id: i64,
    status: RunStatus,
    error: Option<&str>,
) -> QueryResult<()> {
    let t = now();
    diesel::update(playbook_runs::table.find(run_id))
        .set((
            playbook_runs::status.eq(status.as_str()),
            playbook_runs::error.eq(error),
            playbook_runs::finished_at.eq(t),
            playbook_runs::updated_at.eq(t),
            playbook_runs::wake_at.eq(None::<NaiveDateTime>),
            playbook_runs::lease_owner.eq(None::<String>),
            playbook_runs::lease_expires_at.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)?;
    Ok(())
}

/// Asks a run to stop; returns false when it had already ended.
pub fn request_cancel(conn: &mut DbConn, run_id: i64, by: &str) -> QueryResult<bool> {
    let n = diesel::update(
        playbook_runs::table
            .find(run_id)
            .filter(playbook_runs::status.eq_any(["pending", "running", "waiting"]))
            .filter(playbook_runs::cancel_requested_at.is_null()),
    )
    .set((
        playbook_runs::cancel_requested_at.eq(now()),
        playbook_runs::cancel_requested_by.eq(by),
        playbook_runs::signal.eq(playbook_runs::signal + 1),
        // A parked run is made runnable so a driver finishes the cancellation at once.
        playbook_runs::wake_at.eq(now()),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// The full state of one step run, written as a whole.
#[derive(Debug, Clone, PartialEq)]
pub struct StepWrite {
    pub status: StepStatus,
    pub attempts: i32,
    pub item: Option<Value>,
    pub items: Option<Vec<Value>>,
    pub input: Option<Value>,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub idempotency_key: Option<String>,
    pub child_run_id: Option<i64>,
    pub started_at: Option<NaiveDateTime>,
    pub finished_at: Option<NaiveDateTime>,
    pub next_attempt_at: Option<NaiveDateTime>,
}

/// Writes a step run (`item_index` -1 for the step itself), creating it if needed;
/// returns its row id.
pub fn write_step(
    conn: &mut DbConn,
    run_id: i64,
    step_id: &str,
    item_index: i32,
    w: &StepWrite,
) -> QueryResult<i64> {
    let json = |v: &Option<Value>| v.as_ref().map(Value::to_string);
    let items = w
        .items
        .as_ref()
        .map(|i| Value::Array(i.clone()).to_string());
    let existing: Option<i64> = step_runs::table
        .filter(step_runs::run_id.eq(run_id))
        .filter(step_runs::step_id.eq(step_id))
        .filter(step_runs::item_index.eq(item_index))
        .select(step_runs::id)
        .first(conn)
        .optional()?;
    let values = (
        step_runs::status.eq(w.status.as_str()),
        step_runs::attempts.eq(w.attempts),
        step_runs::item.eq(json(&w.item)),
        step_runs::items.eq(items),
        step_runs::input.eq(json(&w.input)),
        step_runs::output.eq(json(&w.output)),
        step_runs::error.eq(&w.error),
        step_runs::idempotency_key.eq(&w.idempotency_key),
        step_runs::child_run_id.eq(w.child_run_id),
        step_runs::started_at.eq(w.started_at),
        step_runs::finished_at.eq(w.finished_at),
        step_runs::next_attempt_at.eq(w.next_attempt_at),
    );
    match existing {
        Some(id) => {
            diesel::update(step_runs::table.find(id))
                .set(values)
                .execute(conn)?;
            Ok(id)
        }
        None => crate::on_backend!(conn, |c| diesel::insert_into(step_runs::table)
            .values((
                step_runs::run_id.eq(run_id),
                step_runs::step_id.eq(step_id),
                step_runs::item_index.eq(item_index),
                step_runs::created_at.eq(now()),
                values,
            ))
            .returning(step_runs::id)
            .get_result(c)),
    }
}

/// One step run by row id.
pub fn step(conn: &mut DbConn, id: i64) -> QueryResult<StepRow> {
    step_runs::table
        .find(id)
        .select(StepRow::as_select())
        .first(conn)
}

/// Settles the step run that started a child run (`playbook.run`), once the child ends,
/// and wakes the parent run. The parent run's row is locked (woken) first, the order of
/// the parent's own transactions, which begin with the lease fence on it.
pub fn settle_parent(
    conn: &mut DbConn,
    parent_step_run_id: i64,
    status: StepStatus,
    output: &Value,
    error: Option<&str>,
) -> QueryResult<()> {
    let parent_run: i64 = step_runs::table
        .find(parent_step_run_id)
        .select(step_runs::run_id)
        .first(conn)?;
    crate::approvals::wake_run(conn, parent_run)?;
    diesel::update(
        step_runs::table
            .find(parent_step_run_id)
            .filter(step_runs::status.eq("waiting")),
    )
    .set((
        step_runs::status.eq(status.as_str()),
        step_runs::output.eq(output.to_string()),
        step_runs::error.eq(error),
        step_runs::finished_at.eq(now()),
    ))
    .execute(conn)?;
    Ok(())
}
