//! The administration page (admin only): users and roles, ingestion sources and their
//! tokens, and a link to the e-mail outbox. Every change goes through the same domain
//! functions as the CLI and the API, which audit it in the change's transaction.

use crate::audit::Actor;
use crate::auth::roles::ALL_ROLES;
use crate::auth::users::{self, NewUser};
use crate::auth::{AuthError, Permission, Role};
use crate::ingest::sources::{self, SourceSecrets};
use crate::ingest::vendors::{SourceConfig, SourceKind, ALL_KINDS};
use crate::ingest::IngestError;
use crate::web::api::users::hash_off_thread;
use crate::web::console::page::{self, SignedIn};
use crate::web::error::ApiError;
use crate::web::AppState;
use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpResponse};
use serde::Deserialize;

/// Registers the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(show)
        .service(create_user)
        .service(set_role)
        .service(disable_user)
        .service(enable_user)
        .service(reset_password)
        .service(create_source)
        .service(rotate_source)
        .service(disable_source)
        .service(enable_source);
}

#[derive(Deserialize)]
struct Done {
    done: Option<String>,
    name: Option<String>,
}

/// The sentence for a finished change, from a fixed list so a crafted link cannot make
/// the page say anything else.
fn notice(done: &Done) -> Option<String> {
    let name = done.name.as_deref().unwrap_or("");
    let text = match done.done.as_deref()? {
        "user_created" => format!("User {name} was created."),
        "role" => format!("The role of {name} was changed."),
        "disabled" => format!("User {name} was disabled; their sessions ended."),
        "enabled" => format!("User {name} was enabled."),
        "password" => format!("The password of {name} was reset; their sessions ended."),
        "source_disabled" => format!("Source {name} was disabled."),
        "source_enabled" => format!("Source {name} was enabled."),
        _ => return None,
    };
    Some(text)
}

#[get("/admin")]
async fn show(
    state: web::Data<AppState>,
    session: SignedIn,
    query: web::Query<Done>,
) -> actix_web::Result<HttpResponse> {
    session.require(&state.pages, Permission::Administer)?;
    let notice = notice(&query);
    Ok(render_admin(&state, &session, StatusCode::OK, notice, None, None).await)
}

/// The page, with a notice, an error or a secret to show this once.
async fn render_admin(
    state: &AppState,
    session: &SignedIn,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
    secrets: Option<SourceSecrets>,
) -> HttpResponse {
    let lists = state
        .db
        .read(|conn| {
            let all_users = users::list(conn).map_err(ApiError::from)?;
            let all_sources = sources::list(conn).map_err(ApiError::from)?;
            Ok::<_, ApiError>((all_users, all_sources))
        })
        .await;
    let (all_users, all_sources) = match lists {
        Ok(l) => l,
        Err(err) => return state.pages.error(&err),
    };
    page::render_status(
        state,
        session,
        "admin",
        status,
        "admin.html",
        minijinja::context! {
            users => all_users,
            sources => all_sources,
            roles => ALL_ROLES.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
            kinds => ALL_KINDS.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
            notice => notice,
            error => error,
            secrets => secrets,
            ingest_base => format!("{}/api/v1/ingest/", state.public_url),
        },
    )
}

/// Checks the form's CSRF token and the permission; either failing is the 403 page and
/// nothing changes.
fn guard(
    state: &AppState,
    session: &SignedIn,
    csrf: &str,
    permission: Permission,
) -> actix_web::Result<Actor> {
    session.check_csrf(&state.pages, csrf)?;
    session.require(&state.pages, permission)?;
    Ok(Actor::user(&session.0.user.username))
}

/// A refused change: the page again with the reason, under the error's status.
async fn refused(state: &AppState, session: &SignedIn, err: impl Into<ApiError>) -> HttpResponse {
    let err: ApiError = err.into();
    render_admin(state, session, err.status, None, Some(err.message), None).await
}

fn done(code: &str, name: &str) -> HttpResponse {
    let name: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
    page::see_other(&format!("/admin?done={code}&name={name}"))
}

fn parse_role(raw: &str) -> Result<Role, AuthError> {
    raw.parse().map_err(
        |e: crate::auth::roles::UnknownRole| AuthError::InvalidInput {
            field: "role",
            reason: e.to_string(),
        },
    )
}

#[derive(Deserialize)]
struct CreateUserForm {
    csrf_token: String,
    username: String,
    #[serde(default)]
    email: String,
    role: String,
    password: String,
}

#[post("/admin/users")]
async fn create_user(
    state: web::Data<AppState>,
    session: SignedIn,
    form: web::Form<CreateUserForm>,
) -> actix_web::Result<HttpResponse> {
    let f = form.into_inner();
    let actor = guard(&state, &session, &f.csrf_token, Permission::ManageUsers)?;
    let checked = (|| {
        let username = users::normalize_username(&f.username)?;
        let email = users::normalize_email(Some(&f.email))?;
        let role = parse_role(&f.role)?;
        users::check_password("password", &f.password)?;
        Ok::<_, AuthError>((username, email, role))
    })();
    let (username, email, role) = match checked {
        Ok(c) => c,
        Err(err) => return Ok(refused(&state, &session, err).await),
    };
    let password_hash = match hash_off_thread(f.password).await {
        Ok(h) => h,
        Err(err) => return Ok(refused(&state, &session, err).await),
    };
    let name = username.clone();
    let result = state
        .db
        .write(move |conn| {
            users::create(
                conn,
                &actor,
                NewUser {
                    username,
                    email,
                    role,
                    password_hash,
                },
            )
        })
        .await;
    Ok(match result {
        Ok(_) => done("user_created", &name),
        Err(err) => refused(&state, &session, err).await,
    })
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf_token: String,
}

#[derive(Deserialize)]
struct RoleForm {
    csrf_token: String,
    role: String,
}

#[post("/admin/users/{name}/role")]
async fn set_role(
    state: web::Data<AppState>,
    session: SignedIn,
    path: web::Path<String>,
    form: web::Form<RoleForm>,
) -> actix_web::Result<HttpResponse> {
    let actor = guard(&state, &session, &form.csrf_token, Permission::ManageUsers)?;
    let name = path.into_inner();
    let role = match parse_role(&form.role) {
        Ok(r) => r,
        Err(err) => return Ok(refused(&state, &session, err).await),
    };
    let n = name.clone();
    let result = state
        .db
        .write(move |conn| users::set_role(conn, &actor, &n, role))
        .await;
    Ok(match result {
        Ok(_) => done("role", &name),
        Err(err) => refused(&state, &session, err).await,
    })
}

async fn user_disabled(
    state: &AppState,
    session: &SignedIn,
    name: String,
    csrf: &str,
    disabled: bool,
) -> actix_web::Result<HttpResponse> {
    let actor = guard(state, session, csrf, Permission::ManageUsers)?;
    let n = name.clone();
    let result = state
        .db
        .write(move |conn| users::set_disabled(conn, &actor, &n, disabled))
        .await;
    Ok(match result {
        Ok(_) => done(if disabled { "disabled" } else { "enabled" }, &name),
        Err(err) => refused(state, session, err).await,
    })
}

#[post("/admin/users/{name}/disable")]
async fn disable_user(
    state: web::Data<AppState>,
    session: SignedIn,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> actix_web::Result<HttpResponse> {
    user_disabled(&state, &session, path.into_inner(), &form.csrf_token, true).await
}

#[post("/admin/users/{name}/enable")]
async fn enable_user(
    state: web::Data<AppState>,
    session: SignedIn,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> actix_web::Result<HttpResponse> {
    user_disabled(&state, &session, path.into_inner(), &form.csrf_token, false).await
}

#[derive(Deserialize)]
struct PasswordForm {
    csrf_token: String,
    password: String,
}

#[post("/admin/users/{name}/password")]
async fn reset_password(
    state: web::Data<AppState>,
    session: SignedIn,
    path: web::Path<String>,
    form: web::Form<PasswordForm>,
) -> actix_web::Result<HttpResponse> {
    let f = form.into_inner();
    let actor = guard(&state, &session, &f.csrf_token, Permission::ManageUsers)?;
    let name = path.into_inner();
    if let Err(err) = users::check_password("password", &f.password) {
        return Ok(refused(&state, &session, err).await);
    }
    let hash = match hash_off_thread(f.password).await {
        Ok(h) => h,
        Err(err) => return Ok(refused(&state, &session, err).await),
    };
    let n = name.clone();
    let result = state
        .db
        .write(move |conn| users::set_password(conn, &actor, &n, &hash))
        .await;
    Ok(match result {
        Ok(()) => done("password", &name),
        Err(err) => refused(&state, &session, err).await,
    })
}

#[derive(Deserialize)]
struct CreateSourceForm {
    csrf_token: String,
    name: String,
    kind: String,
    /// A checkbox: present when ticked.
    signed: Option<String>,
    #[serde(default)]
    settings: String,
}

#[post("/admin/sources")]
async fn create_source(
    state: web::Data<AppState>,
    session: SignedIn,
    form: web::Form<CreateSourceForm>,
) -> actix_web::Result<HttpResponse> {
    let f = form.into_inner();
    let actor = guard(&state, &session, &f.csrf_token, Permission::Administer)?;
    let parsed = (|| {
        let kind: SourceKind =
            f.kind
                .parse()
                .map_err(|e: crate::ingest::vendors::UnknownKind| {
                    IngestError::invalid("kind", e.to_string())
                })?;
        let config: SourceConfig = match f.settings.trim() {
            "" => SourceConfig::default(),
            text => serde_json::from_str(text)
                .map_err(|e| IngestError::invalid("settings", format!("not valid JSON: {e}")))?,
        };
        Ok::<_, IngestError>((kind, config))
    })();
    let (kind, config) = match parsed {
        Ok(p) => p,
        Err(err) => return Ok(refused(&state, &session, err).await),
    };
    let name = f.name.trim().to_string();
    let signed = f.signed.is_some();
    let result = state
        .db
        .write(move |conn| sources::create(conn, &actor, &name, kind, config, signed))
        .await;
    Ok(match result {
        Ok(created) => {
            state.sources.forget(&created.source.name);
            let notice = format!(
                "Source {} was created. Copy its token now: it is shown only this once.",
                created.source.name
            );
            render_admin(
                &state,
                &session,
                StatusCode::OK,
                Some(notice),
                None,
                Some(created),
            )
            .await
        }
        Err(err) => refused(&state, &session, err).await,
    })
}

#[post("/admin/sources/{name}/rotate")]
async fn rotate_source(
    state: web::Data<AppState>,
    session: SignedIn,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> actix_web::Result<HttpResponse> {
    let actor = guard(&state, &session, &form.csrf_token, Permission::Administer)?;
    let name = path.into_inner();
    let n = name.clone();
    let result = state
        .db
        .write(move |conn| sources::rotate(conn, &actor, &n))
        .await;
    state.sources.forget(&name);
    Ok(match result {
        Ok(rotated) => {
            let notice = format!(
                "Source {name} has a new token; the old one no longer works. Copy it now: it is shown only this once."
            );
            render_admin(
                &state,
                &session,
                StatusCode::OK,
                Some(notice),
                None,
                Some(rotated),
            )
            .await
        }
        Err(err) => refused(&state, &session, err).await,
    })
}

async fn source_disabled(
    state: &AppState,
    session: &SignedIn,
    name: String,
    csrf: &str,
    disabled: bool,
) -> actix_web::Result<HttpResponse> {
    let actor = guard(state, session, csrf, Permission::Administer)?;
    let n = name.clone();
    let result = state
        .db
        .write(move |conn| sources::set_disabled(conn, &actor, &n, disabled))
        .await;
    state.sources.forget(&name);
    Ok(match result {
        Ok(_) => done(
            if disabled {
                "source_disabled"
            } else {
                "source_enabled"
            },
            &name,
        ),
        Err(err) => refused(state, session, err).await,
    })
}

#[post("/admin/sources/{name}/disable")]
async fn disable_source(
    state: web::Data<AppState>,
    session: SignedIn,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> actix_web::Result<HttpResponse> {
    source_disabled(&state, &session, path.into_inner(), &form.csrf_token, true).await
}

#[post("/admin/sources/{name}/enable")]
async fn enable_source(
    state: web::Data<AppState>,
    session: SignedIn,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> actix_web::Result<HttpResponse> {
    source_disabled(&state, &session, path.into_inner(), &form.csrf_token, false).await
}
