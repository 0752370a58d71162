//! `/api/v1/playbooks` and `/api/v1/runs`: loaded playbooks, manual runs, run records,
//! cancellation.

use crate::auth::Permission;
use crate::playbooks::engine::view::{self, RunFilter};
use crate::playbooks::engine::{dispatch, switches, Engine, EngineError};
use crate::web::error::ApiError;
use crate::web::extract::Authenticated;
use crate::web::AppState;
use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// Registers the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(playbooks)
        .service(start)
        .service(list)
        .service(show)
        .service(cancel)
        .service(enable)
        .service(disable);
}

/// The engine, or 503 when this process does not run one.
pub fn engine(state: &AppState) -> Result<Arc<Engine>, ApiError> {
    state.engine.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "engine_disabled",
            "the playbook engine does not run in this process (engine.enabled = false)",
        )
    })
}

#[get("/playbooks")]
async fn playbooks(
    state: web::Data<AppState>,
    Authenticated(p): Authenticated,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::Read)?;
    let engine = engine(&state)?;
    let switches = state
        .db
        .read(|c| switches::all(c).map_err(EngineError::from))
        .await?;
    let mut found: Vec<Value> = engine
        .playbooks()
        .map(|l| {
            let pb = &l.playbook;
            let switch = switches.get(&pb.id);
            json!({
                "id": pb.id,
                "version": pb.version,
                "enabled": switch.is_none_or(|s| s.enabled()),
                "switched": switch,
                "description": pb.description,
                "trigger": pb.trigger,
                "condition": pb.condition,
                "inputs": pb.inputs,
                "steps": pb.steps.iter().map(|s| json!({ "id": s.id, "uses": s.uses, "gated": s.approval.is_some() })).collect::<Vec<_>>(),
            })
        })
        .collect();
    found.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    Ok(HttpResponse::Ok().json(json!({ "playbooks": found })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartRun {
    case_id: Option<i64>,
    #[serde(default)]
    inputs: Value,
}

#[post("/playbooks/{id}/runs")]
async fn start(
    state: web::Data<AppState>,
    Authenticated(p): Authenticated,
    path: web::Path<String>,
    body: web::Json<StartRun>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::WorkCases)?;
    let engine = engine(&state)?;
    let body = body.into_inner();
    let requester = format!("user:{}", p.user.username);
    let id = dispatch::start_manual(
        &engine,
        &path.into_inner(),
        body.case_id,
        &body.inputs,
        &requester,
        &p.actor(),
    )
    .await?;
    let run = state.db.read(move |conn| view::run(conn, id)).await?;
    Ok(HttpResponse::Created().json(run))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    case_id: Option<i64>,
    playbook: Option<String>,
    status: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<i64>,
    limit: Option<i64>,
}

#[get("/runs")]
async fn list(
    state: web::Data<AppState>,
    Authenticated(p): Authenticated,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::Read)?;
    let q = q.into_inner();
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request("`limit` must be 1 to 500"));
    }
    if let Some(s) = &q.status {
        const STATUSES: [&str; 6] = [
            "pending",
            "running",
            "waiting",
            "succeeded",
            "failed",
            "cancelled",
        ];
        if !STATUSES.contains(&s.as_str()) {
            return Err(ApiError::bad_request(format!(
                "`status` must be one of {}, not {s:?}",
                STATUSES.join(", ")
            )));
        }
    }
    let filter = RunFilter {
        case_id: q.case_id,
        playbook: q.playbook,
        status: q.status,
        before: q.cursor,
    };
    let runs = state
        .db
        .read(move |conn| view::list(conn, &filter, limit))
        .await?;
    let next = (runs.len() == usize::try_from(limit).unwrap_or(usize::MAX))
        .then(|| runs.last().map(|r| r.id))
        .flatten();
    Ok(HttpResponse::Ok().json(json!({ "runs": runs, "next_cursor": next })))
}

#[get("/runs/{id}")]
async fn show(
    state: web::Data<AppState>,
    Authenticated(p): Authenticated,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::Read)?;
    let id = path.into_inner();
    let mut run = state.db.read(move |conn| view::run(conn, id)).await?;
    if let Some(engine) = &state.engine {
        run.redact(engine.executor_secrets());
    }
    Ok(HttpResponse::Ok().json(run))
}

#[post("/runs/{id}/cancel")]
async fn cancel(
    state: web::Data<AppState>,
    Authenticated(p): Authenticated,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::CancelRuns)?;
    let engine = engine(&state)?;
    let id = path.into_inner();
    dispatch::cancel(&engine, id, &p.actor()).await?;
    let run = state.db.read(move |conn| view::run(conn, id)).await?;
    Ok(HttpResponse::Accepted().json(run))
}

#[post("/playbooks/{id}/enable")]
async fn enable(
    state: web::Data<AppState>,
    Authenticated(p): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_switch(&state, &p, &path.into_inner(), true).await
}

#[post("/playbooks/{id}/disable")]
async fn disable(
    state: web::Data<AppState>,
    Authenticated(p): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_switch(&state, &p, &path.into_inner(), false).await
}

/// Enables or disables a playbook (admins only); answers with its state and whether
/// this request changed it.
async fn set_switch(
    state: &AppState,
    p: &crate::auth::Principal,
    id: &str,
    enabled: bool,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::Administer)?;
    let engine = engine(state)?;
    let changed = switches::switch(&engine, id, enabled, &p.actor()).await?;
    Ok(HttpResponse::Ok().json(json!({ "id": id, "enabled": enabled, "changed": changed })))
}
