//! `POST /api/v1/ingest/{source}`: one event, a JSON array, or NDJSON from a SIEM or
//! email-security tool. Answered only after the alerts are committed.

use crate::audit::{self, Actor, NewEvent};
use crate::cases::record::Recorded;
use crate::ingest::sources::{self, Source};
use crate::ingest::{body, prepare, signature, IngestError};
use crate::metrics::OutcomeLabels;
use crate::web::error::ApiError;
use crate::web::extract::{bearer_token, origin};
use crate::web::AppState;
use actix_web::{post, web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde::Serialize;
use serde_json::json;

/// Registers the route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(ingest);
}

/// Header for the ingestion token when `Authorization` cannot be set.
pub const TOKEN_HEADER: &str = "x-tocsin-token";

/// The ingestion token: `Authorization: Bearer`, `X-Tocsin-Token`, or `?token=` for senders
/// that can only be given a URL (Splunk's webhook action).
pub fn token_of(req: &HttpRequest) -> Option<String> {
    if let Some(bearer) = bearer_token(req) {
        return Some(bearer);
    }
    if let Some(t) = req
        .headers()
        .get(TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        return Some(t.trim().to_string());
    }
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
}

/// Reads the body up to `limit` bytes, refusing more with a JSON 413.
pub async fn read_body(mut payload: web::Payload, limit: usize) -> Result<web::BytesMut, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("cannot read the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::new(
                actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("request body is over the limit of {limit} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Finds the source through the cache.
pub async fn source_named(state: &AppState, name: &str) -> Result<Option<Source>, ApiError> {
    if let Some(cached) = state.sources.get(name) {
        return Ok(cached);
    }
    let owned = name.to_string();
    let found = state
        .db
        .read(move |conn| sources::find(conn, &owned))
        .await?;
    state.sources.put(name, found.clone());
    Ok(found)
}

/// Records a refused ingestion request and returns the error to answer with.
pub async fn refuse(
    state: &AppState,
    req: &HttpRequest,
    source: &str,
    err: IngestError,
) -> ApiError {
    let reason = match &err {
        IngestError::Unauthorized => "unauthorized",
        IngestError::SourceDisabled(_) => "disabled",
        IngestError::BadSignature => "bad_signature",
        _ => "other",
    };
    count(&state.metrics.ingest_refused, reason, 1);
    let o = origin(req);
    let details = json!({ "source": source, "reason": err.to_string(), "ip": o.ip, "user_agent": o.user_agent });
    let target = format!("source:{source}");
    if let Err(audit_err) = state
        .db
        .write(move |conn| {
            audit::append(
                conn,
                NewEvent::new(&Actor::system("ingest"), "ingest.rejected", target, details),
            )
        })
        .await
    {
        return audit_err.into();
    }
    err.into()
}

/// Checks token, state and signature; every refusal is audited.
pub async fn authorize(
    state: &AppState,
    req: &HttpRequest,
    name: &str,
    source: Option<Source>,
    body: &[u8],
) -> Result<Source, ApiError> {
    let token = token_of(req).unwrap_or_default();
    let source = match source {
        Some(s) if s.token_matches(&token) => s,
        _ => return Err(refuse(state, req, name, IngestError::Unauthorized).await),
    };
    if source.disabled_at.is_some() {
        return Err(refuse(
            state,
            req,
            name,
            IngestError::SourceDisabled(name.to_string()),
        )
        .await);
    }
    if let Some(secret) = &source.hmac_secret {
        let given = signature::HEADERS
            .iter()
            .find_map(|h| req.headers().get(*h).and_then(|v| v.to_str().ok()));
        if !given.is_some_and(|sig| signature::verify(secret, body, sig)) {
            return Err(refuse(state, req, name, IngestError::BadSignature).await);
        }
    }
    Ok(source)
}

fn count(family: &Family<OutcomeLabels, Counter>, outcome: &str, n: usize) {
    family
        .get_or_create(&OutcomeLabels {
            outcome: outcome.to_string(),
        })
        .inc_by(n as u64);
}

/// What an ingestion request returns.
#[derive(Serialize)]
pub struct IngestResult {
    /// Events in the request.
    pub events: usize,
    /// Alerts stored or updated (an event may hold several, e.g. Alertmanager).
    pub alerts: usize,
    /// Alerts that were repeats within the dedup window.
    pub deduplicated: usize,
    /// Cases opened by this request.
    pub cases_created: usize,
    pub results: Vec<Recorded>,
}

/// Normalizes and commits events for an authorized source.
pub async fn accept(
    state: &AppState,
    source: &Source,
    events: Vec<body::RawEvent>,
) -> Result<IngestResult, ApiError> {
    let events_len = events.len();
    if state.db.is_down() {
        // Refuse at once rather than queue behind connection timeouts; the client retries
        // after Retry-After, and the process finds the database again by itself.
        count(&state.metrics.ingest_refused, "unavailable", 1);
        return Err(ApiError::database_unavailable());
    }
    // Large batches are normalized off the async workers.
    let prepared = if events_len > 64 {
        let source = source.clone();
        let by = state.config.cases.correlate_by.clone();
        web::block(move || prepare(&source, &events, &by))
            .await
            .map_err(|e| ApiError::internal(&e))??
    } else {
        prepare(source, &events, &state.config.cases.correlate_by)?
    };
    let results = match state.writer.submit(source.id, &source.name, prepared).await {
        Ok(r) => r,
        Err(err) => {
            let outcome = if matches!(err, IngestError::Overloaded) {
                "overloaded"
            } else {
                "failed"
            };
            count(&state.metrics.ingest_refused, outcome, 1);
            return Err(err.into());
        }
    };
    let deduplicated = results.iter().filter(|r| r.deduplicated).count();
    count(
        &state.metrics.ingest_alerts,
        "stored",
        results.len() - deduplicated,
    );
    count(&state.metrics.ingest_alerts, "deduplicated", deduplicated);
    Ok(IngestResult {
        events: events_len,
        alerts: results.len(),
        deduplicated,
        cases_created: results.iter().filter(|r| r.case_created).count(),
        results,
    })
}

#[post("/ingest/{source}")]
async fn ingest(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let name = path.into_inner();
    let body = read_body(payload, state.config.ingest.max_body_bytes).await?;
    let cached = source_named(&state, &name).await?;
    let source = authorize(&state, &req, &name, cached, &body).await?;
    let events = body::split(&body, state.config.ingest.max_events_per_request).map_err(|e| {
        IngestError::Body {
            index: e.index,
            message: e.message,
        }
    })?;
    let result = accept(&state, &source, events).await?;
    Ok(HttpResponse::Ok().json(result))
}
