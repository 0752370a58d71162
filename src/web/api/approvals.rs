//! `/api/v1/approvals`: the caller's inbox of pending gates, one gate, and decisions.

use crate::approvals::{self, Decider, Decision};
use crate::auth::Permission;
use crate::web::error::ApiError;
use crate::web::extract::{origin, Authenticated};
use crate::web::AppState;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

/// Registers the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(inbox).service(show).service(decide);
}

#[get("/approvals")]
async fn inbox(
    state: web::Data<AppState>,
    Authenticated(p): Authenticated,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::Read)?;
    let (id, name, role) = (p.user.id, p.user.username.clone(), p.user.role);
    let gates = state
        .db
        .read(move |conn| approvals::inbox(conn, id, &name, role))
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "approvals": gates })))
}

#[get("/approvals/{id}")]
async fn show(
    state: web::Data<AppState>,
    Authenticated(p): Authenticated,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::Read)?;
    let id = path.into_inner();
    let gate = state.db.read(move |conn| approvals::get(conn, id)).await?;
    Ok(HttpResponse::Ok().json(gate))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    decision: Decision,
    /// Required when rejecting.
    comment: Option<String>,
}

#[post("/approvals/{id}/decision")]
async fn decide(
    req: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(p): Authenticated,
    path: web::Path<i64>,
    body: web::Json<DecisionBody>,
) -> Result<HttpResponse, ApiError> {
    // The least any gate needs (acknowledging); the gate's kind decides the rest.
    p.require(Permission::WorkCases)?;
    let id = path.into_inner();
    let o = origin(&req);
    let who = Decider {
        user_id: p.user.id,
        username: p.user.username.clone(),
        role: p.user.role,
        actor: p.actor(),
        channel: "api".into(),
        ip: o.ip,
        user_agent: o.user_agent,
    };
    let body = body.into_inner();
    let t = state.clock.now();
    let gate = state
        .db
        .write(move |conn| {
            approvals::decide(conn, id, &who, body.decision, body.comment.as_deref(), t)
        })
        .await?;
    if let Some(engine) = &state.engine {
        engine.wake();
    }
    Ok(HttpResponse::Ok().json(gate))
}
