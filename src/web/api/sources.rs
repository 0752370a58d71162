//! `/api/v1/sources`: ingestion sources, for admins.

use crate::auth::Permission;
use crate::ingest::sources;
use crate::ingest::vendors::{SourceConfig, SourceKind};
use crate::web::error::ApiError;
use crate::web::extract::Authenticated;
use crate::web::AppState;
use actix_web::{get, patch, post, web, HttpResponse};
use serde::Deserialize;

/// Registers the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(list)
        .service(create)
        .service(update)
        .service(rotate);
}

#[get("/sources")]
async fn list(
    state: web::Data<AppState>,
    Authenticated(p): Authenticated,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::Administer)?;
    let all = state.db.read(sources::list).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "sources": all })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateSource {
    name: String,
    kind: SourceKind,
    #[serde(default)]
    config: SourceConfig,
    /// Require an HMAC-SHA256 signature on every request (a secret is generated).
    #[serde(default)]
    signed: bool,
}

#[post("/sources")]
async fn create(
    state: web::Data<AppState>,
    Authenticated(p): Authenticated,
    body: web::Json<CreateSource>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::Administer)?;
    let b = body.into_inner();
    let actor = p.actor();
    let created = state
        .db
        .write(move |conn| sources::create(conn, &actor, &b.name, b.kind, b.config, b.signed))
        .await?;
    state.sources.forget(&created.source.name);
    Ok(HttpResponse::Created().json(created))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateSource {
    disabled: bool,
}

#[patch("/sources/{name}")]
async fn update(
    state: web::Data<AppState>,
    Authenticated(p): Authenticated,
    path: web::Path<String>,
    body: web::Json<UpdateSource>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::Administer)?;
    let name = path.into_inner();
    let actor = p.actor();
    let disabled = body.disabled;
    let n = name.clone();
    let source = state
        .db
        .write(move |conn| sources::set_disabled(conn, &actor, &n, disabled))
        .await?;
    state.sources.forget(&name);
    Ok(HttpResponse::Ok().json(source))
}

#[post("/sources/{name}/rotate")]
async fn rotate(
    state: web::Data<AppState>,
    Authenticated(p): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::Administer)?;
    let name = path.into_inner();
    let actor = p.actor();
    let n = name.clone();
    let rotated = state
        .db
        .write(move |conn| sources::rotate(conn, &actor, &n))
        .await?;
    state.sources.forget(&name);
    Ok(HttpResponse::Ok().json(rotated))
}
