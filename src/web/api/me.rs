//! `/api/v1/me`: who the caller is, and changing one's own password.

use crate::auth::{password, users, AuthError, AuthMethod, Principal};
use crate::web::error::ApiError;
use crate::web::extract::Authenticated;
use crate::web::AppState;
use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};

/// Registers the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(me).service(change_password);
}

/// The caller as the API shows it.
#[derive(Serialize)]
pub struct MeView<'a> {
    #[serde(flatten)]
    pub user: &'a users::User,
    /// `session` or `token`.
    pub auth: &'static str,
    /// The CSRF token a browser session must send in `X-CSRF-Token` on writes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<&'a str>,
}

impl<'a> MeView<'a> {
    fn of(p: &'a Principal) -> MeView<'a> {
        match &p.method {
            AuthMethod::Session { csrf_token } => MeView {
                user: &p.user,
                auth: "session",
                csrf_token: Some(csrf_token),
            },
            AuthMethod::Token { .. } => MeView {
                user: &p.user,
                auth: "token",
                csrf_token: None,
            },
        }
    }
}

#[get("/me")]
async fn me(Authenticated(p): Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(MeView::of(&p))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

#[post("/me/password")]
async fn change_password(
    state: web::Data<AppState>,
    Authenticated(p): Authenticated,
    body: web::Json<PasswordChange>,
) -> Result<HttpResponse, ApiError> {
    let PasswordChange {
        current_password,
        new_password,
    } = body.into_inner();
    users::check_password("new_password", &new_password)?;
    let username = p.user.username.clone();
    let row = state
        .db
        .read({
            let username = username.clone();
            move |conn| users::find_row(conn, &username)
        })
        .await?
        .ok_or(AuthError::Unauthenticated)?;
    let new_hash = web::block(move || {
        if password::verify(&row.password_hash, &current_password) {
            password::hash(&new_password)
                .map(Some)
                .map_err(|e| AuthError::Hash(e.to_string()))
        } else {
            Ok(None)
        }
    })
    .await
    .map_err(|e| ApiError::internal(&e))??
    .ok_or_else(|| AuthError::InvalidInput {
        field: "current_password",
        reason: "is not your current password".into(),
    })?;
    let actor = p.actor();
    state
        .db
        .write(move |conn| users::set_password(conn, &actor, &username, &new_hash))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
