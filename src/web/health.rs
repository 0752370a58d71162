//! Liveness, readiness and metrics endpoints for load balancers and Prometheus.

use super::AppState;
use actix_web::{get, web, HttpResponse};
use serde_json::json;

/// Registers `/healthz`, `/readyz` and `/metrics`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(healthz).service(readyz).service(metrics);
}

/// The process is up and answering.
#[get("/healthz")]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// The process can do its work: the database answers.
#[get("/readyz")]
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let db_ok = state.db.ping().await;
    let body = json!({
        "status": if db_ok { "ready" } else { "not_ready" },
        "checks": { "database": { "ok": db_ok, "backend": state.db.backend().to_string() } },
    });
    if db_ok {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "5"))
            .json(body)
    }
}

/// Prometheus text exposition.
#[get("/metrics")]
async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let (open, idle) = state.db.pool_state();
    state.metrics.db_pool_connections.set(i64::from(open));
    state.metrics.db_pool_idle.set(i64::from(idle));
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.render())
}
