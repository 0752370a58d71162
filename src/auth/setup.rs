//! First-admin setup: while no user exists, `serve` issues a one-time link that creates
//! the first admin. No default password is ever created.

use super::users::{self, NewUser, User};
use super::{random_secret, secret_hash, AuthError, Role};
use crate::audit::{self, Actor, NewEvent};
use crate::db::schema::setup_tokens;
use crate::db::{now, DbConn};
use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use serde_json::json;

/// Issues a setup link secret if there are no users yet; earlier unused links are voided.
pub fn issue_if_no_users(
    conn: &mut DbConn,
    lifetime: Duration,
) -> Result<Option<String>, AuthError> {
    if users::count(conn)? > 0 {
        return Ok(None);
    }
    let t = now();
    diesel::update(setup_tokens::table.filter(setup_tokens::used_at.is_null()))
        .set(setup_tokens::used_at.eq(t))
        .execute(conn)?;
    let secret = random_secret();
    diesel::insert_into(setup_tokens::table)
        .values((
            setup_tokens::token_hash.eq(secret_hash(&secret)),
            setup_tokens::created_at.eq(t),
            setup_tokens::expires_at.eq(t + lifetime),
        ))
        .execute(conn)?;
    audit::append(
        conn,
        NewEvent::new(
            &Actor::system("serve"),
            "setup.link_issued",
            "setup",
            json!({ "expires_at": (t + lifetime).and_utc().to_rfc3339() }),
        ),
    )?;
    Ok(Some(secret))
}

/// Whether `secret` is a live setup link while no users exist.
pub fn is_valid(conn: &mut DbConn, secret: &str) -> Result<bool, AuthError> {
    if users::count(conn)? > 0 {
        return Ok(false);
    }
    let found: Option<NaiveDateTime> = setup_tokens::table
        .find(secret_hash(secret))
        .filter(setup_tokens::used_at.is_null())
        .filter(setup_tokens::expires_at.gt(now()))
        .select(setup_tokens::expires_at)
        .first(conn)
        .optional()?;
    Ok(found.is_some())
}

/// Spends the link and creates the first admin, in the caller's transaction.
pub fn complete(
    conn: &mut DbConn,
    secret: &str,
    username: String,
    email: Option<String>,
    password_hash: String,
    ip: Option<&str>,
) -> Result<User, AuthError> {
    if !is_valid(conn, secret)? {
        return Err(AuthError::SetupLinkInvalid);
    }
    diesel::update(setup_tokens::table.find(secret_hash(secret)))
        .set(setup_tokens::used_at.eq(now()))
        .execute(conn)?;
    let actor = Actor::system("setup-link");
    let user = users::create(
        conn,
        &actor,
        NewUser {
            username,
            email,
            role: Role::Admin,
            password_hash,
        },
    )?;
    audit::append(
        conn,
        NewEvent::new(
            &actor,
            "setup.completed",
            format!("user:{}", user.username),
            json!({ "ip": ip }),
        ),
    )?;
    Ok(user)
}
