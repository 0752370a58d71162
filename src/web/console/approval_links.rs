//! The pages behind the approve and reject links of approval e-mail. A GET shows what
//! would be decided and a form, and changes nothing but the audit trail; the POST of that
//! form (with a double-submit CSRF token, like the login form) decides. Works without
//! JavaScript.

use super::approvals::GateItem;
use super::{cookie, form_csrf, form_csrf_ok, FORM_CSRF_COOKIE};
use crate::approvals::links::{self, Access, LinkDecision, LinkRequest, Lookup, Refusal, Resolved};
use crate::approvals::{ApprovalError, Decision};
use crate::web::error::ApiError;
use crate::web::extract::{origin, MaybeSession};
use crate::web::AppState;
use actix_web::cookie::SameSite;
use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use serde::Deserialize;

/// Registers the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(show).service(submit);
}

fn access(req: &HttpRequest, session: Option<crate::auth::sessions::ActiveSession>) -> Access {
    let o = origin(req);
    Access {
        ip: o.ip,
        user_agent: o.user_agent,
        signed_in: session.map(|s| s.user),
    }
}

fn refusal_page(
    state: &AppState,
    gate_id: i64,
    token: &str,
    decision: Decision,
    r: &Refusal,
) -> HttpResponse {
    let status = match r {
        Refusal::Unknown => StatusCode::NOT_FOUND,
        Refusal::Used | Refusal::Revoked | Refusal::Expired => StatusCode::GONE,
        Refusal::Settled(_) => StatusCode::CONFLICT,
        Refusal::Disabled | Refusal::OtherUser { .. } => StatusCode::FORBIDDEN,
        Refusal::LoginRequired { .. } => StatusCode::UNAUTHORIZED,
    };
    let (heading, message) = r.explain();
    if let Refusal::LoginRequired { .. } = r {
        let next = format!("/approvals/{gate_id}/link/{token}/{}", decision.as_str());
        return state.pages.render(
            status,
            "message.html",
            minijinja::context! {
                heading => heading,
                message => message,
                link => format!("/login?next={next}"),
                link_text => "Sign in",
            },
        );
    }
    state.pages.message(status, heading, &message)
}

/// What the confirmation page shows.
struct Confirm<'a> {
    found: Resolved,
    token: &'a str,
    decision: Decision,
    comment: &'a str,
    error: Option<&'a str>,
    signed_in: Option<&'a crate::auth::User>,
}

fn confirm_page(
    state: &AppState,
    req: &HttpRequest,
    status: StatusCode,
    c: Confirm<'_>,
) -> HttpResponse {
    let Confirm {
        found,
        token,
        decision,
        comment,
        error,
        signed_in,
    } = c;
    let (csrf, fresh) = form_csrf(req);
    let approver = found.user.username.clone();
    let item = GateItem::new(found.gate, found.case_title);
    let mut page = state.pages.render(
        status,
        "approval_link.html",
        minijinja::context! {
            user => signed_in,
            gate => item.gate,
            target => item.target,
            case_title => item.case_title,
            approvals => item.approvals,
            approver => approver,
            token => token,
            decision => decision.as_str(),
            comment => comment,
            error => error,
            csrf_token => csrf,
        },
    );
    if fresh {
        let _ = page.add_cookie(&cookie(
            FORM_CSRF_COOKIE,
            csrf,
            state.config.secure_cookies(),
            SameSite::Strict,
        ));
    }
    page
}

fn decision_of(segment: &str) -> Option<Decision> {
    match segment {
        "approve" => Some(Decision::Approve),
        "reject" => Some(Decision::Reject),
        _ => None,
    }
}

#[get("/approvals/{id}/link/{token}/{decision}")]
async fn show(
    state: web::Data<AppState>,
    req: HttpRequest,
    MaybeSession(session): MaybeSession,
    path: web::Path<(i64, String, String)>,
) -> HttpResponse {
    let (gate_id, token, decision) = path.into_inner();
    let Some(decision) = decision_of(&decision) else {
        return state.pages.message(
            StatusCode::NOT_FOUND,
            "This link is not valid",
            "An approval link ends in /approve or /reject.",
        );
    };
    let signed_in = session.as_ref().map(|s| s.user.clone());
    let who = access(&req, session);
    let rules = state.config.approvals.clone();
    let t = token.clone();
    let at = state.clock.now();
    let result = state
        .db
        .write(move |conn| {
            let lookup: Lookup =
                links::resolve(conn, gate_id, &t, &who, &|a| rules.link_needs_login(a), at)?;
            links::audit_view(conn, gate_id, &lookup, decision, &who)?;
            Ok::<_, ApprovalError>(lookup)
        })
        .await;
    match result {
        Ok(Ok(found)) => confirm_page(
            &state,
            &req,
            StatusCode::OK,
            Confirm {
                found,
                token: &token,
                decision,
                comment: "",
                error: None,
                signed_in: signed_in.as_ref(),
            },
        ),
        Ok(Err((refusal, _))) => refusal_page(&state, gate_id, &token, decision, &refusal),
        Err(err) => state.pages.error(&err.into()),
    }
}

#[derive(Deserialize)]
struct LinkForm {
    csrf_token: String,
    decision: Decision,
    #[serde(default)]
    comment: String,
}

#[post("/approvals/{id}/link/{token}")]
async fn submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    MaybeSession(session): MaybeSession,
    path: web::Path<(i64, String)>,
    form: web::Form<LinkForm>,
) -> HttpResponse {
    let (gate_id, token) = path.into_inner();
    let form = form.into_inner();
    if !form_csrf_ok(&req, &form.csrf_token) {
        return state.pages.message(
            StatusCode::FORBIDDEN,
            "Please confirm again",
            "The form expired or was not sent by this site. Open the link from the e-mail again; nothing was changed.",
        );
    }
    let signed_in = session.as_ref().map(|s| s.user.clone());
    let who = access(&req, session);
    let rules = state.config.approvals.clone();
    let t = token.clone();
    let comment = form.comment.clone();
    let decision = form.decision;
    let w = who.clone();
    let asked = LinkRequest {
        decision,
        comment: None,
        at: state.clock.now(),
    };
    let result = state
        .db
        .write(move |conn| {
            let asked = LinkRequest {
                comment: Some(&comment),
                ..asked
            };
            links::decide(conn, gate_id, &t, asked, &w, &|a| rules.link_needs_login(a))
        })
        .await;
    match result {
        Ok(LinkDecision::Decided(gate)) => {
            if let Some(engine) = &state.engine {
                engine.wake();
            }
            let (heading, message) = match (decision, gate.status) {
                (Decision::Reject, _) => (
                    "Rejected",
                    format!("You rejected request {gate_id}; the step will not run."),
                ),
                (_, crate::approvals::GateStatus::Acknowledged) => (
                    "Acknowledged",
                    format!(
                        "You acknowledged request {gate_id}; the playbook will not escalate it."
                    ),
                ),
                (Decision::Approve, crate::approvals::GateStatus::Approved) => (
                    "Approved",
                    format!("You approved request {gate_id}; the playbook continues."),
                ),
                (_, _) => (
                    "Approval recorded",
                    format!(
                        "You approved request {gate_id}; it needs {} approvals and has {}.",
                        gate.required,
                        gate.decisions
                            .iter()
                            .filter(|d| d.decision == "approve")
                            .count()
                    ),
                ),
            };
            state.pages.message(StatusCode::OK, heading, &message)
        }
        Ok(LinkDecision::Refused(refusal, found)) => {
            let code = refusal.code();
            let _ = state
                .db
                .write(move |conn| {
                    links::audit_refusal(conn, gate_id, code, found.as_deref(), &who, None)
                })
                .await;
            refusal_page(&state, gate_id, &token, decision, &refusal)
        }
        Err(ApprovalError::CommentRequired) => {
            // Show the form again; the link stays unused.
            let rules = state.config.approvals.clone();
            let t = token.clone();
            let w = who.clone();
            let at = state.clock.now();
            let again = state
                .db
                .read(move |conn| {
                    links::resolve(conn, gate_id, &t, &w, &|a| rules.link_needs_login(a), at)
                })
                .await;
            match again {
                Ok(Ok(found)) => confirm_page(
                    &state,
                    &req,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Confirm {
                        found,
                        token: &token,
                        decision,
                        comment: &form.comment,
                        error: Some("A comment is required to reject."),
                        signed_in: signed_in.as_ref(),
                    },
                ),
                Ok(Err((refusal, _))) => refusal_page(&state, gate_id, &token, decision, &refusal),
                Err(err) => state.pages.error(&err.into()),
            }
        }
        Err(err) => {
            let detail = err.to_string();
            let api = ApiError::from(err);
            let _ = state
                .db
                .write(move |conn| {
                    links::audit_refusal(
                        conn,
                        gate_id,
                        "decision_refused",
                        None,
                        &who,
                        Some(&detail),
                    )
                })
                .await;
            let heading = match api.status {
                StatusCode::CONFLICT => "Already decided",
                StatusCode::FORBIDDEN => "Not allowed",
                _ => api.status.canonical_reason().unwrap_or("Error"),
            };
            state.pages.message(
                api.status,
                heading,
                &format!("{} Nothing was changed.", api.message),
            )
        }
    }
}
