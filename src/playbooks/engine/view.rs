//! Runs as the API and console show them: the run, each step of its playbook in file
//! order (with `foreach` items), and its approval gates.

use super::store::{self, RunRow, StepRow};
use super::EngineError;
use crate::approvals::{self, Gate};
use crate::db::schema::playbook_runs;
use crate::db::DbConn;
use crate::integrations::secrets::Secrets;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;
use serde_json::Value;

/// A run without its steps.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub id: i64,
    pub playbook: String,
    pub version: i32,
    pub case_id: Option<i64>,
    pub trigger: String,
    pub requested_by: String,
    pub status: String,
    pub error: Option<String>,
    #[serde(serialize_with = "crate::db::utc::serialize")]
    pub created_at: NaiveDateTime,
    #[serde(serialize_with = "crate::db::utc::serialize_opt")]
    pub started_at: Option<NaiveDateTime>,
    #[serde(serialize_with = "crate::db::utc::serialize_opt")]
    pub finished_at: Option<NaiveDateTime>,
    #[serde(serialize_with = "crate::db::utc::serialize_opt")]
    pub cancel_requested_at: Option<NaiveDateTime>,
    pub parent_step_run_id: Option<i64>,
}

impl From<RunRow> for RunSummary {
    fn from(r: RunRow) -> Self {
        RunSummary {
            id: r.id,
            playbook: r.playbook_id,
            version: r.playbook_version,
            case_id: r.case_id,
            trigger: r.trigger_kind,
            requested_by: r.requested_by,
            status: r.status,
            error: r.error,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            cancel_requested_at: r.cancel_requested_at,
            parent_step_run_id: r.parent_step_run_id,
        }
    }
}

/// One step run (a step, or one item of a `foreach` step).
#[derive(Debug, Clone, Serialize)]
pub struct StepView {
    pub step: String,
    pub uses: String,
    /// The item's position, for `foreach` items.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<i32>,
    /// `not_started` for steps the run has not reached.
    pub status: String,
    pub attempts: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<Value>,
    /// The inputs the step ran with (secrets redacted).
    pub input: Option<Value>,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub child_run_id: Option<i64>,
    #[serde(serialize_with = "crate::db::utc::serialize_opt")]
    pub started_at: Option<NaiveDateTime>,
    #[serde(serialize_with = "crate::db::utc::serialize_opt")]
    pub finished_at: Option<NaiveDateTime>,
    #[serde(serialize_with = "crate::db::utc::serialize_opt")]
    pub next_attempt_at: Option<NaiveDateTime>,
    pub duration_ms: Option<i64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<StepView>,
}

/// A run with its steps and gates.
#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    #[serde(flatten)]
    pub run: RunSummary,
    pub inputs: Value,
    pub steps: Vec<StepView>,
    pub approvals: Vec<Gate>,
}

fn json(text: &Option<String>) -> Option<Value> {
    text.as_deref().and_then(|t| serde_json::from_str(t).ok())
}

fn step_view(uses: &str, row: &StepRow) -> StepView {
    StepView {
        step: row.step_id.clone(),
        uses: uses.to_string(),
        index: (row.item_index >= 0).then_some(row.item_index),
        status: row.status.clone(),
        attempts: row.attempts,
        item: json(&row.item),
        input: json(&row.input),
        output: json(&row.output),
        error: row.error.clone(),
        child_run_id: row.child_run_id,
        started_at: row.started_at,
        finished_at: row.finished_at,
        next_attempt_at: row.next_attempt_at,
        duration_ms: match (row.started_at, row.finished_at) {
            (Some(a), Some(b)) => Some((b - a).num_milliseconds()),
            _ => None,
        },
        items: Vec::new(),
    }
}

/// One run with its steps in the order of its playbook.
pub fn run(conn: &mut DbConn, id: i64) -> Result<RunView, EngineError> {
    let row = store::run(conn, id)?;
    let rows = store::steps(conn, id)?;
    let pb = store::load_definition(conn, &row.definition_hash)?;
    let mut steps = Vec::with_capacity(pb.steps.len());
    for step in &pb.steps {
        let own = rows
            .iter()
            .find(|r| r.step_id == step.id && r.item_index < 0);
        let mut view = match own {
            Some(r) => step_view(&step.uses, r),
            None => StepView {
                step: step.id.clone(),
                uses: step.uses.clone(),
                index: None,
                status: "not_started".into(),
                attempts: 0,
                item: None,
                input: None,
                output: None,
                error: None,
                child_run_id: None,
                started_at: None,
                finished_at: None,
                next_attempt_at: None,
                duration_ms: None,
                items: Vec::new(),
            },
        };
        view.items = rows
            .iter()
            .filter(|r| r.step_id == step.id && r.item_index >= 0)
            .map(|r| step_view(&step.uses, r))
            .collect();
        view.items.sort_by_key(|v| v.index);
        steps.push(view);
    }
    let approvals = approvals::for_run(conn, id)?;
    Ok(RunView {
        inputs: serde_json::from_str(&row.inputs).unwrap_or(Value::Null),
        run: row.into(),
        steps,
        approvals,
    })
}

/// Filters for listing runs.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub case_id: Option<i64>,
    pub playbook: Option<String>,
    pub status: Option<String>,
    /// Runs with ids below this one (the cursor of the previous page).
    pub before: Option<i64>,
}

/// Runs, newest first.
pub fn list(conn: &mut DbConn, f: &RunFilter, limit: i64) -> Result<Vec<RunSummary>, EngineError> {
    let mut q = playbook_runs::table.into_boxed();
    if let Some(c) = f.case_id {
        q = q.filter(playbook_runs::case_id.eq(c));
    }
    if let Some(p) = &f.playbook {
        q = q.filter(playbook_runs::playbook_id.eq(p.clone()));
    }
    if let Some(s) = &f.status {
        q = q.filter(playbook_runs::status.eq(s.clone()));
    }
    if let Some(b) = f.before {
        q = q.filter(playbook_runs::id.lt(b));
    }
    let rows: Vec<RunRow> = q
        .order(playbook_runs::id.desc())
        .limit(limit)
        .select(RunRow::as_select())
        .load(conn)?;
    Ok(rows.into_iter().map(RunSummary::from).collect())
}

impl RunView {
    /// Replaces every configured secret value (and its URL-encoded form) in what is shown.
    /// The engine stores step inputs, outputs and errors redacted already; this also covers
    /// run inputs (kept as given, since the run reads them), values stored before a secret
    /// was configured, and a retrying step's inputs, kept as rendered for the next attempt.
    pub fn redact(&mut self, secrets: &Secrets) {
        fn step(secrets: &Secrets, s: &mut StepView) {
            for v in [&mut s.input, &mut s.output, &mut s.item]
                .into_iter()
                .flatten()
            {
                secrets.redact_json(v);
            }
            if let Some(e) = s.error.as_mut() {
                *e = secrets.redact(e);
            }
            for item in &mut s.items {
                step(secrets, item);
            }
        }
        secrets.redact_json(&mut self.inputs);
        if let Some(e) = self.run.error.as_mut() {
            *e = secrets.redact(e);
        }
        for s in &mut self.steps {
            step(secrets, s);
        }
        for g in &mut self.approvals {
            if let Some(t) = g.target.as_mut() {
                secrets.redact_json(t);
            }
            g.message = secrets.redact(&g.message);
        }
    }
}
