//! The outbox page for admins: e-mail queued, sent or failed.

use crate::auth::{AuthError, Permission};
use crate::email;
use crate::web::extract::MaybeSession;
use crate::web::AppState;
use actix_web::http::{header, StatusCode};
use actix_web::{get, web, HttpResponse};

/// Registers the route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(outbox);
}

#[get("/outbox")]
async fn outbox(state: web::Data<AppState>, MaybeSession(session): MaybeSession) -> HttpResponse {
    let Some(session) = session else {
        return HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/login?next=/outbox"))
            .finish();
    };
    if !session.user.role.allows(Permission::Administer) {
        let err = AuthError::Forbidden {
            role: session.user.role,
            permission: Permission::Administer.name(),
        };
        return state.pages.error(&err.into());
    }
    let emails = match state.db.read(|conn| email::list(conn, None, 200)).await {
        Ok(e) => e,
        Err(err) => return state.pages.error(&err.into()),
    };
    state.pages.render(
        StatusCode::OK,
        "outbox.html",
        minijinja::context! {
            user => session.user,
            csrf_token => session.csrf_token,
            smtp => !state.config.email.host.trim().is_empty(),
            emails => emails,
        },
    )
}
