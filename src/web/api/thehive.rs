//! `POST /api/v1/alert`: TheHive's alert-creation endpoint, so tools that already send to
//! TheHive (with `Authorization: Bearer <API key>`) can point at Tocsin unchanged. The key
//! is the ingestion token of a `thehive` source. The answer mimics TheHive's: `201` with
//! the alert as TheHive would return it. A repeat of the same type/source/sourceRef is
//! counted on the existing alert (TheHive would refuse it) and answered the same way.

use super::ingest::{accept, read_body, refuse};
use crate::ingest::sources;
use crate::ingest::vendors::SourceKind;
use crate::ingest::{body, IngestError};
use crate::web::error::ApiError;
use crate::web::extract::bearer_token;
use crate::web::AppState;
use actix_web::{post, web, HttpRequest, HttpResponse};
use serde_json::json;

/// Registers the route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(create_alert);
}

#[post("/alert")]
async fn create_alert(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload, state.config.ingest.max_body_bytes).await?;
    let key = bearer_token(&req).unwrap_or_default();
    let lookup = key.clone();
    let found = if key.is_empty() {
        None
    } else {
        state
            .db
            .read(move |conn| sources::find_by_token(conn, &lookup))
            .await?
    };
    let source = match found {
        Some(s) if s.kind == SourceKind::Thehive => s,
        Some(s) => {
            return Err(refuse(
                &state,
                &req,
                &s.name,
                IngestError::invalid(
                    "Authorization",
                    "this key belongs to a source that is not of kind thehive",
                ),
            )
            .await)
        }
        None => return Err(refuse(&state, &req, "thehive", IngestError::Unauthorized).await),
    };
    if source.disabled_at.is_some() {
        return Err(refuse(
            &state,
            &req,
            &source.name,
            IngestError::SourceDisabled(source.name.clone()),
        )
        .await);
    }
    let events = body::split(&body, 1).map_err(|e| IngestError::Body {
        index: e.index,
        message: e.message,
    })?;
    let event = events.first().map(|e| e.value.clone()).unwrap_or_default();
    let result = accept(&state, &source, events).await?;
    let recorded = result.results.first().copied();
    Ok(HttpResponse::Created().json(json!({
        "_id": recorded.map(|r| format!("~{}", r.alert_id)),
        "_type": "Alert",
        "_createdAt": chrono::Utc::now().timestamp_millis(),
        "type": event.get("type"),
        "source": event.get("source"),
        "sourceRef": event.get("sourceRef"),
        "title": event.get("title"),
        "severity": event.get("severity"),
        "status": "New",
        "caseId": recorded.map(|r| r.case_id),
        "deduplicated": recorded.map(|r| r.deduplicated),
    })))
}
