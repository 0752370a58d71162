//! The HTTP server: routes, shared state, limits, security headers, request metrics.
//! Handlers stay thin: parse, authorize, call the domain, render.

pub mod api;
pub mod console;
pub mod error;
pub mod extract;
pub mod health;

use crate::auth::throttle::LoginThrottle;
use crate::config::Config;
use crate::db::Db;
use crate::events::Bus;
use crate::ingest::sources::SourceCache;
use crate::ingest::writer::Writer;
use crate::metrics::{Metrics, RequestLabels, RouteLabels};
use crate::playbooks::engine::Engine;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{DefaultHeaders, Next};
use actix_web::{web, App, HttpServer};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Instant;

/// How often the change feed reads the database while console pages follow it.
const LIVE_POLL: std::time::Duration = std::time::Duration::from_millis(750);

/// What every handler can reach.
pub struct AppState {
    pub db: Db,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    pub throttle: Arc<LoginThrottle>,
    pub pages: Arc<console::Pages>,
    /// Base URL for links people follow, without a trailing slash.
    pub public_url: String,
    /// The group-commit writer for ingested alerts.
    pub writer: Writer,
    pub sources: SourceCache,
    /// Events that start playbooks: what is listened to, and the dispatcher's wake-up.
    pub bus: Bus,
    /// The playbook engine, when it runs in this process.
    pub engine: Option<Arc<Engine>>,
    /// The time deadlines are measured by (link expiry, decisions).
    pub clock: crate::clock::Clock,
    /// The change feed console pages follow (`GET /live`).
    pub live: crate::live::Feed,
}

impl AppState {
    /// State for a server bound at `bound`; starts the ingestion writer, so it must be
    /// called inside the tokio runtime.
    pub fn new(config: Config, db: Db, bound: Option<std::net::SocketAddr>) -> AppState {
        let throttle = LoginThrottle::new(
            config.auth.login_attempts_per_minute,
            config.auth.login_attempts_per_minute_per_ip,
        );
        let metrics = Metrics::new();
        let bus = Bus::new();
        let writer = Writer::start(
            db.clone(),
            config.cases.clone(),
            bus.clone(),
            config.ingest.queue_capacity,
            config.ingest.max_alerts_per_commit,
            metrics.writer.clone(),
        );
        let sources = SourceCache::new(std::time::Duration::from_secs(
            config.ingest.source_cache_seconds,
        ));
        AppState {
            live: crate::live::Feed::start(db.clone(), LIVE_POLL),
            writer,
            bus,
            engine: None,
            clock: crate::clock::Clock::system(),
            sources,
            public_url: config.public_base_url(bound),
            db,
            config: Arc::new(config),
            metrics: Arc::new(metrics),
            throttle: Arc::new(throttle),
            pages: Arc::new(console::Pages::new()),
        }
    }
}

/// What a process's HTTP listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routes {
    /// The API, ingestion and the console (roles `all` and `http`).
    All,
    /// Only `/healthz`, `/readyz` and `/metrics` (role `worker`).
    HealthOnly,
}

/// Serves HTTP on `listener` until SIGINT or SIGTERM. On the signal, new connections are
/// refused at once, the engine (if any) stops starting work, and requests in flight get
/// `http.shutdown_grace_seconds` to finish.
pub async fn serve(
    state: web::Data<AppState>,
    listener: TcpListener,
    routes: Routes,
) -> std::io::Result<()> {
    let workers = match state.config.http.workers {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let grace = state.config.http.shutdown_grace_seconds;
    let for_app = state.clone();
    let server = match routes {
        Routes::All => HttpServer::new(move || app(for_app.clone()))
            .workers(workers)
            .shutdown_timeout(grace)
            .disable_signals()
            .listen(listener)?
            .run(),
        Routes::HealthOnly => HttpServer::new(move || health_app(for_app.clone()))
            .workers(1)
            .shutdown_timeout(grace)
            .disable_signals()
            .listen(listener)?
            .run(),
    };
    let handle = server.handle();
    let running = tokio::spawn(server);
    let signal = stop_requested();
    tokio::pin!(signal);
    tokio::select! {
        r = running => return r.map_err(std::io::Error::other)?,
        _ = &mut signal => {}
    }
    tracing::info!("stopping: refusing new connections, finishing work in flight");
    // Console pages hold their change streams open; end them, or the graceful shutdown
    // would wait for them until its timeout.
    state.live.close();
    if let Some(engine) = &state.engine {
        engine.begin_shutdown();
    }
    handle.stop(true).await;
    Ok(())
}

/// A worker's listener: health, readiness and metrics only.
pub fn health_app(
    state: web::Data<AppState>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(state)
        .wrap(actix_web::middleware::from_fn(observe))
        .wrap(security_headers(false))
        .configure(health::routes)
}

/// The application with every route, limit and middleware.
pub fn app(
    state: web::Data<AppState>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let http = state.config.http.clone();
    let hsts = state.public_url.starts_with("https://");
    App::new()
        .app_data(state)
        .app_data(
            web::JsonConfig::default()
                .limit(http.max_body_bytes)
                .error_handler(error::json_error),
        )
        .app_data(web::PayloadConfig::new(http.max_body_bytes))
        .app_data(
            web::FormConfig::default()
                .limit(http.max_form_bytes)
                .error_handler(error::form_error),
        )
        .app_data(web::PathConfig::default().error_handler(error::path_error))
        .app_data(web::QueryConfig::default().error_handler(error::query_error))
        .wrap(actix_web::middleware::from_fn(observe))
        .wrap(security_headers(hsts))
        .configure(health::routes)
        .service(web::scope("/api/v1").configure(api::routes))
        .configure(console::routes)
}

/// Resolves on SIGINT or SIGTERM (actix-web's own handling is off: `serve` stops it).
async fn stop_requested() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn security_headers(hsts: bool) -> DefaultHeaders {
    let headers = DefaultHeaders::new()
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("X-Frame-Options", "DENY"))
        // Approval links carry single-use tokens; never leak a URL to another site.
        .add(("Referrer-Policy", "no-referrer"))
        .add((
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
             frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'",
        ))
        .add((
            "Permissions-Policy",
            "camera=(), microphone=(), geolocation=()",
        ))
        .add(("Cross-Origin-Opener-Policy", "same-origin"))
        .add(("Cache-Control", "no-store"));
    if hsts {
        headers.add(("Strict-Transport-Security", "max-age=31536000"))
    } else {
        headers
    }
}

/// The path as logged: the token of an approval link (`/approvals/1/link/<token>/...`)
/// is a secret and never reaches the log.
fn loggable_path(path: &str) -> String {
    match path.split_once("/link/") {
        Some((head, tail)) => {
            let rest = tail.split_once('/').map_or("", |(_, r)| r);
            if rest.is_empty() {
                format!("{head}/link/<token>")
            } else {
                format!("{head}/link/<token>/{rest}")
            }
        }
        None => path.to_string(),
    }
}

/// Counts and times every request by route pattern, and logs it.
async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().to_string();
    let path = loggable_path(req.path());
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let response = next.call(req).await?;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    // The pattern, not the path, so ids in URLs do not explode the label set.
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_string());
    if let Some(state) = state {
        state
            .metrics
            .http_requests
            .get_or_create(&RequestLabels {
                method: method.clone(),
                route: route.clone(),
                status,
            })
            .inc();
        state
            .metrics
            .http_duration
            .get_or_create(&RouteLabels { route })
            .observe(elapsed.as_secs_f64());
    }
    tracing::info!(
        method = %method,
        path = %path,
        status,
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::loggable_path;

    #[test]
    fn approval_link_tokens_are_not_logged() {
        assert_eq!(
            loggable_path("/approvals/4/link/abcDEF_-123/approve"),
            "/approvals/4/link/<token>/approve"
        );
        assert_eq!(
            loggable_path("/approvals/4/link/abcDEF_-123"),
            "/approvals/4/link/<token>"
        );
        assert_eq!(loggable_path("/api/v1/cases"), "/api/v1/cases");
    }
}
