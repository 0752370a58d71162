//! `/api/v1/cases`: the case queue and case work.

use crate::alert::Severity;
use crate::auth::Permission;
use crate::cases::query::{self, Filter, Sort};
use crate::cases::update::{self, CaseChange};
use crate::cases::{CaseError, CaseStatus};
use crate::web::error::ApiError;
use crate::web::extract::Authenticated;
use crate::web::AppState;
use actix_web::{get, patch, post, web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

/// Registers the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(list)
        .service(show)
        .service(change)
        .service(comment)
        .service(assign)
        .service(merge);
}

/// Queue query string: `status=new,triage&severity=high&source=&assignee=&tag=&q=&sort=-last_seen&limit=50&cursor=`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    /// The least severity shown.
    severity: Option<Severity>,
    source: Option<String>,
    assignee: Option<String>,
    tag: Option<String>,
    q: Option<String>,
    #[serde(default)]
    sort: Sort,
    limit: Option<i64>,
    cursor: Option<String>,
    #[serde(default)]
    include_merged: bool,
}

#[get("/cases")]
async fn list(
    state: web::Data<AppState>,
    Authenticated(p): Authenticated,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::Read)?;
    let q = q.into_inner();
    let statuses = match q.status.as_deref() {
        Some(s) if !s.is_empty() => s
            .split(',')
            .map(|x| x.trim().parse::<CaseStatus>())
            .collect::<Result<Vec<_>, CaseError>>()?,
        _ => Vec::new(),
    };
    let filter = Filter {
        statuses,
        min_severity: q.severity,
        source: q.source,
        assignee: q.assignee,
        tag: q.tag,
        text: q.q,
        include_merged: q.include_merged,
    };
    let limit = q.limit.unwrap_or(50);
    let cursor = q.cursor;
    let page = state
        .db
        .read(move |conn| query::list(conn, &filter, q.sort, limit, cursor.as_deref()))
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

#[get("/cases/{id}")]
async fn show(
    state: web::Data<AppState>,
    Authenticated(p): Authenticated,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::Read)?;
    let id = path.into_inner();
    let (case, alerts, comments) = state
        .db
        .read(move |conn| {
            let case = query::get(conn, id)?;
            Ok::<_, CaseError>((
                case,
                query::case_alerts(conn, id)?,
                query::comments(conn, id)?,
            ))
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "case": case, "alerts": alerts, "comments": comments })))
}

#[patch("/cases/{id}")]
async fn change(
    state: web::Data<AppState>,
    Authenticated(p): Authenticated,
    path: web::Path<i64>,
    body: web::Json<CaseChange>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::WorkCases)?;
    let id = path.into_inner();
    let actor = p.actor();
    let config = state.config.cases.clone();
    let change = body.into_inner();
    let bus = state.bus.clone();
    let case = state
        .db
        .write(move |conn| update::apply(conn, &config, &bus, &actor, id, change))
        .await?;
    state.bus.wake();
    Ok(HttpResponse::Ok().json(case))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewComment {
    body: String,
}

#[post("/cases/{id}/comments")]
async fn comment(
    state: web::Data<AppState>,
    Authenticated(p): Authenticated,
    path: web::Path<i64>,
    body: web::Json<NewComment>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::WorkCases)?;
    let id = path.into_inner();
    let actor = p.actor();
    let text = body.into_inner().body;
    let comment = state
        .db
        .write(move |conn| update::comment(conn, &actor, id, &text))
        .await?;
    Ok(HttpResponse::Created().json(comment))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Assign {
    /// A username, or null to unassign.
    assignee: Option<String>,
}

#[post("/cases/{id}/assign")]
async fn assign(
    state: web::Data<AppState>,
    Authenticated(p): Authenticated,
    path: web::Path<i64>,
    body: web::Json<Assign>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::WorkCases)?;
    let id = path.into_inner();
    let actor = p.actor();
    let assignee = body.into_inner().assignee;
    let bus = state.bus.clone();
    let case = state
        .db
        .write(move |conn| update::assign(conn, &bus, &actor, id, assignee.as_deref()))
        .await?;
    state.bus.wake();
    Ok(HttpResponse::Ok().json(case))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Merge {
    /// Cases to merge into this one.
    cases: Vec<i64>,
}

#[post("/cases/{id}/merge")]
async fn merge(
    state: web::Data<AppState>,
    Authenticated(p): Authenticated,
    path: web::Path<i64>,
    body: web::Json<Merge>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::WorkCases)?;
    let id = path.into_inner();
    let actor = p.actor();
    let others = body.into_inner().cases;
    let case = state
        .db
        .write(move |conn| update::merge(conn, &actor, id, &others))
        .await?;
    Ok(HttpResponse::Ok().json(case))
}
