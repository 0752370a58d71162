//! `/api/v1/tokens`: the caller's own API tokens.

use crate::auth::{tokens, Permission};
use crate::web::error::ApiError;
use crate::web::extract::Authenticated;
use crate::web::AppState;
use actix_web::{delete, get, post, web, HttpResponse};
use chrono::Duration;
use serde::Deserialize;

/// Registers the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(list).service(create).service(revoke);
}

#[get("/tokens")]
async fn list(
    state: web::Data<AppState>,
    Authenticated(p): Authenticated,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ManageOwnTokens)?;
    let owner = p.user.clone();
    let all = state
        .db
        .read(move |conn| tokens::list(conn, &owner))
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "tokens": all })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateToken {
    name: String,
    /// Days until the token stops working; absent for no expiry.
    expires_in_days: Option<u32>,
}

#[post("/tokens")]
async fn create(
    state: web::Data<AppState>,
    Authenticated(p): Authenticated,
    body: web::Json<CreateToken>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ManageOwnTokens)?;
    let body = body.into_inner();
    let lifetime = body.expires_in_days.map(|d| Duration::days(i64::from(d)));
    let actor = p.actor();
    let owner = p.user.clone();
    let created = state
        .db
        .write(move |conn| tokens::create(conn, &actor, &owner, &body.name, lifetime))
        .await?;
    Ok(HttpResponse::Created().json(created))
}

#[delete("/tokens/{id}")]
async fn revoke(
    state: web::Data<AppState>,
    Authenticated(p): Authenticated,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ManageOwnTokens)?;
    let id = path.into_inner();
    let actor = p.actor();
    let owner = p.user.clone();
    let token = state
        .db
        .write(move |conn| tokens::revoke(conn, &actor, &owner, id))
        .await?;
    Ok(HttpResponse::Ok().json(token))
}
