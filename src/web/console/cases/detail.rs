//! `GET /cases/{id}`: a case's summary, alerts, observables with enrichment verdicts, runs,
//! approvals, comments and one timeline of everything; `GET /cases/{id}/alerts/{alert}`:
//! one alert with its raw payload.

use crate::alert::Severity;
use crate::auth::Permission;
use crate::cases::activity;
use crate::cases::query;
use crate::cases::{choices, CaseError, CaseStatus, Disposition};
use crate::playbooks::definition::TriggerKind;
use crate::web::console::page::{self, SignedIn};
use crate::web::AppState;
use actix_web::{get, web, HttpResponse};
use serde::{Deserialize, Serialize};

/// Registers the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(detail).service(alert);
}

/// Most alerts listed on a case's page (newest first); the rest are counted.
pub const ALERTS_SHOWN: i64 = 100;

/// A playbook that can be started by hand from a case.
#[derive(Serialize)]
struct ManualPlaybook {
    id: String,
    description: Option<String>,
    inputs: Vec<String>,
}

#[derive(Deserialize)]
struct Notice {
    done: Option<String>,
}

/// What a finished action says on the page it returns to.
fn notice(done: Option<&str>) -> Option<String> {
    Some(
        match done? {
            "assigned" => "Assignee changed.",
            "status" => "Status changed.",
            "severity" => "Severity changed.",
            "commented" => "Comment added.",
            "tagged" => "Tags changed.",
            "merged" => "Cases merged into this one.",
            "run" => "Playbook run started.",
            _ => return None,
        }
        .to_string(),
    )
}

/// Everything the case page shows, read in one go (also used by the benchmark).
#[derive(Serialize)]
pub struct CasePage {
    pub case: crate::cases::Case,
    pub alerts: Vec<query::AlertView>,
    pub comments: Vec<query::Comment>,
    pub activity: activity::Activity,
    pub users: Vec<String>,
}

/// Reads case `id` for its page.
pub fn read(conn: &mut crate::db::DbConn, id: i64) -> Result<CasePage, CaseError> {
    let case = query::get(conn, id)?;
    let alerts = query::recent_alerts(conn, id, ALERTS_SHOWN)?;
    let comments = query::comments(conn, id)?;
    let activity = activity::read(conn, id, &alerts, &comments)?;
    let (_, users) = choices::filter_choices(conn)?;
    Ok(CasePage {
        case,
        alerts,
        comments,
        activity,
        users,
    })
}

#[get("/cases/{id}")]
async fn detail(
    state: web::Data<AppState>,
    session: SignedIn,
    path: web::Path<i64>,
    done: web::Query<Notice>,
) -> actix_web::Result<HttpResponse> {
    session.require(&state.pages, Permission::Read)?;
    let id = path.into_inner();
    let data = state
        .db
        .read(move |conn| read(conn, id))
        .await
        .map_err(|e| page::fail(&state.pages, e))?;
    let mut manual: Vec<ManualPlaybook> = state
        .engine
        .iter()
        .flat_map(|e| e.playbooks())
        .filter(|l| l.playbook.trigger.on == TriggerKind::Manual)
        .map(|l| ManualPlaybook {
            id: l.playbook.id.clone(),
            description: l.playbook.description.clone(),
            inputs: l.playbook.inputs.iter().map(|i| i.name.clone()).collect(),
        })
        .collect();
    manual.sort_by(|a, b| a.id.cmp(&b.id));
    let statuses: Vec<&str> = CaseStatus::ALL.iter().map(|s| s.as_str()).collect();
    let severities: Vec<&str> = Severity::ALL.iter().map(|s| s.as_str()).collect();
    let dispositions: Vec<&str> = Disposition::ALL.iter().map(|d| d.as_str()).collect();
    let hidden_alerts = i64::from(data.case.alert_count) - data.alerts.len() as i64;
    Ok(page::render(
        &state,
        &session,
        "cases",
        "case.html",
        minijinja::context! {
            case => data.case,
            alerts => data.alerts,
            hidden_alerts => hidden_alerts.max(0),
            comments => data.comments,
            runs => data.activity.runs,
            gates => data.activity.gates,
            observables => data.activity.observables,
            timeline => data.activity.timeline,
            users => data.users,
            manual => manual,
            statuses => statuses,
            severities => severities,
            dispositions => dispositions,
            notice => notice(done.done.as_deref()),
        },
    ))
}

#[get("/cases/{id}/alerts/{alert}")]
async fn alert(
    state: web::Data<AppState>,
    session: SignedIn,
    path: web::Path<(i64, i64)>,
) -> actix_web::Result<HttpResponse> {
    session.require(&state.pages, Permission::Read)?;
    let (case_id, alert_id) = path.into_inner();
    let view = state
        .db
        .read(move |conn| query::alert(conn, alert_id))
        .await
        .map_err(|e| page::fail(&state.pages, e))?;
    if view.case_id != case_id {
        return Err(page::fail(&state.pages, CaseError::AlertNotFound(alert_id)));
    }
    let raw = view
        .raw
        .as_ref()
        .and_then(|r| serde_json::from_str::<serde_json::Value>(r.get()).ok())
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .or_else(|| view.raw.as_ref().map(|r| r.get().to_string()));
    Ok(page::render(
        &state,
        &session,
        "cases",
        "case_alert.html",
        minijinja::context! { alert => view, raw => raw, case_id => case_id },
    ))
}
