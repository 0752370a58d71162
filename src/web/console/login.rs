//! Sign-in and sign-out pages.

use super::{cookie, form_csrf, form_csrf_ok, FORM_CSRF_COOKIE};
use crate::auth::login::{self, Origin};
use crate::auth::{sessions, AuthError};
use crate::web::error::ApiError;
use crate::web::extract::{origin, MaybeSession};
use crate::web::AppState;
use actix_web::cookie::SameSite;
use actix_web::http::{header, StatusCode};
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::Duration;
use serde::Deserialize;

/// Registers the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(show).service(submit).service(logout);
}

#[derive(Deserialize)]
struct LoginQuery {
    next: Option<String>,
    setup: Option<String>,
}

/// Only local paths are followed after sign-in, never another site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/".to_string(),
    }
}

#[get("/login")]
async fn show(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<LoginQuery>,
) -> HttpResponse {
    let notice = query
        .setup
        .as_deref()
        .map(|_| "The administrator was created. Sign in to continue.");
    render(
        &state,
        &req,
        StatusCode::OK,
        query.next.as_deref(),
        "",
        None,
        notice,
    )
}

fn render(
    state: &AppState,
    req: &HttpRequest,
    status: StatusCode,
    next: Option<&str>,
    username: &str,
    error: Option<&str>,
    notice: Option<&str>,
) -> HttpResponse {
    let (csrf, fresh) = form_csrf(req);
    let mut response = state.pages.render(
        status,
        "login.html",
        minijinja::context! {
            csrf_token => csrf,
            next => safe_next(next),
            username => username,
            error => error,
            notice => notice,
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
struct LoginForm {
    username: String,
    password: String,
    csrf_token: String,
    #[serde(default)]
    next: Option<String>,
}

#[post("/login")]
async fn submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<LoginForm>,
) -> HttpResponse {
    let form = form.into_inner();
    if !form_csrf_ok(&req, &form.csrf_token) {
        return render(
            &state,
            &req,
            StatusCode::FORBIDDEN,
            form.next.as_deref(),
            &form.username,
            Some("The form expired or was not sent by this site. Please try again."),
            None,
        );
    }
    let lifetime = Duration::minutes(i64::from(state.config.auth.session_lifetime_minutes));
    let Origin { ip, user_agent } = origin(&req);
    let result = login::login(
        &state.db,
        &state.throttle,
        &form.username,
        form.password,
        Origin { ip, user_agent },
        lifetime,
    )
    .await;
    match result {
        Ok((_user, session)) => {
            let mut session_cookie = cookie(
                sessions::COOKIE,
                session.cookie_value,
                state.config.secure_cookies(),
                SameSite::Lax,
            );
            session_cookie.set_max_age(actix_web::cookie::time::Duration::minutes(i64::from(
                state.config.auth.session_lifetime_minutes,
            )));
            HttpResponse::SeeOther()
                .insert_header((header::LOCATION, safe_next(form.next.as_deref())))
                .cookie(session_cookie)
                .finish()
        }
        Err(err) => {
            if matches!(err, AuthError::InvalidCredentials) {
                state.metrics.logins_failed.inc();
            }
            let api = ApiError::from(err);
            let message = match api.status {
                StatusCode::UNAUTHORIZED => "Invalid username or password.".to_string(),
                _ => api.message.clone(),
            };
            let mut page = render(
                &state,
                &req,
                api.status,
                form.next.as_deref(),
                &form.username,
                Some(&message),
                None,
            );
            if let Some(secs) = api.retry_after {
                if let Ok(value) = header::HeaderValue::from_str(&secs.to_string()) {
                    page.headers_mut().insert(header::RETRY_AFTER, value);
                }
            }
            page
        }
    }
}

#[derive(Deserialize)]
struct LogoutForm {
    csrf_token: String,
}

#[post("/logout")]
async fn logout(
    state: web::Data<AppState>,
    req: HttpRequest,
    MaybeSession(session): MaybeSession,
    form: web::Form<LogoutForm>,
) -> HttpResponse {
    let redirect = |state: &AppState| {
        let mut gone = cookie(
            sessions::COOKIE,
            String::new(),
            state.config.secure_cookies(),
            SameSite::Lax,
        );
        gone.make_removal();
        HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/login"))
            .cookie(gone)
            .finish()
    };
    let Some(session) = session else {
        return redirect(&state);
    };
    if !crate::auth::secrets_equal(&form.csrf_token, &session.csrf_token) {
        return state.pages.error(&ApiError::from(AuthError::Csrf));
    }
    let Some(cookie_value) = req.cookie(sessions::COOKIE).map(|c| c.value().to_string()) else {
        return redirect(&state);
    };
    match login::logout(&state.db, cookie_value, &session.user).await {
        Ok(()) => redirect(&state),
        Err(err) => state.pages.error(&err.into()),
    }
}
