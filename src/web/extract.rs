//! Request authentication, written once: a bearer API token or a session cookie.
//! Cookie-authenticated requests that change state must carry the session's CSRF token.

use super::error::ApiError;
use super::AppState;
use crate::auth::login::Origin;
use crate::auth::sessions::{self, ActiveSession};
use crate::auth::{secrets_equal, tokens, AuthError, AuthMethod, Principal};
use actix_web::dev::Payload;
use actix_web::http::{header, Method};
use actix_web::{web, FromRequest, HttpRequest};
use chrono::Duration;
use std::future::Future;
use std::pin::Pin;

/// Header that carries the CSRF token on cookie-authenticated API calls.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Sessions and API tokens record their use at most this often, so reads stay reads.
const TOUCH_EVERY_SECS: i64 = 60;

/// Whether a last-use time is old enough to be written again.
fn stale(last: Option<chrono::NaiveDateTime>) -> bool {
    last.is_none_or(|t| crate::db::now() - t > Duration::seconds(TOUCH_EVERY_SECS))
}

/// An authenticated API caller.
pub struct Authenticated(pub Principal);

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { authenticate(&req).await.map(Authenticated) })
    }
}

/// The console session, if the request has a live one; pages decide what to do without.
pub struct MaybeSession(pub Option<ActiveSession>);

impl FromRequest for MaybeSession {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = app_state(&req)?;
            match req.cookie(sessions::COOKIE) {
                Some(cookie) => Ok(MaybeSession(
                    session(&state, cookie.value().to_string()).await?,
                )),
                None => Ok(MaybeSession(None)),
            }
        })
    }
}

fn app_state(req: &HttpRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::internal(&"application state missing"))
}

async fn authenticate(req: &HttpRequest) -> Result<Principal, ApiError> {
    let state = app_state(req)?;
    if req.headers().contains_key(header::AUTHORIZATION) {
        let secret = bearer_token(req).ok_or_else(|| {
            ApiError::from(AuthError::Unauthenticated)
                .with_message("the Authorization header must be `Bearer <API token>`")
        })?;
        let found = state
            .db
            .read(move |conn| tokens::lookup(conn, &secret))
            .await?;
        let Some((user, token)) = found else {
            return Err(ApiError::from(AuthError::Unauthenticated)
                .with_message("invalid, revoked or expired API token"));
        };
        if stale(token.last_used_at) {
            let id = token.id;
            state.db.write(move |conn| tokens::touch(conn, id)).await?;
        }
        return Ok(Principal {
            user,
            method: AuthMethod::Token {
                id: token.id,
                name: token.name,
            },
        });
    }
    let cookie = req
        .cookie(sessions::COOKIE)
        .ok_or(AuthError::Unauthenticated)?;
    let active = session(&state, cookie.value().to_string())
        .await?
        .ok_or(AuthError::Unauthenticated)?;
    if !is_safe(req.method()) {
        let sent = req
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !secrets_equal(sent, &active.csrf_token) {
            return Err(AuthError::Csrf.into());
        }
    }
    Ok(Principal {
        user: active.user,
        method: AuthMethod::Session {
            csrf_token: active.csrf_token,
        },
    })
}

/// Looks a session up and restarts its idle timer when it was last seen a while ago.
async fn session(
    state: &AppState,
    cookie_value: String,
) -> Result<Option<ActiveSession>, ApiError> {
    let idle = Duration::minutes(i64::from(state.config.auth.session_idle_minutes));
    let found = state
        .db
        .read(move |conn| sessions::lookup(conn, &cookie_value, idle))
        .await?;
    if let Some(active) = &found {
        if stale(Some(active.last_seen_at)) {
            let id_hash = active.id_hash.clone();
            state
                .db
                .write(move |conn| sessions::touch(conn, &id_hash))
                .await?;
        }
    }
    Ok(found)
}

/// The token of an `Authorization: Bearer <token>` header, if the request has one.
pub fn bearer_token(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(|s| s.trim().to_string())
}

/// Methods that must not change state, so they need no CSRF token.
pub fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The client's address and user agent, for audit events. The peer address is used, not
/// `X-Forwarded-For`, which any client can set.
pub fn origin(req: &HttpRequest) -> Origin {
    Origin {
        ip: req.peer_addr().map(|a| a.ip().to_string()),
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(512).collect()),
    }
}
