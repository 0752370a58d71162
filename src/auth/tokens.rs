//! API tokens for automation: `tcn_<random>`, shown once, stored as a SHA-256 hash.

use super::users::{User, UserRow};
use super::{random_secret, secret_hash, AuthError};
use crate::audit::{self, Actor, NewEvent};
use crate::db::schema::{api_tokens, users};
use crate::db::{last_insert_id, now, DbConn};
use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use serde::Serialize;
use serde_json::json;

/// Every token starts with this, so secret scanners and people can recognise one.
pub const TOKEN_PREFIX: &str = "tcn_";

/// A token's metadata (never its secret).
#[derive(Debug, Clone, Serialize, Queryable, Selectable)]
#[diesel(table_name = api_tokens)]
pub struct ApiToken {
    pub id: i64,
    #[serde(skip)]
    pub user_id: i64,
    pub name: String,
    /// The first characters of the token, to tell tokens apart.
    pub prefix: String,
    #[serde(serialize_with = "crate::db::utc::serialize")]
    pub created_at: NaiveDateTime,
    #[serde(serialize_with = "crate::db::utc::serialize_opt")]
    pub expires_at: Option<NaiveDateTime>,
    #[serde(serialize_with = "crate::db::utc::serialize_opt")]
    pub last_used_at: Option<NaiveDateTime>,
    #[serde(serialize_with = "crate::db::utc::serialize_opt")]
    pub revoked_at: Option<NaiveDateTime>,
}

/// A token just created, with its secret.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub token: ApiToken,
    /// The bearer secret; shown this once.
    pub secret: String,
}

/// Creates a token for `owner` and records `api_token.created`.
pub fn create(
    conn: &mut DbConn,
    actor: &Actor,
    owner: &User,
    name: &str,
    lifetime: Option<Duration>,
) -> Result<CreatedToken, AuthError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(AuthError::InvalidInput {
            field: "name",
            reason: "must be 1 to 100 characters".into(),
        });
    }
    let secret = format!("{TOKEN_PREFIX}{}", random_secret());
    let prefix: String = secret.chars().take(TOKEN_PREFIX.len() + 6).collect();
    let t = now();
    diesel::insert_into(api_tokens::table)
        .values((
            api_tokens::user_id.eq(owner.id),
            api_tokens::name.eq(name),
            api_tokens::token_hash.eq(secret_hash(&secret)),
            api_tokens::prefix.eq(&prefix),
            api_tokens::created_at.eq(t),
            api_tokens::expires_at.eq(lifetime.map(|d| t + d)),
        ))
        .execute(conn)?;
    let id = last_insert_id(conn)?;
    audit::append(
        conn,
        NewEvent::new(
            actor,
            "api_token.created",
            format!("api_token:{id}"),
            json!({ "owner": owner.username, "name": name, "prefix": prefix }),
        ),
    )?;
    let token = api_tokens::table
        .find(id)
        .select(ApiToken::as_select())
        .first(conn)?;
    Ok(CreatedToken { token, secret })
}

/// The owner and token for a bearer secret, if the token is live and its owner active.
pub fn lookup(conn: &mut DbConn, secret: &str) -> Result<Option<(User, ApiToken)>, AuthError> {
    if !secret.starts_with(TOKEN_PREFIX) {
        return Ok(None);
    }
    let t = now();
    let found: Option<(ApiToken, UserRow)> = api_tokens::table
        .inner_join(users::table)
        .filter(api_tokens::token_hash.eq(secret_hash(secret)))
        .filter(api_tokens::revoked_at.is_null())
        .filter(
            api_tokens::expires_at
                .is_null()
                .or(api_tokens::expires_at.gt(t)),
        )
        .filter(users::disabled_at.is_null())
        .select((ApiToken::as_select(), UserRow::as_select()))
        .first(conn)
        .optional()?;
    Ok(found.map(|(token, row)| (row.into(), token)))
}

/// Records that the token was just used.
pub fn touch(conn: &mut DbConn, token_id: i64) -> Result<(), AuthError> {
    diesel::update(api_tokens::table.find(token_id))
        .set(api_tokens::last_used_at.eq(now()))
        .execute(conn)?;
    Ok(())
}

/// A user's tokens, newest first.
pub fn list(conn: &mut DbConn, owner: &User) -> Result<Vec<ApiToken>, AuthError> {
    Ok(api_tokens::table
        .filter(api_tokens::user_id.eq(owner.id))
        .order(api_tokens::id.desc())
        .select(ApiToken::as_select())
        .load(conn)?)
}

/// Revokes one of `owner`'s tokens and records `api_token.revoked`.
pub fn revoke(
    conn: &mut DbConn,
    actor: &Actor,
    owner: &User,
    id: i64,
) -> Result<ApiToken, AuthError> {
    let token: ApiToken = api_tokens::table
        .find(id)
        .filter(api_tokens::user_id.eq(owner.id))
        .select(ApiToken::as_select())
        .first(conn)
        .optional()?
        .ok_or(AuthError::TokenNotFound(id))?;
    if token.revoked_at.is_some() {
        return Ok(token);
    }
    diesel::update(api_tokens::table.find(id))
        .set(api_tokens::revoked_at.eq(now()))
        .execute(conn)?;
    audit::append(
        conn,
        NewEvent::new(
            actor,
            "api_token.revoked",
            format!("api_token:{id}"),
            json!({ "owner": owner.username, "name": token.name }),
        ),
    )?;
    Ok(api_tokens::table
        .find(id)
        .select(ApiToken::as_select())
        .first(conn)?)
}
