//! The approvals inbox of the signed-in user, and deciding from it.

use crate::approvals::{self, notify, ApprovalError, Decider, Decision, Gate};
use crate::auth::Permission;
use crate::web::console::page::{self, SignedIn};
use crate::web::error::ApiError;
use crate::web::extract::origin;
use crate::web::AppState;
use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

/// Registers the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(inbox).service(decide);
}

/// A gate with what its page shows besides the gate itself.
#[derive(Serialize)]
pub struct GateItem {
    pub gate: Gate,
    pub target: Vec<String>,
    pub case_title: Option<String>,
    pub approvals: usize,
}

impl GateItem {
    /// Adds the case title and the target lines to a gate.
    pub fn new(gate: Gate, case_title: Option<String>) -> GateItem {
        GateItem {
            target: notify::describe_target(gate.target.as_ref()),
            approvals: gate
                .decisions
                .iter()
                .filter(|d| d.decision == "approve")
                .count(),
            case_title,
            gate,
        }
    }
}

#[derive(Deserialize)]
struct InboxQuery {
    decided: Option<i64>,
}

#[get("/approvals")]
async fn inbox(
    state: web::Data<AppState>,
    session: SignedIn,
    query: web::Query<InboxQuery>,
) -> HttpResponse {
    let notice = query
        .decided
        .map(|id| format!("Your decision on request {id} was recorded."));
    render_inbox(&state, session, StatusCode::OK, notice, None).await
}

async fn render_inbox(
    state: &AppState,
    session: SignedIn,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> HttpResponse {
    let user = session.0.user.clone();
    let items = state
        .db
        .read(move |conn| {
            let gates = approvals::inbox(conn, user.id, &user.username, user.role)?;
            gates
                .into_iter()
                .map(|g| {
                    let title = notify::case_title(conn, g.case_id)?;
                    Ok(GateItem::new(g, title))
                })
                .collect::<Result<Vec<_>, ApprovalError>>()
        })
        .await;
    let items = match items {
        Ok(items) => items,
        Err(err) => return state.pages.error(&err.into()),
    };
    page::render_status(
        state,
        &session,
        "approvals",
        status,
        "approvals.html",
        minijinja::context! {
            items => items,
            notice => notice,
            error => error,
        },
    )
}

#[derive(Deserialize)]
struct DecideForm {
    csrf_token: String,
    decision: Decision,
    #[serde(default)]
    comment: String,
}

#[post("/approvals/{id}/decide")]
async fn decide(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: SignedIn,
    path: web::Path<i64>,
    form: web::Form<DecideForm>,
) -> actix_web::Result<HttpResponse> {
    let form = form.into_inner();
    session.check_csrf(&state.pages, &form.csrf_token)?;
    // The least any gate needs (acknowledging); the gate's kind decides the rest.
    session.require(&state.pages, Permission::WorkCases)?;
    let user = &session.0.user;
    let id = path.into_inner();
    let o = origin(&req);
    let who = Decider {
        user_id: user.id,
        username: user.username.clone(),
        role: user.role,
        actor: crate::audit::Actor::user(&user.username),
        channel: "console".into(),
        ip: o.ip,
        user_agent: o.user_agent,
    };
    let t = state.clock.now();
    let result = state
        .db
        .write(move |conn| approvals::decide(conn, id, &who, form.decision, Some(&form.comment), t))
        .await;
    Ok(match result {
        Ok(_) => {
            if let Some(engine) = &state.engine {
                engine.wake();
            }
            page::see_other(&format!("/approvals?decided={id}"))
        }
        Err(err) => {
            let api = ApiError::from(err);
            let message = format!("Request {id}: {}", api.message);
            render_inbox(&state, session, api.status, None, Some(message)).await
        }
    })
}
