//! Playbook runs in the console: the list (filters, cursor paging), one run step by step
//! with its step graph, and cancelling a run.

use crate::auth::Permission;
use crate::playbooks::engine::store::{self, RunStatus};
use crate::playbooks::engine::view::{self, RunFilter, RunSummary, RunView, StepView};
use crate::playbooks::engine::{dispatch, EngineError};
use crate::web::console::page::{self, SignedIn};
use crate::web::console::step_graph;
use crate::web::error::ApiError;
use crate::web::AppState;
use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpResponse};
use diesel::OptionalExtension;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;

/// Runs shown per page of the list.
const PAGE: i64 = 50;

/// Run statuses, for the filter.
const RUN_STATUSES: [&str; 6] = [
    "pending",
    "running",
    "waiting",
    "succeeded",
    "failed",
    "cancelled",
];

/// Registers the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(list).service(show).service(cancel);
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    playbook: String,
    #[serde(default)]
    status: String,
    /// Runs older than this id (the previous page's last).
    before: Option<i64>,
}

#[get("/runs")]
async fn list(
    state: web::Data<AppState>,
    session: SignedIn,
    query: web::Query<ListQuery>,
) -> actix_web::Result<HttpResponse> {
    let q = query.into_inner();
    let status = (!q.status.is_empty()).then(|| q.status.clone());
    if let Some(s) = &status {
        if !RUN_STATUSES.contains(&s.as_str()) {
            return Err(page::fail(
                &state.pages,
                ApiError::bad_request(format!(
                    "status must be one of {}, not {s:?}",
                    RUN_STATUSES.join(", ")
                )),
            ));
        }
    }
    let filter = RunFilter {
        case_id: None,
        playbook: (!q.playbook.is_empty()).then(|| q.playbook.clone()),
        status,
        before: q.before,
    };
    let runs = state
        .db
        .read(move |conn| view::list(conn, &filter, PAGE))
        .await
        .map_err(|e| page::fail(&state.pages, e))?;
    let next = (runs.len() == PAGE as usize)
        .then(|| runs.last().map(|r| r.id))
        .flatten();
    let mut playbooks: Vec<String> = state
        .engine
        .iter()
        .flat_map(|e| e.playbooks().map(|l| l.playbook.id.clone()))
        .collect();
    playbooks.sort();
    let rows: Vec<RunRowView> = runs.into_iter().map(RunRowView::from).collect();
    let link = |before: Option<i64>| {
        let mut link = url::form_urlencoded::Serializer::new(String::new());
        if !q.playbook.is_empty() {
            link.append_pair("playbook", &q.playbook);
        }
        if !q.status.is_empty() {
            link.append_pair("status", &q.status);
        }
        if let Some(id) = before {
            link.append_pair("before", &id.to_string());
        }
        format!("/runs?{}", link.finish())
    };
    let older = next.map(|id| link(Some(id)));
    let newest = link(None);
    Ok(page::render(
        &state,
        &session,
        "runs",
        "runs.html",
        minijinja::context! {
            runs => rows,
            playbooks => playbooks,
            statuses => RUN_STATUSES,
            playbook => q.playbook,
            status => q.status,
            paged => q.before.is_some(),
            older => older,
            newest => newest,
        },
    ))
}

/// A run as a row of the list.
#[derive(Serialize)]
struct RunRowView {
    #[serde(flatten)]
    run: RunSummary,
    duration_ms: Option<i64>,
}

impl From<RunSummary> for RunRowView {
    fn from(run: RunSummary) -> Self {
        RunRowView {
            duration_ms: match (run.started_at, run.finished_at) {
                (Some(a), Some(b)) => Some((b - a).num_milliseconds()),
                _ => None,
            },
            run,
        }
    }
}

/// A step as the run page shows it: JSON already pretty-printed, retries counted.
#[derive(Serialize)]
struct StepPage {
    #[serde(flatten)]
    step: StepView,
    input_json: Option<String>,
    output_json: Option<String>,
    item_json: Option<String>,
    retries: i32,
    gated: bool,
    items_page: Vec<StepPage>,
}

fn pretty(value: &Option<Value>) -> Option<String> {
    value
        .as_ref()
        .filter(|v| !v.is_null())
        .map(|v| serde_json::to_string_pretty(v).unwrap_or_default())
}

impl StepPage {
    fn new(mut step: StepView, gated: bool) -> StepPage {
        let items = std::mem::take(&mut step.items);
        StepPage {
            input_json: pretty(&step.input),
            output_json: pretty(&step.output),
            item_json: pretty(&step.item),
            retries: (step.attempts - 1).max(0),
            gated,
            items_page: items.into_iter().map(|i| StepPage::new(i, false)).collect(),
            step,
        }
    }
}

/// Hides every configured secret value in what the page shows (see `RunView::redact`).
fn redact(state: &AppState, run: &mut RunView) {
    if let Some(engine) = &state.engine {
        run.redact(engine.executor_secrets());
    }
}

#[derive(Deserialize)]
struct ShowQuery {
    cancelled: Option<u8>,
}

#[get("/runs/{id}")]
async fn show(
    state: web::Data<AppState>,
    session: SignedIn,
    path: web::Path<i64>,
    query: web::Query<ShowQuery>,
) -> actix_web::Result<HttpResponse> {
    let notice = query
        .cancelled
        .map(|_| "Cancellation requested: no further step starts; calls in flight finish and are recorded.".to_string());
    render_run(
        &state,
        &session,
        path.into_inner(),
        StatusCode::OK,
        notice,
        None,
    )
    .await
}

async fn render_run(
    state: &AppState,
    session: &SignedIn,
    id: i64,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> actix_web::Result<HttpResponse> {
    let loaded = state
        .db
        .read(move |conn| {
            let run = view::run(conn, id)?;
            let row = store::run(conn, id)?;
            let pb = store::load_definition(conn, &row.definition_hash)?;
            let parent = match run.run.parent_step_run_id {
                Some(step) => store::step(conn, step).optional()?.map(|s| s.run_id),
                None => None,
            };
            Ok::<_, EngineError>((run, pb, parent))
        })
        .await
        .map_err(|e| page::fail(&state.pages, e))?;
    let (mut run, pb, parent_run) = loaded;
    redact(state, &mut run);
    let statuses: HashMap<String, String> = run
        .steps
        .iter()
        .map(|s| (s.step.clone(), s.status.clone()))
        .collect();
    let graph = step_graph::render(
        &pb,
        Some(&statuses),
        &format!("Steps of run {} ({})", run.run.id, pb.id),
    );
    let finished = RunStatus::parse(&run.run.status).is_final();
    let gated: HashMap<&str, bool> = pb
        .steps
        .iter()
        .map(|s| (s.id.as_str(), s.approval.is_some()))
        .collect();
    let steps: Vec<StepPage> = run
        .steps
        .iter()
        .cloned()
        .map(|s| {
            let g = gated.get(s.step.as_str()).copied().unwrap_or(false);
            StepPage::new(s, g)
        })
        .collect();
    let inputs_json = pretty(&Some(run.inputs.clone()));
    let duration_ms = match (run.run.started_at, run.run.finished_at) {
        (Some(a), Some(b)) => Some((b - a).num_milliseconds()),
        _ => None,
    };
    let live = format!("run:{} approvals", run.run.id);
    Ok(page::render_status(
        state,
        session,
        "runs",
        status,
        "run.html",
        minijinja::context! {
            run => run.run,
            gates => run.approvals,
            steps => steps,
            inputs_json => inputs_json,
            duration_ms => duration_ms,
            graph => minijinja::Value::from_safe_string(graph),
            finished => finished,
            can_cancel => session.0.user.role.allows(Permission::CancelRuns),
            parent_run => parent_run,
            live => live,
            notice => notice,
            error => error,
        },
    ))
}

#[derive(Deserialize)]
struct CancelForm {
    csrf_token: String,
}

#[post("/runs/{id}/cancel")]
async fn cancel(
    state: web::Data<AppState>,
    session: SignedIn,
    path: web::Path<i64>,
    form: web::Form<CancelForm>,
) -> actix_web::Result<HttpResponse> {
    session.check_csrf(&state.pages, &form.csrf_token)?;
    session.require(&state.pages, Permission::CancelRuns)?;
    let id = path.into_inner();
    let engine = crate::web::api::runs::engine(&state).map_err(|e| page::fail(&state.pages, e))?;
    let actor = crate::audit::Actor::user(&session.0.user.username);
    match dispatch::cancel(&engine, id, &actor).await {
        Ok(()) => Ok(page::see_other(&format!("/runs/{id}?cancelled=1"))),
        Err(EngineError::RunNotFound(_)) => {
            Err(page::fail(&state.pages, EngineError::RunNotFound(id)))
        }
        Err(err) => {
            let api = ApiError::from(err);
            render_run(&state, &session, id, api.status, None, Some(api.message)).await
        }
    }
}
