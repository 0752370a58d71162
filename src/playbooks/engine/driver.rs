//! Drives one run while this process holds its lease: starts the steps whose
//! dependencies are over, carries out their actions, commits each transition (fenced by
//! the lease) before acting on it, and parks the run when it can only wait.
//!
//! Crash safety: an internal action and the record of its completion share one
//! transaction; an external call is preceded by a committed `running` row, so a run
//! resumed after a crash finds it and repeats it only when the action is idempotent or
//! the step carries an idempotency key; otherwise the step fails as interrupted.

use super::ack;
use super::actions::{self, Failure, InternalCtx, Kind};
use super::store::{self, Fence, RunStatus, StepRow, StepStatus, StepWrite};
use super::{Engine, EngineError, Loaded};
use crate::approvals::{self, Approvers, GateKind, GateRequest, GateStatus};
use crate::audit::{self, Actor, NewEvent};
use crate::cases::query;
use crate::db::DbConn;
use crate::playbooks::definition::{OnFailure, Step};
use crate::playbooks::expr::{self, Condition, Template};
use chrono::NaiveDateTime;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// Drives run `run_id` until it ends, parks, or this process loses it.
pub async fn drive(engine: Arc<Engine>, run_id: i64) {
    let result = match Driver::load(engine.clone(), run_id).await {
        Ok(mut d) => d.run().await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => {}
        Err(EngineError::LeaseLost(_)) => {
            tracing::warn!(run = run_id, "run taken over by another process");
        }
        Err(
            e
            @ (EngineError::Case(crate::cases::CaseError::NotFound(_)) | EngineError::Internal(_)),
        ) => {
            // Retrying cannot help (its case is gone, its definition unreadable): end it.
            tracing::error!(run = run_id, error = %e, "the run cannot go on; failing it");
            let message = e.to_string();
            let actor = Actor::system("engine");
            let t = engine.now();
            let failed = engine
                .batcher
                .write(move |conn| {
                    store::finish(conn, run_id, RunStatus::Failed, Some(&message))?;
                    approvals::cancel_for_run(conn, run_id, "the run failed", t)?;
                    audit::append(
                        conn,
                        NewEvent::new(
                            &actor,
                            "playbook.run_finished",
                            format!("run:{run_id}"),
                            json!({ "status": "failed", "error": message }),
                        ),
                    )?;
                    Ok::<_, EngineError>(())
                })
                .await;
            if let Err(e) = failed {
                tracing::error!(run = run_id, error = %e, "cannot record the failed run");
            }
        }
        Err(e) => {
            // Let go so it is tried again shortly (the database may be back by then).
            tracing::error!(run = run_id, error = %e, "driving the run failed; will retry");
            let owner = engine.owner.clone();
            let retry_at = engine.now() + chrono::Duration::seconds(5);
            let _ = engine
                .db
                .write(move |conn| {
                    store::retry_later(conn, run_id, &owner, retry_at).map_err(EngineError::from)
                })
                .await;
        }
    }
}

/// One unit of work of a step: the step itself, or one `foreach` item.
#[derive(Debug, Clone)]
struct Unit {
    /// -1 for a step without `foreach`, else the item's position.
    index: i32,
    status: StepStatus,
    attempts: i32,
    item: Option<Value>,
    input: Option<Value>,
    output: Value,
    error: Option<String>,
    idempotency_key: Option<String>,
    child_run_id: Option<i64>,
    started_at: Option<NaiveDateTime>,
    finished_at: Option<NaiveDateTime>,
    next_attempt_at: Option<NaiveDateTime>,
    in_flight: bool,
}

impl Unit {
    fn new(index: i32, item: Option<Value>) -> Unit {
        Unit {
            index,
            status: StepStatus::Pending,
            attempts: 0,
            item,
            input: None,
            output: Value::Null,
            error: None,
            idempotency_key: None,
            child_run_id: None,
            started_at: None,
            finished_at: None,
            next_attempt_at: None,
            in_flight: false,
        }
    }

    fn from_row(row: &StepRow) -> Unit {
        let parse = |s: &Option<String>| s.as_deref().and_then(|t| serde_json::from_str(t).ok());
        Unit {
            index: row.item_index,
            status: StepStatus::parse(&row.status),
            attempts: row.attempts,
            item: parse(&row.item),
            input: parse(&row.input),
            output: parse(&row.output).unwrap_or(Value::Null),
            error: row.error.clone(),
            idempotency_key: row.idempotency_key.clone(),
            child_run_id: row.child_run_id,
            started_at: row.started_at,
            finished_at: row.finished_at,
            next_attempt_at: row.next_attempt_at,
            in_flight: false,
        }
    }

    fn write(&self) -> StepWrite {
        StepWrite {
            status: self.status,
            attempts: self.attempts,
            item: self.item.clone(),
            items: None,
            input: self.input.clone(),
            output: Some(self.output.clone()).filter(|o| !o.is_null()),
            error: self.error.clone(),
            idempotency_key: self.idempotency_key.clone(),
            child_run_id: self.child_run_id,
            started_at: self.started_at,
            finished_at: self.finished_at,
            next_attempt_at: self.next_attempt_at,
        }
    }
}

/// A step's state in memory.
#[derive(Debug, Clone)]
struct StepState {
    status: StepStatus,
    output: Value,
    error: Option<String>,
    /// `foreach` items, once evaluated.
    items: Option<Vec<Value>>,
    units: Vec<Unit>,
    gate_id: Option<i64>,
    /// The gate must be read again (on load, or after a wake-up).
    gate_dirty: bool,
    gate_deadline: Option<NaiveDateTime>,
    /// When an acknowledgement step next asks the vendor (`check`), kept in the step
    /// row's `next_attempt_at` so wake-ups and restarts do not ask more often.
    ack_check_at: Option<NaiveDateTime>,
    started_at: Option<NaiveDateTime>,
    finished_at: Option<NaiveDateTime>,
}

impl StepState {
    fn new() -> StepState {
        StepState {
            status: StepStatus::Pending,
            output: Value::Null,
            error: None,
            items: None,
            units: Vec::new(),
            gate_id: None,
            gate_dirty: false,
            gate_deadline: None,
            ack_check_at: None,
            started_at: None,
            finished_at: None,
        }
    }

    /// The row of a `foreach` step itself.
    fn parent_write(&self) -> StepWrite {
        StepWrite {
            status: self.status,
            attempts: 0,
            item: None,
            items: self.items.clone(),
            input: None,
            output: Some(self.output.clone()).filter(|o| !o.is_null()),
            error: self.error.clone(),
            idempotency_key: None,
            child_run_id: None,
            started_at: self.started_at,
            finished_at: self.finished_at,
            next_attempt_at: self.ack_check_at,
        }
    }
}

/// Why the run stops starting steps.
#[derive(Debug, Clone)]
enum Stop {
    Cancelled,
    Failed(String),
}

/// What an external call task returns.
struct Completion {
    step: usize,
    unit: usize,
    result: Result<Value, Failure>,
}

struct Driver {
    engine: Arc<Engine>,
    run: store::RunRow,
    loaded: Arc<Loaded>,
    steps: Vec<StepState>,
    /// `case`, `alerts`, `trigger`, `inputs`, `run`.
    base: Map<String, Value>,
    signal: i64,
    refresh: bool,
    stop: Option<Stop>,
    in_flight: JoinSet<Completion>,
    actor: Actor,
}

impl Driver {
    async fn load(engine: Arc<Engine>, run_id: i64) -> Result<Driver, EngineError> {
        let (run, rows) = engine
            .db
            .read(move |conn| {
                Ok::<_, EngineError>((store::run(conn, run_id)?, store::steps(conn, run_id)?))
            })
            .await?;
        let loaded = engine.definition(&run.definition_hash).await?;
        let pb = &loaded.playbook;
        let mut steps: Vec<StepState> = pb.steps.iter().map(|_| StepState::new()).collect();
        for row in &rows {
            let Some(i) = loaded.graph.position(&row.step_id) else {
                continue;
            };
            let s = &mut steps[i];
            if row.item_index < 0 {
                s.status = StepStatus::parse(&row.status);
                s.output = row
                    .output
                    .as_deref()
                    .and_then(|t| serde_json::from_str(t).ok())
                    .unwrap_or(Value::Null);
                s.error = row.error.clone();
                s.items = row
                    .items
                    .as_deref()
                    .and_then(|t| serde_json::from_str(t).ok());
                s.started_at = row.started_at;
                s.finished_at = row.finished_at;
                if pb.steps[i].foreach.is_none() {
                    s.units = vec![Unit::from_row(row)];
                }
                if s.status == StepStatus::WaitingApproval {
                    s.gate_dirty = true;
                    if pb.steps[i].uses == ack::BUILTIN && pb.steps[i].with.contains_key("check") {
                        s.ack_check_at = Some(row.next_attempt_at.unwrap_or_else(|| engine.now()));
                    }
                }
            } else {
                s.units.push(Unit::from_row(row));
            }
        }
        for (i, s) in steps.iter_mut().enumerate() {
            if pb.steps[i].foreach.is_some() {
                s.units.sort_by_key(|u| u.index);
            }
            // A pending plain step has no unit until it begins.
            if s.status == StepStatus::Pending {
                s.units.clear();
            }
        }
        let actor = Actor::playbook(&run.playbook_id, run.id);
        let mut d = Driver {
            signal: run.signal,
            refresh: false,
            stop: None,
            in_flight: JoinSet::new(),
            base: Map::new(),
            steps,
            loaded,
            run,
            engine,
            actor,
        };
        d.load_context().await?;
        Ok(d)
    }

    /// Reads the case and its alerts into the context (again after a `case.*` step).
    async fn load_context(&mut self) -> Result<(), EngineError> {
        let case_id = self.run.case_id;
        let trigger: Value = serde_json::from_str(&self.run.trigger_data).unwrap_or(Value::Null);
        let first_alert = trigger.get("alert_id").and_then(Value::as_i64);
        let max = i64::try_from(self.engine.settings.engine.max_context_alerts).unwrap_or(100);
        let (case, alerts) = self
            .engine
            .db
            .read(move |conn| case_context(conn, case_id, first_alert, max))
            .await?;
        self.base.insert("case".into(), case);
        self.base.insert("alerts".into(), alerts);
        self.base.insert("trigger".into(), trigger);
        self.base.insert(
            "inputs".into(),
            serde_json::from_str(&self.run.inputs).unwrap_or(Value::Object(Map::new())),
        );
        self.base.insert(
            "run".into(),
            json!({
                "id": self.run.id,
                "playbook": self.run.playbook_id,
                "version": self.run.playbook_version,
                "trigger": self.run.trigger_kind,
                "requested_by": self.run.requested_by,
            }),
        );
        Ok(())
    }

    async fn reload_case(&mut self) -> Result<(), EngineError> {
        let Some(case_id) = self.run.case_id else {
            return Ok(());
        };
        let case = self
            .engine
            .db
            .read(move |conn| {
                query::get(conn, case_id)
                    .map(|c| serde_json::to_value(c).unwrap_or(Value::Null))
                    .map_err(EngineError::from)
            })
            .await?;
        self.base.insert("case".into(), case);
        Ok(())
    }

    /// The run context, with `item` and (for `outputs:`) `output`.
    fn ctx(&self, item: Option<&Value>, output: Option<&Value>) -> Value {
        let mut ctx = self.base.clone();
        let mut steps = Map::new();
        for (i, s) in self.steps.iter().enumerate() {
            steps.insert(
                self.loaded.playbook.steps[i].id.clone(),
                json!({ "status": s.status, "output": s.output, "error": s.error }),
            );
        }
        ctx.insert("steps".into(), Value::Object(steps));
        if let Some(item) = item {
            ctx.insert("item".into(), item.clone());
        }
        if let Some(output) = output {
            ctx.insert("output".into(), output.clone());
        }
        Value::Object(ctx)
    }

    fn step(&self, i: usize) -> &Step {
        &self.loaded.playbook.steps[i]
    }

    /// Commits `f` after the lease fence, in one transaction.
    async fn commit<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut DbConn) -> Result<T, EngineError> + Send + 'static,
    ) -> Result<T, EngineError> {
        let run_id = self.run.id;
        let owner = self.engine.owner.clone();
        let until = self.engine.lease_until();
        let (fence, value): (Fence, T) = self
            .engine
            .batcher
            .write(move |conn| {
                let fence = store::fence(conn, run_id, &owner, until)?;
                Ok::<_, EngineError>((fence, f(conn)?))
            })
            .await?;
        self.observe(fence);
        Ok(value)
    }

    fn observe(&mut self, fence: Fence) {
        if fence.cancel_requested && self.stop.is_none() {
            self.stop = Some(Stop::Cancelled);
        }
        if fence.signal != self.signal {
            self.refresh = true;
        }
    }

    async fn run(&mut self) -> Result<(), EngineError> {
        let run_id = self.run.id;
        if RunStatus::parse(&self.run.status) == RunStatus::Pending || self.run.started_at.is_none()
        {
            let actor = self.actor.clone();
            let details = json!({
                "playbook": self.run.playbook_id,
                "version": self.run.playbook_version,
                "trigger": self.run.trigger_kind,
                "case_id": self.run.case_id,
                "requested_by": self.run.requested_by,
            });
            self.commit(move |conn| {
                if store::mark_started(conn, run_id)? {
                    audit::append(
                        conn,
                        NewEvent::new(
                            &actor,
                            "playbook.run_started",
                            format!("run:{run_id}"),
                            details,
                        ),
                    )?;
                }
                Ok(())
            })
            .await?;
        } else {
            // Renew the lease and learn about cancellation before doing anything.
            self.commit(|_| Ok(())).await?;
        }
        self.recover().await?;
        loop {
            if self.refresh {
                self.refresh_waiting().await?;
            }
            let progressed = self.advance().await?;
            if !self.in_flight.is_empty() {
                self.await_one().await?;
                continue;
            }
            if progressed || self.refresh {
                continue;
            }
            if self.engine.is_stopping() && self.stop.is_none() {
                // Shutting down: nothing in flight any more; the run resumes at the next
                // start from what is committed.
                let owner = self.engine.owner.clone();
                self.engine
                    .batcher
                    .write(move |conn| {
                        store::release(conn, run_id, &owner).map_err(EngineError::from)
                    })
                    .await?;
                return Ok(());
            }
            if self.stop.is_some() || self.steps.iter().all(|s| s.status.is_terminal()) {
                return self.finish().await;
            }
            let wake = self.next_timer();
            let owner = self.engine.owner.clone();
            let seen = self.signal;
            let parked = self
                .engine
                .batcher
                .write(move |conn| {
                    store::park(conn, run_id, &owner, wake, seen).map_err(EngineError::from)
                })
                .await?;
            if parked {
                return Ok(());
            }
            // Something happened meanwhile (a decision, a child run ended, a cancel).
            self.commit(|_| Ok(())).await?;
            self.refresh = true;
        }
    }

    /// Handles what a crash left behind: calls caught mid-flight, finished units of an
    /// unfinished step, and failures whose consequences were not yet written.
    async fn recover(&mut self) -> Result<(), EngineError> {
        for i in 0..self.steps.len() {
            let step = self.step(i).clone();
            for k in 0..self.steps[i].units.len() {
                let u = &self.steps[i].units[k];
                if u.status != StepStatus::Running || u.in_flight {
                    continue;
                }
                let input_method = u
                    .input
                    .as_ref()
                    .and_then(|v| v.get("method"))
                    .and_then(Value::as_str)
                    .map(str::to_string);
                let kind =
                    actions::kind_of(&step.uses, input_method.as_deref(), &self.engine.executor);
                let safe = matches!(kind, Kind::External { idempotent: true })
                    || u.idempotency_key.is_some();
                if safe {
                    tracing::info!(run = self.run.id, step = %step.id, "repeating a call interrupted by a restart (idempotent)");
                    self.steps[i].units[k].status = StepStatus::Retrying;
                    self.steps[i].units[k].next_attempt_at = Some(self.engine.now());
                } else {
                    let failure = Failure::permanent(
                        "interrupted: the process stopped while this call was in flight; it was not \
                         repeated because the action is not idempotent and the step has no idempotency_key",
                    );
                    self.complete_unit(i, k, Err(failure)).await?;
                }
            }
            let s = &self.steps[i];
            if !s.status.is_terminal()
                && s.status != StepStatus::WaitingApproval
                && !s.units.is_empty()
                && s.units.iter().all(|u| u.status.is_terminal())
            {
                self.settle_from_units(i).await?;
            } else if s.status == StepStatus::Failed {
                self.after_failure(i).await?;
            }
        }
        Ok(())
    }

    /// Re-reads what others may have changed: gates, and units waiting for child runs.
    async fn refresh_waiting(&mut self) -> Result<(), EngineError> {
        self.refresh = false;
        let run_id = self.run.id;
        let (rows, signal) = self
            .engine
            .db
            .read(move |conn| {
                let rows = store::steps(conn, run_id)?;
                let run = store::run(conn, run_id)?;
                Ok::<_, EngineError>((rows, run.signal))
            })
            .await?;
        self.signal = signal;
        for row in rows {
            let Some(i) = self.loaded.graph.position(&row.step_id) else {
                continue;
            };
            let s = &mut self.steps[i];
            if s.status == StepStatus::WaitingApproval {
                s.gate_dirty = true;
            }
            if let Some(u) = s.units.iter_mut().find(|u| u.index == row.item_index) {
                if u.status == StepStatus::Waiting && u.child_run_id.is_some() {
                    let fresh = Unit::from_row(&row);
                    if fresh.status.is_terminal() {
                        *u = fresh;
                    }
                }
            }
        }
        Ok(())
    }

    /// Starts what can start and finishes what is due. Returns whether anything changed.
    async fn advance(&mut self) -> Result<bool, EngineError> {
        let mut progressed = false;
        let t = self.engine.now();
        for i in 0..self.steps.len() {
            match self.steps[i].status {
                StepStatus::Pending => {
                    if self.may_start() && self.deps_done(i) {
                        self.start_step(i).await?;
                        progressed = true;
                    }
                }
                StepStatus::WaitingApproval => {
                    let due = self.steps[i].gate_deadline.is_some_and(|d| d <= t);
                    if self.steps[i].gate_dirty || due {
                        progressed |= self.check_gate(i).await?;
                    }
                    let s = &self.steps[i];
                    if s.status == StepStatus::WaitingApproval
                        && s.ack_check_at.is_some_and(|c| c <= t)
                        && self.may_start()
                    {
                        progressed |= self.check_vendor(i).await?;
                    }
                }
                s if s.is_terminal() => {}
                _ => {
                    for k in 0..self.steps[i].units.len() {
                        let u = &self.steps[i].units[k];
                        if u.in_flight {
                            continue;
                        }
                        let due = u.next_attempt_at.is_none_or(|at| at <= t);
                        match u.status {
                            StepStatus::Pending | StepStatus::Retrying
                                if due && self.may_start() =>
                            {
                                self.start_unit(i, k).await?;
                                progressed = true;
                            }
                            StepStatus::Waiting if u.child_run_id.is_none() && due => {
                                let output = json!({ "waited_until": u.next_attempt_at.map(|t| crate::db::utc::format(&t)) });
                                self.complete_unit(i, k, Ok(output)).await?;
                                progressed = true;
                            }
                            _ => {}
                        }
                    }
                    let s = &self.steps[i];
                    if !s.status.is_terminal()
                        && !s.units.is_empty()
                        && s.units.iter().all(|u| u.status.is_terminal())
                    {
                        self.settle_from_units(i).await?;
                        progressed = true;
                    }
                }
            }
        }
        Ok(progressed)
    }

    /// Whether new steps and attempts may start: the run is not stopping and the process
    /// is not shutting down.
    fn may_start(&self) -> bool {
        self.stop.is_none() && !self.engine.is_stopping()
    }

    fn deps_done(&self, i: usize) -> bool {
        self.loaded
            .graph
            .deps(i)
            .iter()
            .all(|&d| self.steps[d].status.is_terminal())
    }

    /// The earliest timer among waiting units and gate deadlines.
    fn next_timer(&self) -> Option<NaiveDateTime> {
        let units = self.steps.iter().flat_map(|s| {
            s.units
                .iter()
                .filter(|u| {
                    matches!(
                        u.status,
                        StepStatus::Retrying | StepStatus::Waiting | StepStatus::Pending
                    )
                })
                .filter_map(|u| u.next_attempt_at)
        });
        let gates = self
            .steps
            .iter()
            .filter(|s| s.status == StepStatus::WaitingApproval)
            .flat_map(|s| [s.gate_deadline, s.ack_check_at])
            .flatten();
        units.chain(gates).min()
    }

    async fn start_step(&mut self, i: usize) -> Result<(), EngineError> {
        let step = self.step(i).clone();
        let ctx = self.ctx(None, None);
        if let Some(cond) = &step.condition {
            match Condition::parse(cond).and_then(|c| c.eval(&ctx)) {
                Ok(true) => {}
                Ok(false) => {
                    return self
                        .settle_step(i, StepStatus::Skipped, Value::Null, None)
                        .await
                }
                Err(e) => return self.fail_step(i, format!("if: {e}")).await,
            }
        }
        let items = match &step.foreach {
            None => None,
            Some(f) => match expr::parse_foreach(f).and_then(|t| t.render(&ctx)) {
                Ok(Value::Array(items)) => Some(items),
                Ok(Value::Null) => Some(Vec::new()),
                Ok(other) => Some(vec![other]),
                Err(e) => return self.fail_step(i, format!("foreach: {e}")).await,
            },
        };
        if items.as_ref().is_some_and(Vec::is_empty) {
            return self
                .settle_step(i, StepStatus::Succeeded, Value::Array(Vec::new()), None)
                .await;
        }
        self.steps[i].items = items;
        if step.uses == ack::BUILTIN {
            return self.open_ack(i, &ctx).await;
        }
        if step.approval.is_some()
            && !(step.waive_approval && self.engine.settings.allow_approval_waivers)
        {
            return self.open_gate(i, &ctx).await;
        }
        self.begin_units(i).await
    }

    async fn open_gate(&mut self, i: usize, ctx: &Value) -> Result<(), EngineError> {
        let step = self.step(i).clone();
        let Some(approval) = step.approval.clone() else {
            return Ok(());
        };
        let message = match Template::parse(&approval.message).and_then(|t| t.render(ctx)) {
            Ok(Value::String(s)) => s,
            Ok(other) => other.to_string(),
            Err(e) => return self.fail_step(i, format!("approval.message: {e}")).await,
        };
        let timeout = gate_timeout(&approval.timeout);
        // What the step would act on, for the approvers: its inputs, once per item.
        let with = Value::Object(step.with.clone().into_iter().collect());
        let mut target = match &self.steps[i].items {
            Some(items) => Value::Array(
                items
                    .iter()
                    .map(|it| {
                        expr::render_value(&with, &self.ctx(Some(it), None)).unwrap_or_default()
                    })
                    .collect(),
            ),
            None => expr::render_value(&with, ctx).unwrap_or_default(),
        };
        self.engine.executor.secrets().redact_json(&mut target);
        let t = self.engine.now();
        let req = GateRequest {
            kind: GateKind::Approval,
            run_id: self.run.id,
            step_id: step.id.clone(),
            case_id: self.run.case_id,
            action: step.uses.clone(),
            message,
            target,
            approvers: Approvers {
                roles: approval.roles.clone(),
                users: approval.users.clone(),
            },
            required: approval.required,
            requested_by: self.run.requested_by.clone(),
            deadline_at: t + timeout,
        };
        self.wait_on_gate(i, req, t).await
    }

    /// The rendered inputs of acknowledgement step `i`.
    fn ack_spec(&self, i: usize, ctx: &Value) -> Result<ack::Spec, String> {
        let with = Value::Object(self.step(i).with.clone().into_iter().collect());
        expr::render_value(&with, ctx)
            .map_err(|e| format!("with.{e}"))
            .and_then(|v| ack::Spec::parse(&v))
    }

    /// Opens the acknowledgement gate of step `i` and waits on it.
    async fn open_ack(&mut self, i: usize, ctx: &Value) -> Result<(), EngineError> {
        let spec = match self.ack_spec(i, ctx) {
            Ok(s) => s,
            Err(e) => return self.fail_step(i, e).await,
        };
        let t = self.engine.now();
        let req = GateRequest {
            kind: GateKind::Acknowledgement,
            run_id: self.run.id,
            step_id: self.step(i).id.clone(),
            case_id: self.run.case_id,
            action: ack::BUILTIN.into(),
            message: spec.message,
            target: Value::Null,
            approvers: spec.approvers,
            required: 1,
            requested_by: self.run.requested_by.clone(),
            deadline_at: t + spec.timeout,
        };
        // The vendor is asked at once, then every `every`.
        self.steps[i].ack_check_at = spec.check.is_some().then_some(t);
        self.wait_on_gate(i, req, t).await
    }

    /// Opens the gate `req` for step `i` at `t` and parks the step on it.
    async fn wait_on_gate(
        &mut self,
        i: usize,
        req: GateRequest,
        t: NaiveDateTime,
    ) -> Result<(), EngineError> {
        let step = self.step(i).clone();
        let deadline = req.deadline_at;
        let s = &mut self.steps[i];
        s.status = StepStatus::WaitingApproval;
        s.started_at = Some(t);
        s.gate_deadline = Some(deadline);
        let write = s.parent_write();
        let actor = self.actor.clone();
        let run_id = self.run.id;
        let step_id = step.id.clone();
        let gate_id = self
            .commit(move |conn| {
                let id = approvals::open(conn, &actor, &req, t)?;
                store::write_step(conn, run_id, &step_id, -1, &write)?;
                Ok(id)
            })
            .await?;
        self.steps[i].gate_id = Some(gate_id);
        tracing::info!(run = run_id, step = %step.id, gate = gate_id, "waiting for approval");
        Ok(())
    }

    /// Acts on a gate: run the step once approved, skip it once rejected, or apply the
    /// deadline. Returns whether the step moved on.
    async fn check_gate(&mut self, i: usize) -> Result<bool, EngineError> {
        self.steps[i].gate_dirty = false;
        let run_id = self.run.id;
        let step_id = self.step(i).id.clone();
        let gate = self
            .engine
            .db
            .read(move |conn| {
                Ok::<_, EngineError>(
                    approvals::for_run(conn, run_id)?
                        .into_iter()
                        .find(|g| g.step_id == step_id),
                )
            })
            .await?;
        let Some(gate) = gate else {
            // The gate row is missing (should not happen): ask again.
            self.steps[i].status = StepStatus::Pending;
            return Ok(true);
        };
        self.steps[i].gate_id = Some(gate.id);
        self.steps[i].gate_deadline = Some(gate.deadline_at);
        let now = self.engine.now();
        let acknowledgement = gate.kind == GateKind::Acknowledgement;
        match gate.status {
            GateStatus::Acknowledged | GateStatus::TimedOut if acknowledgement => {
                let decision = gate.decisions.last();
                let acknowledged = gate.status == GateStatus::Acknowledged;
                // While it waits, the step's output is the check's last answer.
                let check = self.steps[i].output.clone();
                let by = match decision {
                    Some(d) => Some(d.user.clone()),
                    None if acknowledged => self
                        .ack_spec(i, &self.ctx(None, None))
                        .ok()
                        .and_then(|s| s.check)
                        .and_then(|c| c.who(&check)),
                    None => None,
                };
                let via = match decision {
                    Some(d) => Some(d.channel.clone()),
                    None if acknowledged => gate
                        .outcome_reason
                        .as_deref()
                        .and_then(|r| r.strip_prefix("acknowledged in "))
                        .map(str::to_string),
                    None => None,
                };
                let output = json!({
                    "acknowledged": acknowledged,
                    "by": by,
                    "via": via,
                    "at": acknowledged.then(|| gate.decided_at.map(|t| crate::db::utc::format(&t))).flatten(),
                    "check": check,
                });
                self.settle_step(i, StepStatus::Succeeded, output, None)
                    .await?;
                Ok(true)
            }
            GateStatus::Pending if acknowledgement && gate.deadline_at <= now => {
                use crate::playbooks::definition::OnTimeout;
                let escalate = match self.ack_spec(i, &self.ctx(None, None)) {
                    Ok(spec) => spec.escalate_to.map(|(who, t)| (who, now + t)),
                    Err(_) => None,
                };
                let on_timeout = if gate.escalation_level == 0 && escalate.is_some() {
                    OnTimeout::Escalate
                } else {
                    OnTimeout::Reject
                };
                self.expire_gate(i, gate.id, on_timeout, escalate, now)
                    .await
            }
            GateStatus::Acknowledged => Ok(false),
            GateStatus::Approved => {
                if !self.may_start() {
                    return Ok(false);
                }
                self.begin_units(i).await?;
                Ok(true)
            }
            GateStatus::Rejected | GateStatus::TimedOut => {
                let reason = gate
                    .outcome_reason
                    .clone()
                    .or_else(|| {
                        gate.decisions
                            .iter()
                            .rev()
                            .find(|d| d.decision == "reject")
                            .map(|d| {
                                format!(
                                    "rejected by {}: {}",
                                    d.user,
                                    d.comment.clone().unwrap_or_default()
                                )
                            })
                    })
                    .unwrap_or_else(|| "rejected".into());
                self.settle_step(i, StepStatus::Rejected, Value::Null, Some(reason))
                    .await?;
                Ok(true)
            }
            GateStatus::Cancelled => {
                self.settle_step(
                    i,
                    StepStatus::Cancelled,
                    Value::Null,
                    Some("approval cancelled".into()),
                )
                .await?;
                Ok(true)
            }
            GateStatus::Pending if gate.deadline_at <= now => {
                let approval = self.step(i).approval.clone();
                let Some(approval) = approval else {
                    return Ok(false);
                };
                use crate::playbooks::definition::OnTimeout;
                // The first deadline follows `on_timeout`; the escalated one follows
                // `escalate_to.on_timeout`.
                let mut on_timeout = match (gate.escalation_level, &approval.escalate_to) {
                    (0, _) => approval.on_timeout,
                    (_, Some(e)) => e.on_timeout,
                    (_, None) => OnTimeout::Reject,
                };
                // Policy is read now, not when the run started: a deployment that turned
                // approve-on-timeout off gets rejections from then on.
                if on_timeout == OnTimeout::Approve
                    && !self.engine.settings.allow_approve_on_timeout
                {
                    on_timeout = OnTimeout::Reject;
                }
                let escalate = approval.escalate_to.as_ref().map(|e| {
                    let timeout = gate_timeout(&e.timeout);
                    (
                        Approvers {
                            roles: e.roles.clone(),
                            users: e.users.clone(),
                        },
                        now + timeout,
                    )
                });
                self.expire_gate(i, gate.id, on_timeout, escalate, now)
                    .await
            }
            GateStatus::Pending => Ok(false),
        }
    }

    /// Applies the passed deadline of step `i`'s gate as `on_timeout` says (escalating to
    /// `escalate` when it says so); the gate is read again afterwards.
    async fn expire_gate(
        &mut self,
        i: usize,
        gate_id: i64,
        on_timeout: crate::playbooks::definition::OnTimeout,
        escalate: Option<(Approvers, NaiveDateTime)>,
        now: NaiveDateTime,
    ) -> Result<bool, EngineError> {
        self.commit(move |conn| Ok(approvals::expire(conn, gate_id, on_timeout, escalate, now)?))
            .await?;
        self.steps[i].gate_dirty = true;
        Ok(true)
    }

    /// Asks the vendor whether acknowledgement step `i` is acknowledged (its `check`);
    /// settles the gate when it is, else asks again after `every`. Returns whether the
    /// gate settled.
    async fn check_vendor(&mut self, i: usize) -> Result<bool, EngineError> {
        let now = self.engine.now();
        let Some(gate_id) = self.steps[i].gate_id else {
            // Not read yet: the gate is read first (it is marked dirty on load).
            return Ok(false);
        };
        let check = match self.ack_spec(i, &self.ctx(None, None)) {
            Ok(ack::Spec { check: Some(c), .. }) => c,
            Ok(_) => {
                self.steps[i].ack_check_at = None;
                return Ok(false);
            }
            Err(e) => {
                tracing::warn!(run = self.run.id, step = %self.step(i).id, error = %e, "acknowledgement check cannot be rendered");
                self.steps[i].ack_check_at = None;
                return Ok(false);
            }
        };
        let limit = self
            .engine
            .settings
            .default_step_timeout
            .min(Duration::from_secs(60));
        let call = actions::run_external(
            &self.engine.executor,
            &self.engine.http,
            &check.uses,
            &check.with,
            None,
        );
        let mut output = match tokio::time::timeout(limit, call).await {
            Ok(Ok(v)) => v,
            Ok(Err(f)) => json!({ "error": f.message }),
            Err(_) => json!({ "error": format!("no answer within {}s", limit.as_secs()) }),
        };
        self.engine.executor.secrets().redact_json(&mut output);
        let failed =
            output.get("error").is_some() && output.as_object().is_some_and(|o| o.len() == 1);
        if failed {
            tracing::warn!(run = self.run.id, step = %self.step(i).id, answer = %output, "acknowledgement check failed; asking again later");
        }
        let acknowledged = !failed
            && Condition::parse(&check.acknowledged)
                .and_then(|c| c.eval(&self.ctx(None, Some(&output))))
                .unwrap_or(false);
        // Shown as the step's output while it waits (and kept across wake-ups).
        self.steps[i].output = output.clone();
        if !acknowledged {
            self.steps[i].ack_check_at = Some(now + check.every);
            let write = self.steps[i].parent_write();
            let run_id = self.run.id;
            let step_id = self.step(i).id.clone();
            self.commit(move |conn| {
                store::write_step(conn, run_id, &step_id, -1, &write)?;
                Ok(())
            })
            .await?;
            return Ok(false);
        }
        let via = check.uses.clone();
        self.steps[i].ack_check_at = None;
        let write = self.steps[i].parent_write();
        let run_id = self.run.id;
        let step_id = self.step(i).id.clone();
        self.commit(move |conn| {
            store::write_step(conn, run_id, &step_id, -1, &write)?;
            Ok(approvals::acknowledged_by_vendor(
                conn, gate_id, &via, &output, now,
            )?)
        })
        .await?;
        self.steps[i].ack_check_at = None;
        self.steps[i].gate_dirty = true;
        Ok(true)
    }

    /// Creates the units of a step and starts them.
    async fn begin_units(&mut self, i: usize) -> Result<(), EngineError> {
        let t = self.engine.now();
        let s = &mut self.steps[i];
        s.status = StepStatus::Running;
        s.started_at.get_or_insert(t);
        match s.items.clone() {
            Some(items) => {
                s.units = items
                    .into_iter()
                    .enumerate()
                    .map(|(k, item)| Unit::new(i32::try_from(k).unwrap_or(i32::MAX), Some(item)))
                    .collect();
                let parent = s.parent_write();
                let units: Vec<(i32, StepWrite)> =
                    s.units.iter().map(|u| (u.index, u.write())).collect();
                let run_id = self.run.id;
                let step_id = self.step(i).id.clone();
                self.commit(move |conn| {
                    store::write_step(conn, run_id, &step_id, -1, &parent)?;
                    for (index, w) in &units {
                        store::write_step(conn, run_id, &step_id, *index, w)?;
                    }
                    Ok(())
                })
                .await?;
            }
            None => s.units = vec![Unit::new(-1, None)],
        }
        for k in 0..self.steps[i].units.len() {
            if !self.may_start() {
                break;
            }
            self.start_unit(i, k).await?;
        }
        Ok(())
    }

    /// Starts (or retries) one unit.
    async fn start_unit(&mut self, i: usize, k: usize) -> Result<(), EngineError> {
        let step = self.step(i).clone();
        let unit = self.steps[i].units[k].clone();
        let ctx = self.ctx(unit.item.as_ref(), None);
        let input = match &unit.input {
            Some(v) => v.clone(),
            None => {
                let with = Value::Object(step.with.clone().into_iter().collect());
                match expr::render_value(&with, &ctx) {
                    Ok(v) => v,
                    Err(e) => {
                        return self
                            .complete_unit(i, k, Err(Failure::permanent(format!("with.{e}"))))
                            .await
                    }
                }
            }
        };
        let idempotency_key = match (&unit.idempotency_key, &step.idempotency_key) {
            (Some(k), _) => Some(k.clone()),
            (None, Some(t)) => match Template::parse(t).and_then(|t| t.render(&ctx)) {
                Ok(Value::String(s)) => Some(s),
                Ok(Value::Null) => None,
                Ok(other) => Some(other.to_string()),
                Err(e) => {
                    return self
                        .complete_unit(
                            i,
                            k,
                            Err(Failure::permanent(format!("idempotency_key: {e}"))),
                        )
                        .await
                }
            },
            (None, None) => None,
        };
        let map = input.as_object().cloned().unwrap_or_default();
        let method = map
            .get("method")
            .and_then(Value::as_str)
            .map(str::to_string);
        let kind = actions::kind_of(&step.uses, method.as_deref(), &self.engine.executor);
        let t = self.engine.now();
        {
            let u = &mut self.steps[i].units[k];
            u.input = Some(input.clone());
            u.idempotency_key = idempotency_key.clone();
            u.started_at.get_or_insert(t);
        }
        match kind {
            Kind::Internal => {
                let u = &mut self.steps[i].units[k];
                u.attempts += 1;
                let unit = u.clone();
                let run_id = self.run.id;
                let loaded = self.loaded.clone();
                let settings = self.engine.settings.clone();
                let bus = self.engine.bus.clone();
                let actor = self.actor.clone();
                let case_id = self.run.case_id;
                let origin = format!("{}#{}", self.run.playbook_id, self.run.id);
                let uses = step.uses.clone();
                let redact = self.engine.executor.clone();
                let clock = self.engine.clock.clone();
                let finished = self
                    .commit(move |conn| {
                        let ictx = InternalCtx {
                            cases: &settings.cases,
                            bus: &bus,
                            actor: &actor,
                            case_id,
                            origin: &origin,
                        };
                        // `noop` writes nothing, so it needs no savepoint to undo.
                        let result = if uses == "noop" {
                            actions::run_internal(conn, &ictx, &uses, &map)
                        } else {
                            crate::db::savepoint(conn, |c| {
                                Ok::<_, Failure>(actions::run_internal(c, &ictx, &uses, &map))
                            })?
                            .and_then(|r| r)
                        };
                        let step = &loaded.playbook.steps[i];
                        let done = finish_unit(step, &ctx, unit, result, clock.now(), &redact);
                        record_unit(conn, run_id, &step.id, &done, &actor)?;
                        Ok(done)
                    })
                    .await?;
                self.count(&finished);
                self.steps[i].units[k] = finished;
                if step.uses.starts_with("case.") {
                    self.reload_case().await?;
                }
                self.after_unit(i).await
            }
            Kind::Wait => match actions::wait_until(&map, t) {
                Ok(until) => {
                    let u = &mut self.steps[i].units[k];
                    u.status = StepStatus::Waiting;
                    u.attempts += 1;
                    u.next_attempt_at = Some(until);
                    let w = u.write();
                    let index = u.index;
                    let run_id = self.run.id;
                    let step_id = step.id.clone();
                    let foreach = step.foreach.is_some();
                    let parent = self.steps[i].parent_write();
                    self.commit(move |conn| {
                        store::write_step(conn, run_id, &step_id, index, &w)?;
                        if foreach {
                            store::write_step(conn, run_id, &step_id, -1, &parent)?;
                        }
                        Ok(())
                    })
                    .await
                }
                Err(f) => self.complete_unit(i, k, Err(f)).await,
            },
            Kind::Child => self.start_child(i, k, &map).await,
            Kind::External { .. } => {
                let u = &mut self.steps[i].units[k];
                u.status = StepStatus::Running;
                u.attempts += 1;
                u.next_attempt_at = None;
                let mut w = u.write();
                if let Some(input) = w.input.as_mut() {
                    self.engine.executor.secrets().redact_json(input);
                }
                let index = u.index;
                let run_id = self.run.id;
                let step_id = step.id.clone();
                self.commit(move |conn| {
                    store::write_step(conn, run_id, &step_id, index, &w)?;
                    Ok(())
                })
                .await?;
                self.steps[i].units[k].in_flight = true;
                let executor = self.engine.executor.clone();
                let http = self.engine.http.clone();
                let timeout = step
                    .timeout
                    .as_deref()
                    .and_then(|t| crate::playbooks::validate::duration(t).ok())
                    .unwrap_or(self.engine.settings.default_step_timeout);
                let uses = step.uses.clone();
                self.in_flight.spawn(async move {
                    let call = actions::run_external(
                        &executor,
                        &http,
                        &uses,
                        &map,
                        idempotency_key.as_deref(),
                    );
                    let result = match tokio::time::timeout(timeout, call).await {
                        Ok(r) => r,
                        Err(_) => Err(Failure {
                            message: format!(
                                "timed out after {}",
                                humantime::format_duration(timeout)
                            ),
                            transient: true,
                        }),
                    };
                    Completion {
                        step: i,
                        unit: k,
                        result,
                    }
                });
                Ok(())
            }
        }
    }

    /// `playbook.run`: creates the child run; the step waits until it ends.
    async fn start_child(
        &mut self,
        i: usize,
        k: usize,
        input: &Map<String, Value>,
    ) -> Result<(), EngineError> {
        let name = input
            .get("playbook")
            .and_then(Value::as_str)
            .unwrap_or_default();
        // This is the attempt, whether it creates the child or fails below: a failure
        // with no attempt counted would be retried as if it had not been tried.
        self.steps[i].units[k].attempts += 1;
        let Some(child) = self.engine.playbook(name).cloned() else {
            return self
                .complete_unit(
                    i,
                    k,
                    Err(Failure::permanent(format!(
                        "no playbook {name:?} is loaded"
                    ))),
                )
                .await;
        };
        let child_id_name = child.playbook.id.clone();
        let disabled = self
            .engine
            .db
            .read(move |conn| {
                super::switches::is_disabled(conn, &child_id_name).map_err(EngineError::from)
            })
            .await?;
        if disabled {
            let message = EngineError::PlaybookDisabled(child.playbook.id.clone()).to_string();
            return self
                .complete_unit(i, k, Err(Failure::permanent(message)))
                .await;
        }
        let given = input.get("inputs").cloned().unwrap_or(Value::Null);
        let inputs = match super::dispatch::resolve_inputs(&child.playbook, &given) {
            Ok(v) => v,
            Err(e) => {
                return self
                    .complete_unit(i, k, Err(Failure::permanent(e.to_string())))
                    .await
            }
        };
        let step_id = self.step(i).id.clone();
        let run_id = self.run.id;
        let case_id = self.run.case_id;
        let requested_by = self.run.requested_by.clone();
        let u = &mut self.steps[i].units[k];
        u.status = StepStatus::Waiting;
        let mut w = u.write();
        let index = u.index;
        let actor = self.actor.clone();
        let child_id = self
            .commit(move |conn| {
                // Disabled since the check above: this attempt writes nothing, and the
                // next one fails the step there.
                if super::switches::is_disabled(conn, &child.playbook.id)? {
                    return Err(EngineError::PlaybookDisabled(child.playbook.id.clone()));
                }
                // The step row must exist first: the child points at it.
                let step_row = store::write_step(conn, run_id, &step_id, index, &w)?;
                let trigger = json!({ "kind": "playbook.run", "parent_run_id": run_id, "parent_step": step_id });
                let id = store::insert_run(
                    conn,
                    &store::NewRun {
                        playbook: &child.playbook,
                        definition_hash: &child.hash,
                        case_id,
                        trigger_kind: "playbook.run",
                        trigger_data: &trigger,
                        inputs: &inputs,
                        requested_by: &requested_by,
                        parent_step_run_id: Some(step_row),
                    },
                )?;
                w.child_run_id = Some(id);
                store::write_step(conn, run_id, &step_id, index, &w)?;
                audit::append(
                    conn,
                    NewEvent::new(
                        &actor,
                        "playbook.run_created",
                        format!("run:{id}"),
                        json!({ "playbook": child.playbook.id, "parent_run_id": run_id, "case_id": case_id }),
                    ),
                )?;
                Ok(id)
            })
            .await?;
        self.steps[i].units[k].child_run_id = Some(child_id);
        self.engine.wake();
        Ok(())
    }

    /// Waits for one external call, renewing the lease meanwhile, and records it.
    async fn await_one(&mut self) -> Result<(), EngineError> {
        let beat = (self.engine.settings.lease / 3)
            .to_std()
            .unwrap_or(Duration::from_secs(10))
            .max(Duration::from_millis(500));
        loop {
            tokio::select! {
                joined = self.in_flight.join_next() => {
                    let Some(joined) = joined else { return Ok(()) };
                    let c = joined.map_err(|e| EngineError::Internal(format!("step task failed: {e}")))?;
                    self.steps[c.step].units[c.unit].in_flight = false;
                    self.complete_unit(c.step, c.unit, c.result).await?;
                    return Ok(());
                }
                _ = tokio::time::sleep(beat) => {
                    self.commit(|_| Ok(())).await?;
                }
            }
        }
    }

    /// Records the end of one attempt of a unit (success, failure, or a retry later).
    async fn complete_unit(
        &mut self,
        i: usize,
        k: usize,
        result: Result<Value, Failure>,
    ) -> Result<(), EngineError> {
        let unit = self.steps[i].units[k].clone();
        let ctx = self.ctx(unit.item.as_ref(), None);
        let done = finish_unit(
            self.step(i),
            &ctx,
            unit,
            result,
            self.engine.now(),
            &self.engine.executor,
        );
        let run_id = self.run.id;
        let step_id = self.step(i).id.clone();
        let actor = self.actor.clone();
        let record = done.clone();
        self.commit(move |conn| record_unit(conn, run_id, &step_id, &record, &actor))
            .await?;
        self.count(&done);
        self.steps[i].units[k] = done;
        self.after_unit(i).await
    }

    /// After a unit changed: a plain step takes the unit's state.
    async fn after_unit(&mut self, i: usize) -> Result<(), EngineError> {
        if self.step(i).foreach.is_none() {
            let u = self.steps[i].units[0].clone();
            let s = &mut self.steps[i];
            s.status = u.status;
            s.output = u.output;
            s.error = u.error;
            s.finished_at = u.finished_at;
            if s.status == StepStatus::Failed {
                self.after_failure(i).await?;
            }
        }
        Ok(())
    }

    /// All units of a `foreach` step are over: the step fails if any failed; its output
    /// is the list of the items' outputs in item order.
    async fn settle_from_units(&mut self, i: usize) -> Result<(), EngineError> {
        if self.step(i).foreach.is_none() {
            return self.after_unit(i).await;
        }
        let s = &self.steps[i];
        let failed = s
            .units
            .iter()
            .filter(|u| u.status == StepStatus::Failed)
            .count();
        let cancelled = s.units.iter().any(|u| u.status == StepStatus::Cancelled);
        let output = Value::Array(s.units.iter().map(|u| u.output.clone()).collect());
        let (status, error) = if failed > 0 {
            (
                StepStatus::Failed,
                Some(format!("{failed} of {} items failed", s.units.len())),
            )
        } else if cancelled {
            (StepStatus::Cancelled, None)
        } else {
            (StepStatus::Succeeded, None)
        };
        self.settle_step(i, status, output, error).await
    }

    /// Ends a step as a whole (no unit ran, or a `foreach` step's items are over).
    async fn settle_step(
        &mut self,
        i: usize,
        status: StepStatus,
        output: Value,
        error: Option<String>,
    ) -> Result<(), EngineError> {
        let t = self.engine.now();
        let s = &mut self.steps[i];
        s.ack_check_at = None;
        s.status = status;
        s.output = output;
        s.error = error;
        s.started_at.get_or_insert(t);
        s.finished_at = Some(t);
        let w = s.parent_write();
        let run_id = self.run.id;
        let step = self.step(i).clone();
        let actor = self.actor.clone();
        let details = json!({
            "step": step.id,
            "uses": step.uses,
            "status": status,
            "items": self.steps[i].units.len(),
            "output": w.output,
            "error": w.error,
        });
        self.commit(move |conn| {
            store::write_step(conn, run_id, &step.id, -1, &w)?;
            audit::append(
                conn,
                NewEvent::new(
                    &actor,
                    "playbook.step_finished",
                    format!("run:{run_id}"),
                    details,
                ),
            )?;
            Ok(())
        })
        .await?;
        if self.steps[i].units.is_empty() {
            self.engine.stats.step_finished(status.as_str(), 0.0);
        }
        if status == StepStatus::Failed {
            self.after_failure(i).await?;
        }
        Ok(())
    }

    /// Fails a step that could not begin (its `if`, `foreach` or gate message failed).
    async fn fail_step(&mut self, i: usize, error: String) -> Result<(), EngineError> {
        self.settle_step(i, StepStatus::Failed, Value::Null, Some(error))
            .await
    }

    /// Counts a unit that ended in the engine's metrics.
    fn count(&self, u: &Unit) {
        if u.status.is_terminal() {
            let seconds = match (u.started_at, u.finished_at) {
                (Some(a), Some(b)) => (b - a).num_microseconds().unwrap_or(0) as f64 / 1e6,
                _ => 0.0,
            };
            self.engine.stats.step_finished(u.status.as_str(), seconds);
        }
    }

    /// What a failed step does to the run: nothing (`continue`), skip the steps a `goto`
    /// jumps over, or stop the run.
    async fn after_failure(&mut self, i: usize) -> Result<(), EngineError> {
        match self.step(i).on_failure.clone() {
            OnFailure::Continue => Ok(()),
            OnFailure::Stop => {
                if self.stop.is_none() {
                    let error = format!(
                        "step {:?} failed: {}",
                        self.step(i).id,
                        self.steps[i].error.clone().unwrap_or_default()
                    );
                    self.stop = Some(Stop::Failed(error));
                }
                Ok(())
            }
            OnFailure::Goto(target) => {
                let Some(t) = self.loaded.graph.position(&target) else {
                    return Ok(());
                };
                let skipped: Vec<usize> = self
                    .loaded
                    .graph
                    .jumped_over(i, t)
                    .into_iter()
                    .filter(|&s| self.steps[s].status == StepStatus::Pending)
                    .collect();
                if skipped.is_empty() {
                    return Ok(());
                }
                let t = self.engine.now();
                let mut writes = Vec::new();
                for &s in &skipped {
                    let st = &mut self.steps[s];
                    st.status = StepStatus::Skipped;
                    st.error = Some(format!(
                        "jumped over: step {:?} failed with on_failure goto:{target}",
                        self.loaded.playbook.steps[i].id
                    ));
                    st.started_at = Some(t);
                    st.finished_at = Some(t);
                    writes.push((self.loaded.playbook.steps[s].id.clone(), st.parent_write()));
                }
                let run_id = self.run.id;
                self.commit(move |conn| {
                    for (id, w) in &writes {
                        store::write_step(conn, run_id, id, -1, w)?;
                    }
                    Ok(())
                })
                .await
            }
        }
    }

    /// Ends the run: succeeded, failed, or cancelled.
    async fn finish(&mut self) -> Result<(), EngineError> {
        let t = self.engine.now();
        let ended_at = t;
        let (status, error) = match &self.stop {
            Some(Stop::Cancelled) => (RunStatus::Cancelled, None),
            Some(Stop::Failed(e)) => (RunStatus::Failed, Some(e.clone())),
            None => (RunStatus::Succeeded, None),
        };
        // Whatever did not end is cancelled; steps never started get no row; child runs
        // still going are asked to stop too.
        let mut writes = Vec::new();
        let mut children: Vec<i64> = Vec::new();
        for (i, s) in self.steps.iter_mut().enumerate() {
            if s.status.is_terminal() || s.status == StepStatus::Pending {
                continue;
            }
            let id = self.loaded.playbook.steps[i].id.clone();
            for u in s.units.iter_mut().filter(|u| !u.status.is_terminal()) {
                children.extend(u.child_run_id);
                u.status = StepStatus::Cancelled;
                u.finished_at = Some(t);
                if u.index >= 0 {
                    writes.push((id.clone(), u.index, u.write()));
                }
            }
            s.status = StepStatus::Cancelled;
            s.finished_at = Some(t);
            writes.push((id, -1, s.parent_write()));
        }
        let run_id = self.run.id;
        let parent = self.run.parent_step_run_id;
        let actor = self.actor.clone();
        let outputs: Map<String, Value> = self
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                (
                    self.loaded.playbook.steps[i].id.clone(),
                    json!({ "status": s.status, "output": s.output }),
                )
            })
            .collect();
        let summary: Map<String, Value> = self
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (self.loaded.playbook.steps[i].id.clone(), json!(s.status)))
            .collect();
        let cancelled_by = self.run.cancel_requested_by.clone();
        let by = format!("run:{run_id}");
        self.commit(move |conn| {
            for (id, index, w) in &writes {
                store::write_step(conn, run_id, id, *index, w)?;
            }
            for child in &children {
                store::request_cancel(conn, *child, &by)?;
            }
            // The parent run's row before the audit chain (cancelling gates appends to
            // it), the order of the parent's own transactions, so the two cannot deadlock.
            if let Some(parent) = parent {
                let (step_status, err) = match status {
                    RunStatus::Succeeded => (StepStatus::Succeeded, None),
                    RunStatus::Cancelled => (StepStatus::Failed, Some(format!("child run {run_id} was cancelled"))),
                    _ => (StepStatus::Failed, Some(format!("child run {run_id} failed: {}", error.clone().unwrap_or_default()))),
                };
                let output = json!({ "run_id": run_id, "status": status, "steps": outputs });
                store::settle_parent(conn, parent, step_status, &output, err.as_deref())?;
            }
            approvals::cancel_for_run(conn, run_id, "the run ended", ended_at)?;
            store::finish(conn, run_id, status, error.as_deref())?;
            audit::append(
                conn,
                NewEvent::new(
                    &actor,
                    "playbook.run_finished",
                    format!("run:{run_id}"),
                    json!({ "status": status, "error": error, "steps": summary, "cancelled_by": cancelled_by }),
                ),
            )?;
            Ok(())
        })
        .await?;
        if parent.is_some() {
            self.engine.wake();
        }
        self.engine.stats.run_finished(status.as_str());
        tracing::info!(run = run_id, status = status.as_str(), "run finished");
        Ok(())
    }
}

/// A gate's timeout (validated at load; 30 minutes should it not parse).
fn gate_timeout(text: &str) -> chrono::Duration {
    crate::playbooks::validate::duration(text)
        .ok()
        .and_then(|d| chrono::Duration::from_std(d).ok())
        .unwrap_or(chrono::Duration::minutes(30))
}

/// The unit after an attempt: its output (through the step's `outputs:`), or a retry
/// later, or its failure once attempts are used up.
fn finish_unit(
    step: &Step,
    ctx: &Value,
    mut unit: Unit,
    result: Result<Value, Failure>,
    t: NaiveDateTime,
    executor: &crate::integrations::executor::Executor,
) -> Unit {
    let mapped = |raw: &Value| -> Result<Value, Failure> {
        if step.outputs.is_empty() {
            return Ok(raw.clone());
        }
        let mut c = ctx.clone();
        if let Value::Object(m) = &mut c {
            m.insert("output".into(), raw.clone());
        }
        let mut out = Map::new();
        for (name, template) in &step.outputs {
            let v = Template::parse(template)
                .and_then(|tpl| tpl.render(&c))
                .map_err(|e| Failure::permanent(format!("outputs.{name}: {e}")))?;
            out.insert(name.clone(), v);
        }
        Ok(Value::Object(out))
    };
    let result = result.and_then(|raw| mapped(&raw));
    // What is stored and audited never shows a secret value, should one appear in the
    // inputs (playbooks cannot name secrets; an alert could carry one). A unit waiting
    // for a retry keeps its inputs as they were, for the next attempt.
    let redact_input = |unit: &mut Unit| {
        if let Some(input) = unit.input.as_mut() {
            executor.secrets().redact_json(input);
        }
    };
    match result {
        Ok(mut output) => {
            executor.secrets().redact_json(&mut output);
            redact_input(&mut unit);
            unit.status = StepStatus::Succeeded;
            unit.output = output;
            unit.error = None;
            unit.finished_at = Some(t);
            unit.next_attempt_at = None;
        }
        Err(f) => {
            let max = step.retry.as_ref().map_or(1, |r| r.attempts.max(1));
            let attempts = u32::try_from(unit.attempts).unwrap_or(u32::MAX);
            if attempts < max && !f.message.starts_with("interrupted:") {
                let r = step.retry.as_ref();
                let base = r
                    .and_then(|r| crate::playbooks::validate::duration(&r.backoff).ok())
                    .unwrap_or(Duration::from_secs(1));
                let cap = r
                    .and_then(|r| r.max_backoff.as_deref())
                    .and_then(|m| crate::playbooks::validate::duration(m).ok());
                let wait = actions::backoff(attempts, base, cap);
                unit.status = StepStatus::Retrying;
                unit.next_attempt_at = Some(
                    t + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::seconds(1)),
                );
                unit.error = Some(executor.secrets().redact(&f.message));
            } else {
                redact_input(&mut unit);
                unit.status = StepStatus::Failed;
                // A failed item keeps its place in a foreach output, with what `outputs:`
                // can say without a result (usually the item itself).
                unit.output = mapped(&Value::Null).unwrap_or(Value::Null);
                if step.outputs.is_empty() {
                    unit.output = Value::Null;
                }
                unit.error = Some(executor.secrets().redact(&f.message));
                unit.finished_at = Some(t);
                unit.next_attempt_at = None;
            }
        }
    }
    unit
}

/// Writes a unit's row and, when it ended, its audit event.
fn record_unit(
    conn: &mut DbConn,
    run_id: i64,
    step_id: &str,
    unit: &Unit,
    actor: &Actor,
) -> Result<(), EngineError> {
    store::write_step(conn, run_id, step_id, unit.index, &unit.write())?;
    if unit.status.is_terminal() {
        let duration_ms = match (unit.started_at, unit.finished_at) {
            (Some(a), Some(b)) => (b - a).num_milliseconds(),
            _ => 0,
        };
        audit::append(
            conn,
            NewEvent::new(
                actor,
                if unit.index < 0 {
                    "playbook.step_finished"
                } else {
                    "playbook.item_finished"
                },
                format!("run:{run_id}"),
                json!({
                    "step": step_id,
                    "item": unit.index.max(-1),
                    "status": unit.status,
                    "attempts": unit.attempts,
                    "input": unit.input,
                    "output": unit.output,
                    "error": unit.error,
                    "duration_ms": duration_ms,
                }),
            ),
        )?;
    }
    Ok(())
}

/// The case and its alerts as the run context shows them; the triggering alert first.
fn case_context(
    conn: &mut DbConn,
    case_id: Option<i64>,
    first_alert: Option<i64>,
    max: i64,
) -> Result<(Value, Value), EngineError> {
    let Some(case_id) = case_id else {
        return Ok((Value::Null, Value::Array(Vec::new())));
    };
    let case = query::get(conn, case_id)?;
    let mut alerts = query::recent_alerts(conn, case_id, max.max(1))?;
    if let Some(first) = first_alert {
        match alerts.iter().position(|a| a.id == first) {
            Some(p) => {
                let a = alerts.remove(p);
                alerts.insert(0, a);
            }
            None => {
                if let Ok(a) = query::alert(conn, first) {
                    let mut a = a;
                    a.raw = None;
                    alerts.insert(0, a);
                }
            }
        }
    }
    Ok((
        serde_json::to_value(case).unwrap_or(Value::Null),
        serde_json::to_value(alerts).unwrap_or(Value::Array(Vec::new())),
    ))
}

/// The context a trigger's condition is checked against (no steps yet).
pub fn trigger_context(
    conn: &mut DbConn,
    case_id: Option<i64>,
    alert_id: Option<i64>,
    trigger: &Value,
    inputs: &Value,
    max_alerts: i64,
) -> Result<Value, EngineError> {
    let (case, alerts) = case_context(conn, case_id, alert_id, max_alerts)?;
    Ok(json!({
        "case": case,
        "alerts": alerts,
        "trigger": trigger,
        "inputs": inputs,
        "steps": {},
        "run": {},
    }))
}
