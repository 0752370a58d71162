//! The landing page after sign-in.

use crate::auth::{users, AuthError, Permission};
use crate::db::schema::audit_head;
use crate::web::extract::MaybeSession;
use crate::web::AppState;
use actix_web::http::{header, StatusCode};
use actix_web::{get, web, HttpResponse};
use diesel::prelude::*;

/// Registers the route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(home);
}

#[get("/")]
async fn home(state: web::Data<AppState>, MaybeSession(session): MaybeSession) -> HttpResponse {
    let Some(session) = session else {
        return HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/login"))
            .finish();
    };
    let is_admin = session.user.role.allows(Permission::ManageUsers);
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
    state.pages.render(
        StatusCode::OK,
        "home.html",
        minijinja::context! {
            user => session.user,
            csrf_token => session.csrf_token,
            backend => state.db.backend().to_string(),
            user_count => user_count,
            audit_seq => audit_seq,
        },
    )
}
