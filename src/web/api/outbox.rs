//! `/api/v1/outbox`: outgoing e-mail and its delivery state, for admins. Without an SMTP
//! relay this is where approval requests and `notify.email` messages can be read.

use crate::auth::Permission;
use crate::email;
use crate::web::error::ApiError;
use crate::web::extract::Authenticated;
use crate::web::AppState;
use actix_web::{get, web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

/// Registers the route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(list);
}

/// The statuses a row can have.
pub const STATUSES: [&str; 5] = ["queued", "sending", "sent", "failed", "cancelled"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    limit: Option<i64>,
}

#[get("/outbox")]
async fn list(
    state: web::Data<AppState>,
    Authenticated(p): Authenticated,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::Administer)?;
    let ListQuery { status, limit } = query.into_inner();
    if let Some(s) = &status {
        if !STATUSES.contains(&s.as_str()) {
            return Err(ApiError::new(
                actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                format!("`status` must be one of {}", STATUSES.join(", ")),
            ));
        }
    }
    let limit = limit.unwrap_or(100).clamp(1, 500);
    let rows = state
        .db
        .read(move |conn| email::list(conn, status.as_deref(), limit))
        .await?;
    Ok(HttpResponse::Ok().json(json!({
        "smtp_configured": !state.config.email.host.trim().is_empty(),
        "emails": rows,
    })))
}
