//! The JSON API under `/api/v1`, one file per resource.

pub mod alerts;
pub mod approvals;
pub mod cases;
pub mod ingest;
pub mod me;
pub mod outbox;
pub mod runs;
pub mod sources;
pub mod thehive;
pub mod tokens;
pub mod users;

use super::error::ApiError;
use actix_web::web;

/// Registers every API resource; unknown API paths get a JSON 404.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.configure(me::routes)
        .configure(users::routes)
        .configure(tokens::routes)
        .configure(ingest::routes)
        .configure(thehive::routes)
        .configure(sources::routes)
        .configure(cases::routes)
        .configure(alerts::routes)
        .configure(runs::routes)
        .configure(approvals::routes)
        .configure(outbox::routes)
        .default_service(web::to(not_found));
}

async fn not_found(req: actix_web::HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::not_found(format!(
        "no API endpoint {} {}",
        req.method(),
        req.path()
    )))
}
