//! The outbox page for admins: e-mail queued, sent or failed.

use crate::auth::Permission;
use crate::email;
use crate::web::console::page::{self, SignedIn};
use crate::web::AppState;
use actix_web::{get, web, HttpResponse};

/// Registers the route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(outbox);
}

#[get("/outbox")]
async fn outbox(state: web::Data<AppState>, session: SignedIn) -> actix_web::Result<HttpResponse> {
    session.require(&state.pages, Permission::Administer)?;
    let emails = state
        .db
        .read(|conn| email::list(conn, None, 200))
        .await
        .map_err(|e| page::fail(&state.pages, e))?;
    Ok(page::render(
        &state,
        &session,
        "admin",
        "outbox.html",
        minijinja::context! {
            smtp => !state.config.email.host.trim().is_empty(),
            emails => emails,
        },
    ))
}
