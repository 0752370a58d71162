//! `/api/v1/alerts/{id}`: one alert with its raw payload.

use crate::auth::Permission;
use crate::cases::query;
use crate::web::error::ApiError;
use crate::web::extract::Authenticated;
use crate::web::AppState;
use actix_web::{get, web, HttpResponse};

/// Registers the route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(show);
}

#[get("/alerts/{id}")]
async fn show(
    state: web::Data<AppState>,
    Authenticated(p): Authenticated,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::Read)?;
    let id = path.into_inner();
    let alert = state.db.read(move |conn| query::alert(conn, id)).await?;
    Ok(HttpResponse::Ok().json(alert))
}
