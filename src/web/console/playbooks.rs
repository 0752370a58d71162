//! Playbooks and integrations in the console: what is loaded, each definition with its
//! file and what the validator says of the file now, which secrets are configured (names
//! only), enabling and disabling a playbook (admins), and starting a manual run.

use crate::auth::Permission;
use crate::integrations::definition::{Auth, Integration};
use crate::playbooks::engine::switches::{self, Switch};
use crate::playbooks::engine::view::{self, RunFilter};
use crate::playbooks::engine::{dispatch, Engine, EngineError};
use crate::playbooks::library::{self, FileStatus, Survey};
use crate::playbooks::validate::Policy;
use crate::web::console::page::{self, SignedIn};
use crate::web::console::step_graph;
use crate::web::error::ApiError;
use crate::web::AppState;
use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// Registers the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(list)
        .service(show)
        .service(enable)
        .service(disable)
        .service(start_run)
        .service(integrations)
        .service(integration);
}

/// The engine, or the 503 page when this process runs none.
fn engine(state: &AppState) -> actix_web::Result<Arc<Engine>> {
    crate::web::api::runs::engine(state).map_err(|e| page::fail(&state.pages, e))
}

/// Validates the files on disk now, off the async threads (it reads every file).
async fn survey(state: &AppState) -> actix_web::Result<Survey> {
    let pc = state.config.playbooks.clone();
    let policy = Policy {
        allow_approval_waivers: pc.allow_approval_waivers,
        allow_approve_on_timeout: pc.allow_approve_on_timeout,
    };
    web::block(move || library::survey(&pc.dir, &pc.integrations_dir, policy))
        .await
        .map_err(|e| page::fail(&state.pages, ApiError::internal(&e)))
}

async fn all_switches(state: &AppState) -> actix_web::Result<HashMap<String, Switch>> {
    state
        .db
        .read(|c| switches::all(c).map_err(EngineError::from))
        .await
        .map_err(|e| page::fail(&state.pages, e))
}

/// What the validator says of a file, for templates.
#[derive(Serialize)]
struct Validation {
    /// The file, relative to nothing (as configured).
    file: Option<String>,
    valid: bool,
    problems: Vec<String>,
}

impl Validation {
    fn of(status: Option<&FileStatus>) -> Validation {
        match status {
            Some(f) => Validation {
                file: Some(f.file.display().to_string()),
                valid: f.problems.is_empty(),
                problems: f.problems.iter().map(ToString::to_string).collect(),
            },
            None => Validation {
                file: None,
                valid: false,
                problems: vec!["no file in the playbook folder declares this id any more".into()],
            },
        }
    }
}

/// A loaded playbook as the list shows it.
#[derive(Serialize)]
struct PlaybookRow {
    id: String,
    version: u32,
    description: Option<String>,
    trigger: String,
    steps: usize,
    gated: usize,
    enabled: bool,
    switch: Option<Switch>,
    validation: Validation,
}

fn trigger_text(t: &crate::playbooks::definition::Trigger) -> String {
    let on = serde_json::to_value(t.on)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    match &t.schedule {
        Some(cron) => format!("{on} ({cron} UTC)"),
        None => on,
    }
}

#[derive(Deserialize)]
struct ListQuery {
    switched: Option<String>,
}

#[get("/playbooks")]
async fn list(
    state: web::Data<AppState>,
    session: SignedIn,
    query: web::Query<ListQuery>,
) -> actix_web::Result<HttpResponse> {
    let engine = engine(&state)?;
    let survey = survey(&state).await?;
    let switches = all_switches(&state).await?;
    let mut rows: Vec<PlaybookRow> = engine
        .playbooks()
        .map(|l| {
            let pb = &l.playbook;
            let switch = switches.get(&pb.id).cloned();
            PlaybookRow {
                id: pb.id.clone(),
                version: pb.version,
                description: pb.description.clone(),
                trigger: trigger_text(&pb.trigger),
                steps: pb.steps.len(),
                gated: pb.steps.iter().filter(|s| s.approval.is_some()).count(),
                enabled: switch.as_ref().is_none_or(Switch::enabled),
                switch,
                validation: Validation::of(survey.playbook(&pb.id)),
            }
        })
        .collect();
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    // Files that are broken or were added after the start: not loaded, but worth seeing.
    let unloaded: Vec<Validation> = survey
        .playbooks
        .iter()
        .filter(|f| {
            f.id.as_deref()
                .is_none_or(|id| engine.playbook(id).is_none())
        })
        .map(|f| Validation::of(Some(f)))
        .collect();
    Ok(page::render(
        &state,
        &session,
        "playbooks",
        "playbooks.html",
        minijinja::context! {
            tab => "playbooks",
            playbooks => rows,
            unloaded => unloaded,
            notice => query.switched.clone(),
        },
    ))
}

#[get("/playbooks/{name}")]
async fn show(
    state: web::Data<AppState>,
    session: SignedIn,
    path: web::Path<String>,
    query: web::Query<ListQuery>,
) -> actix_web::Result<HttpResponse> {
    let notice = query.switched.clone().map(|s| format!("Playbook {s}."));
    render_playbook(&state, &session, &path, StatusCode::OK, notice, None, None).await
}

/// What the manual-run form held, to give it back with an error.
#[derive(Serialize, Default)]
struct RunFormValues {
    case_id: String,
    inputs: String,
}

async fn render_playbook(
    state: &AppState,
    session: &SignedIn,
    name: &str,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
    form: Option<RunFormValues>,
) -> actix_web::Result<HttpResponse> {
    let engine = engine(state)?;
    let Some(loaded) = engine.playbook(name).cloned() else {
        return Err(page::fail(
            &state.pages,
            EngineError::PlaybookNotFound(name.to_string()),
        ));
    };
    let pb = &loaded.playbook;
    let survey = survey(state).await?;
    let switch = all_switches(state).await?.remove(&pb.id);
    let id = pb.id.clone();
    let recent = state
        .db
        .read(move |conn| {
            let filter = RunFilter {
                playbook: Some(id),
                ..RunFilter::default()
            };
            view::list(conn, &filter, 10)
        })
        .await
        .map_err(|e| page::fail(&state.pages, e))?;
    let file = survey.playbook(&pb.id);
    let graph = step_graph::render(pb, None, &format!("Steps of playbook {}", pb.id));
    let steps: Vec<Value> = pb
        .steps
        .iter()
        .map(|s| {
            serde_json::json!({
                "id": s.id,
                "uses": s.uses,
                "needs": s.needs,
                "if": s.condition,
                "foreach": s.foreach,
                "gated": s.approval.is_some(),
            })
        })
        .collect();
    let role = session.0.user.role;
    let form = form.unwrap_or_else(|| RunFormValues {
        inputs: "{}".into(),
        ..RunFormValues::default()
    });
    Ok(page::render_status(
        state,
        session,
        "playbooks",
        status,
        "playbook.html",
        minijinja::context! {
            pb => pb,
            trigger => trigger_text(&pb.trigger),
            steps => steps,
            enabled => switch.as_ref().is_none_or(Switch::enabled),
            switch => switch,
            validation => Validation::of(file),
            yaml => file.map(|f| f.text.clone()),
            graph => minijinja::Value::from_safe_string(graph),
            recent => recent,
            can_switch => role.allows(Permission::Administer),
            can_run => role.allows(Permission::WorkCases),
            form => form,
            notice => notice,
            error => error,
        },
    ))
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf_token: String,
}

#[post("/playbooks/{name}/enable")]
async fn enable(
    state: web::Data<AppState>,
    session: SignedIn,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> actix_web::Result<HttpResponse> {
    switch(&state, &session, &path, &form.csrf_token, true).await
}

#[post("/playbooks/{name}/disable")]
async fn disable(
    state: web::Data<AppState>,
    session: SignedIn,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> actix_web::Result<HttpResponse> {
    switch(&state, &session, &path, &form.csrf_token, false).await
}

async fn switch(
    state: &AppState,
    session: &SignedIn,
    name: &str,
    csrf: &str,
    enabled: bool,
) -> actix_web::Result<HttpResponse> {
    session.check_csrf(&state.pages, csrf)?;
    session.require(&state.pages, Permission::Administer)?;
    let engine = engine(state)?;
    let actor = crate::audit::Actor::user(&session.0.user.username);
    switches::switch(&engine, name, enabled, &actor)
        .await
        .map_err(|e| page::fail(&state.pages, e))?;
    let word = if enabled { "enabled" } else { "disabled" };
    let name: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
    Ok(page::see_other(&format!(
        "/playbooks/{name}?switched={word}"
    )))
}

#[derive(Deserialize)]
struct RunForm {
    csrf_token: String,
    #[serde(default)]
    case_id: String,
    #[serde(default)]
    inputs: String,
}

impl RunForm {
    /// The case number (blank for none) and the inputs (blank for none), or what is wrong
    /// with them, for the form to show.
    fn parse(&self) -> Result<(Option<i64>, Value), String> {
        let case_id = match self.case_id.trim() {
            "" => None,
            text => Some(
                text.trim_start_matches('#')
                    .parse::<i64>()
                    .map_err(|_| format!("Case: {text:?} is not a case number"))?,
            ),
        };
        let inputs = match self.inputs.trim() {
            "" => Value::Null,
            text => serde_json::from_str(text).map_err(|e| format!("Inputs: not JSON ({e})"))?,
        };
        Ok((case_id, inputs))
    }
}

#[post("/playbooks/{name}/run")]
async fn start_run(
    state: web::Data<AppState>,
    session: SignedIn,
    path: web::Path<String>,
    form: web::Form<RunForm>,
) -> actix_web::Result<HttpResponse> {
    let form = form.into_inner();
    session.check_csrf(&state.pages, &form.csrf_token)?;
    session.require(&state.pages, Permission::WorkCases)?;
    let engine = engine(&state)?;
    let name = path.into_inner();
    let values = RunFormValues {
        case_id: form.case_id.clone(),
        inputs: form.inputs.clone(),
    };
    let (case_id, inputs) = match form.parse() {
        Ok(parsed) => parsed,
        Err(message) => {
            return render_playbook(
                &state,
                &session,
                &name,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some(message),
                Some(values),
            )
            .await;
        }
    };
    let user = &session.0.user;
    let requester = format!("user:{}", user.username);
    let actor = crate::audit::Actor::user(&user.username);
    match dispatch::start_manual(&engine, &name, case_id, &inputs, &requester, &actor).await {
        Ok(id) => Ok(page::see_other(&format!("/runs/{id}"))),
        Err(EngineError::PlaybookNotFound(n)) => {
            Err(page::fail(&state.pages, EngineError::PlaybookNotFound(n)))
        }
        Err(err) => {
            let api = ApiError::from(err);
            render_playbook(
                &state,
                &session,
                &name,
                api.status,
                None,
                Some(api.message),
                Some(values),
            )
            .await
        }
    }
}

/// A loaded integration as the console shows it (no secret value ever).
#[derive(Serialize)]
struct IntegrationRow {
    id: String,
    name: String,
    description: Option<String>,
    docs: Option<String>,
    base_url: String,
    auth: &'static str,
    actions: Vec<Value>,
    settings: Vec<Value>,
    /// Secret names with whether each is set.
    secrets: Vec<Value>,
    secrets_set: usize,
    limits: crate::integrations::definition::Limits,
    used_by: Vec<String>,
    validation: Validation,
}

fn auth_name(auth: &Auth) -> &'static str {
    match auth {
        Auth::None => "none",
        Auth::ApiKeyHeader { .. } => "API key header",
        Auth::Bearer { .. } => "bearer token",
        Auth::Basic { .. } => "basic",
        Auth::Oauth2ClientCredentials { .. } => "OAuth 2.0 client credentials",
    }
}

fn integration_row(engine: &Engine, i: &Integration, survey: &Survey) -> IntegrationRow {
    let names = engine.integration_secrets(&i.id);
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let set = engine.executor_secrets().names_configured(&refs);
    let secrets: Vec<Value> = names
        .iter()
        .map(|n| serde_json::json!({ "name": n, "set": set.contains(&n.as_str()) }))
        .collect();
    let prefix = format!("{}.", i.id);
    let mut used_by: Vec<String> = engine
        .playbooks()
        .filter(|l| l.playbook.steps.iter().any(|s| s.uses.starts_with(&prefix)))
        .map(|l| l.playbook.id.clone())
        .collect();
    used_by.sort();
    IntegrationRow {
        id: i.id.clone(),
        name: i.name.clone(),
        description: i.description.clone(),
        docs: i.docs.clone(),
        base_url: engine
            .integration_base_url(&i.id)
            .unwrap_or_else(|| i.base_url.clone()),
        auth: auth_name(&i.auth),
        actions: i
            .actions
            .iter()
            .map(|(name, a)| {
                serde_json::json!({
                    "name": name,
                    "kind": a.kind,
                    "method": a.method,
                    "path": a.path,
                    "inputs": a.inputs,
                    "idempotent": a.is_idempotent(),
                    "description": a.description,
                })
            })
            .collect(),
        settings: i
            .settings
            .iter()
            .map(|(name, s)| serde_json::json!({ "name": name, "description": s.description }))
            .collect(),
        secrets_set: set.len(),
        secrets,
        limits: i.limits.clone(),
        used_by,
        validation: Validation::of(survey.integration(&i.id)),
    }
}

#[get("/integrations")]
async fn integrations(
    state: web::Data<AppState>,
    session: SignedIn,
) -> actix_web::Result<HttpResponse> {
    let engine = engine(&state)?;
    let survey = survey(&state).await?;
    let mut rows: Vec<IntegrationRow> = engine
        .integrations()
        .map(|i| integration_row(&engine, i, &survey))
        .collect();
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    let unloaded: Vec<Validation> = survey
        .integrations
        .iter()
        .filter(|f| {
            f.id.as_deref()
                .is_none_or(|id| !engine.integrations().any(|i| i.id == id))
        })
        .map(|f| Validation::of(Some(f)))
        .collect();
    Ok(page::render(
        &state,
        &session,
        "playbooks",
        "integrations.html",
        minijinja::context! {
            tab => "integrations",
            integrations => rows,
            unloaded => unloaded,
        },
    ))
}

#[get("/integrations/{name}")]
async fn integration(
    state: web::Data<AppState>,
    session: SignedIn,
    path: web::Path<String>,
) -> actix_web::Result<HttpResponse> {
    let engine = engine(&state)?;
    let survey = survey(&state).await?;
    let Some(def) = engine.integrations().find(|i| i.id == *path).cloned() else {
        return Err(page::fail(
            &state.pages,
            ApiError::not_found(format!("no integration {:?} is loaded", path.as_str())),
        ));
    };
    let row = integration_row(&engine, &def, &survey);
    let yaml = survey.integration(&def.id).map(|f| f.text.clone());
    Ok(page::render(
        &state,
        &session,
        "playbooks",
        "integration.html",
        minijinja::context! {
            i => row,
            yaml => yaml,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(case_id: &str, inputs: &str) -> RunForm {
        RunForm {
            csrf_token: String::new(),
            case_id: case_id.into(),
            inputs: inputs.into(),
        }
    }

    #[test]
    fn run_form_reads_a_case_number_and_json_inputs_or_says_what_is_wrong() {
        assert_eq!(form(" ", "").parse(), Ok((None, Value::Null)));
        assert_eq!(
            form("#12", r#"{"ip": "192.0.2.1"}"#).parse(),
            Ok((Some(12), serde_json::json!({"ip": "192.0.2.1"})))
        );
        assert_eq!(
            form("twelve", "").parse(),
            Err("Case: \"twelve\" is not a case number".to_string())
        );
        let err = form("", "{oops").parse().unwrap_err();
        assert!(err.starts_with("Inputs: not JSON ("), "{err}");
    }
}
