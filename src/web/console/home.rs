//! The landing page after sign-in.

use crate::auth::{users, AuthError, Permission};
use crate::db::schema::audit_head;
use crate::web::console::page::{self, SignedIn};
use crate::web::AppState;
use actix_web::{get, web, HttpResponse};
use diesel::prelude::*;

/// Registers the route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(home);
}

#[get("/")]
async fn home(state: web::Data<AppState>, session: SignedIn) -> HttpResponse {
    let is_admin = session.0.user.role.allows(Permission::ManageUsers);
    let counts = state
        .db
        .read(move |conn| {
            let seq: i64 = audit_head::table.select(audit_head::seq).first(conn)?;
            let user_count = if is_admin {
                Some(users::count(conn)?)
            } else {
                None
            };
            Ok::<_, AuthError>((seq, user_count))
        })
        .await;
    let (audit_seq, user_count) = match counts {
        Ok(c) => c,
        Err(err) => return state.pages.error(&err.into()),
    };
    page::render(
        &state,
        &session,
        "dashboard",
        "home.html",
        minijinja::context! {
            backend => state.db.backend().to_string(),
            user_count => user_count,
            audit_seq => audit_seq,
        },
    )
}
