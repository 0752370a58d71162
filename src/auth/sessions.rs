//! Console sessions: a random id in an HttpOnly cookie, stored as its hash, with a
//! per-session CSRF token that forms and cookie-authenticated API calls must echo.

use super::users::{User, UserRow};
use super::{random_secret, secret_hash, AuthError};
use crate::db::schema::{sessions, users};
use crate::db::{now, DbConn};
use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

/// Name of the session cookie.
pub const COOKIE: &str = "tocsin_session";

/// A session just created: the cookie value and CSRF token exist only here and in the response.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub cookie_value: String,
    pub csrf_token: String,
    pub expires_at: NaiveDateTime,
}

/// A live session found from its cookie.
#[derive(Debug, Clone)]
pub struct ActiveSession {
    pub id_hash: String,
    pub user: User,
    pub csrf_token: String,
    pub last_seen_at: NaiveDateTime,
}

/// Starts a session for `user` that ends `lifetime` from now at the latest.
pub fn create(
    conn: &mut DbConn,
    user: &User,
    lifetime: Duration,
    ip: Option<&str>,
    user_agent: Option<&str>,
) -> Result<NewSession, AuthError> {
    let cookie_value = random_secret();
    let csrf_token = random_secret();
    let t = now();
    let expires_at = t + lifetime;
    diesel::insert_into(sessions::table)
        .values((
            sessions::id_hash.eq(secret_hash(&cookie_value)),
            sessions::user_id.eq(user.id),
            sessions::csrf_token.eq(&csrf_token),
            sessions::created_at.eq(t),
            sessions::expires_at.eq(expires_at),
            sessions::last_seen_at.eq(t),
            sessions::ip.eq(ip),
            sessions::user_agent.eq(user_agent.map(|ua| truncate(ua, 512))),
        ))
        .execute(conn)?;
    Ok(NewSession {
        cookie_value,
        csrf_token,
        expires_at,
    })
}

/// The live session for a cookie value: not expired, not idle past `idle`, owner active.
pub fn lookup(
    conn: &mut DbConn,
    cookie_value: &str,
    idle: Duration,
) -> Result<Option<ActiveSession>, AuthError> {
    let id_hash = secret_hash(cookie_value);
    let t = now();
    let found: Option<(String, NaiveDateTime, UserRow)> = sessions::table
        .inner_join(users::table)
        .filter(sessions::id_hash.eq(&id_hash))
        .filter(sessions::expires_at.gt(t))
        .filter(sessions::last_seen_at.gt(t - idle))
        .filter(users::disabled_at.is_null())
        .select((
            sessions::csrf_token,
            sessions::last_seen_at,
            UserRow::as_select(),
        ))
        .first(conn)
        .optional()?;
    Ok(found.map(|(csrf_token, last_seen_at, row)| ActiveSession {
        id_hash,
        user: row.into(),
        csrf_token,
        last_seen_at,
    }))
}

/// Records activity so the idle timeout restarts.
pub fn touch(conn: &mut DbConn, id_hash: &str) -> Result<(), AuthError> {
    diesel::update(sessions::table.find(id_hash))
        .set(sessions::last_seen_at.eq(now()))
        .execute(conn)?;
    Ok(())
}

/// Ends a session; returns whether one existed.
pub fn delete(conn: &mut DbConn, cookie_value: &str) -> Result<bool, AuthError> {
    let n = diesel::delete(sessions::table.find(secret_hash(cookie_value))).execute(conn)?;
    Ok(n > 0)
}

/// Removes sessions past their lifetime or idle timeout; returns how many.
pub fn purge_expired(conn: &mut DbConn, idle: Duration) -> Result<usize, AuthError> {
    let t = now();
    Ok(diesel::delete(
        sessions::table.filter(
            sessions::expires_at
                .le(t)
                .or(sessions::last_seen_at.le(t - idle)),
        ),
    )
    .execute(conn)?)
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
