//! The one-time first-administrator page that `serve` links to when there are no users.

use super::{cookie, form_csrf, form_csrf_ok, FORM_CSRF_COOKIE};
use crate::auth::{password, setup, users, AuthError};
use crate::web::api::users::hash_off_thread;
use crate::web::error::ApiError;
use crate::web::extract::origin;
use crate::web::AppState;
use actix_web::cookie::SameSite;
use actix_web::http::{header, StatusCode};
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use serde::Deserialize;

/// Registers the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(show).service(submit);
}

#[derive(Deserialize)]
struct SetupQuery {
    token: Option<String>,
}

#[get("/setup")]
async fn show(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<SetupQuery>,
) -> HttpResponse {
    let token = query.into_inner().token.unwrap_or_default();
    let check = token.clone();
    match state
        .db
        .read(move |conn| setup::is_valid(conn, &check))
        .await
    {
        Ok(true) => form(&state, &req, StatusCode::OK, &token, "", "", None),
        Ok(false) => invalid(&state),
        Err(err) => state.pages.error(&err.into()),
    }
}

fn invalid(state: &AppState) -> HttpResponse {
    state.pages.message(
        StatusCode::GONE,
        "This setup link cannot be used",
        "It was already used, it expired, or Tocsin already has users. Restart `tocsin serve` \
         with an empty user table for a new link, or run `tocsin user add --role admin NAME`.",
    )
}

fn form(
    state: &AppState,
    req: &HttpRequest,
    status: StatusCode,
    token: &str,
    username: &str,
    email: &str,
    error: Option<&str>,
) -> HttpResponse {
    let (csrf, fresh) = form_csrf(req);
    let mut response = state.pages.render(
        status,
        "setup.html",
        minijinja::context! {
            csrf_token => csrf, token => token, username => username, email => email,
            error => error, min_password => password::MIN_LENGTH,
        },
    );
    if fresh {
        let _ = response.add_cookie(&cookie(
            FORM_CSRF_COOKIE,
            csrf,
            state.config.secure_cookies(),
            SameSite::Strict,
        ));
    }
    response
}

#[derive(Deserialize)]
struct SetupForm {
    token: String,
    csrf_token: String,
    username: String,
    #[serde(default)]
    email: String,
    password: String,
    password_confirm: String,
}

#[post("/setup")]
async fn submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Form<SetupForm>,
) -> HttpResponse {
    let f = body.into_inner();
    let again = |status, error: &str| {
        form(
            &state,
            &req,
            status,
            &f.token,
            &f.username,
            &f.email,
            Some(error),
        )
    };
    if !form_csrf_ok(&req, &f.csrf_token) {
        return again(
            StatusCode::FORBIDDEN,
            "The form expired or was not sent by this site. Please try again.",
        );
    }
    let checked = (|| {
        let username = users::normalize_username(&f.username)?;
        let email = users::normalize_email(Some(&f.email))?;
        users::check_password("password", &f.password)?;
        if f.password != f.password_confirm {
            return Err(AuthError::InvalidInput {
                field: "password_confirm",
                reason: "does not match the password".into(),
            });
        }
        Ok((username, email))
    })();
    let (username, email) = match checked {
        Ok(v) => v,
        Err(err) => return again(StatusCode::UNPROCESSABLE_ENTITY, &err.to_string()),
    };
    let password_hash = match hash_off_thread(f.password.clone()).await {
        Ok(h) => h,
        Err(err) => return state.pages.error(&err),
    };
    let token = f.token.clone();
    let ip = origin(&req).ip;
    let created = state
        .db
        .write(move |conn| {
            setup::complete(conn, &token, username, email, password_hash, ip.as_deref())
        })
        .await;
    match created {
        Ok(_) => HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/login?setup=done"))
            .finish(),
        Err(AuthError::SetupLinkInvalid) => invalid(&state),
        Err(err) => state.pages.error(&ApiError::from(err)),
    }
}
