//! Analyst actions on one case from its page: assign, change status or severity,
//! comment, tag, merge other cases into it, start a manual playbook on it. Each is a form
//! POST checked for its CSRF token and the analyst role, answered with a 303 back to the
//! case (or the error page saying what was wrong).

use super::form::{case_ids, Fields};
use crate::alert::Severity;
use crate::audit::Actor;
use crate::auth::Permission;
use crate::cases::update::{self, CaseChange};
use crate::cases::{CaseError, CaseStatus, Disposition};
use crate::playbooks::engine::dispatch;
use crate::web::api::runs::engine;
use crate::web::console::page::{self, SignedIn};
use crate::web::error::ApiError;
use crate::web::AppState;
use actix_web::{post, web, HttpResponse};

/// Registers the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(act);
}

/// A form checked and ready: its fields, who acts, and the case.
struct Checked {
    fields: Fields,
    actor: Actor,
    username: String,
}

fn check(state: &AppState, session: &SignedIn, body: &[u8]) -> actix_web::Result<Checked> {
    let fields = Fields::parse(body);
    session.check_csrf(&state.pages, fields.csrf())?;
    session.require(&state.pages, Permission::WorkCases)?;
    Ok(Checked {
        fields,
        actor: Actor::user(&session.0.user.username),
        username: session.0.user.username.clone(),
    })
}

/// One route for every action keeps the CSRF and role checks in one place.
#[post("/cases/{id}/{action}")]
async fn act(
    state: web::Data<AppState>,
    session: SignedIn,
    path: web::Path<(i64, String)>,
    body: web::Bytes,
) -> actix_web::Result<HttpResponse> {
    let (id, action) = path.into_inner();
    let c = check(&state, &session, &body)?;
    let done = perform(&state, id, &action, c)
        .await
        .map_err(|e| page::fail(&state.pages, e))?;
    state.bus.wake();
    Ok(page::see_other(&format!("/cases/{id}?done={done}")))
}

async fn perform(
    state: &AppState,
    id: i64,
    action: &str,
    c: Checked,
) -> Result<&'static str, ApiError> {
    let Checked {
        fields: f,
        actor,
        username,
    } = c;
    let bus = state.bus.clone();
    let config = state.config.cases.clone();
    let db = &state.db;
    match action {
        "assign" => {
            let assignee = match f.get("assignee") {
                None | Some("none") => None,
                Some("me") => Some(username),
                Some(name) => Some(name.to_string()),
            };
            db.write(move |conn| update::assign(conn, &bus, &actor, id, assignee.as_deref()))
                .await?;
            Ok("assigned")
        }
        "status" => {
            let status: CaseStatus = f.required("status")?.parse()?;
            let disposition = f
                .get("disposition")
                .filter(|_| status == CaseStatus::Closed)
                .map(str::parse::<Disposition>)
                .transpose()?;
            let change = CaseChange {
                status: Some(status),
                disposition,
                ..CaseChange::default()
            };
            db.write(move |conn| update::apply(conn, &config, &bus, &actor, id, change))
                .await?;
            Ok("status")
        }
        "severity" => {
            let word = f.required("severity")?;
            let severity = Severity::from_word(word).ok_or_else(|| {
                ApiError::from(CaseError::invalid(
                    "severity",
                    format!("{word:?} is not a severity"),
                ))
            })?;
            let change = CaseChange {
                severity: Some(severity),
                ..CaseChange::default()
            };
            db.write(move |conn| update::apply(conn, &config, &bus, &actor, id, change))
                .await?;
            Ok("severity")
        }
        "comment" => {
            let body = f.raw("body").to_string();
            db.write(move |conn| update::comment(conn, &actor, id, &body))
                .await?;
            Ok("commented")
        }
        "tags" => {
            let split = |name: &str| -> Vec<String> {
                f.all(name)
                    .flat_map(|v| v.split(','))
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_string)
                    .collect()
            };
            let (add, remove) = (split("add"), split("remove"));
            if add.is_empty() && remove.is_empty() {
                return Err(ApiError::bad_request("name a tag to add or remove"));
            }
            let change = CaseChange {
                add_tags: Some(add),
                remove_tags: Some(remove),
                ..CaseChange::default()
            };
            db.write(move |conn| update::apply(conn, &config, &bus, &actor, id, change))
                .await?;
            Ok("tagged")
        }
        "merge" => {
            let others = case_ids("cases", f.all("cases"))?;
            db.write(move |conn| update::merge(conn, &actor, id, &others))
                .await?;
            Ok("merged")
        }
        "run" => {
            let engine = engine(state)?;
            let playbook = f.required("playbook")?.to_string();
            let inputs: serde_json::Value = match f.get("inputs") {
                None => serde_json::Value::Null,
                Some(text) => serde_json::from_str(text).map_err(|e| {
                    ApiError::bad_request(format!("`inputs` is not a JSON object: {e}"))
                })?,
            };
            let visible = engine.playbook(&playbook).is_some_and(|l| {
                l.playbook.trigger.on == crate::playbooks::definition::TriggerKind::Manual
            });
            if !visible {
                return Err(ApiError::bad_request(format!(
                    "`playbook`: {playbook:?} is not a playbook started by hand"
                )));
            }
            let requester = format!("user:{username}");
            dispatch::start_manual(&engine, &playbook, Some(id), &inputs, &requester, &actor)
                .await?;
            Ok("run")
        }
        other => Err(ApiError::not_found(format!("no case action {other:?}"))),
    }
}
