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

/// The process can take work: the database answers and the ingestion queue has room
/// (a load balancer then sends requests elsewhere while this process would answer 503).
#[get("/readyz")]
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    // While the database is known to be down, do not wait for a connection timeout here.
    let db_ok = !state.db.is_down() && state.db.ping().await;
    let (queued, capacity) = state.writer.backlog();
    let queue_ok = queued < capacity;
    let ready = db_ok && queue_ok;
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": {
            "database": { "ok": db_ok, "backend": state.db.backend().to_string() },
            "ingest_queue": { "ok": queue_ok, "queued": queued, "capacity": capacity },
        },
    });
    if ready {
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
